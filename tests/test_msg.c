/* test_msg.c - the msg layer over the shm NIC, with several processes:
 * in-order exactly-once delivery of random-size messages (0..1 MiB) both
 * ways, pipelined request/reply, a slow receiver that throttles a fast
 * sender without a single drop, dead peers (killed: -ECONNRESET; stopped:
 * -ETIMEDOUT after dead_ms), bad arguments, and garbage on the wire. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "msg_common.h"
#include "msg_wire.h"

static struct mp_cfg shm_cfg(uint32_t seed)
{
	struct mp_cfg cfg;

	memset(&cfg, 0, sizeof(cfg));
	cfg.uri[0] = cfg.uri[1] = "shm";
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

static void test_stream(void **state)
{
	struct mp_stream p = {.n = 200, .max = UNET_MSG_MAX};
	struct mp_cfg cfg = shm_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.role[0] = cfg.role[1] = mp_role_stream;
	cfg.arg = &p;
	print_message("seed %u\n", cfg.seed);
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[0], p.n);
	assert_int_equal(sh->count[1], p.n);
	/* shm loses nothing: no retransmission, no duplicate, no U-Net drop. */
	for (int s = 0; s < 2; s++) {
		assert_int_equal(sh->stat[s][0], 0);
		assert_int_equal(sh->stat[s][1], 0);
		assert_int_equal(sh->stat[s][2], 0);
		assert_int_equal(sh->stat[s][6], 0);
	}
	proc_unshare(sh, sizeof(*sh));
}

static void test_reqrep(void **state)
{
	struct mp_rr p = {.n = 400, .depth = 16, .max_req = 64u << 10, .max_rep = UNET_MSG_MAX};
	struct mp_cfg cfg = shm_cfg(seed_now());
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

/* One request at a time reuses one request slot: past 65535 of them its
 * 16-bit generation wraps, and it must skip 0 (a request id of 0 lost its
 * reply, and farm_alloc timed out after ~65k remote allocations). */
static void test_reqid_wrap(void **state)
{
	struct mp_rr p = {.n = 70000, .depth = 1, .max_req = 16, .max_rep = 16};
	struct mp_cfg cfg = shm_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.role[0] = mp_role_client;
	cfg.role[1] = mp_role_server;
	cfg.arg = &p;
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[1], p.n);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- slow receiver -------------------------------------------------------- */

#define SLOW_N	 3000
#define SLOW_MAX 6000

static int role_fast_sender(mp_ctx *c)
{
	uint8_t *buf = malloc(SLOW_MAX);
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;
	uint32_t eagain = 0;

	for (uint32_t k = 0; k < SLOW_N;) {
		uint32_t len = mp_len(c->cfg->seed, 0, k, SLOW_MAX);
		mp_fill(buf, len, c->cfg->seed, 0, k);
		int r = unet_msg_send(c->mep, (unsigned)c->chan, 1, buf, len);
		if (r == 0) {
			k++;
			continue;
		}
		if (r != -EAGAIN || proc_now_ms() > end) {
			mp_fail(c, "send %u: %s", k, unet_strerror(r));
			return 70;
		}
		eagain++;
		unet_msg_poll(c->mep, 64); /* no sleep: as fast as the window allows */
	}
	c->sh->flag[1] = eagain;
	free(buf);
	return mp_linger(c);
}

static int role_slow_receiver(mp_ctx *c)
{
	struct mp_rx rx = {.c = c, .seed = c->cfg->seed, .max = SLOW_MAX};
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;

	rx.scratch = malloc(UNET_MSG_MAX);
	unet_msg_handle(c->mep, 1, mp_stream_handler, &rx);
	while (rx.got < SLOW_N && !rx.err && proc_now_ms() < end) {
		unet_msg_poll(c->mep, 4);
		usleep(200);
	}
	free(rx.scratch);
	if (rx.got < SLOW_N)
		return rx.err ? rx.err : 71;
	return mp_linger(c);
}

static void test_slow_receiver(void **state)
{
	struct mp_cfg cfg = shm_cfg(seed_now());
	struct mp_shared *sh = shared();

	(void)state;
	cfg.role[0] = role_fast_sender;
	cfg.role[1] = role_slow_receiver;
	print_message("seed %u\n", cfg.seed);
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[1], SLOW_N);
	print_message("sender throttled %u times\n", sh->flag[1]);
	assert_true(sh->flag[1] > 0);	     /* the sender was held back ... */
	assert_int_equal(sh->stat[0][0], 0); /* ... and never had to retransmit */
	assert_int_equal(sh->stat[1][6], 0); /* not one U-Net-level drop */
	assert_int_equal(sh->stat[1][1], 0);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- dead peers --------------------------------------------------------------- */

static void run_dead(int sig, int dead_ms, int want_errno, uint32_t bound_ms)
{
	struct mp_cfg cfg = shm_cfg(1);
	struct mp_shared *sh = shared();
	pid_t pid[2];

	cfg.ma[0].dead_ms = (uint32_t)dead_ms;
	cfg.role[0] = role_doomed_client;
	cfg.role[1] = role_mute_server;
	sh->flag[2] = (uint32_t)want_errno;
	sh->flag[3] = bound_ms;
	mp_run(&cfg, sh, pid);
	if (proc_wait_u32(&sh->count[1], DEAD_REQS, 20000) < 0) {
		proc_kill(pid[0]);
		proc_kill(pid[1]);
		fail_msg("server never got the requests");
	}
	proc_set_u32(&sh->flag[0], 1); /* first: the client may see the failure at once */
	kill(pid[1], sig);
	int rc = proc_wait(pid[0], 30000);
	proc_kill(pid[1]);
	print_message("failed after %llu ms\n", (unsigned long long)sh->stat[0][7]);
	assert_int_equal(rc, 0);
	proc_unshare(sh, sizeof(*sh));
}

static void test_dead_peer_killed(void **state)
{
	(void)state;
	run_dead(SIGKILL, 3000, ECONNRESET, 1000);
}

static void test_dead_peer_stopped(void **state)
{
	(void)state;
	/* Alive but silent: only dead_ms can tell. */
	run_dead(SIGSTOP, 300, ETIMEDOUT, 300 + 1500);
}

/* ---- bad input -------------------------------------------------------------- */

static void noop(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	(void)mep;
	(void)m;
	(void)arg;
}

static void test_bad_args(void **state)
{
	struct unet_nic *nic;
	struct unet_ep *ep, *small;
	struct unet_msg_ep *mep;
	struct unet_ep_attr ea = {.seg_size = 4u << 20};
	struct unet_msg_attr ma;
	struct unet_msg_comp c;
	char name[64];
	static uint8_t big[UNET_MSG_MAX + 1];

	(void)state;
	assert_int_equal(unet_nic_open("shm", &nic), 0);
	proc_name(name, sizeof(name), "msg-bad");
	assert_int_equal(unet_ep_create(nic, name, &ea, &ep), 0);

	/* Creation: bad attributes, and a segment too small to stage into. */
	assert_int_equal(unet_msg_create(NULL, NULL, &mep), -EINVAL);
	memset(&ma, 0, sizeof(ma));
	ma.max_reqs = 70000;
	assert_int_equal(unet_msg_create(ep, &ma, &mep), -EINVAL);
	memset(&ma, 0, sizeof(ma));
	ma.stage_size = 100;
	assert_int_equal(unet_msg_create(ep, &ma, &mep), -EINVAL);
	proc_name(name, sizeof(name), "msg-small");
	assert_int_equal(unet_ep_create(nic, name, NULL, &small), 0); /* 1 MiB segment */
	assert_int_equal(unet_msg_create(small, NULL, &mep), -ENOMEM);
	unet_ep_destroy(small);

	assert_int_equal(unet_msg_create(ep, NULL, &mep), 0);
	assert_ptr_equal(unet_msg_unet(mep), ep);
	/* Types 240..255 belong to the library. */
	assert_int_equal(unet_msg_handle(mep, 240, noop, NULL), -EINVAL);
	assert_int_equal(unet_msg_handle(mep, 239, noop, NULL), 0);
	assert_int_equal(unet_msg_send(mep, 0, 250, "x", 1), -EINVAL);
	/* Oversize first, whatever the channel. */
	assert_int_equal(unet_msg_send(mep, 0, 1, big, UNET_MSG_MAX + 1), -EMSGSIZE);
	assert_int_equal(unet_msg_request(mep, 0, 1, big, UNET_MSG_MAX + 1, NULL, 0, NULL),
			 -EMSGSIZE);
	assert_int_equal(unet_msg_send(mep, 0, 1, NULL, 5), -EINVAL);
	/* Channels that are not attached, or do not exist. */
	assert_int_equal(unet_msg_send(mep, 0, 1, "x", 1), -ENOTCONN);
	assert_int_equal(unet_msg_send(mep, 100000, 1, "x", 1), -ENOTCONN);
	assert_int_equal(unet_msg_request(mep, 3, 1, "x", 1, NULL, 0, NULL), -ENOTCONN);
	assert_int_equal(unet_msg_attach(mep, 0), -ENOTCONN); /* no U-Net channel */
	assert_int_equal(unet_msg_attach(mep, 100000), -ENOTCONN);
	assert_int_equal(unet_msg_detach(mep, 0), -ENOTCONN);
	struct unet_msg m = {.chan = 0, .req_id = 0};
	assert_int_equal(unet_msg_reply(mep, &m, "x", 1), -EINVAL);
	m.req_id = 77;
	assert_int_equal(unet_msg_reply(mep, &m, "x", 1), -ENOTCONN);
	/* Requests that do not exist. */
	assert_int_equal(unet_msg_wait(mep, 0, 0, &c), -EINVAL);
	assert_int_equal(unet_msg_wait(mep, 12345, 0, &c), -EINVAL);
	assert_int_equal(unet_msg_wait(mep, -5, 0, &c), -EINVAL);
	assert_int_equal(unet_msg_poll_comp(mep, &c, 1), 0);
	assert_int_equal(unet_msg_poll(mep, 16), 0);
	assert_int_equal(unet_msg_idle(mep, 0), 0);
	unet_msg_destroy(mep);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

/* A peer with an attached channel, for the limits that need one. */
static int role_idle_peer(mp_ctx *c)
{
	unet_msg_handle(c->mep, 6, noop, NULL); /* never replies */
	return mp_linger(c);
}

static int role_limits(mp_ctx *c)
{
	struct unet_msg_comp comp;
	int rc = 0;

	if (unet_msg_attach(c->mep, (unsigned)c->chan) != -EALREADY)
		rc = 90;
	/* stage_size 64 KiB (ma[0]): a message that could never fit. */
	static uint8_t big[256u << 10];
	if (!rc && unet_msg_send(c->mep, (unsigned)c->chan, 1, big, sizeof(big)) != -EMSGSIZE)
		rc = 91;
	/* max_reqs 4 (ma[0]). */
	int64_t id[4];
	for (int i = 0; i < 4 && !rc; i++)
		if ((id[i] = unet_msg_request(c->mep, (unsigned)c->chan, 6, "q", 1, NULL, 0,
					      NULL)) <= 0)
			rc = 92;
	if (!rc && unet_msg_request(c->mep, (unsigned)c->chan, 6, "q", 1, NULL, 0, NULL) != -EBUSY)
		rc = 93;
	/* Waiting with a timeout leaves the request outstanding. */
	if (!rc && unet_msg_wait(c->mep, id[0], 50, &comp) != -ETIMEDOUT)
		rc = 94;
	/* Detach fails outstanding requests with -ECONNRESET. */
	if (!rc && unet_msg_detach(c->mep, (unsigned)c->chan) != 0)
		rc = 95;
	for (int i = 0; i < 4 && !rc; i++)
		if (unet_msg_wait(c->mep, id[i], 0, &comp) != 0 || comp.status != -ECONNRESET)
			rc = 96;
	if (!rc && unet_msg_send(c->mep, (unsigned)c->chan, 1, "x", 1) != -ENOTCONN)
		rc = 97;
	if (rc)
		mp_fail(c, "limit check %d failed", rc);
	proc_set_u32(&c->sh->done[c->side], 1);
	return rc;
}

static void test_limits(void **state)
{
	struct mp_cfg cfg = shm_cfg(1);
	struct mp_shared *sh = shared();

	(void)state;
	cfg.ma[0].stage_size = 64u << 10;
	cfg.ea.seg_size = 1u << 20;
	cfg.ma[0].max_reqs = 4;
	cfg.ma[1].stage_size = 64u << 10;
	cfg.role[0] = role_limits;
	cfg.role[1] = role_idle_peer;
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- garbage on the wire ------------------------------------------------------ */

/* Side 1 first speaks raw U-Net on the channel: every kind of malformed or
 * forged fragment. Then it becomes a well-behaved msg peer and sends one
 * message, which side 0 must deliver, exactly once. */
static int role_garbage(mp_ctx *c)
{
	uint8_t f[64];
	unsigned ch = (unsigned)c->chan;
	int sent = 0;
	uint64_t x = 12345;

#define RAW(len)                                                                                   \
	do {                                                                                       \
		if (unet_send_inline(c->ep, ch, f, (len)) == 0)                                    \
			sent++;                                                                    \
	} while (0)
	memset(f, 0, sizeof(f));
	RAW(0);
	RAW(15); /* short */
	msg_put_hdr(f, MSG_OP_DATA, MSG_F_FIRST | MSG_F_LAST, 1, 7, 0, 0);
	f[3] = 9; /* version */
	RAW(16);
	msg_put_hdr(f, 99, 0, 1, 7, 0, 0); /* op */
	RAW(16);
	msg_put_hdr(f, MSG_OP_DATA, 0x80, 1, 7, 0, 0); /* flags */
	RAW(16);
	msg_put_hdr(f, MSG_OP_DATA, MSG_F_FIRST | MSG_F_LAST, 1, 0, 0, 0); /* epoch 0 */
	RAW(16);
	msg_put_hdr(f, MSG_OP_DATA, MSG_F_FIRST | MSG_F_REQ | MSG_F_REPLY, 1, 7, 0, 0);
	RAW(20);
	msg_put_hdr(f, MSG_OP_DATA, MSG_F_FIRST | MSG_F_REQ, 1, 7, 0, 0); /* tag missing */
	RAW(18);
	msg_put_hdr(f, MSG_OP_SYN, 0, 0, 7, 0, 0); /* SYN, credit 0 */
	RAW(MSG_SYN_LEN);
	msg_put_hdr(f, MSG_OP_DATA, MSG_F_FIRST | MSG_F_LAST, 1, 7, 0, 0); /* unknown epoch */
	RAW(20);
	msg_put_hdr(f, MSG_OP_ACK, 0, 0, 7, 0, 99); /* ack from nowhere */
	RAW(16);
	for (int i = 0; i < 200; i++) { /* noise */
		for (int j = 0; j < 48; j++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			f[j] = (uint8_t)(x >> 56);
		}
		if (i & 1)
			f[3] = MSG_WIRE_VERSION;
		RAW((uint32_t)(x % 49));
	}
	proc_set_u32(&c->sh->count[1], (uint32_t)sent);
	/* Now behave: a fresh msg endpoint on the same channel. */
	unet_msg_destroy(c->mep);
	struct unet_msg_ep *mep;
	if (unet_msg_create(c->ep, &c->cfg->ma[1], &mep) || unet_msg_attach(mep, ch))
		return 100;
	c->mep = mep;
	if (unet_msg_send(mep, ch, 1, "hello, world", 12) != 0)
		return 101;
	return mp_linger(c);
}

static void count_handler(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	mp_ctx *c = arg;
	(void)mep;
	if (m->len == 12 && memcmp(m->data, "hello, world", 12) == 0)
		c->sh->count[0]++;
	else
		c->sh->flag[0]++;
}

static int role_victim(mp_ctx *c)
{
	uint64_t end = proc_now_ms() + 20000;

	unet_msg_handle(c->mep, 1, count_handler, c);
	while (c->sh->count[0] == 0 && proc_now_ms() < end) {
		/* The garbage peer's first msg endpoint detaches (RST): start over
		 * as an application would. */
		int st = unet_msg_status(c->mep, (unsigned)c->chan);
		if (st < 0 && st != -EINPROGRESS && unet_msg_attach(c->mep, (unsigned)c->chan) < 0)
			return 102;
		if (unet_msg_poll(c->mep, 64) == 0)
			unet_msg_idle(c->mep, 5);
	}
	struct unet_msg_stats st;
	unet_msg_get_stats(c->mep, &st);
	c->sh->stat[0][1] = st.frags_bad;
	return mp_linger(c);
}

static void test_garbage(void **state)
{
	struct mp_cfg cfg = shm_cfg(1);
	struct mp_shared *sh = shared();

	(void)state;
	cfg.role[0] = role_victim;
	cfg.role[1] = role_garbage;
	assert_int_equal(mp_run(&cfg, sh, NULL), 0);
	assert_int_equal(sh->count[0], 1); /* the real message, once */
	assert_int_equal(sh->flag[0], 0);  /* nothing else delivered */
	print_message("%u raw fragments sent, %llu counted bad\n", sh->count[1],
		      (unsigned long long)sh->stat[0][1]);
	/* Every raw fragment is bad except for lucky noise; at least the
	 * crafted ones must all have been counted. */
	assert_true(sh->stat[0][1] >= 11);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- one endpoint, several peers ----------------------------------------------- */

#define HUB_SPOKES 2
#define HUB_N	   150

struct hub_shared {
	char hub[64], spoke[HUB_SPOKES][64];
	uint32_t seed;
	uint32_t got[HUB_SPOKES]; /* messages the hub took from each spoke */
	uint32_t done[HUB_SPOKES], hub_done, bad;
};

struct hub_rx {
	struct hub_shared *sh;
	int chan_of[HUB_SPOKES];
	uint8_t *scratch;
};

static void hub_stream(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct hub_rx *h = arg;
	(void)mep;
	for (int i = 0; i < HUB_SPOKES; i++) {
		if ((unsigned)h->chan_of[i] != m->chan)
			continue;
		/* Spoke i's stream is stream 10+i: it must arrive on its own channel. */
		if (mp_check(m->data, m->len, h->sh->seed, 10 + i, h->sh->got[i], 256u << 10,
			     h->scratch))
			h->sh->bad++;
		proc_set_u32(&h->sh->got[i], h->sh->got[i] + 1);
		return;
	}
	h->sh->bad++;
}

/* Reply with the request's bytes reversed, so each spoke can check its own. */
static void hub_rev(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct hub_rx *h = arg;
	uint8_t out[512];
	for (uint32_t i = 0; i < m->len && i < sizeof(out); i++)
		out[i] = ((const uint8_t *)m->data)[m->len - 1 - i];
	if (m->len > sizeof(out) || unet_msg_reply(mep, m, out, m->len) != 0)
		h->sh->bad++;
}

static int hub_main(void *arg)
{
	struct hub_shared *sh = arg;
	struct unet_nic *nic;
	struct unet_ep *ep;
	struct unet_msg_ep *mep;
	struct unet_ep_attr ea = {.seg_size = 4u << 20};
	struct hub_rx h = {.sh = sh, .scratch = malloc(UNET_MSG_MAX)};

	if (unet_nic_open("shm", &nic) || unet_ep_create(nic, sh->hub, &ea, &ep) ||
	    unet_msg_create(ep, NULL, &mep))
		return 1;
	unet_msg_handle(mep, 1, hub_stream, &h);
	unet_msg_handle(mep, 2, hub_rev, &h);
	for (int i = 0; i < HUB_SPOKES; i++) {
		h.chan_of[i] = unet_chan_open(ep, sh->spoke[i], 10000);
		if (h.chan_of[i] < 0 || unet_msg_attach(mep, (unsigned)h.chan_of[i]) != 0)
			return 2;
	}
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;
	for (;;) {
		bool all = true;
		for (int i = 0; i < HUB_SPOKES; i++)
			all = all && proc_get_u32(&sh->done[i]) && sh->got[i] == HUB_N;
		if (all || proc_now_ms() > end)
			break;
		if (unet_msg_poll(mep, 64) == 0)
			unet_msg_idle(mep, 5);
	}
	proc_set_u32(&sh->hub_done, 1);
	for (int k = 0; k < 200; k++) /* last acks */
		unet_msg_poll(mep, 64);
	unet_msg_destroy(mep);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
	free(h.scratch);
	return 0;
}

static int spoke_idx;

static int spoke_main(void *arg)
{
	struct hub_shared *sh = arg;
	int me = spoke_idx;
	struct unet_nic *nic;
	struct unet_ep *ep;
	struct unet_msg_ep *mep;
	struct unet_ep_attr ea = {.seg_size = 4u << 20};
	uint8_t *buf = malloc(256u << 10);
	int ch;

	if (unet_nic_open("shm", &nic) || unet_ep_create(nic, sh->spoke[me], &ea, &ep) ||
	    unet_msg_create(ep, NULL, &mep))
		return 1;
	if ((ch = unet_chan_open(ep, sh->hub, 10000)) < 0 || unet_msg_attach(mep, (unsigned)ch))
		return 2;
	uint64_t end = proc_now_ms() + MP_TIMEOUT_MS;
	for (uint32_t k = 0; k < HUB_N;) {
		if (proc_now_ms() > end)
			return 3;
		uint32_t len = mp_len(sh->seed, 10 + me, k, 256u << 10);
		mp_fill(buf, len, sh->seed, 10 + me, k);
		int r = unet_msg_send(mep, (unsigned)ch, 1, buf, len);
		if (r == -EAGAIN) {
			unet_msg_poll(mep, 64);
			continue;
		}
		if (r != 0)
			return 4;
		k++;
		/* Every tenth message, a round trip through the same hub. */
		if (k % 10 == 0) {
			char q[64], a[64];
			struct unet_msg_comp c;
			int n = snprintf(q, sizeof(q), "spoke %d asks %u", me, k);
			int64_t id = unet_msg_request(mep, (unsigned)ch, 2, q, (uint32_t)n, a,
						      sizeof(a), NULL);
			if (id <= 0 || unet_msg_wait(mep, id, 10000, &c) != 0 || c.status != 0 ||
			    c.len != (uint32_t)n)
				return 5;
			for (int i = 0; i < n; i++)
				if (a[i] != q[n - 1 - i])
					return 6;
		}
	}
	proc_set_u32(&sh->done[me], 1);
	while (!proc_get_u32(&sh->hub_done) && proc_now_ms() < end)
		if (unet_msg_poll(mep, 64) == 0)
			unet_msg_idle(mep, 5);
	unet_msg_destroy(mep);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
	free(buf);
	return 0;
}

static void test_many_peers(void **state)
{
	struct hub_shared *sh = proc_shared(sizeof(*sh));
	pid_t hub, spoke[HUB_SPOKES];

	(void)state;
	assert_non_null(sh);
	sh->seed = seed_now();
	proc_name(sh->hub, sizeof(sh->hub), "msg-hub");
	for (int i = 0; i < HUB_SPOKES; i++)
		proc_name(sh->spoke[i], sizeof(sh->spoke[i]), "msg-spoke");
	print_message("seed %u\n", sh->seed);
	hub = proc_fork(hub_main, sh);
	for (int i = 0; i < HUB_SPOKES; i++) {
		spoke_idx = i;
		spoke[i] = proc_fork(spoke_main, sh);
	}
	int rc[HUB_SPOKES + 1];
	for (int i = 0; i < HUB_SPOKES; i++)
		rc[i] = proc_wait(spoke[i], MP_TIMEOUT_MS);
	rc[HUB_SPOKES] = proc_wait(hub, MP_TIMEOUT_MS);
	for (int i = 0; i <= HUB_SPOKES; i++)
		assert_int_equal(rc[i], 0);
	for (int i = 0; i < HUB_SPOKES; i++)
		assert_int_equal(sh->got[i], HUB_N);
	assert_int_equal(sh->bad, 0);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_bad_args),
	    cmocka_unit_test(test_limits),
	    cmocka_unit_test(test_garbage),
	    cmocka_unit_test(test_stream),
	    cmocka_unit_test(test_reqrep),
	    cmocka_unit_test(test_reqid_wrap),
	    cmocka_unit_test(test_many_peers),
	    cmocka_unit_test(test_slow_receiver),
	    cmocka_unit_test(test_dead_peer_killed),
	    cmocka_unit_test(test_dead_peer_stopped),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
