/*
 * kv_get.c - lookups: farm_kv_get and farm_kv_mget, the hot path.
 *
 * A lookup hashes the key, takes the segment from the handle's cached
 * directory and reads the KV_H lines of the key's neighbourhood with one
 * consistent one-sided read (kv_read.c). The first slot of that read also
 * says the segment's depth: when it differs from the directory entry's,
 * the segment split after the handle cached the entry, the key may have
 * moved, and the handle refreshes and reads again. Inline items are
 * answered from the read itself; an out-of-line item costs a second read
 * of its object, checked against the slot's item version. A miss whose
 * home slot has the overflow bit looks in the segment's overflow object,
 * bracketed by the segment's version (everything that moves items between
 * a segment and its overflow writes the segment).
 *
 * No allocation and no system call: the buffers live in the handle.
 */
#include <errno.h>
#include <time.h>

#include "kv_int.h"

#define KV_LOOKUP_SPIN	    8
#define KV_LOOKUP_GIVEUP_NS (2ull * 1000000000ull)

struct kv_out {
	void *val;
	size_t cap;
	size_t *vlen;
	uint64_t *ver;
};

static int emit(const struct kv_out *o, const void *v, uint32_t vl, uint64_t ver)
{
	if (o->vlen)
		*o->vlen = vl;
	if (o->ver)
		*o->ver = ver;
	if (vl > o->cap)
		return -ENOBUFS;
	if (vl)
		memcpy(o->val, v, vl);
	return 0;
}

/* An out-of-line candidate: 1 + emit's code in *res when it is the key, 0
 * when it is another key, -EAGAIN when the pointer went stale. */
static int ool(struct farm_kv *kv, const uint8_t *slot, const void *key, uint32_t klen, uint64_t h,
	       const struct kv_out *o, int *res)
{
	uint64_t m = kv_get64(slot);
	uint32_t kl = kv_get32(slot + 24), vl = kv_get32(slot + 28);
	int rc;

	if (kv_get64(slot + 8) != h || kl != klen)
		return 0;
	if (vl > FARM_KV_VAL_MAX || kl > FARM_KV_KEY_MAX)
		return -EAGAIN; /* a torn slot cannot pass the checks; be safe */
	kv->st.get_reads++;
	rc = farm_read(kv->f, kv_get64(slot + 16), kv->obj, KV_ITEM_HDR + kl + vl, NULL);
	if (rc == -EINVAL || rc == -EFBIG)
		return -EAGAIN; /* freed (and maybe reused) since the slot was read */
	if (rc)
		return rc;
	if (kv_get64(kv->obj) != kv_m_ver(m))
		return -EAGAIN;
	if (memcmp(kv->obj + KV_ITEM_HDR, key, klen))
		return 0;
	*res = emit(o, kv->obj + KV_ITEM_HDR + kl, vl, kv_m_ver(m));
	return 1;
}

/* Look through n slots at base, stride apart. 1 with *res when found. */
static int scan(struct farm_kv *kv, const uint8_t *base, size_t stride, uint32_t n, const void *key,
		uint32_t klen, uint64_t h, const struct kv_out *o, int *res)
{
	for (uint32_t i = 0; i < n; i++) {
		const uint8_t *s = base + i * stride;
		uint64_t m = kv_get64(s);
		uint32_t kl = kv_m_klen(m);

		if (kl == 0)
			continue;
		if (kl == KV_KLEN_OOL) {
			int rc = ool(kv, s, key, klen, h, o, res);
			if (rc)
				return rc;
		} else if (kl == klen && !memcmp(s + 8, key, klen)) {
			uint32_t vl = kv_m_vlen(m);
			if (vl > FARM_KV_INLINE_VAL)
				return -EAGAIN;
			*res = emit(o, s + 8 + FARM_KV_INLINE_KEY, vl, kv_m_ver(m));
			return 1;
		}
	}
	return 0;
}

static int in_overflow(struct farm_kv *kv, farm_addr_t seg, uint64_t sver, const void *key,
		       uint32_t klen, uint64_t h, const struct kv_out *o)
{
	uint64_t tver, hdr;
	int rc, res = 0;

	kv->st.get_reads++;
	if ((rc = kv__read_lines(kv, seg, KV_SLOTS, 1, kv->nb, &tver)))
		return rc;
	if (tver != sver)
		return -EAGAIN;
	farm_addr_t ovf = kv_get64(kv->nb + 8);
	uint32_t cap = kv_get32(kv->nb + 16);
	if (!ovf)
		return -ENOENT;
	if (cap == 0 || cap > KV_OVF_MAX)
		return -EAGAIN;
	kv->st.get_reads++;
	rc = farm_read(kv->f, ovf, kv->ovf, cap * KV_SLOT, NULL);
	if (rc == -EINVAL || rc == -EFBIG)
		return -EAGAIN;
	if (rc)
		return rc;
	rc = scan(kv, kv->ovf, KV_SLOT, cap, key, klen, h, o, &res);
	if (rc < 0)
		return rc;
	/* The overflow object belongs with the neighbourhood only if the
	 * segment did not change meanwhile. */
	kv->st.get_reads++;
	int vrc = kv__read_version(kv, seg, &hdr);
	if (vrc)
		return vrc;
	if (farm_hdr_locked(hdr) || farm_hdr_version(hdr) != sver)
		return -EAGAIN;
	return rc ? res : -ENOENT;
}

/* The neighbourhood of segment `seg` (entry depth d) read at version sver
 * into `lines` (KV_H raw lines). -EAGAIN: look again. */
static int in_lines(struct farm_kv *kv, const uint8_t *lines, farm_addr_t seg, uint32_t d,
		    uint64_t sver, const void *key, uint32_t klen, uint64_t h,
		    const struct kv_out *o)
{
	uint64_t m0 = kv_get64(lines + 8);
	int rc, res = 0;

	if (d < kv->g0 || kv_m_rdepth(m0) != d - kv->g0) {
		if ((rc = kv__dir_refresh(kv, h)))
			return rc;
		return -EAGAIN;
	}
	rc = scan(kv, lines + 8, FARM_LINE, KV_H, key, klen, h, o, &res);
	if (rc > 0)
		return res;
	if (rc < 0)
		return rc;
	if (m0 & KV_META_OVF)
		return in_overflow(kv, seg, sver, key, klen, h, o);
	return -ENOENT;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int lookup(struct farm_kv *kv, const void *key, uint32_t klen, uint64_t h,
		  const struct kv_out *o)
{
	uint64_t deadline = 0;
	int rc = -EAGAIN;

	for (int t = 0;; t++) {
		uint64_t e = kv__dir_entry(kv, h), sver;
		farm_addr_t seg = kv_e_addr(e);

		if (t) {
			/* Torn, locked, moved: look again, for a while. A change
			 * being committed may wait for this very node (a backup),
			 * so serve after the first few tries. */
			uint64_t now = now_ns();
			if (!deadline)
				deadline = now + KV_LOOKUP_GIVEUP_NS;
			else if (now >= deadline)
				break;
			if (t >= KV_LOOKUP_SPIN)
				farm_poll(kv->f);
			kv->st.get_retries++;
		}
		kv->st.get_reads++;
		rc = kv__read_lines(kv, seg, kv__home(h), KV_H, kv->nb, &sver);
		if (rc == -EINVAL || rc == -EFBIG || rc == -ENOENT || rc == -ERANGE) {
			/* Not a segment: a directory entry from a bad pass. */
			if ((rc = kv__dir_load(kv)))
				return rc;
			rc = -EAGAIN;
			continue;
		}
		if (rc == -EAGAIN) /* locked past farm's patience: a slow commit */
			continue;
		if (rc)
			return rc;
		rc = in_lines(kv, kv->nb, seg, kv_e_depth(e), sver, key, klen, h, o);
		if (rc != -EAGAIN)
			break;
	}
	if (rc == 0)
		kv->st.get_hits++;
	return rc;
}

int farm_kv_get(struct farm_kv *kv, const void *key, size_t klen, void *val, size_t cap,
		size_t *vlen, uint64_t *ver)
{
	struct kv_out o = {val, cap, vlen, ver};
	int rc;

	if (!kv || (!val && cap))
		return -EINVAL;
	if ((rc = kv__check_key(key, klen)))
		return rc;
	kv->st.gets++;
	return lookup(kv, key, (uint32_t)klen, kv__hash(kv, key, klen), &o);
}

int farm_kv_mget(struct farm_kv *kv, struct farm_kv_item *items, size_t n)
{
	farm_addr_t addrs[KV_MGET_BATCH];
	uint32_t homes[KV_MGET_BATCH], idx[KV_MGET_BATCH];
	uint64_t hs[KV_MGET_BATCH], es[KV_MGET_BATCH];
	int rcs[KV_MGET_BATCH];
	int found = 0, rc;

	if (!kv || (!items && n))
		return -EINVAL;
	for (size_t base = 0; base < n; base += KV_MGET_BATCH) {
		size_t end = n - base < KV_MGET_BATCH ? n : base + KV_MGET_BATCH;
		unsigned m = 0;

		for (size_t i = base; i < end; i++) {
			struct farm_kv_item *it = &items[i];
			it->vlen = 0;
			it->ver = 0;
			kv->st.gets++;
			if ((it->rc = kv__check_key(it->key, it->klen)))
				continue;
			if (!it->val && it->cap) {
				it->rc = -EINVAL;
				continue;
			}
			hs[m] = kv__hash(kv, it->key, it->klen);
			es[m] = kv__dir_entry(kv, hs[m]);
			addrs[m] = kv_e_addr(es[m]);
			homes[m] = kv__home(hs[m]);
			idx[m++] = (uint32_t)i;
		}
		if (m == 0)
			continue;
		kv->st.get_reads += m;
		if ((rc = kv__read_batch(kv, addrs, homes, m, rcs)))
			return rc;
		for (unsigned j = 0; j < m; j++) {
			struct farm_kv_item *it = &items[idx[j]];
			struct kv_out o = {it->val, it->cap, &it->vlen, &it->ver};
			int r = rcs[j];

			if (r == 0)
				r = kv__nb_check(kv, j, homes[j]);
			if (r == 0 || r == 1)
				r = in_lines(kv, kv->batch[j].lines, addrs[j], kv_e_depth(es[j]),
					     farm_hdr_version(kv->batch[j].h1), it->key,
					     (uint32_t)it->klen, hs[j], &o);
			if (r == -EAGAIN || r == -EINVAL || r == -EFBIG) {
				/* Torn, moved or stale: the one-key path sorts it out. */
				kv->st.get_retries++;
				r = lookup(kv, it->key, (uint32_t)it->klen, hs[j], &o);
			} else if (r == 0) {
				kv->st.get_hits++;
			}
			it->rc = r;
			if (r == 0)
				found++;
		}
	}
	return found;
}
