/*
 * rdma.c - registered memory and one-sided operations on U-Net endpoints.
 *
 * Two ways to reach a peer's region, chosen per operation:
 *
 * One-sided (shm, regions from unet_mr_alloc): the region lives in the
 * owner's RDMA pool, which every channel peer has mapped, and is listed in
 * the owner's key table, which peers map read-only (layouts in
 * rdma_wire.h). The initiator looks the key up, checks permission and
 * bounds with the same function the served path uses, and does the copy or
 * the CPU atomic itself; the completion is ready before the post returns.
 * Nothing runs in the target, which may be stopped.
 *
 * Served (udp, xdp, no pool, or unet_mr_reg memory on shm): the operation
 * travels as a reliable msg message (cut in RDMA_CHUNK pieces), the
 * target's progress loop checks and executes it with the same code and CPU
 * atomics, and answers with a reply message that completes it. As soft-RoCE
 * does in a kernel, but in the target's own polling thread.
 *
 * Revocation against a racing one-sided access. The owner cannot stop an
 * initiator between its key check and its copy, and that initiator may be
 * descheduled there for any time. So revocation is made safe by never
 * reusing the memory while such an access may still land, epoch style:
 * each initiator has a slot in the owner's pool whose sequence number is
 * odd from just before its key check to the end of its access. Revoke
 * clears the key, then runs membarrier(MEMBARRIER_CMD_GLOBAL_EXPEDITED),
 * which orders every registered initiator's slot store against our clear
 * (asymmetric Dekker: the initiator pays only a compiler barrier, not a
 * fence per operation), then looks at the slots: an initiator whose slot was
 * even has not checked yet and will see the cleared key; one whose slot was
 * odd may still be inside, and the region's memory goes to quarantine until
 * that slot has moved on (or its process died). Guarantees: an operation
 * whose key check happens after unet_mr_revoke() returns fails with
 * -EACCES; one already past its check completes against the old memory,
 * like a DMA already in flight on a NIC; the pool memory is never handed to
 * a new region while such an access can still touch it. Without
 * membarrier the owner tells initiators (key table flag) to fence instead.
 *
 * Everything is sized at creation: the registration table, the key table,
 * the operation table (cq_depth), the completion ring and the
 * deferred-reply ring. Posting, polling and serving do not
 * allocate; the one-sided path makes no system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/membarrier.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/syscall.h>

#include "msg_internal.h"
#include "nic.h"
#include "rdma_wire.h"
#include "unet/rdma.h"

#define DEF_POOL       (64u << 20)
#define DEF_MRS	       256u
#define DEF_CQ	       4096u
#define DEF_TIMEOUT_MS 5000u
#define MAX_CQ	       (1u << 20)
#define DEFER_SLOTS    4096u
#define POLL_BUDGET    64u

enum mr_kind { MR_FREE = 0, MR_POOL, MR_HEAP, MR_USER };

struct unet_mr {
	uint64_t key; /* 0 while the slot is free */
	uint8_t *addr;
	size_t len;
	size_t span; /* bytes taken from the pool or the heap budget */
	uint64_t pool_off;
	uint64_t last_tag; /* never reuse a slot's tag (seqlock readers rely on it) */
	unsigned perms;
	uint8_t kind;
};

/* Pool memory of a revoked region, waiting for initiators that were inside
 * an access when it was revoked. */
struct quarantine {
	struct quarantine *next;
	uint64_t off, len;
	uint32_t n;
	struct {
		uint32_t slot;
		uint64_t owner, seq;
	} w[];
};

enum { IC_NONE = 0, IC_ONESIDED, IC_SERVED };

/* What an initiator knows about the peer on one channel. */
struct ichan {
	uint64_t inst;	   /* peer's rdma instance our slot belongs to */
	uint64_t seq;	   /* our slot's sequence number (we are its only writer) */
	uint32_t slot_off; /* pool offset of our slot */
	uint8_t mode;
	bool fence; /* fence at entry instead of relying on membarrier */
};

enum { OP_FREE = 0, OP_ACTIVE };

/* A served operation in flight. */
struct rdma_op {
	uint64_t wr_id, key, off, a0, a1, deadline, value;
	uint8_t *local;
	uint32_t len, gen;
	uint32_t nchunks, nsent, nrcvd;
	uint32_t next; /* pending FIFO link */
	int status;
	uint16_t chan;
	uint8_t op, state;
	bool queued;
};

/* A reply the target could not send yet (the channel's staging was full).
 * READs are executed when the reply finally goes out. */
struct deferred {
	struct unet__rdma_req q;
	struct unet__rdma_rep rep;
	uint16_t chan;
};

struct unet_rdma {
	struct unet_msg_ep *mep;
	struct unet_ep *ep;
	struct unet_rdma_attr attr;

	/* Registrations; slot 0 unused (it is the key table header's). */
	struct unet_mr *mrs;
	uint32_t nmrs;

	/* Our pool (shm) or a heap budget. */
	bool has_pool;
	struct unet_pool_view pool;
	struct unet__rdma_heap heap;
	struct quarantine *quar;
	size_t heap_used, heap_max; /* MR_HEAP bytes */
	int mb_cmd;		    /* membarrier command for revoke, 0: none */
	bool mb_registered;	    /* initiators: expedited membarrier reaches us */
	uint64_t token;		    /* our claim on peers' initiator slots */
	uint64_t quar_check_ns;

	/* Initiator side. */
	struct ichan *ic;
	unsigned nchan;
	struct rdma_op *ops;
	uint32_t *free_ops, nfree;
	uint32_t pend_head, pend_tail; /* FIFO of ops with chunks to send */
	uint32_t nactive;	       /* served ops in flight */
	uint64_t timeout_ns, tick;
	uint32_t polls;

	/* Completions: everything posted and not yet reaped. */
	struct unet_rdma_comp *cq;
	uint32_t cq_mask, cq_head, cq_tail, inflight;

	/* Target side. */
	struct deferred *defer;
	uint32_t def_head, def_tail;

	/* Channel failures msg reported (from inside its calls): swept in
	 * progress, never from the hook, so no operation is completed twice. */
	int *chan_fail;
	bool fail_pending;

	uint8_t req_hdr[RDMA_REQ_HDR];
	uint8_t rep_hdr[RDMA_REP_HDR];

	struct {
		uint64_t bad_req, bad_rep, stale_rep, def_drop;
	} st;
};

#define NIL UINT32_MAX

/* ---- helpers -------------------------------------------------------------- */

static uint64_t random_u64(void)
{
	uint64_t v = 0;

	while (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
		;
	return v;
}

static int membarrier(int cmd)
{
	return (int)syscall(SYS_membarrier, cmd, 0, 0);
}

/* A process is gone when /proc has no entry or shows it dead or a zombie
 * (PID 1 reaps late here, so kill(pid, 0) would call a zombie alive). */
static bool pid_dead(uint32_t pid)
{
	char path[64], buf[512];
	ssize_t n;
	int fd;

	if (pid == 0)
		return true;
	snprintf(path, sizeof(path), "/proc/%u/stat", pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return errno == ENOENT;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return false;
	buf[n] = 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && (p[2] == 'Z' || p[2] == 'X');
}

static struct unet__rdma_kt_hdr *kt_hdr(uint8_t *keytab)
{
	return (struct unet__rdma_kt_hdr *)(void *)keytab;
}

static struct unet__rdma_kent *kt_ent(uint8_t *keytab, uint32_t i)
{
	return (struct unet__rdma_kent *)(void *)(keytab + (size_t)i * 64);
}

static struct unet__rdma_islot *islot(uint8_t *base, uint64_t off)
{
	return (struct unet__rdma_islot *)(void *)(base + off);
}

static void cq_push(struct unet_rdma *r, uint64_t wr_id, int status, uint8_t op, uint64_t value)
{
	struct unet_rdma_comp *c = &r->cq[r->cq_tail++ & r->cq_mask];

	c->wr_id = wr_id;
	c->status = status;
	c->op = op;
	c->value = value;
}

/* ---- pool memory ------------------------------------------------------------ */

/* Free pool memory is kept zero, so unet_mr_alloc needs no memset: whole
 * pages go back to the kernel (MADV_REMOVE punches a hole in the memfd,
 * which reads as zeros for every mapping), the ragged ends are cleared. */
static void pool_zero(struct unet_rdma *r, uint64_t off, uint64_t len)
{
	uint64_t pg = (uint64_t)sysconf(_SC_PAGESIZE);
	uint64_t a = (off + pg - 1) / pg * pg, b = (off + len) / pg * pg;

	if (a < b && madvise(r->pool.base + a, b - a, MADV_REMOVE) == 0) {
		memset(r->pool.base + off, 0, a - off);
		memset(r->pool.base + b, 0, off + len - b);
	} else {
		memset(r->pool.base + off, 0, len);
	}
}

static void pool_release(struct unet_rdma *r, uint64_t off, uint64_t len)
{
	pool_zero(r, off, len);
	unet__rdma_heap_free(&r->heap, off, len);
}

/* Has every initiator that was inside an access at revocation moved on? */
static bool quarantine_over(struct unet_rdma *r, struct quarantine *q, bool slow)
{
	uint32_t i = 0;

	while (i < q->n) {
		struct unet__rdma_islot *s = islot(r->pool.base, (uint64_t)q->w[i].slot * 64);
		uint64_t owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
		uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (owner != q->w[i].owner || seq != q->w[i].seq ||
		    (slow && pid_dead((uint32_t)(owner >> 32))))
			q->w[i] = q->w[--q->n];
		else
			i++;
	}
	return q->n == 0;
}

/* Release what quarantine no longer holds. `slow` also asks /proc whether
 * the initiators we wait for are alive (a system call per waiter). */
static void quarantine_reap(struct unet_rdma *r, bool slow)
{
	struct quarantine **pp = &r->quar;

	while (*pp) {
		struct quarantine *q = *pp;
		if (quarantine_over(r, q, slow)) {
			*pp = q->next;
			pool_release(r, q->off, q->len);
			free(q);
		} else {
			pp = &q->next;
		}
	}
}

/* Make sure every initiator either sees the cleared key or shows up as
 * inside an access in its slot. */
static void revoke_barrier(struct unet_rdma *r)
{
	if (r->mb_cmd == 0 || membarrier(r->mb_cmd) < 0)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
}

/* The pool memory of a revoked one-sided region: free it now, or once the
 * initiators that may still be inside an access are out. */
static void pool_retire(struct unet_rdma *r, uint64_t off, uint64_t len)
{
	struct quarantine *q;
	uint32_t n = 0;

	for (uint32_t i = 0; i < RDMA_NSLOTS; i++) {
		struct unet__rdma_islot *s = islot(r->pool.base, (uint64_t)i * 64);
		if (__atomic_load_n(&s->owner, __ATOMIC_ACQUIRE) &&
		    (__atomic_load_n(&s->seq, __ATOMIC_ACQUIRE) & 1))
			n++;
	}
	if (n == 0) {
		pool_release(r, off, len);
		return;
	}
	q = malloc(sizeof(*q) + n * sizeof(q->w[0]));
	if (!q) {
		/* Cannot track it: leak the memory rather than risk reuse. */
		return;
	}
	q->off = off;
	q->len = len;
	q->n = 0;
	for (uint32_t i = 0; i < RDMA_NSLOTS && q->n < n; i++) {
		struct unet__rdma_islot *s = islot(r->pool.base, (uint64_t)i * 64);
		uint64_t owner = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
		uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
		if (owner && (seq & 1)) {
			q->w[q->n].slot = i;
			q->w[q->n].owner = owner;
			q->w[q->n].seq = seq;
			q->n++;
		}
	}
	q->next = r->quar;
	r->quar = q;
	quarantine_reap(r, false);
}

/* ---- creation ----------------------------------------------------------------- */

static int attr_fill(struct unet_rdma_attr *a, const struct unet_rdma_attr *in)
{
	if (in)
		*a = *in;
	else
		memset(a, 0, sizeof(*a));
	if (!a->pool_size)
		a->pool_size = DEF_POOL;
	if (!a->max_mrs)
		a->max_mrs = DEF_MRS;
	if (!a->cq_depth)
		a->cq_depth = DEF_CQ;
	if (!a->timeout_ms)
		a->timeout_ms = DEF_TIMEOUT_MS;
	if (a->max_mrs > RDMA_MAX_MRS || a->cq_depth > MAX_CQ)
		return -EINVAL;
	return 0;
}

/* Take over the endpoint's pool: key table header, initiator slots, heap. */
static int pool_setup(struct unet_rdma *r)
{
	struct unet__rdma_kt_hdr *h;
	uint64_t heap_len;
	int rc = r->ep->nic->ops->pool ? r->ep->nic->ops->pool(r->ep, -1, &r->pool) : -EOPNOTSUPP;

	if (rc == -EOPNOTSUPP || (rc == 0 && r->pool.size <= RDMA_SLOTS_BYTES + 64))
		return 0; /* no pool: every region is served */
	if (rc < 0)
		return rc;
	h = kt_hdr(r->pool.keytab);
	if (__atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) == RDMA_KT_MAGIC)
		return -EBUSY; /* another rdma layer owns this endpoint */
	heap_len = r->pool.size - RDMA_SLOTS_BYTES;
	if (heap_len > r->attr.pool_size)
		heap_len = r->attr.pool_size;
	/* One extent per live region, plus one, plus quarantined regions
	 * (bounded by the registrations ever made; the array is generous). */
	uint32_t nkt = r->nmrs < RDMA_KT_ENTRIES ? r->nmrs : RDMA_KT_ENTRIES;
	rc = unet__rdma_heap_init(&r->heap, RDMA_SLOTS_BYTES, heap_len, 2 * nkt + 2);
	if (rc < 0)
		return rc;
	memset(r->pool.keytab + 64, 0, UNET_KEYTAB_BYTES - 64);
	memset(r->pool.base, 0, RDMA_SLOTS_BYTES);
	pool_zero(r, RDMA_SLOTS_BYTES, r->pool.size - RDMA_SLOTS_BYTES);
	h->slots_off = 0;
	h->nslots = RDMA_NSLOTS;
	h->flags = r->mb_cmd ? 0 : RDMA_KT_FENCE;
	h->heap_off = RDMA_SLOTS_BYTES;
	h->heap_len = heap_len;
	uint64_t inst;
	do
		inst = random_u64();
	while (!inst);
	__atomic_store_n(&h->inst, inst, __ATOMIC_RELEASE);
	__atomic_store_n(&h->magic, RDMA_KT_MAGIC, __ATOMIC_RELEASE);
	r->has_pool = true;
	return 0;
}

/* Handlers (rdma_serve below). */
static void on_request(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg);
static void on_reply(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg);
static void on_fail(struct unet_msg_ep *mep, unsigned chan, int code, void *arg);

int unet_rdma_create(struct unet_msg_ep *mep, const struct unet_rdma_attr *attr,
		     struct unet_rdma **out)
{
	struct unet_rdma *r;
	uint32_t cq;
	int rc;

	if (!mep || !out)
		return -EINVAL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->mep = mep;
	r->ep = unet_msg_unet(mep);
	rc = attr_fill(&r->attr, attr);
	if (rc < 0 || !r->ep) {
		free(r);
		return rc < 0 ? rc : -EINVAL;
	}
	r->nmrs = r->attr.max_mrs + 1;
	r->nchan = r->ep->attr.max_chans;
	r->timeout_ns = (uint64_t)r->attr.timeout_ms * 1000000ull;
	r->heap_max = r->attr.pool_size;
	for (cq = 1; cq < r->attr.cq_depth; cq <<= 1)
		;
	r->cq_mask = cq - 1;
	r->pend_head = r->pend_tail = NIL;

	/* Revoke's barrier; initiators register so it reaches them. */
	int q = membarrier(MEMBARRIER_CMD_QUERY);
	if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL_EXPEDITED))
		r->mb_cmd = MEMBARRIER_CMD_GLOBAL_EXPEDITED;
	else if (q > 0 && (q & MEMBARRIER_CMD_GLOBAL))
		r->mb_cmd = MEMBARRIER_CMD_GLOBAL;
	r->mb_registered = q > 0 && (q & MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) &&
			   membarrier(MEMBARRIER_CMD_REGISTER_GLOBAL_EXPEDITED) == 0;
	uint32_t nonce;
	do
		nonce = (uint32_t)random_u64();
	while (!nonce);
	r->token = (uint64_t)(uint32_t)getpid() << 32 | nonce;

	rc = -ENOMEM;
	r->mrs = calloc(r->nmrs, sizeof(*r->mrs));
	r->ic = calloc(r->nchan, sizeof(*r->ic));
	r->ops = calloc(r->attr.cq_depth, sizeof(*r->ops));
	r->free_ops = calloc(r->attr.cq_depth, sizeof(*r->free_ops));
	r->cq = calloc(cq, sizeof(*r->cq));
	r->defer = calloc(DEFER_SLOTS, sizeof(*r->defer));
	r->chan_fail = calloc(r->nchan, sizeof(*r->chan_fail));
	if (!r->mrs || !r->ic || !r->ops || !r->free_ops || !r->cq || !r->defer || !r->chan_fail)
		goto fail;
	for (uint32_t i = 0; i < r->attr.cq_depth; i++)
		r->free_ops[r->nfree++] = r->attr.cq_depth - 1 - i;
	rc = pool_setup(r);
	if (rc < 0)
		goto fail;
	rc = unet__msg_handle_reserved(mep, UNET__RDMA_MSG_REQ, on_request, r);
	if (rc == 0)
		rc = unet__msg_handle_reserved(mep, UNET__RDMA_MSG_REP, on_reply, r);
	if (rc < 0) {
		unet__msg_handle_reserved(mep, UNET__RDMA_MSG_REQ, NULL, NULL);
		goto fail;
	}
	unet__msg_on_fail(mep, on_fail, r);
	*out = r;
	return 0;
fail:
	if (r->has_pool) {
		struct unet__rdma_kt_hdr *h = kt_hdr(r->pool.keytab);
		__atomic_store_n(&h->magic, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&h->inst, 0, __ATOMIC_RELEASE);
	}
	unet__rdma_heap_fini(&r->heap);
	free(r->mrs);
	free(r->ic);
	free(r->ops);
	free(r->free_ops);
	free(r->cq);
	free(r->defer);
	free(r->chan_fail);
	free(r);
	return rc;
}

/* ---- registration ------------------------------------------------------------- */

/* A free registration slot; one-sided regions need one the key table can
 * describe. */
static struct unet_mr *mr_slot(struct unet_rdma *r, bool keytab)
{
	uint32_t lim = keytab && r->nmrs > RDMA_KT_ENTRIES ? RDMA_KT_ENTRIES : r->nmrs;

	for (uint32_t i = 1; i < lim; i++)
		if (r->mrs[i].kind == MR_FREE)
			return &r->mrs[i];
	return NULL;
}

static uint64_t mr_newkey(struct unet_rdma *r, struct unet_mr *mr, bool onesided)
{
	uint32_t slot = (uint32_t)(mr - r->mrs);
	uint64_t tag;

	do
		tag = random_u64() >> RDMA_KEY_TAG_SHIFT;
	while (!tag || tag == mr->last_tag);
	mr->last_tag = tag;
	return tag << RDMA_KEY_TAG_SHIFT | (onesided ? RDMA_KEY_ONESIDED : 0) | slot;
}

/* Publish a one-sided region in the key table (seqlock writer). */
static void kt_publish(struct unet_rdma *r, struct unet_mr *mr)
{
	struct unet__rdma_kent *e = kt_ent(r->pool.keytab, (uint32_t)(mr - r->mrs));

	__atomic_store_n(&e->key, 0, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_RELEASE);
	__atomic_store_n(&e->off, mr->pool_off, __ATOMIC_RELAXED);
	__atomic_store_n(&e->len, (uint64_t)mr->len, __ATOMIC_RELAXED);
	__atomic_store_n(&e->perms, mr->perms, __ATOMIC_RELAXED);
	__atomic_store_n(&e->key, mr->key, __ATOMIC_RELEASE);
}

int unet_mr_alloc(struct unet_rdma *r, size_t len, unsigned perms, struct unet_mr **out)
{
	struct unet_mr *mr;
	uint64_t off;
	int rc;

	if (!r || !out || len == 0 || (perms & ~(UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC)))
		return -EINVAL;
	if (len > SIZE_MAX - 64)
		return -ENOMEM;
	mr = mr_slot(r, r->has_pool);
	if (!mr)
		return -ENOSPC;
	if (r->has_pool) {
		if (r->quar)
			quarantine_reap(r, false);
		rc = unet__rdma_heap_alloc(&r->heap, len, &off);
		if (rc < 0 && r->quar) {
			quarantine_reap(r, true);
			rc = unet__rdma_heap_alloc(&r->heap, len, &off);
		}
		if (rc < 0)
			return rc;
		mr->kind = MR_POOL;
		mr->addr = r->pool.base + off;
		mr->pool_off = off;
	} else {
		size_t span = (len + 63) / 64 * 64;
		if (span > r->heap_max - r->heap_used)
			return -ENOMEM;
		mr->addr = aligned_alloc(64, span);
		if (!mr->addr)
			return -ENOMEM;
		memset(mr->addr, 0, span);
		mr->kind = MR_HEAP;
		r->heap_used += span;
	}
	mr->len = len;
	mr->span = (len + 63) / 64 * 64;
	mr->perms = perms;
	mr->key = mr_newkey(r, mr, r->has_pool);
	if (r->has_pool)
		kt_publish(r, mr);
	*out = mr;
	return 0;
}

int unet_mr_reg(struct unet_rdma *r, void *addr, size_t len, unsigned perms, struct unet_mr **out)
{
	struct unet_mr *mr;

	if (!r || !out || !addr || len == 0 ||
	    (perms & ~(UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC)))
		return -EINVAL;
	mr = mr_slot(r, false);
	if (!mr)
		return -ENOSPC;
	mr->kind = MR_USER;
	mr->addr = addr;
	mr->len = len;
	mr->span = 0;
	mr->perms = perms;
	mr->key = mr_newkey(r, mr, false);
	*out = mr;
	return 0;
}

/* Only the owner's thread serves requests, so a served region needs no
 * more than forgetting its key; a one-sided one needs the barrier dance. */
int unet_mr_revoke(struct unet_rdma *r, struct unet_mr *mr)
{
	if (!r || !mr || mr < r->mrs || mr >= r->mrs + r->nmrs || mr->kind == MR_FREE)
		return -EINVAL;
	if (mr->kind == MR_POOL) {
		struct unet__rdma_kent *e = kt_ent(r->pool.keytab, (uint32_t)(mr - r->mrs));
		__atomic_store_n(&e->key, 0, __ATOMIC_RELEASE);
		revoke_barrier(r);
		pool_retire(r, mr->pool_off, mr->span);
	} else if (mr->kind == MR_HEAP) {
		free(mr->addr);
		r->heap_used -= mr->span;
	}
	uint64_t tag = mr->last_tag;
	memset(mr, 0, sizeof(*mr));
	mr->last_tag = tag;
	return 0;
}

uint64_t unet_mr_key(const struct unet_mr *mr)
{
	return mr ? mr->key : 0;
}

void *unet_mr_addr(const struct unet_mr *mr)
{
	return mr ? mr->addr : NULL;
}

size_t unet_mr_len(const struct unet_mr *mr)
{
	return mr ? mr->len : 0;
}

/* ---- one-sided path ------------------------------------------------------------- */

/* Claim (or find again) our initiator slot in the peer's pool. Slow path:
 * once per channel and peer instance. */
static void ic_claim(struct unet_rdma *r, struct ichan *ic, const struct unet_pool_view *v,
		     uint64_t inst)
{
	const struct unet__rdma_kt_hdr *h = kt_hdr(v->keytab);
	uint64_t soff = __atomic_load_n(&h->slots_off, __ATOMIC_RELAXED);
	uint32_t ns = __atomic_load_n(&h->nslots, __ATOMIC_RELAXED);
	uint32_t flags = __atomic_load_n(&h->flags, __ATOMIC_RELAXED);
	uint32_t mine = UINT32_MAX, free_i = UINT32_MAX;

	ic->inst = inst;
	ic->mode = IC_SERVED;
	if (soff % 64 || ns == 0 || ns > RDMA_NSLOTS || soff > v->size ||
	    (uint64_t)ns * 64 > v->size - soff)
		return;
	for (int pass = 0; pass < 2 && mine == UINT32_MAX; pass++) {
		for (uint32_t i = 0; i < ns && mine == UINT32_MAX; i++) {
			struct unet__rdma_islot *s = islot(v->base, soff + (uint64_t)i * 64);
			uint64_t o = __atomic_load_n(&s->owner, __ATOMIC_ACQUIRE);
			if (o == r->token)
				mine = i;
			else if (free_i == UINT32_MAX &&
				 (o == 0 || (pass == 1 && pid_dead((uint32_t)(o >> 32)))) &&
				 __atomic_compare_exchange_n(&s->owner, &o, r->token, false,
							     __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				free_i = i;
		}
		if (mine == UINT32_MAX)
			mine = free_i;
	}
	if (mine == UINT32_MAX)
		return; /* every slot taken: this peer is served instead */
	struct unet__rdma_islot *s = islot(v->base, soff + (uint64_t)mine * 64);
	ic->seq = (__atomic_load_n(&s->seq, __ATOMIC_RELAXED) + 1) & ~1ull;
	__atomic_store_n(&s->seq, ic->seq, __ATOMIC_RELEASE);
	ic->slot_off = (uint32_t)(soff + (uint64_t)mine * 64);
	ic->fence = !r->mb_registered || (flags & RDMA_KT_FENCE);
	ic->mode = IC_ONESIDED;
}

/* Look the key up in the peer's key table and do the access, all inside
 * our slot's odd window (see the top of this file). */
static int onesided(struct ichan *ic, const struct unet_pool_view *v, uint8_t op, uint64_t key,
		    uint64_t off, void *local, uint32_t len, uint64_t a0, uint64_t a1,
		    uint64_t *value)
{
	struct unet__rdma_islot *s = islot(v->base, ic->slot_off);
	uint32_t i = (uint32_t)(key & RDMA_KEY_SLOT_MASK);
	int st = -EACCES;

	if (i == 0 || i >= RDMA_KT_ENTRIES)
		return -EACCES;
	const struct unet__rdma_kent *e = kt_ent(v->keytab, i);
	__atomic_store_n(&s->seq, ic->seq + 1, __ATOMIC_RELAXED);
	if (ic->fence)
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
	else
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
	uint64_t k1 = __atomic_load_n(&e->key, __ATOMIC_ACQUIRE);
	uint64_t eoff = __atomic_load_n(&e->off, __ATOMIC_RELAXED);
	uint64_t elen = __atomic_load_n(&e->len, __ATOMIC_RELAXED);
	uint32_t perms = __atomic_load_n(&e->perms, __ATOMIC_RELAXED);
	__atomic_thread_fence(__ATOMIC_ACQUIRE);
	uint64_t k2 = __atomic_load_n(&e->key, __ATOMIC_RELAXED);
	if (k1 == key && k2 == key && eoff >= RDMA_SLOTS_BYTES && eoff <= v->size &&
	    elen <= v->size - eoff) {
		uint8_t *base = v->base + eoff, *p = base + off;
		st = unet__rdma_check(base, elen, perms, op, off, op >= UNET_RDMA_CAS ? 8 : len);
		if (st == 0) {
			switch (op) {
			case UNET_RDMA_READ:
				if (len == 8) /* the common small case: one load, no call */
					memcpy(local, p, 8);
				else if (len)
					memcpy(local, p, len);
				break;
			case UNET_RDMA_WRITE:
				if (len == 8)
					memcpy(p, local, 8);
				else if (len)
					memcpy(p, local, len);
				break;
			case UNET_RDMA_CAS:
				*value = a0;
				__atomic_compare_exchange_n((uint64_t *)(void *)p, value, a1, false,
							    __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
				break;
			default:
				*value =
				    __atomic_fetch_add((uint64_t *)(void *)p, a0, __ATOMIC_SEQ_CST);
				break;
			}
		}
	}
	__atomic_store_n(&s->seq, ic->seq + 2, __ATOMIC_RELEASE);
	ic->seq += 2;
	return st;
}

/* ---- served path: initiator --------------------------------------------------- */

static void op_free(struct unet_rdma *r, struct rdma_op *o)
{
	o->state = OP_FREE;
	o->gen++;
	r->free_ops[r->nfree++] = (uint32_t)(o - r->ops);
	r->nactive--;
}

static void op_complete(struct unet_rdma *r, struct rdma_op *o)
{
	cq_push(r, o->wr_id, o->status, o->op, o->status ? 0 : o->value);
	op_free(r, o);
}

/* Send the op's next chunk. 0, -EAGAIN (try later), or a channel error. */
static int op_send_chunk(struct unet_rdma *r, struct rdma_op *o)
{
	uint32_t ci = o->nsent;
	uint64_t coff = (uint64_t)ci * RDMA_CHUNK;
	uint32_t clen = 0, plen = 0;

	if (o->op <= UNET_RDMA_WRITE) {
		clen = o->len - (uint32_t)coff < RDMA_CHUNK ? o->len - (uint32_t)coff : RDMA_CHUNK;
		if (o->op == UNET_RDMA_WRITE)
			plen = clen;
	}
	struct unet__rdma_req q = {
	    .op = o->op,
	    .clen = clen,
	    .key = o->key,
	    .off = o->off,
	    .total = o->op >= UNET_RDMA_CAS ? 8 : o->len,
	    .coff = coff,
	    .arg0 = o->a0,
	    .arg1 = o->a1,
	    .cookie = (uint64_t)o->gen << 32 | (uint32_t)(o - r->ops),
	};
	unet__rdma_enc_req(r->req_hdr, &q);
	int rc = unet__msg_send2(r->mep, o->chan, UNET__RDMA_MSG_REQ, r->req_hdr, RDMA_REQ_HDR,
				 plen ? o->local + coff : NULL, plen);
	if (rc == 0)
		o->nsent++;
	return rc;
}

/* Send what is queued, in order, until a channel pushes back. */
static void issue_pending(struct unet_rdma *r)
{
	while (r->pend_head != NIL) {
		struct rdma_op *o = &r->ops[r->pend_head];
		int rc = 0;
		while (o->nsent < o->nchunks && (rc = op_send_chunk(r, o)) == 0)
			;
		if (rc == -EAGAIN || rc == -EBUSY)
			return;
		r->pend_head = o->next;
		if (r->pend_head == NIL)
			r->pend_tail = NIL;
		o->queued = false;
		if (rc < 0) {
			/* The channel failed: replies to chunks already sent
			 * will not come (and would be dropped as stale). */
			o->status = rc;
			op_complete(r, o);
		}
	}
}

static int post_served(struct unet_rdma *r, uint8_t op, unsigned chan, uint64_t key, uint64_t off,
		       void *local, uint32_t len, uint64_t a0, uint64_t a1, uint64_t wr_id)
{
	uint32_t idx = r->free_ops[--r->nfree];
	struct rdma_op *o = &r->ops[idx];
	uint32_t gen = o->gen;

	memset(o, 0, sizeof(*o));
	o->gen = gen;
	o->state = OP_ACTIVE;
	o->wr_id = wr_id;
	o->key = key;
	o->off = off;
	o->a0 = a0;
	o->a1 = a1;
	o->local = local;
	o->len = len;
	o->chan = (uint16_t)chan;
	o->op = op;
	o->nchunks = op >= UNET_RDMA_CAS || len == 0 ? 1 : (len + RDMA_CHUNK - 1) / RDMA_CHUNK;
	o->deadline = unet__now_ns() + r->timeout_ns;
	o->next = NIL;
	r->nactive++;
	if (r->pend_head == NIL) {
		/* Nothing queued ahead: try to send now, so that a channel that is
		 * not attached is reported by the post itself. */
		int rc = 0;
		while (o->nsent < o->nchunks && (rc = op_send_chunk(r, o)) == 0)
			;
		if (rc == -ENOTCONN && o->nsent == 0) {
			op_free(r, o);
			return -ENOTCONN;
		}
		if (rc < 0 && rc != -EAGAIN && rc != -EBUSY) {
			o->status = rc;
			op_complete(r, o);
			r->inflight++;
			return 0;
		}
		if (o->nsent == o->nchunks) {
			r->inflight++;
			return 0;
		}
	}
	o->queued = true;
	if (r->pend_tail == NIL)
		r->pend_head = idx;
	else
		r->ops[r->pend_tail].next = idx;
	r->pend_tail = idx;
	r->inflight++;
	return 0;
}

static void on_reply(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct unet_rdma *r = arg;
	struct unet__rdma_rep rep;
	(void)mep;

	if (unet__rdma_parse_rep(m->data, m->len, &rep) < 0) {
		r->st.bad_rep++;
		return;
	}
	uint32_t idx = (uint32_t)rep.cookie;
	struct rdma_op *o = idx < r->attr.cq_depth ? &r->ops[idx] : NULL;
	if (!o || o->state != OP_ACTIVE || o->gen != (uint32_t)(rep.cookie >> 32) ||
	    o->chan != m->chan || o->nrcvd >= o->nsent) {
		r->st.stale_rep++;
		return;
	}
	uint64_t coff = (uint64_t)o->nrcvd * RDMA_CHUNK;
	uint32_t clen = 0;
	if (o->op <= UNET_RDMA_WRITE)
		clen = o->len - (uint32_t)coff < RDMA_CHUNK ? o->len - (uint32_t)coff : RDMA_CHUNK;
	if (unet__rdma_rep_match(&rep, o->op, coff, clen) < 0) {
		/* Our peer, our cookie, but not an answer to what we asked. */
		r->st.bad_rep++;
		o->status = -EPROTO;
		op_complete(r, o);
		return;
	}
	if (rep.status == 0 && o->status == 0) {
		if (o->op == UNET_RDMA_READ && clen)
			memcpy(o->local + coff, rep.data, clen);
		o->value = rep.value;
	} else if (o->status == 0) {
		o->status = rep.status;
	}
	o->nrcvd++;
	if (o->nrcvd == o->nchunks)
		op_complete(r, o);
}

static int fail_code(int code)
{
	return code == -ETIMEDOUT ? -ETIMEDOUT : -ECONNRESET;
}

/* msg tells us a channel failed or was detached: note it, sweep later. */
static void on_fail(struct unet_msg_ep *mep, unsigned chan, int code, void *arg)
{
	struct unet_rdma *r = arg;
	(void)mep;

	if (chan < r->nchan) {
		r->chan_fail[chan] = fail_code(code);
		r->fail_pending = true;
	}
}

/* The status an operation must end with now, or 0 to keep waiting: its
 * channel failed, or its reply is overdue (a target that stopped serving
 * without its channel failing). */
static int op_doom(struct unet_rdma *r, const struct rdma_op *o, uint64_t now)
{
	if (r->chan_fail[o->chan])
		return r->chan_fail[o->chan];
	return now > o->deadline ? -ETIMEDOUT : 0;
}

static void sweep(struct unet_rdma *r, uint64_t now)
{
	uint32_t *pp = &r->pend_head, prev = NIL;
	int st;

	while (*pp != NIL) {
		struct rdma_op *o = &r->ops[*pp];
		if ((st = op_doom(r, o, now)) != 0) {
			*pp = o->next;
			if (r->pend_tail == (uint32_t)(o - r->ops))
				r->pend_tail = prev;
			o->queued = false;
			o->status = st;
			op_complete(r, o);
		} else {
			prev = *pp;
			pp = &o->next;
		}
	}
	for (uint32_t i = 0; i < r->attr.cq_depth && r->nactive; i++) {
		struct rdma_op *o = &r->ops[i];
		if (o->state == OP_ACTIVE && (st = op_doom(r, o, now)) != 0) {
			o->status = st;
			op_complete(r, o);
		}
	}
}

static void sweep_failed(struct unet_rdma *r)
{
	r->fail_pending = false;
	sweep(r, 0);
	memset(r->chan_fail, 0, r->nchan * sizeof(*r->chan_fail));
}

/* ---- served path: target ---------------------------------------------------------- */

static struct unet_mr *mr_lookup(struct unet_rdma *r, uint64_t key)
{
	uint32_t i = (uint32_t)(key & RDMA_KEY_SLOT_MASK);

	return i < r->nmrs && r->mrs[i].key == key && key ? &r->mrs[i] : NULL;
}

/* Send one reply; a READ is checked now and its bytes go straight from the
 * region into the message. 0, -EAGAIN, or a channel error (the reply is
 * dropped: the initiator's channel is gone). */
static int send_reply(struct unet_rdma *r, uint16_t chan, const struct unet__rdma_req *q,
		      struct unet__rdma_rep *rep)
{
	const uint8_t *data = NULL;

	if (q->op == UNET_RDMA_READ) {
		struct unet_mr *mr = mr_lookup(r, q->key);
		rep->status =
		    mr ? unet__rdma_check(mr->addr, mr->len, mr->perms, q->op, q->off, q->total)
		       : -EACCES;
		if (rep->status == 0 && q->clen)
			data = mr->addr + q->off + q->coff;
		rep->len = rep->status == 0 ? q->clen : 0;
	}
	unet__rdma_enc_rep(r->rep_hdr, rep);
	return unet__msg_send2(r->mep, chan, UNET__RDMA_MSG_REP, r->rep_hdr, RDMA_REP_HDR, data,
			       data ? rep->len : 0);
}

static void flush_deferred(struct unet_rdma *r)
{
	while (r->def_head != r->def_tail) {
		struct deferred *d = &r->defer[r->def_head % DEFER_SLOTS];
		int rc = send_reply(r, d->chan, &d->q, &d->rep);
		if (rc == -EAGAIN || rc == -EBUSY)
			return;
		r->def_head++;
	}
}

static void on_request(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct unet_rdma *r = arg;
	struct unet__rdma_req q;
	struct unet__rdma_rep rep = {0};
	(void)mep;

	if (unet__rdma_parse_req(m->data, m->len, &q) < 0) {
		r->st.bad_req++;
		return;
	}
	rep.op = q.op;
	rep.cookie = q.cookie;
	rep.coff = q.coff;
	if (q.op != UNET_RDMA_READ) {
		struct unet_mr *mr = mr_lookup(r, q.key);
		rep.status =
		    mr ? unet__rdma_exec(mr->addr, mr->len, mr->perms, &q, NULL, &rep.value)
		       : -EACCES;
	}
	/* Replies leave in order: behind any deferred one. */
	if (r->def_head == r->def_tail) {
		int rc = send_reply(r, (uint16_t)m->chan, &q, &rep);
		if (rc != -EAGAIN && rc != -EBUSY)
			return;
	}
	if (r->def_tail - r->def_head == DEFER_SLOTS) {
		r->st.def_drop++; /* the initiator's operation will time out */
		return;
	}
	struct deferred *d = &r->defer[r->def_tail++ % DEFER_SLOTS];
	d->q = q;
	d->q.payload = NULL;
	d->rep = rep;
	d->chan = (uint16_t)m->chan;
}

/* ---- posting and polling --------------------------------------------------------- */

static int post(struct unet_rdma *r, uint8_t op, unsigned chan, uint64_t key, uint64_t off,
		void *local, uint32_t len, uint64_t a0, uint64_t a1, uint64_t wr_id)
{
	struct unet_pool_view v;
	int rc;

	if (r->inflight >= r->attr.cq_depth)
		return -EAGAIN;
	if (chan >= r->nchan)
		return -ENOTCONN;
	if (key & RDMA_KEY_ONESIDED) {
		rc = r->ep->nic->ops->pool ? r->ep->nic->ops->pool(r->ep, (int)chan, &v)
					   : -EOPNOTSUPP;
		if (rc == 0) {
			struct ichan *ic = &r->ic[chan];
			const struct unet__rdma_kt_hdr *h = kt_hdr(v.keytab);
			uint64_t inst = __atomic_load_n(&h->inst, __ATOMIC_ACQUIRE);
			uint64_t value = 0;
			int st;
			if (inst != ic->inst || ic->mode == IC_NONE) {
				if (inst == 0 ||
				    __atomic_load_n(&h->magic, __ATOMIC_ACQUIRE) != RDMA_KT_MAGIC) {
					/* No rdma layer there: no region exists. */
					r->inflight++;
					cq_push(r, wr_id, -EACCES, op, 0);
					return 0;
				}
				ic_claim(r, ic, &v, inst);
			}
			if (ic->mode == IC_ONESIDED) {
				st = onesided(ic, &v, op, key, off, local, len, a0, a1, &value);
				r->inflight++;
				cq_push(r, wr_id, st, op, st ? 0 : value);
				return 0;
			}
		} else if (rc == -ENOTCONN) {
			rc = unet_chan_status(r->ep, chan);
			if (rc == -ECONNRESET) {
				r->inflight++;
				cq_push(r, wr_id, -ECONNRESET, op, 0);
				return 0;
			}
			if (rc < 0)
				return rc;
		}
	}
	rc = unet__msg_chan_state(r->mep, chan);
	if (rc == -ENOTCONN)
		return -ENOTCONN;
	if (rc < 0 && rc != -EINPROGRESS) {
		r->inflight++;
		cq_push(r, wr_id, fail_code(rc), op, 0);
		return 0;
	}
	return post_served(r, op, chan, key, off, local, len, a0, a1, wr_id);
}

int unet_rdma_read(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off, void *local,
		   uint32_t len, uint64_t wr_id)
{
	if (!r || (!local && len))
		return -EINVAL;
	return post(r, UNET_RDMA_READ, chan, key, off, local, len, 0, 0, wr_id);
}

int unet_rdma_write(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off,
		    const void *local, uint32_t len, uint64_t wr_id)
{
	if (!r || (!local && len))
		return -EINVAL;
	return post(r, UNET_RDMA_WRITE, chan, key, off, (void *)(uintptr_t)local, len, 0, 0, wr_id);
}

int unet_rdma_cas(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off, uint64_t expect,
		  uint64_t desired, uint64_t wr_id)
{
	if (!r)
		return -EINVAL;
	return post(r, UNET_RDMA_CAS, chan, key, off, NULL, 8, expect, desired, wr_id);
}

int unet_rdma_fadd(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off, uint64_t add,
		   uint64_t wr_id)
{
	if (!r)
		return -EINVAL;
	return post(r, UNET_RDMA_FADD, chan, key, off, NULL, 8, add, 0, wr_id);
}

int unet_rdma_progress(struct unet_rdma *r)
{
	int n;

	if (!r)
		return -EINVAL;
	flush_deferred(r);
	n = unet_msg_poll(r->mep, POLL_BUDGET);
	flush_deferred(r);
	if (r->fail_pending)
		sweep_failed(r);
	if (r->pend_head != NIL)
		issue_pending(r);
	if (r->fail_pending)
		sweep_failed(r);
	if (r->nactive && (++r->tick & 1023) == 0)
		sweep(r, unet__now_ns());
	if (r->quar && (r->tick & 4095) == 0) {
		uint64_t now = unet__now_ns();
		bool slow = now - r->quar_check_ns > 100000000ull;
		if (slow)
			r->quar_check_ns = now;
		quarantine_reap(r, slow);
	}
	return n;
}

int unet_rdma_poll(struct unet_rdma *r, struct unet_rdma_comp *c, unsigned max)
{
	uint32_t n;

	if (!r || (!c && max))
		return -EINVAL;
	/* One-sided completions are ready at post time: reap them without a
	 * trip through msg, but still serve peers every 16th call. */
	if (r->cq_tail == r->cq_head || (++r->polls & 15) == 0)
		unet_rdma_progress(r);
	n = r->cq_tail - r->cq_head;
	if (n > max)
		n = max;
	for (uint32_t i = 0; i < n; i++)
		c[i] = r->cq[(r->cq_head + i) & r->cq_mask];
	r->cq_head += n;
	r->inflight -= n;
	return (int)n;
}

void unet_rdma_destroy(struct unet_rdma *r)
{
	if (!r)
		return;
	unet__msg_handle_reserved(r->mep, UNET__RDMA_MSG_REQ, NULL, NULL);
	unet__msg_handle_reserved(r->mep, UNET__RDMA_MSG_REP, NULL, NULL);
	unet__msg_on_fail(r->mep, NULL, NULL);
	for (uint32_t i = 1; i < r->nmrs; i++)
		if (r->mrs[i].kind != MR_FREE)
			unet_mr_revoke(r, &r->mrs[i]);
	/* Give our slots at peers back: a peer may host many initiators. */
	for (unsigned c = 0; c < r->nchan; c++) {
		struct unet_pool_view v;
		struct ichan *ic = &r->ic[c];
		if (ic->mode != IC_ONESIDED || r->ep->nic->ops->pool(r->ep, (int)c, &v) < 0 ||
		    __atomic_load_n(&kt_hdr(v.keytab)->inst, __ATOMIC_ACQUIRE) != ic->inst)
			continue;
		struct unet__rdma_islot *s = islot(v.base, ic->slot_off);
		uint64_t tok = r->token;
		__atomic_compare_exchange_n(&s->owner, &tok, 0, false, __ATOMIC_ACQ_REL,
					    __ATOMIC_RELAXED);
	}
	if (r->has_pool) {
		struct unet__rdma_kt_hdr *h = kt_hdr(r->pool.keytab);
		__atomic_store_n(&h->magic, 0, __ATOMIC_RELEASE);
		__atomic_store_n(&h->inst, 0, __ATOMIC_RELEASE);
	}
	while (r->quar) {
		struct quarantine *q = r->quar;
		r->quar = q->next;
		free(q);
	}
	unet__rdma_heap_fini(&r->heap);
	free(r->mrs);
	free(r->ic);
	free(r->ops);
	free(r->free_ops);
	free(r->cq);
	free(r->defer);
	free(r->chan_fail);
	free(r);
}
