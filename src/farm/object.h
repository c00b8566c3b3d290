/*
 * object.h - the layout of objects and regions in the shared address space,
 * and the two halves of the lock-free read protocol (install and check).
 *
 * An object starts on a cache line. Line 0 begins with the header word,
 * every further line begins with a copy of the object's version; each line
 * then carries 56 payload bytes:
 *
 *   header word: bit 63 lock | bit 62 allocated | bits 46..61 payload size
 *                in bytes | bits 0..45 version
 *   line word:   version (bits 0..45), upper bits zero
 *
 * A line word therefore never looks like an allocated header, which is how
 * a read of an offset inside an object (or in free space) is told apart from
 * a read of an object start. The exact size (not just a line count) lives
 * in the header so that reads past the end of an object are refused with
 * -EFBIG and farm_obj_size reports what was allocated.
 *
 * Writers (only the primary, holding the lock) store the new version into
 * every line word before the payload, then release-store the unlocked
 * header. Readers take a snapshot seqlock-style: header, then the lines,
 * then the header again; the snapshot is good when both headers are equal
 * and unlocked and every line word carries the header's version. The two
 * header loads are what make this safe on a CPU whose copies (memcpy,
 * rep movs) read a line in no particular order; the per-line versions are
 * what a NIC that reads whole lines atomically (FaRM's RDMA) would need,
 * and they catch a copy that was not bracketed correctly.
 *
 * Region layout: line 0 is the region header (never an object: its first
 * word is 0), then slabs (slab.h): [slab header line | slots ...].
 */
#ifndef FARM_OBJECT_H
#define FARM_OBJECT_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#define FARM_LINE 64u
#define FARM_LINE_PAYLOAD 56u
#define FARM_OBJ_LOCK (1ull << 63)
#define FARM_OBJ_ALLOC (1ull << 62)
#define FARM_OBJ_SIZE_SHIFT 46
#define FARM_OBJ_SIZE_MASK 0xffffull
#define FARM_OBJ_VER_MASK ((1ull << 46) - 1)
/* Lines of the largest object (FARM_OBJ_MAX payload bytes). */
#define FARM_OBJ_MAX_LINES ((FARM_OBJ_MAX + FARM_LINE_PAYLOAD - 1) / FARM_LINE_PAYLOAD)

#define FARM_REGION_MAGIC 0x4641524d52454721ull /* "FARMREG!" */

/* Line 0 of every region replica. */
struct farm_region_hdr {
	uint64_t zero; /* where an object header would be: never "allocated" */
	uint64_t magic;
	uint32_t region;
	uint32_t lines; /* region size in lines */
	uint64_t pad[5];
};

static inline void farm_cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ __volatile__("yield");
#endif
}

static inline uint32_t farm_obj_lines(uint32_t size)
{
	return size <= FARM_LINE_PAYLOAD ? 1 : (size + FARM_LINE_PAYLOAD - 1) / FARM_LINE_PAYLOAD;
}

static inline uint64_t farm_hdr_make(bool alloc, uint32_t size, uint64_t version)
{
	return (alloc ? FARM_OBJ_ALLOC : 0) |
	       ((uint64_t)(size & FARM_OBJ_SIZE_MASK) << FARM_OBJ_SIZE_SHIFT) |
	       (version & FARM_OBJ_VER_MASK);
}

static inline bool farm_hdr_locked(uint64_t h)
{
	return (h & FARM_OBJ_LOCK) != 0;
}

static inline bool farm_hdr_alloc(uint64_t h)
{
	return (h & FARM_OBJ_ALLOC) != 0;
}

static inline uint32_t farm_hdr_size(uint64_t h)
{
	return (uint32_t)((h >> FARM_OBJ_SIZE_SHIFT) & FARM_OBJ_SIZE_MASK);
}

static inline uint64_t farm_hdr_version(uint64_t h)
{
	return h & FARM_OBJ_VER_MASK;
}

static inline uint64_t farm_ver_next(uint64_t v)
{
	v = (v + 1) & FARM_OBJ_VER_MASK;
	return v ? v : 1; /* 0 is "never written" */
}

/* Atomic accessors for words of shared memory (other processes read and
 * CAS them). */
static inline uint64_t farm_word_load(const void *p)
{
	return __atomic_load_n((const uint64_t *)p, __ATOMIC_ACQUIRE);
}

static inline void farm_word_store(void *p, uint64_t v)
{
	__atomic_store_n((uint64_t *)p, v, __ATOMIC_RELEASE);
}

static inline bool farm_word_cas(void *p, uint64_t expect, uint64_t desired)
{
	return __atomic_compare_exchange_n((uint64_t *)p, &expect, desired, false,
					   __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
}

/* Lock the object at `obj` (its header word) if it is allocated and
 * unlocked. Returns the header seen before locking; *ok tells whether the
 * lock was taken. */
uint64_t farm_obj_trylock(uint8_t *obj, bool *ok);

/* With the lock held: write payload bytes [0, len) of `buf` (the rest of
 * the object keeps its bytes) and version `ver` into every line; the object
 * stays locked (the primary keeps it so until the backups have it). */
void farm_obj_stage(uint8_t *obj, uint32_t size, uint64_t ver, const void *buf, uint32_t len);
/* Release the lock, publishing header (allocated, size, ver). */
void farm_obj_unlock(uint8_t *obj, uint32_t size, uint64_t ver);
/* stage + unlock. */
void farm_obj_install(uint8_t *obj, uint32_t size, uint64_t ver, const void *buf, uint32_t len);

/* Initialise a fresh object: every line word and payload byte, header last
 * (allocated, size, ver). Used by the allocator at the primary. */
void farm_obj_format(uint8_t *obj, uint32_t size, uint64_t ver);

/* Copy an object image (header + lines) into replica memory the way a
 * writer would: lines first, header word last with release. `len` is a
 * multiple of FARM_LINE. */
void farm_obj_put_image(uint8_t *obj, const uint8_t *img, uint32_t len);

/* Check a snapshot of the first farm_obj_lines(len) lines of an object,
 * taken between two header loads h1 and h2, and extract payload [0, len)
 * into `out`. Returns 0, -EAGAIN (locked or torn: retry), -EINVAL (not an
 * allocated object), -EFBIG (len beyond the object's size). */
int farm_obj_check(const uint8_t *img, uint64_t h1, uint64_t h2, void *out, uint32_t len);

/* A consistent read of an object in local memory (seqlock on the header,
 * bounded retries). Same returns as farm_obj_check; *version gets the
 * version. `tries` bounds the attempts; *retries counts the extra ones. */
int farm_obj_read_local(const uint8_t *obj, void *out, uint32_t len, uint64_t *version,
			unsigned tries, uint64_t *retries);

#endif /* FARM_OBJECT_H */
