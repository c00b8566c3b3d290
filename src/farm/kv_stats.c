/*
 * kv_stats.c - farm_kv_scan_stats: the shape of a table, read segment by
 * segment (each segment once: the first of its 2^(g-d) directory entries).
 * For tools (`farm kv scan-stats`); it reads the whole table.
 */
#include <errno.h>

#include "kv_int.h"

static void count(struct farm_kv *kv, const uint8_t *s, int dist, struct farm_kv_scan *sc)
{
	uint64_t m = kv_get64(s);
	uint32_t kl = kv_m_klen(m);

	if (kl == 0)
		return;
	sc->keys++;
	if (kl == KV_KLEN_OOL) {
		sc->ool_keys++;
		sc->key_bytes += kv_get32(s + 24);
		sc->val_bytes += kv_get32(s + 28);
	} else {
		sc->inline_keys++;
		sc->key_bytes += kl;
		sc->val_bytes += kv_m_vlen(m);
	}
	if (dist < 0) {
		sc->ovf_keys++;
		return;
	}
	sc->dist[dist < 15 ? dist : 15]++;
}

int farm_kv_scan_stats(struct farm_kv *kv, struct farm_kv_scan *sc)
{
	int rc;

	if (!kv || !sc)
		return -EINVAL;
	memset(sc, 0, sizeof(*sc));
	if ((rc = kv__dir_load(kv)))
		return rc;
	sc->neighbourhood = KV_H;
	sc->global_depth = kv->g;
	sc->min_local_depth = UINT32_MAX;
	for (uint64_t idx = 0; idx < (1ull << kv->g); idx++) {
		uint64_t e = kv->dir[idx];
		uint32_t d = kv_e_depth(e);
		if (d > kv->g || idx % (1ull << (kv->g - d)))
			continue;
		if ((rc = farm_read(kv->f, kv_e_addr(e), kv->seg, KV_SEG_BYTES, NULL)))
			return rc;
		sc->segments++;
		sc->slots += KV_SLOTS;
		if (d > sc->max_local_depth)
			sc->max_local_depth = d;
		if (d < sc->min_local_depth)
			sc->min_local_depth = d;
		for (uint32_t i = 0; i < KV_SLOTS; i++) {
			const uint8_t *s = kv__slot(kv->seg, i);
			if (kv_m_klen(kv_get64(s)))
				count(kv, s, (int)i - (int)kv__item_home(kv, s), sc);
		}
		const uint8_t *t = kv__slot(kv->seg, KV_SLOTS);
		farm_addr_t ovf = kv_get64(t);
		uint32_t cap = kv_get32(t + 8);
		if (!ovf || !cap || cap > KV_OVF_MAX)
			continue;
		if ((rc = farm_read(kv->f, ovf, kv->ovf, cap * KV_SLOT, NULL)))
			return rc;
		for (uint32_t i = 0; i < cap; i++)
			count(kv, kv->ovf + (size_t)i * KV_SLOT, -1, sc);
	}
	if (sc->min_local_depth == UINT32_MAX)
		sc->min_local_depth = 0;
	sc->load = sc->slots ? (double)sc->keys / (double)sc->slots : 0;
	return 0;
}
