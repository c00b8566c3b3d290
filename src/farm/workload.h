/*
 * workload.h - transaction workloads that run inside a node, where a FaRM
 * application runs: the bank (transfers between accounts, the
 * correctness workload) and TATP (the telecom benchmark's mix). farmd's
 * `bench tx` and the bank tests drive them; both only use farm.h.
 *
 * Internal to libfarm (not installed): farmd includes it by path. Every
 * workload has the same shape:
 *   *_create   one node lays out the data set in the shared address space
 *              and returns the address of its root object;
 *   *_open     any node reads the root (and caches the index of addresses,
 *              which never changes after create) into a client handle;
 *   *_step     one transaction, start to commit, retried by nobody: its
 *              outcome lands in the caller's stats and, if asked, in a
 *              history record for the checker (tests/helpers/history.h);
 *   *_close.
 * One client handle per thread that drives the node; no allocation in
 * *_step. Functions return 0 or a negative errno-style code.
 *
 * Objects carry the application's own version and writer id (the id of
 * the transaction that wrote the value) ahead of their data, so a history
 * says what every read actually saw, independently of the system's
 * internal versions.
 */
#ifndef FARM_WORKLOAD_H
#define FARM_WORKLOAD_H

#include <stdbool.h>
#include <stdint.h>

#include "farm/farm.h"

/* ---- latency histogram: log-linear, ~3% wide buckets, no allocation ---- */

#define FARM_LAT_SUB	 32 /* buckets per power of two */
#define FARM_LAT_BUCKETS (64 * FARM_LAT_SUB)

struct farm_lat {
	uint64_t count, sum, max;
	uint64_t n[FARM_LAT_BUCKETS];
};

void farm_lat_add(struct farm_lat *l, uint64_t ns);
/* The value below which a fraction p (0..1) of the samples fall (the
 * middle of its bucket); 0 with no samples. */
uint64_t farm_lat_pct(const struct farm_lat *l, double p);
/* The value that stands for bucket i (its middle): what a node reports
 * when it sends its histogram sparsely, [value, count] per bucket used. */
uint64_t farm_lat_bucket_mid(uint32_t i);
void farm_lat_merge(struct farm_lat *into, const struct farm_lat *from);

/* ---- committed transactions per millisecond (recovery curves) ----
 * A fixed ring of one-millisecond buckets of CLOCK_MONOTONIC (system-wide,
 * so several processes' rings merge by absolute time): slot ms % N counts
 * the commits that ended in millisecond ms. `last_ms` is the newest
 * millisecond written; slots are cleared as time moves past them, so the
 * ring always holds (last_ms - N, last_ms]. No allocation on the path. */

#define FARM_WL_TL_MS 8192u

struct farm_wl_timeline {
	uint64_t last_ms;
	uint32_t n[FARM_WL_TL_MS];
};

void farm_wl_timeline_add(struct farm_wl_timeline *t, uint64_t now_ns);
/* Commits in millisecond `ms` (0 for one older than the ring holds, or
 * one not reached yet). */
uint32_t farm_wl_timeline_get(const struct farm_wl_timeline *t, uint64_t ms);

/* ---- what a run counts ---- */

#define FARM_WL_TYPES 8

struct farm_wl_stats {
	uint64_t attempts, committed;
	uint64_t aborted;     /* conflicts and failures (by reason below) */
	uint64_t rolled_back; /* the transaction's own rule said no (farm_tx_abort) */
	uint64_t errors;      /* a call failed with something other than -EAGAIN */
	int last_error;
	uint64_t reason[8]; /* aborts by enum farm_abort_reason */
	uint64_t type_attempts[FARM_WL_TYPES], type_committed[FARM_WL_TYPES];
	uint64_t violations;	   /* invariant broken (the bank's, TATP's checks) */
	struct farm_lat commit;	   /* farm_tx_commit of committed transactions */
	struct farm_lat commit_rw; /* the same, transactions that wrote */
	struct farm_lat tx;	   /* begin to commit returned, committed ones */
	struct farm_wl_timeline *timeline; /* commits per ms, when the caller set one */
};

/* ---- history records (the layout of tests/helpers/history.h) ---- */

struct farm_wl_read {
	uint64_t obj, ver, writer;
};
struct farm_wl_write {
	uint64_t obj, ver;
};
struct farm_wl_rec {
	uint64_t id, start_ns, end_ns;
	bool committed;
	uint32_t nreads, nwrites;
	struct farm_wl_read reads[FARM_TX_MAX_READS];
	struct farm_wl_write writes[FARM_TX_MAX_WRITES];
};

/* Called after every attempt of a workload with a recorder set. */
typedef void (*farm_wl_record_fn)(void *ctx, const struct farm_wl_rec *r);

/* End one attempt begun at start_ns: commit it (after a read that said
 * -EAGAIN, commit returns the abort and its reason), or roll it back when
 * `rollback` (the transaction's own rule said no), or abort it after an
 * error `rc`; count the outcome in st under `type`. Returns 0 committed,
 * 1 rolled back, -EAGAIN aborted, another negative code for an error;
 * *end_ns gets the time it ended. */
int farm_wl_end(struct farm_tx *tx, int rc, bool rollback, bool wrote, int type, uint64_t start_ns,
		struct farm_wl_stats *st, uint64_t *end_ns);

uint64_t farm_wl_now_ns(void);		/* CLOCK_MONOTONIC, system-wide */
uint64_t farm_wl_rand(uint64_t *state); /* xorshift64*, state != 0 */

/* ---- bank ----------------------------------------------------------------
 * Accounts are one-line objects {version, writer, balance} spread round-robin
 * over every region (so over every primary). A transfer reads two accounts
 * and moves a random amount from one to the other, rolling back when the
 * source would go negative; an audit (audit_pct percent of the
 * transactions) reads every account in one read-only transaction (up to
 * FARM_TX_MAX_READS of them, else a random sample) and checks the total and
 * that no balance is negative. Violations are counted in the stats. */

#define FARM_BANK_TRANSFER 0
#define FARM_BANK_AUDIT	   1

struct farm_bank_params {
	uint32_t accounts;     /* >= 2 */
	int64_t initial;       /* balance of every account, >= 0 */
	uint32_t max_transfer; /* amounts are 1..max_transfer */
	uint32_t audit_pct;    /* 0..100 */
};

struct farm_bank;

int farm_bank_create(struct farm *f, const struct farm_bank_params *p, farm_addr_t *root);
/* seed: the client's random stream (printed by callers, for replay). */
int farm_bank_open(struct farm *f, farm_addr_t root, uint64_t seed, struct farm_bank **out);
void farm_bank_set_recorder(struct farm_bank *b, farm_wl_record_fn fn, void *ctx);
void farm_bank_set_params(struct farm_bank *b, uint32_t max_transfer, uint32_t audit_pct);
int farm_bank_step(struct farm_bank *b, struct farm_wl_stats *st);
/* Read every account with plain reads (after a run): the sum, how many are
 * negative, and what the sum must be. */
int farm_bank_audit(struct farm_bank *b, int64_t *total, int64_t *expected, uint32_t *negative);
uint32_t farm_bank_accounts(const struct farm_bank *b);
farm_addr_t farm_bank_account(const struct farm_bank *b, uint32_t i);
void farm_bank_close(struct farm_bank *b);

/* ---- TATP ----------------------------------------------------------------
 * The TATP schema (Subscriber, Access_Info, Special_Facility,
 * Call_Forwarding) and its mix: GET_SUBSCRIBER_DATA 35%, GET_NEW_DESTINATION
 * 10%, GET_ACCESS_DATA 35%, UPDATE_SUBSCRIBER_DATA 2%, UPDATE_LOCATION 14%,
 * INSERT_CALL_FORWARDING 2%, DELETE_CALL_FORWARDING 2%. Rows live in three
 * objects per subscriber (see workload_tatp.c); the index from subscriber
 * id to addresses is a plain array of addresses in FaRM objects. */

enum farm_tatp_tx {
	FARM_TATP_GET_SUBSCRIBER_DATA,
	FARM_TATP_GET_NEW_DESTINATION,
	FARM_TATP_GET_ACCESS_DATA,
	FARM_TATP_UPDATE_SUBSCRIBER_DATA,
	FARM_TATP_UPDATE_LOCATION,
	FARM_TATP_INSERT_CALL_FORWARDING,
	FARM_TATP_DELETE_CALL_FORWARDING,
	FARM_TATP_NTYPES
};
const char *farm_tatp_name(int type);

struct farm_tatp;

int farm_tatp_create(struct farm *f, uint32_t subscribers, uint64_t seed, farm_addr_t *root);
int farm_tatp_open(struct farm *f, farm_addr_t root, uint64_t seed, struct farm_tatp **out);
int farm_tatp_step(struct farm_tatp *t, struct farm_wl_stats *st);
uint32_t farm_tatp_subscribers(const struct farm_tatp *t);
void farm_tatp_close(struct farm_tatp *t);

#endif /* FARM_WORKLOAD_H */
