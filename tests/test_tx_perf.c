/* test_tx_perf.c - the commit path's speed on a 3-node shm cluster with
 * 3-way replication, every node a client, a TATP-like mix (80% read-only:
 * 70% one subscriber row, 10% two rows; 20% updates: 14% one row, 6% two):
 *   - "local": each node works on the subscribers it leads (TATP is
 *     partitionable by subscriber; FaRM places rows with locality hints);
 *   - "spread": subscribers uniformly from all nodes (2/3 remote).
 * Prints committed tx/s (all nodes), abort rate and the median and p99 of
 * farm_tx_commit's time for updates and for all commits. Asserts only what
 * a loaded 2-core machine cannot break: transactions commit, none fails,
 * the counters add up (every committed update is in the rows). The bars
 * (>= 300 k tx/s, median commit <= 20 us) are reported by bench/, and in
 * docs/tx.md with the load they were measured under. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdbool.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"
#include "node.h"
#include "tx.h"

#define SUBS   1024 /* subscriber rows per node */
#define ROW    100  /* bytes: two lines */
#define RUN_MS 3000
#define MAXLAT 400000

struct perf_arg {
	bool local;
	bool cp_wait; /* report commits after the primaries' acks */
	uint64_t seed;
};

struct perf_out {
	uint64_t commits, ro, aborts, updates_committed;
	uint64_t upd_p50, upd_p99, all_p50, all_p99;
	uint64_t elapsed_ms;
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static struct perf_out *outs; /* [3], MAP_SHARED */

static int node_perf(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	const struct perf_arg *pa = arg;
	int n = (int)farm_get_config(f)->nmembers;
	static uint64_t upd_lat[MAXLAT], all_lat[MAXLAT];
	static farm_addr_t rows[3 * SUBS];
	uint64_t nu = 0, na = 0, s = pa->seed + (uint64_t)idx * 977;
	struct perf_out *o = &outs[idx];
	uint8_t buf[ROW];
	uint32_t rep[8];

	/* Rows this node leads, with a 64-bit update counter in front. */
	for (int i = 0; i < SUBS; i++) {
		farm_addr_t a;
		FC_CHECK_RC(sh, idx, farm_alloc(f, ROW, FARM_NULL, &a), 0);
		FC_CHECK(sh, idx, farm_region_replicas(f, FARM_REGION(a), rep, 8) > 0);
		FC_CHECK(sh, idx, rep[0] == farm_self(f));
		sh->addr[idx * SUBS + i] = a;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 30000), 0);
	memcpy(rows, sh->addr, sizeof(rows));
	farm__tx_set_cp_wait(f, pa->cp_wait);
	uint64_t t0 = proc_now_ms(), end = t0 + RUN_MS;
	for (uint64_t it = 0;; it++) {
		if ((it & 255) == 0 && proc_now_ms() >= end)
			break;
		unsigned mix = (unsigned)(rnd(&s) % 100);
		int nrows = mix < 70 ? 1 : mix < 80 ? 2 : mix < 94 ? 1 : 2;
		bool upd = mix >= 80;
		farm_addr_t r[2];
		for (int k = 0; k < nrows; k++) {
			int owner = pa->local ? idx : (int)(rnd(&s) % 3);
			r[k] = rows[owner * SUBS + (int)(rnd(&s) % SUBS)];
		}
		if (nrows == 2 && r[0] == r[1])
			nrows = 1;
		struct farm_tx_result res;
		struct farm_tx *tx;
		int rc = farm_tx_begin(f, &tx);
		FC_CHECK_RC(sh, idx, rc, 0);
		for (int k = 0; k < nrows && rc == 0; k++) {
			rc = farm_tx_read(tx, r[k], buf, ROW);
			if (rc == 0 && upd) {
				uint64_t c;
				memcpy(&c, buf, 8);
				c++;
				memcpy(buf, &c, 8);
				rc = farm_tx_write(tx, r[k], buf, ROW);
			}
		}
		FC_CHECK(sh, idx, rc == 0 || rc == -EAGAIN);
		rc = farm_tx_commit(tx, &res);
		if (rc == 0) {
			o->commits++;
			if (upd) {
				o->updates_committed += (uint64_t)nrows;
				if (nu < MAXLAT)
					upd_lat[nu++] = res.commit_ns;
			} else {
				o->ro++;
			}
			if (na < MAXLAT)
				all_lat[na++] = res.commit_ns;
		} else {
			FC_CHECK(sh, idx,
				 res.reason != FARM_ABORT_FAILURE &&
				     res.reason != FARM_ABORT_LOG_FULL);
			o->aborts++;
		}
	}
	o->elapsed_ms = proc_now_ms() - t0;
	qsort(upd_lat, nu, 8, cmp_u64);
	qsort(all_lat, na, 8, cmp_u64);
	o->upd_p50 = nu ? upd_lat[nu / 2] : 0;
	o->upd_p99 = nu ? upd_lat[nu * 99 / 100] : 0;
	o->all_p50 = na ? all_lat[na / 2] : 0;
	o->all_p99 = na ? all_lat[na * 99 / 100] : 0;
	__atomic_add_fetch(&sh->flag[0], 1, __ATOMIC_ACQ_REL);
	/* Serve the others until they are through, then check the counters:
	 * the rows hold every committed update. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 30000), 0);
	if (idx == 0) {
		uint64_t sum = 0, want = 0;
		for (int i = 0; i < 3 * SUBS; i++) {
			uint64_t c;
			FC_CHECK_RC(sh, idx, farm_read(f, rows[i], &c, 8, NULL), 0);
			sum += c;
		}
		for (int j = 0; j < n; j++)
			want += outs[j].updates_committed;
		FC_CHECK(sh, idx, sum == want);
	}
	return 0;
}

static void run(bool local, bool cp_wait)
{
	struct farm_config cfg;
	struct perf_arg pa = {local, cp_wait, (uint64_t)proc_now_ms() | 1};
	struct perf_out tot = {0};
	uint64_t upd50 = 0, upd99 = 0, all50 = 0, all99 = 0, ms = 0;

	outs = proc_shared(3 * sizeof(*outs));
	fc_config(&cfg, 3, local ? "txperfl" : "txperfs", 4 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_perf, &pa, NULL, 10000, 40000), 0);
	for (int i = 0; i < 3; i++) {
		tot.commits += outs[i].commits;
		tot.ro += outs[i].ro;
		tot.aborts += outs[i].aborts;
		upd50 += outs[i].upd_p50;
		upd99 = outs[i].upd_p99 > upd99 ? outs[i].upd_p99 : upd99;
		all50 += outs[i].all_p50;
		all99 = outs[i].all_p99 > all99 ? outs[i].all_p99 : all99;
		ms = outs[i].elapsed_ms > ms ? outs[i].elapsed_ms : ms;
	}
	print_message("%s%s: %.0f committed tx/s (%llu commits, %llu read-only, %.2f%% aborts) "
		      "commit time: updates median %.1f us p99 %.1f us, all median %.2f us "
		      "p99 %.1f us (medians averaged over nodes, p99 the worst node)\n",
		      local ? "local" : "spread", cp_wait ? " (commit after primaries' acks)" : "",
		      (double)tot.commits * 1000.0 / (double)ms, (unsigned long long)tot.commits,
		      (unsigned long long)tot.ro,
		      100.0 * (double)tot.aborts / (double)(tot.commits + tot.aborts),
		      (double)upd50 / 3000.0, (double)upd99 / 1000.0, (double)all50 / 3000.0,
		      (double)all99 / 1000.0);
	assert_true(tot.commits > 1000);
	proc_unshare(outs, 3 * sizeof(*outs));
}

static void test_tatp_local(void **state)
{
	(void)state;
	run(true, false);
}

static void test_tatp_spread(void **state)
{
	(void)state;
	run(false, false);
}

static void test_tatp_spread_cp_wait(void **state)
{
	(void)state;
	run(false, true);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_tatp_local, proc_teardown),
	    cmocka_unit_test_teardown(test_tatp_spread, proc_teardown),
	    cmocka_unit_test_teardown(test_tatp_spread_cp_wait, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
