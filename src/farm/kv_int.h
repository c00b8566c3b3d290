/*
 * kv_int.h - the inside of the key-value store (kv.h): the layout of its
 * objects in the shared address space, the handle, and the internal calls
 * shared by kv_*.c. docs/kv.md tells the design; this file fixes the bytes.
 *
 * Extendible hashing over hopscotch segments. A 64-bit keyed hash h of the
 * key picks a directory entry with its top g bits (g: global depth), the
 * entry names a segment, and the segment a home slot with h's low bits.
 *
 * Segment: one object of KV_SEG_LINES lines. Slot i is payload line i
 * (FaRM puts 56 payload bytes in every line, so a slot is exactly one line
 * and carries the line's version word in front of it):
 *
 *   slots 0 .. KV_HOMES+KV_H-2   home slots are 0..KV_HOMES-1; the
 *                                neighbourhood of home m is [m, m+KV_H),
 *                                always inside the segment (no wrap), so a
 *                                lookup is ONE read of KV_H consecutive lines
 *   line KV_SLOTS                trailer: the overflow object, if any
 *
 * A slot's first word (meta) mixes bits of the slot and of the item in it:
 *
 *   bits 59..63 klen   0 empty, 1..16 inline key, KV_KLEN_OOL out of line
 *   bits 53..58 vlen   inline value length (0..32)
 *   bits 48..52 rdepth the segment's local depth minus the table's initial
 *                      depth g0 (so a zeroed object is a valid empty segment)
 *   bit  47     ovf    items homed here overflowed into the overflow object
 *   bits 0..46  item version (unique per put, kv_ver.c)
 *
 * rdepth and ovf belong to the slot and stay when items move. Every slot
 * of a segment carries the same rdepth: a reader that holds a directory
 * entry with another depth knows its directory is stale (the segment split
 * since) from the very read it made, and refreshes.
 *
 *   inline slot:  meta | key[16] | value[32]
 *   out of line:  meta | hash | addr | klen u32 | vlen u32 | 16 zero bytes
 *   item object:  version | hash | klen u32 | vlen u32 | key | value
 *
 * Item objects are never changed after they are published: an update
 * allocates a new one and frees the old in the same transaction, and a
 * reader checks the object's version against the slot's (versions are
 * never reused, so a freed-and-reused object cannot pass).
 *
 * Table header object (one line):
 *   magic u32 | nchunks u32 | g u32 | g0 u32 | dgen | nsplits | vnext | seed
 *   | clist
 * clist is an object holding the addresses of the directory chunks; a
 * doubling publishes a new one. Splits bump nsplits and doublings dgen, so
 * a transaction that reads the header conflicts with both. The header is
 * small on purpose: a transaction logs whole objects.
 *
 * Directory chunk: KV_CHUNK entries (fewer when the directory is smaller),
 * each the segment address in bits 0..57 and its local depth in 58..63.
 */
#ifndef FARM_KV_INT_H
#define FARM_KV_INT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "farm/farm.h"
#include "farm/kv.h"
#include "object.h"

#define KV_H	     8u			   /* neighbourhood, slots */
#define KV_HOMES     32u		   /* home slots per segment */
#define KV_SLOTS     (KV_HOMES + KV_H - 1) /* 39 */
#define KV_SEG_LINES (KV_SLOTS + 1)	   /* + trailer = 40 */
#define KV_SEG_BYTES (KV_SEG_LINES * FARM_LINE_PAYLOAD)
#define KV_SLOT	     56u
#define KV_KLEN_OOL  31u
#define KV_ITEM_HDR  24u
#define KV_OVF_MAX   (FARM_OBJ_MAX / KV_SLOT) /* slots in the largest overflow */
#define KV_OVF_MIN   8u

#define KV_CHUNK      512u /* directory entries per chunk */
#define KV_MAX_G      21u  /* global depth limit */
#define KV_MAX_CHUNKS ((1u << KV_MAX_G) / KV_CHUNK)
#define KV_HDR_BYTES  56u
#define KV_HDR_MAGIC  0x31564b46u /* "FKV1" */
#define KV_ADDR_MASK  ((1ull << 58) - 1)

#define KV_CAT_ENTRIES 64u /* tables per cluster */
#define KV_CAT_BYTES   (KV_CAT_ENTRIES * 56u)
#define KV_CAT_MAGIC   0x544143564b4d5246ull /* "FRMKVCAT" */

#define KV_VER_BITS	47
#define KV_VER_MASK	((1ull << KV_VER_BITS) - 1)
#define KV_VBLOCK_SHIFT 16 /* versions reserved per block: 2^16 */

#define KV_META_OVF (1ull << 47)

_Static_assert(KV_SLOT == FARM_LINE_PAYLOAD, "a slot is one line's payload");
_Static_assert(FARM_KV_INLINE_KEY + FARM_KV_INLINE_VAL + 8 == KV_SLOT, "inline slot fills");
_Static_assert(KV_MAX_CHUNKS * 8u <= FARM_OBJ_MAX, "chunk list fits one object");
_Static_assert(KV_ITEM_HDR + FARM_KV_KEY_MAX + FARM_KV_VAL_MAX <= FARM_OBJ_MAX,
	       "an item fits one object");

/* ---- slot encoding ---- */

static inline uint64_t kv_get64(const void *p)
{
	uint64_t v;
	memcpy(&v, p, 8);
	return v;
}

static inline void kv_put64(void *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static inline uint32_t kv_get32(const void *p)
{
	uint32_t v;
	memcpy(&v, p, 4);
	return v;
}

static inline void kv_put32(void *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static inline uint32_t kv_m_klen(uint64_t m)
{
	return (uint32_t)(m >> 59);
}

static inline uint32_t kv_m_vlen(uint64_t m)
{
	return (uint32_t)(m >> 53) & 63u;
}

static inline uint32_t kv_m_rdepth(uint64_t m)
{
	return (uint32_t)(m >> 48) & 31u;
}

static inline uint64_t kv_m_ver(uint64_t m)
{
	return m & KV_VER_MASK;
}

/* The slot's own bits (rdepth, ovf): they stay when items move. */
#define KV_META_SLOTBITS ((31ull << 48) | KV_META_OVF)

static inline uint64_t kv_m_item(uint32_t klen, uint32_t vlen, uint64_t ver)
{
	return ((uint64_t)klen << 59) | ((uint64_t)(vlen & 63u) << 53) | (ver & KV_VER_MASK);
}

static inline uint64_t kv_m_slot(uint32_t rdepth, bool ovf)
{
	return ((uint64_t)(rdepth & 31u) << 48) | (ovf ? KV_META_OVF : 0);
}

/* Directory entries. */
static inline farm_addr_t kv_e_addr(uint64_t e)
{
	return e & KV_ADDR_MASK;
}

static inline uint32_t kv_e_depth(uint64_t e)
{
	return (uint32_t)(e >> 58);
}

static inline uint64_t kv_e_make(farm_addr_t a, uint32_t depth)
{
	return (a & KV_ADDR_MASK) | ((uint64_t)depth << 58);
}

/* The table header. */
struct kv_hdr0 {
	uint32_t magic, nchunks;
	uint32_t g, g0;
	uint64_t dgen, nsplits, vnext, seed;
	farm_addr_t clist;
};
_Static_assert(sizeof(struct kv_hdr0) == KV_HDR_BYTES, "the header is one line");

/* A catalog entry (one line). */
struct kv_cat_ent {
	char name[48];
	uint64_t hdr;
};
_Static_assert(sizeof(struct kv_cat_ent) == 56, "catalog entry is one line");

/* ---- the handle ---- */

typedef uint64_t (*kv_hash_fn)(const void *key, size_t klen, uint64_t seed);

/* One neighbourhood read of a multi-get batch. */
struct kv_nb {
	uint64_t cfg, h1, h2;
	uint8_t lines[KV_H * FARM_LINE];
};

#define KV_MGET_BATCH 32u

struct farm_kv {
	struct farm *f;
	char name[FARM_KV_NAME_MAX + 1];
	farm_addr_t hdr;
	uint64_t seed;
	kv_hash_fn hash;

	/* Directory cache: 2^g entries, refreshed when a read meets a segment
	 * whose depth disagrees with its entry. */
	uint32_t g, g0, nchunks;
	uint64_t dgen;
	uint64_t *dir;
	farm_addr_t clist;
	farm_addr_t *chunks;

	/* Versions: a reserved block, used up one per put. */
	uint64_t vblock, vused;
	uint32_t near_rr;

	/* Scratch, all allocated at open: the hot paths never allocate. */
	uint8_t *nb;		       /* KV_H lines: one neighbourhood (line-aligned) */
	uint8_t *obj;		       /* FARM_OBJ_MAX: item and overflow objects */
	uint8_t *seg, *seg0;	       /* KV_SEG_BYTES: segment image and its original */
	uint8_t *seg2;		       /* KV_SEG_BYTES: the other half of a split */
	uint8_t *ovf, *ovf2;	       /* FARM_OBJ_MAX: overflow images of a split */
	uint8_t *chunk;		       /* KV_CHUNK * 8 */
	struct kv_nb *batch;	       /* KV_MGET_BATCH */
	uint64_t rd_cfg, rd_h1, rd_h2; /* words of a single read */

	struct farm_kv_stats st;
};

/* kv_hash.c */
uint64_t kv__hash_default(const void *key, size_t klen, uint64_t seed);
static inline uint64_t kv__hash(const struct farm_kv *kv, const void *key, size_t klen)
{
	return kv->hash(key, klen, kv->seed);
}
static inline uint32_t kv__home(uint64_t h)
{
	return (uint32_t)h & (KV_HOMES - 1);
}
static inline uint32_t kv__dir_index(uint64_t h, uint32_t g)
{
	return g ? (uint32_t)(h >> (64 - g)) : 0;
}
/* The hash bit that splits a segment of local depth d. */
static inline bool kv__split_bit(uint64_t h, uint32_t d)
{
	return (h >> (63 - d)) & 1;
}

/* Test hook: replace the hash function of this handle (NULL: default).
 * Every handle of a table must use the same function. */
void farm_kv__set_hash(struct farm_kv *kv, kv_hash_fn fn);

/* kv_read.c: a consistent one-sided read of `n` whole lines [first,
 * first+n) of object `a` into `lines` (n*64 bytes, line words included):
 * the lines and the object's header were read between two loads of the
 * header that agree, unlocked, and every line carries the version. 0 with
 * *ver, or farm_read's errors. */
int kv__read_lines(struct farm_kv *kv, farm_addr_t a, uint32_t first, uint32_t n, uint8_t *lines,
		   uint64_t *ver);
/* The object's current version (header word), one read. */
int kv__read_version(struct farm_kv *kv, farm_addr_t a, uint64_t *ver);
/* Post the neighbourhood reads of up to KV_MGET_BATCH segments (addrs[i],
 * homes[i]) into kv->batch[i] and wait for all; rc[i] per read: 0 (use
 * kv__nb_check), or an error. */
int kv__read_batch(struct farm_kv *kv, const farm_addr_t *addrs, const uint32_t *homes, unsigned n,
		   int *rc);
/* Check batch entry i (seqlock rules); 0, -EAGAIN (torn: read again). */
int kv__nb_check(struct farm_kv *kv, unsigned i, uint32_t home);

/* kv_seg.c: segment images in payload layout (slot i at i*KV_SLOT). */
static inline uint8_t *kv__slot(uint8_t *img, uint32_t i)
{
	return img + (size_t)i * KV_SLOT;
}
/* Home slot of the item in `slot` (its hash from the key or the slot). */
uint32_t kv__item_home(const struct farm_kv *kv, const uint8_t *slot);
uint64_t kv__item_hash(const struct farm_kv *kv, const uint8_t *slot);
/* Move the item of slot `from` to the empty slot `to` (slot bits stay). */
void kv__slot_move(uint8_t *to, uint8_t *from);
void kv__slot_clear(uint8_t *slot);
/* Free slot for an item homed at `home`, making room by hopscotch moves
 * inside [home, home+KV_H) when needed. Returns its index, or -ENOSPC;
 * *moves counts the displacements. */
int kv__seg_make_room(const struct farm_kv *kv, uint8_t *img, uint32_t home, uint32_t *moves);
/* Fill an inline slot's item part. */
void kv__slot_set_inline(uint8_t *slot, const void *key, uint32_t klen, const void *val,
			 uint32_t vlen, uint64_t ver);
void kv__slot_set_ool(uint8_t *slot, uint64_t h, farm_addr_t a, uint32_t klen, uint32_t vlen,
		      uint64_t ver);
/* Does the inline slot hold `key`? (OOL slots: compare the hash, then the
 * object.) */
static inline bool kv__inline_match(const uint8_t *slot, const void *key, uint32_t klen)
{
	uint64_t m = kv_get64(slot);
	return kv_m_klen(m) == klen && !memcmp(slot + 8, key, klen);
}
/* Last slot (payload line) where two images differ, -1 when equal. */
int kv__seg_last_diff(const uint8_t *a, const uint8_t *b, uint32_t lines);

/* kv_dir.c */
int kv__dir_load(struct farm_kv *kv);
/* The directory entry for hash h came back stale: refresh what is needed. */
int kv__dir_refresh(struct farm_kv *kv, uint64_t h);
/* Double the directory (g -> g+1) if it still has depth `g`. */
int kv__dir_double(struct farm_kv *kv, uint32_t g);
static inline uint64_t kv__dir_entry(const struct farm_kv *kv, uint64_t h)
{
	return kv->dir[kv__dir_index(h, kv->g)];
}

/* kv_ver.c: the next item version (reserves a block when needed). */
int kv__next_version(struct farm_kv *kv, uint64_t *ver);

/* kv_put.c: split the segment holding hash h (one transaction). */
int kv__split(struct farm_kv *kv, uint64_t h);

/* A region to place a new object near (spreads segments over regions). */
farm_addr_t kv__near(struct farm_kv *kv);

/* Common argument checks. */
int kv__check_key(const void *key, size_t klen);

#endif /* FARM_KV_INT_H */
