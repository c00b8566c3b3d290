/*
 * placement.c - consistent-hashing ring with virtual nodes (see placement.h).
 */
#include <errno.h>
#include <stdlib.h>

#include "placement.h"

uint64_t farm_hash64(uint64_t x)
{
	/* splitmix64's finaliser: full avalanche, cheap. */
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

static int point_cmp(const void *a, const void *b)
{
	const struct farm_ring_point *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return x->member < y->member ? -1 : x->member > y->member;
}

int farm_ring_build(struct farm_ring *r, const uint32_t *members, uint32_t n, uint32_t vnodes)
{
	r->pts = NULL;
	r->npts = r->nmembers = 0;
	if (n == 0)
		return -EINVAL;
	if (vnodes == 0)
		vnodes = 64;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t j = i + 1; j < n; j++)
			if (members[i] == members[j])
				return -EINVAL;
	r->pts = calloc((size_t)n * vnodes, sizeof(*r->pts));
	if (!r->pts)
		return -ENOMEM;
	for (uint32_t i = 0; i < n; i++)
		for (uint32_t v = 0; v < vnodes; v++) {
			struct farm_ring_point *p = &r->pts[(size_t)i * vnodes + v];
			p->member = members[i];
			p->hash = farm_hash64(((uint64_t)members[i] << 32) ^ farm_hash64(v + 1));
		}
	r->npts = n * vnodes;
	r->nmembers = n;
	qsort(r->pts, r->npts, sizeof(*r->pts), point_cmp);
	return 0;
}

void farm_ring_free(struct farm_ring *r)
{
	free(r->pts);
	r->pts = NULL;
	r->npts = r->nmembers = 0;
}

uint32_t farm_ring_place(const struct farm_ring *r, uint32_t region, uint32_t *out, uint32_t k)
{
	uint64_t h = farm_hash64(0x5245474eull << 32 | region); /* "REGN" salt */
	uint32_t lo = 0, hi = r->npts, got = 0;

	if (k > r->nmembers)
		k = r->nmembers;
	if (k > FARM_MAX_REPLICAS)
		k = FARM_MAX_REPLICAS;
	while (lo < hi) { /* first point with hash >= h */
		uint32_t mid = lo + (hi - lo) / 2;
		if (r->pts[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (uint32_t step = 0; step < r->npts && got < k; step++) {
		uint32_t m = r->pts[(lo + step) % r->npts].member;
		uint32_t i;
		for (i = 0; i < got && out[i] != m; i++)
			;
		if (i == got)
			out[got++] = m;
	}
	return got;
}
