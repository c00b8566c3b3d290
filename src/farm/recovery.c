/*
 * recovery.c - resolving the transactions of coordinators that left the
 * configuration (the protocol is in recovery.h; the records in log.h).
 *
 * Votes are exchanged all-to-all rather than through one recovery
 * coordinator: every member must vote anyway, a configuration has a few
 * members, and a decision that every node computes from the same votes
 * needs no second round to distribute. A round belongs to one
 * configuration; a newer configuration starts a new round (rings frozen
 * before stay frozen, recovery locks stay held), so a member dying during
 * recovery only means recovering again with one voter fewer.
 *
 * Nothing here is on a data path: votes are built with malloc and sorted
 * with qsort, once per configuration change.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "node.h"
#include "recovery.h"
#include "recovery_wire.h"

#define RETRY_NS 2000000ull
#include "tx.h"

/* A vote as parsed: pointers into its buffer, entries sorted by tx id. */
struct vote {
	uint32_t from;
	uint64_t config;
	uint8_t *buf;
	uint32_t len;
	const struct vote_hdr *h;
	const struct vote_held *held;
	const struct vote_coord *coord;
	const struct vote_ent **ent; /* sorted by tx_id */
};

struct farm_rcv {
	bool pending; /* not decided yet */
	bool sending; /* our vote not yet delivered to every member */
	uint64_t config, t0;
	struct vote in[FARM_MAX_MEMBERS]; /* latest vote per sender, any config */
	uint32_t nin;
	uint8_t *mine;
	uint32_t mine_len;
	int32_t op[FARM_MAX_MEMBERS]; /* vote request in flight, by member index */
	bool sent[FARM_MAX_MEMBERS];
	uint64_t retry_at[FARM_MAX_MEMBERS];
};

static uint32_t pad8(uint32_t n)
{
	return (n + 7u) & ~7u;
}

static void vote_free(struct vote *v)
{
	free(v->buf);
	free(v->ent);
	memset(v, 0, sizeof(*v));
}

static int ent_cmp(const void *a, const void *b)
{
	uint64_t x = (*(const struct vote_ent *const *)a)->tx_id;
	uint64_t y = (*(const struct vote_ent *const *)b)->tx_id;

	return x < y ? -1 : x > y;
}

/* Check a vote whole and index it. Takes buf. */
static int vote_parse(struct vote *v, uint8_t *buf, uint32_t len)
{
	const struct vote_hdr *h = (const struct vote_hdr *)buf;
	uint64_t at;

	memset(v, 0, sizeof(*v));
	v->buf = buf;
	v->len = len;
	if (len < sizeof(*h) || h->nheld > FARM_MAX_REGIONS || h->ncoord > FARM_MAX_MEMBERS ||
	    h->nent > VOTE_MAX_BYTES / sizeof(struct vote_ent))
		goto bad;
	at = sizeof(*h) + (uint64_t)h->nheld * sizeof(struct vote_held);
	if (at + (uint64_t)h->ncoord * sizeof(struct vote_coord) > len)
		goto bad;
	v->h = h;
	v->held = (const struct vote_held *)(buf + sizeof(*h));
	v->coord = (const struct vote_coord *)(buf + at);
	at += (uint64_t)h->ncoord * sizeof(struct vote_coord);
	if (h->nent && !(v->ent = malloc(h->nent * sizeof(*v->ent))))
		goto bad;
	for (uint32_t i = 0; i < h->nent; i++) {
		const struct vote_ent *e = (const struct vote_ent *)(buf + at);
		if (at + sizeof(*e) > len)
			goto bad;
		at += sizeof(*e) + pad8(e->nregions * 4u);
		if (at > len)
			goto bad;
		v->ent[i] = e;
	}
	if (at != len)
		goto bad;
	if (h->nent)
		qsort(v->ent, h->nent, sizeof(*v->ent), ent_cmp);
	v->from = h->h.from;
	v->config = h->h.config_id;
	return 0;
bad:
	vote_free(v);
	return -EPROTO;
}

static const struct vote_ent *vote_find(const struct vote *v, uint64_t tx_id)
{
	uint32_t lo = 0, hi = v->h->nent;

	while (lo < hi) {
		uint32_t mid = (lo + hi) / 2;
		if (v->ent[mid]->tx_id < tx_id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < v->h->nent && v->ent[lo]->tx_id == tx_id ? v->ent[lo] : NULL;
}

/* Does the voter hold region with data since configuration `config` or
 * earlier (so that a transaction of that configuration wrote it a
 * COMMIT-BACKUP record)? */
static bool vote_holds(const struct vote *v, uint32_t region, uint64_t config)
{
	for (uint32_t i = 0; i < v->h->nheld; i++)
		if (v->held[i].region == region)
			return v->held[i].since <= config;
	return false;
}

static uint64_t vote_trunc(const struct vote *v, uint32_t coord)
{
	for (uint32_t i = 0; i < v->h->ncoord; i++)
		if (v->coord[i].id == coord)
			return v->coord[i].trunc_cseq;
	return 0;
}

/* Store a vote (ours or a peer's), replacing an older one of the sender. */
static void vote_store(struct farm_rcv *rc, uint8_t *buf, uint32_t len)
{
	struct vote v;
	uint32_t i;

	if (vote_parse(&v, buf, len))
		return;
	for (i = 0; i < rc->nin && rc->in[i].from != v.from; i++)
		;
	if (i < rc->nin) {
		if (rc->in[i].config > v.config) {
			vote_free(&v);
			return;
		}
		vote_free(&rc->in[i]);
	} else if (rc->nin == FARM_MAX_MEMBERS) {
		vote_free(&v);
		return;
	} else {
		rc->nin++;
	}
	rc->in[i] = v;
}

/* ---- building our vote -------------------------------------------------------- */

struct txagg {
	uint64_t tx_id, cseq, config;
	uint32_t coord;
	uint16_t votes, nregions;
	const uint32_t *regions;
};

static uint16_t rec_vote(const struct farm_logrec *rec)
{
	switch (rec->type) {
	case FARM_LOG_LOCK:
		switch (rec->state) {
		case FARM_LOGST_LOCKED:
			return VOTE_L;
		case FARM_LOGST_COMMITTED:
			return VOTE_P;
		default:
			return VOTE_A; /* refused, aborted, or never locked: it cannot
					  have reached COMMIT-BACKUP */
		}
	case FARM_LOG_CB:
		return VOTE_B;
	case FARM_LOG_CP:
		return VOTE_P;
	case FARM_LOG_VOID:
		return VOTE_A;
	default:
		return 0;
	}
}

static uint8_t *build_vote(struct farm *f, uint32_t *out_len)
{
	struct farm_txs *t = f->tx;
	struct txagg *agg = NULL;
	uint32_t nagg = 0, cap = 0, nheld = 0, ncoord = 0;
	uint64_t len;
	uint8_t *buf = NULL, *p;

	for (uint32_t i = 0; i < f->nreps; i++)
		nheld += f->reps[i].role >= 0 && !f->reps[i].copying;
	for (uint32_t c = 0; c < t->nrings; c++) {
		struct farm_txring *r = &t->ring[c];
		uint64_t pos;
		if (!r->dead)
			continue;
		ncoord++;
		for (pos = r->head; pos < r->end;) {
			struct farm_logrec *rec = farm__txp_rec(f, c, pos);
			uint16_t v;
			uint32_t k;
			if (!rec)
				break;
			pos += rec->len;
			if (!(v = rec_vote(rec)))
				continue;
			for (k = 0; k < nagg && agg[k].tx_id != rec->tx_id; k++)
				;
			if (k == nagg) {
				if (nagg == cap) {
					cap = cap ? cap * 2 : 64;
					struct txagg *n = realloc(agg, cap * sizeof(*n));
					if (!n)
						goto fail;
					agg = n;
				}
				agg[nagg++] = (struct txagg){.tx_id = rec->tx_id,
							     .cseq = rec->cseq,
							     .config = rec->config_id,
							     .coord = rec->coord};
			}
			agg[k].votes |= v;
			if (!agg[k].regions && (agg[k].regions = farm__txp_regions(rec)))
				agg[k].nregions = rec->nregions;
		}
	}
	len = sizeof(struct vote_hdr) + nheld * sizeof(struct vote_held) +
	      ncoord * sizeof(struct vote_coord);
	for (uint32_t k = 0; k < nagg; k++)
		len += sizeof(struct vote_ent) + pad8(agg[k].nregions * 4u);
	if (len > VOTE_MAX_BYTES || !(buf = calloc(1, len)))
		goto fail;
	struct vote_hdr *h = (struct vote_hdr *)buf;
	farm__hdr(f, &h->h);
	h->nheld = nheld;
	h->ncoord = ncoord;
	h->nent = nagg;
	p = buf + sizeof(*h);
	for (uint32_t i = 0; i < f->nreps; i++)
		if (f->reps[i].role >= 0 && !f->reps[i].copying) {
			struct vote_held vh = {.region = f->reps[i].region,
					       .since = f->reps[i].since};
			memcpy(p, &vh, sizeof(vh));
			p += sizeof(vh);
		}
	for (uint32_t c = 0; c < t->nrings; c++) {
		if (!t->ring[c].dead)
			continue;
		struct vote_coord vc = {.id = t->log_id[c], .trunc_cseq = t->ring[c].trunc_cseq};
		memcpy(p, &vc, sizeof(vc));
		p += sizeof(vc);
	}
	for (uint32_t k = 0; k < nagg; k++) {
		struct vote_ent e = {.tx_id = agg[k].tx_id,
				     .cseq = agg[k].cseq,
				     .config = agg[k].config,
				     .coord = agg[k].coord,
				     .votes = agg[k].votes,
				     .nregions = agg[k].nregions};
		memcpy(p, &e, sizeof(e));
		if (e.nregions)
			memcpy(p + sizeof(e), agg[k].regions, e.nregions * 4u);
		p += sizeof(e) + pad8(e.nregions * 4u);
	}
	free(agg);
	*out_len = (uint32_t)len;
	return buf;
fail:
	free(agg);
	free(buf);
	return NULL;
}

/* ---- the round ----------------------------------------------------------------- */

static struct farm_rcv *rcv_of(struct farm *f)
{
	struct farm_txs *t = f->tx;

	if (!t->rcv && (t->rcv = calloc(1, sizeof(*t->rcv))))
		for (uint32_t i = 0; i < FARM_MAX_MEMBERS; i++)
			t->rcv->op[i] = -1;
	return t->rcv;
}

static void drop_ops(struct farm *f, struct farm_rcv *rc)
{
	for (uint32_t i = 0; i < FARM_MAX_MEMBERS; i++) {
		if (rc->op[i] < 0)
			continue;
		struct farm_op *o = &f->ops[rc->op[i]];
		if (o->state == FARM_OP_WAIT)
			o->state = FARM_OP_ABANDONED; /* released when it completes */
		else
			farm__op_release(f, (uint32_t)rc->op[i]);
		rc->op[i] = -1;
	}
}

/* Rings for members that joined: a new incarnation of a member whose ring
 * recovery retired gets that ring again, emptied (a ring still being
 * decided is given back once decided: apply_round); a new member id gets a
 * spare ring, else the retired ring of a member that is gone. Without one,
 * its transactions that touch us abort (FAILURE) until a ring frees up. */
static void assign_rings(struct farm *f)
{
	struct farm_txs *t = f->tx;

	for (uint32_t i = 0; i < f->cfg.nmembers; i++) {
		uint32_t id = f->cfg.members[i].id;
		int c = farm__tx_lix(t, id);
		if ((int)i == f->self_idx)
			continue;
		if (c >= 0) {
			if (t->ring[c].retired)
				farm__log_reset(f, (uint32_t)c, id, true);
			else if (t->ring[c].dead)
				t->ring[c].rejoin = true;
			continue;
		}
		for (uint32_t k = 0; k < t->nrings && c < 0; k++)
			if (!t->log_id[k])
				c = (int)k;
		for (uint32_t k = 0; k < t->nrings && c < 0; k++)
			if (t->ring[k].retired && farm__config_member(&f->cfg, t->log_id[k]) < 0)
				c = (int)k;
		if (c >= 0)
			farm__log_reset(f, (uint32_t)c, id, true);
	}
}

void farm__rcv_adopted(struct farm *f, const int8_t *old_role)
{
	struct farm_txs *t = f->tx;
	struct farm_rcv *rc;
	uint8_t *led;
	bool any = false;

	if (!t || !(rc = rcv_of(f)))
		return;
	/* Our new configuration id is published (node page): a coordinator
	 * whose fence READ follows its record's tag store sees it, or we see
	 * the record now. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	for (uint32_t c = 0; c < t->nrings; c++) {
		struct farm_txring *r = &t->ring[c];
		uint64_t pos = r->head;
		struct farm_logrec *rec;
		if (r->dead || r->retired || c == t->self_lix || !t->log_id[c] ||
		    (farm__config_member(&f->cfg, t->log_id[c]) >= 0 && !r->renewed))
			continue;
		if (r->renewed) { /* gone and back in one step: decide, then reset */
			r->renewed = false;
			r->rejoin = true;
		}
		while ((rec = farm__txp_rec(f, c, pos)))
			pos += rec->len;
		r->dead = true;
		r->end = pos;
		farm__log_forget(f, c);
	}
	assign_rings(f);
	farm__log_publish(f); /* frozen rings are nobody's to write */
	/* Lock recovery for the regions we lead from now on. */
	led = calloc(1, f->map.nregions / 8 + 1);
	if (led) {
		for (uint32_t i = 0; i < f->nreps; i++) {
			struct farm_replica *x = &f->reps[i];
			if (x->role == 0 && old_role[x->region] > 0) {
				led[x->region / 8] |= (uint8_t)(1u << (x->region % 8));
				any = true;
			}
		}
		if (any)
			farm__txp_lock_recover(f, led);
		free(led);
	}

	drop_ops(f, rc);
	free(rc->mine);
	rc->mine = build_vote(f, &rc->mine_len);
	rc->config = f->config_id;
	rc->pending = rc->sending = true;
	rc->t0 = farm__now_ns();
	memset(rc->sent, 0, sizeof(rc->sent));
	memset(rc->retry_at, 0, sizeof(rc->retry_at));
	if (rc->mine) {
		uint8_t *copy = malloc(rc->mine_len);
		if (copy) {
			memcpy(copy, rc->mine, rc->mine_len);
			vote_store(rc, copy, rc->mine_len);
		}
	}
}

void farm__rcv_renewed(struct farm *f, uint32_t id)
{
	int c = f && f->tx ? farm__tx_lix(f->tx, id) : -1;

	if (c >= 0 && (uint32_t)c != f->tx->self_lix && !f->tx->ring[c].retired)
		f->tx->ring[c].renewed = true;
}

bool farm__rcv_pending(const struct farm *f)
{
	return f && f->tx && f->tx->rcv && f->tx->rcv->pending;
}

static const struct vote *vote_of(const struct farm_rcv *rc, uint32_t id, uint64_t config)
{
	for (uint32_t i = 0; i < rc->nin; i++)
		if (rc->in[i].from == id && rc->in[i].config == config)
			return &rc->in[i];
	return NULL;
}

/* The decision for tx (recovery.h), from every member's vote. */
static bool decide(const struct vote **v, uint32_t nv, uint64_t tx_id)
{
	uint32_t votes = 0, nregions = 0, coord = 0;
	const uint32_t *regions = NULL;
	uint64_t cseq = 0, config = 0;

	for (uint32_t i = 0; i < nv; i++) {
		const struct vote_ent *e = vote_find(v[i], tx_id);
		if (!e)
			continue;
		votes |= e->votes;
		coord = e->coord;
		cseq = e->cseq;
		config = e->config;
		if (!regions && e->nregions) {
			regions = (const uint32_t *)(e + 1);
			nregions = e->nregions;
		}
	}
	if (votes & VOTE_P)
		return true;
	if ((votes & VOTE_A) || !(votes & VOTE_B) || !regions)
		return false;
	for (uint32_t i = 0; i < nv; i++) {
		bool holds = false;
		/* Only replicas of T's configuration: one that got the region
		 * later (re-replication) was never sent T's record, and its
		 * copy holds T's effects or waits for this decision. */
		for (uint32_t k = 0; k < nregions && !holds; k++)
			holds = vote_holds(v[i], regions[k], config);
		if (holds && !vote_find(v[i], tx_id) && vote_trunc(v[i], coord) < cseq)
			return false; /* a replica never got its record: not all
					 COMMIT-BACKUPs were written */
	}
	return true;
}

int farm__rcv_decide_bufs(const uint8_t *const *bufs, const uint32_t *lens, uint32_t n,
			  uint64_t tx_id)
{
	struct vote parsed[FARM_MAX_MEMBERS];
	const struct vote *v[FARM_MAX_MEMBERS];
	uint32_t nv = 0;
	int rc = 0;

	if (n > FARM_MAX_MEMBERS)
		return -EINVAL;
	for (; nv < n; nv++) {
		uint8_t *copy = malloc(lens[nv] ? lens[nv] : 1);
		if (!copy) {
			rc = -ENOMEM;
			break;
		}
		memcpy(copy, bufs[nv], lens[nv]);
		if (vote_parse(&parsed[nv], copy, lens[nv])) { /* frees copy */
			rc = -EPROTO;
			break;
		}
		v[nv] = &parsed[nv];
	}
	if (rc == 0)
		rc = decide(v, nv, tx_id);
	for (uint32_t i = 0; i < nv; i++)
		vote_free(&parsed[i]);
	return rc;
}

static void apply_round(struct farm *f, struct farm_rcv *rc, const struct vote **v, uint32_t nv)
{
	struct farm_txs *t = f->tx;

	for (uint32_t c = 0; c < t->nrings; c++) {
		struct farm_txring *r = &t->ring[c];
		uint64_t pos = r->head, last_tx = 0;
		bool last = false;
		if (!r->dead)
			continue;
		while (pos < r->end) {
			struct farm_logrec *rec = farm__txp_rec(f, c, pos);
			if (!rec)
				break;
			if (rec->type != FARM_LOG_PAD) {
				if (rec->tx_id != last_tx || pos == r->head) {
					last_tx = rec->tx_id;
					last = decide(v, nv, rec->tx_id);
					if (rec_vote(rec))
						last ? t->st.rcv_commits++ : t->st.rcv_aborts++;
				}
				farm__txp_resolve(f, c, pos, last);
			}
			pos += rec->len;
		}
		/* Retired: the coordinator is gone, its ring is never read
		 * again (a restarted process is a new member). */
		r->head = r->end;
		__atomic_store_n(&r->ctl->head, r->end, __ATOMIC_RELEASE);
		r->dead = false;
		r->retired = true;
		if (r->rejoin) { /* its member is back as a new incarnation */
			r->rejoin = false;
			farm__log_reset(f, c, t->log_id[c], false);
		}
	}
	farm__log_publish(f);
	(void)rc;
}

int farm__rcv_poll(struct farm *f)
{
	struct farm_txs *t = f->tx;
	struct farm_rcv *rc = t ? t->rcv : NULL;
	const struct vote *v[FARM_MAX_MEMBERS];
	uint32_t nv = 0;
	int work = 0;
	uint64_t now;

	if (!rc || !(rc->pending || rc->sending))
		return 0;
	if (rc->config != f->config_id) {
		/* a newer adoption opens its own round */
		rc->pending = rc->sending = false;
		return 0;
	}
	now = farm__now_ns();
	/* Our vote goes to every member even after we decided: they cannot
	 * decide without it. */
	rc->sending = false;
	for (uint32_t i = 0; i < f->cfg.nmembers; i++) {
		if ((int)i == f->self_idx || rc->sent[i] || !rc->mine)
			continue;
		rc->sending = true;
		if (rc->op[i] >= 0) {
			struct farm_op *o = &f->ops[rc->op[i]];
			if (o->state != FARM_OP_DONE)
				continue;
			int status = o->status;
			farm__op_release(f, (uint32_t)rc->op[i]);
			rc->op[i] = -1;
			if (status == 0) {
				rc->sent[i] = true;
				work++;
				continue;
			}
			rc->retry_at[i] = now + RETRY_NS;
		}
		if (now < rc->retry_at[i])
			continue;
		int op = farm__op_new(f, FARM_OPK_CLIENT, 0);
		if (op < 0)
			continue;
		if (farm__request(f, (int)i, FARM_MSG_RCV_VOTE, rc->mine, rc->mine_len,
				  (uint32_t)op) <= 0) {
			farm__op_release(f, (uint32_t)op);
			rc->retry_at[i] = now + RETRY_NS;
			continue;
		}
		rc->op[i] = op;
		work++;
	}
	if (!rc->pending)
		return work;
	for (uint32_t i = 0; i < f->cfg.nmembers; i++) {
		const struct vote *x = vote_of(rc, f->cfg.members[i].id, rc->config);
		if (!x)
			return work; /* not all in yet */
		v[nv++] = x;
	}
	apply_round(f, rc, v, nv);
	rc->pending = false;
	t->st.rcv_rounds++;
	t->st.rcv_ns = farm__now_ns() - rc->t0;
	return work + 1;
}

static void on_vote(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_rcv *rc;
	uint8_t *copy;

	struct farm_wire_hdr h;
	int peer;

	(void)mep;
	if (farm__admit(f, m, sizeof(struct vote_hdr)))
		return;
	memcpy(&h, m->data, sizeof(h));
	peer = m->chan < sizeof(f->chan_peer) ? f->chan_peer[m->chan] : -1;
	if (peer < 0 || f->peers[peer].id != h.from) {
		farm__reply(f, m, -EPROTO, 0);
		return;
	}
	if (m->len > VOTE_MAX_BYTES || !(rc = rcv_of(f)) || !(copy = malloc(m->len))) {
		farm__reply(f, m, -ENOMEM, 0);
		return;
	}
	memcpy(copy, m->data, m->len);
	vote_store(rc, copy, (uint32_t)m->len);
	farm__reply(f, m, 0, 0);
}

void farm__rcv_register(struct farm *f)
{
	unet_msg_handle(f->mep, FARM_MSG_RCV_VOTE, on_vote, f);
}

void farm__rcv_fini(struct farm *f)
{
	struct farm_rcv *rc = f && f->tx ? f->tx->rcv : NULL;

	if (!rc)
		return;
	for (uint32_t i = 0; i < rc->nin; i++)
		vote_free(&rc->in[i]);
	free(rc->mine);
	free(rc);
	f->tx->rcv = NULL;
}
