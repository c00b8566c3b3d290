/*
 * ring.h - single-producer / single-consumer descriptor rings.
 *
 * Every U-Net queue (send, receive, free, completion) is one of these. The
 * shape follows AF_XDP's rings so the hot path fits on one screen:
 *
 *   producer:  n = unet_ring_prod__reserve(r, want, &idx);
 *              fill unet_ring__slot(r, idx + i) for i < n;
 *              unet_ring_prod__submit(r, n);
 *   consumer:  n = unet_ring_cons__peek(r, want, &idx);
 *              read unet_ring__slot(r, idx + i) for i < n;
 *              unet_ring_cons__release(r, n);
 *
 * The shared part (struct unet_ring_hdr plus the slots) may live in memory
 * mapped by two processes; struct unet_ring is each side's private view. The
 * geometry (size, mask, element size) lives only in the private view, so a
 * peer scribbling on the shared header can corrupt the queue's contents but
 * never make us index outside it: every slot address is masked.
 *
 * Ordering: the producer writes slots, then publishes `prod` with a release
 * store; the consumer loads `prod` with acquire before reading slots. The
 * consumer publishes `cons` with release after it has finished reading; the
 * producer loads it with acquire before overwriting. Indices are free-running
 * 32-bit counters; differences are taken modulo 2^32.
 *
 * Each side keeps a cached copy of the other side's index and touches the
 * shared cache line only when the cache says the ring is full (producer) or
 * empty (consumer), so a batch costs one cross-core transfer, not one per slot.
 */
#ifndef UNET_RING_H
#define UNET_RING_H

#include <stddef.h>
#include <stdint.h>

#define UNET_CACHELINE 64

/* Shared header. Producer and consumer indices sit on their own cache lines
 * so the two sides never write the same line. */
struct unet_ring_hdr {
	_Alignas(UNET_CACHELINE) uint32_t prod;
	_Alignas(UNET_CACHELINE) uint32_t cons;
	/* Consumer sets UNET_RING_NEED_WAKEUP before it sleeps; the producer
	 * reads it after publishing and kicks the consumer's doorbell. */
	_Alignas(UNET_CACHELINE) uint32_t flags;
};
#define UNET_RING_NEED_WAKEUP 1u

/* Private view of one side. */
struct unet_ring {
	uint32_t cached_prod;
	uint32_t cached_cons;
	uint32_t mask;
	uint32_t size;
	uint32_t esize;
	uint32_t pub; /* our own index as last published (prod or cons) */
	struct unet_ring_hdr *hdr;
	void *slots;
};

/* Bytes needed for a ring of `size` slots of `esize` bytes (header included,
 * slots cache-line aligned). `size` must be a power of two. */
static inline size_t unet_ring__bytes(uint32_t size, uint32_t esize)
{
	return sizeof(struct unet_ring_hdr) + (size_t)size * esize;
}

/* Attach a private view to ring memory at `mem`. `init` zeroes the shared
 * indices (only the creator does that). Returns 0 or -EINVAL (size not a
 * power of two). */
int unet_ring_attach(struct unet_ring *r, void *mem, uint32_t size, uint32_t esize, int init);

static inline void *unet_ring__slot(const struct unet_ring *r, uint32_t idx)
{
	return (char *)r->slots + (size_t)(idx & r->mask) * r->esize;
}

/* Free slots as the producer sees them, refreshing the cached consumer index
 * only when the cache cannot satisfy `want`. */
static inline uint32_t unet_ring_prod__nb_free(struct unet_ring *r, uint32_t want)
{
	uint32_t used = r->cached_prod - r->cached_cons;
	uint32_t free = used > r->size ? 0 : r->size - used;

	if (free >= want)
		return free;
	r->cached_cons = __atomic_load_n(&r->hdr->cons, __ATOMIC_ACQUIRE);
	used = r->cached_prod - r->cached_cons;
	return used > r->size ? 0 : r->size - used; /* a lying peer gets no space */
}

/* Reserve up to `n` slots; returns how many (0 when full). */
static inline uint32_t unet_ring_prod__reserve(struct unet_ring *r, uint32_t n, uint32_t *idx)
{
	uint32_t free = unet_ring_prod__nb_free(r, n);

	if (n > free)
		n = free;
	*idx = r->cached_prod;
	r->cached_prod += n;
	return n;
}

/* Publish the oldest `n` reserved slots to the consumer. */
static inline void unet_ring_prod__submit(struct unet_ring *r, uint32_t n)
{
	r->pub += n;
	__atomic_store_n(&r->hdr->prod, r->pub, __ATOMIC_RELEASE);
}

/* Entries available to the consumer, refreshing the cached producer index
 * only when the cache is empty. Never more than the ring size, whatever the
 * producer wrote. */
static inline uint32_t unet_ring_cons__nb_avail(struct unet_ring *r, uint32_t want)
{
	uint32_t n = r->cached_prod - r->cached_cons;

	if (n == 0 || n < want) {
		r->cached_prod = __atomic_load_n(&r->hdr->prod, __ATOMIC_ACQUIRE);
		n = r->cached_prod - r->cached_cons;
	}
	/* Corrupt producer: clamp, the caller validates slots. Checked on the
	 * cached path too: attach copies the peer's index unchecked. */
	if (n > r->size) {
		r->cached_prod = r->cached_cons + r->size;
		n = r->size;
	}
	return n;
}

static inline uint32_t unet_ring_cons__peek(struct unet_ring *r, uint32_t n, uint32_t *idx)
{
	uint32_t avail = unet_ring_cons__nb_avail(r, n);

	if (n > avail)
		n = avail;
	*idx = r->cached_cons;
	r->cached_cons += n;
	return n;
}

/* Give the oldest `n` peeked slots back to the producer. */
static inline void unet_ring_cons__release(struct unet_ring *r, uint32_t n)
{
	r->pub += n;
	__atomic_store_n(&r->hdr->cons, r->pub, __ATOMIC_RELEASE);
}

/* Undo a peek of the newest `n` slots, which were not consumed. */
static inline void unet_ring_cons__cancel(struct unet_ring *r, uint32_t n)
{
	r->cached_cons -= n;
}

/* Undo a reservation of the newest `n` slots, which were not filled. */
static inline void unet_ring_prod__cancel(struct unet_ring *r, uint32_t n)
{
	r->cached_prod -= n;
}

#endif /* UNET_RING_H */
