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
#include "test_rdma_suite.h"

#define POOL SUITE_POOL

static const struct cfg shm_onesided = {.nic = {"shm"}, .pool = POOL};

static void test_ops(void **state)
{
	suite_ops(&shm_onesided, false);
}

static void test_target_stopped(void **state)
{
	suite_ops(&shm_onesided, true);
}

static void test_concurrent_atomics(void **state)
{
	suite_atomics(&shm_onesided);
}

static void test_protect(void **state)
{
	suite_protect(&shm_onesided);
}

/* ---- revocation ------------------------------------------------------------- */

static int revoke_target(void *arg)
{
	struct rnode n;
	struct unet_mr *mr, *mr2;

	if (rnode_open(&n, "shm", sh->taddr, POOL, NULL) < 0)
		return 10;
	if (rnode_connect(&n, sh->iaddr[0]) < 0)
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
	assert_int_equal(rnode_open(&n, "shm", sh->iaddr[0], POOL, NULL), 0);
	int ch = rnode_connect(&n, sh->taddr);
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
	s->seq = 4;			       /* it left its access */
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

/* Revocation racing a writer: an initiator hammers WRITEs of 0xff bytes
 * at whatever key is current while the owner, round after round, revokes
 * the region and allocates one of the same size (which may reuse its
 * memory): the new region is zero when handed out and stays zero while the
 * writer keeps using the revoked key. */
#define RACE_LEN    65536u
#define RACE_ROUNDS 300

static int race_writer(void *arg)
{
	struct rnode n;
	uint8_t ff[64];
	struct unet_rdma_comp c[16];

	memset(ff, 0xff, sizeof(ff));
	if (rnode_open(&n, "shm", sh->iaddr[0], 0, NULL) < 0)
		return 10;
	int ch = rnode_connect(&n, sh->taddr);
	if (ch < 0)
		return 11;
	uint64_t i = 0;
	while (!__atomic_load_n(&sh->key, __ATOMIC_ACQUIRE))
		usleep(100);
	while (!proc_get_u32(&sh->done)) {
		uint64_t key = __atomic_load_n(&sh->key, __ATOMIC_ACQUIRE);
		for (int k = 0; k < 16; k++, i++)
			if (unet_rdma_write(n.r, (unsigned)ch, key, (i * 4160) % (RACE_LEN - 64),
					    ff, 64, key) < 0)
				return 12;
		if (rwait(n.r, c, 16, 5000) != 16)
			return 13;
		for (int k = 0; k < 16; k++) {
			if (c[k].status != 0 && c[k].status != -EACCES) {
				fprintf(stderr, "race_writer: status %d\n", c[k].status);
				return 14;
			}
			if (c[k].status == 0)
				__atomic_fetch_add(&sh->word_expect[0], 1, __ATOMIC_RELAXED);
			else
				__atomic_fetch_add(&sh->word_expect[1], 1, __ATOMIC_RELAXED);
		}
	}
	rnode_close(&n);
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return false;
	return true;
}

static void test_revoke_race(void **state)
{
	struct rnode n;
	struct unet_mr *a, *b;
	pid_t pid = proc_fork(race_writer, NULL);
	unsigned reused = 0;

	assert_true(pid > 0);
	/* Room for two regions: the new one reuses the old one's memory
	 * whenever it is not held in quarantine. */
	assert_int_equal(rnode_open(&n, "shm", sh->taddr, RDMA_SLOTS_BYTES + 2 * RACE_LEN, NULL),
			 0);
	assert_true(rnode_connect(&n, sh->iaddr[0]) >= 0);
	assert_int_equal(unet_mr_alloc(n.r, RACE_LEN, UNET_MR_WRITE, &a), 0);
	for (int round = 0; round < RACE_ROUNDS; round++) {
		uint64_t before = __atomic_load_n(&sh->word_expect[0], __ATOMIC_RELAXED);
		__atomic_store_n(&sh->key, unet_mr_key(a), __ATOMIC_RELEASE);
		/* Let some writes land, then pull the region from under them. */
		for (int spin = 0; spin < 200000 && __atomic_load_n(&sh->word_expect[0],
								    __ATOMIC_RELAXED) < before + 8;
		     spin++)
			if (spin % 1000 == 999)
				sched_yield();
		uint8_t *old = unet_mr_addr(a);
		assert_int_equal(unet_mr_revoke(n.r, a), 0);
		/* Memory an initiator may still be writing is held back: when
		 * the writer was preempted inside an access, both regions can
		 * be held for a moment, and the allocation waits for it. */
		int rc;
		uint64_t until = proc_now_ms() + 5000;
		while ((rc = unet_mr_alloc(n.r, RACE_LEN, UNET_MR_WRITE, &b)) == -ENOMEM &&
		       proc_now_ms() < until)
			sched_yield();
		assert_int_equal(rc, 0);
		uint8_t *m = unet_mr_addr(b);
		reused += m == old;
		assert_true(all_zero(m, RACE_LEN));
		for (int spin = 0; spin < 20000; spin++) /* the writer still uses the old key */
			__builtin_ia32_pause();
		if (!all_zero(m, RACE_LEN))
			fail_msg("round %d: a write with a revoked key landed in new memory",
				 round);
		a = b;
	}
	proc_set_u32(&sh->done, 1);
	assert_int_equal(proc_wait(pid, 10000), 0);
	print_message(
	    "%u of %d rounds reused the revoked memory; %llu writes landed, %llu refused\n", reused,
	    RACE_ROUNDS, (unsigned long long)sh->word_expect[0],
	    (unsigned long long)sh->word_expect[1]);
	assert_true(sh->word_expect[0] > 0 && sh->word_expect[1] > 0);
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
	if (unet_nic_open("shm", &p.nic) < 0 || unet_ep_create(p.nic, sh->taddr, &ea, &p.ep) < 0)
		return 10;
	if (unet_chan_open(p.ep, sh->iaddr[0], 10000) < 0)
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
	assert_int_equal(rnode_open(&n, "shm", sh->iaddr[0], POOL, NULL), 0);
	int ch = unet_chan_open(n.ep, sh->taddr, 10000);
	assert_true(ch >= 0);
	assert_int_equal(proc_wait_u32(&sh->ready, 1, 10000), 0);
	uint64_t key = 1ull << 40 | RDMA_KEY_ONESIDED | 1;
	assert_int_equal(rread(n.r, (unsigned)ch, key, 0, buf, 8), -EACCES);
	assert_int_equal(rcas(n.r, (unsigned)ch, key, 0, 0, 1, &old), -EACCES);
	/* Channels that do not exist. */
	assert_int_equal(unet_rdma_read(n.r, 63, key, 0, buf, 8, 1), -ENOTCONN);
	assert_int_equal(unet_rdma_read(n.r, 4000, key, 0, buf, 8, 1), -ENOTCONN);
	/* A served key on a channel msg is not attached to. */
	assert_int_equal(unet_rdma_read(n.r, (unsigned)ch, 1ull << 40 | 1, 0, buf, 8, 1),
			 -ENOTCONN);
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
	assert_int_equal(
	    unet_rdma_create(n.mep, &(struct unet_rdma_attr){.max_mrs = 1u << 30}, &r2), -EINVAL);
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
#define T(f) cmocka_unit_test_setup_teardown(f, suite_setup, suite_teardown)
	const struct CMUnitTest tests[] = {
	    T(test_ops),	T(test_target_stopped), T(test_concurrent_atomics),
	    T(test_protect),	T(test_revoke),		T(test_revoke_race),
	    T(test_quarantine), T(test_unreachable),	T(test_bad_args),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
