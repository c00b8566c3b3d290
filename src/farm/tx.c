/*
 * tx.c - FaRM transactions, the execution half (farm.h's contract; the
 * commit is tx_commit.c): the preallocated pool, one-sided reads that
 * record versions, writes buffered as whole-object images, allocation and
 * free inside a transaction, abort.
 *
 * Why whole images: a backup applies COMMIT-BACKUP records of several
 * coordinators lazily and in any order, keeping the newest version of each
 * object (log.h). That is only right if every record carries the whole
 * object, so the first write to an object reads it all (one batch of
 * one-sided READs, or a local copy) at a version that LOCK then checks:
 * a write never needs the primary's help to know the rest of the object.
 *
 * A transaction that reads an object twice and sees two versions, or whose
 * read finds the object locked for too long, or whose node loses a peer, is
 * doomed: the call returns -EAGAIN and farm_tx_commit aborts it with the
 * reason. Nothing here allocates: the pool, the images and the read and
 * write sets are sized at node start (FARM_TX_POOL transactions).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "recovery.h"
#include "tx.h"

/* ---- node start and stop --------------------------------------------------------- */

int farm__tx_init(struct farm *f, char *err, size_t errlen)
{
	struct farm_txs *t = calloc(1, sizeof(*t));
	/* Sized for the most replica slots any configuration can give a
	 * region: every data replica plus as many joiners (regionmap.h). */
	uint32_t k = 2 * f->map.kd;
	int rc;

	if (!t)
		return -ENOMEM;
	f->tx = t;
	if ((rc = farm__log_init(f, err, errlen)))
		return rc;
	t->k = k;
	t->pool = calloc(FARM_TX_POOL, sizeof(*t->pool));
	t->img_mem = malloc((size_t)FARM_TX_POOL * FARM_TX_MAX_BYTES);
	/* Records bound to other nodes in one phase: every image goes to one
	 * primary and k - 1 backups; plus pads and retractions. */
	t->stage_len = (size_t)(k > 2 ? k - 1 : 1) *
			   (FARM_TX_MAX_BYTES +
			    FARM_TX_MAX_WRITES * (sizeof(struct farm_logent) + 8 + 4) + 128) +
		       (size_t)4 * FARM_MAX_MEMBERS * sizeof(struct farm_logrec);
	t->stage = aligned_alloc(FARM_LINE, t->stage_len);
	if (!t->pool || !t->img_mem || !t->stage)
		return -ENOMEM;
	for (uint32_t i = 0; i < FARM_TX_POOL; i++) {
		struct farm_tx *tx = &t->pool[i];
		tx->magic = FARM_TX_MAGIC;
		tx->f = f;
		tx->idx = i;
		tx->img = t->img_mem + (size_t)i * FARM_TX_MAX_BYTES;
		tx->next_free = i + 1 < FARM_TX_POOL ? i + 1 : UINT32_MAX;
	}
	t->free_head = 0;
	t->free_tail = FARM_TX_POOL - 1;
	t->nfree = FARM_TX_POOL;
	for (uint32_t i = 0; i < FARM_TX_REQS; i++) {
		t->req[i].gen = 1;
		t->req[i].next_free = i + 1 < FARM_TX_REQS ? i + 1 : UINT32_MAX;
	}
	t->req_free = 0;
	farm__log_register(f);
	return 0;
}

void farm__tx_fini(struct farm *f)
{
	struct farm_txs *t = f->tx;

	if (!t)
		return;
	farm__rcv_fini(f);
	free(t->rlock);
	free(t->pool);
	free(t->img_mem);
	free(t->stage);
	free(t); /* the log region goes with the rdma endpoint */
	f->tx = NULL;
}

void farm__tx_set_hook(struct farm *f, farm_tx_hook fn, void *arg)
{
	if (f && f->tx) {
		f->tx->hook = fn;
		f->tx->hook_arg = arg;
	}
}

void farm__tx_get_stats(const struct farm *f, struct farm_txstats *st)
{
	if (f && f->tx && st)
		*st = f->tx->st;
}

/* ---- the pool ---------------------------------------------------------------------- */

/* FIFO, so a handle used after its end is not at once a live tx again. */
static struct farm_tx *pool_get(struct farm_txs *t)
{
	struct farm_tx *tx;

	if (t->free_head == UINT32_MAX)
		return NULL;
	tx = &t->pool[t->free_head];
	t->free_head = tx->next_free;
	if (t->free_head == UINT32_MAX)
		t->free_tail = UINT32_MAX;
	t->nfree--;
	return tx;
}

static void pool_put(struct farm_txs *t, struct farm_tx *tx)
{
	tx->state = FARM_TXS_FREE;
	tx->next_free = UINT32_MAX;
	if (t->free_tail == UINT32_MAX)
		t->free_head = tx->idx;
	else
		t->pool[t->free_tail].next_free = tx->idx;
	t->free_tail = tx->idx;
	t->nfree++;
}

static bool tx_ok(const struct farm_tx *tx)
{
	return tx && tx->magic == FARM_TX_MAGIC && tx->state == FARM_TXS_ACTIVE && tx->f &&
	       tx->f->tx && tx >= tx->f->tx->pool && tx < tx->f->tx->pool + FARM_TX_POOL;
}

int farm_tx_begin(struct farm *f, struct farm_tx **out)
{
	struct farm_txs *t;
	struct farm_tx *tx;

	if (!f || !out || !f->tx)
		return -EINVAL;
	*out = NULL;
	t = f->tx;
	/* A node that only runs local read-only transactions still answers
	 * its peers' doorbells and applies their records. */
	if ((++t->begins & 15) == 0)
		farm_poll(f);
	if (!(tx = pool_get(t)))
		return -EBUSY;
	tx->state = FARM_TXS_ACTIVE;
	tx->nrd = tx->nwr = tx->img_used = tx->nalloc = 0;
	tx->doom = FARM_ABORT_NONE;
	tx->id = (uint64_t)f->self << 48 | (++t->seq & ((1ull << 48) - 1));
	tx->config_id = f->config_id;
	*out = tx;
	return 0;
}

/* ---- execution ------------------------------------------------------------------- */

static struct farm_txw *find_w(struct farm_tx *tx, farm_addr_t a)
{
	for (uint32_t i = 0; i < tx->nwr; i++)
		if (tx->wr[i].addr == a)
			return &tx->wr[i];
	return NULL;
}

static struct farm_txr *find_r(struct farm_tx *tx, farm_addr_t a)
{
	for (uint32_t i = 0; i < tx->nrd; i++)
		if (tx->rd[i].addr == a)
			return &tx->rd[i];
	return NULL;
}

static int doom(struct farm_tx *tx, enum farm_abort_reason why)
{
	if (tx->doom == FARM_ABORT_NONE)
		tx->doom = why;
	return -EAGAIN;
}

/* A read that failed: what it means for the tx. */
static int read_failed(struct farm_tx *tx, int rc)
{
	switch (rc) {
	case -EAGAIN:
		return doom(tx, FARM_ABORT_READ);
	case -ESTALE:
	case -ECONNRESET:
	case -ETIMEDOUT:
	case -ENOTCONN:
	case -EACCES:
		return doom(tx, FARM_ABORT_FAILURE);
	}
	return rc; /* about the address: -EINVAL, -EFBIG, ... */
}

/* The version a read saw must be the one any earlier read saw. */
static int saw(struct farm_tx *tx, farm_addr_t a, uint64_t ver)
{
	struct farm_txr *r = find_r(tx, a);

	if (r)
		return r->ver == ver ? 0 : doom(tx, FARM_ABORT_VALIDATE);
	if (tx->nrd == FARM_TX_MAX_READS)
		return -ENOSPC;
	tx->rd[tx->nrd].addr = a;
	tx->rd[tx->nrd].ver = ver;
	tx->nrd++;
	return 0;
}

int farm_tx_read(struct farm_tx *tx, farm_addr_t a, void *buf, uint32_t len)
{
	struct farm_txw *w;
	uint64_t ver;
	int rc;

	if (!tx_ok(tx) || (!buf && len))
		return -EINVAL;
	if (tx->doom)
		return -EAGAIN;
	if ((rc = farm__check_addr(tx->f, a, len)))
		return rc;
	if ((w = find_w(tx, a))) { /* read your writes */
		if (w->flags & FARM_TXW_FREE)
			return -EINVAL;
		if (len > w->size)
			return -EFBIG;
		memcpy(buf, tx->img + w->img, len);
		return 0;
	}
	if (!find_r(tx, a) && tx->nrd == FARM_TX_MAX_READS)
		return -ENOSPC; /* before reading: never hand out an untracked value */
	if ((rc = farm_read(tx->f, a, buf, len, &ver)))
		return read_failed(tx, rc);
	return saw(tx, a, ver);
}

/* First write or free of `a`: a write-set entry with the whole object
 * (free: just its version), at a version consistent with earlier reads. */
static int add_w(struct farm_tx *tx, farm_addr_t a, uint32_t len, uint32_t flags,
		 struct farm_txw **out)
{
	struct farm *f = tx->f;
	uint32_t size, need;
	uint64_t ver;
	int rc;

	if (tx->nwr == FARM_TX_MAX_WRITES)
		return -ENOSPC;
	if ((rc = farm_obj_size(f, a, &size)))
		return read_failed(tx, rc);
	if (len > size)
		return -EFBIG;
	need = (flags & FARM_TXW_FREE) ? 0 : farm_log_pad8(size);
	if (tx->img_used + need > FARM_TX_MAX_BYTES)
		return -ENOSPC;
	if (!find_r(tx, a) && tx->nrd == FARM_TX_MAX_READS)
		return -ENOSPC;
	rc = (flags & FARM_TXW_FREE) ? farm_read(f, a, NULL, 0, &ver)
				     : farm_read(f, a, tx->img + tx->img_used, size, &ver);
	if (rc)
		return read_failed(tx, rc);
	if ((rc = saw(tx, a, ver)))
		return rc;
	struct farm_txw *w = &tx->wr[tx->nwr++];
	w->addr = a;
	w->ver = ver;
	w->size = size;
	w->img = tx->img_used;
	w->flags = flags;
	w->pad = 0;
	tx->img_used += need;
	*out = w;
	return 0;
}

int farm_tx_write(struct farm_tx *tx, farm_addr_t a, const void *buf, uint32_t len)
{
	struct farm_txw *w;
	int rc;

	if (!tx_ok(tx) || (!buf && len))
		return -EINVAL;
	if (tx->doom)
		return -EAGAIN;
	if ((rc = farm__check_addr(tx->f, a, len)))
		return rc;
	if ((w = find_w(tx, a))) {
		if (w->flags & FARM_TXW_FREE)
			return -EINVAL;
		if (len > w->size)
			return -EFBIG;
	} else if ((rc = add_w(tx, a, len, 0, &w))) {
		return rc;
	}
	if (len)
		memcpy(tx->img + w->img, buf, len);
	return 0;
}

int farm_tx_free(struct farm_tx *tx, farm_addr_t a)
{
	struct farm_txw *w;
	int rc;

	if (!tx_ok(tx))
		return -EINVAL;
	if (tx->doom)
		return -EAGAIN;
	if ((rc = farm__check_addr(tx->f, a, 0)))
		return rc;
	if ((w = find_w(tx, a))) {
		if (w->flags & FARM_TXW_FREE)
			return -EINVAL;
		w->flags |= FARM_TXW_FREE;
		return 0;
	}
	return add_w(tx, a, 0, FARM_TXW_FREE, &w);
}

/* Reserve at region's primary: the address and the reservation's version. */
static int reserve_in(struct farm *f, uint32_t region, uint32_t size, farm_addr_t *addr,
		      uint64_t *ver)
{
	const struct farm_region *r = &f->regions[region];
	uint64_t deadline = farm__now_ns() + (uint64_t)f->op_timeout_ms * 1000000ull, h;
	int rc;

	for (;;) {
		if (r->local) {
			int op = farm__op_new(f, FARM_OPK_CLIENT, 0);
			rc = op;
			if (op >= 0) {
				rc = farm__primary_reserve(f, region, size, true, (uint32_t)op,
							   NULL);
				if (rc == 0) {
					rc = farm__wait_op(f, (uint32_t)op, deadline);
					if (rc == -ETIMEDOUT &&
					    f->ops[op].state == FARM_OP_ABANDONED)
						return rc;
					*addr = f->ops[op].reply.value;
				}
				farm__op_release(f, (uint32_t)op);
			}
		} else {
			struct farm_wire_reply rep;
			struct farm_wire_txalloc a;
			memset(&a, 0, sizeof(a));
			a.region = region;
			a.size = size;
			rc = farm__call(f, r->peer, FARM_MSG_TX_ALLOC, &a, sizeof(a), &rep);
			if (rc == 0)
				*addr = rep.value;
		}
		if (rc != -EBUSY)
			break;
		if (farm__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (farm_poll(f) == 0)
			unet_msg_idle(f->mep, 1);
	}
	if (rc)
		return rc;
	if ((rc = farm__tx_read_word(f, region, FARM_OFFSET(*addr), &h)))
		return rc;
	if (h != (farm_hdr_make(true, size, farm_hdr_version(h)) | FARM_OBJ_LOCK))
		return -EPROTO;
	*ver = farm_hdr_version(h);
	return 0;
}

int farm_tx_alloc(struct farm_tx *tx, uint32_t size, farm_addr_t near, farm_addr_t *out)
{
	struct farm *f;
	farm_addr_t a = FARM_NULL;
	uint64_t ver = 0;
	uint32_t n;
	int rc = -ENOSPC;

	if (!tx_ok(tx) || !out || size == 0 || size > FARM_OBJ_MAX)
		return -EINVAL;
	f = tx->f;
	if (tx->doom)
		return -EAGAIN;
	if (tx->nwr == FARM_TX_MAX_WRITES || tx->img_used + farm_log_pad8(size) > FARM_TX_MAX_BYTES)
		return -ENOSPC;
	n = f->map.nregions;
	if (near != FARM_NULL) {
		if (FARM_REGION(near) >= n)
			return -ENOENT;
		rc = reserve_in(f, FARM_REGION(near), size, &a, &ver);
	}
	/* As farm_alloc: regions we lead (no hop to use them), then any. */
	for (int pass = 0; pass < 2 && rc == -ENOSPC; pass++)
		for (uint32_t i = 0; i < n && rc == -ENOSPC; i++) {
			uint32_t r = (f->alloc_rr + i) % n;
			if ((f->regions[r].local != NULL) != (pass == 0))
				continue;
			rc = reserve_in(f, r, size, &a, &ver);
			if (rc == 0)
				f->alloc_rr = r;
		}
	if (rc)
		return rc == -ESTALE || rc == -ECONNRESET || rc == -ETIMEDOUT
			   ? doom(tx, FARM_ABORT_FAILURE)
			   : rc;
	struct farm_txw *w = &tx->wr[tx->nwr++];
	w->addr = a;
	w->ver = ver;
	w->size = size;
	w->img = tx->img_used;
	w->flags = FARM_TXW_ALLOC;
	w->pad = 0;
	memset(tx->img + w->img, 0, size);
	tx->img_used += farm_log_pad8(size);
	tx->nalloc++;
	*out = a;
	return 0;
}

/* ---- the end ---------------------------------------------------------------------- */

static void ended(struct farm_tx *tx, enum farm_abort_reason why, bool ro)
{
	struct farm *f = tx->f;
	struct farm_txs *t = f->tx;

	if (why == FARM_ABORT_NONE) {
		f->st.tx_committed++;
		if (ro)
			f->st.tx_ro_committed++;
	} else {
		f->st.tx_aborted++;
		t->st.abort[why <= FARM_ABORT_USER ? why : FARM_ABORT_FAILURE]++;
	}
	pool_put(t, tx);
}

int farm_tx_commit(struct farm_tx *tx, struct farm_tx_result *res)
{
	enum farm_abort_reason why = FARM_ABORT_NONE;
	uint64_t t0 = 0;
	bool ro = false;
	int rc = 0;

	if (!tx_ok(tx))
		return -EINVAL;
	if (res)
		t0 = farm__now_ns();
	if (tx->doom || tx->config_id != tx->f->config_id || !farm__serving_now(tx->f)) {
		/* Doomed, begun in another configuration, or our lease lapsed
		 * (membership.h): a node that may have been removed commits
		 * nothing, its regions may be led by others already. */
		why = tx->doom ? tx->doom : FARM_ABORT_FAILURE;
		farm__tx_release_allocs(tx);
	} else if (tx->nwr == 0) {
		ro = true; /* one read is consistent by itself: nothing to check */
		if (tx->nrd > 1)
			farm__tx_validate(tx, &why);
	} else {
		rc = farm__tx_commit_rw(tx, &why);
	}
	if (res) {
		res->reason = why;
		res->commit_ns = farm__now_ns() - t0;
	}
	ended(tx, why, ro);
	if (rc == -EIO)
		return rc; /* outcome unknown (farm.h) */
	return why == FARM_ABORT_NONE ? 0 : -EAGAIN;
}

void farm_tx_abort(struct farm_tx *tx)
{
	if (!tx_ok(tx))
		return;
	farm__tx_release_allocs(tx);
	ended(tx, FARM_ABORT_USER, false);
}

const char *farm_abort_str(enum farm_abort_reason r)
{
	switch (r) {
	case FARM_ABORT_NONE:
		return "committed";
	case FARM_ABORT_LOCKED:
		return "a written object was locked by another transaction";
	case FARM_ABORT_CHANGED:
		return "a written object changed since it was read";
	case FARM_ABORT_VALIDATE:
		return "a read object changed or was locked (validation)";
	case FARM_ABORT_READ:
		return "a read found the object locked or torn for too long";
	case FARM_ABORT_LOG_FULL:
		return "no log space at a participant";
	case FARM_ABORT_FAILURE:
		return "a participant failed or the configuration changed";
	case FARM_ABORT_USER:
		return "aborted by the application";
	}
	return "unknown abort reason";
}
