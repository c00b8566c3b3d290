/*
 * replica.c - what a region's primary and its backups do: allocate, free
 * and write objects at the primary, ship the changed bytes to the backups,
 * and answer only once every backup has them.
 *
 * A change at the primary becomes a *pend*: the byte ranges that changed
 * (farm_slab_change), which backups still have to be sent them, how many
 * acks are outstanding, and who waits (a farm_* call on this node, or a
 * peer's request to answer later). Handlers never block: they start the
 * pend and return; the acks arrive as request completions in farm_poll.
 *
 * A write keeps the object locked until every backup has acked, so a
 * reader never sees a value that a failure could take back; the REPL image
 * carries the new, unlocked header in place of the locked one in memory.
 * Allocation formats the object at once (nobody knows its address before
 * the reply). If a backup fails, the primary keeps the change, unlocks and
 * reports the backup's error to the caller: re-creating the lost replica
 * is re-replication's job (rerep.c). A primary that dies mid-change may
 * leave it at some backups only: see "resync" below.
 *
 * Sends that find the msg staging full stay in the pend (to_send) and are
 * retried by farm_poll; the REPL message is rebuilt from region memory,
 * which cannot change meanwhile (the object is locked, or its address has
 * not been handed out yet).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "node.h"

uint32_t farm__test_repl_skip;
static bool rsq_add(struct farm *f, const struct farm_replog_ent *e);
bool farm__test_resync_off;

/* ---- pends ----------------------------------------------------------------- */

static int pend_new(struct farm *f)
{
	uint32_t i = f->pend_free;
	struct farm_pend *p;

	if (i == UINT32_MAX)
		return -EBUSY;
	p = &f->pends[i];
	f->pend_free = p->next_free;
	memset(p, 0, sizeof(*p));
	p->used = true;
	p->next_free = UINT32_MAX;
	return (int)i;
}

static void pend_release(struct farm *f, uint32_t i)
{
	struct farm_pend *p = &f->pends[i];

	p->used = false;
	p->next_free = f->pend_free;
	f->pend_free = i;
}

static void pend_finish(struct farm *f, uint32_t i)
{
	struct farm_pend *p = &f->pends[i];

	if (p->kind == FARM_PEND_WRITE) {
		/* Unlock where we locked: a configuration adopted meanwhile may
		 * have made us a backup of the region (a joiner took it over),
		 * or dropped our replica. */
		const struct farm_region *reg = &f->regions[p->region];
		uint8_t *base = reg->local ? reg->local : reg->mine ? reg->mine->base : NULL;
		if (base)
			farm_word_store(base + p->obj_off, p->hdr);
	}
	if (p->quiet) {
		f->rsq_inflight--; /* a resync: nobody waits */
	} else if (p->local) {
		struct farm_op *o = &f->ops[p->local_op];
		if (o->state == FARM_OP_ABANDONED) {
			farm__op_release(f, p->local_op);
		} else {
			o->status = p->status;
			o->reply.status = p->status;
			o->reply.value = p->value;
			o->reply.config_id = f->config_id;
			o->state = FARM_OP_DONE;
		}
	} else {
		farm__reply(f, &p->from, p->status, p->value);
	}
	pend_release(f, i);
}

/* Build the REPL message for pend `p` in f->msgbuf. */
static uint32_t repl_build(struct farm *f, const struct farm_pend *p)
{
	struct farm_wire_repl *m = (struct farm_wire_repl *)f->msgbuf;
	const uint8_t *base = f->regions[p->region].local;
	uint32_t at = sizeof(*m);

	farm__hdr(f, &m->h);
	m->region = p->region;
	m->nrec = p->ch.n;
	for (unsigned k = 0; k < p->ch.n; k++) {
		struct farm_wire_rec rec = {.off = p->ch.r[k].off, .len = p->ch.r[k].len};
		memcpy(f->msgbuf + at, &rec, sizeof(rec));
		at += sizeof(rec);
		memcpy(f->msgbuf + at, base + rec.off, rec.len);
		if (p->hdr && rec.off == p->obj_off)
			memcpy(f->msgbuf + at, &p->hdr, sizeof(p->hdr));
		at += (rec.len + 7) & ~7u;
	}
	return at;
}

/* Send to the backups still in to_send; returns sends made. */
static int pend_kick(struct farm *f, uint32_t i)
{
	struct farm_pend *p = &f->pends[i];
	const uint32_t *rep = farm_rmap_replicas(&f->map, p->region);
	uint32_t len = 0;
	int sent = 0;

	for (uint32_t b = 1; b < f->map.k && p->to_send; b++) {
		if (!(p->to_send & (1u << b)))
			continue;
		int peer = farm__config_member(&f->cfg, rep[b]);
		int op = farm__op_new(f, FARM_OPK_REPL, i);
		int64_t id;

		if (op < 0)
			break; /* all ops in flight: farm_poll retries */
		if (!len)
			len = repl_build(f, p);
		id = farm__request(f, peer, FARM_MSG_REPL, f->msgbuf, len, (uint32_t)op);
		if (id == -EAGAIN || id == -EBUSY) {
			farm__op_release(f, (uint32_t)op);
			break;
		}
		p->to_send &= ~(1u << b);
		sent++;
		if (id < 0) { /* channel gone: this backup will not ack */
			farm__op_release(f, (uint32_t)op);
			p->status = (int32_t)id;
			p->acks_left--;
		}
	}
	return sent;
}

/* Start replicating pend `i`; finishes it at once when there is nothing to
 * wait for. */
static void pend_start(struct farm *f, uint32_t i)
{
	struct farm_pend *p = &f->pends[i];

	const uint32_t *rep = farm_rmap_replicas(&f->map, p->region);

	p->acks_left = 0;
	p->to_send = 0;
	for (uint32_t b = 1; b < f->map.k; b++)
		/* 0: a slot no joiner fills (regionmap.h); a joiner whose
		 * HELLO has not come copies this change later (node.h). */
		if (rep[b] && !farm__joiner_unready(f, farm__config_member(&f->cfg, rep[b])) &&
		    !(farm__test_repl_skip & (1u << b))) {
			p->to_send |= 1u << b;
			p->acks_left++;
		}
	pend_kick(f, i);
	if (p->to_send)
		f->pend_unsent++;
	else if (p->acks_left == 0)
		pend_finish(f, i);
}

int farm__pend_poll(struct farm *f)
{
	int work = 0;

	for (uint32_t i = 0; i < f->npends && f->pend_unsent; i++) {
		struct farm_pend *p = &f->pends[i];
		if (!p->used || !p->to_send)
			continue;
		work += pend_kick(f, i);
		if (!p->to_send) {
			f->pend_unsent--;
			if (p->acks_left == 0)
				pend_finish(f, i);
		}
	}
	return work;
}

void farm__repl_done(struct farm *f, uint32_t i, int status)
{
	struct farm_pend *p = &f->pends[i];

	if (i >= f->npends || !p->used || !p->acks_left)
		return;
	if ((status == -ESTALE || status == -ENXIO) && !farm__test_resync_off) {
		/* A backup in another configuration than ours refused the
		 * change, which we keep: push it again once we have adopted
		 * that configuration (resync below; dropped if we no longer
		 * lead the region then). */
		for (unsigned k = 0; k < p->ch.n; k++)
			rsq_add(f, &(struct farm_replog_ent){p->region, p->ch.r[k].len,
							     p->ch.r[k].off});
		f->rsq_next_ns = farm__now_ns() + 1000000;
	}
	if (status)
		p->status = status;
	if (--p->acks_left == 0 && !p->to_send)
		pend_finish(f, i);
}

static void pend_waiter(struct farm_pend *p, bool local, uint32_t local_op,
			const struct unet_msg *from)
{
	p->local = local;
	p->local_op = local_op;
	if (from) {
		p->from = *from;
		p->from.data = NULL;
	}
}

/* ---- the primary's operations ---------------------------------------------- */

static struct farm_replica *primary_of(struct farm *f, uint32_t region)
{
	if (region >= f->map.nregions)
		return NULL;
	struct farm_replica *x = f->regions[region].mine;
	return x && x->role == 0 ? x : NULL;
}

/* Carve an object of `size` bytes in region (this node its primary) into a
 * new pend: the pend's index, or a negative code. `locked`: a transaction's
 * reservation (the slot comes out locked). A promoted primary allocates
 * nothing while recovery still holds locks in the region: its slab is
 * rebuilt from the region bytes once they are all decided (an undecided
 * allocation's slot looks free until then); callers move on to another
 * region as from a full one. */
static int carve(struct farm *f, uint32_t region, uint32_t size, bool locked)
{
	struct farm_replica *x;
	struct farm_pend *p;
	uint64_t off;
	int pi, rc;

	if (region >= f->map.nregions)
		return -ENOENT;
	if (!(x = primary_of(f, region)))
		return -ENXIO;
	if (x->rlocks)
		return -ENOSPC;
	if ((pi = pend_new(f)) < 0)
		return pi;
	p = &f->pends[pi];
	rc = locked ? farm_slab_alloc_locked(&x->slab, size, &off, &p->ch)
		    : farm_slab_alloc(&x->slab, size, &off, &p->ch);
	if (rc) {
		pend_release(f, (uint32_t)pi);
		return rc;
	}
	p->kind = FARM_PEND_ALLOC;
	p->region = region;
	p->obj_off = off;
	p->value = FARM_ADDR(region, off);
	return pi;
}

int farm__primary_alloc(struct farm *f, uint32_t region, uint32_t size, bool local,
			uint32_t local_op, const struct unet_msg *from)
{
	int pi = carve(f, region, size, false);

	if (pi < 0)
		return pi;
	pend_waiter(&f->pends[pi], local, local_op, from);
	pend_start(f, (uint32_t)pi);
	return 0;
}

/* A transaction's reservation (tx.h): the object comes out locked and is
 * not replicated (its image reaches the backups in the transaction's
 * COMMIT-BACKUP records, or never if it aborts); a slab carved for it is,
 * like any allocation's, before the answer. */
int farm__primary_reserve(struct farm *f, uint32_t region, uint32_t size, bool local,
			  uint32_t local_op, const struct unet_msg *from)
{
	int pi = carve(f, region, size, true);
	struct farm_pend *p;

	if (pi < 0)
		return pi;
	p = &f->pends[pi];
	p->ch.n--; /* the object's own lines: last in the list */
	pend_waiter(p, local, local_op, from);
	if (p->ch.n == 0 || f->map.k == 1 || !farm_rmap_replicas(&f->map, region)[1])
		pend_finish(f, (uint32_t)pi);
	else
		pend_start(f, (uint32_t)pi);
	return 0;
}

int farm__primary_free(struct farm *f, farm_addr_t addr, bool local, uint32_t local_op,
		       const struct unet_msg *from)
{
	uint32_t region = FARM_REGION(addr);
	struct farm_replica *x;
	struct farm_pend *p;
	int pi, rc;

	if (region >= f->map.nregions)
		return -ENOENT;
	if (!(x = primary_of(f, region)))
		return -ENXIO;
	if ((pi = pend_new(f)) < 0)
		return pi;
	p = &f->pends[pi];
	rc = farm_slab_free(&x->slab, FARM_OFFSET(addr), &p->ch);
	if (rc) {
		pend_release(f, (uint32_t)pi);
		return rc;
	}
	p->kind = FARM_PEND_FREE;
	p->region = region;
	p->obj_off = FARM_OFFSET(addr);
	pend_waiter(p, local, local_op, from);
	pend_start(f, (uint32_t)pi);
	return 0;
}

int farm__primary_write(struct farm *f, farm_addr_t addr, const void *buf, uint32_t len,
			bool local, uint32_t local_op, const struct unet_msg *from)
{
	uint32_t region = FARM_REGION(addr), off = FARM_OFFSET(addr), size;
	struct farm_replica *x;
	struct farm_pend *p;
	uint64_t h, ver;
	uint8_t *obj;
	bool ok;
	int pi, rc;

	if ((rc = farm__check_addr(f, addr, len)))
		return rc;
	if (!(x = primary_of(f, region)))
		return -ENXIO;
	if ((pi = pend_new(f)) < 0)
		return pi;
	obj = x->base + off;
	h = farm_obj_trylock(obj, &ok);
	if (!ok) {
		pend_release(f, (uint32_t)pi);
		return farm_hdr_alloc(h) ? -EBUSY : -EINVAL;
	}
	size = farm_hdr_size(h);
	if (len > size) {
		farm_word_store(obj, h); /* unlock, unchanged */
		pend_release(f, (uint32_t)pi);
		return -EFBIG;
	}
	ver = farm_ver_next(farm_hdr_version(h));
	farm_obj_stage(obj, size, ver, buf, len);
	p = &f->pends[pi];
	p->kind = FARM_PEND_WRITE;
	p->region = region;
	p->obj_off = off;
	p->hdr = farm_hdr_make(true, size, ver);
	p->value = ver;
	p->ch.n = 1;
	p->ch.r[0].off = off;
	p->ch.r[0].len = farm_obj_lines(size) * FARM_LINE;
	pend_waiter(p, local, local_op, from);
	pend_start(f, (uint32_t)pi);
	return 0;
}

/* ---- handlers -------------------------------------------------------------- */

static void on_alloc(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_alloc a;
	int rc;

	(void)mep;
	if (farm__admit(f, m, sizeof(a)))
		return;
	memcpy(&a, m->data, sizeof(a));
	rc = farm__primary_alloc(f, a.region, a.size, false, 0, m);
	if (rc)
		farm__reply(f, m, rc, 0);
}

static void on_free(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_free a;
	int rc;

	(void)mep;
	if (farm__admit(f, m, sizeof(a)))
		return;
	memcpy(&a, m->data, sizeof(a));
	rc = farm__primary_free(f, a.addr, false, 0, m);
	if (rc)
		farm__reply(f, m, rc, 0);
}

static void on_write(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_write w;
	int rc;

	(void)mep;
	if (farm__admit(f, m, sizeof(w)))
		return;
	memcpy(&w, m->data, sizeof(w));
	if (m->len != sizeof(w) + (uint64_t)w.len) {
		farm__reply(f, m, -EPROTO, 0);
		return;
	}
	rc = farm__primary_write(f, w.addr, (const uint8_t *)m->data + sizeof(w), w.len, false, 0,
				 m);
	if (rc)
		farm__reply(f, m, rc, 0);
}

/* ---- resync: a promoted primary pushes its predecessor's last changes ------ */

/* A primary that dies while a change is on its way to its backups can leave
 * the change at some of them only: its caller was never answered, but the
 * replicas differ at that slot. When the new primary is one that has the
 * change, readers see it from then on, and a backup without it would bring
 * the old bytes back if it were promoted in turn. So a backup remembers the
 * ranges of the last REPLs each primary sent it (struct farm_replog), and
 * a node promoted to lead a region pushes its own bytes of those ranges
 * again to every backup: an object under its lock as a farm_write does
 * (same bytes, same version; objects locked by a transaction or by
 * recovery are pushed once unlocked, after recovery is done with the
 * region), other lines (a free slot's header, a slab header) as they are.
 * The pushes are ordinary REPLs, sent before any later change of the same
 * object, so they cannot undo one. The same push repairs a change that a
 * backup refused because it had adopted a newer configuration than its
 * primary (-ESTALE, or -ENXIO from a map that names another primary): the
 * primary keeps such a change and pushes it again once it has adopted too.
 *
 * The other way round -- a backup that has the change and a new primary
 * that has not -- is repaired by the same push whenever the new primary
 * applied an earlier change of that slot among its last FARM_REPLOG ranges
 * (the object was allocated or written recently: the usual case): its
 * bytes replace the backup's. Otherwise the slot stays as the dead primary
 * left it at that backup until the new primary changes the object again
 * (every change, REPL or COMMIT-BACKUP, replaces the whole object; log.c
 * applies a COMMIT-BACKUP of the same version for this reason). */
static void replog_add(struct farm *f, uint32_t from, uint32_t region, uint64_t off, uint32_t len)
{
	struct farm_replog *l = NULL;
	uint32_t free_i = FARM_MAX_MEMBERS;

	for (uint32_t i = 0; i < FARM_MAX_MEMBERS; i++) {
		if (f->replog[i] && f->replog[i]->from == from) {
			l = f->replog[i];
			break;
		}
		if (!f->replog[i] && free_i == FARM_MAX_MEMBERS)
			free_i = i;
	}
	if (!l) {
		if (free_i == FARM_MAX_MEMBERS) /* 64 primaries over a lifetime: reuse */
			free_i = from % FARM_MAX_MEMBERS;
		if (!f->replog[free_i] && !(f->replog[free_i] = malloc(sizeof(*l))))
			return; /* no memory: this range will not be resynced */
		l = f->replog[free_i];
		l->from = from;
		l->n = 0;
	}
	l->e[l->n++ % FARM_REPLOG] = (struct farm_replog_ent){region, len, off};
}

static bool rsq_add(struct farm *f, const struct farm_replog_ent *e)
{
	for (uint32_t i = 0; i < f->nrsq; i++)
		if (f->rsq[i].region == e->region && f->rsq[i].off == e->off) {
			if (f->rsq[i].len < e->len)
				f->rsq[i].len = e->len;
			return true;
		}
	if (f->nrsq == f->rsq_cap) {
		uint32_t cap = f->rsq_cap ? 2 * f->rsq_cap : 64;
		struct farm_replog_ent *q = realloc(f->rsq, cap * sizeof(*q));
		if (!q)
			return false;
		f->rsq = q;
		f->rsq_cap = cap;
	}
	f->rsq[f->nrsq++] = *e;
	return true;
}

void farm__resync_adopt(struct farm *f, const struct farm_rmap *next)
{
	uint32_t queued = 0;

	if (farm__test_resync_off)
		return;
	for (uint32_t r = 0; r < next->nregions && r < f->map.nregions; r++) {
		uint32_t old = farm_rmap_replicas(&f->map, r)[0];
		const struct farm_replog *l = NULL;

		if (farm_rmap_replicas(next, r)[0] != f->self || old == f->self ||
		    !f->regions[r].mine)
			continue;
		for (uint32_t i = 0; i < FARM_MAX_MEMBERS && !l; i++)
			if (f->replog[i] && f->replog[i]->from == old)
				l = f->replog[i];
		if (!l)
			continue;
		uint32_t n = l->n < FARM_REPLOG ? l->n : FARM_REPLOG;
		for (uint32_t k = 0; k < n; k++) {
			const struct farm_replog_ent *e = &l->e[(l->n - 1 - k) % FARM_REPLOG];
			if (e->region == r && rsq_add(f, e))
				queued++;
		}
	}
	if (queued)
		f->rsq_next_ns = 0;
}

/* Push one range. 0: done (or nothing to do any more), -EBUSY: later. */
static int resync_one(struct farm *f, const struct farm_replog_ent *e)
{
	struct farm_replica *x = primary_of(f, e->region);
	uint64_t size = f->cfg.region_size;
	struct farm_pend *p;
	uint8_t *obj;
	uint64_t h;
	int pi;

	if (!x || e->off < FARM_LINE || e->off % FARM_LINE || e->off >= size || e->len == 0)
		return 0; /* not ours any more (or never a valid range) */
	if (x->rlocks || x->copying)
		return -EBUSY; /* recovery first: its locks, then the slab */
	obj = x->base + e->off;
	h = farm_word_load(obj);
	if (farm_hdr_locked(h))
		return -EBUSY;
	if (f->rsq_inflight >= FARM_RESYNC_INFLIGHT)
		return -EBUSY;
	if ((pi = pend_new(f)) < 0)
		return pi;
	p = &f->pends[pi];
	p->quiet = true;
	f->rsq_inflight++;
	p->region = e->region;
	p->obj_off = e->off;
	p->ch.n = 1;
	p->ch.r[0].off = e->off;
	if (farm_hdr_alloc(h)) {
		uint32_t lines = farm_obj_lines(farm_hdr_size(h));
		bool ok;
		int rc = (uint64_t)lines * FARM_LINE > size - e->off ? 0 /* not a header */ : -EBUSY;
		if (rc == 0 || (h = farm_obj_trylock(obj, &ok), !ok)) {
			f->rsq_inflight--;
			pend_release(f, (uint32_t)pi);
			return rc;
		}
		p->kind = FARM_PEND_WRITE; /* unlocked, unchanged, once every backup has it */
		p->hdr = h;
		p->ch.r[0].len = lines * FARM_LINE;
	} else {
		p->kind = FARM_PEND_RESYNC; /* a free slot's or a slab's header line */
		p->ch.r[0].len = FARM_LINE;
	}
	f->st.resyncs++;
	pend_start(f, (uint32_t)pi);
	return 0;
}

int farm__resync_poll(struct farm *f)
{
	uint64_t now = farm__now_ns();
	uint32_t kept = 0, i;
	int work = 0;

	if (!f->nrsq || now < f->rsq_next_ns)
		return 0;
	/* A few at a time, like any writer: a burst of hundreds of REPLs
	 * would fill msg's staging, where replies to requests wait too. */
	for (i = 0; i < f->nrsq; i++) {
		if (f->rsq_inflight >= FARM_RESYNC_INFLIGHT ||
		    resync_one(f, &f->rsq[i]) == -EBUSY) {
			f->rsq[kept++] = f->rsq[i];
			continue;
		}
		work++;
	}
	f->nrsq = kept;
	if (kept && f->rsq_inflight < FARM_RESYNC_INFLIGHT)
		f->rsq_next_ns = now + 1000000; /* locked, or no pend free: in a ms */
	return work;
}

void farm__resync_fini(struct farm *f)
{
	for (uint32_t i = 0; i < FARM_MAX_MEMBERS; i++) {
		free(f->replog[i]);
		f->replog[i] = NULL;
	}
	free(f->rsq);
	f->rsq = NULL;
	f->nrsq = f->rsq_cap = 0;
}

/* A backup stores what its primary sends. Every record is checked before
 * any is applied, so a malformed message changes nothing. */
static void on_repl(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_repl h;
	const uint8_t *d = m->data;
	struct farm_replica *x;
	uint32_t at;

	(void)mep;
	if (farm__admit(f, m, sizeof(h)))
		return;
	memcpy(&h, d, sizeof(h));
	if (h.region >= f->map.nregions) {
		farm__reply(f, m, -ENOENT, 0);
		return;
	}
	x = f->regions[h.region].mine;
	if (!x || x->role == 0 ||
	    farm_rmap_replicas(&f->map, h.region)[0] != h.h.from) {
		farm__reply(f, m, -ENXIO, 0); /* not our backup, or not its primary */
		return;
	}
	for (int pass = 0; pass < 2; pass++) {
		at = sizeof(h);
		for (uint32_t k = 0; k < h.nrec; k++) {
			struct farm_wire_rec rec;
			if (m->len - at < sizeof(rec)) {
				farm__reply(f, m, -EPROTO, 0);
				return;
			}
			memcpy(&rec, d + at, sizeof(rec));
			at += sizeof(rec);
			if (pass == 0 &&
			    (rec.len < FARM_LINE || rec.len % FARM_LINE || rec.off % FARM_LINE ||
			     rec.off < FARM_LINE || rec.off > f->cfg.region_size ||
			     rec.len > f->cfg.region_size - rec.off ||
			     m->len - at < rec.len)) {
				farm__reply(f, m, -EPROTO, 0);
				return;
			}
			if (pass == 1) {
				farm_obj_put_image(x->base + rec.off, d + at, rec.len);
				replog_add(f, h.h.from, h.region, rec.off, rec.len);
			}
			at += (rec.len + 7) & ~7u;
		}
	}
	farm__reply(f, m, 0, 0);
}

void farm__serve_register(struct farm *f)
{
	unet_msg_handle(f->mep, FARM_MSG_ALLOC, on_alloc, f);
	unet_msg_handle(f->mep, FARM_MSG_FREE, on_free, f);
	unet_msg_handle(f->mep, FARM_MSG_WRITE, on_write, f);
	unet_msg_handle(f->mep, FARM_MSG_REPL, on_repl, f);
}
