/*
 * fault_cluster.h - a FaRM cluster under ZooKeeper membership, running the
 * bank, that a test can hurt (kill -9 by pid, stop ZooKeeper, cut a link)
 * and then judge: the harness of tests/test_farm_fault.c.
 *
 * Each member is a forked process that does what farmd does with --zk
 * (tools/farmd/zk.c): farm_membership_start, farm_node_start in the
 * configuration ZooKeeper holds, the lease fence, and on every loop turn
 * farm_membership_take + farm__adopt_config. Its application is a bank
 * client: transfers and full audits over the accounts of farm_bank_create,
 * written here rather than with farm_bank_step for one reason: a
 * coordinator killed inside farm_tx_commit leaves a transaction whose
 * outcome only recovery decides, and the checker must know what it read
 * and wrote. So before every commit the node copies the transaction into a
 * "pending" slot in shared memory; after the commit returns it appends the
 * record to its history log and clears the slot. A dead node's pending
 * transaction is in doubt; fc_judge counts it committed exactly when some
 * committed transaction (the final read included) saw a value it wrote.
 *
 * Everything the parent needs lives in one MAP_SHARED block (struct
 * flt_shared): phases the parent drives, per-node counters, the history
 * logs, the final read of every account and every replica's bytes. After
 * the run, fc_judge checks: the bank total (final read through a
 * survivor), every committed write present in the final state, the merged
 * history (hist_check, the final read included as a transaction), replicas
 * byte for byte on allocated objects, and throughput after the event.
 * Linked into every test program: no cmocka here, waits bounded.
 */
#ifndef TESTS_HELPERS_FAULT_CLUSTER_H
#define TESTS_HELPERS_FAULT_CLUSTER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "farm/farm.h"
#include "helpers/history.h"

#define FLT_MAX_NODES	5
#define FLT_MAX_ACCTS	64
#define FLT_MAX_REGIONS 16
#define FLT_LOG_BYTES	(40u << 20) /* history per node (touched as used) */

enum flt_phase {
	FLT_START = 0, /* members start, node 0 creates the bank */
	FLT_RUN,       /* transfers and audits */
	FLT_STOP,      /* data members drain, read, dump; others wait */
	FLT_QUIT
};

struct flt_pending {
	uint32_t state; /* 1: in farm_tx_commit */
	uint64_t id, start_ns, logged_id;
	uint32_t nreads, nwrites;
	struct hist_read reads[FLT_MAX_ACCTS];
	struct hist_write writes[2];
};

/* flt_node.rstats: the node's recovery and log counters at the dump */
enum {
	FLT_RS_ROUNDS, FLT_RS_RCV_COMMITS, FLT_RS_RCV_ABORTS, FLT_RS_RCV_LOCKED,
	FLT_RS_CB_APPLIED, FLT_RS_CB_SKIPPED, FLT_RS_LATE_INSTALLS, FLT_RS_LATE_UNLOCKS,
	FLT_RS_BAD_RECORDS, FLT_RS_IN_DOUBT, FLT_RS_RESYNCS, FLT_RS_REPLIES_DEFERRED,
	FLT_RS_REPLIES_LOST, FLT_RS_N
};

struct flt_node {
	pid_t pid;
	uint32_t started, ready, finished, dead, removed, in_data;
	uint32_t doubt; /* a commit returned -EIO: its T stays in the pending slot */
	int32_t start_rc, drain_rc, rejoin_rc;
	uint64_t config_id, member_mask; /* bit id: members of its configuration */
	uint32_t is_cm, serving, zk_up, lease_drops;
	uint64_t lease_end_ns;  /* end of the lease that lapsed first */
	uint64_t max_gap_ns;
	uint64_t attempts, committed, aborted, rolled, errors, violations, log_pauses;
	int32_t last_error;
	uint64_t reasons[8];
	uint64_t after_event, first_after_ns; /* commits started after event_ns */
	uint64_t after_lapse, ended_after_lapse; /* commits started / ended after lease_end_ns */
	uint64_t reads_lapsed, reads_lapsed_ok;	 /* plain reads tried while not serving */
	uint64_t adopts, adopt_fail, adopt_ns, unapplied, copy_wait;
	int8_t role[FLT_MAX_REGIONS]; /* at start: -1 none, 0 primary, 1.. backup */
	int8_t held_role[FLT_MAX_REGIONS]; /* at the dump */
	/* At the dump, for the findings when a commit is lost (FLT_RS_*). */
	uint64_t rstats[FLT_RS_N];
	uint32_t stale_take; /* a take with us in removed[] but self_removed false */
	uint64_t nfail;	     /* commits that returned FAILURE or an error: */
	struct {
		uint64_t id, start_ns, end_ns;
		int32_t rc, reason;
	} fail[256]; /* the last 256 (a ring) */
	struct flt_pending pend;
	struct hist_log log;
	char err[256], note[256], rejoin_err[256];
};

struct flt_final {
	uint64_t ver, writer;
	int64_t balance;
	int32_t rc;
	uint32_t retries;
};

struct flt_shared {
	uint32_t phase;
	uint32_t n;		    /* members */
	uint32_t data_mask;	    /* bit idx: takes part in the stop phase */
	uint32_t auditor;	    /* idx reading the final state */
	uint64_t root;
	uint32_t accounts, neligible;
	uint64_t acct[FLT_MAX_ACCTS];
	uint32_t eligible[FLT_MAX_ACCTS]; /* account indexes transfers use */
	uint64_t event_ns;		  /* the fault, for after_event */
	uint32_t bar[8];
	/* sabotage (the self-check): restore an account's early value
	 * before the final read (a lost update); flip a byte of a backup. */
	uint32_t sab_lost, sab_replica, sab_saved;
	struct flt_final saved[FLT_MAX_ACCTS];
	int32_t sab_acct, sab_region;
	uint64_t sab_off;
	uint64_t fin_start_ns, fin_end_ns;
	struct flt_final fin[FLT_MAX_ACCTS];
	struct flt_node node[FLT_MAX_NODES];
};

struct flt_track;

struct flt_opts {
	const char *tag;
	int n;		   /* members */
	uint32_t replicas; /* f + 1 */
	uint32_t regions;  /* 0: 2 per member */
	uint64_t seed;
	const char *zk;	   /* ZooKeeper connect string */
	uint32_t lease_ms; /* 0: FARM_LEASE_DEFAULT_MS */
	bool rejoin;	   /* membership re-registers a removed node */
	uint32_t audit_pct;
	/* udp across namespaces (NULL: shm): member i's namespace and IPv4 */
	const char *netns[FLT_MAX_NODES];
	const char *ip[FLT_MAX_NODES];
};

struct flt_cluster {
	struct flt_opts o;
	struct farm_config seed;
	struct flt_shared *sh;
	uint8_t *logmem;
	uint8_t *dump; /* [node][region][region_size] */
	struct flt_track *track; /* per node: what its committed txs read and wrote */
	size_t dump_len;
	char name[64];
};

/* Fork the members, wait until all run the bank (phase RUN). 0 or -errno
 * with a sentence in err. */
int flt_up(struct flt_cluster *c, const struct flt_opts *o, char *err, size_t errlen);
/* Start the workload (phase RUN): set eligible accounts before. */
void flt_go(struct flt_cluster *c);
/* SIGKILL member idx by pid and reap it (marks it dead). */
void flt_kill(struct flt_cluster *c, int idx);
/* Wait until every live data member's configuration leaves out every
 * member in `gone` (bit idx); ms from event_ns, or -ETIMEDOUT. */
int64_t flt_wait_removed(struct flt_cluster *c, uint32_t gone, int timeout_ms);
/* Sum of `committed` over the members in mask. */
uint64_t flt_commits(const struct flt_cluster *c, uint32_t mask);
/* The idx of the current CM as the members see it, -1 when none says so. */
int flt_cm(const struct flt_cluster *c);
/* Stop the workload; members in data_mask drain, read, dump. 0, or
 * -ETIMEDOUT (some data member never finished: its err says where). */
int flt_stop(struct flt_cluster *c, uint32_t data_mask, int timeout_ms);
/* Quit every member, reap (kill after a bound), free everything. */
void flt_down(struct flt_cluster *c);

/* The verdict of one run, check by check (text: one line per finding). */
struct flt_verdict {
	bool total_ok, final_ok, hist_ok, replicas_ok, resumed_ok, copies_ok;
	int64_t total, expected;
	uint32_t negative, unreadable;
	uint64_t committed, in_doubt, in_doubt_committed, missing;
	uint64_t regions_cmp, objects_cmp, regions_diff, regions_lost, regions_short;
	uint64_t resumed;
	struct hist_report rep;
	char text[8192];
};

/* Judge the run (after flt_stop): `survivors` are the data members;
 * resumed_min commits started after event_ns by survivors are needed. */
void flt_judge(struct flt_cluster *c, uint32_t survivors, uint64_t resumed_min,
	       struct flt_verdict *v);
/* One line per member: counters, lease, errors. */
void flt_print_nodes(const struct flt_cluster *c);

#endif /* TESTS_HELPERS_FAULT_CLUSTER_H */
