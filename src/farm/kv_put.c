/*
 * kv_put.c - changes: farm_kv_put, farm_kv_cas, farm_kv_del, and the split
 * of a segment. Each is one FaRM transaction (farm_tx_*): read the whole
 * segment (and its overflow or the item object when they matter), change a
 * private copy, write back the prefix of the segment up to the last slot
 * that changed, commit. Optimistic concurrency does the rest: a
 * transaction that raced another change of the segment aborts and is run
 * again, so hopscotch displacements, which move several items at once,
 * reach readers all together or not at all.
 *
 * Inserting: the key's neighbourhood [home, home+KV_H) gets a free slot by
 * hopscotch moves (kv_seg.c). When none can be made the segment splits
 * (extendible hashing: half of its items, by the next hash bit, go to a new
 * segment; the directory entries that pointed to it are rewritten in the
 * same transaction, doubling the directory first when needed). A split
 * cannot separate keys whose hashes agree on the next bits, so when no item
 * of the full neighbourhood differs from the new key in the next 8 bits
 * (possible only with colliding hashes: the hash is keyed) the item goes to
 * the segment's overflow object instead, FaRM's chaining, and the home
 * slot's overflow bit tells lookups to look there.
 */
#include <errno.h>
#include <time.h>

#include "kv_int.h"

#define KV_NEED_SPLIT	       1
#define KV_STALE	       2 /* apply: the directory entry was stale */
#define KV_BADSEG	       3 /* apply: the entry does not name a segment */
#define KV_OP_DEADLINE_NS      (10ull * 1000000000ull)
#define KV_SPLIT_SEPARATE_BITS 8
#define KV_SPLIT_MAX_SPAN      14 /* entries of one segment: 2^14, 32 chunks */

enum kv_op { KV_OP_PUT, KV_OP_CAS, KV_OP_DEL };

struct kv_req {
	enum kv_op op;
	enum farm_kv_mode mode;
	const void *key;
	uint32_t klen;
	uint64_t h;
	const void *val;
	uint32_t vlen;
	uint64_t expect;
	uint64_t nv; /* the new version */
};

/* Trailer of a segment image. */
static inline uint8_t *trailer(uint8_t *img)
{
	return kv__slot(img, KV_SLOTS);
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Copy the item part of slot `from` into slot `to` (slot bits of `to` stay). */
static void put_item(uint8_t *to, const uint8_t *from)
{
	uint64_t mt = kv_get64(to) & KV_META_SLOTBITS, mf = kv_get64(from);

	kv_put64(to, mt | (mf & ~KV_META_SLOTBITS));
	memcpy(to + 8, from + 8, KV_SLOT - 8);
}

/* Find the key in n slots from index `from` of `img`: 1 with *at, 0, or
 * a negative code (the transaction must abort). */
static int find_in(struct farm_kv *kv, struct farm_tx *tx, uint8_t *img, uint32_t from, uint32_t n,
		   const struct kv_req *q, int *at)
{
	for (uint32_t i = from; i < from + n; i++) {
		const uint8_t *s = kv__slot(img, i);
		uint64_t m = kv_get64(s);
		uint32_t kl = kv_m_klen(m);

		if (kl == 0)
			continue;
		if (kl != KV_KLEN_OOL) {
			if (kl == q->klen && !memcmp(s + 8, q->key, kl)) {
				*at = (int)i;
				return 1;
			}
			continue;
		}
		if (kv_get64(s + 8) != q->h || kv_get32(s + 24) != q->klen)
			continue;
		int rc = farm_tx_read(tx, kv_get64(s + 16), kv->obj, KV_ITEM_HDR + q->klen);
		if (rc == -EINVAL || rc == -EFBIG)
			return -EAGAIN; /* inconsistent snapshot: validation would fail */
		if (rc)
			return rc;
		if (kv_get64(kv->obj) != kv_m_ver(m))
			return -EAGAIN;
		if (!memcmp(kv->obj + KV_ITEM_HDR, q->key, q->klen)) {
			*at = (int)i;
			return 1;
		}
	}
	return 0;
}

/* Fill `slot` with the request's new item (allocating its object when it
 * does not fit inline). */
static int set_item(struct farm_kv *kv, struct farm_tx *tx, farm_addr_t seg, uint8_t *slot,
		    const struct kv_req *q)
{
	farm_addr_t ia;
	uint32_t size;
	int rc;

	if (q->klen <= FARM_KV_INLINE_KEY && q->vlen <= FARM_KV_INLINE_VAL) {
		kv__slot_set_inline(slot, q->key, q->klen, q->val, q->vlen, q->nv);
		return 0;
	}
	size = KV_ITEM_HDR + q->klen + q->vlen;
	if ((rc = farm_tx_alloc(tx, size, seg, &ia)))
		return rc;
	kv_put64(kv->obj, q->nv);
	kv_put64(kv->obj + 8, q->h);
	kv_put32(kv->obj + 16, q->klen);
	kv_put32(kv->obj + 20, q->vlen);
	memcpy(kv->obj + KV_ITEM_HDR, q->key, q->klen);
	if (q->vlen)
		memcpy(kv->obj + KV_ITEM_HDR + q->klen, q->val, q->vlen);
	if ((rc = farm_tx_write(tx, ia, kv->obj, size)))
		return rc;
	kv__slot_set_ool(slot, q->h, ia, q->klen, q->vlen, q->nv);
	return 0;
}

/* Overflow bits of the segment from the items its overflow holds. */
static void set_ovf_bits(struct farm_kv *kv, uint8_t *img, const uint8_t *ovf, uint32_t cap)
{
	for (uint32_t i = 0; i < KV_SLOTS; i++) {
		uint8_t *s = kv__slot(img, i);
		kv_put64(s, kv_get64(s) & ~KV_META_OVF);
	}
	for (uint32_t i = 0; ovf && i < cap; i++) {
		const uint8_t *s = ovf + (size_t)i * KV_SLOT;
		if (kv_m_klen(kv_get64(s)) == 0)
			continue;
		uint8_t *hs = kv__slot(img, kv__item_home(kv, s));
		kv_put64(hs, kv_get64(hs) | KV_META_OVF);
	}
}

/* Could a split make room for hash h at depth d? */
static bool splittable(struct farm_kv *kv, const uint8_t *img, uint32_t d, uint64_t h)
{
	uint32_t hm = kv__home(h);

	if (d >= KV_MAX_G || d - kv->g0 >= 31)
		return false;
	if (d < kv->g && kv->g - d > KV_SPLIT_MAX_SPAN)
		return false;
	for (uint32_t i = hm; i < hm + KV_H; i++) {
		const uint8_t *s = kv__slot((uint8_t *)img, i);
		if (kv_m_klen(kv_get64(s)) == 0)
			return true;
		uint64_t diff = kv__item_hash(kv, s) ^ h;
		if ((diff << d) >> (64 - KV_SPLIT_SEPARATE_BITS))
			return true;
	}
	return false;
}

/* Put the new item into the overflow object (growing it when full). */
static int to_overflow(struct farm_kv *kv, struct farm_tx *tx, farm_addr_t seg,
		       const struct kv_req *q, bool loaded)
{
	uint8_t *t = trailer(kv->seg);
	farm_addr_t ovf = kv_get64(t);
	uint32_t cap = kv_get32(t + 8), n = kv_get32(t + 12);
	int rc;

	if (ovf && !loaded && (rc = farm_tx_read(tx, ovf, kv->ovf, cap * KV_SLOT)))
		return rc;
	if (!ovf || n >= cap) {
		uint32_t ncap = ovf ? cap * 2 : KV_OVF_MIN;
		farm_addr_t na;
		if (ncap > KV_OVF_MAX)
			ncap = KV_OVF_MAX;
		if (ovf && ncap <= cap)
			return -ENOSPC;
		if ((rc = farm_tx_alloc(tx, ncap * KV_SLOT, seg, &na)))
			return rc;
		memset(kv->ovf2, 0, (size_t)ncap * KV_SLOT);
		if (ovf) {
			memcpy(kv->ovf2, kv->ovf, (size_t)cap * KV_SLOT);
			if ((rc = farm_tx_free(tx, ovf)))
				return rc;
		}
		memcpy(kv->ovf, kv->ovf2, (size_t)ncap * KV_SLOT);
		ovf = na;
		cap = ncap;
	}
	for (uint32_t i = 0; i < cap; i++) {
		uint8_t *s = kv->ovf + (size_t)i * KV_SLOT;
		if (kv_m_klen(kv_get64(s)) != 0)
			continue;
		if ((rc = set_item(kv, tx, seg, s, q)))
			return rc;
		kv_put64(t, ovf);
		kv_put32(t + 8, cap);
		kv_put32(t + 12, n + 1);
		uint8_t *hs = kv__slot(kv->seg, kv__home(q->h));
		kv_put64(hs, kv_get64(hs) | KV_META_OVF);
		return farm_tx_write(tx, ovf, kv->ovf, cap * KV_SLOT);
	}
	return -EPROTO; /* n said there was room */
}

/* The change of request q inside transaction tx: read the segment, change
 * a private copy, buffer the writes. 0 when buffered; KV_NEED_SPLIT;
 * KV_STALE when the directory entry was stale (the caller aborts, then
 * refreshes); or a failure (the caller aborts). Several requests may share
 * one transaction: a segment read again comes from its write set. */
static int apply(struct farm_kv *kv, struct farm_tx *tx, struct kv_req *q)
{
	uint64_t e = kv__dir_entry(kv, q->h);
	farm_addr_t seg = kv_e_addr(e);
	uint32_t d = kv_e_depth(e), hm = kv__home(q->h), moves = 0;
	int rc, at = -1;
	bool in_ovf = false, ovf_loaded = false;

	rc = farm_tx_read(tx, seg, kv->seg, KV_SEG_BYTES);
	if (rc == -EINVAL || rc == -EFBIG || rc == -ENOENT || rc == -ERANGE)
		return KV_BADSEG; /* not a segment: a directory entry from a bad pass */
	if (rc)
		return rc;
	if (d < kv->g0 || kv_m_rdepth(kv_get64(kv__slot(kv->seg, 0))) != d - kv->g0)
		return KV_STALE;
	memcpy(kv->seg0, kv->seg, KV_SEG_BYTES);
	rc = find_in(kv, tx, kv->seg, hm, KV_H, q, &at);
	uint8_t *t = trailer(kv->seg);
	farm_addr_t ovf = kv_get64(t);
	uint32_t cap = kv_get32(t + 8), nov = kv_get32(t + 12);
	if (rc == 0 && ovf && (kv_get64(kv__slot(kv->seg, hm)) & KV_META_OVF)) {
		if (cap == 0 || cap > KV_OVF_MAX || nov > cap) {
			rc = -EAGAIN;
		} else if ((rc = farm_tx_read(tx, ovf, kv->ovf, cap * KV_SLOT)) == 0) {
			ovf_loaded = true;
			/* Same slot layout as a segment, from index 0. */
			rc = find_in(kv, tx, kv->ovf, 0, cap, q, &at);
			in_ovf = rc == 1;
		}
	}
	if (rc < 0)
		return rc;
	bool found = rc == 1;
	uint8_t *slot =
	    found ? (in_ovf ? kv->ovf + (size_t)at * KV_SLOT : kv__slot(kv->seg, at)) : NULL;
	uint64_t cur = found ? kv_m_ver(kv_get64(slot)) : 0;

	rc = 0;
	switch (q->op) {
	case KV_OP_PUT:
		if (q->mode == FARM_KV_ADD && found)
			rc = -EEXIST;
		else if (q->mode == FARM_KV_REPLACE && !found)
			rc = -ENOENT;
		break;
	case KV_OP_CAS:
		if (!found)
			rc = -ENOENT;
		else if (cur != q->expect)
			rc = -ECANCELED;
		break;
	case KV_OP_DEL:
		if (!found)
			rc = -ENOENT;
		else if (q->expect && cur != q->expect)
			rc = -ECANCELED;
		break;
	}
	if (rc == -ECANCELED)
		kv->st.cas_fails++;
	if (rc)
		return rc;

	if (found && kv_m_klen(kv_get64(slot)) == KV_KLEN_OOL &&
	    (rc = farm_tx_free(tx, kv_get64(slot + 16))))
		return rc;
	if (q->op == KV_OP_DEL) {
		kv__slot_clear(slot);
		if (in_ovf) {
			if (--nov == 0) {
				if ((rc = farm_tx_free(tx, ovf)))
					return rc;
				memset(t, 0, KV_SLOT);
				set_ovf_bits(kv, kv->seg, NULL, 0);
			} else {
				kv_put32(t + 12, nov);
				set_ovf_bits(kv, kv->seg, kv->ovf, cap);
				if ((rc = farm_tx_write(tx, ovf, kv->ovf, cap * KV_SLOT)))
					return rc;
			}
		}
	} else if (found) {
		if ((rc = set_item(kv, tx, seg, slot, q)))
			return rc;
		if (in_ovf && (rc = farm_tx_write(tx, ovf, kv->ovf, cap * KV_SLOT)))
			return rc;
	} else {
		int j = kv__seg_make_room(kv, kv->seg, hm, &moves);
		if (j >= 0) {
			if ((rc = set_item(kv, tx, seg, kv__slot(kv->seg, (uint32_t)j), q)))
				return rc;
			kv->st.displacements += moves;
		} else {
			memcpy(kv->seg, kv->seg0, KV_SEG_BYTES);
			if (splittable(kv, kv->seg, d, q->h))
				return KV_NEED_SPLIT;
			if ((rc = to_overflow(kv, tx, seg, q, ovf_loaded)))
				return rc;
		}
	}
	int last = kv__seg_last_diff(kv->seg, kv->seg0, KV_SEG_LINES);
	if (last >= 0 && (rc = farm_tx_write(tx, seg, kv->seg, (uint32_t)(last + 1) * KV_SLOT)))
		return rc;
	return 0;
}

/* After a transaction was abandoned because of what apply said: bring the
 * directory up to date. -EAGAIN (try again) or an error. */
static int after_stale(struct farm_kv *kv, int why, uint64_t h)
{
	int rc = why == KV_STALE ? kv__dir_refresh(kv, h) : kv__dir_load(kv);

	return rc ? rc : -EAGAIN;
}

/* One request, one transaction: 0, KV_NEED_SPLIT, -EAGAIN (run again), or
 * the request's failure. */
static int attempt(struct farm_kv *kv, struct kv_req *q, uint64_t *ver_out)
{
	struct farm_tx *tx;
	struct farm_tx_result res;
	int rc;

	if ((rc = farm_tx_begin(kv->f, &tx)))
		return rc;
	rc = apply(kv, tx, q);
	if (rc) {
		farm_tx_abort(tx);
		if (rc == KV_STALE || rc == KV_BADSEG)
			return after_stale(kv, rc, q->h);
		return rc;
	}
	rc = farm_tx_commit(tx, &res);
	if (rc == 0) {
		kv->st.tx_commits++;
		if (ver_out)
			*ver_out = q->nv;
		return 0;
	}
	kv->st.tx_aborts++;
	return rc;
}

/* ---- split ---- */

static void init_image(uint8_t *img, uint32_t rdepth)
{
	memset(img, 0, KV_SEG_BYTES);
	for (uint32_t i = 0; i < KV_SLOTS; i++)
		kv_put64(kv__slot(img, i), kv_m_slot(rdepth, false));
}

/* Place the item of `from` into image img (overflow image ovf, *n items). */
static int place(struct farm_kv *kv, uint8_t *img, uint8_t *ovf, uint32_t *n, const uint8_t *from)
{
	uint32_t home = kv__item_home(kv, from), moves = 0;
	int j = kv__seg_make_room(kv, img, home, &moves);

	if (j >= 0) {
		put_item(kv__slot(img, (uint32_t)j), from);
		return 0;
	}
	if (*n >= KV_OVF_MAX)
		return -ENOSPC;
	uint8_t *s = ovf + (size_t)(*n)++ * KV_SLOT;
	memset(s, 0, KV_SLOT);
	put_item(s, from);
	uint8_t *hs = kv__slot(img, home);
	kv_put64(hs, kv_get64(hs) | KV_META_OVF);
	return 0;
}

/* Give a rebuilt half its overflow object, if it needs one. */
static int attach_ovf(struct farm_tx *tx, farm_addr_t near, uint8_t *img, uint8_t *ovf, uint32_t n)
{
	uint32_t cap = KV_OVF_MIN;
	farm_addr_t a;
	int rc;

	if (n == 0)
		return 0;
	while (cap < n)
		cap *= 2;
	if (cap > KV_OVF_MAX)
		cap = KV_OVF_MAX;
	memset(ovf + (size_t)n * KV_SLOT, 0, (size_t)(cap - n) * KV_SLOT);
	if ((rc = farm_tx_alloc(tx, cap * KV_SLOT, near, &a)))
		return rc;
	if ((rc = farm_tx_write(tx, a, ovf, cap * KV_SLOT)))
		return rc;
	uint8_t *t = trailer(img);
	kv_put64(t, a);
	kv_put32(t + 8, cap);
	kv_put32(t + 12, n);
	return 0;
}

static uint32_t chunk_entries(uint32_t g)
{
	return (1ull << g) < KV_CHUNK ? 1u << g : KV_CHUNK;
}

/* One split attempt: 0, -EAGAIN (again), or an error. */
static int split_once(struct farm_kv *kv, uint64_t h)
{
	uint64_t e = kv__dir_entry(kv, h);
	farm_addr_t seg = kv_e_addr(e), s2;
	uint32_t d = kv_e_depth(e), g = kv->g;
	struct kv_hdr0 h0;
	struct farm_tx *tx;
	struct farm_tx_result res;
	uint32_t na = 0, nb = 0;
	int rc;

	if (d >= g)
		return kv__dir_double(kv, g) ?: -EAGAIN;
	if ((rc = farm_tx_begin(kv->f, &tx)))
		return rc;
	if ((rc = farm_tx_read(tx, kv->hdr, &h0, sizeof(h0))))
		goto abort;
	if (h0.g != g || h0.dgen != kv->dgen) {
		farm_tx_abort(tx);
		return kv__dir_load(kv) ?: -EAGAIN;
	}
	rc = farm_tx_read(tx, seg, kv->seg, KV_SEG_BYTES);
	if (rc == 0 && (d < kv->g0 || kv_m_rdepth(kv_get64(kv->seg)) != d - kv->g0)) {
		farm_tx_abort(tx);
		return kv__dir_refresh(kv, h) ?: -EAGAIN;
	}
	if (rc)
		goto abort;
	uint8_t *t = trailer(kv->seg);
	farm_addr_t ovf = kv_get64(t);
	uint32_t cap = kv_get32(t + 8);
	if (ovf) {
		if (cap == 0 || cap > KV_OVF_MAX) {
			rc = -EAGAIN;
			goto abort;
		}
		if ((rc = farm_tx_read(tx, ovf, kv->ovf, cap * KV_SLOT)))
			goto abort;
	}
	/* Rebuild: A (bit 0) stays in place, B (bit 1) is the new segment. */
	init_image(kv->seg0, d + 1 - kv->g0);
	init_image(kv->seg2, d + 1 - kv->g0);
	for (uint32_t i = 0; i < KV_SLOTS + (ovf ? cap : 0); i++) {
		const uint8_t *s = i < KV_SLOTS ? kv__slot(kv->seg, i)
						: kv->ovf + (size_t)(i - KV_SLOTS) * KV_SLOT;
		if (kv_m_klen(kv_get64(s)) == 0)
			continue;
		bool b = kv__split_bit(kv__item_hash(kv, s), d);
		rc = b ? place(kv, kv->seg2, kv->ovf2, &nb, s)
		       : place(kv, kv->seg0, kv->obj, &na, s);
		if (rc)
			goto abort;
	}
	if ((rc = farm_tx_alloc(tx, KV_SEG_BYTES, kv__near(kv), &s2)))
		goto abort;
	if ((rc = attach_ovf(tx, seg, kv->seg0, kv->obj, na)) ||
	    (rc = attach_ovf(tx, s2, kv->seg2, kv->ovf2, nb)))
		goto abort;
	if (ovf && (rc = farm_tx_free(tx, ovf)))
		goto abort;
	if ((rc = farm_tx_write(tx, seg, kv->seg0, KV_SEG_BYTES)) ||
	    (rc = farm_tx_write(tx, s2, kv->seg2, KV_SEG_BYTES)))
		goto abort;
	/* The directory entries of the segment: 2^(g-d) of them, aligned. */
	uint32_t span = 1u << (g - d), first = kv__dir_index(h, g) & ~(span - 1);
	uint32_t per = chunk_entries(g);
	uint64_t ea = kv_e_make(seg, d + 1), eb = kv_e_make(s2, d + 1);
	for (uint32_t c = first / per; c <= (first + span - 1) / per; c++) {
		uint32_t lo = first > c * per ? first - c * per : 0;
		uint32_t hi = first + span < (c + 1) * per ? first + span - c * per : per;
		uint64_t *ent = (uint64_t *)kv->chunk;
		if ((rc = farm_tx_read(tx, kv->chunks[c], ent, hi * 8u)))
			goto abort;
		for (uint32_t i = lo; i < hi; i++) {
			if (ent[i] != e) { /* our cache was stale after all */
				rc = -EAGAIN;
				goto abort;
			}
			ent[i] = c * per + i - first < span / 2 ? ea : eb;
		}
		if ((rc = farm_tx_write(tx, kv->chunks[c], ent, hi * 8u)))
			goto abort;
	}
	h0.nsplits++;
	if ((rc = farm_tx_write(tx, kv->hdr, &h0, sizeof(h0))))
		goto abort;
	rc = farm_tx_commit(tx, &res);
	if (rc) {
		kv->st.tx_aborts++;
		return rc;
	}
	kv->st.tx_commits++;
	kv->st.splits++;
	for (uint32_t i = 0; i < span; i++)
		kv->dir[first + i] = i < span / 2 ? ea : eb;
	return 0;
abort:
	farm_tx_abort(tx);
	if (rc == -EAGAIN)
		kv__dir_load(kv);
	return rc;
}

int kv__split(struct farm_kv *kv, uint64_t h)
{
	int rc = -EAGAIN;

	for (int t = 0; t < 64 && rc == -EAGAIN; t++) {
		if (t)
			farm_poll(kv->f);
		rc = split_once(kv, h);
	}
	return rc;
}

/* ---- the calls ---- */

static void backoff(struct farm_kv *kv, int t)
{
	if (t < 4)
		farm_poll(kv->f);
	else
		farm_idle(kv->f, 1);
}

static int run(struct farm_kv *kv, struct kv_req *q, uint64_t *ver)
{
	uint64_t deadline = 0;
	int rc;

	if (q->op != KV_OP_DEL && (rc = kv__next_version(kv, &q->nv)))
		return rc;
	for (int t = 0;; t++) {
		rc = attempt(kv, q, ver);
		if (rc == KV_NEED_SPLIT) {
			rc = kv__split(kv, q->h);
			if (rc && rc != -EAGAIN)
				return rc;
			continue;
		}
		if (rc != -EAGAIN)
			return rc;
		uint64_t now = now_ns();
		if (!deadline)
			deadline = now + KV_OP_DEADLINE_NS;
		else if (now >= deadline)
			return -EAGAIN;
		backoff(kv, t);
	}
}

static int check_val(const void *val, size_t vlen)
{
	if (vlen > FARM_KV_VAL_MAX)
		return -EFBIG;
	if (!val && vlen)
		return -EINVAL;
	return 0;
}

int farm_kv_put(struct farm_kv *kv, const void *key, size_t klen, const void *val, size_t vlen,
		enum farm_kv_mode mode, uint64_t *ver)
{
	int rc;

	if (!kv || (mode != FARM_KV_SET && mode != FARM_KV_ADD && mode != FARM_KV_REPLACE))
		return -EINVAL;
	if ((rc = kv__check_key(key, klen)) || (rc = check_val(val, vlen)))
		return rc;
	struct kv_req q = {KV_OP_PUT,	   mode, key, (uint32_t)klen, kv__hash(kv, key, klen), val,
			   (uint32_t)vlen, 0,	 0};
	kv->st.puts++;
	return run(kv, &q, ver);
}

int farm_kv_cas(struct farm_kv *kv, const void *key, size_t klen, uint64_t expect, const void *val,
		size_t vlen, uint64_t *ver)
{
	int rc;

	if (!kv || !expect)
		return -EINVAL;
	if ((rc = kv__check_key(key, klen)) || (rc = check_val(val, vlen)))
		return rc;
	struct kv_req q = {
	    KV_OP_CAS,	    FARM_KV_SET, key, (uint32_t)klen, kv__hash(kv, key, klen), val,
	    (uint32_t)vlen, expect,	 0};
	kv->st.puts++;
	return run(kv, &q, ver);
}

int farm_kv_del(struct farm_kv *kv, const void *key, size_t klen, uint64_t expect)
{
	int rc;

	if (!kv)
		return -EINVAL;
	if ((rc = kv__check_key(key, klen)))
		return rc;
	struct kv_req q = {
	    KV_OP_DEL, FARM_KV_SET, key, (uint32_t)klen, kv__hash(kv, key, klen), NULL,
	    0,	       expect,	    0};
	kv->st.dels++;
	return run(kv, &q, NULL);
}

/* ---- multi-put ---- */

#define KV_MPUT_ITEMS 12	   /* requests per transaction (writes: ~4 each) */
#define KV_MPUT_BYTES (160u << 10) /* images per transaction, estimated */

static int mput_chunk(struct farm_kv *kv, struct kv_req *q, struct farm_kv_put_item **it,
		      unsigned m)
{
	uint64_t deadline = 0;

	for (int t = 0;; t++) {
		struct farm_tx *tx;
		struct farm_tx_result res;
		unsigned i;
		int rc;

		if ((rc = farm_tx_begin(kv->f, &tx)))
			return rc;
		for (i = 0, rc = 0; i < m && rc == 0; i++)
			rc = apply(kv, tx, &q[i]);
		if (rc) {
			farm_tx_abort(tx);
			i--;
			if (rc == KV_NEED_SPLIT)
				rc = kv__split(kv, q[i].h);
			else if (rc == KV_STALE || rc == KV_BADSEG)
				rc = after_stale(kv, rc, q[i].h);
			if (rc && rc != -EAGAIN)
				return rc; /* the caller puts them one by one */
		} else {
			rc = farm_tx_commit(tx, &res);
			if (rc == 0) {
				kv->st.tx_commits++;
				for (i = 0; i < m; i++) {
					it[i]->rc = 0;
					it[i]->ver = q[i].nv;
				}
				return 0;
			}
			kv->st.tx_aborts++;
			if (rc != -EAGAIN)
				return rc;
		}
		uint64_t now = now_ns();
		if (!deadline)
			deadline = now + KV_OP_DEADLINE_NS;
		else if (now >= deadline)
			return -EAGAIN;
		if (rc == -EAGAIN)
			backoff(kv, t);
	}
}

int farm_kv_mput(struct farm_kv *kv, struct farm_kv_put_item *items, size_t n)
{
	struct kv_req q[KV_MPUT_ITEMS];
	struct farm_kv_put_item *it[KV_MPUT_ITEMS];
	int stored = 0;

	if (!kv || (!items && n))
		return -EINVAL;
	for (size_t i = 0; i < n;) {
		unsigned m = 0;
		uint32_t bytes = 0;

		/* A chunk of valid items within the transaction's limits. */
		for (; i < n && m < KV_MPUT_ITEMS; i++) {
			struct farm_kv_put_item *p = &items[i];
			p->ver = 0;
			kv->st.puts++;
			if ((p->rc = kv__check_key(p->key, p->klen)) ||
			    (p->rc = check_val(p->val, p->vlen)))
				continue;
			uint32_t b =
			    KV_SEG_BYTES + KV_ITEM_HDR + (uint32_t)(p->klen + p->vlen) + 64;
			if (m && bytes + b > KV_MPUT_BYTES)
				break;
			if ((p->rc = kv__next_version(kv, &q[m].nv)))
				continue;
			q[m] = (struct kv_req){KV_OP_PUT,
					       FARM_KV_SET,
					       p->key,
					       (uint32_t)p->klen,
					       kv__hash(kv, p->key, p->klen),
					       p->val,
					       (uint32_t)p->vlen,
					       0,
					       q[m].nv};
			it[m++] = p;
			bytes += b;
		}
		if (m == 0)
			continue;
		if (mput_chunk(kv, q, it, m) == 0) {
			stored += (int)m;
			continue;
		}
		/* The chunk as a whole failed: each item on its own says why. */
		for (unsigned k = 0; k < m; k++) {
			it[k]->rc = run(kv, &q[k], &it[k]->ver);
			stored += it[k]->rc == 0;
		}
	}
	return stored;
}
