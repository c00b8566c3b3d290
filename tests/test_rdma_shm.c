/* test_rdma_shm.c - one-sided operations on the shm NIC: READ/WRITE/CAS/FADD
 * correctness with many in flight; truly one-sided (the target is stopped
 * with SIGSTOP and everything still completes); fetch-and-add and CAS from
 * three processes plus the owner's local atomics on the same words sum
 * exactly; revocation (immediate for later operations, memory comes back
 * zeroed, quarantined while an initiator may be inside an access); peers
 * without an rdma layer, closed and dead channels. */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>
#include <cmocka.h>

#include "nic.h"
#include "rdma_wire.h"
#include "test_rdma_util.h"

#define POOL (8u << 20)
#define REGION (1u << 20)

struct shared {
	char tname[UNET_NAME_MAX], iname[UNET_NAME_MAX];
	uint64_t key;
	uint32_t ready, done, phase;
	uint64_t word_expect[4];
	uint32_t wr_off, wr_len, wr_seed;
};

static struct shared *sh;

/* Each test starts from clean shared state and fresh endpoint names. */
static int setup(void **state)
{
	if (!sh)
		sh = proc_shared(sizeof(*sh));
	if (!sh)
		return -1;
	memset(sh, 0, sizeof(*sh));
	proc_name(sh->tname, sizeof(sh->tname), "rdt");
	proc_name(sh->iname, sizeof(sh->iname), "rdi");
	return 0;
}

static int teardown(void **state)
{
	return 0;
}

/* Target: a region of REGION bytes holding pattern 1, its key published;
 * waits (never polling rdma) until told, then checks what the initiator
 * did to it: pattern 2 at [wr_off, wr_off + wr_len), word_expect[] at
 * words 0..3, pattern 1 everywhere else. */
static int target_main(void *arg)
{
	struct rnode n;
	struct unet_mr *mr;
	uint8_t *m;

	if (rnode_open(&n, "shm", sh->tname, POOL, NULL) < 0)
		return 10;
	if (rnode_connect(&n, sh->iname) < 0)
		return 11;
	if (unet_mr_alloc(n.r, REGION, UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC, &mr) < 0)
		return 12;
	m = unet_mr_addr(mr);
	if ((uintptr_t)m % 64)
		return 13;
	for (uint32_t i = 0; i < REGION; i++)
		if (m[i])
			return 13;
	rfill(m, REGION, 1, 0);
	sh->key = unet_mr_key(mr);
	proc_set_u32(&sh->ready, 1);
	if (proc_wait_u32(&sh->done, 1, 30000) < 0)
		return 14;
	for (int w = 0; w < 4; w++)
		if (((uint64_t *)m)[w] != sh->word_expect[w])
			return 20 + w;
	if (rcheck(m + 32, sh->wr_off - 32, 1, 32))
		return 30;
	if (rcheck(m + sh->wr_off, sh->wr_len, sh->wr_seed, 0))
		return 31;
	uint32_t end = sh->wr_off + sh->wr_len;
	if (rcheck(m + end, REGION - end, 1, end))
		return 32;
	rnode_close(&n);
	return 0;
}

static uint64_t word_of(uint32_t seed, uint64_t byte_off)
{
	uint64_t w;
	uint8_t b[8];

	rfill(b, 8, seed, byte_off);
	memcpy(&w, b, 8);
	return w;
}

/* Everything the initiator does to the target's region; also used while
 * the target is stopped. */
static void exercise(struct rnode *n, int ch, uint64_t key)
{
	static uint8_t buf[REGION + 64];
	struct unet_rdma_comp c[300];
	uint64_t old;

	/* Reads of many sizes and alignments. */
	const uint32_t lens[] = {1, 7, 8, 63, 64, 65, 4096, 65536, REGION};
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		uint64_t off = lens[i] == REGION ? 0 : (i * 4099) % (REGION - lens[i]);
		memset(buf, 0xee, lens[i] + 1);
		assert_int_equal(rread(n->r, (unsigned)ch, key, off, buf, lens[i]), 0);
		assert_int_equal(rcheck(buf, lens[i], 1, off), 0);
		assert_int_equal(buf[lens[i]], 0xee); /* not one byte more */
	}

	/* Many in flight: 256 reads posted before any poll, the next refused. */
	static uint64_t w8[256];
	for (int i = 0; i < 256; i++)
		assert_int_equal(unet_rdma_read(n->r, (unsigned)ch, key, 64 + (uint64_t)i * 8,
						&w8[i], 8, 1000 + (uint64_t)i),
				 0);
	assert_int_equal(unet_rdma_read(n->r, (unsigned)ch, key, 0, buf, 8, 1), -EAGAIN);
	assert_int_equal(rwait(n->r, c, 256, 5000), 256);
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
	assert_int_equal(rwait(n->r, c, 200, 5000), 200);
	uint8_t seen[200] = {0};
	for (int i = 0; i < 200; i++) {
		assert_int_equal(c[i].status, 0);
		assert_true(c[i].value % 3 == 0 && c[i].value < 600);
		assert_int_equal(seen[c[i].value / 3]++, 0); /* each old value once */
	}
	sh->word_expect[2] = 600;
	sh->word_expect[3] = word_of(1, 24);
}

static void test_ops(void **state)
{
	struct rnode n;
	pid_t pid = proc_fork(target_main, NULL);

	assert_true(pid > 0);
	assert_int_equal(rnode_open(&n, "shm", sh->iname, POOL, &(struct unet_rdma_attr){.cq_depth = 256}), 0);
	int ch = rnode_connect(&n, sh->tname);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->ready, 1, 10000), 0);
	exercise(&n, ch, sh->key);
	proc_set_u32(&sh->done, 1);
	assert_int_equal(proc_wait(pid, 10000), 0);
	rnode_close(&n);
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

static void test_target_stopped(void **state)
{
	struct rnode n;
	pid_t pid = proc_fork(target_main, NULL);

	assert_true(pid > 0);
	assert_int_equal(rnode_open(&n, "shm", sh->iname, POOL, &(struct unet_rdma_attr){.cq_depth = 256}), 0);
	int ch = rnode_connect(&n, sh->tname);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->ready, 1, 10000), 0);
	assert_int_equal(kill(pid, SIGSTOP), 0);
	for (int i = 0; i < 2000 && proc_state(pid) != 'T'; i++)
		usleep(1000);
	assert_int_equal(proc_state(pid), 'T');
	exercise(&n, ch, sh->key);
	assert_int_equal(proc_state(pid), 'T'); /* still stopped: nobody served us */
	assert_int_equal(kill(pid, SIGCONT), 0);
	proc_set_u32(&sh->done, 1);
	assert_int_equal(proc_wait(pid, 10000), 0);
	rnode_close(&n);
}

/* ---- several initiators and the owner on the same words -------------------- */

#define NINIT 3
#define FADDS 20000
#define CASES 3000
#define LOCAL 20000

struct multi {
	char tname[UNET_NAME_MAX];
	char names[NINIT][UNET_NAME_MAX];
	uint64_t key;
	uint32_t ready, go, finished;
};
static struct multi *mu;

/* FADD (add = idx + 1) on word 0, batched 32 at a time, and CAS-increment
 * word 1, retrying on conflict. */
static int initiator_main(void *arg)
{
	int idx = (int)(intptr_t)arg;
	struct rnode n;
	struct unet_rdma_comp c[32];
	uint64_t old;

	if (rnode_open(&n, "shm", mu->names[idx], 0, NULL) < 0)
		return 10;
	int ch = rnode_connect(&n, mu->tname);
	if (ch < 0)
		return 11;
	if (proc_wait_u32(&mu->go, 1, 20000) < 0)
		return 12;
	for (int done = 0; done < FADDS;) {
		int batch = FADDS - done < 32 ? FADDS - done : 32;
		for (int i = 0; i < batch; i++)
			if (unet_rdma_fadd(n.r, (unsigned)ch, mu->key, 0, (uint64_t)idx + 1, 0) < 0)
				return 13;
		if (rwait(n.r, c, batch, 10000) != batch)
			return 14;
		for (int i = 0; i < batch; i++)
			if (c[i].status)
				return 15;
		done += batch;
	}
	uint64_t cur = 0;
	for (int i = 0; i < CASES; i++) {
		for (;;) {
			if (rcas(n.r, (unsigned)ch, mu->key, 8, cur, cur + 1, &old) != 0)
				return 16;
			if (old == cur)
				break;
			cur = old;
		}
		cur++;
	}
	__atomic_fetch_add(&mu->finished, 1, __ATOMIC_ACQ_REL);
	rnode_close(&n);
	return 0;
}

static void test_concurrent_atomics(void **state)
{
	struct rnode n;
	struct unet_mr *mr;
	pid_t pids[NINIT];

	mu = proc_shared(sizeof(*mu));
	proc_name(mu->tname, sizeof(mu->tname), "rdm");
	for (int i = 0; i < NINIT; i++) {
		proc_name(mu->names[i], sizeof(mu->names[i]), "rdm");
		pids[i] = proc_fork(initiator_main, (void *)(intptr_t)i);
		assert_true(pids[i] > 0);
	}
	assert_int_equal(rnode_open(&n, "shm", mu->tname, POOL, NULL), 0);
	for (int i = 0; i < NINIT; i++)
		assert_true(rnode_connect(&n, mu->names[i]) >= 0);
	assert_int_equal(unet_mr_alloc(n.r, 4096, UNET_MR_READ | UNET_MR_ATOMIC, &mr), 0);
	uint64_t *w = unet_mr_addr(mr);
	mu->key = unet_mr_key(mr);
	proc_set_u32(&mu->go, 1);
	/* The owner's own atomics on the same words, at the same time. */
	for (int i = 0; i < LOCAL; i++) {
		__atomic_fetch_add(&w[0], 7, __ATOMIC_SEQ_CST);
		if (i < CASES) {
			uint64_t cur = __atomic_load_n(&w[1], __ATOMIC_RELAXED);
			while (!__atomic_compare_exchange_n(&w[1], &cur, cur + 1, false,
							    __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
				;
		}
		if (i % 1000 == 0)
			sched_yield();
	}
	for (int i = 0; i < NINIT; i++)
		assert_int_equal(proc_wait(pids[i], 60000), 0);
	uint64_t want = (uint64_t)LOCAL * 7;
	for (int i = 0; i < NINIT; i++)
		want += (uint64_t)FADDS * (uint64_t)(i + 1);
	assert_int_equal(w[0], want);
	assert_int_equal(w[1], (uint64_t)CASES * (NINIT + 1));
	rnode_close(&n);
	proc_unshare(mu, sizeof(*mu));
}

/* ---- revocation ------------------------------------------------------------- */

static int revoke_target(void *arg)
{
	struct rnode n;
	struct unet_mr *mr, *mr2;

	if (rnode_open(&n, "shm", sh->tname, POOL, NULL) < 0)
		return 10;
	if (rnode_connect(&n, sh->iname) < 0)
		return 11;
	if (unet_mr_alloc(n.r, 65536, UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC, &mr) < 0)
		return 12;
	rfill(unet_mr_addr(mr), 65536, 5, 0);
	sh->key = unet_mr_key(mr);
	proc_set_u32(&sh->phase, 1);
	if (proc_wait_u32(&sh->phase, 2, 20000) < 0) /* initiator used it */
		return 13;
	if (unet_mr_revoke(n.r, mr) < 0)
		return 14;
	proc_set_u32(&sh->phase, 3);
	if (proc_wait_u32(&sh->phase, 4, 20000) < 0) /* initiator saw -EACCES */
		return 15;
	/* Same size again: the memory comes back zeroed, the old key stays dead. */
	if (unet_mr_alloc(n.r, 65536, UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC, &mr2) < 0)
		return 16;
	const uint8_t *m = unet_mr_addr(mr2);
	for (int i = 0; i < 65536; i++)
		if (m[i])
			return 17;
	sh->word_expect[0] = unet_mr_key(mr2);
	proc_set_u32(&sh->phase, 5);
	if (proc_wait_u32(&sh->done, 1, 20000) < 0)
		return 18;
	if (((const uint64_t *)m)[1] != 42)
		return 19;
	rnode_close(&n);
	return 0;
}

static void test_revoke(void **state)
{
	struct rnode n;
	uint8_t buf[64];
	uint64_t old;

	pid_t pid = proc_fork(revoke_target, NULL);
	assert_true(pid > 0);
	assert_int_equal(rnode_open(&n, "shm", sh->iname, POOL, NULL), 0);
	int ch = rnode_connect(&n, sh->tname);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->phase, 1, 10000), 0);
	uint64_t key = sh->key;
	assert_int_equal(rread(n.r, (unsigned)ch, key, 100, buf, 64), 0);
	assert_int_equal(rcheck(buf, 64, 5, 100), 0);
	proc_set_u32(&sh->phase, 2);
	assert_int_equal(proc_wait_u32(&sh->phase, 3, 10000), 0);
	/* Issued after unet_mr_revoke returned: all refused, nothing moved. */
	memset(buf, 0xab, sizeof(buf));
	assert_int_equal(rread(n.r, (unsigned)ch, key, 100, buf, 64), -EACCES);
	for (int i = 0; i < 64; i++)
		assert_int_equal(buf[i], 0xab);
	assert_int_equal(rwrite(n.r, (unsigned)ch, key, 0, buf, 64), -EACCES);
	assert_int_equal(rcas(n.r, (unsigned)ch, key, 0, 0, 1, &old), -EACCES);
	assert_int_equal(rfadd(n.r, (unsigned)ch, key, 0, 1, &old), -EACCES);
	proc_set_u32(&sh->phase, 4);
	assert_int_equal(proc_wait_u32(&sh->phase, 5, 10000), 0);
	uint64_t key2 = sh->word_expect[0];
	assert_true(key2 != key);
	assert_int_equal(rread(n.r, (unsigned)ch, key, 0, buf, 8), -EACCES);
	assert_int_equal(rfadd(n.r, (unsigned)ch, key2, 8, 42, &old), 0);
	assert_int_equal(old, 0);
	proc_set_u32(&sh->done, 1);
	assert_int_equal(proc_wait(pid, 10000), 0);
	rnode_close(&n);
}

/* The quarantine, driven by hand: an initiator slot that says "inside an
 * access" keeps a revoked region's memory from reuse until it moves on. */
static void test_quarantine(void **state)
{
	struct rnode n;
	struct unet_mr *a, *b, *c;
	struct unet_pool_view v;
	char name[UNET_NAME_MAX];

	proc_name(name, sizeof(name), "rdq");
	/* Heap = 1 MiB: two 600 KiB regions cannot both fit. */
	assert_int_equal(rnode_open(&n, "shm", name, RDMA_SLOTS_BYTES + (1u << 20), NULL), 0);
	assert_int_equal(n.ep->nic->ops->pool(n.ep, -1, &v), 0);
	struct unet__rdma_islot *s = (struct unet__rdma_islot *)(void *)(v.base + 64 * 7);

	/* A live initiator (our parent) inside an access. */
	s->owner = (uint64_t)(uint32_t)getppid() << 32 | 1;
	s->seq = 3;
	assert_int_equal(unet_mr_alloc(n.r, 600 << 10, UNET_MR_READ, &a), 0);
	uint8_t *addr_a = unet_mr_addr(a);
	memset(addr_a, 0x77, 600 << 10);
	assert_int_equal(unet_mr_revoke(n.r, a), 0);
	assert_int_equal(unet_mr_alloc(n.r, 600 << 10, UNET_MR_READ, &b), -ENOMEM);
	assert_int_equal(addr_a[12345], 0x77); /* untouched while quarantined */
	s->seq = 4; /* it left its access */
	assert_int_equal(unet_mr_alloc(n.r, 600 << 10, UNET_MR_READ, &b), 0);
	assert_ptr_equal(unet_mr_addr(b), addr_a);
	for (uint32_t i = 0; i < (600u << 10); i++)
		if (addr_a[i])
			fail_msg("byte %u not zero after reuse", i);
	assert_int_equal(unet_mr_revoke(n.r, b), 0);

	/* A dead initiator's odd slot holds nothing back for long. */
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	assert_int_equal(proc_wait(dead, 5000), 0);
	s->owner = (uint64_t)(uint32_t)dead << 32 | 1;
	s->seq = 5;
	assert_int_equal(unet_mr_alloc(n.r, 600 << 10, UNET_MR_READ, &a), 0);
	assert_int_equal(unet_mr_revoke(n.r, a), 0);
	assert_int_equal(unet_mr_alloc(n.r, 600 << 10, UNET_MR_READ, &c), 0);
	s->owner = 0;
	rnode_close(&n);
}

/* ---- peers that cannot be reached -------------------------------------------- */

static int bare_target(void *arg)
{
	struct peer {
		struct unet_nic *nic;
		struct unet_ep *ep;
	} p;
	struct unet_ep_attr ea = {.rdma_pool = POOL};

	/* A pool, but no rdma layer on it. */
	if (unet_nic_open("shm", &p.nic) < 0 || unet_ep_create(p.nic, sh->tname, &ea, &p.ep) < 0)
		return 10;
	if (unet_chan_open(p.ep, sh->iname, 10000) < 0)
		return 11;
	proc_set_u32(&sh->ready, 1);
	if (proc_wait_u32(&sh->done, 1, 20000) < 0)
		return 12;
	unet_ep_destroy(p.ep);
	unet_nic_close(p.nic);
	return 0;
}

static void test_unreachable(void **state)
{
	struct rnode n;
	uint8_t buf[8];
	uint64_t old;

	pid_t pid = proc_fork(bare_target, NULL);
	assert_true(pid > 0);
	assert_int_equal(rnode_open(&n, "shm", sh->iname, POOL, NULL), 0);
	int ch = unet_chan_open(n.ep, sh->tname, 10000);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->ready, 1, 10000), 0);
	uint64_t key = 1ull << 40 | RDMA_KEY_ONESIDED | 1;
	assert_int_equal(rread(n.r, (unsigned)ch, key, 0, buf, 8), -EACCES);
	assert_int_equal(rcas(n.r, (unsigned)ch, key, 0, 0, 1, &old), -EACCES);
	/* Channels that do not exist. */
	assert_int_equal(unet_rdma_read(n.r, 63, key, 0, buf, 8, 1), -ENOTCONN);
	assert_int_equal(unet_rdma_read(n.r, 4000, key, 0, buf, 8, 1), -ENOTCONN);
	/* A served key on a channel msg is not attached to. */
	assert_int_equal(unet_rdma_read(n.r, (unsigned)ch, 1ull << 40 | 1, 0, buf, 8, 1), -ENOTCONN);
	/* The peer dies: operations complete with -ECONNRESET once we notice. */
	proc_set_u32(&sh->done, 1);
	assert_int_equal(proc_wait(pid, 10000), 0);
	int st = 0;
	for (int i = 0; i < 2000; i++) {
		st = rread(n.r, (unsigned)ch, key, 0, buf, 8);
		if (st == -ECONNRESET)
			break;
		usleep(1000);
		unet_progress(n.ep); /* look for the hang-up now */
	}
	assert_int_equal(st, -ECONNRESET);
	rnode_close(&n);
}

/* Bad arguments are refused, never crash. */
static void test_bad_args(void **state)
{
	struct rnode n;
	struct unet_mr *mr;
	char name[UNET_NAME_MAX];
	struct unet_rdma *r2;

	proc_name(name, sizeof(name), "rdb");
	assert_int_equal(rnode_open(&n, "shm", name, POOL, NULL), 0);
	assert_int_equal(unet_rdma_create(NULL, NULL, &r2), -EINVAL);
	assert_int_equal(unet_rdma_create(n.mep, NULL, &r2), -EBUSY); /* one per endpoint */
	assert_int_equal(unet_rdma_create(n.mep, &(struct unet_rdma_attr){.max_mrs = 1u << 30}, &r2),
			 -EINVAL);
	assert_int_equal(unet_mr_alloc(n.r, 0, UNET_MR_READ, &mr), -EINVAL);
	assert_int_equal(unet_mr_alloc(n.r, 64, 0x80, &mr), -EINVAL);
	assert_int_equal(unet_mr_alloc(n.r, (size_t)1 << 40, UNET_MR_READ, &mr), -ENOMEM);
	assert_int_equal(unet_mr_reg(n.r, NULL, 64, UNET_MR_READ, &mr), -EINVAL);
	assert_int_equal(unet_mr_revoke(n.r, NULL), -EINVAL);
	assert_int_equal(unet_mr_revoke(n.r, (struct unet_mr *)&n), -EINVAL);
	assert_int_equal(unet_rdma_read(n.r, 0, 0, 0, NULL, 8, 0), -EINVAL);
	assert_int_equal(unet_rdma_poll(n.r, NULL, 4), -EINVAL);
	assert_int_equal(unet_rdma_poll(NULL, NULL, 0), -EINVAL);
	assert_int_equal(unet_mr_key(NULL), 0);
	/* Registrations run out cleanly. */
	struct unet_mr *mrs[300];
	int got = 0;
	while (got < 300 && unet_mr_alloc(n.r, 64, UNET_MR_READ, &mrs[got]) == 0)
		got++;
	assert_int_equal(got, 256);
	assert_int_equal(unet_mr_alloc(n.r, 64, UNET_MR_READ, &mr), -ENOSPC);
	assert_int_equal(unet_mr_revoke(n.r, mrs[10]), 0);
	assert_int_equal(unet_mr_revoke(n.r, mrs[10]), -EINVAL); /* twice */
	assert_int_equal(unet_mr_alloc(n.r, 64, UNET_MR_READ, &mr), 0);
	assert_true(unet_mr_key(mr) != 0);
	rnode_close(&n);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(test_ops),        T(test_target_stopped), T(test_concurrent_atomics),
		T(test_revoke),     T(test_quarantine),     T(test_unreachable),
		T(test_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
