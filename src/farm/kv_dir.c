/*
 * kv_dir.c - the directory of a table (extendible hashing) and each
 * handle's cache of it.
 *
 * The directory is 2^g entries in chunk objects, whose addresses are in
 * the chunk list object the table header names. A handle keeps a private
 * copy and never reads the directory on the lookup path: a stale entry
 * shows up by itself, because every slot of a segment carries the
 * segment's depth and a split rewrites them all, so the read that used the
 * entry sees a depth its entry does not have. Then the handle re-reads the
 * one chunk that holds the entry (kv__dir_refresh), or everything when the
 * directory doubled meanwhile.
 *
 * A chunk read is bracketed by two reads of the header: doubling bumps
 * dgen there and frees the old chunks only after it committed, so an
 * unchanged dgen means the chunk read was not of a freed (or reused) object.
 *
 * Doubling copies the directory into new chunks and a new chunk list,
 * written before they are published (farm_write: nobody can see them
 * yet); then one transaction re-reads the header and points it at the new
 * list. Splits also write the header (nsplits), so a split that slipped in
 * between aborts the doubling and it starts over. Readers are never
 * stopped: until the swap they use the old chunks, which stay valid (a
 * doubling changes no entry's meaning).
 */
#include <errno.h>
#include <stdlib.h>

#include "kv_int.h"

static uint32_t chunk_entries(uint32_t g)
{
	uint64_t n = 1ull << g;
	return n < KV_CHUNK ? (uint32_t)n : KV_CHUNK;
}

static uint32_t nchunks_of(uint32_t g)
{
	uint64_t n = 1ull << g;
	return n <= KV_CHUNK ? 1 : (uint32_t)(n / KV_CHUNK);
}

static int read_line0(struct farm_kv *kv, struct kv_hdr0 *h0)
{
	int rc = farm_read(kv->f, kv->hdr, h0, sizeof(*h0), NULL);

	if (rc)
		return rc;
	if (h0->magic != KV_HDR_MAGIC || h0->g > KV_MAX_G || h0->g0 > h0->g ||
	    h0->nchunks != nchunks_of(h0->g) || !h0->clist)
		return -EPROTO;
	return 0;
}

/* Size the cache for depth g (allocation: only when the depth changed). */
static int cache_resize(struct farm_kv *kv, uint32_t g)
{
	if (kv->dir && kv->g == g)
		return 0;
	uint64_t *d = realloc(kv->dir, sizeof(*d) << g);
	if (!d)
		return -ENOMEM;
	kv->dir = d;
	farm_addr_t *c = realloc(kv->chunks, sizeof(*c) * nchunks_of(g));
	if (!c)
		return -ENOMEM;
	kv->chunks = c;
	return 0;
}

int kv__dir_load(struct farm_kv *kv)
{
	struct kv_hdr0 h0, again;
	int rc = -EAGAIN;

	for (int attempt = 0; attempt < 64; attempt++) {
		bool bad = false;

		if (attempt)
			farm_poll(kv->f);
		if ((rc = read_line0(kv, &h0)))
			return rc;
		uint32_t nc = h0.nchunks, per = chunk_entries(h0.g);
		if ((rc = cache_resize(kv, h0.g)))
			return rc;
		kv->g = h0.g;
		rc = farm_read(kv->f, h0.clist, kv->chunks, nc * 8u, NULL);
		if (rc == -EINVAL || rc == -EFBIG)
			bad = true; /* freed by a doubling that just committed */
		else if (rc)
			return rc;
		kv->nchunks = nc;
		kv->clist = h0.clist;
		for (uint32_t c = 0; c < nc && !bad; c++) {
			rc = farm_read(kv->f, kv->chunks[c], kv->dir + (size_t)c * per, per * 8u,
				       NULL);
			if (rc == -EINVAL || rc == -EFBIG || rc == -ENOENT || rc == -ERANGE)
				bad = true;
			else if (rc)
				return rc;
		}
		if (!bad) {
			if ((rc = read_line0(kv, &again)))
				return rc;
			if (again.dgen == h0.dgen) {
				kv->dgen = h0.dgen;
				kv->g0 = h0.g0;
				kv->seed = h0.seed;
				return 0;
			}
		}
		/* A doubling ran: the cache may mix two directories. Its depth
		 * must not look current until a clean pass. */
		kv->dgen = ~0ull;
		rc = -EAGAIN;
	}
	return rc;
}

int kv__dir_refresh(struct farm_kv *kv, uint64_t h)
{
	struct kv_hdr0 h0;
	int rc;

	kv->st.dir_refreshes++;
	if ((rc = read_line0(kv, &h0)))
		return rc;
	if (h0.dgen != kv->dgen || h0.g != kv->g)
		return kv__dir_load(kv);
	uint32_t per = chunk_entries(kv->g), c = kv__dir_index(h, kv->g) / per;
	rc = farm_read(kv->f, kv->chunks[c], kv->chunk, per * 8u, NULL);
	if (rc == -EINVAL || rc == -EFBIG)
		return kv__dir_load(kv);
	if (rc)
		return rc;
	struct kv_hdr0 again;
	if ((rc = read_line0(kv, &again)))
		return rc;
	if (again.dgen != kv->dgen)
		return kv__dir_load(kv);
	memcpy(kv->dir + (size_t)c * per, kv->chunk, per * 8u);
	return 0;
}

static void free_chunks(struct farm *f, const farm_addr_t *c, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		if (c[i] != FARM_NULL)
			farm_free(f, c[i]);
}

/* Write a new directory of depth g (entries `dir`) into fresh chunks. */
static int write_chunks(struct farm_kv *kv, const uint64_t *dir, uint32_t g, farm_addr_t *out)
{
	uint32_t nc = nchunks_of(g), per = chunk_entries(g);
	int rc = 0;

	memset(out, 0, sizeof(*out) * nc);
	for (uint32_t c = 0; c < nc && !rc; c++) {
		rc = farm_alloc(kv->f, per * 8u, kv__near(kv), &out[c]);
		if (!rc)
			rc = farm_write(kv->f, out[c], dir + (size_t)c * per, per * 8u);
	}
	if (rc)
		free_chunks(kv->f, out, nc);
	return rc;
}

int kv__dir_double(struct farm_kv *kv, uint32_t g)
{
	uint64_t *nd = NULL;
	farm_addr_t *nchunks = NULL, nlist = FARM_NULL;
	int rc = -EAGAIN;

	for (int attempt = 0; attempt < 32; attempt++) {
		struct kv_hdr0 h0, cur;
		struct farm_tx *tx;

		if (attempt)
			farm_poll(kv->f);
		if ((rc = kv__dir_load(kv)))
			break;
		if (kv->g != g) {
			rc = 0; /* someone else doubled it */
			break;
		}
		if (g + 1 > KV_MAX_G) {
			rc = -ENOSPC;
			break;
		}
		if ((rc = read_line0(kv, &h0)))
			break;
		if (h0.dgen != kv->dgen)
			continue;
		uint32_t ng = g + 1, nc = nchunks_of(ng);
		free(nd);
		free(nchunks);
		nd = malloc(sizeof(*nd) << ng);
		nchunks = malloc(sizeof(*nchunks) * nc);
		if (!nd || !nchunks) {
			rc = -ENOMEM;
			break;
		}
		for (uint64_t j = 0; j < (1ull << ng); j++)
			nd[j] = kv->dir[j >> 1];
		if ((rc = write_chunks(kv, nd, ng, nchunks)))
			break;
		rc = farm_alloc(kv->f, nc * 8u, kv->hdr, &nlist);
		if (rc == 0)
			rc = farm_write(kv->f, nlist, nchunks, nc * 8u);
		if (rc) {
			free_chunks(kv->f, nchunks, nc);
			free_chunks(kv->f, &nlist, 1);
			break;
		}

		if ((rc = farm_tx_begin(kv->f, &tx)) == 0) {
			rc = farm_tx_read(tx, kv->hdr, &cur, sizeof(cur));
			if (rc == 0 &&
			    (cur.g != h0.g || cur.dgen != h0.dgen || cur.nsplits != h0.nsplits))
				rc = -EAGAIN; /* a split slipped in: copy again */
			if (rc == 0) {
				cur.g = ng;
				cur.dgen++;
				cur.nchunks = nc;
				cur.clist = nlist;
				rc = farm_tx_write(tx, kv->hdr, &cur, sizeof(cur));
			}
			if (rc == 0) {
				struct farm_tx_result res;
				rc = farm_tx_commit(tx, &res);
				if (rc)
					kv->st.tx_aborts++;
			} else {
				farm_tx_abort(tx);
			}
		}
		if (rc) {
			free_chunks(kv->f, nchunks, nc);
			free_chunks(kv->f, &nlist, 1);
			if (rc == -EAGAIN)
				continue;
			break;
		}
		kv->st.tx_commits++;
		/* Published: the old list and chunks go (readers bracket chunk
		 * reads with dgen, so a late one notices), and the cache is the
		 * new directory. */
		free_chunks(kv->f, kv->chunks, kv->nchunks);
		free_chunks(kv->f, &kv->clist, 1);
		free(kv->dir);
		free(kv->chunks);
		kv->dir = nd;
		kv->chunks = nchunks;
		nd = NULL;
		nchunks = NULL;
		kv->g = ng;
		kv->nchunks = nc;
		kv->clist = nlist;
		kv->dgen = cur.dgen;
		rc = 0;
		break;
	}
	free(nd);
	free(nchunks);
	return rc;
}
