/*
 * placement.h - where regions live: a consistent-hashing ring with virtual
 * nodes (FaRM's "map shared memory to machines via a ring").
 *
 * Each member owns `vnodes` points on a 64-bit ring. Region r hashes to a
 * point; walking clockwise from it, the first f+1 *distinct* members are its
 * replicas: the first is the primary, the rest are backups. Adding or
 * removing a member changes the replica set only of regions whose walk
 * passes one of that member's points, so about 1/n of the regions move.
 *
 * Pure computation: no I/O, no global state; a ring is rebuilt for every
 * configuration (it is small: members * vnodes points).
 */
#ifndef FARM_PLACEMENT_H
#define FARM_PLACEMENT_H

#include <stdint.h>

#define FARM_MAX_REPLICAS 8

struct farm_ring_point {
	uint64_t hash;
	uint32_t member; /* member id */
};

struct farm_ring {
	struct farm_ring_point *pts; /* sorted by hash */
	uint32_t npts;
	uint32_t nmembers; /* distinct members */
};

/* Build a ring over `n` member ids with `vnodes` points each (default 64
 * when 0). Returns 0, -EINVAL (n == 0, duplicate ids) or -ENOMEM. */
int farm_ring_build(struct farm_ring *r, const uint32_t *members, uint32_t n, uint32_t vnodes);
void farm_ring_free(struct farm_ring *r);

/* Replicas of `region`: out[0] primary, out[1..] backups, `k` of them in
 * all (k = f + 1, capped at the number of members). Returns how many. */
uint32_t farm_ring_place(const struct farm_ring *r, uint32_t region, uint32_t *out, uint32_t k);

/* The 64-bit mixer used for ring points and region hashes. */
uint64_t farm_hash64(uint64_t x);

#endif /* FARM_PLACEMENT_H */
