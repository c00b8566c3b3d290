/*
 * rdma.h - registered memory and one-sided operations on U-Net endpoints
 * (the VIA / RDMA verbs layer).
 *
 * Register memory, hand its key to peers, and let them READ, WRITE,
 * compare-and-swap and fetch-and-add it with no action of yours:
 *
 *   struct unet_rdma *r;   unet_rdma_create(msg_ep, NULL, &r);
 *   struct unet_mr *mr;    unet_mr_alloc(r, 1 << 20, UNET_MR_READ | UNET_MR_WRITE, &mr);
 *   uint64_t key = unet_mr_key(mr);          ... send key to the peer ...
 *   peer: unet_rdma_read(r, chan, key, off, buf, len, wr_id);
 *         unet_rdma_poll(r, comps, 16);      ... comps[i].status == 0 ...
 *
 * How each NIC serves the peer's operations:
 *   shm  truly one-sided. Memory from unet_mr_alloc() comes from the
 *        endpoint's RDMA pool, a memfd each channel peer maps at channel
 *        set-up, next to the owner's key table (mapped read-only by peers).
 *        The initiator checks key, bounds and permission in that table and
 *        touches the memory itself: the target may be stopped (SIGSTOP) and
 *        operations still complete. Atomics are the CPU's, so they are
 *        atomic with respect to other remote atomics and to local atomics
 *        on the same word.
 *        Trust model: peers are processes of the same user running this
 *        library. Peers map the pool read-write and the library checks
 *        key, bounds and permission before every access; the key table is
 *        mapped read-only by peers (the kernel enforces it), so a peer can
 *        never grant itself access. A process that bypasses the library can
 *        touch the pool of an endpoint it has a channel to, as it could
 *        ptrace that endpoint anyway.
 *   udp, xdp, and shm memory from unet_mr_reg() (arbitrary user memory):
 *        served by the target's progress loop (unet_rdma_progress or any
 *        unet_msg_poll on its endpoint), as soft-RoCE serves them in a
 *        kernel: the request travels as a reliable message, the target
 *        checks the key and executes with the same CPU atomics.
 *
 * Protection: a wrong key, a revoked key, an offset or length outside the
 * region, or an operation the region does not permit completes with an
 * error status and touches no byte. Revocation is immediate for operations
 * issued after unet_mr_revoke() returns.
 */
#ifndef UNET_RDMA_H
#define UNET_RDMA_H

#include <stddef.h>
#include <stdint.h>

#include "unet/msg.h"

#ifdef __cplusplus
extern "C" {
#endif

#define UNET_MR_READ 0x1
#define UNET_MR_WRITE 0x2
#define UNET_MR_ATOMIC 0x4

enum unet_rdma_op { UNET_RDMA_READ = 1, UNET_RDMA_WRITE, UNET_RDMA_CAS, UNET_RDMA_FADD };

struct unet_rdma;
struct unet_mr;

struct unet_rdma_attr {
	size_t pool_size;  /* bytes for unet_mr_alloc (default 64 MiB); on shm the
			      pool is shared with channel peers */
	uint32_t max_mrs;  /* registrations (default 256) */
	uint32_t cq_depth; /* completion queue (default 4096): in-flight limit */
	uint32_t timeout_ms; /* served operations with no reply for this long
				complete with -ETIMEDOUT (default 5000) */
};

struct unet_rdma_comp {
	uint64_t wr_id;
	int status;        /* 0, or: -EACCES (bad/revoked key or permission),
			      -ERANGE (outside the region), -EINVAL (misaligned
			      atomic), -ETIMEDOUT, -ECONNRESET (peer gone),
			      -EPROTO never from a correct peer */
	uint8_t op;        /* enum unet_rdma_op */
	uint64_t value;    /* CAS/FADD: the word's value before the operation */
};

/* The RDMA layer on top of a msg endpoint (which stays the caller's). */
int unet_rdma_create(struct unet_msg_ep *mep, const struct unet_rdma_attr *attr,
		     struct unet_rdma **out);
void unet_rdma_destroy(struct unet_rdma *r);

/* Allocate and register `len` bytes (zeroed, 64-byte aligned). */
int unet_mr_alloc(struct unet_rdma *r, size_t len, unsigned perms, struct unet_mr **out);
/* Register existing memory. On shm its operations need the owner's progress. */
int unet_mr_reg(struct unet_rdma *r, void *addr, size_t len, unsigned perms,
		struct unet_mr **out);
/* Revoke the key (further operations fail with -EACCES) and release. */
int unet_mr_revoke(struct unet_rdma *r, struct unet_mr *mr);
uint64_t unet_mr_key(const struct unet_mr *mr);
void *unet_mr_addr(const struct unet_mr *mr);
size_t unet_mr_len(const struct unet_mr *mr);

/* Post operations against (key, offset) on the peer at `chan`. Each returns
 * 0 once posted (its completion carries the outcome) or -EAGAIN when
 * cq_depth operations are in flight (poll first), -ENOTCONN for a channel
 * that is not attached. `local` must stay valid until the completion. */
int unet_rdma_read(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off, void *local,
		   uint32_t len, uint64_t wr_id);
int unet_rdma_write(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off,
		    const void *local, uint32_t len, uint64_t wr_id);
/* 8-byte, 8-aligned word at off: if it equals `expect`, set it to `desired`.
 * The completion's value is the old word (success iff value == expect). */
int unet_rdma_cas(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off,
		  uint64_t expect, uint64_t desired, uint64_t wr_id);
int unet_rdma_fadd(struct unet_rdma *r, unsigned chan, uint64_t key, uint64_t off,
		   uint64_t add, uint64_t wr_id);

/* Reap completions; also makes progress (serves peers' requests). */
int unet_rdma_poll(struct unet_rdma *r, struct unet_rdma_comp *c, unsigned max);
/* Serve peers' requests and move messages without reaping. Returns the
 * messages dispatched (0 when idle: a caller may then block, e.g. in
 * unet_msg_idle), or a negative code. */
int unet_rdma_progress(struct unet_rdma *r);

#ifdef __cplusplus
}
#endif
#endif /* UNET_RDMA_H */
