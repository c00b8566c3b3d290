/*
 * regionmap.c - the region map from the placement ring (see regionmap.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "config.h"
#include "placement.h"
#include "regionmap.h"

int farm_rmap_build(struct farm_rmap *m, const struct farm_config *cfg)
{
	uint32_t ids[FARM_MAX_MEMBERS];
	struct farm_ring ring;
	int rc;

	m->rep = NULL;
	m->nregions = m->k = 0;
	if (!cfg->nmembers || cfg->nmembers > FARM_MAX_MEMBERS || !cfg->regions)
		return -EINVAL;
	for (uint32_t i = 0; i < cfg->nmembers; i++)
		ids[i] = cfg->members[i].id;
	if ((rc = farm_ring_build(&ring, ids, cfg->nmembers, cfg->vnodes)))
		return rc;
	m->k = farm__config_k(cfg);
	if (m->k > FARM_MAX_REPLICAS)
		m->k = FARM_MAX_REPLICAS;
	m->rep = calloc((size_t)cfg->regions * m->k, sizeof(*m->rep));
	if (!m->rep) {
		farm_ring_free(&ring);
		return -ENOMEM;
	}
	m->nregions = cfg->regions;
	for (uint32_t r = 0; r < m->nregions; r++)
		if (farm_ring_place(&ring, r, &m->rep[(uint64_t)r * m->k], m->k) != m->k) {
			farm_ring_free(&ring);
			farm_rmap_free(m);
			return -EINVAL;
		}
	farm_ring_free(&ring);
	return 0;
}

void farm_rmap_free(struct farm_rmap *m)
{
	free(m->rep);
	m->rep = NULL;
	m->nregions = m->k = 0;
}

int farm_rmap_role(const struct farm_rmap *m, uint32_t region, uint32_t member)
{
	const uint32_t *rep;

	if (region >= m->nregions)
		return -1;
	rep = farm_rmap_replicas(m, region);
	for (uint32_t i = 0; i < m->k; i++)
		if (rep[i] == member)
			return (int)i;
	return -1;
}

uint32_t farm_rmap_held(const struct farm_rmap *m, uint32_t member, uint32_t *primaries)
{
	uint32_t held = 0, prim = 0;

	for (uint32_t r = 0; r < m->nregions; r++) {
		int role = farm_rmap_role(m, r, member);
		held += role >= 0;
		prim += role == 0;
	}
	if (primaries)
		*primaries = prim;
	return held;
}
