/* replicas.c - see replicas.h. */
#include <string.h>

#include "object.h"
#include "replicas.h"
#include "slab.h"

uint64_t replicas_diff(const uint8_t *p, const uint8_t *b, uint64_t size, uint64_t *objs,
		       uint64_t *hwm)
{
	uint64_t line = 1;

	if (memcmp(p, b, FARM_LINE))
		return 1;
	while (line < size / FARM_LINE) {
		uint64_t off = line * FARM_LINE;
		const struct farm_slab_hdr *sh = (const struct farm_slab_hdr *)(p + off);
		if (sh->magic != FARM_SLAB_MAGIC)
			break;
		if (memcmp(p + off, b + off, FARM_LINE))
			return off + 1;
		for (uint64_t l = line + 1; l + sh->class_lines <= line + sh->slab_lines;
		     l += sh->class_lines) {
			uint64_t o = l * FARM_LINE, hp, hb;
			memcpy(&hp, p + o, 8);
			memcpy(&hb, b + o, 8);
			if (farm_hdr_alloc(hp) != farm_hdr_alloc(hb) || farm_hdr_locked(hp) ||
			    farm_hdr_locked(hb))
				return o + 1;
			if (!farm_hdr_alloc(hp))
				continue;
			if (memcmp(p + o, b + o,
				   (size_t)farm_obj_lines(farm_hdr_size(hp)) * FARM_LINE))
				return o + 1;
			(*objs)++;
		}
		line += sh->slab_lines;
	}
	if (hwm)
		*hwm = line * FARM_LINE;
	for (uint64_t o = line * FARM_LINE; o < size; o++)
		if (p[o] != b[o])
			return o + 1;
	return 0;
}
