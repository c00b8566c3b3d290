/*
 * regionmap.h - the region map of one configuration: for every region its
 * replica set (primary first), computed from the placement ring. A pure
 * function of (members, regions, replicas, vnodes), so every node computes
 * the same map from the same config and nothing about placement has to be
 * sent over the network.
 */
#ifndef FARM_REGIONMAP_H
#define FARM_REGIONMAP_H

#include <stdint.h>

#include "farm/farm.h"

/* Members that are joining (farm_member.joining) hold no data yet: the
 * first kd replicas of every region come from the ring of the other
 * members, and a joiner that the ring of all members would place among a
 * region's first kd is an extra backup after them (copied from the primary
 * in the background: rerep.h), so that the configuration that ends its
 * joining moves replicas only onto a member that has them. Slots without
 * a joiner are 0. */
struct farm_rmap {
	uint32_t nregions;
	uint32_t k;    /* replica slots per region: kd, plus one per joiner (at most kd) */
	uint32_t kd;   /* replicas holding data (the first kd slots, never 0) */
	uint32_t *rep; /* nregions * k member ids (0: empty slot), primary first */
};

/* Build the map of a checked config (farm__config_finish). 0, -EINVAL,
 * -ENOMEM. */
int farm_rmap_build(struct farm_rmap *m, const struct farm_config *cfg);
void farm_rmap_free(struct farm_rmap *m);

static inline const uint32_t *farm_rmap_replicas(const struct farm_rmap *m, uint32_t region)
{
	return &m->rep[(uint64_t)region * m->k];
}

/* Role of `member` (never 0) for `region`: 0 primary, 1..k-1 backup, -1 none. */
int farm_rmap_role(const struct farm_rmap *m, uint32_t region, uint32_t member);

/* Regions `member` holds a replica of, and of those it is primary for. */
uint32_t farm_rmap_held(const struct farm_rmap *m, uint32_t member, uint32_t *primaries);

#endif /* FARM_REGIONMAP_H */
