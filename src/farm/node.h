/*
 * node.h - the inside of a struct farm, shared by the files that make up a
 * node: node.c (start, stop, progress, the transport), replica.c (what a
 * primary and a backup do), alloc.c, read.c, write.c (the calls of farm.h).
 *
 * All transport calls (U-Net endpoint, msg, rdma) are in node.c and read.c
 * (the one-sided READs of the hot path); everything else talks through
 * farm__call / farm__reply and the op and pend tables below.
 */
#ifndef FARM_NODE_H
#define FARM_NODE_H

#include <stdbool.h>
#include <stdint.h>

#include "farm/farm.h"
#include "unet/msg.h"
#include "unet/rdma.h"
#include "regionmap.h"
#include "slab.h"
#include "wire.h"

/* A replica this node holds. */
struct farm_replica {
	uint32_t region;
	int role; /* 0 primary, 1.. backup */
	struct unet_mr *mr;
	uint8_t *base;
	struct farm_slab slab; /* primary only */
	/* Re-replication: a backup being filled from its primary. Until it
	 * is cleared, log.c stops applying a ring at the first CB record
	 * that touches this replica (applied after the copy, newer wins). */
	bool copying;
	/* Recovery (recovery.h): objects of a newly led region locked until
	 * the transactions that wrote them are decided. While nonzero the
	 * region allocates nothing (its slab is rebuilt when it reaches 0). */
	uint32_t rlocks;
	/* The configuration in which this node got the replica (0: the
	 * cluster's first). Recovery: a transaction of an older configuration
	 * never sent it a COMMIT-BACKUP record, so its lack of one says
	 * nothing about that transaction. */
	uint64_t since;
};

/* What this node knows about every region (indexed by region id). */
struct farm_region {
	uint8_t *local;            /* our memory when we are the primary */
	struct farm_replica *mine; /* our replica of any role, or NULL */
	int peer;                  /* member index of the primary */
	int chan;                  /* channel to the primary (-1: us) */
	uint64_t key;              /* the primary's key */
	uint64_t page_key;         /* the primary's node page key */
	bool known;                /* key learnt (or ours) */
};

struct farm_peer {
	uint32_t id;
	int chan; /* -1: self, or not open */
	uint64_t page_key;
	bool hello_in;    /* its HELLO arrived */
	bool hello_acked; /* it answered ours */
	bool hello_sent;
	int hello_err;    /* why our HELLO failed, 0 */
};

enum { FARM_OP_FREE = 0, FARM_OP_WAIT, FARM_OP_DONE, FARM_OP_ABANDONED };
enum { FARM_OPK_CLIENT = 1, FARM_OPK_HELLO, FARM_OPK_REPL };

/* An outstanding request of ours (the msg layer's ctx points here by index
 * and generation, so a late completion never lands in a reused slot). */
struct farm_op {
	uint16_t gen;
	uint8_t state, kind;
	int32_t status;
	uint32_t arg; /* HELLO: member index; REPL: pend index */
	uint32_t next_free;
	struct farm_wire_reply reply;
};

enum { FARM_PEND_ALLOC = 1, FARM_PEND_FREE, FARM_PEND_WRITE, FARM_PEND_RESYNC };

/* The byte ranges of the last REPLs a backup applied from one primary: a
 * promoted primary pushes those again (replica.c, "resync"). A primary has
 * at most FARM_NPENDS changes of at most 2 ranges in flight, so the ranges
 * a dead primary did not get to every backup are among the last
 * FARM_REPLOG this backup applied from it. */
#define FARM_REPLOG 512u
#define FARM_RESYNC_INFLIGHT 8u
struct farm_replog {
	uint32_t from; /* member id */
	uint32_t n;    /* ranges recorded, ever (the ring's head) */
	struct farm_replog_ent {
		uint32_t region, len;
		uint64_t off;
	} e[FARM_REPLOG];
};

/* A change at a primary waiting for its backups' acks. */
struct farm_pend {
	bool used;
	uint8_t kind;
	uint32_t region;
	struct farm_slab_change ch;
	uint64_t obj_off;
	uint64_t hdr;       /* WRITE: header to publish (unlock) once replicated */
	uint64_t value;     /* for the reply: address or version */
	uint32_t to_send;   /* bit i: backup i (replica index) still to be sent */
	uint32_t acks_left;
	int32_t status;
	/* Who waits: a farm_* call on this node (op index) or a peer; nobody
	 * when quiet (a resync). */
	bool quiet;
	bool local;
	uint32_t local_op;
	struct unet_msg from;
	uint32_t next_free;
};

struct farm {
	struct farm_config cfg;
	uint32_t self;
	int self_idx;
	uint64_t config_id;
	uint64_t cfg_hash;
	struct farm_rmap map;

	struct unet_nic *nic;
	struct unet_ep *ep;
	struct unet_msg_ep *mep;
	struct unet_rdma *rdma;
	struct unet_mr *page_mr;
	struct farm_node_page *page;

	struct farm_peer peers[FARM_MAX_MEMBERS];
	int8_t chan_peer[FARM_MAX_MEMBERS + 8]; /* channel id -> member index */

	struct farm_replica *reps;
	uint32_t nreps;
	struct farm_region *regions;

	struct farm_op *ops;
	uint32_t nops, op_free;
	struct farm_pend *pends;
	uint32_t npends, pend_free;
	uint32_t pend_unsent; /* pends with sends left (retried by farm_poll) */
	/* Resync (replica.c): REPL ranges by primary, and the ranges of the
	 * regions this node was promoted to lead, still to push again. */
	struct farm_replog *replog[FARM_MAX_MEMBERS];
	struct farm_replog_ent *rsq;
	uint32_t nrsq, rsq_cap;
	uint32_t rsq_inflight; /* resync pends not finished (at most FARM_RESYNC_INFLIGHT) */
	uint64_t rsq_next_ns; /* a locked object: look again from then */

	/* Replies msg's staging had no room for: sent again by farm_poll
	 * (a dropped reply would leave its requester waiting out its timeout). */
	struct farm_reply_defer {
		struct unet_msg m;
		struct farm_wire_reply r;
	} *rdefer;
	uint32_t nrdefer;

	uint8_t *msgbuf;   /* requests built by the serving side (HELLO, REPL) */
	uint8_t *reqbuf;   /* requests built by the calls of farm.h */
	size_t msgbuf_len;
	uint8_t *rimg;     /* remote read snapshot */
	uint64_t rd_cfg, rd_h1, rd_h2;
	uint32_t alloc_rr;
	uint64_t rehello_at; /* a HELLO was refused: farm_poll re-sends from then (0: none) */
	uint64_t dial_at; /* members without a channel (added by a configuration):
			     farm_poll answers their opens from then (0: none) */
	int op_timeout_ms;
	bool started;

	struct farm_stats st;
	/* Membership's lease flag (membership_node.h): 0 = lease lapsed, serve
	 * nothing. NULL with static membership: always serving. */
	const int *serving;
	const uint64_t *lease_until; /* the lease's end (ns), or NULL */
	/* Membership (membership_node.h): a newer configuration is waiting to
	 * be adopted. Waits inside reads and commits give up then, so the
	 * node thread gets back to its loop and adopts it (a dead member's
	 * lock or request would otherwise hold it for a read's 200 ms or
	 * msg's failure detection). NULL with static membership. */
	const struct farm_membership *mem;
	struct farm_txs *tx; /* transactions: tx.h */
	struct farm_rerep *rerep; /* re-replication: rerep.h */
};

#define FARM_MSGBUF_SIZE (128u << 10)
#define FARM_RDEFER 256u

/* node.c */
int farm__call(struct farm *f, int peer, uint8_t type, void *req, uint32_t len,
	       struct farm_wire_reply *rep);
int farm__op_new(struct farm *f, uint8_t kind, uint32_t arg);
int64_t farm__request(struct farm *f, int peer, uint8_t type, const void *req, uint32_t len,
		      uint32_t op);
void farm__op_release(struct farm *f, uint32_t op);
int farm__wait_op(struct farm *f, uint32_t op, uint64_t deadline_ns);
void farm__reply(struct farm *f, const struct unet_msg *m, int status, uint64_t value);
void farm__hdr(const struct farm *f, struct farm_wire_hdr *h);
uint64_t farm__now_ns(void);
/* Internal: move to another configuration id (the configuration manager of
 * a later issue does this; tests use it to exercise the fence). */
void farm__set_config_id(struct farm *f, uint64_t id);

/* Check a request's common header: -EPROTO when malformed, -ESTALE (also
 * answered and counted) when from an older configuration. */
int farm__admit(struct farm *f, const struct unet_msg *m, uint32_t min_len);

/* replica.c */
void farm__serve_register(struct farm *f);
int farm__pend_poll(struct farm *f);
void farm__repl_done(struct farm *f, uint32_t pend, int status);
int farm__primary_alloc(struct farm *f, uint32_t region, uint32_t size, bool local,
			uint32_t local_op, const struct unet_msg *from);
int farm__primary_free(struct farm *f, farm_addr_t addr, bool local, uint32_t local_op,
		       const struct unet_msg *from);
int farm__primary_write(struct farm *f, farm_addr_t addr, const void *buf, uint32_t len,
			bool local, uint32_t local_op, const struct unet_msg *from);

int farm__primary_reserve(struct farm *f, uint32_t region, uint32_t size, bool local,
			  uint32_t local_op, const struct unet_msg *from);
/* Adoption, before f->map is replaced by `next`: queue the ranges of every
 * region this node is promoted to lead. farm_poll pushes them. */
void farm__resync_adopt(struct farm *f, const struct farm_rmap *next);
int farm__resync_poll(struct farm *f);
void farm__resync_fini(struct farm *f);
/* Tests: skip REPLs to backups of these replica indices (bit i: replica i),
 * to leave a change at some backups only, as a primary killed mid-change. */
extern uint32_t farm__test_repl_skip;
extern bool farm__test_resync_off; /* tests: queue no resync (the control case) */

/* tx.c, tx_commit.c, log.c: transactions. init registers the logs (before
 * the HELLOs: their key is in the node page) and the handlers; poll applies
 * truncated log records and flushes truncation points; idle flushes them
 * before the node blocks; reap takes completions whose ctx has
 * FARM_TX_CTX_TAG. */
#define FARM_TX_CTX_TAG (1ull << 63)
uint64_t farm__tx_log_bytes(const struct farm_config *cfg);
int farm__tx_init(struct farm *f, char *err, size_t errlen);
void farm__tx_fini(struct farm *f);
int farm__tx_poll(struct farm *f);
void farm__tx_idle(struct farm *f);
void farm__tx_reap(struct farm *f, const struct unet_msg_comp *c);

struct farm_membership;
bool farm_membership_changed(const struct farm_membership *m);
static inline bool farm__change_pending(const struct farm *f)
{
	return f->mem && farm_membership_changed(f->mem);
}

/* Checked on every request and before every read, write and commit. */
static inline bool farm__serving(const struct farm *f)
{
	return !f->serving || __atomic_load_n(f->serving, __ATOMIC_ACQUIRE);
}
/* For requests: also the lease's end against the clock (one clock read),
 * exact even when the lease thread is late to lower the flag. */
static inline bool farm__serving_now(const struct farm *f)
{
	return farm__serving(f) &&
	       (!f->lease_until || farm__now_ns() < __atomic_load_n(f->lease_until, __ATOMIC_ACQUIRE));
}
int farm__hello_send(struct farm *f, uint32_t peer);

/* Channels to members a configuration added (farm__adopt_config asks for
 * them with dial_at): the member dials us from its start, we answer
 * without blocking (on shm a zero-timeout open answers a pending dial and
 * never dials itself), attach msg and send our HELLO. Rate-limited to one
 * round a millisecond while any is missing. Returns channels opened. */
int farm__dial_poll(struct farm *f);
/* Drop the channel to peer index i (a new incarnation of the member comes
 * on a fresh one). */
void farm__peer_close(struct farm *f, uint32_t i);

/* A joining member (farm_member.joining) that has not shown us its HELLO
 * in this configuration gets no REPL and no copy bytes from us: until its
 * HELLO arrives, it has copied nothing from us, so a change it misses is
 * in the bytes its copy reads later (rerep.c answers it -EAGAIN until
 * then). After the HELLO, it gets everything. */
static inline bool farm__joiner_unready(const struct farm *f, int peer)
{
	return peer >= 0 && f->cfg.members[peer].joining && !f->peers[peer].hello_in;
}
uint64_t farm__config_hash(const struct farm_config *c);

/* Address checks shared by the calls: -ENOENT, -ERANGE, -EINVAL, -EFBIG. */
int farm__check_addr(const struct farm *f, farm_addr_t addr, uint32_t len);

#endif /* FARM_NODE_H */
