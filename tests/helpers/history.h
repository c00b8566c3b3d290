/*
 * history.h - a checker for strict serializability of transaction
 * histories, and the log the workloads record them in.
 *
 * Every transaction of a run is one record: a unique id, its real-time
 * bounds [start, end] on CLOCK_MONOTONIC (system-wide, so records from
 * several processes compare), whether it committed, what it read (object,
 * version seen, and the writer id the value carried) and what it wrote
 * (object, version installed). Versions are the application's: a workload
 * stores (version, writer id) inside each object and a write installs the
 * version it read plus one, so the checker sees exactly what the data said
 * rather than trusting the system under test. Version 0 with writer 0 is
 * the initial state of every object.
 *
 * The checker (hist_check) builds the dependency graph over committed
 * transactions (Adya's DSG):
 *   wr  the writer of (x, v) -> every reader of (x, v)
 *   ww  the writer of (x, v) -> the writer of the next version of x
 *   rw  a reader of (x, v)   -> the writer of the next version of x
 *   rt  T1 -> T2 when T1.end < T2.start (real-time order: the "strict")
 * and reports every strongly connected component with more than one
 * transaction: a cycle means no serial order agrees with what was read and
 * with real time. Real-time edges would be quadratic; instead every
 * transaction points at a node for its end time, end-time nodes form a
 * chain in time order, and the last end before a transaction's start points
 * at it, so a path T1 -> T2 through the chain exists exactly when
 * T1.end < T2.start (O(n log n) nodes and edges).
 *
 * Also anomalies, without a cycle: two committed transactions installing
 * the same version of an object (a lost update); a committed read of a
 * version no committed transaction installed (a dirty read, or a value an
 * aborted transaction leaked); a read whose writer id disagrees with the
 * committed writer of that version; malformed records (end < start, id 0 or
 * repeated). Aborted transactions are never writers; their records only
 * help explain a bad read.
 *
 * Logs: a hist_log is an append-only byte buffer in memory the caller owns
 * (a MAP_SHARED page that forked nodes write, or plain memory saved to a
 * file); one process or thread per log. hist_merge* reads logs back into a
 * history; records of several logs merge in any order.
 *
 * Test helper: plain C, no cmocka, returns 0 or a negative errno.
 */
#ifndef TESTS_HELPERS_HISTORY_H
#define TESTS_HELPERS_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hist_read {
	uint64_t obj;	 /* object (a FaRM address, or any unique key) */
	uint64_t ver;	 /* version the value carried */
	uint64_t writer; /* writer id the value carried (0: initial) */
};

struct hist_write {
	uint64_t obj;
	uint64_t ver; /* version installed */
};

struct hist_tx {
	uint64_t id;	   /* unique, != 0 */
	uint64_t start_ns; /* before the transaction began */
	uint64_t end_ns;   /* after its commit (or abort) returned */
	bool committed;
	uint32_t nreads, nwrites;
	const struct hist_read *reads;
	const struct hist_write *writes;
};

/* ---- recording ---------------------------------------------------------- */

struct hist_log {
	uint8_t *buf;
	size_t cap, len;
	uint64_t records, dropped; /* dropped: did not fit */
};

/* A log over `cap` bytes at `mem` (the caller keeps the memory). */
void hist_log_init(struct hist_log *l, void *mem, size_t cap);
/* Append one record (copies it). -ENOSPC when it does not fit (counted in
 * `dropped`: a run with drops cannot be checked), -EINVAL for a record
 * with more than HIST_MAX_OPS reads or writes. */
int hist_log_add(struct hist_log *l, const struct hist_tx *t);
/* Bytes of a log a record with these counts takes. */
size_t hist_rec_size(uint32_t nreads, uint32_t nwrites);
/* Write the log's bytes to `path` (created or truncated, mode 0600). */
int hist_log_save(const struct hist_log *l, const char *path);

#define HIST_MAX_OPS 4096u

/* ---- checking ----------------------------------------------------------- */

struct history;

struct history *hist_new(void);
void hist_free(struct history *h);
/* Add one transaction (copied). -ENOMEM. */
int hist_add(struct history *h, const struct hist_tx *t);
/* Add every record of a log's bytes. -EPROTO when the bytes are not a
 * well-formed log (records before the bad one stay added). */
int hist_merge(struct history *h, const void *buf, size_t len);
int hist_merge_file(struct history *h, const char *path);

struct hist_report {
	uint64_t txs, committed, aborted, reads, writes;
	uint64_t nodes, edges; /* graph size (time nodes included) */
	uint64_t anomalies;    /* the sum of the next five */
	uint64_t cycles;       /* strongly connected components of >1 transaction */
	uint64_t dup_versions; /* a version installed by two committed txs */
	uint64_t bad_reads;    /* read of a version no committed tx installed */
	uint64_t bad_writers;  /* read whose writer id is not the version's writer */
	uint64_t bad_records;  /* end < start, id 0, repeated id */
	uint64_t cycle_txs;    /* transactions inside cycles */
	char text[4096];       /* the first anomalies, one per line, cycles spelt out */
};

/* Check everything added so far. Returns 0 when the check ran (the verdict
 * is r->anomalies == 0), -ENOMEM. Can be called again after more adds. */
int hist_check(struct history *h, struct hist_report *r);

#endif /* TESTS_HELPERS_HISTORY_H */
