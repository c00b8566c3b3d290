/* test_tx_bank.c - strict serializability of FaRM transactions, end to
 * end: the bank workload (src/farm/workload.h) on a forked 3-node shm
 * cluster with 3-way replication, every node a client issuing transfers
 * and read-only audits against accounts spread over every primary. Each
 * node records every attempt (reads with the version and writer they saw,
 * writes with the version they installed, real-time bounds) in its own
 * shared-memory log; the parent merges the logs and runs the history
 * checker (tests/helpers/history.h). Passing means: no cycle in the
 * dependency graph with real-time edges, no lost update, no read of a
 * value no committed transaction wrote, the total unchanged (audited by
 * every committed audit and at the end), no balance ever negative.
 *
 * A sabotage run proves the harness can fail: a node does a plain,
 * non-transactional read-modify-write racing a committed transfer, and the
 * checker and the audit must both catch it.
 *
 * Randomised: the seed is printed, BANK_SEED=n replays it. BANK_TXS (attempts
 * per node), BANK_COMMITS (committed transactions per node to reach) and
 * BANK_MS (time bound) lengthen a run: bench/farm_tx.sh runs a million
 * committed transactions through this program that way. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/history.h"
#include "helpers/proc.h"
#include "workload.h"

#define NODES	    3
#define PROGRESS_MS 30000

struct bank_run {
	uint32_t accounts, max_transfer, audit_pct;
	uint64_t txs;	  /* per node, at most */
	uint64_t commits; /* per node: stop once this many committed (0: no target) */
	uint64_t min_txs; /* per node, at least (else the run failed to run) */
	uint32_t max_ms;  /* per node, at most (a loaded machine shortens the run) */
	uint64_t seed;
	bool sabotage;
	struct hist_log *logs; /* NODES logs, in shared memory */
};

/* Per-node counters in fc_shared.count[idx][]. */
enum {
	C_ATTEMPTS,
	C_COMMITTED,
	C_ABORTED,
	C_ROLLED,
	C_ERRORS,
	C_VIOLATIONS,
	C_DROPPED,
	C_LAST_ERROR
};

static void record(void *ctx, const struct farm_wl_rec *r)
{
	struct hist_tx t = {r->id,
			    r->start_ns,
			    r->end_ns,
			    r->committed,
			    r->nreads,
			    r->nwrites,
			    (const struct hist_read *)r->reads,
			    (const struct hist_write *)r->writes};

	hist_log_add(ctx, &t); /* a full log counts its drops: the test fails on them */
}

_Static_assert(sizeof(struct farm_wl_read) == sizeof(struct hist_read), "same read record");
_Static_assert(sizeof(struct farm_wl_write) == sizeof(struct hist_write), "same write record");

#define SABOTEUR_ID ((1ull << 48) | 0xbad)

struct account { /* the bank's layout (workload_bank.c) */
	uint64_t ver, writer;
	int64_t balance;
};

/* The saboteur (node index 0): a plain read of account 0, wait until node
 * index 1 committed a transfer out of it, then a plain write of what was
 * read plus SABOTAGE_DELTA, recorded as if it were a committed transaction.
 * The delta is larger than anything the third node's transfers (300 of at
 * most 10) can move account 0 by meanwhile: with +5, their net +5 in that
 * window cancelled the lost update in the audit's total (seen on CI). */
#define SABOTAGE_DELTA 100000
static int sabotage(struct farm *f, int idx, struct fc_shared *sh, struct farm_bank *b,
		    struct hist_log *log)
{
	farm_addr_t a = farm_bank_account(b, 0), c = farm_bank_account(b, 1);
	struct account v, w;
	uint64_t end = proc_now_ms() + 20000;

	if (idx == 1) {
		struct farm_wl_rec *r = calloc(1, sizeof(*r));
		FC_CHECK(sh, idx, r != NULL);
		FC_CHECK_RC(sh, idx, proc_wait_u32(&sh->flag[0], 1, 20000), 0);
		/* A committed transfer 0 -> 1, retried until it commits. */
		for (int tries = 0;; tries++) {
			struct farm_tx *tx;
			struct farm_tx_result res;
			FC_CHECK(sh, idx, tries < 1000);
			r->id = (2ull << 48) | (uint64_t)(tries + 1);
			r->start_ns = farm_wl_now_ns();
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			int rc = farm_tx_read(tx, a, &v, sizeof(v));
			if (rc == 0)
				rc = farm_tx_read(tx, c, &w, sizeof(w));
			if (rc < 0) {
				farm_tx_abort(tx);
				continue;
			}
			r->nreads = 2;
			r->reads[0] = (struct farm_wl_read){a, v.ver, v.writer};
			r->reads[1] = (struct farm_wl_read){c, w.ver, w.writer};
			r->nwrites = 2;
			r->writes[0] = (struct farm_wl_write){a, v.ver + 1};
			r->writes[1] = (struct farm_wl_write){c, w.ver + 1};
			v = (struct account){v.ver + 1, r->id, v.balance - 1};
			w = (struct account){w.ver + 1, r->id, w.balance + 1};
			/* A write reads the whole object at a version consistent
			 * with the reads: the other node's transfers may have
			 * moved on (-EAGAIN dooms the tx: record it, retry). */
			rc = farm_tx_write(tx, a, &v, sizeof(v));
			if (rc == 0)
				rc = farm_tx_write(tx, c, &w, sizeof(w));
			FC_CHECK(sh, idx, rc == 0 || rc == -EAGAIN);
			rc = farm_tx_commit(tx, &res);
			r->end_ns = farm_wl_now_ns();
			r->committed = rc == 0;
			record(log, r);
			if (rc == 0)
				break;
			FC_CHECK_RC(sh, idx, rc, -EAGAIN);
		}
		free(r);
		proc_set_u32(&sh->flag[1], 1);
		return 0;
	}
	/* idx 0 */
	struct hist_read rd;
	struct hist_write wr;
	struct hist_tx t = {SABOTEUR_ID, farm_wl_now_ns(), 0, true, 1, 1, &rd, &wr};
	FC_CHECK_RC(sh, idx, farm_read(f, a, &v, sizeof(v), NULL), 0);
	rd = (struct hist_read){a, v.ver, v.writer};
	proc_set_u32(&sh->flag[0], 1);
	while (!proc_get_u32(&sh->flag[1])) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		if (farm_poll(f) == 0)
			farm_idle(f, 1);
	}
	v = (struct account){v.ver + 1, t.id, v.balance + SABOTAGE_DELTA};
	wr = (struct hist_write){a, v.ver};
	FC_CHECK_RC(sh, idx, farm_write(f, a, &v, sizeof(v)), 0);
	t.end_ns = farm_wl_now_ns();
	hist_log_add(log, &t);
	return 0;
}

static int node_bank(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	const struct bank_run *br = arg;
	struct hist_log *log = &br->logs[idx];
	struct farm_wl_stats *st = calloc(1, sizeof(*st));
	struct farm_bank *b;
	int n = (int)farm_get_config(f)->nmembers;

	FC_CHECK(sh, idx, st != NULL);
	if (idx == 0) {
		struct farm_bank_params p = {br->accounts, 1000000, br->max_transfer, 0};
		farm_addr_t root;
		FC_CHECK_RC(sh, idx, farm_bank_create(f, &p, &root), 0);
		sh->addr[0] = root;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 60000), 0);
	FC_CHECK_RC(sh, idx,
		    farm_bank_open(f, sh->addr[0], br->seed * 1000003u + (uint64_t)idx + 1, &b), 0);
	farm_bank_set_params(b, br->max_transfer, br->audit_pct);
	farm_bank_set_recorder(b, record, log);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 60000), 0);

	if (br->sabotage && idx < 2) {
		int rc = sabotage(f, idx, sh, b, log);
		if (rc)
			return rc;
	} else {
		uint64_t t0 = proc_now_ms(), stop = t0 + br->max_ms, report = t0 + PROGRESS_MS;
		for (uint64_t i = 0; i < br->txs && (!br->commits || st->committed < br->commits);
		     i++) {
			int rc = farm_bank_step(b, st);
			if (rc < 0) {
				sh->count[idx][C_LAST_ERROR] = (uint64_t)-rc;
				break;
			}
			if ((i & 63) != 0)
				continue;
			uint64_t now = proc_now_ms();
			if (i >= br->min_txs && now >= stop)
				break;
			if (now >= report) { /* long runs (bench/farm_tx.sh) say how far */
				fprintf(
				    stderr, "node %d: %llu transactions, %llu committed, %.0f s\n",
				    idx + 1, (unsigned long long)i,
				    (unsigned long long)st->committed, (double)(now - t0) / 1e3);
				report = now + PROGRESS_MS;
			}
		}
	}
	sh->count[idx][C_ATTEMPTS] = st->attempts;
	sh->count[idx][C_COMMITTED] = st->committed;
	sh->count[idx][C_ABORTED] = st->aborted;
	sh->count[idx][C_ROLLED] = st->rolled_back;
	sh->count[idx][C_ERRORS] = st->errors;
	sh->count[idx][C_VIOLATIONS] = st->violations;
	sh->count[idx][C_DROPPED] = log->dropped;
	/* Everyone done, then the final audit on the state every node left. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, n, (int)br->max_ms + 120000), 0);
	if (idx == 0) {
		/* Every transaction has returned, so nothing may stay locked for
		 * long: -EAGAIN (an account locked 200 ms) is retried for a while
		 * (counted, and printed), then fails. */
		int64_t total, expected;
		uint32_t neg;
		uint64_t t0 = proc_now_ms();
		int rc;
		while ((rc = farm_bank_audit(b, &total, &expected, &neg)) == -EAGAIN &&
		       proc_now_ms() - t0 < 5000)
			sh->val[3]++;
		FC_CHECK_RC(sh, idx, rc, 0);
		sh->val[0] = (uint64_t)total;
		sh->val[1] = (uint64_t)expected;
		sh->val[2] = neg;
	}
	farm_bank_close(b);
	free(st);
	return 0;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *e = getenv(name);

	return e && *e ? strtoull(e, NULL, 0) : dflt;
}

static uint64_t pick_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return env_u64("BANK_SEED",
		       ((uint64_t)ts.tv_nsec ^ (uint64_t)getpid() << 16) % 1000000007u);
}

/* Run the bank; the merged history's report in *rep, the counters in the
 * returned fc_shared (the caller unshares it). */
static struct fc_shared *run_bank(struct bank_run *br, struct hist_report *rep)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	size_t per = (size_t)br->txs * hist_rec_size(2, 2) +
		     (size_t)(br->txs * br->audit_pct / 100 + 16) *
			 hist_rec_size(br->accounts < FARM_TX_MAX_READS ? br->accounts : 32, 0) *
			 2 +
		     (1u << 16);
	uint8_t *mem = proc_shared(per * NODES);
	struct history *h = hist_new();
	uint64_t t0 = proc_now_ms();

	br->logs = proc_shared(NODES * sizeof(*br->logs));
	for (int i = 0; i < NODES; i++)
		hist_log_init(&br->logs[i], mem + per * (size_t)i, per);
	print_message("seed %llu (BANK_SEED=%llu replays it): %u accounts, up to %llu txs per "
		      "node (until %llu committed), %u%% audits%s\n",
		      (unsigned long long)br->seed, (unsigned long long)br->seed, br->accounts,
		      (unsigned long long)br->txs, (unsigned long long)br->commits, br->audit_pct,
		      br->sabotage ? ", sabotaged" : "");
	/* 2 regions per node, small: accounts land on every primary. */
	fc_config(&cfg, NODES, "fbank", 1 << 20, 2 * NODES, 3);
	int rc = fc_run(&cfg, node_bank, br, sh, 20000, (int)br->max_ms + 180000);
	uint64_t t1 = proc_now_ms();
	/* The logs are checked even when a node failed: a long run's history
	 * is worth its verdict either way. */
	for (int i = 0; i < NODES; i++) {
		print_message(
		    "node %d: %llu attempts, %llu committed, %llu aborted, %llu rolled back, "
		    "%llu errors (last %s), %llu violations, %llu records (%llu dropped)\n",
		    i + 1, (unsigned long long)sh->count[i][C_ATTEMPTS],
		    (unsigned long long)sh->count[i][C_COMMITTED],
		    (unsigned long long)sh->count[i][C_ABORTED],
		    (unsigned long long)sh->count[i][C_ROLLED],
		    (unsigned long long)sh->count[i][C_ERRORS],
		    sh->count[i][C_LAST_ERROR] ? strerror((int)sh->count[i][C_LAST_ERROR]) : "none",
		    (unsigned long long)sh->count[i][C_VIOLATIONS],
		    (unsigned long long)br->logs[i].records,
		    (unsigned long long)br->logs[i].dropped);
		assert_int_equal(hist_merge(h, br->logs[i].buf, br->logs[i].len), 0);
	}
	assert_int_equal(hist_check(h, rep), 0);
	print_message("history: %llu txs, %llu committed, %llu aborted, %llu reads, %llu writes; "
		      "graph %llu nodes, %llu edges; %llu anomalies (run %.1f s, check %.1f s)\n",
		      (unsigned long long)rep->txs, (unsigned long long)rep->committed,
		      (unsigned long long)rep->aborted, (unsigned long long)rep->reads,
		      (unsigned long long)rep->writes, (unsigned long long)rep->nodes,
		      (unsigned long long)rep->edges, (unsigned long long)rep->anomalies,
		      (double)(t1 - t0) / 1e3, (double)(proc_now_ms() - t1) / 1e3);
	print_message("final audit: total %lld, expected %lld, %llu negative (%llu retries of an "
		      "account still locked)\n",
		      (long long)sh->val[0], (long long)sh->val[1], (unsigned long long)sh->val[2],
		      (unsigned long long)sh->val[3]);
	if (rep->anomalies)
		print_message("checker:\n%s", rep->text);
	assert_int_equal(rc, 0);
	hist_free(h);
	proc_unshare(mem, per * NODES);
	proc_unshare(br->logs, NODES * sizeof(*br->logs));
	br->logs = NULL;
	return sh;
}

static void expect_clean(const struct bank_run *br, struct fc_shared *sh,
			 const struct hist_report *rep)
{
	uint64_t committed = 0;

	for (int i = 0; i < NODES; i++) {
		assert_int_equal(sh->count[i][C_ERRORS], 0);
		assert_int_equal(sh->count[i][C_VIOLATIONS], 0);
		assert_int_equal(sh->count[i][C_DROPPED], 0);
		assert_true(sh->count[i][C_ATTEMPTS] >= br->min_txs);
		assert_true(sh->count[i][C_COMMITTED] >= br->commits);
		committed += sh->count[i][C_COMMITTED];
	}
	assert_int_equal(rep->anomalies, 0);
	assert_int_equal(rep->committed, committed); /* every commit is in the history */
	assert_true(committed >= br->min_txs);	     /* the run ran */
	assert_int_equal((int64_t)sh->val[0], (int64_t)sh->val[1]);
	assert_int_equal(sh->val[2], 0);
}

/* Accounts over every primary, the audit reading all of them: a checked
 * snapshot of the whole bank every few transactions. */
static void test_bank_spread(void **state)
{
	uint64_t commits = env_u64("BANK_COMMITS", 0);
	struct bank_run br = {.accounts = 60,
			      .max_transfer = 400000, /* overdrafts happen: rollbacks */
			      .audit_pct = 5,
			      /* room in the logs for aborts on the way to `commits` */
			      .txs = commits ? 2 * commits : env_u64("BANK_TXS", 3000),
			      .commits = commits,
			      .min_txs = 200,
			      .max_ms = (uint32_t)env_u64("BANK_MS", 12000),
			      .seed = pick_seed()};
	struct hist_report rep;
	struct fc_shared *sh = run_bank(&br, &rep);

	expect_clean(&br, sh, &rep);
	proc_unshare(sh, sizeof(*sh));
}

/* Four accounts, three nodes: constant conflicts, aborts by every reason
 * the protocol has; still no anomaly. */
static void test_bank_hot(void **state)
{
	struct bank_run br = {.accounts = 4,
			      .max_transfer = 100,
			      .audit_pct = 10,
			      .txs = env_u64("BANK_TXS", 2000),
			      .min_txs = 200,
			      .max_ms = (uint32_t)env_u64("BANK_MS", 10000),
			      .seed = pick_seed()};
	struct hist_report rep;
	struct fc_shared *sh = run_bank(&br, &rep);

	expect_clean(&br, sh, &rep);
	proc_unshare(sh, sizeof(*sh));
}

/* A plain read-modify-write racing a committed transfer: a lost update the
 * checker must report, and a total the audit must find changed. */
static void test_bank_sabotage_is_caught(void **state)
{
	struct bank_run br = {.accounts = 8,
			      .max_transfer = 10,
			      .audit_pct = 0,
			      .txs = 300,
			      .min_txs = 0,
			      .max_ms = 10000,
			      .seed = pick_seed(),
			      .sabotage = true};
	struct hist_report rep;
	struct fc_shared *sh = run_bank(&br, &rep);

	assert_true(rep.anomalies >= 1);
	assert_true(rep.dup_versions + rep.cycles >= 1);
	char id[32];
	snprintf(id, sizeof(id), "T%#llx", (unsigned long long)SABOTEUR_ID);
	assert_non_null(strstr(rep.text, id));
	assert_true((int64_t)sh->val[0] != (int64_t)sh->val[1]);
	proc_unshare(sh, sizeof(*sh));
}

/* `test_tx_bank NAME` runs only the tests matching NAME (bench/farm_tx.sh). */
int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_bank_spread, proc_teardown),
	    cmocka_unit_test_teardown(test_bank_hot, proc_teardown),
	    cmocka_unit_test_teardown(test_bank_sabotage_is_caught, proc_teardown),
	};

	if (argc > 1)
		cmocka_set_test_filter(argv[1]);
	return cmocka_run_group_tests(tests, NULL, NULL);
}
