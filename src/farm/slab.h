/*
 * slab.h - the allocator of one region, run by the region's primary over
 * the region's memory (a plain buffer: the replica it registered).
 *
 * Size classes in cache lines (1..8, then four per doubling up to the
 * largest object), so no object wastes more than a quarter of its slot. A
 * slab is a run of lines carved from the region's unused tail, at most
 * 64 KiB and 1/16 of the region (at least 4 slots), so that one size class
 * cannot take a small region for itself:
 *
 *   [ slab header line | slot | slot | ... ]   every slot = class lines
 *
 * The slab header and the objects' own header words (allocated bit) are
 * the whole persistent state: farm_slab_recover() rebuilds the allocator
 * from the region bytes alone, as a promoted backup would. The free lists
 * and carve cursors are private to the primary; a freed slot links to the
 * next free slot of its class through its first payload word.
 *
 * Changes that backups must see come back as byte ranges (struct
 * farm_slab_change): the caller ships them in its replication message and
 * the backups store them with farm_obj_put_image().
 */
#ifndef FARM_SLAB_H
#define FARM_SLAB_H

#include <stdint.h>

#include "object.h"

#define FARM_SLAB_CLASSES 37
#define FARM_SLAB_MAGIC 0x534c4142u /* "SLAB" */

/* Line 0 of a slab. */
struct farm_slab_hdr {
	uint64_t zero; /* never an allocated object header */
	uint32_t magic;
	uint32_t class_lines;
	uint32_t slab_lines; /* including this line */
	uint32_t pad0;
	uint64_t pad[5];
};

struct farm_slab {
	uint8_t *base;
	uint32_t region;
	uint32_t nlines;   /* region size in lines */
	uint32_t bump;     /* first never-carved line */
	uint64_t free_head[FARM_SLAB_CLASSES]; /* byte offset of a free slot, 0 = none */
	uint64_t cur_next[FARM_SLAB_CLASSES];  /* next never-used slot in the newest slab */
	uint64_t cur_end[FARM_SLAB_CLASSES];   /* end of that slab */
	uint64_t objects;  /* allocated now */
	uint64_t bytes;    /* payload bytes allocated now */
};

/* Byte ranges the backups must copy after an allocation or a free: at most
 * a new slab's header line and the object. */
struct farm_slab_change {
	unsigned n;
	struct {
		uint64_t off;
		uint32_t len;
	} r[2];
};

/* Size class for an object of `lines` lines: index, and its slot lines. */
int farm_slab_class(uint32_t lines);
uint32_t farm_slab_class_lines(int cls);

/* Start allocating in a fresh region of `size` bytes (zeroed memory):
 * writes the region header. */
int farm_slab_init(struct farm_slab *s, uint8_t *base, uint64_t size, uint32_t region);

/* Rebuild the allocator from a region's bytes. -EINVAL when the region or a
 * slab header is not what this allocator wrote. */
int farm_slab_recover(struct farm_slab *s, uint8_t *base, uint64_t size, uint32_t region);

/* Allocate and format an object of `size` payload bytes (version one past
 * the slot's last). Returns 0 with *off and the changes, -EINVAL for size
 * 0 or above FARM_OBJ_MAX, -ENOSPC when the region has no room. */
int farm_slab_alloc(struct farm_slab *s, uint32_t size, uint64_t *off,
		    struct farm_slab_change *ch);

/* Free the object at `off`: -ERANGE outside the region, -EINVAL not an
 * allocated object, -EBUSY locked by a writer (retry). */
int farm_slab_free(struct farm_slab *s, uint64_t off, struct farm_slab_change *ch);

/* For transactions (tx.h): allocate an object that comes out locked (a
 * transaction's reservation, published when its commit unlocks it), and
 * free an object whose lock the caller holds (-EINVAL when it is not
 * allocated and locked). Same returns otherwise. */
int farm_slab_alloc_locked(struct farm_slab *s, uint32_t size, uint64_t *off,
			   struct farm_slab_change *ch);
int farm_slab_free_locked(struct farm_slab *s, uint64_t off, struct farm_slab_change *ch);

/* Check `off` names an object start this region can hold (line-aligned,
 * past the region header, inside the region): 0, -ERANGE or -EINVAL. */
int farm_slab_check_off(uint64_t size, uint64_t off);

#endif /* FARM_SLAB_H */
