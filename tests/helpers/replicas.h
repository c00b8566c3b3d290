/*
 * replicas.h - do two replicas of a FaRM region hold the same state? Used
 * by every test that checks replication (transactions, re-replication,
 * join, the fault harness). Linked into every test program.
 */
#ifndef TESTS_HELPERS_REPLICAS_H
#define TESTS_HELPERS_REPLICAS_H

#include <stdint.h>

/* Compare the bytes of two replicas of a region of `size` bytes: the
 * region header and slab headers whole, allocated objects whole (and
 * unlocked), free slots by their allocated bit only (the allocator's
 * free-list link lives in them at the primary alone), and everything past
 * the last slab (never carved: the same everywhere). Returns 0 when they
 * agree, else the first differing offset + 1. *objs counts the objects
 * compared; *hwm (may be NULL) gets the end of the slabs. */
uint64_t replicas_diff(const uint8_t *p, const uint8_t *b, uint64_t size, uint64_t *objs,
		       uint64_t *hwm);

#endif /* TESTS_HELPERS_REPLICAS_H */
