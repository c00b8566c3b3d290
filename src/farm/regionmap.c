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
	uint32_t ids[FARM_MAX_MEMBERS], all[FARM_MAX_MEMBERS], nd = 0, nj = 0;
	uint32_t full[FARM_MAX_REPLICAS];
	struct farm_ring ring, ring_all;
	int rc;

	m->rep = NULL;
	m->nregions = m->k = m->kd = 0;
	if (!cfg->nmembers || cfg->nmembers > FARM_MAX_MEMBERS || !cfg->regions)
		return -EINVAL;
	for (uint32_t i = 0; i < cfg->nmembers; i++) {
		all[i] = cfg->members[i].id;
		if (cfg->members[i].joining)
			nj++;
		else
			ids[nd++] = cfg->members[i].id;
	}
	if (!nd)
		return -EINVAL;
	if ((rc = farm_ring_build(&ring, ids, nd, cfg->vnodes)))
		return rc;
	if (nj && (rc = farm_ring_build(&ring_all, all, cfg->nmembers, cfg->vnodes))) {
		farm_ring_free(&ring);
		return rc;
	}
	m->kd = farm__config_k(cfg);
	if (m->kd > FARM_MAX_REPLICAS)
		m->kd = FARM_MAX_REPLICAS;
	m->k = m->kd + (nj < m->kd ? nj : m->kd);
	m->rep = calloc((size_t)cfg->regions * m->k, sizeof(*m->rep));
	if (!m->rep) {
		rc = -ENOMEM;
		goto out;
	}
	m->nregions = cfg->regions;
	rc = 0;
	for (uint32_t r = 0; r < m->nregions && !rc; r++) {
		uint32_t *rep = &m->rep[(uint64_t)r * m->k], x = m->kd;
		if (farm_ring_place(&ring, r, rep, m->kd) != m->kd) {
			rc = -EINVAL;
			break;
		}
		if (!nj)
			continue;
		/* Joiners that will hold this region once they have joined. */
		uint32_t n = (uint32_t)farm_ring_place(&ring_all, r, full, m->kd);
		for (uint32_t i = 0; i < n && x < m->k; i++) {
			int j = farm__config_member(cfg, full[i]);
			if (j >= 0 && cfg->members[j].joining)
				rep[x++] = full[i];
		}
	}
out:
	farm_ring_free(&ring);
	if (nj)
		farm_ring_free(&ring_all);
	if (rc)
		farm_rmap_free(m);
	return rc;
}

void farm_rmap_free(struct farm_rmap *m)
{
	free(m->rep);
	m->rep = NULL;
	m->nregions = m->k = m->kd = 0;
}

int farm_rmap_role(const struct farm_rmap *m, uint32_t region, uint32_t member)
{
	const uint32_t *rep;

	if (region >= m->nregions)
		return -1;
	rep = farm_rmap_replicas(m, region);
	if (!member)
		return -1;
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
