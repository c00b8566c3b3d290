/*
 * slab.c - the per-region slab allocator (see slab.h).
 */
#include <errno.h>
#include <string.h>

#include "farm/farm.h"
#include "slab.h"

static const uint32_t class_lines[FARM_SLAB_CLASSES] = {
	1,   2,   3,   4,   5,   6,   7,   8,   10,  12,  14,  16,   20,
	24,  28,  32,  40,  48,  56,  64,  80,  96,  112, 128, 160,  192,
	224, 256, 320, 384, 448, 512, 640, 768, 896, 1024, FARM_OBJ_MAX_LINES,
};

_Static_assert(FARM_OBJ_MAX_LINES > 1024, "last class must hold the largest object");
_Static_assert(sizeof(struct farm_slab_hdr) == FARM_LINE, "slab header is one line");
_Static_assert(sizeof(struct farm_region_hdr) == FARM_LINE, "region header is one line");
_Static_assert(FARM_OBJ_MAX <= FARM_OBJ_SIZE_MASK, "size field holds the largest object");

int farm_slab_class(uint32_t lines)
{
	int lo = 0, hi = FARM_SLAB_CLASSES - 1;

	if (lines == 0 || lines > FARM_OBJ_MAX_LINES)
		return -EINVAL;
	while (lo < hi) { /* first class with class_lines >= lines */
		int mid = (lo + hi) / 2;
		if (class_lines[mid] < lines)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

uint32_t farm_slab_class_lines(int cls)
{
	return cls >= 0 && cls < FARM_SLAB_CLASSES ? class_lines[cls] : 0;
}

int farm_slab_check_off(uint64_t size, uint64_t off)
{
	if (off >= size)
		return -ERANGE;
	if (off < FARM_LINE || off % FARM_LINE)
		return -EINVAL;
	return 0;
}

static void reset(struct farm_slab *s, uint8_t *base, uint64_t size, uint32_t region)
{
	memset(s, 0, sizeof(*s));
	s->base = base;
	s->region = region;
	s->nlines = (uint32_t)(size / FARM_LINE);
	s->bump = 1;
}

int farm_slab_init(struct farm_slab *s, uint8_t *base, uint64_t size, uint32_t region)
{
	struct farm_region_hdr *h = (struct farm_region_hdr *)base;

	if (!base || size < 2 * FARM_LINE || size % FARM_LINE || size / FARM_LINE > UINT32_MAX)
		return -EINVAL;
	reset(s, base, size, region);
	memset(h, 0, sizeof(*h));
	h->magic = FARM_REGION_MAGIC;
	h->region = region;
	h->lines = s->nlines;
	return 0;
}

static uint64_t *link_of(struct farm_slab *s, uint64_t off)
{
	return (uint64_t *)(s->base + off + 8);
}

int farm_slab_recover(struct farm_slab *s, uint8_t *base, uint64_t size, uint32_t region)
{
	const struct farm_region_hdr *rh = (const struct farm_region_hdr *)base;
	uint32_t line = 1;

	if (!base || size < 2 * FARM_LINE || size % FARM_LINE)
		return -EINVAL;
	if (rh->zero || rh->magic != FARM_REGION_MAGIC || rh->region != region ||
	    rh->lines != size / FARM_LINE)
		return -EINVAL;
	reset(s, base, size, region);
	/* Slabs are carved back to back; the first line that is not a slab
	 * header is the never-carved tail. */
	while (line < s->nlines) {
		const struct farm_slab_hdr *sh =
			(const struct farm_slab_hdr *)(base + (uint64_t)line * FARM_LINE);
		int cls;

		if (sh->magic != FARM_SLAB_MAGIC)
			break;
		cls = farm_slab_class(sh->class_lines);
		if (sh->zero || cls < 0 || class_lines[cls] != sh->class_lines ||
		    sh->slab_lines < 1 + sh->class_lines || sh->slab_lines > s->nlines - line)
			return -EINVAL;
		for (uint32_t l = line + 1; l + sh->class_lines <= line + sh->slab_lines;
		     l += sh->class_lines) {
			uint64_t off = (uint64_t)l * FARM_LINE;
			uint64_t h = farm_word_load(base + off);
			if (farm_hdr_alloc(h)) {
				s->objects++;
				s->bytes += farm_hdr_size(h);
			} else {
				*link_of(s, off) = s->free_head[cls];
				s->free_head[cls] = off;
			}
		}
		line += sh->slab_lines;
	}
	s->bump = line;
	return 0;
}

/* Carve a slab for class `cls` from the tail; 0 or -ENOSPC. */
static int carve(struct farm_slab *s, int cls, struct farm_slab_change *ch)
{
	uint32_t cl = class_lines[cls], left = s->nlines - s->bump;
	/* A slab is at most 1023 lines and 1/16 of the region (so that a small
	 * region still has room for several classes), and at least 4 slots. */
	uint32_t budget = s->nlines / 16 < 1023 ? s->nlines / 16 : 1023;
	uint32_t want = budget / cl < 4 ? 4 : budget / cl, slots;
	uint64_t off = (uint64_t)s->bump * FARM_LINE;
	struct farm_slab_hdr *sh = (struct farm_slab_hdr *)(s->base + off);

	if (left < 1 + cl)
		return -ENOSPC;
	slots = (left - 1) / cl < want ? (left - 1) / cl : want;
	memset(sh, 0, sizeof(*sh));
	sh->magic = FARM_SLAB_MAGIC;
	sh->class_lines = cl;
	sh->slab_lines = 1 + slots * cl;
	s->bump += sh->slab_lines;
	s->cur_next[cls] = off + FARM_LINE;
	s->cur_end[cls] = off + (uint64_t)sh->slab_lines * FARM_LINE;
	ch->r[ch->n].off = off;
	ch->r[ch->n].len = FARM_LINE;
	ch->n++;
	return 0;
}

/* Take a slot for `size` bytes (free list first, then the current slab,
 * then a new slab): its offset in *off, a carved slab header in ch. */
static int take_slot(struct farm_slab *s, uint32_t size, uint64_t *off,
		     struct farm_slab_change *ch)
{
	int cls = size && size <= FARM_OBJ_MAX ? farm_slab_class(farm_obj_lines(size)) : -EINVAL;
	uint64_t o;

	ch->n = 0;
	if (cls < 0)
		return -EINVAL;
	if (s->free_head[cls]) {
		o = s->free_head[cls];
		s->free_head[cls] = *link_of(s, o);
	} else {
		if (s->cur_next[cls] + (uint64_t)class_lines[cls] * FARM_LINE > s->cur_end[cls] ||
		    !s->cur_next[cls]) {
			int rc = carve(s, cls, ch);
			if (rc)
				return rc;
		}
		o = s->cur_next[cls];
		s->cur_next[cls] += (uint64_t)class_lines[cls] * FARM_LINE;
	}
	*off = o;
	return 0;
}

/* Account for the object at `o` and add its lines to the changes. */
static void took(struct farm_slab *s, uint32_t size, uint64_t o, uint64_t *off,
		 struct farm_slab_change *ch)
{
	s->objects++;
	s->bytes += size;
	ch->r[ch->n].off = o;
	ch->r[ch->n].len = farm_obj_lines(size) * FARM_LINE;
	ch->n++;
	*off = o;
}

int farm_slab_alloc(struct farm_slab *s, uint32_t size, uint64_t *off,
		    struct farm_slab_change *ch)
{
	uint64_t o, h;
	int rc = take_slot(s, size, &o, ch);

	if (rc)
		return rc;
	h = farm_word_load(s->base + o);
	farm_obj_format(s->base + o, size, farm_ver_next(farm_hdr_version(h)));
	took(s, size, o, off, ch);
	return 0;
}

int farm_slab_alloc_locked(struct farm_slab *s, uint32_t size, uint64_t *off,
			   struct farm_slab_change *ch)
{
	uint64_t o, h, ver;
	uint8_t *obj;
	int rc = take_slot(s, size, &o, ch);

	if (rc)
		return rc;
	obj = s->base + o;
	h = farm_word_load(obj);
	ver = farm_ver_next(farm_hdr_version(h));
	/* Locked before anything changes, so that no reader ever sees the new
	 * object unlocked: it is the reserving transaction's until it commits. */
	farm_word_store(obj, h | FARM_OBJ_LOCK);
	for (uint32_t i = 0; i < farm_obj_lines(size); i++) {
		if (i)
			__atomic_store_n((uint64_t *)(obj + (size_t)i * FARM_LINE), ver,
					 __ATOMIC_RELAXED);
		memset(obj + (size_t)i * FARM_LINE + 8, 0, FARM_LINE_PAYLOAD);
	}
	farm_word_store(obj, farm_hdr_make(true, size, ver) | FARM_OBJ_LOCK);
	took(s, size, o, off, ch);
	return 0;
}

/* With the object locked (h: its header, unlocked): put it on its class's
 * free list and publish it unallocated under the next version. */
static void release(struct farm_slab *s, uint64_t off, uint64_t h, struct farm_slab_change *ch)
{
	uint32_t osize = farm_hdr_size(h);
	int cls = farm_slab_class(farm_obj_lines(osize));

	*link_of(s, off) = s->free_head[cls];
	s->free_head[cls] = off;
	farm_word_store(s->base + off, farm_hdr_make(false, 0, farm_ver_next(farm_hdr_version(h))));
	s->objects--;
	s->bytes -= osize;
	ch->r[0].off = off;
	ch->r[0].len = FARM_LINE;
	ch->n = 1;
}

int farm_slab_free(struct farm_slab *s, uint64_t off, struct farm_slab_change *ch)
{
	uint64_t size = (uint64_t)s->nlines * FARM_LINE, h;
	bool ok;
	int rc;

	ch->n = 0;
	if ((rc = farm_slab_check_off(size, off)))
		return rc;
	h = farm_obj_trylock(s->base + off, &ok);
	if (!farm_hdr_alloc(h))
		return -EINVAL;
	if (!ok)
		return -EBUSY;
	release(s, off, h, ch);
	return 0;
}

int farm_slab_free_locked(struct farm_slab *s, uint64_t off, struct farm_slab_change *ch)
{
	uint64_t size = (uint64_t)s->nlines * FARM_LINE, h;
	int rc;

	ch->n = 0;
	if ((rc = farm_slab_check_off(size, off)))
		return rc;
	h = farm_word_load(s->base + off);
	if (!farm_hdr_alloc(h) || !farm_hdr_locked(h))
		return -EINVAL;
	release(s, off, h & ~FARM_OBJ_LOCK, ch);
	return 0;
}
