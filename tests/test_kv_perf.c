/* test_kv_perf.c - the cost of a lookup in the key-value store: a GET of a
 * present small key (16-byte key, 32-byte value: FaRM's setting) is ONE
 * one-sided READ and allocates nothing, whether the segment is in this
 * node's memory or another's; throughput and latency are printed (one
 * thread per node, 2 busy cores: read the numbers as rough). Multi-get of
 * 16 keys per call is measured too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <malloc.h>
#include <time.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "farm/kv.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"

#define NKEYS 20000u
#define GETS  400000u
#define LAT   20000u

static void key_of(char k[16], uint32_t id)
{
	memset(k, 0, 16);
	snprintf(k, 16, "key%011u", id);
}

static uint64_t ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* Run GETS random gets; the READs per get and the bytes allocated meanwhile
 * go to the shared counters of this node. */
static int measure(struct farm *f, struct farm_kv *kv, int idx, struct fc_shared *sh)
{
	static uint64_t lat[LAT];
	char k[16];
	uint8_t v[64];
	size_t vl;
	uint32_t x = 99u + (uint32_t)idx;
	struct farm_kv_stats a, b;
	struct mallinfo2 m0, m1;

	farm_kv_get_stats(kv, &a);
	m0 = mallinfo2();
	uint64_t t0 = ns();
	for (uint32_t i = 0; i < GETS; i++) {
		x = x * 1103515245u + 12345u;
		key_of(k, (x >> 4) % NKEYS);
		int rc = farm_kv_get(kv, k, 16, v, sizeof(v), &vl, NULL);
		if (rc || vl != 32 || memcmp(v, k, 16)) {
			snprintf(sh->err[idx], sizeof(sh->err[idx]), "get %u: rc %d len %zu", i, rc,
				 vl);
			return 1;
		}
		if (i % 4096 == 0)
			farm_poll(f);
	}
	uint64_t t1 = ns();
	m1 = mallinfo2();
	farm_kv_get_stats(kv, &b);
	for (uint32_t i = 0; i < LAT; i++) {
		x = x * 1103515245u + 12345u;
		key_of(k, (x >> 4) % NKEYS);
		uint64_t s = ns();
		farm_kv_get(kv, k, 16, v, sizeof(v), &vl, NULL);
		lat[i] = ns() - s;
	}
	qsort(lat, LAT, sizeof(lat[0]), cmp64);
	sh->count[idx][0] = (uint64_t)((double)GETS * 1e9 / (double)(t1 - t0));
	sh->count[idx][1] = lat[LAT / 2];
	sh->count[idx][2] = lat[LAT * 99 / 100];
	sh->count[idx][3] = b.get_reads - a.get_reads;
	sh->count[idx][4] = b.gets - a.gets;
	sh->count[idx][5] = m1.uordblks - m0.uordblks + (m1.hblkhd - m0.hblkhd);

	/* Multi-get, 16 keys a call. */
	struct farm_kv_item it[16];
	char keys[16][16];
	uint8_t vals[16][64];
	uint64_t found = 0;
	t0 = ns();
	for (uint32_t i = 0; i < GETS / 16; i++) {
		for (int j = 0; j < 16; j++) {
			x = x * 1103515245u + 12345u;
			key_of(keys[j], (x >> 4) % NKEYS);
			it[j].key = keys[j];
			it[j].klen = 16;
			it[j].val = vals[j];
			it[j].cap = sizeof(vals[j]);
		}
		found += (uint64_t)farm_kv_mget(kv, it, 16);
		if (i % 256 == 0)
			farm_poll(f);
	}
	t1 = ns();
	FC_CHECK(sh, idx, found == (GETS / 16) * 16);
	sh->count[idx][6] = (uint64_t)((double)(GETS / 16 * 16) * 1e9 / (double)(t1 - t0));
	return 0;
}

static int node_perf(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct farm_kv *kv;
	struct farm_kv_opts o = {FARM_KV_CREATE, NKEYS};
	char k[16];
	uint8_t v[32];

	if (idx == 0) {
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "perf", &o, &kv), 0);
		for (uint32_t id = 0; id < NKEYS; id++) {
			key_of(k, id);
			memcpy(v, k, 16);
			memset(v + 16, 'v', 16);
			FC_CHECK_RC(sh, idx, farm_kv_put(kv, k, 16, v, 32, FARM_KV_SET, NULL), 0);
		}
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 2, 60000), 0);
	if (idx == 1)
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "perf", NULL, &kv), 0);
	/* One at a time, so the two nodes do not share the 2 cores. */
	for (int turn = 0; turn < 2; turn++) {
		if (turn == idx && measure(f, kv, idx, sh))
			return 1;
		FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1 + turn, 2, 120000), 0);
	}
	farm_kv_close(kv);
	return 0;
}

static void test_kv_perf(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	/* One replica, one region per node: segments are spread over the
	 * regions, so each node reads about half of them in place and the
	 * other half with one-sided READs of the other node's memory. */
	fc_config(&cfg, 2, "kvp", 32u << 20, 2, 1);
	assert_int_equal(fc_run(&cfg, node_perf, NULL, sh, 10000, 240000), 0);
	for (int i = 0; i < 2; i++) {
		print_message(
		    "node %d: %llu gets/s, median %llu ns, p99 %llu ns; %llu READs for "
		    "%llu gets; %lld bytes allocated; mget x16: %llu lookups/s\n",
		    i + 1, (unsigned long long)sh->count[i][0], (unsigned long long)sh->count[i][1],
		    (unsigned long long)sh->count[i][2], (unsigned long long)sh->count[i][3],
		    (unsigned long long)sh->count[i][4], (long long)sh->count[i][5],
		    (unsigned long long)sh->count[i][6]);
		/* A present small key: exactly one READ per get, no allocation. */
		assert_int_equal(sh->count[i][3], sh->count[i][4]);
		assert_int_equal(sh->count[i][4], GETS);
		assert_int_equal((int64_t)sh->count[i][5], 0);
	}
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_kv_perf, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
