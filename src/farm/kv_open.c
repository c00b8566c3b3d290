/*
 * kv_open.c - finding a table by name and creating it: the catalog, the
 * table's first objects, and the handle.
 *
 * The catalog is one object of KV_CAT_ENTRIES (name, header address)
 * lines; its address is word FARM_ROOT_KV of the cluster's root object
 * (farm.h), which the first opener that wants to create sets in a
 * transaction. A new table's objects are allocated and written before
 * they are published (no one can see them), and then one transaction
 * adds the catalog entry, so two nodes creating one name at once end with
 * one table: the loser's commit fails, it frees what it built and opens
 * the winner's.
 *
 * A fresh table: a header, 2^g0 empty segments (a zeroed object is an
 * empty segment of depth g0: depths are stored relative to g0), and its
 * directory chunks. g0 comes from the capacity asked for, so a table that
 * is known to be big does not start by splitting thousands of times.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/random.h>
#include <time.h>

#include "kv_int.h"

#define KV_KEYS_PER_SEG 20u /* planned fill of a fresh segment (39 slots) */
#define KV_MAX_G0	16u

farm_addr_t kv__near(struct farm_kv *kv)
{
	uint32_t n = farm_get_config(kv->f)->regions;

	kv->near_rr = (kv->near_rr + 1) % (n ? n : 1);
	return FARM_ADDR(kv->near_rr, FARM_LINE);
}

static int check_name(const char *name)
{
	size_t n;

	if (!name)
		return -EINVAL;
	n = strlen(name);
	if (n == 0 || n > FARM_KV_NAME_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)name[i] <= ' ' || (unsigned char)name[i] == 0x7f)
			return -EINVAL; /* names travel in space-separated commands */
	return 0;
}

static int tx_end(struct farm_kv *kv, struct farm_tx *tx)
{
	struct farm_tx_result res;
	int rc = farm_tx_commit(tx, &res);

	if (rc == 0)
		kv->st.tx_commits++;
	else
		kv->st.tx_aborts++;
	return rc;
}

/* The catalog's address; created when `create`. -ENOENT: none yet. */
static int catalog(struct farm_kv *kv, bool create, farm_addr_t *out)
{
	uint64_t root[FARM_ROOT_SIZE / 8];
	int rc;

	for (int attempt = 0; attempt < 64; attempt++) {
		struct farm_tx *tx;
		farm_addr_t c;

		if ((rc = farm_read(kv->f, farm_root(kv->f), root, sizeof(root), NULL)))
			return rc;
		if (root[FARM_ROOT_KV]) {
			*out = root[FARM_ROOT_KV];
			return 0;
		}
		if (!create)
			return -ENOENT;
		if ((rc = farm_tx_begin(kv->f, &tx)))
			return rc;
		rc = farm_tx_read(tx, farm_root(kv->f), root, sizeof(root));
		if (rc == 0 && root[FARM_ROOT_KV]) { /* someone was first: use theirs */
			farm_tx_abort(tx);
			*out = root[FARM_ROOT_KV];
			return 0;
		}
		if (rc == 0)
			rc = farm_tx_alloc(tx, KV_CAT_BYTES, farm_root(kv->f), &c);
		if (rc == 0) {
			root[FARM_ROOT_KV] = c;
			rc = farm_tx_write(tx, farm_root(kv->f), root, sizeof(root));
		}
		if (rc) {
			farm_tx_abort(tx);
			if (rc != -EAGAIN)
				return rc;
			continue;
		}
		rc = tx_end(kv, tx);
		if (rc == 0) {
			*out = c;
			return 0;
		}
		if (rc != -EAGAIN)
			return rc;
		farm_poll(kv->f);
	}
	return -EAGAIN;
}

static int lookup(struct farm_kv *kv, farm_addr_t cat, const char *name, farm_addr_t *hdr)
{
	const struct kv_cat_ent *e = (const struct kv_cat_ent *)kv->obj;
	int rc = farm_read(kv->f, cat, kv->obj, KV_CAT_BYTES, NULL);

	if (rc)
		return rc;
	for (uint32_t i = 0; i < KV_CAT_ENTRIES; i++)
		if (e[i].hdr && !strncmp(e[i].name, name, sizeof(e[i].name))) {
			*hdr = e[i].hdr;
			return 0;
		}
	return -ENOENT;
}

static uint32_t g0_for(uint64_t capacity)
{
	uint32_t g = 0;

	if (capacity == 0)
		return 2;
	while (g < KV_MAX_G0 && ((uint64_t)KV_KEYS_PER_SEG << g) < capacity)
		g++;
	return g;
}

static uint64_t new_seed(void)
{
	uint64_t s = 0;
	struct timespec ts;

	if (getrandom(&s, sizeof(s), GRND_NONBLOCK) != sizeof(s)) {
		clock_gettime(CLOCK_REALTIME, &ts);
		s = (uint64_t)ts.tv_nsec * 0x9e3779b97f4a7c15ull ^ (uint64_t)ts.tv_sec;
	}
	return s | 1;
}

/* Everything a fresh table is made of, not yet published. */
struct built {
	farm_addr_t hdr, clist;
	farm_addr_t *segs, *chunks;
	uint32_t nsegs, nchunks;
};

static void unbuild(struct farm_kv *kv, struct built *b)
{
	for (uint32_t i = 0; b->segs && i < b->nsegs; i++)
		if (b->segs[i])
			farm_free(kv->f, b->segs[i]);
	for (uint32_t i = 0; b->chunks && i < b->nchunks; i++)
		if (b->chunks[i])
			farm_free(kv->f, b->chunks[i]);
	if (b->clist)
		farm_free(kv->f, b->clist);
	if (b->hdr)
		farm_free(kv->f, b->hdr);
	free(b->segs);
	free(b->chunks);
	memset(b, 0, sizeof(*b));
}

static int build(struct farm_kv *kv, uint64_t capacity, struct built *b)
{
	uint32_t g0 = g0_for(capacity), per;
	struct kv_hdr0 h0;
	int rc;

	memset(b, 0, sizeof(*b));
	b->nsegs = 1u << g0;
	b->nchunks = b->nsegs <= KV_CHUNK ? 1 : b->nsegs / KV_CHUNK;
	per = b->nsegs <= KV_CHUNK ? b->nsegs : KV_CHUNK;
	b->segs = calloc(b->nsegs, sizeof(*b->segs));
	b->chunks = calloc(b->nchunks, sizeof(*b->chunks));
	if (!b->segs || !b->chunks) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = farm_alloc(kv->f, KV_HDR_BYTES, kv__near(kv), &b->hdr)))
		goto fail;
	for (uint32_t i = 0; i < b->nsegs; i++)
		if ((rc = farm_alloc(kv->f, KV_SEG_BYTES, kv__near(kv), &b->segs[i])))
			goto fail;
	uint64_t *ent = (uint64_t *)kv->chunk;
	for (uint32_t c = 0; c < b->nchunks; c++) {
		if ((rc = farm_alloc(kv->f, per * 8u, kv__near(kv), &b->chunks[c])))
			goto fail;
		for (uint32_t i = 0; i < per; i++)
			ent[i] = kv_e_make(b->segs[c * per + i], g0);
		if ((rc = farm_write(kv->f, b->chunks[c], ent, per * 8u)))
			goto fail;
	}
	if ((rc = farm_alloc(kv->f, b->nchunks * 8u, b->hdr, &b->clist)) ||
	    (rc = farm_write(kv->f, b->clist, b->chunks, b->nchunks * 8u)))
		goto fail;
	memset(&h0, 0, sizeof(h0));
	h0.magic = KV_HDR_MAGIC;
	h0.g = h0.g0 = g0;
	h0.seed = new_seed();
	h0.vnext = 1;
	h0.nchunks = b->nchunks;
	h0.clist = b->clist;
	if ((rc = farm_write(kv->f, b->hdr, &h0, sizeof(h0))))
		goto fail;
	return 0;
fail:
	unbuild(kv, b);
	return rc;
}

/* Add (name -> b->hdr) to the catalog. -EEXIST: the name was taken. */
static int publish(struct farm_kv *kv, farm_addr_t cat, const char *name, struct built *b)
{
	struct kv_cat_ent *e = (struct kv_cat_ent *)kv->obj;
	int rc;

	for (int attempt = 0; attempt < 64; attempt++) {
		struct farm_tx *tx;
		int free_at = -1, found = 0;

		if ((rc = farm_tx_begin(kv->f, &tx)))
			return rc;
		if ((rc = farm_tx_read(tx, cat, kv->obj, KV_CAT_BYTES))) {
			farm_tx_abort(tx);
			if (rc == -EAGAIN)
				continue;
			return rc;
		}
		for (uint32_t i = 0; i < KV_CAT_ENTRIES; i++) {
			if (e[i].hdr && !strncmp(e[i].name, name, sizeof(e[i].name)))
				found = 1;
			if (!e[i].hdr && free_at < 0)
				free_at = (int)i;
		}
		if (found || free_at < 0) {
			farm_tx_abort(tx);
			return found ? -EEXIST : -ENOSPC;
		}
		memset(&e[free_at], 0, sizeof(e[free_at]));
		memcpy(e[free_at].name, name, strlen(name));
		e[free_at].hdr = b->hdr;
		rc = farm_tx_write(tx, cat, kv->obj, (uint32_t)(free_at + 1) * 56u);
		if (rc) {
			farm_tx_abort(tx);
			return rc;
		}
		rc = tx_end(kv, tx);
		if (rc != -EAGAIN)
			return rc;
		farm_poll(kv->f);
	}
	return -EAGAIN;
}

static int find_or_create(struct farm_kv *kv, const char *name, const struct farm_kv_opts *o)
{
	bool create = o && (o->flags & FARM_KV_CREATE);
	farm_addr_t cat = FARM_NULL;
	struct built b;
	int rc;

	if ((rc = catalog(kv, create, &cat)))
		return rc;
	rc = lookup(kv, cat, name, &kv->hdr);
	if (rc != -ENOENT || !create)
		return rc;
	if ((rc = build(kv, o->capacity, &b)))
		return rc;
	rc = publish(kv, cat, name, &b);
	if (rc == 0) {
		kv->hdr = b.hdr;
		free(b.segs);
		free(b.chunks);
		return 0;
	}
	unbuild(kv, &b);
	if (rc == -EEXIST) /* created meanwhile by another node */
		return lookup(kv, cat, name, &kv->hdr);
	return rc;
}

static void *alloc_lines(size_t bytes)
{
	size_t n = (bytes + FARM_LINE - 1) / FARM_LINE * FARM_LINE;
	void *p = aligned_alloc(FARM_LINE, n);

	if (p)
		memset(p, 0, n);
	return p;
}

void farm_kv_close(struct farm_kv *kv)
{
	if (!kv)
		return;
	free(kv->dir);
	free(kv->chunks);
	free(kv->nb);
	free(kv->obj);
	free(kv->seg);
	free(kv->seg0);
	free(kv->seg2);
	free(kv->ovf);
	free(kv->ovf2);
	free(kv->chunk);
	free(kv->batch);
	free(kv);
}

int farm_kv_open(struct farm *f, const char *name, const struct farm_kv_opts *opts,
		 struct farm_kv **out)
{
	struct farm_kv *kv;
	int rc;

	if (!f || !out)
		return -EINVAL;
	*out = NULL;
	if ((rc = check_name(name)))
		return rc;
	if (opts && (opts->flags & ~FARM_KV_CREATE))
		return -EINVAL;
	kv = calloc(1, sizeof(*kv));
	if (!kv)
		return -ENOMEM;
	kv->f = f;
	snprintf(kv->name, sizeof(kv->name), "%s", name);
	kv->hash = kv__hash_default;
	kv->near_rr = farm_self(f);
	kv->nb = alloc_lines(KV_H * FARM_LINE);
	kv->obj = alloc_lines(FARM_OBJ_MAX + FARM_LINE);
	kv->seg = alloc_lines(KV_SEG_BYTES);
	kv->seg0 = alloc_lines(KV_SEG_BYTES);
	kv->seg2 = alloc_lines(KV_SEG_BYTES);
	kv->ovf = alloc_lines(FARM_OBJ_MAX);
	kv->ovf2 = alloc_lines(FARM_OBJ_MAX);
	kv->chunk = alloc_lines(KV_CHUNK * 8u);
	kv->batch = alloc_lines(sizeof(*kv->batch) * KV_MGET_BATCH);
	if (!kv->nb || !kv->obj || !kv->seg || !kv->seg0 || !kv->seg2 || !kv->ovf || !kv->ovf2 ||
	    !kv->chunk || !kv->batch) {
		rc = -ENOMEM;
		goto fail;
	}
	if ((rc = find_or_create(kv, name, opts)))
		goto fail;
	if ((rc = kv__dir_load(kv)))
		goto fail;
	*out = kv;
	return 0;
fail:
	farm_kv_close(kv);
	return rc;
}

void farm_kv_get_stats(const struct farm_kv *kv, struct farm_kv_stats *st)
{
	if (!st)
		return;
	if (!kv) {
		memset(st, 0, sizeof(*st));
		return;
	}
	*st = kv->st;
}
