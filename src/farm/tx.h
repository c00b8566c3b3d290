/*
 * tx.h - the inside of FaRM transactions (the contract is farm.h; the
 * protocol and the reasons for its shape are in docs/tx.md).
 *
 *   tx.c         the pool, execution (reads, buffered writes, alloc, free),
 *                abort, the hooks node.c calls
 *   tx_commit.c  the coordinator: plan, log reservation, LOCK, VALIDATE,
 *                COMMIT-BACKUP, COMMIT-PRIMARY, truncation points, and the
 *                requests it waits for
 *   log.c        the participant: the log region, what a primary does with
 *                LOCK / COMMIT-PRIMARY / abort, what a backup does at
 *                truncation, the message handlers
 *   log.h        the log and message layouts
 *
 * Everything a transaction needs is allocated at node start: a pool of
 * FARM_TX_POOL transactions, each with room for FARM_TX_MAX_BYTES of object
 * images, a staging area for records bound to other nodes, a request
 * table. Commits of one node run one at a time (farm_tx_commit blocks), so
 * the per-commit scratch lives once per node; executions of several open
 * transactions may interleave.
 */
#ifndef FARM_TX_H
#define FARM_TX_H

#include <stdbool.h>
#include <stdint.h>

#include "farm/farm.h"
#include "log.h"
#include "node.h"

#define FARM_TX_POOL	 16u
#define FARM_TX_REQS	 256u	     /* requests in flight (doorbells, releases) */
#define FARM_TX_DEFER	 256u	     /* replies waiting for msg staging room */
#define FARM_TX_INFLIGHT 32u	     /* commits reported whose COMMIT-PRIMARY acks are due */
#define FARM_TX_MAGIC	 0x46544158u /* "FTAX" */
#define FARM_LOG_SPARE	 2u	     /* rings beyond the members, for members that join */

enum { FARM_TXS_FREE = 0, FARM_TXS_ACTIVE };

/* Write-set flags (the same bits as the log entries'). */
enum { FARM_TXW_ALLOC = FARM_LOGENT_ALLOC, FARM_TXW_FREE = FARM_LOGENT_FREE };

struct farm_txr {
	farm_addr_t addr;
	uint64_t ver;
};

struct farm_txw {
	farm_addr_t addr;
	uint64_t ver;  /* version read (or of the reservation): LOCK checks it */
	uint32_t size; /* the object's payload size */
	uint32_t img;  /* offset of its whole image in the tx's image buffer */
	uint32_t flags;
	uint32_t pad;
};

struct farm_tx {
	uint32_t magic;
	uint32_t state;
	struct farm *f;
	uint32_t idx, next_free;
	uint64_t id;
	uint64_t config_id; /* configuration it began in */
	uint32_t nrd, nwr, img_used, nalloc;
	enum farm_abort_reason doom; /* set: the tx will abort with this reason */
	struct farm_txr rd[FARM_TX_MAX_READS];
	struct farm_txw wr[FARM_TX_MAX_WRITES];
	uint8_t *img;
};

/* The coordinator's view of its ring at participant p. */
struct farm_txpeer {
	bool known; /* log key and geometry read from p's node page */
	uint64_t key;
	uint64_t base; /* offset of our ring (its control lines) in p's log */
	uint64_t cap;
	uint64_t tail;	     /* next write position */
	uint64_t head;	     /* p's head as last seen: space before it is free */
	uint64_t trunc;	     /* records before this belong to finished txs */
	uint64_t trunc_sent; /* the trunc p has been told */
};

/* The participant's view of the ring coordinator c writes into. */
struct farm_txring {
	struct farm_logctl *ctl;
	uint8_t *data;
	uint64_t head;	     /* applied and freed up to here */
	uint64_t trunc_cseq; /* highest commit sequence applied at truncation */
	/* Its coordinator left the configuration: frozen at [head, end)
	 * until recovery decides those records (recovery.c), then retired. */
	bool dead, retired;
	bool rejoin;  /* its member came back while it was dead: reset once decided */
	bool renewed; /* its member is a new incarnation (farm__rcv_renewed) */
	uint64_t end;
};

/* A recovery lock: an object of a region this node newly leads, locked
 * because the CB record at (ring, pos) wrote it and is not decided yet. */
struct farm_rlock {
	uint64_t addr;
	uint64_t pos;
	uint32_t ring;
};

/* One commit's work at one participant. */
struct farm_txpart {
	uint8_t nl, ncb;
	uint8_t l[FARM_TX_MAX_WRITES];	/* write-set entries it leads */
	uint8_t cb[FARM_TX_MAX_WRITES]; /* entries of regions it backs up */
	uint32_t len_l, len_cb;		/* record lengths (0: none) */
	uint64_t pos_l, pos_cb, pos_cp;
	int32_t req;	/* request slot in flight, -1 */
	int32_t status; /* outcome of the current phase */
	uint32_t reason;
	bool wrote_l, locked, wrote_cb, failed;
};

enum { FARM_TXQ_FREE = 0, FARM_TXQ_WAIT, FARM_TXQ_DONE, FARM_TXQ_ABANDONED };

/* A finished commit whose records are not truncatable yet: the primaries
 * still need their LOCK records until they have acked COMMIT-PRIMARY.
 * Retired in order, so truncation points only cover acked commits. */
struct farm_txdone {
	uint32_t n;
	uint64_t deadline;
	uint8_t who[FARM_MAX_MEMBERS];	 /* participants (FARM_TXD_GONE: its ring was recycled) */
	int32_t req[FARM_MAX_MEMBERS];	 /* its COMMIT-PRIMARY doorbell, -1 */
	uint64_t tail[FARM_MAX_MEMBERS]; /* end of the commit's records there */
};

#define FARM_TXD_GONE 0xffu

struct farm_txreq {
	uint16_t gen;
	uint8_t state;
	int32_t status;
	uint32_t next_free;
	struct farm_wire_txrep rep;
};

struct farm_txdefer {
	struct unet_msg m;
	struct farm_wire_txrep rep;
};

/* Counters beyond farm_stats, for tests and benchmarks. */
struct farm_txstats {
	uint64_t abort[FARM_ABORT_USER + 1]; /* aborts by reason */
	uint64_t log_waits;		     /* commits that found a log full and waited */
	uint64_t log_kicks;		     /* TRUNC requests sent */
	uint64_t trunc_flushes;		     /* idle truncation flushes */
	uint64_t cb_applied, cb_skipped;     /* backup entries applied / older */
	uint64_t bad_records;		     /* malformed or stale records refused */
	uint64_t cp_failed;		     /* COMMIT-PRIMARY not acked (tx committed) */
	uint64_t locks_refused;		     /* LOCK records this node refused */
	uint64_t in_doubt;		     /* commits returned -EIO (outcome unknown) */
	uint64_t late_installs;		     /* CP applied at truncation (doorbell refused) */
	uint64_t late_unlocks;		     /* LOCKs released at truncation (abort refused) */
	uint64_t copy_stalls;		     /* applies held back by a replica being copied */
	/* recovery */
	uint64_t rcv_rounds;		     /* configurations whose votes were decided */
	uint64_t rcv_commits, rcv_aborts;    /* dead coordinators' txs decided */
	uint64_t rcv_locked;		     /* objects locked by lock recovery */
	uint64_t rcv_ns;		     /* last round: adoption to decision applied */
};

/* Test hook: called in farm_tx_commit after a phase (the hook may
 * farm_poll, never start another commit). */
enum { FARM_TXH_LOCKED = 1, FARM_TXH_BACKED_UP };
typedef void (*farm_tx_hook)(struct farm *f, int phase, void *arg);

struct farm_txs {
	/* logs (log.c). Rings, and everything per participant below, go by
	 * *log index*: a member's index in the configuration the node started
	 * with, found by member id (configurations re-index members). */
	struct unet_mr *log_mr;
	uint8_t *log;
	uint64_t cap, stride;
	uint32_t nrings;
	uint32_t log_id[FARM_MAX_MEMBERS]; /* log index -> member id */
	uint32_t self_lix;
	struct farm_txring ring[FARM_MAX_MEMBERS];
	struct farm_txdefer defer[FARM_TX_DEFER];
	uint32_t ndefer;

	/* coordinator (tx_commit.c) */
	struct farm_txpeer peer[FARM_MAX_MEMBERS];
	uint32_t k; /* replicas the stage is sized for */
	uint8_t *stage;
	size_t stage_len, stage_at;
	uint32_t posted; /* one-sided operations not yet reaped */
	struct farm_txpart part[FARM_MAX_MEMBERS];
	uint8_t involved[FARM_MAX_MEMBERS];
	uint32_t ninvolved;
	uint32_t regions[FARM_TX_MAX_WRITES];
	uint32_t nregions;
	uint64_t vword[FARM_TX_MAX_READS];
	uint64_t vcfg[FARM_MAX_MEMBERS];
	uint64_t pageinfo[FARM_PAGE_LOG_INFO / 8]; /* a peer's log info, READ */
	struct farm_txreq req[FARM_TX_REQS];
	uint32_t req_free;
	bool in_commit, trunc_dirty;
	/* Peers whose state farm__log_forget must drop once the commit in
	 * flight ends (bit = ring index): a commit never sees its peer's
	 * geometry vanish between two of its records. */
	uint64_t forget_after;
	bool cp_wait; /* report commit after the primaries' acks (default: after
			 the COMMIT-PRIMARY records are written, as FaRM) */
	struct farm_txdone done[FARM_TX_INFLIGHT];
	uint32_t done_head, done_tail;
	uint64_t last_end_ns;
	uint32_t polls;
	uint64_t cseq; /* commit sequence of the current commit (log.h) */

	/* pool (tx.c) */
	struct farm_tx *pool;
	uint8_t *img_mem;
	uint32_t free_head, free_tail, nfree;
	uint64_t seq;
	uint32_t begins;

	/* recovery (recovery.c) */
	struct farm_rlock *rlock;
	uint32_t nrlock, rlock_cap;
	struct farm_rcv *rcv;

	farm_tx_hook hook;
	void *hook_arg;
	struct farm_txstats st;
};

/* Log index of member `id`, or -1 (a member that joined and found no
 * spare or recycled ring here: recovery.c assigns them). */
static inline int farm__tx_lix(const struct farm_txs *t, uint32_t id)
{
	for (uint32_t i = 0; i < t->nrings; i++)
		if (t->log_id[i] == id)
			return (int)i;
	return -1;
}

/* log.c: the participant. c is the ring (the coordinator's log index). */
int farm__log_init(struct farm *f, char *err, size_t errlen);
void farm__log_register(struct farm *f);
int farm__txp_lock(struct farm *f, uint32_t c, uint64_t pos, uint32_t *reason);
int farm__txp_commit(struct farm *f, uint32_t c, uint64_t pos);
int farm__txp_abort(struct farm *f, uint32_t c, uint64_t pos);
int farm__txp_apply(struct farm *f, uint32_t c);
int farm__txp_release(struct farm *f, farm_addr_t addr, uint64_t ver, uint32_t size);
/* Publish which member writes each ring (node page), live rings only. */
void farm__log_publish(struct farm *f);
/* Give ring c to member id afresh (a member that joined): emptied, and,
 * with forget, our coordinator state towards it forgotten too (not when
 * that state is the new incarnation's already: log.c). */
void farm__log_reset(struct farm *f, uint32_t c, uint32_t id, bool forget);
/* Forget our coordinator state towards the member of ring c (it left, or
 * is back as a new incarnation): the next commit looks its log up anew.
 * Deferred to the end of a commit in flight (farm__log_forget_deferred). */
void farm__log_forget(struct farm *f, uint32_t c);
void farm__log_forget_deferred(struct farm *f);
/* Recovery's hands on the records (log.c). commit: install / apply;
 * otherwise unlock / drop. Recovery locks of the record are released. */
void farm__txp_resolve(struct farm *f, uint32_t c, uint64_t pos, bool commit);
/* The record at pos in ring c if whole (any type), else NULL. */
struct farm_logrec *farm__txp_rec(struct farm *f, uint32_t c, uint64_t pos);
/* Region ids of a LOCK or CB record (NULL for others or when malformed). */
const uint32_t *farm__txp_regions(const struct farm_logrec *rec);
/* Lock recovery: lock the objects of regions in `led` (bitmap by region
 * id) that undecided CB records in any ring wrote. */
void farm__txp_lock_recover(struct farm *f, const uint8_t *led);
int farm__log_flush_replies(struct farm *f);

/* tx_commit.c: the coordinator. */
int farm__tx_commit_rw(struct farm_tx *tx, enum farm_abort_reason *why);
int farm__tx_validate(struct farm_tx *tx, enum farm_abort_reason *why);
void farm__tx_release_allocs(struct farm_tx *tx);
void farm__tx_flush_trunc(struct farm *f);
int farm__tx_read_word(struct farm *f, uint32_t region, uint64_t off, uint64_t *w);

/* For tests and benchmarks. */
void farm__tx_set_hook(struct farm *f, farm_tx_hook fn, void *arg);
void farm__tx_get_stats(const struct farm *f, struct farm_txstats *st);
/* Report commits only once every primary acked COMMIT-PRIMARY (true), or
 * as soon as the records are written (false, the default; docs/tx.md). */
void farm__tx_set_cp_wait(struct farm *f, bool wait);
/* Wait for the primaries' acks of every commit reported, then tell every
 * participant our truncation points (one-sided writes): once every node
 * has done this and no node commits, the points are final and every
 * node's farm_poll brings farm__tx_unapplied to 0. */
void farm__tx_flush(struct farm *f);
/* Records in this node's rings not yet applied (0: drained). */
uint64_t farm__tx_unapplied(struct farm *f);

#endif /* FARM_TX_H */
