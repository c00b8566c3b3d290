/* test_farm_fence.c - configuration-id fencing. A node that moves to a
 * newer configuration refuses messages sent under the older one (and
 * counts them), readers refuse the memory of a node in another
 * configuration (the node page's config id, read with the object), nodes
 * in the same configuration are not disturbed, and a node started with an
 * older configuration than its peers fails to join with -ESTALE. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"
#include "node.h"

/* An object in a region led by node idx, for each node. */
static int alloc_own(struct farm *f, int idx, struct fc_shared *sh)
{
	farm_addr_t a;
	uint32_t rep[8];
	uint8_t b[100];

	memset(b, idx + 1, sizeof(b));
	FC_CHECK_RC(sh, idx, farm_alloc(f, 100, FARM_NULL, &a), 0);
	FC_CHECK(sh, idx, farm_region_replicas(f, FARM_REGION(a), rep, 8) == 3);
	FC_CHECK(sh, idx, rep[0] == farm_self(f));
	FC_CHECK_RC(sh, idx, farm_write(f, a, b, sizeof(b)), 0);
	sh->addr[idx] = a;
	return 0;
}

static int node_fence(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	uint8_t b[100];
	farm_addr_t a;
	uint32_t sz;
	struct farm_stats st0, st1;

	(void)arg;
	if (alloc_own(f, idx, sh))
		return 1;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 3, 20000), 0);
	farm_get_stats(f, &st0);
	/* Node 1 moves to configuration 2; nodes 2 and 3 stay in 1. */
	if (idx == 0)
		farm__set_config_id(f, 2);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 3, 20000), 0);
	if (idx == 1) {
		/* Messages under config 1 to node 1 are refused... */
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[0], b, 10), -ESTALE);
		FC_CHECK_RC(sh, idx, farm_alloc(f, 10, sh->addr[0], &a), -ESTALE);
		FC_CHECK_RC(sh, idx, farm_free(f, sh->addr[0]), -ESTALE);
		/* ...and so is node 1's memory, read one-sidedly. */
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], b, 100, NULL), -ESTALE);
		FC_CHECK_RC(sh, idx, farm_obj_size(f, sh->addr[0], &sz), -ESTALE);
		/* A write at our own primary cannot be replicated to node 1. */
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[1], b, 10), -ESTALE);
		/* Node 3 is in our configuration: its memory is fine. */
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[2], b, 100, NULL), 0);
		FC_CHECK(sh, idx, b[0] == 3 && b[99] == 3);
		farm_get_stats(f, &st1);
		FC_CHECK(sh, idx, st1.stale_refused - st0.stale_refused == 2); /* the two reads */
	}
	if (idx == 0) {
		/* Node 1 reads node 2's memory: another configuration, refused. */
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[1], b, 100, NULL), -ESTALE);
		/* Its own objects it still reads in place. */
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], b, 100, NULL), 0);
		FC_CHECK(sh, idx, b[0] == 1);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, 3, 20000), 0);
	if (idx == 0) {
		farm_get_stats(f, &st1);
		/* WRITE, ALLOC, FREE from node 2 and the REPL of its write; the
		 * read it refused itself. */
		FC_CHECK(sh, idx, st1.stale_refused - st0.stale_refused >= 5);
		sh->count[0][0] = st1.stale_refused - st0.stale_refused;
	}
	/* Everybody moves to configuration 2: all is well again. */
	if (idx != 0)
		farm__set_config_id(f, 2);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, 3, 20000), 0);
	FC_CHECK(sh, idx, farm_config_id(f) == 2);
	for (int j = 0; j < 3; j++) {
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[j], b, 100, NULL), 0);
		/* Node 2's object took the write whose replication node 1
		 * refused: the primary keeps it (farm.h, farm_write). */
		if (j != 1)
			FC_CHECK(sh, idx, b[50] == j + 1);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, 3, 20000), 0);
	memset(b, 0x40 + idx, sizeof(b));
	FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[(idx + 1) % 3], b, 100), 0);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 5, 3, 20000), 0);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[idx], b, 100, NULL), 0);
	FC_CHECK(sh, idx, b[0] == 0x40 + (idx + 2) % 3 && b[99] == b[0]);
	return 0;
}

static void test_fence_runtime(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, 3, "ffence", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_fence, NULL, sh, 10000, 40000), 0);
	print_message("node 1 refused %llu messages from configuration 1\n",
		      (unsigned long long)sh->count[0][0]);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- start-up ---------------------------------------------------------- */

struct starter {
	struct farm_config cfg;
	uint32_t self;
	int timeout_ms;
	int32_t *rc;
	char *err;
	uint64_t *ms;
};

static int start_one(void *p)
{
	struct starter *s = p;
	struct farm *f = NULL;
	uint64_t t0 = proc_now_ms();
	int rc = farm_node_start_err(&s->cfg, s->self, s->timeout_ms, &f, s->err, 256);

	*s->ms = proc_now_ms() - t0;
	*s->rc = rc;
	if (rc == 0) {
		fc_serve(f, 300, NULL);
		farm_node_stop(f);
	}
	return 0;
}

static void test_fence_start(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	struct starter s[2];
	pid_t pid[2];

	fc_config(&cfg, 2, "fstale", 1 << 20, 4, 2);
	for (int i = 0; i < 2; i++) {
		s[i].cfg = cfg;
		s[i].cfg.config_id = i == 0 ? 2 : 1; /* node 2 is behind */
		s[i].self = (uint32_t)(i + 1);
		s[i].timeout_ms = 1500;
		s[i].rc = &sh->start_rc[i];
		s[i].err = sh->err[i];
		s[i].ms = &sh->start_ms[i];
		pid[i] = proc_fork(start_one, &s[i]);
	}
	for (int i = 0; i < 2; i++)
		assert_int_equal(proc_wait(pid[i], 10000), 0);
	print_message("node 1: %d (%s) after %llu ms\n", sh->start_rc[0], sh->err[0],
		      (unsigned long long)sh->start_ms[0]);
	print_message("node 2: %d (%s) after %llu ms\n", sh->start_rc[1], sh->err[1],
		      (unsigned long long)sh->start_ms[1]);
	assert_int_equal(sh->start_rc[1], -ESTALE);
	assert_non_null(strstr(sh->err[1], "newer configuration"));
	/* Node 1 never hears from node 2 under a configuration it accepts. */
	assert_int_equal(sh->start_rc[0], -ETIMEDOUT);
	assert_true(sh->start_ms[0] < 5000);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_fence_runtime),
		cmocka_unit_test(test_fence_start),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
