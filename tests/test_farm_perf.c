/* test_farm_perf.c - the read hot path on a 3-node shm cluster: one client
 * thread reading a remote 64-byte object with one-sided READs (and a local
 * one for comparison). Throughput is the median over many short batches
 * (a batch that was preempted does not count), latency the median and tail
 * of single reads. Asserts the latency bar (median <= 2 us); prints
 * the throughput (the >= 5 M/s bar is for a quiet machine, see docs). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"

#define BATCHES 200
#define BATCH 5000
#define SINGLES 50000

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

/* val[0..4]: remote batch-median ns/read, remote median, p99, local batch ns/read */
static int measure(struct farm *f, int idx, struct fc_shared *sh, farm_addr_t a, int slot)
{
	static uint64_t lat[SINGLES], batch[BATCHES];
	uint8_t buf[64];

	for (int i = 0; i < 20000; i++)
		FC_CHECK_RC(sh, idx, farm_read(f, a, buf, 64, NULL), 0);
	for (int b = 0; b < BATCHES; b++) {
		uint64_t t0 = now_ns();
		for (int i = 0; i < BATCH; i++)
			if (farm_read(f, a, buf, 64, NULL))
				return 2;
		batch[b] = now_ns() - t0;
	}
	qsort(batch, BATCHES, sizeof(batch[0]), cmp_u64);
	sh->val[slot] = batch[BATCHES / 2] * 1000 / BATCH; /* picoseconds per read */
	for (int i = 0; i < SINGLES; i++) {
		uint64_t t0 = now_ns();
		if (farm_read(f, a, buf, 64, NULL))
			return 3;
		lat[i] = now_ns() - t0;
	}
	qsort(lat, SINGLES, sizeof(lat[0]), cmp_u64);
	sh->val[slot + 1] = lat[SINGLES / 2];
	sh->val[slot + 2] = lat[SINGLES * 99 / 100];
	for (int i = 0; i < 64; i++)
		FC_CHECK(sh, idx, buf[i] == (uint8_t)(i + 1));
	return 0;
}

static int node_perf(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	uint8_t buf[64];

	(void)arg;
	if (idx == 1) {
		farm_addr_t remote = FARM_NULL, local = FARM_NULL;
		uint32_t rep[8];
		for (uint32_t r = 0; r < farm_get_config(f)->regions; r++) {
			farm_region_replicas(f, r, rep, 8);
			farm_addr_t *which = rep[0] == farm_self(f) ? &local : &remote;
			if (*which == FARM_NULL)
				FC_CHECK_RC(sh, idx, farm_alloc(f, 64, FARM_ADDR(r, 64), which), 0);
		}
		FC_CHECK(sh, idx, remote != FARM_NULL && local != FARM_NULL);
		for (int i = 0; i < 64; i++)
			buf[i] = (uint8_t)(i + 1);
		FC_CHECK_RC(sh, idx, farm_write(f, remote, buf, 64), 0);
		FC_CHECK_RC(sh, idx, farm_write(f, local, buf, 64), 0);
		int rc = measure(f, idx, sh, remote, 0);
		if (rc)
			return rc;
		rc = measure(f, idx, sh, local, 3);
		if (rc)
			return rc;
		struct farm_stats st;
		farm_get_stats(f, &st);
		sh->val[6] = st.read_retries;
	}
	return 0;
}

static void test_read_remote_64(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, 3, "fperf", 1 << 20, 12, 3);
	assert_int_equal(fc_run(&cfg, node_perf, NULL, sh, 10000, 50000), 0);
	double rps = 1e6 / (double)sh->val[0]; /* M reads/s */
	print_message("remote 64 B: %.2f M reads/s (median batch, %.1f ns/read), latency median "
		      "%llu ns, p99 %llu ns\n",
		      rps, (double)sh->val[0] / 1000, (unsigned long long)sh->val[1],
		      (unsigned long long)sh->val[2]);
	print_message("local 64 B: %.2f M reads/s, latency median %llu ns, p99 %llu ns; "
		      "%llu retries\n",
		      1e6 / (double)sh->val[3], (unsigned long long)sh->val[4],
		      (unsigned long long)sh->val[5], (unsigned long long)sh->val[6]);
	assert_true(sh->val[0] > 0 && sh->val[1] > 0);
#if !defined(__SANITIZE_ADDRESS__)
	assert_true(sh->val[1] <= 2000); /* the bar: median <= 2 us */
#endif
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_remote_64),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
