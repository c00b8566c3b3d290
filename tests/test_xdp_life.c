/* test_xdp_life.c - the life cycle of the XDP program behind xdp endpoints:
 * attached while an endpoint is open and detached when it closes; a process
 * killed -9 with an endpoint open leaves its program behind, and the next
 * endpoint on that interface sweeps it and starts; several endpoints on one
 * interface, one RX queue each (veth with two queues, native mode: the
 * peer's tx queue k lands on our rx queue k), in different processes, share
 * the program, each gets only its own traffic, and only the last one out
 * detaches it; a taken queue, a taken port or a conflicting mode is refused.
 * Needs root; says "skipped: <reason>" otherwise. */
#include <errno.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <cmocka.h>

#include "helpers/net_peer.h"
#include "helpers/netns.h"
#include "helpers/proc.h"
#include "unet/unet.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "[%d] %s:%d: check failed: %s\n", (int)getpid(),   \
				__FILE__, __LINE__, #cond);                                \
			return __LINE__ % 200 + 1;                                         \
		}                                                                          \
	} while (0)

struct shared {
	uint32_t ready[4];
	uint32_t go[4];
	uint32_t done[4];
	char info[4][256];
};

static struct netns_pair P;
static struct shared *S;

static int setup_pair(unsigned queues)
{
	struct netns_opts o = {.queues = queues};
	const char *why = netns_unavailable();
	int rc;

	if (why) {
		printf("skipped: %s\n", why);
		return -1;
	}
	rc = netns_pair_create(&P, &o);
	if (rc < 0) {
		printf("skipped: cannot create namespaces: %s\n", strerror(-rc));
		return -1;
	}
	S = proc_shared(sizeof(*S));
	return 0;
}

static int teardown(void **state)
{
	netns_pair_destroy(&P);
	if (S)
		proc_unshare(S, sizeof(*S));
	S = NULL;
	return 0;
}

/* Is an XDP program attached to dev[side]? Asked from outside, with ip(8). */
static int xdp_attached(int side)
{
	char out[2048];
	int rc = netns_sh(NULL, out, sizeof(out), "ip -n %s -d link show dev %s", P.ns[side],
			  P.dev[side]);

	assert_int_equal(rc, 0);
	return strstr(out, "prog/xdp") != NULL || strstr(out, " xdp") != NULL;
}

static void uri_of(char *uri, size_t n, int side, const char *opts)
{
	snprintf(uri, n, "xdp:%s%s", P.dev[side], opts);
}

/* ---- attach on create, detach on close, sweep after kill -9 ---------------- */

static int hold_child(void *arg)
{
	int k = (int)(intptr_t)arg;
	struct np p;
	char uri[64];

	uri_of(uri, sizeof(uri), 0, "");
	int rc = np_open(&p, uri, "7000", NULL);
	if (rc < 0)
		fprintf(stderr, "hold %d: %s\n", k, unet_strerror(rc));
	CHECK(rc == 0);
	unet_ep_info(p.ep, S->info[k], sizeof(S->info[k]));
	proc_set_u32(&S->ready[k], 1);
	CHECK(proc_wait_u32(&S->go[k], 1, 20000) == 0);
	np_close(&p);
	return 0;
}

static void test_close_detaches(void **state)
{
	if (setup_pair(0) < 0) {
		skip();
		return;
	}
	assert_false(xdp_attached(0));
	pid_t c = netns_fork(P.ns[0], hold_child, (void *)(intptr_t)0);
	assert_int_equal(proc_wait_u32(&S->ready[0], 1, 10000), 0);
	assert_true(xdp_attached(0));
	proc_set_u32(&S->go[0], 1);
	assert_int_equal(proc_wait(c, 10000), 0);
	assert_false(xdp_attached(0));
}

static void test_kill9_then_restart(void **state)
{
	if (setup_pair(0) < 0) {
		skip();
		return;
	}
	pid_t c = netns_fork(P.ns[0], hold_child, (void *)(intptr_t)0);
	assert_int_equal(proc_wait_u32(&S->ready[0], 1, 10000), 0);
	proc_kill(c);
	/* The dead process's program is still there... */
	assert_true(xdp_attached(0));
	/* ...and does not stop the next endpoint, on the same queue and port. */
	c = netns_fork(P.ns[0], hold_child, (void *)(intptr_t)1);
	assert_int_equal(proc_wait_u32(&S->ready[1], 1, 10000), 0);
	printf("  after kill -9: %s\n", S->info[1]);
	assert_true(xdp_attached(0));
	proc_set_u32(&S->go[1], 1);
	assert_int_equal(proc_wait(c, 10000), 0);
	assert_false(xdp_attached(0));
}

/* ---- several endpoints on one interface ------------------------------------- */

#define ROUNDS 300

struct pinger {
	int k;         /* shared-state slot */
	unsigned queue;
	unsigned port; /* ours; the peer uses the same number */
};

/* Side 0: one endpoint per process, ping ROUNDS messages, then wait for
 * go[k]; if go[k] is 2, ping once more (to prove it still works after its
 * neighbour left). */
static int pinger(void *arg)
{
	const struct pinger *a = arg;
	struct np p;
	char uri[64], port[16], opts[32];
	struct unet_desc in;
	int ch;

	snprintf(opts, sizeof(opts), "?queue=%u&mode=native", a->queue);
	uri_of(uri, sizeof(uri), 0, opts);
	snprintf(port, sizeof(port), "%u", a->port);
	CHECK(np_open(&p, uri, port, NULL) == 0);
	unet_ep_info(p.ep, S->info[a->k], sizeof(S->info[a->k]));
	CHECK((ch = np_chan(&p, P.ip[1], a->port, 2000)) >= 0);
	proc_set_u32(&S->ready[a->k], 1);
	CHECK(proc_wait_u32(&S->ready[3], 1, 10000) == 0); /* the echo side is up */
	for (int phase = 0; phase < 2; phase++) {
		for (int r = 0; r < ROUNDS; r++) {
			struct unet_desc d = {.chan = (uint16_t)ch, .len = 200, .off = 0};
			np_fill(p.seg, d.len, (uint64_t)r * 7 + a->port);
			CHECK(np_send(&p, &d, 2000) == 0);
			if (np_recv(&p, &in, 1, 2000) != 1) {
				struct unet_stats st;
				unet_get_stats(p.ep, &st);
				fprintf(stderr, "queue %u round %d: nothing back (nobuf %llu tx %llu)\n",
					a->queue, r, (unsigned long long)st.rx_drop_nobuf,
					(unsigned long long)st.tx_msgs);
				return 99;
			}
			CHECK(in.len == 200 && in.chan == ch);
			CHECK(np_check(np_payload(&p, &in), 200, (uint64_t)r * 7 + a->port) == 0);
			CHECK(unet_release(p.ep, &in, 1) == 0);
			struct unet_comp c[4];
			unet_poll_comp(p.ep, c, 4); /* or the NIC stalls, as it must */
		}
		proc_set_u32(&S->done[a->k], (uint32_t)phase + 1);
		CHECK(proc_wait_u32(&S->go[a->k], 1, 20000) == 0);
		if (proc_get_u32(&S->go[a->k]) != 2)
			break;
	}
	struct unet_stats st;
	unet_get_stats(p.ep, &st);
	CHECK(st.rx_drop_nochan == 0 && st.rx_drop_bad == 0);
	np_close(&p);
	return 0;
}

/* Side 1: two endpoints in one process (queues 0 and 1), echoing. */
static int echoer(void *arg)
{
	struct np p[2];
	int ch[2];
	char uri[64], port[16];
	struct unet_desc d[8];

	for (int q = 0; q < 2; q++) {
		snprintf(uri, sizeof(uri), "xdp:%s?queue=%d&mode=native", P.dev[1], q);
		snprintf(port, sizeof(port), "%d", 7000 + 100 * q);
		CHECK(np_open(&p[q], uri, port, NULL) == 0);
		CHECK((ch[q] = np_chan(&p[q], P.ip[0], 7000u + 100u * (unsigned)q, 2000)) >= 0);
	}
	/* Same port, other queue: the port is taken. */
	struct np x;
	snprintf(uri, sizeof(uri), "xdp:%s?queue=1", P.dev[1]);
	CHECK(np_open(&x, uri, "7000", NULL) == -EADDRINUSE);
	proc_set_u32(&S->ready[3], 1);
	while (!proc_get_u32(&S->go[3])) {
		for (int q = 0; q < 2; q++) {
			int n = unet_recv(p[q].ep, d, 8);
			for (int i = 0; i < n; i++) {
				struct unet_desc out = d[i];
				CHECK(d[i].chan == ch[q]);
				memcpy(p[q].seg, np_payload(&p[q], &d[i]), d[i].len);
				out.off = 0;
				out.flags = 0;
				CHECK(unet_release(p[q].ep, &d[i], 1) == 0);
				CHECK(np_send(&p[q], &out, 2000) == 0);
				struct unet_comp c[8];
				unet_poll_comp(p[q].ep, c, 8);
			}
		}
		usleep(20);
	}
	for (int q = 0; q < 2; q++) {
		struct unet_stats st;
		unet_get_stats(p[q].ep, &st);
		if (st.rx_drop_nobuf || st.rx_drop_nochan || st.rx_drop_bad)
			fprintf(stderr, "echo queue %d: rx %llu nobuf %llu nochan %llu bad %llu\n", q,
				(unsigned long long)st.rx_msgs, (unsigned long long)st.rx_drop_nobuf,
				(unsigned long long)st.rx_drop_nochan,
				(unsigned long long)st.rx_drop_bad);
		np_close(&p[q]);
	}
	return 0;
}

static int refused_child(void *arg)
{
	struct np p;
	char uri[64];

	uri_of(uri, sizeof(uri), 0, "?queue=0");
	CHECK(np_open(&p, uri, "7300", NULL) == -EBUSY); /* queue 0 is taken */
	uri_of(uri, sizeof(uri), 0, "?queue=1&mode=generic");
	CHECK(np_open(&p, uri, "7300", NULL) == -EBUSY); /* the program runs native */
	return 0;
}

static void test_two_queues_two_processes(void **state)
{
	struct pinger a0 = {.k = 0, .queue = 0, .port = 7000};
	struct pinger a1 = {.k = 1, .queue = 1, .port = 7100};

	if (setup_pair(2) < 0) {
		skip();
		return;
	}
	pid_t e = netns_fork(P.ns[1], echoer, NULL);
	if (proc_wait_u32(&S->ready[3], 1, 10000) != 0) {
		int rc = proc_wait(e, 1000);
		printf("skipped: native XDP with two queues unavailable here (%d)\n", rc);
		skip();
		return;
	}
	pid_t c0 = netns_fork(P.ns[0], pinger, &a0);
	pid_t c1 = netns_fork(P.ns[0], pinger, &a1);
	assert_int_equal(proc_wait_u32(&S->done[0], 1, 20000), 0);
	assert_int_equal(proc_wait_u32(&S->done[1], 1, 20000), 0);
	printf("  %s\n  %s\n", S->info[0], S->info[1]);
	assert_int_equal(netns_run(P.ns[0], refused_child, NULL, 10000), 0);
	/* The first leaves; the program stays for the second, which still works. */
	proc_set_u32(&S->go[0], 1);
	assert_int_equal(proc_wait(c0, 10000), 0);
	assert_true(xdp_attached(0));
	proc_set_u32(&S->go[1], 2);
	assert_int_equal(proc_wait_u32(&S->done[1], 2, 20000), 0);
	proc_set_u32(&S->go[1], 1);
	assert_int_equal(proc_wait(c1, 10000), 0);
	assert_false(xdp_attached(0));
	proc_set_u32(&S->go[3], 1);
	assert_int_equal(proc_wait(e, 10000), 0);
	assert_false(xdp_attached(1));
}

/* ---- locked memory without CAP_IPC_LOCK ------------------------------------ */

/* Drop CAP_IPC_LOCK from the effective set, so the UMEM is charged against
 * RLIMIT_MEMLOCK as it is for a process without it. */
static int drop_ipc_lock(void)
{
	struct {
		uint32_t version;
		int pid;
	} hdr = {0x20080522 /* _LINUX_CAPABILITY_VERSION_3 */, 0};
	struct {
		uint32_t effective, permitted, inheritable;
	} data[2];

	if (syscall(SYS_capget, &hdr, data) < 0)
		return -errno;
	data[0].effective &= ~(1u << 14); /* CAP_IPC_LOCK */
	return syscall(SYS_capset, &hdr, data) < 0 ? -errno : 0;
}

static int memlock_child(void *arg)
{
	struct np p;
	char uri[64];
	struct rlimit rl;
	struct unet_ep_attr huge = {.seg_size = 64u << 20};

	CHECK(getrlimit(RLIMIT_MEMLOCK, &rl) == 0);
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > (64u << 20))
		return 77; /* nothing to be charged against here */
	uri_of(uri, sizeof(uri), 0, "");
	/* with CAP_IPC_LOCK the UMEM is not charged at all */
	CHECK(np_open(&p, uri, "7000", &huge) == 0);
	np_close(&p);
	CHECK(drop_ipc_lock() == 0);
	/* the defaults fit the limit... (the kernel unbinds the queue of the
	 * socket just closed lazily, and releases locked memory lazily too:
	 * on a loaded machine that can outlast the NIC's own 2 s retry, so
	 * -EBUSY and -ENOMEM are waited out here, for up to 5 s; a segment
	 * that truly exceeds the limit is checked below) */
	int rc;
	for (int tries = 0;
	     ((rc = np_open(&p, uri, "7000", NULL)) == -EBUSY || rc == -ENOMEM) && tries < 50;
	     tries++)
		usleep(100000);
	CHECK(rc == 0);
	np_close(&p);
	/* ...a segment beyond it is refused cleanly */
	CHECK(np_open(&p, uri, "7000", &huge) == -ENOMEM);
	return 0;
}

static void test_memlock_without_ipc_lock(void **state)
{
	if (setup_pair(0) < 0) {
		skip();
		return;
	}
	int rc = netns_run(P.ns[0], memlock_child, NULL, 20000);
	if (rc == 77) {
		printf("skipped: RLIMIT_MEMLOCK is unlimited or large here\n");
		skip();
		return;
	}
	assert_int_equal(rc, 0);
	assert_false(xdp_attached(0));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_close_detaches, teardown),
		cmocka_unit_test_teardown(test_kill9_then_restart, teardown),
		cmocka_unit_test_teardown(test_two_queues_two_processes, teardown),
		cmocka_unit_test_teardown(test_memlock_without_ipc_lock, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
