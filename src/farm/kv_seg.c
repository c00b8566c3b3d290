/*
 * kv_seg.c - hopscotch inside one segment image (payload layout, kv_int.h):
 * slot encoding, and making room for an item at its home by moving items
 * toward the end of the segment, each only within its own neighbourhood.
 *
 * Everything here works on a private copy that a transaction read; the
 * copy is written back by the transaction, so a reader sees either no move
 * or all of them (hopscotch's displacement chain is one commit).
 */
#include <errno.h>

#include "kv_int.h"

uint64_t kv__item_hash(const struct farm_kv *kv, const uint8_t *slot)
{
	uint64_t m = kv_get64(slot);
	uint32_t kl = kv_m_klen(m);

	if (kl == KV_KLEN_OOL)
		return kv_get64(slot + 8);
	return kv__hash(kv, slot + 8, kl);
}

uint32_t kv__item_home(const struct farm_kv *kv, const uint8_t *slot)
{
	return kv__home(kv__item_hash(kv, slot));
}

void kv__slot_clear(uint8_t *slot)
{
	uint64_t m = kv_get64(slot) & KV_META_SLOTBITS;

	kv_put64(slot, m);
	memset(slot + 8, 0, KV_SLOT - 8);
}

void kv__slot_move(uint8_t *to, uint8_t *from)
{
	uint64_t mt = kv_get64(to) & KV_META_SLOTBITS, mf = kv_get64(from);

	kv_put64(to, mt | (mf & ~KV_META_SLOTBITS));
	memcpy(to + 8, from + 8, KV_SLOT - 8);
	kv__slot_clear(from);
}

void kv__slot_set_inline(uint8_t *slot, const void *key, uint32_t klen, const void *val,
			 uint32_t vlen, uint64_t ver)
{
	uint64_t m = kv_get64(slot) & KV_META_SLOTBITS;

	kv_put64(slot, m | kv_m_item(klen, vlen, ver));
	memset(slot + 8, 0, KV_SLOT - 8);
	memcpy(slot + 8, key, klen);
	if (vlen)
		memcpy(slot + 8 + FARM_KV_INLINE_KEY, val, vlen);
}

void kv__slot_set_ool(uint8_t *slot, uint64_t h, farm_addr_t a, uint32_t klen, uint32_t vlen,
		      uint64_t ver)
{
	uint64_t m = kv_get64(slot) & KV_META_SLOTBITS;

	kv_put64(slot, m | kv_m_item(KV_KLEN_OOL, 0, ver));
	memset(slot + 8, 0, KV_SLOT - 8);
	kv_put64(slot + 8, h);
	kv_put64(slot + 16, a);
	kv_put32(slot + 24, klen);
	kv_put32(slot + 28, vlen);
}

int kv__seg_make_room(const struct farm_kv *kv, uint8_t *img, uint32_t home, uint32_t *moves)
{
	uint32_t j;

	for (j = home; j < KV_SLOTS; j++)
		if (kv_m_klen(kv_get64(kv__slot(img, j))) == 0)
			break;
	if (j == KV_SLOTS)
		return -ENOSPC;
	/* Every slot in [home, j) is full. Bring the hole back toward home:
	 * move into it the earliest item whose neighbourhood still covers it,
	 * which leaves a hole nearer home; stop when home's neighbourhood
	 * has the hole. */
	while (j - home >= KV_H) {
		bool moved = false;
		for (uint32_t k = j - (KV_H - 1); k < j; k++) {
			uint8_t *s = kv__slot(img, k);
			uint32_t hk = kv__item_home(kv, s);
			if (hk <= k && j < hk + KV_H) {
				kv__slot_move(kv__slot(img, j), s);
				j = k;
				moved = true;
				(*moves)++;
				break;
			}
		}
		if (!moved)
			return -ENOSPC;
	}
	return (int)j;
}

int kv__seg_last_diff(const uint8_t *a, const uint8_t *b, uint32_t lines)
{
	for (int i = (int)lines - 1; i >= 0; i--)
		if (memcmp(a + (size_t)i * KV_SLOT, b + (size_t)i * KV_SLOT, KV_SLOT))
			return i;
	return -1;
}

int kv__check_key(const void *key, size_t klen)
{
	if (!key || klen == 0)
		return -EINVAL;
	if (klen > FARM_KV_KEY_MAX)
		return -ENAMETOOLONG;
	return 0;
}
