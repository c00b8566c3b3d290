/* test_farm_cluster.c - multi-process FaRM clusters on shm: start-up,
 * allocation on every node, reads of local and remote objects, writes
 * through the primary, replicas that agree byte for byte, the locality
 * hint, a full region. */
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
#include "object.h"

#define PER_NODE 40

static uint32_t obj_size(int node, int k)
{
	static const uint32_t sizes[] = {1, 8, 40, 56, 57, 64, 100, 300, 1000, 4000};
	return sizes[(node * 7 + k) % 10];
}

static void obj_fill(uint8_t *b, uint32_t len, uint64_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed * 2654435761u >> 13) ^ (uint8_t)(i * 13 + (i >> 8));
}

/* Each node allocates PER_NODE objects and writes them; then every node
 * reads every object, checks bytes and sizes, and overwrites some of the
 * others' objects; finally the replicas of every object are compared. */
static int node_alloc_read(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	uint8_t in[4096], out[4096];

	(void)arg;
	for (int k = 0; k < PER_NODE; k++) {
		farm_addr_t a;
		uint32_t sz = obj_size(idx, k), got;
		FC_CHECK_RC(sh, idx, farm_alloc(f, sz, FARM_NULL, &a), 0);
		FC_CHECK(sh, idx, a != FARM_NULL);
		FC_CHECK_RC(sh, idx, farm_obj_size(f, a, &got), 0);
		FC_CHECK(sh, idx, got == sz);
		/* Fresh objects are zero. */
		FC_CHECK_RC(sh, idx, farm_read(f, a, out, sz, NULL), 0);
		for (uint32_t i = 0; i < sz; i++)
			FC_CHECK(sh, idx, out[i] == 0);
		obj_fill(in, sz, (uint64_t)idx * 1000 + (uint64_t)k);
		FC_CHECK_RC(sh, idx, farm_write(f, a, in, sz), 0);
		sh->addr[idx * PER_NODE + k] = a;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	for (int j = 0; j < n; j++)
		for (int k = 0; k < PER_NODE; k++) {
			farm_addr_t a = sh->addr[j * PER_NODE + k];
			uint32_t sz = obj_size(j, k), got;
			uint64_t ver;
			obj_fill(in, sz, (uint64_t)j * 1000 + (uint64_t)k);
			FC_CHECK_RC(sh, idx, farm_read(f, a, out, sz, &ver), 0);
			FC_CHECK(sh, idx, memcmp(in, out, sz) == 0);
			FC_CHECK(sh, idx, ver == 2);
			FC_CHECK_RC(sh, idx, farm_obj_size(f, a, &got), 0);
			FC_CHECK(sh, idx, got == sz);
		}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 20000), 0);
	/* Node idx rewrites the objects of node (idx+1)%n with k % n == idx. */
	int j = (idx + 1) % n;
	for (int k = idx; k < PER_NODE; k += n) {
		uint32_t sz = obj_size(j, k);
		obj_fill(in, sz, 777 + (uint64_t)j * 1000 + (uint64_t)k);
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[j * PER_NODE + k], in, sz), 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, n, 20000), 0);
	for (int jj = 0; jj < n; jj++)
		for (int k = 0; k < PER_NODE; k++) {
			uint32_t sz = obj_size(jj, k);
			bool rewritten = k % n == (jj + n - 1) % n;
			uint64_t ver;
			obj_fill(in, sz, (rewritten ? 777 : 0) + (uint64_t)jj * 1000 + (uint64_t)k);
			FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[jj * PER_NODE + k], out, sz, &ver),
				    0);
			FC_CHECK(sh, idx, memcmp(in, out, sz) == 0);
			FC_CHECK(sh, idx, ver == (rewritten ? 3u : 2u));
		}
	/* Replicas agree: every holder of an object's region hashes the
	 * object's lines as they are in its own memory. */
	for (int jj = 0; jj < n; jj++)
		for (int k = 0; k < PER_NODE; k++) {
			farm_addr_t a = sh->addr[jj * PER_NODE + k];
			const struct farm_replica *x = f->regions[FARM_REGION(a)].mine;
			if (!x)
				continue;
			uint32_t lines = farm_obj_lines(obj_size(jj, k));
			uint64_t h = 1469598103934665603ull;
			const uint8_t *p = x->base + FARM_OFFSET(a);
			for (uint32_t i = 0; i < lines * FARM_LINE; i++)
				h = (h ^ p[i]) * 1099511628211ull;
			uint64_t *slot = &sh->val[jj * PER_NODE + k];
			uint64_t zero = 0;
			if (!__atomic_compare_exchange_n(slot, &zero, h, false, __ATOMIC_ACQ_REL,
							 __ATOMIC_ACQUIRE))
				FC_CHECK(sh, idx, zero == h);
			__atomic_add_fetch(&sh->count[0][0], 1, __ATOMIC_ACQ_REL);
		}
	struct farm_stats st;
	farm_get_stats(f, &st);
	FC_CHECK(sh, idx, st.reads_remote > 0);
	FC_CHECK(sh, idx, st.reads_local > 0);
	FC_CHECK(sh, idx, st.allocs == PER_NODE);
	FC_CHECK(sh, idx, st.stale_refused == 0);
	return 0;
}

static void run_alloc_read(int n, uint32_t replicas)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, n, "fcl", 1 << 20, (uint32_t)(4 * n), replicas);
	assert_int_equal(fc_run(&cfg, node_alloc_read, NULL, sh, 10000, 40000), 0);
	/* Every object was hashed by every node holding it: replicas copies. */
	uint32_t k = replicas < (uint32_t)n ? replicas : (uint32_t)n;
	assert_int_equal(sh->count[0][0], (uint64_t)n * PER_NODE * k);
	for (int i = 0; i < n; i++)
		print_message("node %d started in %llu ms\n", i + 1,
			      (unsigned long long)sh->start_ms[i]);
	proc_unshare(sh, sizeof(*sh));
}

static void test_three_nodes(void **state)
{
	run_alloc_read(3, 3);
}

static void test_four_nodes_two_replicas(void **state)
{
	run_alloc_read(4, 2);
}

static void test_two_nodes_no_backup(void **state)
{
	run_alloc_read(2, 1);
}

/* The largest object, written by one node, read by every node, and the
 * same bytes in every replica. */
static int node_big(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	static uint8_t in[FARM_OBJ_MAX], out[FARM_OBJ_MAX];
	uint32_t sz;

	(void)arg;
	obj_fill(in, FARM_OBJ_MAX, 4242);
	if (idx == 1) {
		farm_addr_t a;
		FC_CHECK_RC(sh, idx, farm_alloc(f, FARM_OBJ_MAX, FARM_NULL, &a), 0);
		FC_CHECK_RC(sh, idx, farm_write(f, a, in, FARM_OBJ_MAX), 0);
		sh->addr[0] = a;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	farm_addr_t a = sh->addr[0];
	FC_CHECK_RC(sh, idx, farm_obj_size(f, a, &sz), 0);
	FC_CHECK(sh, idx, sz == FARM_OBJ_MAX);
	memset(out, 0, sizeof(out));
	FC_CHECK_RC(sh, idx, farm_read(f, a, out, FARM_OBJ_MAX, NULL), 0);
	FC_CHECK(sh, idx, memcmp(in, out, FARM_OBJ_MAX) == 0);
	const struct farm_replica *x = f->regions[FARM_REGION(a)].mine;
	if (x) {
		/* Payload bytes as stored in our replica, line by line. */
		const uint8_t *p = x->base + FARM_OFFSET(a);
		for (uint32_t at = 0, line = 0; at < FARM_OBJ_MAX; line++, at += FARM_LINE_PAYLOAD) {
			uint32_t k = FARM_OBJ_MAX - at < FARM_LINE_PAYLOAD ? FARM_OBJ_MAX - at
									 : FARM_LINE_PAYLOAD;
			FC_CHECK(sh, idx, memcmp(p + line * FARM_LINE + 8, in + at, k) == 0);
		}
		__atomic_add_fetch(&sh->count[0][0], 1, __ATOMIC_ACQ_REL);
	}
	return 0;
}

static void test_largest_object(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, 3, "fbig", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_big, NULL, sh, 10000, 40000), 0);
	assert_int_equal(sh->count[0][0], 3); /* checked in all three replicas */
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_three_nodes),
		cmocka_unit_test(test_four_nodes_two_replicas),
		cmocka_unit_test(test_two_nodes_no_backup),
		cmocka_unit_test(test_largest_object),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
