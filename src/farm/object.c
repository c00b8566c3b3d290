/*
 * object.c - installing and checking objects (layout and protocol in
 * object.h). Shared by the primary (writes), the backups (replica images)
 * and readers (local seqlock reads, checks of remote snapshots).
 */
#include <errno.h>

#include "farm/farm.h"
#include "object.h"

uint64_t farm_obj_trylock(uint8_t *obj, bool *ok)
{
	uint64_t h = farm_word_load(obj);

	*ok = farm_hdr_alloc(h) && !farm_hdr_locked(h) && farm_word_cas(obj, h, h | FARM_OBJ_LOCK);
	return h;
}

/* Line words first (relaxed: the final release store publishes them). */
static void set_line_words(uint8_t *obj, uint32_t lines, uint64_t ver)
{
	for (uint32_t i = 1; i < lines; i++)
		__atomic_store_n((uint64_t *)(obj + (size_t)i * FARM_LINE), ver, __ATOMIC_RELAXED);
}

/* Payload [0, len) from buf into the lines, 56 bytes per line. */
static void put_payload(uint8_t *obj, const uint8_t *buf, uint32_t len)
{
	for (uint32_t at = 0, line = 0; at < len; line++) {
		uint32_t n = len - at < FARM_LINE_PAYLOAD ? len - at : FARM_LINE_PAYLOAD;
		memcpy(obj + (size_t)line * FARM_LINE + 8, buf + at, n);
		at += n;
	}
}

void farm_obj_stage(uint8_t *obj, uint32_t size, uint64_t ver, const void *buf, uint32_t len)
{
	set_line_words(obj, farm_obj_lines(size), ver);
	put_payload(obj, buf, len);
}

void farm_obj_unlock(uint8_t *obj, uint32_t size, uint64_t ver)
{
	farm_word_store(obj, farm_hdr_make(true, size, ver));
}

void farm_obj_install(uint8_t *obj, uint32_t size, uint64_t ver, const void *buf, uint32_t len)
{
	farm_obj_stage(obj, size, ver, buf, len);
	farm_obj_unlock(obj, size, ver);
}

void farm_obj_format(uint8_t *obj, uint32_t size, uint64_t ver)
{
	uint32_t lines = farm_obj_lines(size);

	set_line_words(obj, lines, ver);
	for (uint32_t i = 0; i < lines; i++)
		memset(obj + (size_t)i * FARM_LINE + 8, 0, FARM_LINE_PAYLOAD);
	farm_word_store(obj, farm_hdr_make(true, size, ver));
}

void farm_obj_put_image(uint8_t *obj, const uint8_t *img, uint32_t len)
{
	uint64_t old = farm_word_load(obj), h;

	/* Lock first so that a reader of this replica (a backup promoted
	 * later, a debugging tool) brackets the copy like any write. */
	farm_word_store(obj, old | FARM_OBJ_LOCK);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	memcpy(&h, img, sizeof(h));
	if (len > 8)
		memcpy(obj + 8, img + 8, len - 8);
	farm_word_store(obj, h & ~FARM_OBJ_LOCK);
}

int farm_obj_check(const uint8_t *img, uint64_t h1, uint64_t h2, void *out, uint32_t len)
{
	uint32_t lines = farm_obj_lines(len);
	uint64_t ver = farm_hdr_version(h1), w;
	uint8_t *o = out;

	if (h1 != h2)
		return -EAGAIN;
	if (farm_hdr_locked(h1))
		return -EAGAIN;
	if (!farm_hdr_alloc(h1))
		return -EINVAL;
	if (len > farm_hdr_size(h1))
		return -EFBIG;
	memcpy(&w, img, sizeof(w));
	if (w != h1)
		return -EAGAIN;
	for (uint32_t i = 1; i < lines; i++) {
		memcpy(&w, img + (size_t)i * FARM_LINE, sizeof(w));
		if (w != ver)
			return -EAGAIN;
	}
	for (uint32_t at = 0, line = 0; at < len; line++) {
		uint32_t n = len - at < FARM_LINE_PAYLOAD ? len - at : FARM_LINE_PAYLOAD;
		memcpy(o + at, img + (size_t)line * FARM_LINE + 8, n);
		at += n;
	}
	return 0;
}

int farm_obj_read_local(const uint8_t *obj, void *out, uint32_t len, uint64_t *version,
			unsigned tries, uint64_t *retries)
{
	uint8_t *o = out;

	for (unsigned t = 0; t < tries; t++) {
		uint64_t h1 = farm_word_load(obj), h2, ver = farm_hdr_version(h1);
		bool torn = false;

		if (t)
			(*retries)++;
		if (!farm_hdr_alloc(h1))
			return -EINVAL;
		if (farm_hdr_locked(h1)) {
			farm_cpu_relax();
			continue;
		}
		if (len > farm_hdr_size(h1))
			return -EFBIG;
		for (uint32_t at = 0, line = 0; at < len; line++) {
			const uint8_t *l = obj + (size_t)line * FARM_LINE;
			uint32_t n = len - at < FARM_LINE_PAYLOAD ? len - at : FARM_LINE_PAYLOAD;
			if (line && __atomic_load_n((const uint64_t *)l, __ATOMIC_RELAXED) != ver)
				torn = true;
			memcpy(o + at, l + 8, n);
			at += n;
		}
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		h2 = __atomic_load_n((const uint64_t *)obj, __ATOMIC_RELAXED);
		if (!torn && h2 == h1) {
			if (version)
				*version = ver;
			return 0;
		}
	}
	return -EAGAIN;
}
