/*
 * test_rdma_suite.h - the rdma checks every NIC and memory kind must pass,
 * written once and instantiated per configuration by test_rdma_shm.c
 * (one-sided), test_rdma_served.c (served: udp, and shm with unet_mr_reg
 * memory or without a pool) and test_rdma_xdp.c (served over AF_XDP between
 * two network namespaces):
 *
 *   suite_ops        READ/WRITE/CAS/FADD correctness, 256 in flight, the
 *                    257th refused; the target checks its memory after;
 *   suite_atomics    three initiator processes FADD and CAS-increment the
 *                    same words while the owner does local atomics on them:
 *                    the sums are exact;
 *   suite_protect    wrong, forged and revoked keys, offsets and lengths
 *                    outside the region (overflow included), operations the
 *                    region does not permit, misaligned atomics: each
 *                    completes with its error and not one byte moves, in
 *                    the initiator's buffer or in the target's memory.
 *
 * A served target polls (unet_rdma_progress, blocking in unet_msg_idle when
 * idle); a one-sided one never does.
 */
#ifndef TEST_RDMA_SUITE_H
#define TEST_RDMA_SUITE_H

#include <fcntl.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/netns.h"
#include "rdma_wire.h"
#include "test_rdma_util.h"

#define SUITE_POOL   (8u << 20)
#define SUITE_REGION (1u << 20)
#define SUITE_NINIT  3

enum { TARGET = 0, INITIATOR = 1 };

struct cfg {
	const char *nic[2]; /* per side: "shm", "udp:127.0.0.1", "xdp:IFNAME" (the
			       initiator's NULL: the target's) */
	const char *ip[2];  /* udp/xdp: each side's address (NULL: 127.0.0.1) */
	const char *ns[2];  /* each side's network namespace (NULL: ours) */
	size_t pool;	    /* target's shm RDMA pool (0: none) */
	bool reg;	    /* regions from unet_mr_reg rather than unet_mr_alloc */
	bool serve;	    /* the target must poll */
};

/* Shared with the children. Addresses are shm names or udp ports. */
struct shared {
	char taddr[UNET_NAME_MAX], iaddr[SUITE_NINIT][UNET_NAME_MAX];
	uint32_t t_open, i_open[SUITE_NINIT];
	uint64_t key, keys[8];
	uint32_t ready, done, phase, finished;
	uint64_t word_expect[4];
	uint32_t wr_off, wr_len, wr_seed;
	int child_rc;
};

static struct shared *sh;

/* Fresh shared state and shm names for each test. */
static int suite_setup(void **state)
{
	if (!sh)
		sh = proc_shared(sizeof(*sh));
	if (!sh)
		return -1;
	memset(sh, 0, sizeof(*sh));
	proc_name(sh->taddr, sizeof(sh->taddr), "rdt");
	for (int i = 0; i < SUITE_NINIT; i++)
		proc_name(sh->iaddr[i], sizeof(sh->iaddr[i]), "rdi");
	return 0;
}

/* The cmocka process (one side of every test) moves into that side's
 * namespace for the test and back after it, failed assertion or not. */
static int home_ns = -1;

static void ns_go(const struct cfg *c, int side)
{
	if (!c->ns[side])
		return;
	if (home_ns < 0)
		home_ns = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	assert_true(home_ns >= 0);
	assert_int_equal(netns_enter(c->ns[side]), 0);
}

static int suite_teardown(void **state)
{
	if (home_ns >= 0) {
		setns(home_ns, CLONE_NEWNET);
		close(home_ns);
		home_ns = -1;
	}
	return 0;
}

/* A forked side enters its namespace for good. */
static int ns_child(const struct cfg *c, int side)
{
	return c->ns[side] ? netns_enter(c->ns[side]) : 0;
}

static const char *nic_of(const struct cfg *c, int side)
{
	return c->nic[side] ? c->nic[side] : c->nic[TARGET];
}

/* udp and xdp endpoints are named by port, shm ones by name. */
static bool by_port(const struct cfg *c)
{
	return strncmp(c->nic[TARGET], "shm", 3) != 0;
}

/* Address string that reaches `name` (shm name or port) on side `side`. */
static void peer_addr(const struct cfg *c, int side, const char *name, char *out, size_t n)
{
	if (by_port(c))
		snprintf(out, n, "%s:%s", c->ip[side] ? c->ip[side] : "127.0.0.1", name);
	else
		snprintf(out, n, "%s", name);
}

/* Open our node on side `side` and publish its address in `addr`
 * (flagging *flag). */
static int node_up(const struct cfg *c, int side, struct rnode *n, char *addr, uint32_t *flag,
		   size_t pool, const struct unet_rdma_attr *ra)
{
	int rc = rnode_open(n, nic_of(c, side), by_port(c) ? "0" : addr, pool, ra);

	if (rc < 0)
		return rc;
	if (by_port(c))
		snprintf(addr, UNET_NAME_MAX, "%s", n->name);
	proc_set_u32(flag, 1);
	return 0;
}

/* Connect to the peer on side `side` whose address appears in `addr` once
 * *flag is set. */
static int node_connect(const struct cfg *c, int side, struct rnode *n, const char *addr,
			const uint32_t *flag)
{
	char remote[UNET_REMOTE_MAX];

	if (proc_wait_u32(flag, 1, 20000) < 0)
		return -ETIMEDOUT;
	peer_addr(c, side, addr, remote, sizeof(remote));
	return rnode_connect(n, remote);
}

/* A region of `len` bytes with `perms`, the way the configuration says. */
static int region(const struct cfg *c, struct rnode *n, size_t len, unsigned perms,
		  struct unet_mr **mr)
{
	if (!c->reg)
		return unet_mr_alloc(n->r, len, perms, mr);
	void *p = aligned_alloc(64, (len + 63) / 64 * 64);
	if (!p)
		return -ENOMEM;
	memset(p, 0, len);
	int rc = unet_mr_reg(n->r, p, len, perms, mr);
	if (rc < 0)
		free(p);
	return rc;
}

static void region_free(const struct cfg *c, struct rnode *n, struct unet_mr *mr)
{
	void *p = unet_mr_addr(mr);

	unet_mr_revoke(n->r, mr);
	if (c->reg)
		free(p);
}

/* Wait for *flag >= want; a serving target keeps serving meanwhile. */
static int serve_until(const struct cfg *c, struct rnode *n, const uint32_t *flag, uint32_t want,
		       int timeout_ms)
{
	if (!c->serve)
		return proc_wait_u32(flag, want, timeout_ms);
	uint64_t deadline = proc_now_ms() + (uint64_t)timeout_ms;
	while (proc_get_u32(flag) < want) {
		int k = unet_rdma_progress(n->r);
		if (k < 0)
			return k;
		if (k == 0)
			unet_msg_idle(n->mep, 1);
		if (proc_now_ms() > deadline)
			return -ETIMEDOUT;
	}
	return 0;
}

/* ---- suite_ops -------------------------------------------------------------- */

static uint64_t word_of(uint32_t seed, uint64_t byte_off)
{
	uint64_t w;
	uint8_t b[8];

	rfill(b, 8, seed, byte_off);
	memcpy(&w, b, 8);
	return w;
}

/* Target: a region holding pattern 1, its key published; then checks what
 * the initiator did: pattern 2 at [wr_off, wr_off + wr_len), word_expect[]
 * at words 0..3, pattern 1 everywhere else. */
static int ops_target(void *arg)
{
	const struct cfg *c = arg;
	struct rnode n;
	struct unet_mr *mr;
	uint8_t *m;

	if (ns_child(c, TARGET) < 0)
		return 9;
	if (node_up(c, TARGET, &n, sh->taddr, &sh->t_open, c->pool, NULL) < 0)
		return 10;
	if (node_connect(c, INITIATOR, &n, sh->iaddr[0], &sh->i_open[0]) < 0)
		return 11;
	if (region(c, &n, SUITE_REGION, UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC, &mr) < 0)
		return 12;
	m = unet_mr_addr(mr);
	if ((uintptr_t)m % 64)
		return 13;
	for (uint32_t i = 0; i < SUITE_REGION; i++)
		if (m[i])
			return 13;
	rfill(m, SUITE_REGION, 1, 0);
	sh->key = unet_mr_key(mr);
	proc_set_u32(&sh->ready, 1);
	if (serve_until(c, &n, &sh->done, 1, 60000) < 0)
		return 14;
	for (int w = 0; w < 4; w++)
		if (((uint64_t *)m)[w] != sh->word_expect[w])
			return 20 + w;
	if (rcheck(m + 32, sh->wr_off - 32, 1, 32))
		return 30;
	if (rcheck(m + sh->wr_off, sh->wr_len, sh->wr_seed, 0))
		return 31;
	uint32_t end = sh->wr_off + sh->wr_len;
	if (rcheck(m + end, SUITE_REGION - end, 1, end))
		return 32;
	region_free(c, &n, mr);
	rnode_close(&n);
	return 0;
}

/* Everything the initiator does to the target's region. */
static void ops_exercise(struct rnode *n, int ch, uint64_t key)
{
	static uint8_t buf[SUITE_REGION + 64];
	static uint64_t w8[256];
	struct unet_rdma_comp c[300];
	uint64_t old;

	/* Reads of many sizes and alignments (served ones cross chunks). */
	const uint32_t lens[] = {0,    1,     7,     8,	    63,	    64,		 65,
				 4096, 32768, 32769, 65536, 100000, SUITE_REGION};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint64_t off = lens[i] == SUITE_REGION ? 0 : (i * 4099) % (SUITE_REGION - lens[i]);
		memset(buf, 0xee, lens[i] + 1);
		assert_int_equal(rread(n->r, (unsigned)ch, key, off, buf, lens[i]), 0);
		assert_int_equal(rcheck(buf, lens[i], 1, off), 0);
		assert_int_equal(buf[lens[i]], 0xee); /* not one byte more */
	}

	/* Many in flight: 256 reads posted before any poll, the next refused. */
	for (int i = 0; i < 256; i++)
		assert_int_equal(unet_rdma_read(n->r, (unsigned)ch, key, 64 + (uint64_t)i * 8,
						&w8[i], 8, 1000 + (uint64_t)i),
				 0);
	assert_int_equal(unet_rdma_read(n->r, (unsigned)ch, key, 0, buf, 8, 1), -EAGAIN);
	assert_int_equal(rwait(n->r, c, 256, 10000), 256);
	for (int i = 0; i < 256; i++) {
		assert_int_equal(c[i].status, 0);
		assert_int_equal(c[i].op, UNET_RDMA_READ);
		uint64_t k = c[i].wr_id - 1000;
		assert_true(k < 256);
		assert_int_equal(w8[k], word_of(1, 64 + k * 8));
	}

	/* A write, read back. */
	sh->wr_off = 8192 + 4;
	sh->wr_len = 70000;
	sh->wr_seed = 2;
	rfill(buf, sh->wr_len, 2, 0);
	assert_int_equal(rwrite(n->r, (unsigned)ch, key, sh->wr_off, buf, sh->wr_len), 0);
	memset(buf, 0, sh->wr_len);
	assert_int_equal(rread(n->r, (unsigned)ch, key, sh->wr_off, buf, sh->wr_len), 0);
	assert_int_equal(rcheck(buf, sh->wr_len, 2, 0), 0);
	assert_int_equal(rwrite(n->r, (unsigned)ch, key, 5, buf, 0), 0); /* empty */
	/* 64 writes of 4 KiB in flight at once (more than a served channel's
	 * window: some wait for room), then read back in one go. */
	static uint8_t big[64][4096];
	for (int i = 0; i < 64; i++) {
		rfill(big[i], 4096, 2, (uint64_t)i * 4096);
		assert_int_equal(unet_rdma_write(n->r, (unsigned)ch, key,
						 sh->wr_off + (uint64_t)i * 4096, big[i], 4096,
						 (uint64_t)i),
				 0);
	}
	assert_int_equal(rwait(n->r, c, 64, 10000), 64);
	for (int i = 0; i < 64; i++)
		assert_int_equal(c[i].status, 0);
	sh->wr_len = 64 * 4096; /* covers the first write: all pattern 2 now */
	memset(buf, 0, sh->wr_len);
	assert_int_equal(rread(n->r, (unsigned)ch, key, sh->wr_off, buf, sh->wr_len), 0);
	assert_int_equal(rcheck(buf, sh->wr_len, 2, 0), 0);

	/* Atomics on words 0..3. */
	uint64_t w0 = word_of(1, 0);
	assert_int_equal(rcas(n->r, (unsigned)ch, key, 0, w0 + 1, 5, &old), 0);
	assert_int_equal(old, w0); /* failed: value is the old word */
	assert_int_equal(rcas(n->r, (unsigned)ch, key, 0, w0, 0x1234, &old), 0);
	assert_int_equal(old, w0);
	assert_int_equal(rfadd(n->r, (unsigned)ch, key, 0, 5, &old), 0);
	assert_int_equal(old, 0x1234);
	sh->word_expect[0] = 0x1239;
	uint64_t w1 = word_of(1, 8);
	assert_int_equal(rfadd(n->r, (unsigned)ch, key, 8, UINT64_MAX, &old), 0); /* -1 */
	assert_int_equal(old, w1);
	sh->word_expect[1] = w1 - 1;
	/* Pipelined atomics on word 2: 200 FADDs of 3 in flight at once. */
	assert_int_equal(rcas(n->r, (unsigned)ch, key, 16, word_of(1, 16), 0, &old), 0);
	for (int i = 0; i < 200; i++)
		assert_int_equal(unet_rdma_fadd(n->r, (unsigned)ch, key, 16, 3, (uint64_t)i), 0);
	assert_int_equal(rwait(n->r, c, 200, 10000), 200);
	uint8_t seen[200] = {0};
	for (int i = 0; i < 200; i++) {
		assert_int_equal(c[i].status, 0);
		assert_int_equal(c[i].op, UNET_RDMA_FADD);
		assert_true(c[i].value % 3 == 0 && c[i].value < 600);
		assert_int_equal(seen[c[i].value / 3]++, 0); /* each old value once */
	}
	sh->word_expect[2] = 600;
	sh->word_expect[3] = word_of(1, 24);
}

/* /proc/PID/stat state letter. */
static char proc_state(pid_t pid)
{
	char path[64], buf[512];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	char *p = strrchr(buf, ')');
	return p && p[1] ? p[2] : '?';
}

/* `stop`: SIGSTOP the target for the whole exercise (one-sided only). */
static void suite_ops(const struct cfg *c, bool stop)
{
	struct rnode n;
	pid_t pid = proc_fork(ops_target, (void *)c);

	assert_true(pid > 0);
	ns_go(c, INITIATOR);
	assert_int_equal(node_up(c, INITIATOR, &n, sh->iaddr[0], &sh->i_open[0], 0,
				 &(struct unet_rdma_attr){.cq_depth = 256}),
			 0);
	int ch = node_connect(c, TARGET, &n, sh->taddr, &sh->t_open);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->ready, 1, 20000), 0);
	if (stop) {
		assert_int_equal(kill(pid, SIGSTOP), 0);
		for (int i = 0; i < 2000 && proc_state(pid) != 'T'; i++)
			usleep(1000);
		assert_int_equal(proc_state(pid), 'T');
	}
	ops_exercise(&n, ch, sh->key);
	if (stop) {
		assert_int_equal(proc_state(pid), 'T'); /* still stopped: nobody served us */
		assert_int_equal(kill(pid, SIGCONT), 0);
	}
	proc_set_u32(&sh->done, 1);
	assert_int_equal(proc_wait(pid, 20000), 0);
	rnode_close(&n);
}

/* ---- suite_atomics ------------------------------------------------------------ */

#define FADDS 20000
#define CASES 2000
#define LOCAL 20000

struct init_arg {
	const struct cfg *c;
	int idx;
};

/* FADD (add = idx + 1) on word 0, 32 in flight at a time, then
 * CAS-increment word 1, retrying on conflict. */
static int atomics_initiator(void *arg)
{
	const struct init_arg *a = arg;
	const struct cfg *c = a->c;
	struct rnode n;
	struct unet_rdma_comp comp[32];
	uint64_t old;
	int fadds = c->serve ? FADDS / 10 : FADDS, cases = c->serve ? CASES / 10 : CASES;

	if (ns_child(c, INITIATOR) < 0)
		return 9;
	if (node_up(c, INITIATOR, &n, sh->iaddr[a->idx], &sh->i_open[a->idx], 0, NULL) < 0)
		return 10;
	int ch = node_connect(c, TARGET, &n, sh->taddr, &sh->t_open);
	if (ch < 0)
		return 11;
	if (proc_wait_u32(&sh->ready, 1, 20000) < 0)
		return 12;
	for (int done = 0; done < fadds;) {
		int batch = fadds - done < 32 ? fadds - done : 32;
		for (int i = 0; i < batch; i++)
			if (unet_rdma_fadd(n.r, (unsigned)ch, sh->key, 0, (uint64_t)a->idx + 1, 0) <
			    0)
				return 13;
		if (rwait(n.r, comp, batch, 20000) != batch)
			return 14;
		for (int i = 0; i < batch; i++)
			if (comp[i].status)
				return 15;
		done += batch;
	}
	uint64_t cur = 0;
	for (int i = 0; i < cases; i++) {
		for (;;) {
			if (rcas(n.r, (unsigned)ch, sh->key, 8, cur, cur + 1, &old) != 0)
				return 16;
			if (old == cur)
				break;
			cur = old;
		}
		cur++;
	}
	__atomic_fetch_add(&sh->finished, 1, __ATOMIC_ACQ_REL);
	/* A served target must keep serving until everyone is through. */
	if (proc_wait_u32(&sh->done, 1, 60000) < 0)
		return 17;
	rnode_close(&n);
	return 0;
}

static void suite_atomics(const struct cfg *c)
{
	struct rnode n;
	struct unet_mr *mr;
	pid_t pids[SUITE_NINIT];
	struct init_arg args[SUITE_NINIT];
	int fadds = c->serve ? FADDS / 10 : FADDS, cases = c->serve ? CASES / 10 : CASES;

	for (int i = 0; i < SUITE_NINIT; i++) {
		args[i] = (struct init_arg){c, i};
		pids[i] = proc_fork(atomics_initiator, &args[i]);
		assert_true(pids[i] > 0);
	}
	ns_go(c, TARGET);
	assert_int_equal(node_up(c, TARGET, &n, sh->taddr, &sh->t_open, c->pool, NULL), 0);
	for (int i = 0; i < SUITE_NINIT; i++)
		assert_true(node_connect(c, INITIATOR, &n, sh->iaddr[i], &sh->i_open[i]) >= 0);
	assert_int_equal(region(c, &n, 4096, UNET_MR_READ | UNET_MR_ATOMIC, &mr), 0);
	uint64_t *w = unet_mr_addr(mr);
	sh->key = unet_mr_key(mr);
	proc_set_u32(&sh->ready, 1);
	/* The owner's own atomics on the same words: FADDs for as long as the
	 * initiators run, CAS-increments for the first CASES rounds only (a
	 * local CAS per round would starve remote CAS loops, whose round trip
	 * is longer), serving them meanwhile when it must. */
	uint64_t local = 0, deadline = proc_now_ms() + 60000;
	while (local < LOCAL || proc_get_u32(&sh->finished) < SUITE_NINIT) {
		__atomic_fetch_add(&w[0], 7, __ATOMIC_SEQ_CST);
		uint64_t cur = __atomic_load_n(&w[1], __ATOMIC_RELAXED);
		while (local < CASES &&
		       !__atomic_compare_exchange_n(&w[1], &cur, cur + 1, false, __ATOMIC_SEQ_CST,
						    __ATOMIC_RELAXED))
			;
		local++;
		if (c->serve)
			unet_rdma_progress(n.r);
		else if (local % 1000 == 0)
			sched_yield();
		assert_true(proc_now_ms() < deadline);
	}
	proc_set_u32(&sh->done, 1);
	for (int i = 0; i < SUITE_NINIT; i++)
		assert_int_equal(proc_wait(pids[i], 20000), 0);
	uint64_t want = local * 7;
	for (int i = 0; i < SUITE_NINIT; i++)
		want += (uint64_t)fadds * (uint64_t)(i + 1);
	assert_int_equal(w[0], want);
	assert_int_equal(w[1], (uint64_t)CASES + (uint64_t)cases * SUITE_NINIT);
	region_free(c, &n, mr);
	rnode_close(&n);
}

/* ---- suite_protect --------------------------------------------------------------- */

enum { K_RWA, K_RO, K_RW, K_WO, K_REVOKED, K_N };
#define PROT_LEN 4096u

static const unsigned prot_perms[K_N] = {
    UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC,
    UNET_MR_READ,
    UNET_MR_READ | UNET_MR_WRITE,
    UNET_MR_WRITE,
    UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC,
};

/* Target: five regions with distinct patterns (the fifth revoked before
 * anyone sees it); after the initiator is done, every live region must
 * still hold exactly its pattern. */
static int protect_target(void *arg)
{
	const struct cfg *c = arg;
	struct rnode n;
	struct unet_mr *mr[K_N];

	if (ns_child(c, TARGET) < 0)
		return 9;
	if (node_up(c, TARGET, &n, sh->taddr, &sh->t_open, c->pool, NULL) < 0)
		return 10;
	if (node_connect(c, INITIATOR, &n, sh->iaddr[0], &sh->i_open[0]) < 0)
		return 11;
	for (int k = 0; k < K_N; k++) {
		if (region(c, &n, PROT_LEN, prot_perms[k], &mr[k]) < 0)
			return 12;
		rfill(unet_mr_addr(mr[k]), PROT_LEN, 10 + (uint32_t)k, 0);
		sh->keys[k] = unet_mr_key(mr[k]);
	}
	region_free(c, &n, mr[K_REVOKED]);
	proc_set_u32(&sh->ready, 1);
	if (serve_until(c, &n, &sh->done, 1, 60000) < 0)
		return 13;
	for (int k = 0; k < K_REVOKED; k++)
		if (rcheck(unet_mr_addr(mr[k]), PROT_LEN, 10 + (uint32_t)k, 0))
			return 20 + k;
	for (int k = 0; k < K_REVOKED; k++)
		region_free(c, &n, mr[k]);
	rnode_close(&n);
	return 0;
}

#define SENTINEL 0xa5

static void sentinel_check(const uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (b[i] != SENTINEL)
			fail_msg("initiator buffer byte %zu changed by a failed operation", i);
}

/* One READ and one WRITE against (key, off, len), both expected to fail
 * with `want`, neither touching our buffer. */
static void expect_rw(struct rnode *n, int ch, uint64_t key, uint64_t off, uint32_t len, int want_r,
		      int want_w)
{
	static uint8_t buf[65536 + 64];

	memset(buf, SENTINEL, len + 64);
	if (want_r != 1)
		assert_int_equal(rread(n->r, (unsigned)ch, key, off, buf, len), want_r);
	sentinel_check(buf, len + 64);
	if (want_w != 1)
		assert_int_equal(rwrite(n->r, (unsigned)ch, key, off, buf, len), want_w);
	sentinel_check(buf, len + 64);
}

static void expect_atomics(struct rnode *n, int ch, uint64_t key, uint64_t off, int want)
{
	uint64_t old = 77;

	assert_int_equal(rcas(n->r, (unsigned)ch, key, off, 0, 1, &old), want);
	assert_int_equal(rfadd(n->r, (unsigned)ch, key, off, 1, &old), want);
}

static void suite_protect(const struct cfg *c)
{
	struct rnode n;
	pid_t pid = proc_fork(protect_target, (void *)c);
	uint64_t *k = sh->keys;

	assert_true(pid > 0);
	ns_go(c, INITIATOR);
	assert_int_equal(node_up(c, INITIATOR, &n, sh->iaddr[0], &sh->i_open[0], 0, NULL), 0);
	int ch = node_connect(c, TARGET, &n, sh->taddr, &sh->t_open);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->ready, 1, 20000), 0);

	/* Wrong keys: a flipped tag bit, another slot, the one-sided flag
	 * toggled, zero, all ones; and a revoked key. */
	const uint64_t bad[] = {k[K_RWA] ^ (1ull << 40),
				k[K_RWA] ^ (1ull << 63),
				(k[K_RWA] & ~0x7fffffull) | 900,
				0,
				UINT64_MAX,
				k[K_REVOKED],
				k[K_RWA] ^ (1ull << 23)};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		/* A key without the one-sided flag is sent to the target to
		 * judge, which only a serving target does. */
		if (!c->serve && !(bad[i] & RDMA_KEY_ONESIDED))
			continue;
		expect_rw(&n, ch, bad[i], 0, 64, -EACCES, -EACCES);
		expect_atomics(&n, ch, bad[i], 0, -EACCES);
	}
	/* Outside the region, overflow included. */
	const struct {
		uint64_t off;
		uint32_t len;
	} out[] = {{PROT_LEN, 1},	{PROT_LEN - 63, 64}, {PROT_LEN + 1, 0}, {1ull << 40, 8},
		   {UINT64_MAX - 3, 8}, {UINT64_MAX, 1},     {8, 65536},	{0, PROT_LEN + 1}};
	for (size_t i = 0; i < sizeof(out) / sizeof(out[0]); i++)
		expect_rw(&n, ch, k[K_RWA], out[i].off, out[i].len, -ERANGE, -ERANGE);
	expect_atomics(&n, ch, k[K_RWA], PROT_LEN, -ERANGE);
	expect_atomics(&n, ch, k[K_RWA], UINT64_MAX - 7, -ERANGE);
	/* Not permitted. */
	expect_rw(&n, ch, k[K_RO], 0, 64, 1, -EACCES); /* read-only written */
	expect_rw(&n, ch, k[K_WO], 0, 64, -EACCES, 1); /* write-only read */
	expect_atomics(&n, ch, k[K_RO], 0, -EACCES);   /* no atomics */
	expect_atomics(&n, ch, k[K_RW], 0, -EACCES);
	expect_atomics(&n, ch, k[K_WO], 0, -EACCES);
	/* Misaligned atomics. */
	expect_atomics(&n, ch, k[K_RWA], 4, -EINVAL);
	expect_atomics(&n, ch, k[K_RWA], 1, -EINVAL);
	/* The edges that are allowed still work (and only they moved bytes:
	 * a write of the region's own pattern changes nothing). */
	uint8_t edge[8];
	assert_int_equal(rread(n.r, (unsigned)ch, k[K_RO], PROT_LEN - 8, edge, 8), 0);
	assert_int_equal(rcheck(edge, 8, 10 + K_RO, PROT_LEN - 8), 0);
	assert_int_equal(rread(n.r, (unsigned)ch, k[K_RWA], PROT_LEN, edge, 0), 0);
	rfill(edge, 8, 10 + K_WO, PROT_LEN - 8);
	assert_int_equal(rwrite(n.r, (unsigned)ch, k[K_WO], PROT_LEN - 8, edge, 8), 0);
	uint64_t old;
	uint64_t w = word_of(10 + K_RWA, PROT_LEN - 8);
	assert_int_equal(rcas(n.r, (unsigned)ch, k[K_RWA], PROT_LEN - 8, w, w, &old), 0);
	assert_int_equal(old, w);
	assert_int_equal(rfadd(n.r, (unsigned)ch, k[K_RWA], PROT_LEN - 8, 0, &old), 0);
	assert_int_equal(old, w);

	proc_set_u32(&sh->done, 1);
	assert_int_equal(proc_wait(pid, 20000), 0); /* the target found its memory intact */
	rnode_close(&n);
}

#endif /* TEST_RDMA_SUITE_H */
