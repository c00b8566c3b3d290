/*
 * rdma_alloc.c - the allocator behind unet_mr_alloc on a shm RDMA pool.
 *
 * First fit over a sorted array of free extents, coalescing on free. The
 * pool holds few, long-lived regions (FaRM registers a handful of large
 * ones), so a linear scan is cheaper than anything clever, and the array is
 * sized once: every allocation splits at most one extent, so free extents
 * never outnumber live allocations plus one. Offsets only; the caller owns
 * the memory and its zeroing.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "rdma_wire.h"

#define ALIGN 64u

int unet__rdma_heap_init(struct unet__rdma_heap *h, uint64_t base, uint64_t size, uint32_t cap)
{
	memset(h, 0, sizeof(*h));
	if (cap < 2 || base % ALIGN)
		return -EINVAL;
	h->ext = calloc(cap, sizeof(*h->ext));
	if (!h->ext)
		return -ENOMEM;
	h->cap = cap;
	h->base = base;
	h->size = size / ALIGN * ALIGN;
	if (h->size) {
		h->ext[0].off = base;
		h->ext[0].len = h->size;
		h->n = 1;
	}
	return 0;
}

void unet__rdma_heap_fini(struct unet__rdma_heap *h)
{
	free(h->ext);
	memset(h, 0, sizeof(*h));
}

int unet__rdma_heap_alloc(struct unet__rdma_heap *h, uint64_t len, uint64_t *off)
{
	if (len == 0 || len > h->size)
		return -ENOMEM;
	len = (len + ALIGN - 1) / ALIGN * ALIGN;
	for (uint32_t i = 0; i < h->n; i++) {
		if (h->ext[i].len < len)
			continue;
		*off = h->ext[i].off;
		h->ext[i].off += len;
		h->ext[i].len -= len;
		if (h->ext[i].len == 0) {
			memmove(&h->ext[i], &h->ext[i + 1], (h->n - i - 1) * sizeof(*h->ext));
			h->n--;
		}
		h->used += len;
		return 0;
	}
	return -ENOMEM;
}

int unet__rdma_heap_free(struct unet__rdma_heap *h, uint64_t off, uint64_t len)
{
	uint32_t i;

	len = (len + ALIGN - 1) / ALIGN * ALIGN;
	if (len == 0 || off % ALIGN || off < h->base || off - h->base > h->size ||
	    len > h->size - (off - h->base))
		return -EINVAL;
	/* i = first extent after the freed range. */
	for (i = 0; i < h->n && h->ext[i].off < off; i++)
		;
	if ((i > 0 && h->ext[i - 1].off + h->ext[i - 1].len > off) ||
	    (i < h->n && off + len > h->ext[i].off))
		return -EINVAL;
	bool left = i > 0 && h->ext[i - 1].off + h->ext[i - 1].len == off;
	bool right = i < h->n && off + len == h->ext[i].off;
	if (left && right) {
		h->ext[i - 1].len += len + h->ext[i].len;
		memmove(&h->ext[i], &h->ext[i + 1], (h->n - i - 1) * sizeof(*h->ext));
		h->n--;
	} else if (left) {
		h->ext[i - 1].len += len;
	} else if (right) {
		h->ext[i].off = off;
		h->ext[i].len += len;
	} else {
		if (h->n == h->cap)
			return -ENOSPC; /* cannot happen when cap >= allocations + 1 */
		memmove(&h->ext[i + 1], &h->ext[i], (h->n - i) * sizeof(*h->ext));
		h->ext[i].off = off;
		h->ext[i].len = len;
		h->n++;
	}
	h->used -= len;
	return 0;
}
