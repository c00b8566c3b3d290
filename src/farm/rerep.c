/*
 * rerep.c - re-replication (rerep.h): fill the replicas a new configuration
 * gives this node from their primaries, in the background, from farm_poll.
 *
 * Shape. One request in flight per node (a copy is background work: it
 * must not take the msg staging that transactions and writes need), one
 * reply buffer, a sequence number in the msg ctx so that a reply meant for
 * a copy that was restarted meanwhile is recognised and dropped. Regions
 * are filled one after the other (the cursor stays on a region while it
 * has work), so farm__rerep_pending falls steadily.
 *
 * The requester walks the primary's slab layout instead of copying raw
 * bytes: every request starts at a slab header or at a slot, and a reply
 * is installed slot by slot, each slot only when its version is newer than
 * ours. That is what makes the copy commute with everything else that
 * writes the replica meanwhile:
 *   - REPL messages (farm_write / farm_alloc / farm_free at the primary)
 *     are applied by replica.c as they come. Safe: REPLs of one slot are
 *     sent in the order the primary made the changes, a write keeps its
 *     object locked until every backup acked, and each REPL carries the
 *     state of the slot when it was sent, so the last one applied is the
 *     primary's latest; a chunk served before it but installed after it
 *     is older and loses to newer-wins. Refusing them instead would make
 *     the primary report a backup error to farm_write's caller (replica.c
 *     keeps the write and does not retry), for every write of the copy's
 *     duration.
 *   - CB records are held back by log.c while `copying` is set, and apply
 *     afterwards only when newer.
 * Every change of a slot bumps its version (write, allocation, free, a
 * transaction's install), so newer-wins is a total order per slot.
 *
 * Locked slots. The primary serves on its own thread, where all its
 * installs happen, so nothing is half-written; but a slot may be locked:
 * by a transaction between LOCK and COMMIT-PRIMARY (bytes: the old
 * committed value), by a farm_write waiting for its backups' acks (bytes:
 * the new value, header: the old version), or as a transaction's
 * reservation. The slot is stored unlocked and remembered; after the scan
 * each remembered slot is fetched alone until it is seen unlocked (backing
 * off up to ~13 ms between tries, forever: a lock held by a dead
 * coordinator lasts until recovery decides its transaction), and the copy
 * is complete only when none is left. A list that overflows makes the scan
 * run again rather than lose one.
 *
 * Configuration changes: a copy whose primary changes starts over into
 * zeroed memory (a half copy may hold a write that the new primary never
 * received: keeping it would leave a version the new primary reuses for
 * other bytes); a region we no longer hold is dropped; a region whose map
 * makes us its primary before the copy is complete is counted as lost and
 * logged (the map chose an incomplete replica: recovery cannot fix that
 * here). The primary refuses a request from an older configuration
 * (-ESTALE, farm__admit) and asks one from a newer configuration to wait
 * (-EAGAIN) until it has adopted it: the requester retries every ms.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "node.h"
#include "rerep.h"

#define RR_LOCKED_MAX 4096u
#define RR_DEFER 16u
#define RR_FETCH_SEQ 0xffffffffu
#define RR_BUF (sizeof(struct farm_wire_reply) + FARM_REREP_CHUNK)

enum { RR_SCAN = 1, RR_FIX };

struct rr_region {
	bool active;
	bool in_slab;   /* off is inside a slab: slots of cl lines up to slab_end */
	bool overflow;  /* a locked slot did not fit the list: scan again */
	uint8_t phase;
	uint32_t from;  /* primary (member id) we copy from */
	uint32_t epoch; /* bumped at every restart: replies of older epochs are dropped */
	uint32_t cl;
	uint32_t nlocked;
	uint32_t refetched;
	uint64_t off;   /* next byte to ask for */
	uint64_t slab_end;
	uint64_t hwm;
	uint64_t next_ns; /* nothing before this (backoff) */
	uint64_t start_ns;
	uint64_t bytes;
};

struct rr_locked {
	uint32_t region, cl;
	uint64_t off;
	uint64_t next_ns;
	uint32_t tries;
};

struct rr_defer {
	struct unet_msg m;
	struct farm_wire_reply rep;
};

struct farm_rerep {
	struct rr_region *reg;
	uint32_t nregions;
	uint32_t active;
	uint32_t chunk;
	uint64_t pace_ns; /* at least this between two requests of a copy */
	uint32_t cursor;
	/* The request in flight. */
	bool busy, q_fix;
	uint32_t seq, q_region, q_epoch, q_len;
	uint64_t q_off;
	uint8_t *rbuf; /* its reply */
	uint8_t *sbuf; /* replies we serve */
	/* farm__rerep_fetch's request (buffer kept while one may be in flight). */
	uint8_t *fbuf;
	bool f_wait;
	int f_status;
	uint32_t f_len;
	struct rr_locked *locked;
	uint32_t nlocked;
	struct rr_defer defer[RR_DEFER];
	uint32_t ndefer;
	struct farm_rerep_stats st;
	farm_rerep_log_fn log;
	void *log_arg;
};

static void say(struct farm_rerep *s, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (!s->log)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	s->log(s->log_arg, line);
}

/* ---- the primary: serve bytes ------------------------------------------------- */

static int reply_with(struct farm *f, const struct unet_msg *m, int status, uint64_t value,
		      const uint8_t *bytes, uint32_t n)
{
	struct farm_rerep *s = f->rerep;
	struct farm_wire_reply r = {.config_id = f->config_id, .status = status, .value = value};
	int rc;

	memcpy(s->sbuf, &r, sizeof(r));
	/* Shorter when msg's staging is short of room: the requester asks
	 * again from where the reply ended. */
	for (;;) {
		if (n)
			memcpy(s->sbuf + sizeof(r), bytes, n);
		rc = unet_msg_reply(f->mep, m, s->sbuf, (uint32_t)sizeof(r) + n);
		if (rc != -EAGAIN || n == 0)
			break;
		n = n > 4096 ? (n / 4) & ~(FARM_LINE - 1) : 0;
	}
	if (rc == 0) {
		f->st.msgs_out++;
		return (int)n;
	}
	if (rc == -EAGAIN && s->ndefer < RR_DEFER) {
		s->defer[s->ndefer].m = *m;
		s->defer[s->ndefer].m.data = NULL;
		s->defer[s->ndefer].rep = r;
		s->ndefer++;
	}
	/* Otherwise the channel failed (the requester's msg fails the
	 * request) or 16 answers wait already (its request stays open until
	 * the channel fails: counted). */
	return rc == -EAGAIN ? 0 : rc;
}

static int flush_defer(struct farm *f)
{
	struct farm_rerep *s = f->rerep;
	uint32_t i = 0, kept = 0;

	for (; i < s->ndefer; i++) {
		int rc = unet_msg_reply(f->mep, &s->defer[i].m, &s->defer[i].rep,
					sizeof(s->defer[i].rep));
		if (rc == -EAGAIN)
			s->defer[kept++] = s->defer[i];
		else if (rc == 0)
			f->st.msgs_out++;
	}
	s->ndefer = kept;
	return (int)(i - kept);
}

static int serve(struct farm *f, const struct unet_msg *m, uint64_t *hwm, uint32_t *n,
		 const uint8_t **bytes)
{
	struct farm_wire_rerep q;
	struct farm_replica *x;
	uint64_t size = f->cfg.region_size;

	if (m->len != sizeof(q))
		return -EPROTO;
	memcpy(&q, m->data, sizeof(q));
	if (q.h.config_id != f->config_id)
		return -EAGAIN; /* newer than ours (older was refused): we adopt it soon */
	if (q.region >= f->map.nregions)
		return -ENOENT;
	x = f->regions[q.region].mine;
	if (!x || x->role != 0)
		return -ENXIO;
	if (farm_rmap_role(&f->map, q.region, q.h.from) < 1)
		return -EPERM;
	/* A joiner is sent REPLs only once its HELLO came (node.h): bytes
	 * served before then could miss a later change for good. */
	if (farm__joiner_unready(f, farm__config_member(&f->cfg, q.h.from)))
		return -EAGAIN;
	if (q.off % FARM_LINE || q.len == 0 || q.len % FARM_LINE || q.len > FARM_REREP_CHUNK)
		return -EINVAL;
	if (q.off >= size || q.len > size - q.off)
		return -ERANGE;
	/* Never carved beyond bump: zero at every replica, nothing to send. */
	*hwm = (uint64_t)x->slab.bump * FARM_LINE;
	*n = q.off >= *hwm ? 0 : (uint32_t)(*hwm - q.off < q.len ? *hwm - q.off : q.len);
	*bytes = x->base + q.off;
	return 0;
}

static void on_rerep(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	const uint8_t *bytes = NULL;
	uint64_t hwm = 0;
	uint32_t n = 0;
	int rc;

	(void)mep;
	if (farm__admit(f, m, sizeof(struct farm_wire_hdr)))
		return;
	rc = serve(f, m, &hwm, &n, &bytes);
	if (rc) {
		f->rerep->st.refused++;
		reply_with(f, m, rc, 0, NULL, 0);
		return;
	}
	rc = reply_with(f, m, 0, hwm, bytes, n);
	if (rc >= 0) {
		f->rerep->st.served++;
		f->rerep->st.served_bytes += (uint64_t)rc;
	}
}

/* ---- the new backup: bookkeeping ------------------------------------------------ */

static struct farm_replica *entry_of(struct farm *f, uint32_t r)
{
	for (uint32_t i = 0; i < f->map.nregions && f->reps[i].mr; i++)
		if (f->reps[i].region == r)
			return &f->reps[i];
	return NULL;
}

static void forget_locked(struct farm_rerep *s, uint32_t r)
{
	for (uint32_t i = 0; i < s->nlocked;) {
		if (s->locked[i].region == r)
			s->locked[i] = s->locked[--s->nlocked];
		else
			i++;
	}
	s->reg[r].nlocked = 0;
}

static void remember(struct farm_rerep *s, uint32_t r, uint64_t off, uint32_t cl)
{
	struct rr_region *rr = &s->reg[r];

	for (uint32_t i = 0; i < s->nlocked; i++)
		if (s->locked[i].region == r && s->locked[i].off == off)
			return;
	if (s->nlocked == RR_LOCKED_MAX) {
		rr->overflow = true;
		return;
	}
	s->locked[s->nlocked++] = (struct rr_locked){.region = r, .cl = cl, .off = off};
	rr->nlocked++;
}

static void scan_from_start(struct rr_region *rr, uint64_t now)
{
	rr->phase = RR_SCAN;
	rr->off = 0;
	rr->in_slab = false;
	rr->overflow = false;
	rr->hwm = 0;
	rr->epoch++;
	rr->next_ns = now;
}

static void deactivate(struct farm *f, uint32_t r)
{
	struct farm_rerep *s = f->rerep;
	struct farm_replica *x = entry_of(f, r);

	if (x)
		x->copying = false;
	forget_locked(s, r);
	s->reg[r].active = false;
	s->reg[r].epoch++;
	s->active--;
}

/* Fresh (zeroed) memory for a replica of region r at f->reps[f->nreps]:
 * the region's old entry if we held it once (its memory is still
 * registered), else a new registration. Entries at and past nreps are
 * replicas no longer held; each region has at most one entry, so the
 * array (nregions long) never overflows. */
static struct farm_replica *new_replica(struct farm *f, uint32_t r, int role)
{
	struct farm_replica *x = NULL, t;
	uint32_t i = f->nreps;

	for (; i < f->map.nregions && f->reps[i].mr; i++)
		if (f->reps[i].region == r)
			x = &f->reps[i];
	if (x) {
		memset(x->base, 0, f->cfg.region_size);
	} else {
		struct unet_mr *mr;
		if (i >= f->map.nregions ||
		    unet_mr_alloc(f->rdma, f->cfg.region_size,
				  UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC, &mr) < 0)
			return NULL;
		x = &f->reps[i];
		memset(x, 0, sizeof(*x));
		x->mr = mr;
		x->base = unet_mr_addr(mr);
	}
	t = f->reps[f->nreps];
	f->reps[f->nreps] = *x;
	*x = t;
	x = &f->reps[f->nreps++];
	{
		struct unet_mr *mr = x->mr;
		uint8_t *base = x->base;
		memset(x, 0, sizeof(*x)); /* nothing of an old life of this entry */
		x->mr = mr;
		x->base = base;
	}
	x->region = r;
	x->role = role;
	x->since = f->config_id;
	farm_slab_init(&x->slab, x->base, f->cfg.region_size, r);
	x->copying = true;
	f->regions[r].mine = x;
	return x;
}

void farm__rerep_adopt(struct farm *f)
{
	struct farm_rerep *s = f ? f->rerep : NULL;
	uint64_t now = farm__now_ns();

	if (!s)
		return;
	for (uint32_t r = 0; r < f->map.nregions; r++) {
		struct rr_region *rr = &s->reg[r];
		struct farm_replica *x = f->regions[r].mine;
		int role = farm_rmap_role(&f->map, r, f->self);
		uint32_t prim = farm_rmap_replicas(&f->map, r)[0];

		if (rr->active) {
			if (role < 0 || !x) {
				deactivate(f, r);
			} else if (role == 0) {
				deactivate(f, r);
				s->st.lost++;
				say(s, "region %u: this node became its primary before its copy was "
				       "complete (%llu bytes of it copied): the region lost data",
				    r, (unsigned long long)rr->bytes);
			} else if (prim != rr->from) {
				/* See the top of the file: start over, zeroed. */
				forget_locked(s, r);
				memset(x->base, 0, f->cfg.region_size);
				farm_slab_init(&x->slab, x->base, f->cfg.region_size, r);
				scan_from_start(rr, now);
				rr->from = prim;
				s->st.restarts++;
				say(s, "region %u: primary is now member %u, copy starts over", r,
				    prim);
			}
			continue;
		}
		if (role == 0 && !x) {
			say(s, "region %u: no replica of it is left", r);
			continue;
		}
		if (role < 1 || x)
			continue;
		if (!(x = new_replica(f, r, role))) {
			s->st.no_memory++;
			say(s, "region %u: no memory for a new replica (%llu bytes)", r,
			    (unsigned long long)f->cfg.region_size);
			continue;
		}
		memset(rr, 0, sizeof(*rr));
		rr->active = true;
		rr->from = prim;
		rr->start_ns = now;
		scan_from_start(rr, now);
		s->active++;
		s->st.started++;
		say(s, "region %u: new backup (role %d), copying from member %u", r, role, prim);
	}
}

/* ---- the new backup: installing what arrives ------------------------------------ */

/* Install slot `off` (cl lines) from img (ours to modify) if newer than
 * ours. 1 when it was locked at the primary, 0, or -EPROTO. */
static int install_slot(struct farm_replica *x, uint64_t off, uint8_t *img, uint32_t cl)
{
	uint64_t hp, hl;
	uint32_t lines = 1;
	bool locked;

	memcpy(&hp, img, sizeof(hp));
	if (hp == 0)
		return 0; /* never used at the primary */
	locked = farm_hdr_locked(hp);
	hp &= ~FARM_OBJ_LOCK;
	if (farm_hdr_alloc(hp)) {
		uint32_t size = farm_hdr_size(hp);
		if (size == 0 || size > FARM_OBJ_MAX || (lines = farm_obj_lines(size)) > cl)
			return -EPROTO;
	}
	hl = farm_word_load(x->base + off);
	if (hl == 0 || farm_ver_newer(farm_hdr_version(hp), farm_hdr_version(hl))) {
		memcpy(img, &hp, sizeof(hp));
		farm_obj_put_image(x->base + off, img, lines * FARM_LINE);
	}
	return locked;
}

/* A scan reply: bytes [off, off + n) of the region. */
static int scan_reply(struct farm *f, struct rr_region *rr, struct farm_replica *x, uint32_t r,
		      uint64_t off, uint8_t *data, uint32_t n)
{
	struct farm_rerep *s = f->rerep;
	uint64_t pos = off, end = off + n, size = f->cfg.region_size;

	if (off != rr->off)
		return -EPROTO;
	if (pos == 0) {
		struct farm_region_hdr h;
		if (n < FARM_LINE)
			return 0;
		memcpy(&h, data, sizeof(h));
		if (h.zero || h.magic != FARM_REGION_MAGIC || h.region != r ||
		    h.lines != size / FARM_LINE)
			return -EPROTO;
		pos = FARM_LINE; /* farm_slab_init wrote the same line here */
	}
	for (;;) {
		if (rr->in_slab && pos >= rr->slab_end)
			rr->in_slab = false;
		if (!rr->in_slab) {
			struct farm_slab_hdr sh;
			int cls;
			if (pos >= rr->hwm) {
				rr->phase = RR_FIX; /* the rest was never carved */
				break;
			}
			if (end - pos < FARM_LINE)
				break;
			memcpy(&sh, data + (pos - off), sizeof(sh));
			cls = farm_slab_class(sh.class_lines);
			if (sh.zero || sh.magic != FARM_SLAB_MAGIC || cls < 0 ||
			    farm_slab_class_lines(cls) != sh.class_lines ||
			    sh.slab_lines < 1 + sh.class_lines ||
			    (uint64_t)sh.slab_lines * FARM_LINE > size - pos)
				return -EPROTO;
			/* A slab header never changes once carved. */
			memcpy(x->base + pos, &sh, sizeof(sh));
			rr->in_slab = true;
			rr->cl = sh.class_lines;
			rr->slab_end = pos + (uint64_t)sh.slab_lines * FARM_LINE;
			pos += FARM_LINE;
			continue;
		}
		uint64_t slot = (uint64_t)rr->cl * FARM_LINE;
		if (slot > rr->slab_end - pos) { /* a tail shorter than a slot */
			pos = rr->slab_end;
			continue;
		}
		if (end - pos < slot)
			break;
		int rc = install_slot(x, pos, data + (pos - off), rr->cl);
		if (rc < 0)
			return rc;
		if (rc)
			remember(s, r, pos, rr->cl);
		pos += slot;
	}
	rr->off = pos;
	return 0;
}

/* A re-fetch reply: one slot. */
static int fix_reply(struct farm *f, uint32_t r, struct farm_replica *x, uint64_t off,
		     uint8_t *data, uint32_t n, uint64_t now)
{
	struct farm_rerep *s = f->rerep;
	uint32_t i;
	int rc;

	for (i = 0; i < s->nlocked; i++)
		if (s->locked[i].region == r && s->locked[i].off == off)
			break;
	if (i == s->nlocked)
		return 0;
	struct rr_locked *e = &s->locked[i];
	if (n < (uint64_t)e->cl * FARM_LINE) {
		e->next_ns = now + 1000000; /* the primary's staging was short */
		return 0;
	}
	if ((rc = install_slot(x, off, data, e->cl)) < 0)
		return rc;
	if (rc) {
		/* Still locked: again later, backing off to ~13 ms. */
		e->tries++;
		e->next_ns = now + (100000ull << (e->tries < 7 ? e->tries : 7));
		return 0;
	}
	s->reg[r].refetched++;
	*e = s->locked[--s->nlocked];
	s->reg[r].nlocked--;
	return 0;
}

static void complete(struct farm *f, uint32_t r, uint64_t now)
{
	struct farm_rerep *s = f->rerep;
	struct rr_region *rr = &s->reg[r];

	if (rr->overflow) {
		s->st.restarts++;
		scan_from_start(rr, now);
		return;
	}
	f->regions[r].mine->copying = false; /* log.c applies the held CB records now */
	rr->active = false;
	s->active--;
	s->st.done++;
	say(s,
	    "region %u: back to %u copies: %llu bytes copied from member %u (high-water mark "
	    "%llu), %u locked objects fetched again, %.1f ms",
	    r, f->map.k, (unsigned long long)rr->bytes, rr->from, (unsigned long long)rr->hwm,
	    rr->refetched, (double)(now - rr->start_ns) / 1e6);
}

void farm__rerep_reap(struct farm *f, const struct unet_msg_comp *c)
{
	struct farm_rerep *s = f->rerep;
	uint32_t seq = (uint32_t)(uintptr_t)c->ctx;
	struct farm_wire_reply rep;
	struct rr_region *rr;
	struct farm_replica *x;
	uint64_t now;
	uint32_t n;
	int status = c->status, rc;

	if (!s)
		return;
	if (seq == RR_FETCH_SEQ) {
		s->f_wait = false;
		s->f_status = c->status;
		s->f_len = c->len;
		return;
	}
	if (!s->busy || seq != s->seq)
		return;
	s->busy = false;
	rr = &s->reg[s->q_region];
	x = f->regions[s->q_region].mine;
	if (!rr->active || rr->epoch != s->q_epoch || !x || !x->copying)
		return; /* restarted or dropped meanwhile */
	now = farm__now_ns();
	if (status == 0 && c->len < sizeof(rep))
		status = -EPROTO;
	memcpy(&rep, s->rbuf, sizeof(rep));
	if (status == 0)
		status = rep.status;
	n = status == 0 ? c->len - (uint32_t)sizeof(rep) : 0;
	if (status == 0 && n > s->q_len)
		status = -EPROTO;
	if (status) {
		s->st.errors++;
		/* Not adopted yet, or a channel down until the next
		 * configuration: ask again soon. */
		rr->next_ns = now + (status == -EAGAIN || status == -ESTALE ? 1000000 : 5000000);
		return;
	}
	s->st.chunks++;
	s->st.bytes += n;
	rr->next_ns = now + s->pace_ns;
	rr->bytes += n;
	rr->hwm = rep.value;
	if (s->q_fix)
		rc = fix_reply(f, s->q_region, x, s->q_off, s->rbuf + sizeof(rep), n, now);
	else
		rc = scan_reply(f, rr, x, s->q_region, s->q_off, s->rbuf + sizeof(rep), n);
	if (rc) {
		/* The primary's bytes are not what its allocator writes: start
		 * over (counted) rather than install them. */
		s->st.errors++;
		s->st.restarts++;
		forget_locked(s, s->q_region);
		scan_from_start(rr, now + 5000000);
	}
}

/* ---- the new backup: asking ------------------------------------------------------ */

static int issue(struct farm *f, uint32_t r, uint64_t now)
{
	struct farm_rerep *s = f->rerep;
	struct rr_region *rr = &s->reg[r];
	struct farm_wire_rerep q;
	uint64_t off, size = f->cfg.region_size, len;
	int pi = farm__config_member(&f->cfg, rr->from), chan;
	bool fix = rr->phase == RR_FIX;
	int64_t id;

	if (pi < 0 || (chan = f->peers[pi].chan) < 0) {
		rr->next_ns = now + 5000000; /* until the next configuration */
		return -ENOTCONN;
	}
	if (!fix) {
		uint64_t need = rr->in_slab ? (uint64_t)rr->cl * FARM_LINE : FARM_LINE;
		off = rr->off;
		if (off >= size) {
			rr->phase = RR_FIX;
			return -EAGAIN;
		}
		len = s->chunk > need ? s->chunk : need;
		if (len > size - off)
			len = size - off;
	} else {
		uint64_t next = UINT64_MAX;
		uint32_t i;
		for (i = 0; i < s->nlocked; i++) {
			const struct rr_locked *e = &s->locked[i];
			if (e->region != r)
				continue;
			if (e->next_ns <= now)
				break;
			if (e->next_ns < next)
				next = e->next_ns;
		}
		if (i == s->nlocked) {
			rr->next_ns = next;
			return -EAGAIN;
		}
		off = s->locked[i].off;
		len = (uint64_t)s->locked[i].cl * FARM_LINE;
		s->st.refetches++;
	}
	farm__hdr(f, &q.h);
	q.region = r;
	q.len = (uint32_t)len;
	q.off = off;
	if (++s->seq == RR_FETCH_SEQ)
		s->seq = 1;
	id = unet_msg_request(f->mep, (unsigned)chan, FARM_MSG_REREP, &q, sizeof(q), s->rbuf,
			      (uint32_t)RR_BUF, (void *)(uintptr_t)(FARM_REREP_CTX_TAG | s->seq));
	if (id < 0) {
		rr->next_ns = now + (id == -EAGAIN || id == -EBUSY ? 100000 : 5000000);
		return (int)id;
	}
	f->st.msgs_out++;
	s->busy = true;
	s->q_fix = fix;
	s->q_region = r;
	s->q_epoch = rr->epoch;
	s->q_off = off;
	s->q_len = (uint32_t)len;
	return 0;
}

int farm__rerep_poll(struct farm *f)
{
	struct farm_rerep *s = f->rerep;
	uint64_t now;
	int work = 0;

	if (s->ndefer)
		work += flush_defer(f);
	if (!s->active || s->busy)
		return work;
	now = farm__now_ns();
	for (uint32_t k = 0; k < s->nregions && s->active && !s->busy; k++) {
		uint32_t r = (s->cursor + k) % s->nregions;
		struct rr_region *rr = &s->reg[r];
		struct farm_replica *x = f->regions[r].mine;

		if (!rr->active)
			continue;
		if (!x || !x->copying) { /* cannot happen: adoption keeps them in step */
			deactivate(f, r);
			continue;
		}
		if (rr->phase == RR_FIX && rr->nlocked == 0) {
			complete(f, r, now);
			work++;
			if (!rr->active)
				continue;
		}
		if (now < rr->next_ns)
			continue;
		if (issue(f, r, now) == 0) {
			s->cursor = r; /* stay on this region while it has work */
			work++;
		} else if (rr->phase == RR_FIX && rr->nlocked == 0) {
			k--; /* the scan just ended: complete it now */
		}
	}
	return work;
}

/* ---- the rest of the interface ----------------------------------------------------- */

int farm__rerep_init(struct farm *f)
{
	struct farm_rerep *s = calloc(1, sizeof(*s));

	if (!s)
		return -ENOMEM;
	s->nregions = f->map.nregions;
	s->chunk = FARM_REREP_CHUNK;
	s->reg = calloc(s->nregions, sizeof(*s->reg));
	s->locked = calloc(RR_LOCKED_MAX, sizeof(*s->locked));
	s->rbuf = malloc(RR_BUF);
	s->sbuf = malloc(RR_BUF);
	f->rerep = s;
	if (!s->reg || !s->locked || !s->rbuf || !s->sbuf)
		return -ENOMEM;
	return unet_msg_handle(f->mep, FARM_MSG_REREP, on_rerep, f);
}

void farm__rerep_fini(struct farm *f)
{
	struct farm_rerep *s = f ? f->rerep : NULL;

	if (!s)
		return;
	free(s->reg);
	free(s->locked);
	free(s->rbuf);
	free(s->sbuf);
	free(s->fbuf);
	free(s);
	f->rerep = NULL;
}

int farm__rerep_pending(const struct farm *f)
{
	return f && f->rerep ? (int)f->rerep->active : 0;
}

void farm__rerep_get_stats(const struct farm *f, struct farm_rerep_stats *st)
{
	if (!st)
		return;
	if (f && f->rerep)
		*st = f->rerep->st;
	else
		memset(st, 0, sizeof(*st));
}

void farm__rerep_set_log(struct farm *f, farm_rerep_log_fn fn, void *arg)
{
	if (!f || !f->rerep)
		return;
	f->rerep->log = fn;
	f->rerep->log_arg = arg;
}

void farm__rerep_set_chunk(struct farm *f, uint32_t bytes)
{
	if (!f || !f->rerep)
		return;
	if (bytes < 4096)
		bytes = 4096;
	if (bytes > FARM_REREP_CHUNK)
		bytes = FARM_REREP_CHUNK;
	f->rerep->chunk = bytes & ~(FARM_LINE - 1);
}

void farm__rerep_set_pace(struct farm *f, uint32_t us)
{
	if (f && f->rerep)
		f->rerep->pace_ns = (uint64_t)(us > 1000000 ? 1000000 : us) * 1000;
}

int farm__rerep_fetch(struct farm *f, uint32_t member, uint32_t region, uint64_t off,
		      uint32_t len, void *buf, uint32_t cap, uint32_t *got, uint64_t *hwm,
		      int timeout_ms)
{
	struct farm_rerep *s = f ? f->rerep : NULL;
	struct farm_wire_rerep q;
	struct farm_wire_reply rep;
	uint64_t deadline;
	int pi, chan, status;
	int64_t id;

	if (!s || (!buf && cap))
		return -EINVAL;
	if (s->f_wait)
		return -EBUSY; /* an earlier fetch that timed out is still in flight */
	if ((pi = farm__config_member(&f->cfg, member)) < 0)
		return -ENOENT;
	if ((chan = f->peers[pi].chan) < 0)
		return -ENOTCONN;
	if (!s->fbuf && !(s->fbuf = malloc(RR_BUF)))
		return -ENOMEM;
	farm__hdr(f, &q.h);
	q.region = region;
	q.len = len;
	q.off = off;
	deadline = farm__now_ns() + (uint64_t)timeout_ms * 1000000ull;
	while ((id = unet_msg_request(f->mep, (unsigned)chan, FARM_MSG_REREP, &q, sizeof(q),
				      s->fbuf, (uint32_t)RR_BUF,
				      (void *)(uintptr_t)(FARM_REREP_CTX_TAG | RR_FETCH_SEQ))) ==
	       -EAGAIN) {
		if (farm__now_ns() >= deadline)
			return -ETIMEDOUT;
		farm_poll(f);
	}
	if (id < 0)
		return (int)id;
	f->st.msgs_out++;
	s->f_wait = true;
	while (s->f_wait) {
		if (farm__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (farm_poll(f) == 0 && s->f_wait)
			unet_msg_idle(f->mep, 1);
	}
	status = s->f_status;
	if (status == 0 && s->f_len < sizeof(rep))
		status = -EPROTO;
	if (status)
		return status;
	memcpy(&rep, s->fbuf, sizeof(rep));
	if (rep.status)
		return rep.status;
	uint32_t n = s->f_len - (uint32_t)sizeof(rep);
	if (got)
		*got = n;
	if (hwm)
		*hwm = rep.value;
	memcpy(buf, s->fbuf + sizeof(rep), n < cap ? n : cap);
	return 0;
}
