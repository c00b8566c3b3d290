/*
 * tx_commit.c - the coordinator's side of FaRM's commit (SOSP'15 section
 * 4; docs/tx.md says how it maps onto U-Net):
 *
 *   plan      group the write set by participant: the primary of each
 *             written object gets it in its LOCK record, each backup of its
 *             region in its COMMIT-BACKUP record
 *   reserve   every record this commit may write must fit in the rings
 *             before LOCK starts; a ring that looks full is re-read, then
 *             its owner is told to truncate (TRUNC doorbell) and waited
 *             for; a commit that still does not fit aborts LOG_FULL
 *   LOCK      one record per primary (one-sided WRITEs) and a doorbell;
 *             the primaries CAS the headers and check versions; any
 *             refusal aborts, and the primaries that locked unlock
 *   VALIDATE  one-sided READs of the read set's headers, batched
 *   COMMIT-BACKUP  one record per backup, one-sided WRITEs; the write
 *             completions are the acks (a backup's CPU is not involved);
 *             the batch ends with a READ of the backup's configuration id
 *   COMMIT-PRIMARY one record per primary and a doorbell; commit is
 *             reported once every primary acked (docs/tx.md: why not at
 *             the first ack as in the paper)
 *   truncate  the records of a finished tx are truncatable; the point
 *             travels with the next records to that participant, or in an
 *             idle flush
 *
 * The coordinator's own node is a participant like the others except that
 * its records are stored and acted on in place, without a message.
 * One-sided operations are all reaped before a phase ends, so read.c's
 * batches never meet a completion of ours.
 */
#include <errno.h>
#include <string.h>

#include "config.h"
#include "recovery.h"
#include "tx.h"

#define WR_TAG	       0x7478000000000000ull /* "tx" in wr_ids */
#define TRUNC_FLUSH_NS 200000ull	     /* idle this long: tell participants */
#define KICK_MS	       1000		     /* a full log's owner has this long to free it */

static void retire_wait(struct farm *f, uint32_t keep);

/* ---- members by log index (tx.h) ---------------------------------------------------- */

/* Log index p's member in the current configuration, or NULL (removed). */
static struct farm_peer *peer_of(struct farm *f, uint32_t p)
{
	int i = farm__config_member(&f->cfg, f->tx->log_id[p]);

	return i < 0 ? NULL : &f->peers[i];
}

static int chan_of(struct farm *f, uint32_t p)
{
	const struct farm_peer *x = peer_of(f, p);

	return x ? x->chan : -1;
}

/* Log index of the member at current index i, or -1. */
static int lix_of_idx(struct farm *f, int i)
{
	if (i < 0 || (uint32_t)i >= f->cfg.nmembers)
		return -1;
	return farm__tx_lix(f->tx, f->cfg.members[i].id);
}

/* ---- requests -------------------------------------------------------------------- */

static void req_release(struct farm_txs *t, uint32_t i)
{
	t->req[i].state = FARM_TXQ_FREE;
	t->req[i].gen++;
	t->req[i].next_free = t->req_free;
	t->req_free = i;
}

void farm__tx_reap(struct farm *f, const struct unet_msg_comp *c)
{
	struct farm_txs *t = f->tx;
	uint64_t ctx = (uint64_t)(uintptr_t)c->ctx;
	uint32_t i = (uint32_t)ctx;
	struct farm_txreq *q;

	if (!t || i >= FARM_TX_REQS || t->req[i].gen != (uint16_t)(ctx >> 32))
		return;
	q = &t->req[i];
	if (q->state == FARM_TXQ_ABANDONED) {
		req_release(t, i);
		return;
	}
	if (q->state != FARM_TXQ_WAIT)
		return;
	q->status = c->status;
	if (q->status == 0 && c->len < sizeof(struct farm_wire_reply))
		q->status = -EPROTO;
	if (q->status == 0)
		q->status = q->rep.status;
	q->state = FARM_TXQ_DONE;
}

/* Post a request to member `peer`; retries while msg pushes back. Returns
 * the slot or a negative code. */
static int req_post(struct farm *f, int peer, uint8_t type, void *buf, uint32_t len,
		    uint64_t deadline)
{
	struct farm_txs *t = f->tx;
	int chan = chan_of(f, (uint32_t)peer);

	if (chan < 0)
		return -ENOTCONN;
	farm__hdr(f, buf);
	for (;;) {
		uint32_t i = t->req_free;
		int64_t id = -EBUSY;

		if (i != UINT32_MAX) {
			struct farm_txreq *q = &t->req[i];
			void *ctx =
			    (void *)(uintptr_t)(FARM_TX_CTX_TAG | (uint64_t)q->gen << 32 | i);
			memset(&q->rep, 0, sizeof(q->rep));
			id = unet_msg_request(f->mep, (unsigned)chan, type, buf, len, &q->rep,
					      sizeof(q->rep), ctx);
			if (id > 0) {
				t->req_free = q->next_free;
				q->state = FARM_TXQ_WAIT;
				q->status = 0;
				f->st.msgs_out++;
				return (int)i;
			}
		}
		if (id == 0)
			return -EPROTO; /* msg ids are > 0: never take it for slot 0 */
		if (id != -EAGAIN && id != -EBUSY)
			return (int)id;
		if (farm__now_ns() >= deadline)
			return -ETIMEDOUT;
		farm_poll(f);
	}
}

/* Wait until every part's request is done (or the deadline: the rest are
 * abandoned and complete with -ETIMEDOUT). Copies outcomes into the parts
 * and frees the slots. */
static void wait_parts(struct farm *f, uint64_t deadline)
{
	struct farm_txs *t = f->tx;

	for (;;) {
		bool all = true;
		for (uint32_t k = 0; k < t->ninvolved && all; k++) {
			const struct farm_txpart *p = &t->part[t->involved[k]];
			if (p->req >= 0 && t->req[p->req].state == FARM_TXQ_WAIT)
				all = false;
		}
		if (all)
			break;
		/* A configuration to adopt: a participant may be gone, and
		 * waiting for msg to notice (seconds on udp) would keep the
		 * node from adopting it. The commit aborts (or, past its commit
		 * point, stands) as on a timeout. */
		if (farm__now_ns() >= deadline || farm__change_pending(f)) {
			for (uint32_t k = 0; k < t->ninvolved; k++) {
				struct farm_txpart *p = &t->part[t->involved[k]];
				if (p->req >= 0 && t->req[p->req].state == FARM_TXQ_WAIT) {
					t->req[p->req].state = FARM_TXQ_ABANDONED;
					p->req = -1;
					p->status = -ETIMEDOUT;
					p->reason = FARM_ABORT_FAILURE;
				}
			}
			break;
		}
		if (farm_poll(f) == 0)
			unet_msg_idle(f->mep, 1);
	}
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		struct farm_txpart *p = &t->part[t->involved[k]];
		if (p->req < 0)
			continue;
		struct farm_txreq *q = &t->req[p->req];
		p->status = q->status;
		p->reason = q->status == -EAGAIN ? q->rep.reason : FARM_ABORT_FAILURE;
		req_release(t, (uint32_t)p->req);
		p->req = -1;
	}
}

/* ---- one-sided operations ------------------------------------------------------- */

static void op_failed(struct farm_txs *t, uint64_t wr_id, int status)
{
	uint32_t peer = (uint32_t)(wr_id >> 8) & 0xff;

	if (peer < FARM_MAX_MEMBERS && !t->part[peer].failed) {
		t->part[peer].failed = true;
		t->part[peer].status = status;
	}
}

static void post_write(struct farm *f, uint32_t peer, uint64_t off, const void *src, uint32_t len)
{
	struct farm_txs *t = f->tx;
	int chan = chan_of(f, peer);
	int rc = chan < 0 ? -ENOTCONN
			  : unet_rdma_write(f->rdma, (unsigned)chan, t->peer[peer].key, off, src,
					    len, WR_TAG | peer << 8);

	if (rc == 0)
		t->posted++;
	else
		op_failed(t, WR_TAG | peer << 8, rc == -ENOTCONN ? -ECONNRESET : rc);
}

static void post_read(struct farm *f, uint32_t peer, int chan, uint64_t key, uint64_t off,
		      void *dst, uint32_t len)
{
	struct farm_txs *t = f->tx;
	int rc = chan < 0 ? -ENOTCONN
			  : unet_rdma_read(f->rdma, (unsigned)chan, key, off, dst, len,
					   WR_TAG | peer << 8);

	if (rc == 0)
		t->posted++;
	else
		op_failed(t, WR_TAG | peer << 8, rc == -ENOTCONN ? -ECONNRESET : rc);
}

/* Reap every one-sided operation posted (on shm they are done already;
 * served NICs answer through the target's loop). */
static void reap_ops(struct farm *f)
{
	struct farm_txs *t = f->tx;
	struct unet_rdma_comp c[32];
	uint64_t deadline = 0;

	while (t->posted) {
		int n = unet_rdma_poll(f->rdma, c, t->posted < 32 ? t->posted : 32);
		if (n < 0)
			break;
		for (int i = 0; i < n; i++)
			if (c[i].status)
				op_failed(t, c[i].wr_id, c[i].status);
		t->posted -= (uint32_t)n;
		if (n == 0) {
			uint64_t now = farm__now_ns();
			if (!deadline)
				deadline = now + 12000000000ull; /* above rdma's own timeout */
			else if (now >= deadline)
				break;
			unet_msg_idle(f->mep, 1);
		}
	}
}

int farm__tx_read_word(struct farm *f, uint32_t region, uint64_t off, uint64_t *w)
{
	struct farm_txs *t = f->tx;
	const struct farm_region *r = &f->regions[region];
	int lix = lix_of_idx(f, r->peer);
	uint32_t peer = (uint32_t)lix;

	if (r->local) {
		*w = farm_word_load(r->local + off);
		return 0;
	}
	if (lix < 0)
		return -ECONNRESET;
	t->part[peer].failed = false;
	post_read(f, peer, r->chan, r->key, off, w, 8);
	reap_ops(f);
	return t->part[peer].failed ? t->part[peer].status : 0;
}

/* ---- log geometry ---------------------------------------------------------------- */

/* Learn participant p's log (READ of its node page, once). */
static int peer_known(struct farm *f, uint32_t p)
{
	struct farm_txs *t = f->tx;
	struct farm_txpeer *tp = &t->peer[p];
	uint64_t *pi = t->pageinfo;
	const uint32_t *ids = (const uint32_t *)&t->pageinfo[3];
	const struct farm_peer *x;
	int mine = -1;

	if (tp->known)
		return 0;
	if (p == t->self_lix) { /* our own ring: stored in place */
		tp->key = unet_mr_key(t->log_mr);
		tp->cap = t->cap;
		tp->base = (uint64_t)p * t->stride;
		tp->known = true;
		return 0;
	}
	if (!(x = peer_of(f, p)))
		return -ECONNRESET;
	t->part[p].failed = false;
	post_read(f, p, x->chan, x->page_key, FARM_PAGE_LOG_OFF, pi, FARM_PAGE_LOG_INFO);
	reap_ops(f);
	if (t->part[p].failed)
		return t->part[p].status;
	if (!pi[0] || pi[1] < FARM_LOG_CTL || (pi[1] & (pi[1] - 1)) || !pi[2] ||
	    pi[2] > FARM_MAX_MEMBERS)
		return -EPROTO;
	/* Our ring there: where its table names us (a member that joined
	 * gets a spare or recycled ring, so not our own log index). */
	for (uint32_t c = 0; c < pi[2]; c++)
		if (ids[c] == f->self)
			mine = (int)c;
	if (mine < 0)
		return -EAGAIN; /* not given one (yet): it has not adopted us */
	tp->key = pi[0];
	tp->cap = pi[1];
	tp->base = (uint64_t)mine * (FARM_LOG_CTL + tp->cap);
	tp->known = true;
	return 0;
}

/* Re-read p's head (what it has freed). */
static int refresh_head(struct farm *f, uint32_t p)
{
	struct farm_txs *t = f->tx;
	struct farm_txpeer *tp = &t->peer[p];

	if (p == f->tx->self_lix) {
		tp->head = t->ring[p].head;
		return 0;
	}
	t->part[p].failed = false;
	post_read(f, p, chan_of(f, p), tp->key, tp->base + offsetof(struct farm_logctl, head),
		  &tp->head, 8);
	reap_ops(f);
	return t->part[p].failed ? t->part[p].status : 0;
}

/* Tell p our truncation point (one-sided; reaped by the caller). */
static void send_trunc(struct farm *f, uint32_t p)
{
	struct farm_txpeer *tp = &f->tx->peer[p];

	if (tp->trunc == tp->trunc_sent)
		return;
	tp->trunc_sent = tp->trunc;
	if (p == f->tx->self_lix) {
		__atomic_store_n(&f->tx->ring[p].ctl->trunc, tp->trunc, __ATOMIC_RELEASE);
	} else {
		/* After every record it covers (earlier WRITEs of this channel). */
		__atomic_thread_fence(__ATOMIC_RELEASE);
		post_write(f, p, tp->base + offsetof(struct farm_logctl, trunc), &tp->trunc_sent,
			   8);
	}
}

void farm__tx_flush_trunc(struct farm *f)
{
	struct farm_txs *t = f->tx;

	if (t->in_commit)
		return;
	for (uint32_t p = 0; p < t->nrings; p++)
		if (t->peer[p].known && t->peer[p].trunc != t->peer[p].trunc_sent &&
		    (p == t->self_lix || chan_of(f, p) >= 0)) {
			t->part[p].failed = false;
			send_trunc(f, p);
		}
	reap_ops(f);
	t->trunc_dirty = false;
	t->st.trunc_flushes++;
}

/* ---- records --------------------------------------------------------------------- */

/* Where the next record of `len` bytes to p goes; pads the rest of the lap
 * when it would cross the end. Returns the record's position; *dst is
 * where to build it (the ring itself for our own node, else the stage). */
static uint64_t claim(struct farm *f, uint32_t p, uint32_t len, uint8_t **dst)
{
	struct farm_txs *t = f->tx;
	struct farm_txpeer *tp = &t->peer[p];
	uint64_t pos = farm_log_place(tp->tail, len, tp->cap);
	bool self = p == f->tx->self_lix;

	if (pos != tp->tail) {
		uint8_t *pad =
		    self ? t->ring[p].data + (tp->tail & (tp->cap - 1)) : t->stage + t->stage_at;
		struct farm_logrec *r = (struct farm_logrec *)pad;
		memset(r, 0, sizeof(*r));
		r->len = (uint32_t)(pos - tp->tail);
		r->type = FARM_LOG_PAD;
		r->coord = f->self;
		if (self) {
			__atomic_store_n(&r->tag, tp->tail + 1, __ATOMIC_RELEASE);
		} else {
			uint64_t off = tp->base + FARM_LOG_CTL + (tp->tail & (tp->cap - 1));
			r->tag = tp->tail + 1;
			post_write(f, p, off + 8, pad + 8, sizeof(*r) - 8);
			__atomic_thread_fence(__ATOMIC_RELEASE);
			post_write(f, p, off, pad, 8);
			t->stage_at += sizeof(*r);
		}
	}
	*dst = self ? t->ring[p].data + (pos & (tp->cap - 1)) : t->stage + t->stage_at;
	tp->tail = pos + len;
	return pos;
}

/* Publish a record built at dst for position pos: the tag goes last. */
static void commit_rec(struct farm *f, uint32_t p, uint64_t pos, uint8_t *dst, uint32_t len)
{
	struct farm_txs *t = f->tx;
	struct farm_txpeer *tp = &t->peer[p];
	struct farm_logrec *r = (struct farm_logrec *)dst;

	if (p == f->tx->self_lix) {
		__atomic_store_n(&r->tag, pos + 1, __ATOMIC_RELEASE);
		return;
	}
	uint64_t off = tp->base + FARM_LOG_CTL + (pos & (tp->cap - 1));
	r->tag = pos + 1;
	post_write(f, p, off + 8, dst + 8, len - 8);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	post_write(f, p, off, dst, 8);
	t->stage_at += len;
	send_trunc(f, p); /* the truncation point rides along */
}

static uint32_t ent_image(const struct farm_txw *w)
{
	return (w->flags & FARM_TXW_FREE) ? 0 : w->size;
}

/* Build a LOCK (lock = true) or CB record of entries idx[0..n) at dst. */
static void build_rec(struct farm_tx *tx, uint8_t *dst, uint32_t len, bool lock, const uint8_t *idx,
		      uint32_t n)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;
	struct farm_logrec *r = (struct farm_logrec *)dst;
	uint8_t *p = dst + sizeof(*r);

	memset(r, 0, sizeof(*r));
	r->len = len;
	r->type = lock ? FARM_LOG_LOCK : FARM_LOG_CB;
	r->nent = (uint16_t)n;
	r->tx_id = tx->id;
	r->config_id = tx->config_id;
	r->coord = f->self;
	for (uint32_t k = 0; k < n; k++) {
		const struct farm_txw *w = &tx->wr[idx[k]];
		struct farm_logent *e = (struct farm_logent *)p;
		uint32_t bytes = ent_image(w);
		e->addr = w->addr;
		e->version = lock ? w->ver : farm_ver_next(w->ver);
		e->size = w->size;
		e->bytes = bytes;
		e->flags = w->flags;
		e->pad = 0;
		memcpy(p + sizeof(*e), tx->img + w->img, bytes);
		p += farm_log_ent_len(bytes);
	}
	r->cseq = t->cseq;
	r->nregions = (uint16_t)t->nregions;
	memcpy(p, t->regions, t->nregions * sizeof(uint32_t));
}

/* ---- plan and reserve ----------------------------------------------------------- */

static struct farm_txpart *involve(struct farm_txs *t, uint32_t p)
{
	struct farm_txpart *x = &t->part[p];

	for (uint32_t k = 0; k < t->ninvolved; k++)
		if (t->involved[k] == p)
			return x;
	t->involved[t->ninvolved++] = (uint8_t)p;
	memset(x, 0, offsetof(struct farm_txpart, l));
	x->len_l = x->len_cb = 0;
	x->wrote_l = x->locked = x->wrote_cb = x->failed = false;
	x->req = -1;
	x->status = 0;
	x->reason = 0;
	return x;
}

static int plan(struct farm_tx *tx)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;
	uint32_t nrep = f->map.k;

	t->ninvolved = 0;
	t->nregions = 0;
	if (nrep > t->k) /* more replicas than the stage was sized for */
		return -EPROTO;
	for (uint32_t i = 0; i < tx->nwr; i++) {
		const struct farm_txw *w = &tx->wr[i];
		uint32_t region = FARM_REGION(w->addr), k;
		uint32_t elen = farm_log_ent_len(ent_image(w));
		struct farm_txpart *p;
		int rep[16]; /* 2 x FARM_MAX_REPLICAS: data replicas and joiners */

		/* From the current map, not a copy: the map is the
		 * configuration's, and configurations change. */
		if (region >= f->map.nregions)
			return -ENOENT;
		for (uint32_t b = 0; b < nrep; b++) {
			uint32_t id = farm_rmap_replicas(&f->map, region)[b];
			if (!id)
				rep[b] = -1; /* a slot no joiner fills */
			else if ((rep[b] = farm__tx_lix(t, id)) < 0)
				return -EPROTO;
		}
		for (k = 0; k < t->nregions && t->regions[k] != region; k++)
			;
		if (k == t->nregions)
			t->regions[t->nregions++] = region;
		p = involve(t, (uint32_t)rep[0]);
		p->l[p->nl++] = (uint8_t)i;
		p->len_l += elen;
		/* Allocated and freed by this tx: nothing for the backups. */
		if ((w->flags & (FARM_TXW_ALLOC | FARM_TXW_FREE)) ==
		    (FARM_TXW_ALLOC | FARM_TXW_FREE))
			continue;
		for (uint32_t b = 1; b < nrep; b++) {
			if (rep[b] < 0)
				continue;
			p = involve(t, (uint32_t)rep[b]);
			p->cb[p->ncb++] = (uint8_t)i;
			p->len_cb += elen;
		}
	}
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		struct farm_txpart *p = &t->part[t->involved[k]];
		if (p->nl)
			p->len_l = farm_log_rec_len(
			    p->len_l + farm_log_pad8(t->nregions * (uint32_t)sizeof(uint32_t)));
		if (p->ncb)
			p->len_cb = farm_log_rec_len(
			    p->len_cb + farm_log_pad8(t->nregions * (uint32_t)sizeof(uint32_t)));
	}
	return 0;
}

/* End of this commit's records in p's ring if written from tail on. */
static uint64_t plan_end(const struct farm_txpeer *tp, const struct farm_txpart *p)
{
	uint64_t pos = tp->tail;

	if (p->len_l)
		pos = farm_log_place(pos, p->len_l, tp->cap) + p->len_l;
	if (p->len_cb)
		pos = farm_log_place(pos, p->len_cb, tp->cap) + p->len_cb;
	if (p->len_l)
		pos = farm_log_place(pos, sizeof(struct farm_logrec), tp->cap) +
		      sizeof(struct farm_logrec);
	return pos;
}

/* Make room for participant p's records: 0, or the abort reason. */
static enum farm_abort_reason reserve_one(struct farm *f, uint32_t p, uint64_t deadline)
{
	struct farm_txs *t = f->tx;
	struct farm_txpeer *tp = &t->peer[p];
	struct farm_txpart *x = &t->part[p];
	uint64_t end;

	if (peer_known(f, p))
		return FARM_ABORT_FAILURE;
	end = plan_end(tp, x);
	if (end - tp->head <= tp->cap)
		return FARM_ABORT_NONE;
	if (end - tp->tail > tp->cap)
		return FARM_ABORT_LOG_FULL; /* larger than the whole ring */
	if (refresh_head(f, p))
		return FARM_ABORT_FAILURE;
	if (end - tp->head <= tp->cap)
		return FARM_ABORT_NONE;
	/* Full of records of our finished txs that p has not applied yet
	 * (asleep, or busy): tell it where we are and ask it to apply now. */
	t->st.log_waits++;
	retire_wait(f, 0);
	if (tp->trunc != tp->tail) /* a commit whose primary never acked */
		return FARM_ABORT_LOG_FULL;
	if (p == f->tx->self_lix) {
		send_trunc(f, p);
		farm__txp_apply(f, p);
		tp->head = t->ring[p].head;
	} else {
		struct farm_wire_txlog m;
		uint64_t kick_end = farm__now_ns() + (uint64_t)KICK_MS * 1000000ull;
		x->failed = false;
		send_trunc(f, p);
		reap_ops(f);
		if (x->failed)
			return FARM_ABORT_FAILURE;
		memset(&m, 0, sizeof(m));
		m.op = FARM_TXLOG_TRUNC;
		t->st.log_kicks++;
		x->req = req_post(f, (int)p, FARM_MSG_TX_LOG, &m, sizeof(m),
				  kick_end < deadline ? kick_end : deadline);
		if (x->req < 0) {
			x->req = -1;
			return FARM_ABORT_FAILURE;
		}
		wait_parts(f, kick_end < deadline ? kick_end : deadline);
		if (x->status == -ETIMEDOUT)
			return FARM_ABORT_LOG_FULL; /* alive but did not free it in time */
		if (x->status)
			return FARM_ABORT_FAILURE;
		if (refresh_head(f, p))
			return FARM_ABORT_FAILURE;
	}
	return end - tp->head <= tp->cap ? FARM_ABORT_NONE : FARM_ABORT_LOG_FULL;
}

/* ---- phases ---------------------------------------------------------------------- */

/* Unlock at every primary whose LOCK may have taken effect. */
static void abort_primaries(struct farm_tx *tx, uint64_t deadline)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;

	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		struct farm_txpart *x = &t->part[p];
		/* Locked, or no answer (it may have locked); not: refused, or
		 * never sent. */
		if (!x->wrote_l || !(x->locked || x->status == -ETIMEDOUT))
			continue;
		x->locked = false;
		if (p == f->tx->self_lix) {
			farm__txp_abort(f, p, x->pos_l);
			continue;
		}
		struct farm_wire_txlog m;
		memset(&m, 0, sizeof(m));
		m.op = FARM_TXLOG_ABORT;
		m.pos = x->pos_l;
		m.tx_id = tx->id;
		x->req = req_post(f, (int)p, FARM_MSG_TX_LOG, &m, sizeof(m), deadline);
		if (x->req < 0)
			x->req = -1;
	}
	wait_parts(f, deadline);
}

static int send_doorbells(struct farm_tx *tx, uint32_t op, bool cp, uint64_t deadline)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;

	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		struct farm_txpart *x = &t->part[p];
		struct farm_wire_txlog m;

		if (!x->nl || p == f->tx->self_lix || x->failed)
			continue;
		memset(&m, 0, sizeof(m));
		m.op = op;
		m.pos = cp ? x->pos_cp : x->pos_l;
		m.tx_id = tx->id;
		x->req = req_post(f, (int)p, FARM_MSG_TX_LOG, &m, sizeof(m), deadline);
		if (x->req < 0) {
			x->status = x->req;
			x->reason = FARM_ABORT_FAILURE;
			x->failed = true;
			x->req = -1;
		}
	}
	return 0;
}

static enum farm_abort_reason lock_phase(struct farm_tx *tx, uint64_t deadline)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;
	enum farm_abort_reason why = FARM_ABORT_NONE;
	int self = -1;

	t->stage_at = 0;
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		struct farm_txpart *x = &t->part[p];
		uint8_t *dst;
		if (!x->nl)
			continue;
		x->pos_l = claim(f, p, x->len_l, &dst);
		build_rec(tx, dst, x->len_l, true, x->l, x->nl);
		commit_rec(f, p, x->pos_l, dst, x->len_l);
		x->wrote_l = true;
		if (p == f->tx->self_lix)
			self = (int)p;
	}
	reap_ops(f);
	send_doorbells(tx, FARM_TXLOG_LOCK, false, deadline);
	if (self >= 0) {
		struct farm_txpart *x = &t->part[self];
		x->status = farm__txp_lock(f, (uint32_t)self, x->pos_l, &x->reason);
	}
	wait_parts(f, deadline);
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		struct farm_txpart *x = &t->part[t->involved[k]];
		if (!x->nl)
			continue;
		if (x->status == 0 && !x->failed) {
			x->locked = true;
			continue;
		}
		enum farm_abort_reason r =
		    x->status == -EAGAIN ? (enum farm_abort_reason)x->reason : FARM_ABORT_FAILURE;
		if (r == FARM_ABORT_NONE || r > FARM_ABORT_USER)
			r = FARM_ABORT_FAILURE;
		if (why == FARM_ABORT_NONE || r == FARM_ABORT_FAILURE)
			why = r;
	}
	if (why != FARM_ABORT_NONE)
		abort_primaries(tx, deadline);
	return why;
}

static bool in_write_set(const struct farm_tx *tx, farm_addr_t a)
{
	for (uint32_t i = 0; i < tx->nwr; i++)
		if (tx->wr[i].addr == a)
			return true;
	return false;
}

int farm__tx_validate(struct farm_tx *tx, enum farm_abort_reason *why)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;
	uint64_t asked = 0; /* members whose configuration id we READ */

	*why = FARM_ABORT_NONE;
	for (uint32_t i = 0; i < tx->nrd; i++) {
		const struct farm_txr *rd = &tx->rd[i];
		const struct farm_region *r = &f->regions[FARM_REGION(rd->addr)];
		if (tx->nwr && in_write_set(tx, rd->addr)) {
			t->vword[i] = farm_hdr_make(true, 0, rd->ver); /* checked by LOCK */
			continue;
		}
		if (r->local) {
			t->vword[i] = farm_word_load(r->local + FARM_OFFSET(rd->addr));
			continue;
		}
		int lix = lix_of_idx(f, r->peer);
		if (lix < 0) { /* its primary has no ring here: another configuration */
			*why = FARM_ABORT_FAILURE;
			reap_ops(f);
			return -EAGAIN;
		}
		uint32_t peer = (uint32_t)lix;
		if (!(asked & (1ull << peer))) {
			asked |= 1ull << peer;
			t->part[peer].failed = false;
			post_read(f, peer, r->chan, r->page_key, FARM_PAGE_CONFIG_OFF,
				  &t->vcfg[peer], 8);
		}
		post_read(f, peer, r->chan, r->key, FARM_OFFSET(rd->addr), &t->vword[i], 8);
	}
	reap_ops(f);
	for (uint32_t p = 0; p < FARM_MAX_MEMBERS; p++) {
		if (!(asked & (1ull << p)))
			continue;
		if (t->part[p].failed || farm_fence_read(tx->config_id, t->vcfg[p])) {
			*why = FARM_ABORT_FAILURE;
			return -EAGAIN;
		}
	}
	for (uint32_t i = 0; i < tx->nrd; i++) {
		uint64_t h = t->vword[i];
		if (farm_hdr_locked(h) || !farm_hdr_alloc(h) ||
		    farm_hdr_version(h) != tx->rd[i].ver) {
			*why = FARM_ABORT_VALIDATE;
			return -EAGAIN;
		}
	}
	return 0;
}

/* Retract the CB records written (a commit that fails before
 * COMMIT-PRIMARY must never be applied by a backup). Returns false when
 * a retraction to a backup that is still a member was not confirmed over
 * the wire: then recovery may yet commit the transaction from that
 * backup's record (if we are the one cut off and get removed), so its
 * outcome is unknown. */
static bool void_backups(struct farm_tx *tx)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;

	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		struct farm_txpart *x = &t->part[p];
		struct farm_txpeer *tp = &t->peer[p];
		if (!x->wrote_cb)
			continue;
		if (p == f->tx->self_lix) {
			((struct farm_logrec *)(t->ring[p].data + (x->pos_cb & (tp->cap - 1))))
			    ->type = FARM_LOG_VOID;
			continue;
		}
		x->failed = false;
		/* Bytes 8..15 of the header: len, type, nent. */
		struct farm_logrec *r = (struct farm_logrec *)(t->stage + t->stage_at);
		r->len = x->len_cb;
		r->type = FARM_LOG_VOID;
		r->nent = 0;
		post_write(f, p, tp->base + FARM_LOG_CTL + (x->pos_cb & (tp->cap - 1)) + 8, &r->len,
			   8);
		t->stage_at += sizeof(*r);
	}
	reap_ops(f);
	/* On shm a WRITE fails only when the peer's process is gone (its
	 * socket hung up): its memory, and the record in it, are gone too and
	 * will never vote. Over the wire a failure may be our own isolation. */
	if (!strncmp(f->cfg.nic, "shm", 3))
		return true;
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		if (t->part[p].wrote_cb && p != t->self_lix && t->part[p].failed && peer_of(f, p))
			return false;
	}
	return true;
}

static enum farm_abort_reason backup_phase(struct farm_tx *tx)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;

	t->stage_at = 0;
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		struct farm_txpart *x = &t->part[p];
		uint8_t *dst;
		if (!x->ncb)
			continue;
		x->failed = false;
		x->pos_cb = claim(f, p, x->len_cb, &dst);
		build_rec(tx, dst, x->len_cb, false, x->cb, x->ncb);
		commit_rec(f, p, x->pos_cb, dst, x->len_cb);
		x->wrote_cb = true;
		const struct farm_peer *xp = peer_of(f, p);
		/* The fence READ must not pass the record's tag store (on shm
		 * both are our CPU's accesses): a participant that adopts a
		 * configuration publishes its id, fences, then scans its rings
		 * (recovery.c); one of the two sides sees the other. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		if (p != t->self_lix && xp) /* the fence: p still in our configuration */
			post_read(f, p, xp->chan, xp->page_key, FARM_PAGE_CONFIG_OFF, &t->vcfg[p],
				  8);
		else if (p != t->self_lix)
			op_failed(t, WR_TAG | p << 8, -ECONNRESET);
	}
	reap_ops(f);
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		struct farm_txpart *x = &t->part[p];
		if (!x->ncb || p == f->tx->self_lix)
			continue;
		/* On shm a WRITE lands in the memory of a peer that died; msg
		 * learns of the death at once. */
		if (x->failed || farm_fence_read(tx->config_id, t->vcfg[p]) || chan_of(f, p) < 0 ||
		    unet_msg_status(f->mep, (unsigned)chan_of(f, p)) != 0)
			return FARM_ABORT_FAILURE;
	}
	return FARM_ABORT_NONE;
}

/* COMMIT-PRIMARY: records and doorbells; the acks are collected later
 * (retire), or at once with cp_wait. */
static void primary_phase(struct farm_tx *tx, uint64_t deadline)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;
	int self = -1;

	t->stage_at = 0;
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		struct farm_txpart *x = &t->part[p];
		struct farm_logrec *r;
		uint8_t *dst;
		if (!x->nl)
			continue;
		x->failed = false;
		x->status = 0;
		x->pos_cp = claim(f, p, sizeof(*r), &dst);
		r = (struct farm_logrec *)dst;
		memset(r, 0, sizeof(*r));
		r->len = sizeof(*r);
		r->type = FARM_LOG_CP;
		r->tx_id = tx->id;
		r->config_id = tx->config_id;
		r->ref = x->pos_l;
		r->coord = f->self;
		r->cseq = t->cseq;
		commit_rec(f, p, x->pos_cp, dst, sizeof(*r));
		if (p == f->tx->self_lix)
			self = (int)p;
	}
	reap_ops(f);
	send_doorbells(tx, FARM_TXLOG_COMMIT, true, deadline);
	if (self >= 0)
		t->part[self].status = farm__txp_commit(f, (uint32_t)self, t->part[self].pos_cp);
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		struct farm_txpart *x = &t->part[t->involved[k]];
		if (x->nl && (x->status || x->failed))
			t->st.cp_failed++; /* committed: the backups hold it */
		x->locked = false;
	}
}

/* Retire finished commits in order while their COMMIT-PRIMARY acks are in
 * (or overdue -- msg fails a dead peer's requests long before: counted,
 * the commit stands): their records become truncatable. Returns commits
 * retired. */
static int retire(struct farm *f)
{
	struct farm_txs *t = f->tx;
	int n = 0;

	while (t->done_head != t->done_tail) {
		struct farm_txdone *d = &t->done[t->done_head % FARM_TX_INFLIGHT];
		bool late = false;
		for (uint32_t k = 0; k < d->n; k++)
			if (d->req[k] >= 0 && t->req[d->req[k]].state == FARM_TXQ_WAIT) {
				if (farm__now_ns() < d->deadline)
					return n;
				late = true;
			}
		for (uint32_t k = 0; k < d->n; k++) {
			uint32_t p = d->who[k];
			if (d->req[k] >= 0) {
				struct farm_txreq *q = &t->req[d->req[k]];
				if (late && q->state == FARM_TXQ_WAIT) {
					q->state = FARM_TXQ_ABANDONED;
					t->st.cp_failed++;
				} else {
					if (q->status)
						t->st.cp_failed++;
					req_release(t, (uint32_t)d->req[k]);
				}
			}
			if (p == FARM_TXD_GONE)
				continue; /* its ring was given to a new incarnation */
			t->peer[p].trunc = d->tail[k];
			if (p == f->tx->self_lix)
				send_trunc(f, p);
			else
				t->trunc_dirty = true;
		}
		t->done_head++;
		n++;
	}
	return n;
}

/* Wait until at most `keep` commits are unretired. */
static void retire_wait(struct farm *f, uint32_t keep)
{
	struct farm_txs *t = f->tx;

	while (t->done_tail - t->done_head > keep)
		if (retire(f) == 0 && farm_poll(f) == 0 && t->done_tail - t->done_head > keep)
			unet_msg_idle(f->mep, 1);
}

/* This commit's records are all written: queue it for retirement. */
static void finish(struct farm *f, uint64_t deadline)
{
	struct farm_txs *t = f->tx;
	struct farm_txdone *d;

	retire(f);
	retire_wait(f, FARM_TX_INFLIGHT - 1);
	d = &t->done[t->done_tail % FARM_TX_INFLIGHT];
	d->n = t->ninvolved;
	d->deadline = deadline;
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		d->who[k] = (uint8_t)p;
		d->tail[k] = t->peer[p].tail;
		d->req[k] = t->part[p].req;
		t->part[p].req = -1;
	}
	t->done_tail++;
	retire(f);
	if (t->cp_wait)
		retire_wait(f, 0);
	t->last_end_ns = farm__now_ns();
}

void farm__tx_set_cp_wait(struct farm *f, bool wait)
{
	if (f && f->tx)
		f->tx->cp_wait = wait;
}

/* The tx may still write records: its configuration is ours and our lease
 * holds. */
static bool still_ours(const struct farm_tx *tx)
{
	return tx->config_id == tx->f->config_id && farm__serving_now(tx->f);
}

int farm__tx_commit_rw(struct farm_tx *tx, enum farm_abort_reason *why)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;
	uint64_t deadline = farm__now_ns() + (uint64_t)f->op_timeout_ms * 1000000ull;
	enum farm_abort_reason r = FARM_ABORT_NONE;
	bool doubt = false;

	t->in_commit = true;
	t->cseq++;
	if (plan(tx))
		r = FARM_ABORT_FAILURE;
	for (uint32_t k = 0; k < t->ninvolved && r == FARM_ABORT_NONE; k++)
		r = reserve_one(f, t->involved[k], deadline);
	if (r != FARM_ABORT_NONE) {
		t->in_commit = false;
		if (t->forget_after)
			farm__log_forget_deferred(f);
		farm__tx_release_allocs(tx); /* nothing locked yet */
		*why = r;
		return -EAGAIN;
	}
	r = lock_phase(tx, deadline);
	if (r == FARM_ABORT_NONE && t->hook)
		t->hook(f, FARM_TXH_LOCKED, t->hook_arg);
	if (r == FARM_ABORT_NONE && tx->nrd && farm__tx_validate(tx, &r))
		abort_primaries(tx, deadline);
	/* Recovery decides a dead coordinator's transactions from what the
	 * survivors' logs held when they adopted the configuration without
	 * it. So records must not land after that: no COMMIT-BACKUP once we
	 * left the tx's configuration or lost our lease (which ends before
	 * anyone removes us), and no COMMIT-PRIMARY either (the CB records'
	 * fence reads were taken under the tx's configuration). */
	if (r == FARM_ABORT_NONE && !still_ours(tx)) {
		r = FARM_ABORT_FAILURE;
		abort_primaries(tx, deadline);
	}
	if (r == FARM_ABORT_NONE) {
		r = backup_phase(tx);
		if (r == FARM_ABORT_NONE && !still_ours(tx))
			r = FARM_ABORT_FAILURE;
		if (r != FARM_ABORT_NONE) {
			doubt = !void_backups(tx);
			abort_primaries(tx, deadline);
		}
	}
	if (r == FARM_ABORT_NONE) {
		if (t->hook)
			t->hook(f, FARM_TXH_BACKED_UP, t->hook_arg);
		primary_phase(tx, deadline);
	}
	finish(f, deadline);
	t->in_commit = false;
	if (t->forget_after)
		farm__log_forget_deferred(f);
	*why = r;
	if (doubt) {
		t->st.in_doubt++;
		return -EIO;
	}
	return r == FARM_ABORT_NONE ? 0 : -EAGAIN;
}

/* ---- releases of a tx that never locked ------------------------------------------ */

void farm__tx_release_allocs(struct farm_tx *tx)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;
	uint64_t deadline = farm__now_ns() + (uint64_t)f->op_timeout_ms * 1000000ull;
	struct farm_wire_txrel *m = (struct farm_wire_txrel *)t->stage;

	if (!tx->nalloc)
		return;
	t->ninvolved = 0;
	for (uint32_t i = 0; i < tx->nwr; i++) {
		const struct farm_txw *w = &tx->wr[i];
		int lix = lix_of_idx(f, f->regions[FARM_REGION(w->addr)].peer);
		if ((w->flags & FARM_TXW_ALLOC) && lix >= 0)
			involve(t, (uint32_t)lix);
	}
	for (uint32_t k = 0; k < t->ninvolved; k++) {
		uint32_t p = t->involved[k];
		uint32_t n = 0;
		for (uint32_t i = 0; i < tx->nwr; i++) {
			const struct farm_txw *w = &tx->wr[i];
			if (!(w->flags & FARM_TXW_ALLOC) ||
			    lix_of_idx(f, f->regions[FARM_REGION(w->addr)].peer) != (int)p)
				continue;
			if (p == f->tx->self_lix) {
				farm__txp_release(f, w->addr, w->ver, w->size);
				continue;
			}
			m->e[n] = (struct farm_wire_txrel_ent){w->addr, w->ver, w->size, 0};
			n++;
		}
		if (!n)
			continue;
		m->n = n;
		m->pad = 0;
		struct farm_txpart *x = &t->part[p];
		x->req = req_post(f, (int)p, FARM_MSG_TX_RELEASE, m,
				  (uint32_t)(sizeof(*m) + n * sizeof(m->e[0])), deadline);
		if (x->req < 0)
			x->req = -1;
	}
	wait_parts(f, deadline);
	tx->nalloc = 0;
}

/* ---- progress hooks --------------------------------------------------------------- */

void farm__tx_flush(struct farm *f)
{
	if (f && f->tx && !f->tx->in_commit) {
		/* Every commit's COMMIT-PRIMARY acked first: then the points
		 * told are final until the next commit. */
		retire_wait(f, 0);
		farm__tx_flush_trunc(f);
	}
}

int farm__tx_poll(struct farm *f)
{
	struct farm_txs *t = f->tx;
	int work = 0;

	if (t->ndefer)
		work += farm__log_flush_replies(f);
	if (t->done_head != t->done_tail)
		work += retire(f);
	for (uint32_t c = 0; c < t->nrings; c++)
		if (__atomic_load_n(&t->ring[c].ctl->trunc, __ATOMIC_RELAXED) != t->ring[c].head)
			work += farm__txp_apply(f, c);
	if (t->rcv)
		work += farm__rcv_poll(f);
	if (t->trunc_dirty && !t->in_commit && (++t->polls & 31) == 0 &&
	    farm__now_ns() - t->last_end_ns > TRUNC_FLUSH_NS)
		farm__tx_flush_trunc(f);
	return work;
}

void farm__tx_idle(struct farm *f)
{
	struct farm_txs *t = f->tx;

	if (t->trunc_dirty && !t->in_commit)
		farm__tx_flush_trunc(f);
}

uint64_t farm__tx_unapplied(struct farm *f)
{
	struct farm_txs *t = f->tx;
	uint64_t n = 0;

	for (uint32_t c = 0; c < t->nrings; c++) {
		const struct farm_txring *r = &t->ring[c];
		if (r->retired)
			continue; /* recovery applied it; its coordinator is gone */
		n += r->dead ? r->end - r->head
			     : __atomic_load_n(&r->ctl->trunc, __ATOMIC_ACQUIRE) - r->head;
	}
	for (uint32_t p = 0; p < t->nrings; p++)
		n += t->peer[p].trunc != t->peer[p].trunc_sent;
	return n + (t->done_tail - t->done_head);
}
