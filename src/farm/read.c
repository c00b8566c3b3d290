/*
 * read.c - farm_read and farm_obj_size: lock-free consistent reads, the hot
 * path of the whole system.
 *
 * Local objects (this node is the region's primary) are read in place with
 * the seqlock of object.h. Remote ones with one batch of one-sided READs on
 * the primary's channel, posted back to back:
 *
 *   1. the primary's node page config id (8 bytes)  -- the fence
 *   2. the object's header word (8 bytes)           -- h1
 *   3. the object's first farm_obj_lines(len) lines -- the copy
 *   4. the object's header word again (8 bytes)     -- h2
 *
 * An rdma channel executes operations in the order they were posted (on shm
 * the initiator does them before the post returns; served NICs run them in
 * arrival order on a reliable, ordered channel), so the copy is bracketed by
 * h1 and h2 exactly as a local seqlock read is. farm_obj_check() accepts it
 * when h1 == h2, unlocked, allocated, and every line carries the version;
 * otherwise the batch is retried, a bounded number of times (-EAGAIN).
 *
 * Nothing here allocates, locks or enters the kernel on shm: the snapshot
 * buffer and the words live in the node, the completions on the stack.
 */
#include <errno.h>
#include <string.h>

#include "node.h"

#define READ_SPIN 32u                       /* local attempts between polls */
#define READ_BATCHES 4u                     /* remote attempts between polls */
#define READ_GIVEUP_NS (200ull * 1000000ull) /* locked or torn this long: -EAGAIN */
#define READ_WAIT_NS (12ull * 1000000000ull) /* above rdma's own timeout */

int farm__check_addr(const struct farm *f, farm_addr_t addr, uint32_t len)
{
	uint32_t region = FARM_REGION(addr), off = FARM_OFFSET(addr);

	if (!farm__serving(f))
		return -ESTALE; /* lease lapsed: maybe removed, never serve stale data */
	if (region >= f->map.nregions)
		return -ENOENT;
	if (!f->regions[region].known)
		return -EAGAIN; /* a new primary whose key is not learnt yet */
	if (off >= f->cfg.region_size)
		return -ERANGE;
	if (off < FARM_LINE || off % FARM_LINE)
		return -EINVAL;
	if (len > FARM_OBJ_MAX ||
	    (uint64_t)off + (uint64_t)farm_obj_lines(len) * FARM_LINE > f->cfg.region_size)
		return -EFBIG;
	return 0;
}

/* Post the batch and reap its n completions. 0 or the first error. */
static int batch(struct farm *f, const struct farm_region *r, uint32_t off, uint32_t bytes,
		 bool header_only)
{
	struct unet_rdma_comp c[4];
	const struct {
		uint64_t key, off;
		void *dst;
		uint32_t len;
	} op[4] = {
		{r->page_key, FARM_PAGE_CONFIG_OFF, &f->rd_cfg, 8},
		{r->key, off, &f->rd_h1, 8},
		{r->key, off, f->rimg, bytes},
		{r->key, off, &f->rd_h2, 8},
	};
	unsigned want = header_only ? 2 : 4, got = 0, posted;
	int rc = 0, st = 0;

	for (posted = 0; posted < want; posted++) {
		rc = unet_rdma_read(f->rdma, (unsigned)r->chan, op[posted].key, op[posted].off,
				    op[posted].dst, op[posted].len, posted);
		if (rc < 0)
			break;
	}
	if (rc < 0) {
		/* Still reap what was posted: no completion outlives this call. */
		st = rc == -ENOTCONN ? -ECONNRESET : rc;
		want = posted;
	}
	uint64_t deadline = 0;
	while (got < want) {
		int n = unet_rdma_poll(f->rdma, c, want - got);
		if (n < 0)
			return n;
		for (int i = 0; i < n; i++)
			if (c[i].status && !st)
				st = c[i].status;
		got += (unsigned)n;
		if (n == 0) {
			/* Served NIC: the primary answers through its loop. */
			uint64_t now = farm__now_ns();
			if (!deadline)
				deadline = now + READ_WAIT_NS;
			else if (now >= deadline)
				return -ETIMEDOUT;
			unet_msg_idle(f->mep, 1);
		}
	}
	return st;
}

static int read_remote(struct farm *f, const struct farm_region *r, uint32_t off, void *buf,
		       uint32_t len, uint64_t *version)
{
	uint32_t bytes = farm_obj_lines(len) * FARM_LINE;
	int rc = -EAGAIN;

	for (unsigned t = 0; t < READ_BATCHES; t++) {
		if (t)
			f->st.read_retries++;
		rc = batch(f, r, off, bytes, false);
		if (rc == -EACCES)
			return -ESTALE; /* the primary revoked the region's key */
		if (rc)
			return rc;
		if (farm_fence_read(f->config_id, f->rd_cfg)) {
			f->st.stale_refused++;
			return -ESTALE;
		}
		rc = farm_obj_check(f->rimg, f->rd_h1, f->rd_h2, buf, len);
		if (rc != -EAGAIN) {
			if (rc == 0 && version)
				*version = farm_hdr_version(f->rd_h1);
			return rc;
		}
		farm_cpu_relax();
	}
	return rc;
}

int farm_read(struct farm *f, farm_addr_t addr, void *buf, uint32_t len, uint64_t *version)
{
	const struct farm_region *r;
	uint64_t deadline = 0;
	int rc;

	if (!f || (!buf && len))
		return -EINVAL;
	if ((rc = farm__check_addr(f, addr, len)))
		return rc;
	r = &f->regions[FARM_REGION(addr)];
	if (r->local)
		f->st.reads_local++;
	else
		f->st.reads_remote++;
	for (;;) {
		if (r->local)
			rc = farm_obj_read_local(r->local + FARM_OFFSET(addr), buf, len, version,
						 READ_SPIN, &f->st.read_retries);
		else
			rc = read_remote(f, r, FARM_OFFSET(addr), buf, len, version);
		if (rc != -EAGAIN)
			return rc;
		/* Locked for a while: the writer waits for its backups, and we
		 * may be the primary that collects their acks, or a backup that
		 * must store the update. Make progress, up to a bound. */
		uint64_t now = farm__now_ns();
		if (!deadline)
			deadline = now + READ_GIVEUP_NS;
		else if (now >= deadline || farm__change_pending(f))
			return -EAGAIN; /* (a configuration to adopt: maybe the
					   lock's holder is gone) */
		f->st.read_retries++;
		farm_poll(f);
	}
}

int farm_obj_size(struct farm *f, farm_addr_t addr, uint32_t *size)
{
	const struct farm_region *r;
	uint64_t h;
	int rc;

	if (!f || !size)
		return -EINVAL;
	if ((rc = farm__check_addr(f, addr, 0)))
		return rc;
	r = &f->regions[FARM_REGION(addr)];
	if (r->local) {
		h = farm_word_load(r->local + FARM_OFFSET(addr));
	} else {
		rc = batch(f, r, FARM_OFFSET(addr), 0, true);
		if (rc == -EACCES)
			return -ESTALE;
		if (rc)
			return rc;
		if (farm_fence_read(f->config_id, f->rd_cfg)) {
			f->st.stale_refused++;
			return -ESTALE;
		}
		h = f->rd_h1;
	}
	if (!farm_hdr_alloc(h))
		return -EINVAL;
	*size = farm_hdr_size(h); /* a writer never changes the size: locked is fine */
	return 0;
}
