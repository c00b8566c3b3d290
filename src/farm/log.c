/*
 * log.c - the participant's side of transactions: the log region (layout
 * in log.h), what a primary does with a LOCK record, a COMMIT-PRIMARY
 * record and an abort, what a backup does with COMMIT-BACKUP records at
 * truncation, and the message handlers (doorbells, reservations,
 * releases).
 *
 * Records arrive by one-sided WRITEs; a primary acts on one only when its
 * coordinator rings the doorbell (FARM_MSG_TX_LOG naming the record's
 * position), which wakes a node blocked in farm_idle and carries the
 * answer back. Backups need no doorbell: their records wait in the ring
 * until the coordinator's truncation point passes them (its trunc word,
 * written along with later records or by an idle flush), and farm_poll
 * applies them then and frees the space.
 *
 * A record is checked whole (tag, bounds, every entry) before it changes
 * anything, so a malformed or stale record is refused and counted, never
 * half applied. Handlers never block; a reply that finds msg's staging
 * full waits in a small queue that farm_poll retries.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "recovery.h"
#include "tx.h"

static uint32_t log_rings(const struct farm_config *cfg)
{
	uint32_t n = cfg->nmembers + FARM_LOG_SPARE;

	return n < FARM_MAX_MEMBERS ? n : FARM_MAX_MEMBERS;
}

uint64_t farm__tx_log_bytes(const struct farm_config *cfg)
{
	uint64_t cap = cfg->log_size ? cfg->log_size : FARM_DEFAULT_LOG_SIZE;

	return (uint64_t)log_rings(cfg) * (FARM_LOG_CTL + cap);
}

int farm__log_init(struct farm *f, char *err, size_t errlen)
{
	struct farm_txs *t = f->tx;
	int rc;

	t->cap = f->cfg.log_size ? f->cfg.log_size : FARM_DEFAULT_LOG_SIZE;
	t->stride = FARM_LOG_CTL + t->cap;
	t->nrings = log_rings(&f->cfg);
	rc = unet_mr_alloc(f->rdma, (size_t)(t->nrings * t->stride), UNET_MR_READ | UNET_MR_WRITE,
			   &t->log_mr);
	if (rc < 0) {
		if (err && errlen)
			snprintf(err, errlen, "registering the transaction logs (%llu bytes): %s",
				 (unsigned long long)(t->nrings * t->stride), unet_strerror(rc));
		return rc;
	}
	t->log = unet_mr_addr(t->log_mr);
	t->self_lix = (uint32_t)f->self_idx;
	for (uint32_t c = 0; c < t->nrings; c++) {
		t->log_id[c] = c < f->cfg.nmembers ? f->cfg.members[c].id : 0; /* 0: spare */
		t->ring[c].ctl = (struct farm_logctl *)(t->log + c * t->stride);
		t->ring[c].data = t->log + c * t->stride + FARM_LOG_CTL;
		t->ring[c].head = 0;
	}
	/* Peers READ these once they have our node page key, which travels
	 * in the HELLO we send after this. */
	f->page->log_key = unet_mr_key(t->log_mr);
	f->page->log_cap = t->cap;
	farm__log_publish(f);
	__atomic_store_n(&f->page->log_nrings, t->nrings, __ATOMIC_RELEASE);
	return 0;
}

void farm__log_publish(struct farm *f)
{
	struct farm_txs *t = f->tx;

	for (uint32_t c = 0; c < FARM_MAX_MEMBERS; c++) {
		uint32_t id = c < t->nrings && !t->ring[c].dead && !t->ring[c].retired ? t->log_id[c]
										     : 0;
		__atomic_store_n(&f->page->log_ids[c], id, __ATOMIC_RELEASE);
	}
}

void farm__log_reset(struct farm *f, uint32_t c, uint32_t id, bool forget)
{
	struct farm_txs *t = f->tx;
	struct farm_txring *r = &t->ring[c];

	/* Hidden from the page first: nobody finds the ring while it is
	 * emptied. The member's old incarnation is gone (its records were
	 * decided by recovery), the new one starts at position 0. */
	__atomic_store_n(&f->page->log_ids[c], 0, __ATOMIC_RELEASE);
	memset(t->log + c * t->stride, 0, t->stride);
	r->head = r->trunc_cseq = r->end = 0;
	r->dead = r->retired = false;
	t->log_id[c] = id;
	/* Our ring at the member (as its coordinator) is another matter: when
	 * the member comes back while recovery still decides its old ring
	 * here, we forgot the old incarnation's when it left (or was renewed)
	 * and may be writing to the new one's already. Forgetting that now
	 * would send our next records to a position the new ring never
	 * reaches. */
	if (forget)
		farm__log_forget(f, c);
	farm__log_publish(f);
}

void farm__log_forget(struct farm *f, uint32_t c)
{
	struct farm_txs *t = f->tx;

	/* As coordinator: the participant is gone, or a new process. Commits
	 * not yet retired that involved its old incarnation keep no claim on
	 * it, and our ring there is looked up afresh (its node page). Not in
	 * the middle of a commit (a recovery round or an adoption can run in
	 * its waits): it would go on claiming positions with a zeroed
	 * geometry, and the tail it leaves is where the next commit writes. */
	if (t->in_commit) {
		t->forget_after |= 1ull << c;
		return;
	}
	memset(&t->peer[c], 0, sizeof(t->peer[c]));
	for (uint32_t i = t->done_head; i != t->done_tail; i++) {
		struct farm_txdone *d = &t->done[i % FARM_TX_INFLIGHT];
		for (uint32_t k = 0; k < d->n; k++)
			if (d->who[k] == c)
				d->who[k] = FARM_TXD_GONE;
	}
}

_Static_assert(FARM_MAX_MEMBERS <= 64, "forget_after is a mask of 64 rings");

void farm__log_forget_deferred(struct farm *f)
{
	struct farm_txs *t = f->tx;
	uint64_t m = t->forget_after;

	t->forget_after = 0;
	while (m) {
		uint32_t c = (uint32_t)__builtin_ctzll(m);
		m &= m - 1;
		farm__log_forget(f, c);
	}
}

/* ---- records ----------------------------------------------------------------- */

/* The record of `type` at `pos` in ring c, if it is whole and in the
 * window the ring can hold, else NULL. */
static struct farm_logrec *rec_at(struct farm_txs *t, uint32_t c, uint64_t pos, uint16_t type)
{
	struct farm_txring *r = &t->ring[c];
	uint64_t off = pos & (t->cap - 1);
	struct farm_logrec *rec;

	if (c >= t->nrings || pos % FARM_LINE || pos < r->head || pos - r->head >= t->cap ||
	    t->cap - off < sizeof(*rec))
		return NULL;
	rec = (struct farm_logrec *)(r->data + off);
	if (__atomic_load_n(&rec->tag, __ATOMIC_ACQUIRE) != pos + 1)
		return NULL;
	if (rec->type != type || rec->len < sizeof(*rec) || rec->len % FARM_LINE ||
	    rec->len > t->cap - off)
		return NULL;
	return rec;
}

struct farm_logrec *farm__txp_rec(struct farm *f, uint32_t c, uint64_t pos)
{
	struct farm_txs *t = f->tx;
	struct farm_logrec *rec;
	uint64_t off = pos & (t->cap - 1);

	if (c >= t->nrings || pos % FARM_LINE || pos < t->ring[c].head ||
	    pos - t->ring[c].head >= t->cap || t->cap - off < sizeof(*rec))
		return NULL;
	rec = (struct farm_logrec *)(t->ring[c].data + off);
	if (__atomic_load_n(&rec->tag, __ATOMIC_ACQUIRE) != pos + 1 || rec->len < sizeof(*rec) ||
	    rec->len % FARM_LINE || rec->len > t->cap - off)
		return NULL;
	return rec;
}

/* Entry walk: the next entry and its image, or NULL at the end or on a
 * malformed entry (*bad set). */
struct ent_walk {
	const uint8_t *p, *end;
	uint32_t left;
	bool bad;
};

static void walk_start(struct ent_walk *w, const struct farm_logrec *rec)
{
	w->p = (const uint8_t *)rec + sizeof(*rec);
	w->end = (const uint8_t *)rec + rec->len;
	w->left = rec->nent;
	w->bad = false;
}

static const struct farm_logent *walk_next(struct ent_walk *w, const uint8_t **img)
{
	const struct farm_logent *e;

	if (!w->left)
		return NULL;
	if ((size_t)(w->end - w->p) < sizeof(*e)) {
		w->bad = true;
		return NULL;
	}
	e = (const struct farm_logent *)w->p;
	if (e->bytes > (size_t)(w->end - w->p) - sizeof(*e)) {
		w->bad = true;
		return NULL;
	}
	*img = w->p + sizeof(*e);
	w->p += farm_log_ent_len(e->bytes);
	w->left--;
	return e;
}

const uint32_t *farm__txp_regions(const struct farm_logrec *rec)
{
	struct ent_walk w;
	const struct farm_logent *e;
	const uint8_t *img;

	if (rec->type != FARM_LOG_LOCK && rec->type != FARM_LOG_CB)
		return NULL;
	walk_start(&w, rec);
	while ((e = walk_next(&w, &img)))
		;
	if (w.bad || w.left || (size_t)(w.end - w.p) < rec->nregions * sizeof(uint32_t))
		return NULL;
	return (const uint32_t *)w.p;
}

/* Is e a sane entry for a replica of ours in `role` (0 primary, 1 any
 * backup, -1 any)? Returns the replica, or NULL. */
static struct farm_replica *ent_replica(struct farm *f, const struct farm_logent *e, int role)
{
	uint32_t region = FARM_REGION(e->addr), off = FARM_OFFSET(e->addr);
	struct farm_replica *x;

	if (region >= f->map.nregions || !(x = f->regions[region].mine))
		return NULL;
	if (role >= 0 && (role == 0 ? x->role != 0 : x->role == 0))
		return NULL;
	if (e->size == 0 || e->size > FARM_OBJ_MAX ||
	    farm_slab_check_off(f->cfg.region_size, off) ||
	    (uint64_t)off + (uint64_t)farm_obj_lines(e->size) * FARM_LINE > f->cfg.region_size)
		return NULL;
	if (e->bytes != ((e->flags & FARM_LOGENT_FREE) ? 0 : e->size))
		return NULL;
	return x;
}

static bool check_entries(struct farm *f, const struct farm_logrec *rec, int role)
{
	struct ent_walk w;
	const struct farm_logent *e;
	const uint8_t *img;

	walk_start(&w, rec);
	while ((e = walk_next(&w, &img)))
		if (!ent_replica(f, e, role))
			return false;
	return !w.bad && w.left == 0;
}

/* ---- the primary ----------------------------------------------------------------- */

static uint8_t *obj_of(struct farm *f, const struct farm_logent *e)
{
	return f->regions[FARM_REGION(e->addr)].mine->base + FARM_OFFSET(e->addr);
}

/* Free the reservation e names, if the object still is exactly that. */
static int release_reserved(struct farm *f, const struct farm_logent *e)
{
	struct farm_slab_change ch;

	if (farm_word_load(obj_of(f, e)) !=
	    (farm_hdr_make(true, e->size, e->version) | FARM_OBJ_LOCK)) {
		f->tx->st.bad_records++;
		return -EINVAL;
	}
	return farm_slab_free_locked(&f->regions[FARM_REGION(e->addr)].mine->slab,
				     FARM_OFFSET(e->addr), &ch);
}

/* Undo the first `n` entries' locks (headers back as they were) and free
 * every reservation of the record. */
static void unlock_record(struct farm *f, const struct farm_logrec *rec, uint32_t n)
{
	struct ent_walk w;
	const struct farm_logent *e;
	const uint8_t *img;
	uint32_t i = 0;

	walk_start(&w, rec);
	while ((e = walk_next(&w, &img))) {
		if (e->flags & FARM_LOGENT_ALLOC)
			release_reserved(f, e);
		else if (i < n)
			farm_word_store(obj_of(f, e), farm_hdr_make(true, e->size, e->version));
		i++;
	}
}

int farm__txp_lock(struct farm *f, uint32_t c, uint64_t pos, uint32_t *reason)
{
	struct farm_txs *t = f->tx;
	struct farm_logrec *rec = rec_at(t, c, pos, FARM_LOG_LOCK);
	struct ent_walk w;
	const struct farm_logent *e;
	const uint8_t *img;
	uint32_t i = 0;

	*reason = FARM_ABORT_FAILURE;
	if (!rec || rec->state != FARM_LOGST_NEW) {
		t->st.bad_records++;
		return -EPROTO;
	}
	if (rec->config_id != f->config_id) {
		t->st.bad_records++;
		return -ESTALE;
	}
	if (!check_entries(f, rec, 0)) {
		t->st.bad_records++;
		return -ENXIO; /* not the primary of all of them: another configuration */
	}
	walk_start(&w, rec);
	while ((e = walk_next(&w, &img))) {
		uint8_t *obj = obj_of(f, e);
		uint64_t want = farm_hdr_make(true, e->size, e->version), cur;

		if (e->flags & FARM_LOGENT_ALLOC) {
			/* Ours since the reservation: check it still is. */
			if (farm_word_load(obj) == (want | FARM_OBJ_LOCK)) {
				i++;
				continue;
			}
			*reason = FARM_ABORT_CHANGED;
		} else if (farm_word_cas(obj, want, want | FARM_OBJ_LOCK)) {
			i++;
			continue;
		} else {
			cur = farm_word_load(obj);
			*reason = farm_hdr_alloc(cur) && farm_hdr_locked(cur) ? FARM_ABORT_LOCKED
									      : FARM_ABORT_CHANGED;
		}
		unlock_record(f, rec, i);
		rec->state = FARM_LOGST_REFUSED;
		t->st.locks_refused++;
		return -EAGAIN;
	}
	rec->state = FARM_LOGST_LOCKED;
	*reason = FARM_ABORT_NONE;
	return 0;
}

/* The LOCK record a CP or abort names, if this node locked it. */
static struct farm_logrec *locked_rec(struct farm *f, uint32_t c, uint64_t pos, uint64_t tx_id)
{
	struct farm_logrec *rec = rec_at(f->tx, c, pos, FARM_LOG_LOCK);

	if (!rec || rec->state != FARM_LOGST_LOCKED || rec->tx_id != tx_id) {
		f->tx->st.bad_records++;
		return NULL;
	}
	return rec;
}

/* Install a LOCK record this node locked: new values, next versions,
 * unlocked (frees freed). */
static void install_rec(struct farm *f, struct farm_logrec *rec)
{
	struct farm_slab_change ch;
	struct ent_walk w;
	const struct farm_logent *e;
	const uint8_t *img;

	walk_start(&w, rec);
	while ((e = walk_next(&w, &img))) {
		uint8_t *obj = obj_of(f, e);
		uint64_t ver = farm_ver_next(e->version);

		if ((e->flags & FARM_LOGENT_FREE) && f->regions[FARM_REGION(e->addr)].mine->role) {
			/* Demoted since it locked (recovery): free as a backup
			 * does, the primary's allocator is someone else's now. */
			farm_word_store(obj, farm_hdr_make(false, 0, ver));
		} else if (e->flags & FARM_LOGENT_FREE) {
			farm_slab_free_locked(&f->regions[FARM_REGION(e->addr)].mine->slab,
					      FARM_OFFSET(e->addr), &ch);
		} else {
			farm_obj_stage(obj, e->size, ver, img, e->size);
			farm_obj_unlock(obj, e->size, ver);
		}
	}
	rec->state = FARM_LOGST_COMMITTED;
}

int farm__txp_commit(struct farm *f, uint32_t c, uint64_t pos)
{
	struct farm_logrec *cp = rec_at(f->tx, c, pos, FARM_LOG_CP), *rec;

	if (!cp) {
		f->tx->st.bad_records++;
		return -EPROTO;
	}
	if (!(rec = locked_rec(f, c, cp->ref, cp->tx_id)))
		return -EPROTO;
	/* No configuration check here: the commit point (every backup holds
	 * the records) is behind us; with the locks still held, installing is
	 * what recovery would do too. */
	install_rec(f, rec);
	return 0;
}

int farm__txp_abort(struct farm *f, uint32_t c, uint64_t pos)
{
	struct farm_logrec *rec = rec_at(f->tx, c, pos, FARM_LOG_LOCK);

	if (!rec || rec->state != FARM_LOGST_LOCKED) {
		f->tx->st.bad_records++;
		return -EPROTO;
	}
	unlock_record(f, rec, rec->nent);
	rec->state = FARM_LOGST_ABORTED;
	return 0;
}

int farm__txp_release(struct farm *f, farm_addr_t addr, uint64_t ver, uint32_t size)
{
	struct farm_logent e = {.addr = addr,
				.version = ver,
				.size = size,
				.bytes = 0,
				.flags = FARM_LOGENT_ALLOC | FARM_LOGENT_FREE};

	if (!ent_replica(f, &e, 0))
		return -ENXIO;
	return release_reserved(f, &e);
}

/* ---- recovery locks ---------------------------------------------------------------- */

static uint32_t rlocks_on(const struct farm_txs *t, uint64_t addr)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < t->nrlock; i++)
		n += t->rlock[i].addr == addr;
	return n;
}

static bool rlock_has(const struct farm_txs *t, uint32_t c, uint64_t pos, uint64_t addr)
{
	for (uint32_t i = 0; i < t->nrlock; i++)
		if (t->rlock[i].addr == addr && t->rlock[i].pos == pos && t->rlock[i].ring == c)
			return true;
	return false;
}

/* Drop the lock (c, pos) holds on addr; true if it held one. The object
 * is unlocked when no other undecided record holds it, and the region
 * allocates again (slab rebuilt from its bytes) once it has no lock left. */
static bool rlock_take(struct farm *f, uint32_t c, uint64_t pos, uint64_t addr)
{
	struct farm_txs *t = f->tx;
	struct farm_replica *x;
	uint8_t *obj;

	for (uint32_t i = 0; i < t->nrlock; i++) {
		struct farm_rlock *l = &t->rlock[i];
		if (l->ring != c || l->pos != pos || l->addr != addr)
			continue;
		*l = t->rlock[--t->nrlock];
		x = f->regions[FARM_REGION(addr)].mine;
		if (!x)
			return true; /* region gone meanwhile: nothing to unlock */
		obj = x->base + FARM_OFFSET(addr);
		if (!rlocks_on(t, addr))
			farm_word_store(obj, farm_word_load(obj) & ~FARM_OBJ_LOCK);
		if (x->rlocks && --x->rlocks == 0 && x->role == 0)
			farm_slab_recover(&x->slab, x->base, f->cfg.region_size, x->region);
		return true;
	}
	return false;
}

/* Release every lock (c, pos) holds (a record decided as aborted, or one
 * voided by its coordinator: a VOID record lost its entry count). */
static void rlock_release_rec(struct farm *f, uint32_t c, uint64_t pos)
{
	struct farm_txs *t = f->tx;

	for (uint32_t i = 0; i < t->nrlock;) {
		struct farm_rlock *l = &t->rlock[i];
		if (l->ring == c && l->pos == pos && rlock_take(f, c, pos, l->addr))
			continue; /* the slot now holds another lock */
		i++;
	}
}

static int rlock_add(struct farm *f, uint32_t c, uint64_t pos, uint64_t addr)
{
	struct farm_txs *t = f->tx;
	struct farm_replica *x = f->regions[FARM_REGION(addr)].mine;
	uint8_t *obj = x->base + FARM_OFFSET(addr);
	uint64_t h;

	if (t->nrlock == t->rlock_cap) {
		uint32_t cap = t->rlock_cap ? t->rlock_cap * 2 : 256;
		struct farm_rlock *n = realloc(t->rlock, cap * sizeof(*n));
		if (!n)
			return -ENOMEM;
		t->rlock = n;
		t->rlock_cap = cap;
	}
	t->rlock[t->nrlock++] = (struct farm_rlock){.addr = addr, .pos = pos, .ring = c};
	x->rlocks++;
	do
		h = farm_word_load(obj);
	while (!(h & FARM_OBJ_LOCK) && !farm_word_cas(obj, h, h | FARM_OBJ_LOCK));
	t->st.rcv_locked++;
	return 0;
}

void farm__txp_lock_recover(struct farm *f, const uint8_t *led)
{
	struct farm_txs *t = f->tx;

	for (uint32_t c = 0; c < t->nrings; c++) {
		struct farm_txring *r = &t->ring[c];
		uint64_t pos = r->head;
		struct farm_logrec *rec;

		if (r->retired)
			continue;
		/* Every record from the head on, decided or not: one the
		 * coordinator truncated but we have not applied yet must not be
		 * skipped for a region we lead now (apply_cb needs the lock). */
		while ((!r->dead || pos < r->end) && (rec = farm__txp_rec(f, c, pos))) {
			struct ent_walk w;
			const struct farm_logent *e;
			const uint8_t *img;

			if (rec->type == FARM_LOG_CB && check_entries(f, rec, -1)) {
				walk_start(&w, rec);
				while ((e = walk_next(&w, &img))) {
					uint32_t region = FARM_REGION(e->addr);
					if (led[region / 8] & (1u << (region % 8)))
						rlock_add(f, c, pos, e->addr);
				}
			}
			pos += rec->len;
		}
	}
}

/* ---- the backup: apply at truncation -------------------------------------------- */

/* A whole object image into a region we lead, keeping the recovery lock. */
static void install_held(uint8_t *obj, const struct farm_logent *e, const uint8_t *img)
{
	if (e->flags & FARM_LOGENT_FREE) {
		farm_word_store(obj, farm_hdr_make(false, 0, e->version) | FARM_OBJ_LOCK);
		return;
	}
	uint32_t last = farm_obj_lines(e->size) - 1;
	uint32_t used = e->size - last * FARM_LINE_PAYLOAD;
	farm_word_store(obj, farm_word_load(obj) | FARM_OBJ_LOCK);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	farm_obj_stage(obj, e->size, e->version, img, e->size);
	memset(obj + (size_t)last * FARM_LINE + 8 + used, 0, FARM_LINE_PAYLOAD - used);
	farm_word_store(obj, farm_hdr_make(true, e->size, e->version) | FARM_OBJ_LOCK);
}

/* Apply (commit) or drop a CB record: entries of regions we back up are
 * applied when newer; entries of regions we now lead were locked by lock
 * recovery and are installed under that lock, then released. */
static void apply_cb(struct farm *f, const struct farm_logrec *rec, uint32_t c, uint64_t pos,
		     bool commit)
{
	struct farm_txs *t = f->tx;
	struct ent_walk w;
	const struct farm_logent *e;
	const uint8_t *img;

	/* No configuration check: a CB record is applied only once its
	 * commit is decided (truncated, or by recovery). */
	if (!check_entries(f, rec, -1)) {
		t->st.bad_records++;
		if (t->nrlock)
			rlock_release_rec(f, c, pos);
		return;
	}
	walk_start(&w, rec);
	while ((e = walk_next(&w, &img))) {
		struct farm_replica *x = f->regions[FARM_REGION(e->addr)].mine;
		uint8_t *obj = obj_of(f, e);
		uint64_t h = farm_word_load(obj);
		bool newer = farm_ver_newer(e->version, farm_hdr_version(h));

		if (x->role == 0) {
			/* Led now: only under a recovery lock of this record
			 * (otherwise another tx may hold the object). */
			if (!rlock_has(t, c, pos, e->addr)) {
				t->st.cb_skipped++;
				continue;
			}
			if (commit && newer) {
				install_held(obj, e, img);
				t->st.cb_applied++;
			}
			rlock_take(f, c, pos, e->addr);
			continue;
		}
		if (!commit)
			continue;
		/* The same version is applied again: it is this very change
		 * (same bytes), or the slot holds a change of a dead primary
		 * that reached this backup only (replica.c, resync), which the
		 * new primary's lineage replaces. */
		if (!newer && e->version != farm_hdr_version(h)) {
			t->st.cb_skipped++; /* a later version got here first */
			continue;
		}
		if (e->flags & FARM_LOGENT_FREE) {
			farm_word_store(obj, farm_hdr_make(false, 0, e->version));
		} else {
			/* Bracketed like any write, for whoever reads a backup
			 * (a promoted one, a checker). */
			uint32_t last = farm_obj_lines(e->size) - 1;
			uint32_t used = e->size - last * FARM_LINE_PAYLOAD;
			farm_word_store(obj, h | FARM_OBJ_LOCK);
			__atomic_thread_fence(__ATOMIC_SEQ_CST);
			farm_obj_stage(obj, e->size, e->version, img, e->size);
			/* The primary formatted the slot (zeroes past the end of
			 * the object); this slot may hold an older object's bytes. */
			memset(obj + (size_t)last * FARM_LINE + 8 + used, 0,
			       FARM_LINE_PAYLOAD - used);
			farm_obj_unlock(obj, e->size, e->version);
		}
		t->st.cb_applied++;
	}
	if (t->nrlock)
		rlock_release_rec(f, c, pos); /* entries not held above, e.g. stale ones */
}

static bool cb_waits_for_copy(struct farm *f, const struct farm_logrec *rec)
{
	struct ent_walk w;
	const struct farm_logent *e;
	const uint8_t *img;

	walk_start(&w, rec);
	while ((e = walk_next(&w, &img))) {
		uint32_t region = FARM_REGION(e->addr);
		struct farm_replica *x = region < f->map.nregions ? f->regions[region].mine : NULL;
		if (x && x->copying)
			return true;
	}
	return false;
}

void farm__txp_resolve(struct farm *f, uint32_t c, uint64_t pos, bool commit)
{
	struct farm_logrec *rec = farm__txp_rec(f, c, pos);

	if (!rec)
		return;
	switch (rec->type) {
	case FARM_LOG_LOCK:
		/* Any role: a primary demoted meanwhile (a member that joined
		 * took the region) installs into what is now its backup. */
		if (rec->state != FARM_LOGST_LOCKED || !check_entries(f, rec, -1))
			break;
		if (commit) {
			install_rec(f, rec);
		} else {
			unlock_record(f, rec, rec->nent);
			rec->state = FARM_LOGST_ABORTED;
		}
		break;
	case FARM_LOG_CB:
		apply_cb(f, rec, c, pos, commit);
		break;
	default:
		if (f->tx->nrlock)
			rlock_release_rec(f, c, pos);
	}
}

/* Apply and free ring c up to its coordinator's truncation point: every
 * record there belongs to a commit the coordinator has decided. In two
 * passes, because a doorbell the primary refused (the coordinator ran an
 * older configuration) leaves a LOCK record locked: first install every
 * LOCK record a COMMIT-PRIMARY names, then unlock LOCK records still
 * locked (their abort was refused) and apply CB records. */
int farm__txp_apply(struct farm *f, uint32_t c)
{
	struct farm_txs *t = f->tx;
	struct farm_txring *r = &t->ring[c];
	uint64_t trunc = __atomic_load_n(&r->ctl->trunc, __ATOMIC_ACQUIRE), head = r->head;
	uint64_t end = head, pos;
	bool stalled = false;
	int n = 0;

	if (trunc == head || r->dead || r->retired)
		return 0;
	if (trunc < head || trunc - head > t->cap) {
		t->st.bad_records++;
		return 0;
	}
	for (pos = head; pos < trunc;) {
		struct farm_logrec *rec = farm__txp_rec(f, c, pos), *lk;

		if (!rec || rec->len > trunc - pos) {
			t->st.bad_records++; /* stuck until recovery: nothing is skipped */
			break;
		}
		if (rec->type == FARM_LOG_CP && (lk = farm__txp_rec(f, c, rec->ref)) &&
		    lk->type == FARM_LOG_LOCK && lk->state == FARM_LOGST_LOCKED &&
		    lk->tx_id == rec->tx_id && check_entries(f, lk, -1)) {
			install_rec(f, lk);
			t->st.late_installs++;
		}
		if (!stalled && rec->type == FARM_LOG_CB && cb_waits_for_copy(f, rec)) {
			stalled = true;
			t->st.copy_stalls++;
		}
		pos += rec->len;
		if (!stalled)
			end = pos;
	}
	for (pos = head; pos < end;) {
		struct farm_logrec *rec = farm__txp_rec(f, c, pos);

		if (rec->type == FARM_LOG_CB) {
			apply_cb(f, rec, c, pos, true);
		} else if (rec->type == FARM_LOG_LOCK && rec->state == FARM_LOGST_LOCKED) {
			unlock_record(f, rec, rec->nent);
			rec->state = FARM_LOGST_ABORTED;
			t->st.late_unlocks++;
		} else if (rec->type == FARM_LOG_VOID && t->nrlock) {
			rlock_release_rec(f, c, pos);
		}
		if (rec->cseq > r->trunc_cseq)
			r->trunc_cseq = rec->cseq;
		pos += rec->len;
		n++;
	}
	r->head = end;
	__atomic_store_n(&r->ctl->head, end, __ATOMIC_RELEASE);
	return n;
}

/* ---- handlers -------------------------------------------------------------------- */

static void txreply(struct farm *f, const struct unet_msg *m, int status, uint32_t reason,
		    uint64_t value)
{
	struct farm_txs *t = f->tx;
	struct farm_wire_txrep r = {
	    .config_id = f->config_id, .status = status, .reason = reason, .value = value};
	int rc = unet_msg_reply(f->mep, m, &r, sizeof(r));

	if (rc == 0) {
		f->st.msgs_out++;
	} else if (rc == -EAGAIN && t->ndefer < FARM_TX_DEFER) {
		t->defer[t->ndefer].m = *m;
		t->defer[t->ndefer].m.data = NULL;
		t->defer[t->ndefer].rep = r;
		t->ndefer++;
	}
	/* Otherwise the channel failed: the requester's msg layer fails it. */
}

int farm__log_flush_replies(struct farm *f)
{
	struct farm_txs *t = f->tx;
	uint32_t i = 0, kept = 0;

	for (; i < t->ndefer; i++) {
		int rc = unet_msg_reply(f->mep, &t->defer[i].m, &t->defer[i].rep,
					sizeof(t->defer[i].rep));
		if (rc == -EAGAIN)
			t->defer[kept++] = t->defer[i];
		else if (rc == 0)
			f->st.msgs_out++;
	}
	t->ndefer = kept;
	return (int)(i - kept);
}

/* Log index of the sender of m (its ring here), checked against the
 * channel it came on. */
static int sender(struct farm *f, const struct unet_msg *m)
{
	struct farm_wire_hdr h;
	int peer = m->chan < sizeof(f->chan_peer) ? f->chan_peer[m->chan] : -1;

	memcpy(&h, m->data, sizeof(h));
	if (peer < 0 || f->peers[peer].id != h.from)
		return -1;
	return farm__tx_lix(f->tx, h.from);
}

static void on_txlog(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_txlog q;
	uint32_t reason = FARM_ABORT_NONE;
	int c, rc;

	(void)mep;
	if (farm__admit(f, m, sizeof(q)))
		return;
	memcpy(&q, m->data, sizeof(q));
	if ((c = sender(f, m)) < 0) {
		txreply(f, m, -EPROTO, FARM_ABORT_FAILURE, 0);
		return;
	}
	switch (q.op) {
	case FARM_TXLOG_LOCK:
		rc = farm__txp_lock(f, (uint32_t)c, q.pos, &reason);
		break;
	case FARM_TXLOG_COMMIT:
		rc = farm__txp_commit(f, (uint32_t)c, q.pos);
		break;
	case FARM_TXLOG_ABORT:
		rc = farm__txp_abort(f, (uint32_t)c, q.pos);
		break;
	case FARM_TXLOG_TRUNC:
		farm__txp_apply(f, (uint32_t)c);
		txreply(f, m, 0, 0, f->tx->ring[c].head);
		return;
	default:
		rc = -EPROTO;
	}
	txreply(f, m, rc, reason, 0);
}

static void on_txalloc(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_txalloc a;
	int rc;

	(void)mep;
	if (farm__admit(f, m, sizeof(a)))
		return;
	memcpy(&a, m->data, sizeof(a));
	rc = farm__primary_reserve(f, a.region, a.size, false, 0, m);
	if (rc)
		farm__reply(f, m, rc, 0);
}

static void on_txrelease(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_txrel h;
	const uint8_t *d = m->data;
	int rc = 0;

	(void)mep;
	if (farm__admit(f, m, sizeof(h)))
		return;
	memcpy(&h, d, sizeof(h));
	if (h.n > FARM_TX_MAX_WRITES ||
	    m->len != sizeof(h) + (uint64_t)h.n * sizeof(struct farm_wire_txrel_ent)) {
		farm__reply(f, m, -EPROTO, 0);
		return;
	}
	for (uint32_t i = 0; i < h.n; i++) {
		struct farm_wire_txrel_ent e;
		memcpy(&e, d + sizeof(h) + i * sizeof(e), sizeof(e));
		int r = farm__txp_release(f, e.addr, e.version, e.size);
		if (r && !rc)
			rc = r;
	}
	farm__reply(f, m, rc, 0);
}

void farm__log_register(struct farm *f)
{
	unet_msg_handle(f->mep, FARM_MSG_TX_LOG, on_txlog, f);
	unet_msg_handle(f->mep, FARM_MSG_TX_ALLOC, on_txalloc, f);
	unet_msg_handle(f->mep, FARM_MSG_TX_RELEASE, on_txrelease, f);
	farm__rcv_register(f);
}
