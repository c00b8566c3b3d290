/* test_farm_bad.c - bad input gets a clear error, never a crash or a hang:
 * addresses in unknown regions, outside a region, not at an object start,
 * reads and writes across an object's end, freed objects, sizes out of
 * range, a full address space; and start-up failures: a malformed config,
 * a node that is not a member, the same node started twice, members that
 * never come, members with another config. Both the local and the remote
 * (one-sided) paths are checked for every address error. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdbool.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"

#define RSIZE (64u << 10)
#define NREG 4u

/* Region led by `who` (or not by `who` when !mine). */
static int region_led(struct farm *f, uint32_t who, bool mine)
{
	for (uint32_t r = 0; r < NREG; r++) {
		uint32_t rep[8];
		farm_region_replicas(f, r, rep, 8);
		if ((rep[0] == who) == mine)
			return (int)r;
	}
	return -1;
}

static int check_addr_errors(struct farm *f, int idx, struct fc_shared *sh, farm_addr_t a,
			     int r)
{
	uint8_t b[256];
	uint32_t sz;
	uint32_t off = FARM_OFFSET(a);

	FC_CHECK_RC(sh, idx, farm_read(f, FARM_ADDR(NREG, off), b, 10, NULL), -ENOENT);
	FC_CHECK_RC(sh, idx, farm_read(f, FARM_ADDR(0xffffffffu, 64), b, 10, NULL), -ENOENT);
	FC_CHECK_RC(sh, idx, farm_read(f, FARM_ADDR(r, RSIZE), b, 10, NULL), -ERANGE);
	FC_CHECK_RC(sh, idx, farm_read(f, FARM_ADDR(r, 0xffffffc0u), b, 10, NULL), -ERANGE);
	FC_CHECK_RC(sh, idx, farm_read(f, a + 8, b, 10, NULL), -EINVAL);  /* misaligned */
	FC_CHECK_RC(sh, idx, farm_read(f, a + 64, b, 10, NULL), -EINVAL); /* inside it */
	FC_CHECK_RC(sh, idx, farm_read(f, FARM_ADDR(r, 0), b, 1, NULL), -EINVAL); /* header */
	FC_CHECK_RC(sh, idx, farm_read(f, FARM_NULL, b, 1, NULL), -EINVAL);
	/* Free space at the end of the region: not an object. */
	FC_CHECK_RC(sh, idx, farm_read(f, FARM_ADDR(r, RSIZE - 64), b, 1, NULL), -EINVAL);
	/* Across the object's end, across the region's end, beyond any object. */
	FC_CHECK_RC(sh, idx, farm_read(f, a, b, 101, NULL), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_read(f, a, b, 200, NULL), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_read(f, FARM_ADDR(r, RSIZE - 64), b, 100, NULL), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_read(f, a, b, FARM_OBJ_MAX + 1, NULL), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_write(f, a, b, 101), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_write(f, a + 64, b, 10), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_write(f, FARM_ADDR(NREG, off), b, 10), -ENOENT);
	FC_CHECK_RC(sh, idx, farm_obj_size(f, a + 64, &sz), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_obj_size(f, FARM_ADDR(r, RSIZE), &sz), -ERANGE);
	FC_CHECK_RC(sh, idx, farm_free(f, a + 64), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_free(f, FARM_ADDR(NREG, 64)), -ENOENT);
	/* NULL buffers. */
	FC_CHECK_RC(sh, idx, farm_read(f, a, NULL, 10, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_write(f, a, NULL, 10), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_obj_size(f, a, NULL), -EINVAL);
	/* The object itself is fine. */
	FC_CHECK_RC(sh, idx, farm_read(f, a, b, 100, NULL), 0);
	FC_CHECK_RC(sh, idx, farm_read(f, a, b, 0, NULL), 0);
	FC_CHECK_RC(sh, idx, farm_obj_size(f, a, &sz), 0);
	FC_CHECK(sh, idx, sz == 100);
	/* Freed: not an object any more, on every path. */
	FC_CHECK_RC(sh, idx, farm_free(f, a), 0);
	FC_CHECK_RC(sh, idx, farm_read(f, a, b, 10, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_obj_size(f, a, &sz), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_write(f, a, b, 10), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_free(f, a), -EINVAL);
	return 0;
}

static int node_bad(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	farm_addr_t a, b0 = FARM_NULL;
	uint32_t rep[8];
	int rl = region_led(f, farm_self(f), true), rr = region_led(f, farm_self(f), false);

	(void)arg;
	FC_CHECK(sh, idx, rl >= 0 && rr >= 0);
	/* Sizes and hints. */
	FC_CHECK_RC(sh, idx, farm_alloc(f, 0, FARM_NULL, &a), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_alloc(f, FARM_OBJ_MAX + 1, FARM_NULL, &a), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_alloc(f, 10, FARM_ADDR(NREG, 64), &a), -ENOENT);
	FC_CHECK_RC(sh, idx, farm_alloc(f, 10, FARM_NULL, NULL), -EINVAL);
	/* The largest object does not fit a 64 KiB region. */
	FC_CHECK_RC(sh, idx, farm_alloc(f, FARM_OBJ_MAX, FARM_NULL, &a), -ENOSPC);
	FC_CHECK_RC(sh, idx, farm_region_replicas(f, NREG, rep, 8), -ENOENT);
	/* Local object (we lead its region), then a remote one. */
	FC_CHECK_RC(sh, idx, farm_alloc(f, 100, FARM_ADDR(rl, 64), &a), 0);
	FC_CHECK(sh, idx, FARM_REGION(a) == (uint32_t)rl);
	if (check_addr_errors(f, idx, sh, a, rl))
		return 1;
	/* Each phase touches one region per node: without this barrier the
	 * other node's remote allocation below could take the slot this node
	 * has just freed, and the freed address would read as an object. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 20000), 0);
	FC_CHECK_RC(sh, idx, farm_alloc(f, 100, FARM_ADDR(rr, 64), &a), 0);
	FC_CHECK(sh, idx, FARM_REGION(a) == (uint32_t)rr); /* the locality hint */
	if (check_addr_errors(f, idx, sh, a, rr))
		return 1;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	/* Fill the address space (node 1 only), then free one and retry. */
	if (idx == 0) {
		uint32_t count = 0;
		int rc;
		while ((rc = farm_alloc(f, 1000, FARM_NULL, &a)) == 0) {
			if (count == 0)
				b0 = a;
			count++;
			FC_CHECK(sh, idx, count < 10000);
		}
		FC_CHECK_RC(sh, idx, rc, -ENOSPC);
		/* 18 lines -> slots of 20; each 64 KiB region holds 51 less the
		 * headers and the slots taken by the 100-byte objects' slabs. */
		FC_CHECK(sh, idx, count >= NREG * 40 && count <= NREG * 51);
		sh->count[0][0] = count;
		FC_CHECK_RC(sh, idx, farm_alloc(f, 1000, FARM_NULL, &a), -ENOSPC);
		FC_CHECK_RC(sh, idx, farm_free(f, b0), 0);
		FC_CHECK_RC(sh, idx, farm_alloc(f, 1000, FARM_NULL, &a), 0);
		FC_CHECK(sh, idx, a == b0);
	}
	return 0;
}

static void test_bad_addresses(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, 2, "fbad", RSIZE, NREG, 2);
	assert_int_equal(fc_run(&cfg, node_bad, NULL, sh, 10000, 40000), 0);
	print_message("%llu objects of 1000 bytes filled the address space\n",
		      (unsigned long long)sh->count[0][0]);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- start-up failures --------------------------------------------------- */

static void test_bad_config(void **state)
{
	struct farm_config cfg;
	struct farm *f = NULL;
	char err[256];

	fc_config(&cfg, 1, "fbadcfg", 1 << 20, 2, 1);
	cfg.region_size = 3 << 20;
	assert_int_equal(farm_node_start_err(&cfg, 1, 1000, &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "region_size"));
	assert_null(f);
	fc_config(&cfg, 1, "fbadcfg", 1 << 20, 2, 1);
	assert_int_equal(farm_node_start_err(&cfg, 9, 1000, &f, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "member 9"));
	cfg.nmembers = 0;
	assert_int_equal(farm_node_start_err(&cfg, 1, 1000, &f, err, sizeof(err)), -EINVAL);
	assert_int_equal(farm_node_start(NULL, 1, 1000, &f), -EINVAL);
	fc_config(&cfg, 2, "fbadcfg", 1 << 20, 2, 1);
	strcpy(cfg.members[1].addr, cfg.members[0].addr);
	assert_int_equal(farm_node_start_err(&cfg, 1, 1000, &f, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "duplicate"));
	/* NULL handles are harmless. */
	farm_node_stop(NULL);
	assert_int_equal(farm_poll(NULL), -EINVAL);
	assert_non_null(farm_strerror(-ESTALE));
	assert_non_null(farm_strerror(-12345));
}

/* A single-member cluster holds node 1; a second node 1 must fail. */
static int hold_node(void *p)
{
	struct farm_config *cfg = p;
	struct farm *f;
	uint32_t *flag = (uint32_t *)(cfg + 1);

	if (farm_node_start(cfg, 1, 5000, &f))
		return 1;
	proc_set_u32(&flag[0], 1);
	fc_serve(f, 10000, &flag[1]);
	farm_node_stop(f);
	return 0;
}

static void test_duplicate_id(void **state)
{
	struct farm_config *cfg = proc_shared(sizeof(*cfg) + 64);
	uint32_t *flag = (uint32_t *)(cfg + 1);
	struct farm *f = NULL;
	char err[256];

	fc_config(cfg, 1, "fdup", 1 << 20, 2, 1);
	pid_t pid = proc_fork(hold_node, cfg);
	assert_int_equal(proc_wait_u32(&flag[0], 1, 10000), 0);
	uint64_t t0 = proc_now_ms();
	assert_int_equal(farm_node_start_err(cfg, 1, 2000, &f, err, sizeof(err)), -EADDRINUSE);
	assert_true(proc_now_ms() - t0 < 1000); /* at once, not at the timeout */
	assert_null(f);
	print_message("second node 1: %s\n", err);
	assert_non_null(strstr(err, "already running"));
	proc_set_u32(&flag[1], 1);
	assert_int_equal(proc_wait(pid, 10000), 0);
	/* Once the first is gone, the name is free again. */
	assert_int_equal(farm_node_start(cfg, 1, 2000, &f), 0);
	farm_node_stop(f);
	proc_unshare(cfg, sizeof(*cfg) + 64);
}

/* Members 1 and 2 start, member 3 never does: both fail within the bound,
 * naming member 3. */
static void test_unreachable(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	pid_t pid[2];
	struct fc_shared *s = sh;

	fc_config(&cfg, 3, "funreach", 1 << 20, 6, 3);
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			struct farm *f = NULL;
			uint64_t t0 = proc_now_ms();
			s->start_rc[i] = farm_node_start_err(&cfg, (uint32_t)(i + 1), 1000, &f,
							     s->err[i], sizeof(s->err[i]));
			s->start_ms[i] = proc_now_ms() - t0;
			farm_node_stop(f);
			_exit(0);
		}
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(proc_wait(pid[i], 10000), 0);
		print_message("node %d: %d after %llu ms: %s\n", i + 1, s->start_rc[i],
			      (unsigned long long)s->start_ms[i], s->err[i]);
		assert_int_equal(s->start_rc[i], -ETIMEDOUT);
		assert_true(s->start_ms[i] >= 900 && s->start_ms[i] < 3000);
		assert_non_null(strstr(s->err[i], "member 3"));
	}
	proc_unshare(sh, sizeof(*sh));
}

/* Same members, a different region count: a clear error, not a hang. */
static void test_config_mismatch(void **state)
{
	struct farm_config cfg[2];
	struct fc_shared *s = proc_shared(sizeof(*s));
	pid_t pid[2];

	fc_config(&cfg[0], 2, "fmis", 1 << 20, 4, 2);
	cfg[1] = cfg[0];
	cfg[1].regions = 6;
	for (int i = 0; i < 2; i++) {
		pid[i] = fork();
		if (pid[i] == 0) {
			struct farm *f = NULL;
			s->start_rc[i] = farm_node_start_err(&cfg[i], (uint32_t)(i + 1), 3000, &f,
							     s->err[i], sizeof(s->err[i]));
			farm_node_stop(f);
			_exit(0);
		}
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(proc_wait(pid[i], 10000), 0);
		print_message("node %d: %d: %s\n", i + 1, s->start_rc[i], s->err[i]);
		assert_int_equal(s->start_rc[i], -EINVAL);
		assert_non_null(strstr(s->err[i], "different configuration"));
	}
	proc_unshare(s, sizeof(*s));
}

/* A member dies (no farm_node_stop: its process just ends) while the others
 * run: reads of its regions, writes it must replicate, allocations in its
 * regions all fail with a clear error within a few seconds; what does not
 * involve it keeps working. */
static int node_dies(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	uint32_t rep[8];
	uint8_t b[64] = {1};
	farm_addr_t a;

	(void)arg;
	/* Node 3 allocates in a region it leads; nodes 1 and 2 in their own. */
	FC_CHECK_RC(sh, idx, farm_alloc(f, 64, FARM_NULL, &a), 0);
	farm_region_replicas(f, FARM_REGION(a), rep, 8);
	FC_CHECK(sh, idx, rep[0] == farm_self(f));
	sh->addr[idx] = a;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 3, 20000), 0);
	if (idx == 2) {
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		_exit(0); /* a crash, as far as the peers can tell */
	}
	/* The progress loop notices the hang-up (a node always runs it). */
	fc_serve(f, 300, NULL);
	uint64_t t0 = proc_now_ms();
	int rc = farm_read(f, sh->addr[2], b, 64, NULL);
	if (rc != -ECONNRESET && rc != -ETIMEDOUT)
		FC_CHECK_RC(sh, idx, rc, -ECONNRESET);
	rc = farm_alloc(f, 64, sh->addr[2], &a);
	if (rc != -ECONNRESET && rc != -ETIMEDOUT)
		FC_CHECK_RC(sh, idx, rc, -ECONNRESET);
	/* Our own object has node 3 as a backup (3 replicas on 3 nodes). */
	rc = farm_write(f, sh->addr[idx], b, 64);
	if (rc != -ECONNRESET && rc != -ETIMEDOUT)
		FC_CHECK_RC(sh, idx, rc, -ECONNRESET);
	sh->count[idx][0] = proc_now_ms() - t0;
	FC_CHECK(sh, idx, proc_now_ms() - t0 < 20000);
	/* The write stayed at the primary; reads of it still work. */
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[idx], b, 64, NULL), 0);
	FC_CHECK(sh, idx, b[0] == 1);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[1 - idx], b, 64, NULL), 0);
	return 0;
}

static void test_peer_dies(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, 3, "fdies", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_dies, NULL, sh, 10000, 40000), 0);
	print_message("errors for the dead member's work after %llu / %llu ms\n",
		      (unsigned long long)sh->count[0][0], (unsigned long long)sh->count[1][0]);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bad_addresses), cmocka_unit_test(test_bad_config),
		cmocka_unit_test(test_duplicate_id),  cmocka_unit_test(test_unreachable),
		cmocka_unit_test(test_config_mismatch), cmocka_unit_test(test_peer_dies),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
