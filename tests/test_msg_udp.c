/* test_msg_udp.c - the msg layer over the udp NIC: the shm scenarios on
 * loopback (127.0.0.1), a peer that restarts on the same port (its new
 * epoch resets the channel; the survivor re-attaches and carries on), and
 * exactly-once in-order delivery across a veth between two network
 * namespaces with netem loss 5%, duplication 5%, 1 ms delay and 25%
 * reordering on both ends. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <poll.h>
#include <time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "msg_common.h"

static struct mp_cfg udp_cfg(uint32_t seed)
{
	struct mp_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.uri[0] = cfg.uri[1] = "udp:127.0.0.1";
	cfg.addr[0] = cfg.addr[1] = "127.0.0.1";
	cfg.ea.seg_size = 4u << 20;
	cfg.seed = seed;
	return cfg;
}

static uint32_t seed_now(void)
{
	return (uint32_t)proc_now_ms() ^ (uint32_t)getpid() << 8;
}

static struct mp_shared *shared(void)
{
	struct mp_shared *sh = proc_shared(sizeof(*sh));
	assert_non_null(sh);
	return sh;
}

static void test_udp_stream(void **state)
{
	struct mp_stream p = {.n = 150, .max = UNET_MSG_MAX};
	struct mp_cfg cfg = udp_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.role[0] = cfg.role[1] = mp_role_stream;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[0], p.n);
	assert_int_equal(sh->count[1], p.n);
	print_message("retx %llu/%llu dup %llu/%llu\n", (unsigned long long)sh->stat[0][0],
		      (unsigned long long)sh->stat[1][0], (unsigned long long)sh->stat[0][2],
		      (unsigned long long)sh->stat[1][2]);
	assert_int_equal(sh->stat[0][1], 0);
	assert_int_equal(sh->stat[1][1], 0);
	proc_unshare(sh, sizeof(*sh));
}

static void test_udp_reqrep(void **state)
{
	struct mp_rr p = {.n = 300, .depth = 16, .max_req = 64u << 10, .max_rep = 256u << 10};
	struct mp_cfg cfg = udp_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.role[0] = mp_role_client;
	cfg.role[1] = mp_role_server;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[1], p.n);
	proc_unshare(sh, sizeof(*sh));
}

/* Peers configured differently: side 0 has 1 KiB receive buffers, a window
 * of 4 and 200-byte fragments; side 1 the defaults, whose 1400-byte
 * fragments would not fit side 0: the handshake makes it cut smaller ones. */
static void test_udp_mismatch(void **state)
{
	struct mp_rr p = {.n = 200, .depth = 8, .max_req = 16u << 10, .max_rep = 64u << 10};
	struct mp_cfg cfg = udp_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.rx_buf_size[0] = 1024;
	cfg.ma[0].window = 4;
	cfg.ma[0].frag_size = 200;
	cfg.role[0] = mp_role_client;
	cfg.role[1] = mp_role_server;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[1], p.n);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- a dead peer: no signal on udp, only silence ----------------------------------- */

static void test_udp_dead_peer(void **state)
{
	struct mp_cfg cfg = udp_cfg(1);
	struct mp_shared *sh = shared();
	pid_t pid[2];

	(void)state;
	cfg.ma[0].dead_ms = 300;
	cfg.role[0] = role_doomed_client;
	cfg.role[1] = role_mute_server;
	sh->flag[2] = ETIMEDOUT;
	sh->flag[3] = 300 + 1500;
	mp_run(&cfg, sh, pid);
	if (proc_wait_u32(&sh->count[1], DEAD_REQS, 20000) < 0) {
		proc_kill(pid[0]);
		proc_kill(pid[1]);
		fail_msg("server never got the requests");
	}
	proc_set_u32(&sh->flag[0], 1);
	proc_kill(pid[1]);
	int rc = proc_wait(pid[0], 30000);
	print_message("failed after %llu ms\n", (unsigned long long)sh->stat[0][7]);
	assert_int_equal(rc, 0);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- a peer restarts on the same port ------------------------------------------ */

static void echo_handler(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	mp_ctx *c = arg;

	unet_msg_reply(mep, m, m->data, m->len);
	proc_set_u32(&c->sh->count[1], proc_get_u32(&c->sh->count[1]) + 1);
}

static int role_echo(mp_ctx *c)
{
	unet_msg_handle(c->mep, 7, echo_handler, c);
	return mp_linger(c);
}

/* Round trips until the peer restarts (flag[0] set by the parent); the
 * channel must fail with -ECONNRESET once the new incarnation says hello,
 * and work again after a re-attach. */
static int role_survivor(mp_ctx *c)
{
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS, t_fail = 0;
	uint32_t ok = 0, ok_after = 0, k = 0;
	unsigned ch = (unsigned)c->chan;
	int failed = 0;

	while (ok_after < 20) {
		char q[32], r[32];
		struct unet_msg_comp comp;
		int len = snprintf(q, sizeof(q), "round %u", k++);

		if (proc_now_ms() > end) {
			mp_fail(c, "stuck: %u ok before, %u after, failure %d", ok, ok_after,
				failed);
			return 110;
		}
		int64_t id = unet_msg_request(c->mep, ch, 7, q, (uint32_t)len, r, sizeof(r), NULL);
		int rc = id > 0 ? unet_msg_wait(c->mep, id, 20000, &comp) : (int)id;
		if (rc == 0 && comp.status == 0) {
			if (comp.len != (uint32_t)len || memcmp(q, r, (size_t)len) != 0) {
				mp_fail(c, "echo mismatch");
				return 111;
			}
			if (failed)
				ok_after++;
			else
				proc_set_u32(&c->sh->count[0], ++ok);
			continue;
		}
		int why = rc < 0 ? rc : comp.status;
		if (!failed) {
			failed = why;
			t_fail = proc_now_ms();
		}
		if (why != -ECONNRESET) {
			mp_fail(c, "failure %d, want -ECONNRESET", why);
			return 112;
		}
		/* Start afresh: attach re-initialises a failed channel. */
		rc = unet_msg_attach(c->mep, ch);
		if (rc < 0 && rc != -EALREADY) {
			mp_fail(c, "re-attach: %s", unet_strerror(rc));
			return 113;
		}
	}
	c->sh->stat[0][7] = t_fail;
	proc_set_u32(&c->sh->done[0], 1);
	mp_pump(c, 50);
	return 0;
}

static void test_udp_restart(void **state)
{
	struct mp_cfg cfg = udp_cfg(1);
	struct mp_shared *sh = shared();
	static mp_ctx again;
	pid_t pid[2];

	(void)state;
	cfg.ma[0].dead_ms = 20000; /* the reset must come from the new epoch, not silence */
	cfg.role[0] = role_survivor;
	cfg.role[1] = role_echo;
	mp_run(&cfg, sh, pid);
	if (proc_wait_u32(&sh->count[0], 20, 20000) < 0) {
		proc_kill(pid[0]);
		proc_kill(pid[1]);
		fail_msg("no round trips before the restart");
	}
	proc_kill(pid[1]);
	uint64_t t_restart = proc_now_ms();
	cfg.port[1] = sh->port[1];
	memset(&again, 0, sizeof(again));
	again.side = 1;
	again.cfg = &cfg;
	again.sh = sh;
	pid[1] = proc_fork(mp_child, &again);
	int rc0 = proc_wait(pid[0], MP_TIMEOUT_MS);
	int rc1 = proc_wait(pid[1], 10000);
	assert_int_equal(rc0, 0);
	assert_int_equal(rc1, 0);
	print_message("reset seen %lld ms after the restart\n",
		      (long long)(sh->stat[0][7] - t_restart));
	proc_unshare(sh, sizeof(*sh));
}

/* ---- loss, duplication and reordering: a user-space netem ----------------------- */

/* The kernel here is built without sch_netem, so the same impairment is
 * also applied by a relay process on loopback that sits between the two
 * endpoints: each side dials the relay, which forwards to the other side
 * from its other socket (so the udp NIC's source check still holds) and
 * on the way drops 5%, duplicates 5%, and delays 75% of datagrams by 1 ms
 * while 25% overtake them -- netem's "loss 5% duplicate 5% delay 1ms
 * reorder 25%", in both directions. */

#define RELAY_Q 4096

struct relay_pkt {
	uint64_t due_us;
	int out; /* socket it leaves by, which faces side `out` */
	uint32_t len;
	uint8_t data[2048];
};

static uint64_t now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static int relay_main(void *arg)
{
	struct mp_shared *sh = arg;
	static struct relay_pkt q[RELAY_Q];
	unsigned head = 0, count = 0;
	int fd[2];
	struct sockaddr_in peer[2];
	uint64_t x = 0x9e3779b97f4a7c15ull ^ (uint64_t)getpid();

	for (int i = 0; i < 2; i++) {
		struct sockaddr_in a = {.sin_family = AF_INET,
					.sin_addr.s_addr = htonl(0x7f000001)};
		socklen_t l = sizeof(a);
		fd[i] = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
		if (fd[i] < 0 || bind(fd[i], (struct sockaddr *)&a, sizeof(a)) < 0 ||
		    getsockname(fd[i], (struct sockaddr *)&a, &l) < 0)
			return 1;
		int big = 4 << 20;
		setsockopt(fd[i], SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
		setsockopt(fd[i], SOL_SOCKET, SO_SNDBUF, &big, sizeof(big));
		proc_set_u32(&sh->relay[i], ntohs(a.sin_port));
	}
	for (int i = 0; i < 2; i++) {
		if (proc_wait_u32(&sh->port[i], 1, 10000) < 0)
			return 2;
		peer[i] = (struct sockaddr_in){.sin_family = AF_INET,
					       .sin_addr.s_addr = htonl(0x7f000001),
					       .sin_port = htons((uint16_t)sh->port[i])};
	}
	for (;;) {
		uint64_t now = now_us();
		while (count && q[head].due_us <= now) {
			struct relay_pkt *p = &q[head];
			sendto(fd[p->out], p->data, p->len, 0, (struct sockaddr *)&peer[p->out],
			       sizeof(peer[0]));
			head = (head + 1) % RELAY_Q;
			count--;
		}
		struct pollfd pf[2] = {{.fd = fd[0], .events = POLLIN},
				       {.fd = fd[1], .events = POLLIN}};
		int wait = count ? (int)((q[head].due_us - now + 999) / 1000) : 100;
		poll(pf, 2, wait);
		for (int i = 0; i < 2; i++) {
			uint8_t buf[2048];
			ssize_t n;
			while ((n = recv(fd[i], buf, sizeof(buf), 0)) >= 0) {
				/* Arrived on socket i (from side i): leaves by socket 1-i. */
				x = x * 6364136223846793005ull + 1442695040888963407ull;
				unsigned r = (unsigned)(x >> 33) % 100;
				if (r < 5) {
					sh->relay_stat[0]++;
					continue;
				}
				int copies = r < 10 ? 2 : 1;
				sh->relay_stat[1] += copies == 2;
				for (int k = 0; k < copies; k++) {
					x = x * 6364136223846793005ull + 1442695040888963407ull;
					if ((x >> 33) % 100 < 25) { /* overtakes the delayed ones */
						sendto(fd[1 - i], buf, (size_t)n, 0,
						       (struct sockaddr *)&peer[1 - i],
						       sizeof(peer[0]));
						sh->relay_stat[2]++;
						continue;
					}
					if (count == RELAY_Q) {
						sh->relay_stat[0]++;
						continue;
					}
					struct relay_pkt *p = &q[(head + count++) % RELAY_Q];
					p->due_us = now_us() + 1000;
					p->out = 1 - i;
					p->len = (uint32_t)n;
					memcpy(p->data, buf, (size_t)n);
				}
			}
		}
	}
}

static pid_t relay_start(struct mp_shared *sh)
{
	pid_t pid = proc_fork(relay_main, sh);
	assert_true(pid > 0);
	return pid;
}

static void report_relay(const struct mp_shared *sh)
{
	print_message("relay: dropped %u, duplicated %u, reordered %u\n", sh->relay_stat[0],
		      sh->relay_stat[1], sh->relay_stat[2]);
}

static void check_hostile(const struct mp_shared *sh, uint64_t t0)
{
	uint64_t retx = sh->stat[0][0] + sh->stat[1][0], dup = sh->stat[0][2] + sh->stat[1][2];
	uint64_t ooo = sh->stat[0][3] + sh->stat[1][3];

	print_message("%llu ms; retransmitted %llu, duplicates dropped %llu, arrived out of "
		      "order %llu\n",
		      (unsigned long long)(proc_now_ms() - t0), (unsigned long long)retx,
		      (unsigned long long)dup, (unsigned long long)ooo);
	/* The wire really was hostile, and it did not show. */
	assert_true(retx > 0);
	assert_true(dup > 0);
	assert_true(ooo > 0);
}

static void test_lossy_stream(void **state)
{
	struct mp_stream p = {.n = 300, .max = 256u << 10};
	struct mp_cfg cfg = udp_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.relay = true;
	cfg.role[0] = cfg.role[1] = mp_role_stream;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	pid_t relay = relay_start(sh);
	uint64_t t0 = proc_now_ms();
	int rc = mp_run(&cfg, sh, NULL);
	proc_kill(relay);
	report_relay(sh);
	assert_int_equal(rc, 0);
	assert_int_equal(sh->count[0], p.n);
	assert_int_equal(sh->count[1], p.n);
	check_hostile(sh, t0);
	proc_unshare(sh, sizeof(*sh));
}

static void test_lossy_reqrep(void **state)
{
	struct mp_rr p = {.n = 300, .depth = 8, .max_req = 16u << 10, .max_rep = 32u << 10};
	struct mp_cfg cfg = udp_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.relay = true;
	cfg.role[0] = mp_role_client;
	cfg.role[1] = mp_role_server;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	pid_t relay = relay_start(sh);
	int rc = mp_run(&cfg, sh, NULL);
	proc_kill(relay);
	report_relay(sh);
	assert_int_equal(rc, 0);
	assert_int_equal(sh->count[1], p.n);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- loss, duplication and reordering (netem on a veth) ------------------------ */

static struct netns_pair pair;
static bool have_pair;

static int netem_setup(void **state)
{
	const char *why = netns_unavailable();

	(void)state;
	if (why) {
		printf("skipped: %s\n", why);
		return 0;
	}
	if (netns_pair_create(&pair, NULL) < 0) {
		printf("skipped: could not create the namespace pair\n");
		return 0;
	}
	have_pair = true;
	for (int i = 0; i < 2; i++) {
		int rc = netns_sh(pair.ns[i], NULL, 0,
				  "tc qdisc add dev %s root netem loss 5%% duplicate 5%% delay 1ms "
				  "reorder 25%%",
				  pair.dev[i]);
		if (rc != 0) {
			printf(
			    "skipped: 'tc qdisc add ... netem' failed (exit %d): no sch_netem in "
			    "this kernel? test_lossy_* apply the same impairment in user space\n",
			    rc);
			netns_pair_destroy(&pair);
			have_pair = false;
			return 0;
		}
	}
	return 0;
}

static int netem_teardown(void **state)
{
	(void)state;
	if (have_pair)
		netns_pair_destroy(&pair);
	have_pair = false;
	return 0;
}

static struct mp_cfg netem_cfg(uint32_t seed)
{
	static char uri[2][40];
	struct mp_cfg cfg = udp_cfg(seed);

	for (int i = 0; i < 2; i++) {
		snprintf(uri[i], sizeof(uri[i]), "udp:%s", pair.ip[i]);
		cfg.uri[i] = uri[i];
		cfg.addr[i] = pair.ip[i];
		cfg.netns[i] = pair.ns[i];
	}
	return cfg;
}

static void test_netem_stream(void **state)
{
	struct mp_stream p = {.n = 300, .max = 64u << 10};
	struct mp_shared *sh;
	struct mp_cfg cfg;

	(void)state;
	if (!have_pair)
		skip();
	cfg = netem_cfg(seed_now());
	sh = shared();
	cfg.role[0] = cfg.role[1] = mp_role_stream;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	uint64_t t0 = proc_now_ms();
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[0], p.n);
	assert_int_equal(sh->count[1], p.n);
	check_hostile(sh, t0);
	proc_unshare(sh, sizeof(*sh));
}

static void test_netem_reqrep(void **state)
{
	struct mp_rr p = {.n = 300, .depth = 8, .max_req = 16u << 10, .max_rep = 32u << 10};
	struct mp_shared *sh;
	struct mp_cfg cfg;

	(void)state;
	if (!have_pair)
		skip();
	cfg = netem_cfg(seed_now());
	sh = shared();
	cfg.role[0] = mp_role_client;
	cfg.role[1] = mp_role_server;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[1], p.n);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_udp_stream),	 cmocka_unit_test(test_udp_reqrep),
	    cmocka_unit_test(test_udp_mismatch), cmocka_unit_test(test_udp_dead_peer),
	    cmocka_unit_test(test_udp_restart),	 cmocka_unit_test(test_lossy_stream),
	    cmocka_unit_test(test_lossy_reqrep),
	};
	const struct CMUnitTest netem[] = {
	    cmocka_unit_test(test_netem_stream),
	    cmocka_unit_test(test_netem_reqrep),
	};
	int rc = cmocka_run_group_tests(tests, NULL, NULL);
	rc |= cmocka_run_group_tests_name("netem", netem, netem_setup, netem_teardown);
	return rc;
}
