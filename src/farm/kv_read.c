/*
 * kv_read.c - the one-sided reads of the key-value store: a consistent read
 * of a run of lines in the middle of an object (a segment's neighbourhood),
 * and a batch of them for multi-get.
 *
 * farm_read reads a prefix of an object; a lookup wants lines [home,
 * home+KV_H) of a segment and nothing else, as ONE one-sided read. The
 * protocol is farm's own (object.h, read.c): on the primary's channel, one
 * batch of READs posted back to back -- the primary's configuration id (the
 * fence), the object's header word (h1), the lines, the header again (h2)
 * -- accepted when h1 == h2, unlocked, allocated, the lines lie inside the
 * object, and every line's word carries h1's version (line 0's word is the
 * header itself). A local segment (this node is the primary) is read in
 * place with the same checks, seqlock-style.
 *
 * No allocation, no lock; on shm no system call (the READs are memcpys the
 * initiator performs, reaped from the completion queue).
 */
#include <errno.h>

#include "kv_int.h"
#include "node.h"

#define KV_SPIN	     32u
#define KV_BATCHES   4u
#define KV_GIVEUP_NS (200ull * 1000000ull)
#define KV_WAIT_NS   (12ull * 1000000000ull)

static int check_lines(uint64_t h1, uint64_t h2, const uint8_t *lines, uint32_t first, uint32_t n)
{
	uint64_t ver = farm_hdr_version(h1);

	if (farm_hdr_locked(h1) || h1 != h2)
		return -EAGAIN;
	if (!farm_hdr_alloc(h1))
		return -EINVAL;
	if (first + n > farm_obj_lines(farm_hdr_size(h1)))
		return -EFBIG;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t w = kv_get64(lines + (size_t)i * FARM_LINE);
		if (w != (first + i == 0 ? h1 : ver))
			return -EAGAIN;
	}
	return 0;
}

static int read_local(const uint8_t *obj, uint32_t first, uint32_t n, uint8_t *lines, uint64_t *ver)
{
	for (unsigned t = 0; t < KV_SPIN; t++) {
		uint64_t h1 = farm_word_load(obj), h2;
		int rc;

		if (!farm_hdr_alloc(h1))
			return -EINVAL;
		if (farm_hdr_locked(h1)) {
			farm_cpu_relax();
			continue;
		}
		if (first + n > farm_obj_lines(farm_hdr_size(h1)))
			return -EFBIG;
		memcpy(lines, obj + (size_t)first * FARM_LINE, (size_t)n * FARM_LINE);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		h2 = __atomic_load_n((const uint64_t *)obj, __ATOMIC_RELAXED);
		rc = check_lines(h1, h2, lines, first, n);
		if (rc != -EAGAIN) {
			*ver = farm_hdr_version(h1);
			return rc;
		}
	}
	return -EAGAIN;
}

/* Reap `want` completions; the status of each goes to st[wr_id >> 2]. */
static int reap(struct farm *f, unsigned want, int *st)
{
	struct unet_rdma_comp c[16];
	uint64_t deadline = 0;
	unsigned got = 0;

	while (got < want) {
		unsigned max = want - got < 16 ? want - got : 16;
		int n = unet_rdma_poll(f->rdma, c, max);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			if (c[i].status && !st[c[i].wr_id >> 2])
				st[c[i].wr_id >> 2] =
				    c[i].status == -EACCES ? -ESTALE : c[i].status;
		got += (unsigned)n;
		if (n == 0) {
			uint64_t now = farm__now_ns();
			if (!deadline)
				deadline = now + KV_WAIT_NS;
			else if (now >= deadline)
				return -ETIMEDOUT;
			unet_msg_idle(f->mep, 1);
		}
	}
	return 0;
}

/* Post the 4 READs (or the first 2: header only) of read `i`. Returns how
 * many were posted; *err the posting error. */
static unsigned post(struct farm *f, const struct farm_region *r, uint32_t off, uint32_t first,
		     uint32_t n, uint64_t *cfg, uint64_t *h1, uint8_t *lines, uint64_t *h2,
		     unsigned i, int *err)
{
	const struct {
		uint64_t key, off;
		void *dst;
		uint32_t len;
	} op[4] = {
	    {r->page_key, FARM_PAGE_CONFIG_OFF, cfg, 8},
	    {r->key, off, h1, 8},
	    {r->key, off + (uint64_t)first * FARM_LINE, lines, n * FARM_LINE},
	    {r->key, off, h2, 8},
	};
	unsigned want = lines ? 4 : 2, k;

	for (k = 0; k < want; k++) {
		int rc = unet_rdma_read(f->rdma, (unsigned)r->chan, op[k].key, op[k].off, op[k].dst,
					op[k].len, ((uint64_t)i << 2) | k);
		if (rc < 0) {
			*err = rc == -ENOTCONN ? -ECONNRESET : rc;
			break;
		}
	}
	return k;
}

static int read_remote(struct farm_kv *kv, const struct farm_region *r, uint32_t off,
		       uint32_t first, uint32_t n, uint8_t *lines, uint64_t *ver)
{
	struct farm *f = kv->f;
	int rc = -EAGAIN;

	for (unsigned t = 0; t < KV_BATCHES; t++) {
		int st = 0, perr = 0;
		unsigned posted =
		    post(f, r, off, first, n, &kv->rd_cfg, &kv->rd_h1, lines, &kv->rd_h2, 0, &perr);
		if ((rc = reap(f, posted, &st)))
			return rc;
		if (perr)
			return perr;
		if (st)
			return st;
		if (farm_fence_read(f->config_id, kv->rd_cfg)) {
			f->st.stale_refused++;
			return -ESTALE;
		}
		rc = check_lines(kv->rd_h1, kv->rd_h2, lines, first, n);
		if (rc != -EAGAIN) {
			*ver = farm_hdr_version(kv->rd_h1);
			return rc;
		}
		f->st.read_retries++;
		farm_cpu_relax();
	}
	return rc;
}

static int region_of(struct farm *f, farm_addr_t a, const struct farm_region **r)
{
	int rc = farm__check_addr(f, a, 0);

	if (rc)
		return rc;
	*r = &f->regions[FARM_REGION(a)];
	return 0;
}

int kv__read_lines(struct farm_kv *kv, farm_addr_t a, uint32_t first, uint32_t n, uint8_t *lines,
		   uint64_t *ver)
{
	struct farm *f = kv->f;
	const struct farm_region *r;
	uint64_t deadline = 0;
	int rc;

	if ((rc = region_of(f, a, &r)))
		return rc;
	if ((uint64_t)FARM_OFFSET(a) + (uint64_t)(first + n) * FARM_LINE > f->cfg.region_size)
		return -EFBIG;
	for (;;) {
		if (r->local) {
			f->st.reads_local++;
			rc = read_local(r->local + FARM_OFFSET(a), first, n, lines, ver);
		} else {
			f->st.reads_remote++;
			rc = read_remote(kv, r, FARM_OFFSET(a), first, n, lines, ver);
		}
		if (rc != -EAGAIN)
			return rc;
		/* Locked for a while: the committing writer may wait for this
		 * very node (a backup, or the primary collecting acks). */
		uint64_t now = farm__now_ns();
		if (!deadline)
			deadline = now + KV_GIVEUP_NS;
		else if (now >= deadline)
			return -EAGAIN;
		f->st.read_retries++;
		farm_poll(f);
	}
}

int kv__read_version(struct farm_kv *kv, farm_addr_t a, uint64_t *hdr)
{
	struct farm *f = kv->f;
	const struct farm_region *r;
	int rc, st = 0, perr = 0;

	if ((rc = region_of(f, a, &r)))
		return rc;
	if (r->local) {
		*hdr = farm_word_load(r->local + FARM_OFFSET(a));
		return 0;
	}
	unsigned posted =
	    post(f, r, FARM_OFFSET(a), 0, 0, &kv->rd_cfg, &kv->rd_h1, NULL, NULL, 0, &perr);
	if ((rc = reap(f, posted, &st)))
		return rc;
	if (perr || st)
		return perr ? perr : st;
	if (farm_fence_read(f->config_id, kv->rd_cfg)) {
		f->st.stale_refused++;
		return -ESTALE;
	}
	*hdr = kv->rd_h1;
	return 0;
}

int kv__read_batch(struct farm_kv *kv, const farm_addr_t *addrs, const uint32_t *homes, unsigned n,
		   int *rcs)
{
	struct farm *f = kv->f;
	unsigned posted = 0;
	int rc;

	for (unsigned i = 0; i < n; i++) {
		const struct farm_region *r;
		struct kv_nb *b = &kv->batch[i];

		rcs[i] = region_of(f, addrs[i], &r);
		if (rcs[i])
			continue;
		if (r->local) {
			/* Read in place now; nb_check finds it already checked. */
			uint64_t ver = 0;
			f->st.reads_local++;
			rcs[i] = read_local(r->local + FARM_OFFSET(addrs[i]), homes[i], KV_H,
					    b->lines, &ver);
			b->cfg = f->config_id;
			b->h1 = b->h2 = rcs[i] ? 0 : FARM_OBJ_ALLOC | ver;
			if (rcs[i] == 0)
				rcs[i] = 1; /* "local, checked" */
			continue;
		}
		f->st.reads_remote++;
		posted += post(f, r, FARM_OFFSET(addrs[i]), homes[i], KV_H, &b->cfg, &b->h1,
			       b->lines, &b->h2, i, &rcs[i]);
	}
	if ((rc = reap(f, posted, rcs)))
		return rc;
	return 0;
}

int kv__nb_check(struct farm_kv *kv, unsigned i, uint32_t home)
{
	struct kv_nb *b = &kv->batch[i];

	if (farm_fence_read(kv->f->config_id, b->cfg)) {
		kv->f->st.stale_refused++;
		return -ESTALE;
	}
	return check_lines(b->h1, b->h2, b->lines, home, KV_H);
}
