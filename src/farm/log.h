/*
 * log.h - the transaction logs: layout of the rings, of the records
 * coordinators write into them, and of the messages that go with them.
 *
 * Every node registers one log region holding one ring per member: ring c
 * at node p is written only by coordinator c (one-sided RDMA WRITEs, or
 * plain stores when c == p) and read only by p, so each ring has one
 * producer and one consumer and no coordinator ever waits for another's
 * space. Peers find the region through the node page (key, data bytes per
 * ring, ring count; wire.h), which they READ once.
 *
 *   log region: [ ring 0 | ring 1 | ... ]       ring c is written by member index c
 *   ring:       [ ctl (2 lines) | data (cap bytes, a power of two) ]
 *   ctl line 0: trunc -- the coordinator's truncation point (it writes)
 *   ctl line 1: head  -- what the owner has applied and freed (it writes)
 *
 * Positions are absolute byte counts since the ring was created (offset =
 * pos & (cap - 1)); they never wrap in practice. A record starts on a cache
 * line, is a whole number of lines and never crosses the ring's end: when
 * it would, the rest of the lap gets a PAD record and the record starts the
 * next lap, so a participant always reads a record in place.
 *
 * A record's first word (tag) is pos + 1, written after the rest of the
 * record by a separate WRITE (a channel executes WRITEs in order; a CPU
 * copy may store a line in any order, so one WRITE could not carry both).
 * A stale record of an earlier lap, or zeroed memory, never has the right
 * tag, so the consumer never needs to clear what it consumed.
 *
 * Records (FaRM SOSP'15, section 4):
 *   LOCK    to a primary: tx id, the written objects it leads (address,
 *           version read, size, new value), and every region the tx
 *           writes -- what recovery needs to find the tx's other logs.
 *   CB      COMMIT-BACKUP, to a backup: the objects of regions it backs up
 *           with their new versions and values, and every region the tx
 *           writes (as LOCK). Applied at truncation.
 *   CP      COMMIT-PRIMARY, to a primary: tx id and the position of the
 *           tx's LOCK record, whose values the primary installs.
 *   PAD     the unused end of a lap.
 *   VOID    a CB record retracted by its coordinator (a commit that
 *           failed before COMMIT-PRIMARY): never applied.
 * Aborts are messages, not records: releasing locks needs no log space, so
 * an abort can never wait for (or fail on) a full log.
 *
 * Images are whole objects (all `size` payload bytes), so a backup can
 * apply records of several coordinators in any order: it keeps a record
 * only when its version is newer than the replica's (versions of a slot
 * only grow, allocation and free included).
 */
#ifndef FARM_LOG_H
#define FARM_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "object.h"
#include "wire.h"

#define FARM_LOG_CTL 128u /* control lines in front of every ring */

enum farm_logrec_type {
	FARM_LOG_PAD = 1,
	FARM_LOG_LOCK,
	FARM_LOG_CB,
	FARM_LOG_CP,
	FARM_LOG_VOID,
};

/* What the participant did with a LOCK record (it writes `state`). */
enum farm_logrec_state {
	FARM_LOGST_NEW = 0,
	FARM_LOGST_LOCKED,
	FARM_LOGST_REFUSED,
	FARM_LOGST_COMMITTED,
	FARM_LOGST_ABORTED,
};

/* Entry flags. Neither: a write. ALLOC: the object was reserved by this tx
 * (locked since). FREE: free it at commit. Both: allocated and freed by the
 * tx: released at commit. */
enum { FARM_LOGENT_ALLOC = 1, FARM_LOGENT_FREE = 2 };

/* One cache line. */
struct farm_logrec {
	uint64_t tag;	    /* pos + 1, written last */
	uint32_t len;	    /* bytes, this header included, a multiple of 64 */
	uint16_t type;	    /* enum farm_logrec_type */
	uint16_t nent;	    /* entries that follow */
	uint64_t tx_id;	    /* coordinator member id << 48 | sequence */
	uint64_t config_id; /* configuration the coordinator runs */
	uint64_t ref;	    /* CP: position of the tx's LOCK record in this ring */
	uint32_t coord;	    /* coordinator member id */
	uint16_t nregions;  /* LOCK, CB: region ids (u32) after the entries */
	uint16_t pad0;
	uint64_t state; /* LOCK: enum farm_logrec_state, the participant's */
	uint64_t cseq;	/* the coordinator's commit sequence: its commits in
			   the order they write records (recovery: a ring
			   truncated past cseq n holds no undecided commit <= n) */
};

/* Followed by `bytes` of image, padded to 8. */
struct farm_logent {
	uint64_t addr;
	uint64_t version; /* LOCK: version read (expected); CB: new version */
	uint32_t size;	  /* the object's payload size */
	uint32_t bytes;	  /* image bytes: size, or 0 for a free */
	uint32_t flags;
	uint32_t pad;
};

struct farm_logctl {
	uint64_t trunc;
	uint64_t pad0[7];
	uint64_t head;
	uint64_t pad1[7];
};

_Static_assert(sizeof(struct farm_logrec) == 64, "record header is one line");
_Static_assert(sizeof(struct farm_logent) == 32, "entry header");
_Static_assert(sizeof(struct farm_logctl) == FARM_LOG_CTL, "ring control");

static inline uint32_t farm_log_pad8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

static inline uint32_t farm_log_ent_len(uint32_t image)
{
	return (uint32_t)sizeof(struct farm_logent) + farm_log_pad8(image);
}

/* Record length for `body` bytes of entries (and region ids). */
static inline uint32_t farm_log_rec_len(uint32_t body)
{
	return ((uint32_t)sizeof(struct farm_logrec) + body + 63u) & ~63u;
}

/* Where a record of `len` bytes starts when the ring's tail is at `pos`:
 * there, or at the start of the next lap when it would cross the end. */
static inline uint64_t farm_log_place(uint64_t pos, uint32_t len, uint64_t cap)
{
	uint64_t off = pos & (cap - 1);

	return off + len <= cap ? pos : pos + (cap - off);
}

/* Versions of a slot only grow (mod 2^46): is a newer than b? */
static inline bool farm_ver_newer(uint64_t a, uint64_t b)
{
	uint64_t d = (a - b) & FARM_OBJ_VER_MASK;

	return d != 0 && d < (FARM_OBJ_VER_MASK >> 1);
}

/* ---- messages (types in wire.h) ------------------------------------------ */

/* FARM_MSG_TX_LOG: act on the record at `pos` in the sender's ring. */
enum farm_txlog_op {
	FARM_TXLOG_LOCK = 1, /* pos: a LOCK record: lock, check versions */
	FARM_TXLOG_COMMIT,   /* pos: a CP record: install, unlock */
	FARM_TXLOG_ABORT,    /* pos: a LOCK record that locked: unlock, release */
	FARM_TXLOG_TRUNC,    /* apply and free up to the ring's trunc word now */
};

struct farm_wire_txlog {
	struct farm_wire_hdr h;
	uint32_t op;
	uint32_t pad;
	uint64_t pos;
	uint64_t tx_id;
};

/* The answer to FARM_MSG_TX_LOG (the layout of farm_wire_reply, with the
 * abort reason where that has padding). TRUNC: value = the ring's head. */
struct farm_wire_txrep {
	uint64_t config_id;
	int32_t status;	 /* 0, -EAGAIN (reason says why), or an error */
	uint32_t reason; /* enum farm_abort_reason */
	uint64_t value;
};

/* FARM_MSG_TX_ALLOC: reserve `size` bytes in `region` (answered with a
 * farm_wire_reply whose value is the address). */
struct farm_wire_txalloc {
	struct farm_wire_hdr h;
	uint32_t region;
	uint32_t size;
};

/* FARM_MSG_TX_RELEASE: free reservations of a tx that ends before LOCK. */
struct farm_wire_txrel_ent {
	uint64_t addr;
	uint64_t version;
	uint32_t size;
	uint32_t pad;
};

struct farm_wire_txrel {
	struct farm_wire_hdr h;
	uint32_t n;
	uint32_t pad;
	struct farm_wire_txrel_ent e[];
};

#endif /* FARM_LOG_H */
