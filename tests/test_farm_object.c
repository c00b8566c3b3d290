/* test_farm_object.c - what every node shares without the network: the
 * object layout (header word, per-line versions), the version-checked copy
 * under a racing writer (threads and processes), the slab allocator over a
 * plain buffer (no overlap, reuse, errors, rebuild from the bytes alone),
 * and the region map from the ring. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "config.h"
#include "object.h"
#include "regionmap.h"
#include "slab.h"
#include "helpers/proc.h"

static void test_header_word(void **state)
{
	uint64_t h = farm_hdr_make(true, 61440, 123456789);

	assert_true(farm_hdr_alloc(h));
	assert_false(farm_hdr_locked(h));
	assert_int_equal(farm_hdr_size(h), 61440);
	assert_int_equal(farm_hdr_version(h), 123456789);
	assert_true(farm_hdr_locked(h | FARM_OBJ_LOCK));
	assert_int_equal(farm_hdr_size(h | FARM_OBJ_LOCK), 61440);
	/* A line word (a version) never looks like an allocated header. */
	assert_false(farm_hdr_alloc(FARM_OBJ_VER_MASK));
	assert_int_equal(farm_ver_next(FARM_OBJ_VER_MASK), 1);
	assert_int_equal(farm_obj_lines(0), 1);
	assert_int_equal(farm_obj_lines(1), 1);
	assert_int_equal(farm_obj_lines(56), 1);
	assert_int_equal(farm_obj_lines(57), 2);
	assert_int_equal(farm_obj_lines(64), 2);
	assert_int_equal(farm_obj_lines(FARM_OBJ_MAX), FARM_OBJ_MAX_LINES);
}

static void test_classes(void **state)
{
	uint32_t prev = 0;

	for (int c = 0; c < FARM_SLAB_CLASSES; c++) {
		uint32_t l = farm_slab_class_lines(c);
		assert_true(l > prev);
		prev = l;
	}
	for (uint32_t lines = 1; lines <= FARM_OBJ_MAX_LINES; lines++) {
		int c = farm_slab_class(lines);
		assert_true(c >= 0);
		uint32_t cl = farm_slab_class_lines(c);
		assert_true(cl >= lines);
		assert_true(c == 0 || farm_slab_class_lines(c - 1) < lines);
		assert_true(cl * 4 <= lines * 5 + 4); /* at most a quarter wasted */
	}
	assert_int_equal(farm_slab_class(0), -EINVAL);
	assert_int_equal(farm_slab_class(FARM_OBJ_MAX_LINES + 1), -EINVAL);
	assert_int_equal(farm_slab_class_lines(FARM_SLAB_CLASSES), 0);
}

static uint8_t *region_new(size_t size)
{
	uint8_t *p = aligned_alloc(FARM_LINE, size);
	assert_non_null(p);
	memset(p, 0, size);
	return p;
}

static void fill(uint8_t *buf, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static void test_install_read(void **state)
{
	const size_t size = 1 << 20;
	uint8_t *base = region_new(size), in[FARM_OBJ_MAX], out[FARM_OBJ_MAX];
	struct farm_slab s;
	struct farm_slab_change ch;
	uint64_t off, ver, retries = 0;
	const uint32_t sizes[] = {1, 8, 56, 57, 64, 100, 1000, 4096, FARM_OBJ_MAX};

	assert_int_equal(farm_slab_init(&s, base, size, 3), 0);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		uint32_t sz = sizes[i];
		assert_int_equal(farm_slab_alloc(&s, sz, &off, &ch), 0);
		uint8_t *obj = base + off;
		/* Fresh objects read as zeroes at version 1. */
		assert_int_equal(farm_obj_read_local(obj, out, sz, &ver, 4, &retries), 0);
		assert_int_equal(ver, 1);
		for (uint32_t j = 0; j < sz; j++)
			assert_int_equal(out[j], 0);
		fill(in, sz, (uint32_t)i);
		bool ok;
		uint64_t h = farm_obj_trylock(obj, &ok);
		assert_true(ok);
		assert_true(farm_hdr_locked(farm_word_load(obj)));
		/* Locked: a reader retries and gives up. */
		assert_int_equal(farm_obj_read_local(obj, out, sz, NULL, 3, &retries), -EAGAIN);
		farm_obj_install(obj, sz, farm_ver_next(farm_hdr_version(h)), in, sz);
		assert_int_equal(farm_obj_read_local(obj, out, sz, &ver, 4, &retries), 0);
		assert_int_equal(ver, 2);
		assert_memory_equal(in, out, sz);
		/* Every line carries the version. */
		for (uint32_t l = 1; l < farm_obj_lines(sz); l++)
			assert_int_equal(farm_word_load(obj + l * FARM_LINE), 2);
		/* Reading less is fine, reading more is -EFBIG. */
		assert_int_equal(farm_obj_read_local(obj, out, sz / 2, NULL, 4, &retries), 0);
		assert_memory_equal(in, out, sz / 2);
		assert_int_equal(farm_obj_read_local(obj, out, sz + 1, NULL, 4, &retries), -EFBIG);
		/* Partial install keeps the tail. */
		assert_true((farm_obj_trylock(obj, &ok), ok));
		uint8_t z[8] = {0};
		farm_obj_install(obj, sz, 3, z, sz < 8 ? sz : 8);
		assert_int_equal(farm_obj_read_local(obj, out, sz, &ver, 4, &retries), 0);
		assert_int_equal(ver, 3);
		if (sz > 8)
			assert_memory_equal(in + 8, out + 8, sz - 8);
	}
	/* Inside an object, in the region header, in free space: not objects. */
	assert_int_equal(farm_obj_read_local(base, out, 1, NULL, 4, &retries), -EINVAL);
	assert_int_equal(farm_slab_alloc(&s, 200, &off, &ch), 0);
	assert_int_equal(farm_obj_read_local(base + off + FARM_LINE, out, 1, NULL, 4, &retries),
			 -EINVAL);
	assert_int_equal(farm_obj_read_local(base + size - FARM_LINE, out, 1, NULL, 4, &retries),
			 -EINVAL);
	free(base);
}

static void test_check_snapshot(void **state)
{
	uint8_t img[4 * FARM_LINE] = {0}, out[200];
	uint64_t h = farm_hdr_make(true, 200, 9), v = 9;

	memcpy(img, &h, 8);
	for (int l = 1; l < 4; l++)
		memcpy(img + l * FARM_LINE, &v, 8);
	fill(img + 8, 56, 1);
	assert_int_equal(farm_obj_check(img, h, h, out, 200), 0);
	assert_memory_equal(out, img + 8, 56);
	assert_int_equal(farm_obj_check(img, h, h + 1, out, 200), -EAGAIN);
	assert_int_equal(farm_obj_check(img, h | FARM_OBJ_LOCK, h | FARM_OBJ_LOCK, out, 200),
			 -EAGAIN);
	assert_int_equal(farm_obj_check(img, h, h, out, 201), -EFBIG);
	uint64_t f = farm_hdr_make(false, 0, 10);
	assert_int_equal(farm_obj_check(img, f, f, out, 1), -EINVAL);
	/* A line from another version: torn. */
	v = 8;
	memcpy(img + 3 * FARM_LINE, &v, 8);
	assert_int_equal(farm_obj_check(img, h, h, out, 200), -EAGAIN);
	/* ...unless the read stops before that line. */
	assert_int_equal(farm_obj_check(img, h, h, out, 150), 0);
	/* The header inside the copy must agree with the bracketing loads. */
	uint64_t other = farm_hdr_make(true, 200, 7);
	memcpy(img, &other, 8);
	assert_int_equal(farm_obj_check(img, h, h, out, 100), -EAGAIN);
}

/* ---- racing writer ------------------------------------------------------ */

/* Payload: word 0 = round, then bytes derived from the round, last 4 bytes
 * = checksum of the rest. A torn copy fails the checksum or the pattern. */
static void make_payload(uint8_t *p, uint32_t len, uint32_t round)
{
	uint32_t sum = 0;

	memcpy(p, &round, 4);
	for (uint32_t i = 4; i < len - 4; i++)
		p[i] = (uint8_t)(round * 31 + i);
	for (uint32_t i = 0; i < len - 4; i++)
		sum = sum * 16777619u ^ p[i];
	memcpy(p + len - 4, &sum, 4);
}

static int payload_ok(const uint8_t *p, uint32_t len)
{
	uint32_t sum = 0, want, round;

	memcpy(&round, p, 4);
	for (uint32_t i = 4; i < len - 4; i++)
		if (p[i] != (uint8_t)(round * 31 + i))
			return 0;
	for (uint32_t i = 0; i < len - 4; i++)
		sum = sum * 16777619u ^ p[i];
	memcpy(&want, p + len - 4, 4);
	return sum == want;
}

struct race {
	uint8_t *obj;
	uint32_t len;
	volatile int stop;
	uint64_t reads, snaps, retries, bad;
};

static void *writer(void *arg)
{
	struct race *r = arg;
	uint8_t buf[FARM_OBJ_MAX];

	for (uint32_t round = 1; !r->stop; round++) {
		bool ok;
		make_payload(buf, r->len, round);
		uint64_t h = farm_obj_trylock(r->obj, &ok);
		if (!ok)
			continue;
		farm_obj_install(r->obj, r->len, farm_ver_next(farm_hdr_version(h)), buf, r->len);
	}
	return NULL;
}

/* Both read paths: the local seqlock read, and the snapshot a remote reader
 * takes (header, copy, header) checked by farm_obj_check. */
static void race_read(struct race *r, uint64_t n)
{
	uint8_t out[FARM_OBJ_MAX], img[FARM_OBJ_MAX_LINES * FARM_LINE];
	uint32_t lines = farm_obj_lines(r->len);

	for (uint64_t i = 0; i < n; i++) {
		int rc = farm_obj_read_local(r->obj, out, r->len, NULL, 1000, &r->retries);
		if (rc == 0) {
			r->reads++;
			r->bad += !payload_ok(out, r->len);
		}
		uint64_t h1 = farm_word_load(r->obj);
		memcpy(img, r->obj, (size_t)lines * FARM_LINE);
		__atomic_thread_fence(__ATOMIC_ACQUIRE);
		uint64_t h2 = farm_word_load(r->obj);
		rc = farm_obj_check(img, h1, h2, out, r->len);
		if (rc == 0) {
			r->snaps++;
			r->bad += !payload_ok(out, r->len);
		} else if (rc != -EAGAIN) {
			r->bad++;
		}
	}
}

static void race_threads(uint32_t len)
{
	uint8_t *base = region_new(1 << 20);
	struct farm_slab s;
	struct farm_slab_change ch;
	uint64_t off;
	pthread_t w;
	uint8_t buf[FARM_OBJ_MAX];
	struct race r = {0};

	assert_int_equal(farm_slab_init(&s, base, 1 << 20, 0), 0);
	assert_int_equal(farm_slab_alloc(&s, len, &off, &ch), 0);
	r.obj = base + off;
	r.len = len;
	make_payload(buf, len, 0);
	bool ok;
	farm_obj_trylock(r.obj, &ok);
	farm_obj_install(r.obj, len, 2, buf, len);
	assert_int_equal(pthread_create(&w, NULL, writer, &r), 0);
	uint64_t t0 = proc_now_ms();
	while (proc_now_ms() - t0 < 400)
		race_read(&r, 1000);
	r.stop = 1;
	pthread_join(w, NULL);
	print_message("len %u: %llu reads, %llu snapshots ok, %llu retries, %llu bad\n", len,
		      (unsigned long long)r.reads, (unsigned long long)r.snaps,
		      (unsigned long long)r.retries, (unsigned long long)r.bad);
	assert_int_equal(r.bad, 0);
	assert_true(r.reads > 0 && r.snaps > 0);
	free(base);
}

static void test_race_threads(void **state)
{
	race_threads(52);   /* one line */
	race_threads(200);  /* four lines */
	race_threads(4000); /* many lines: a copy spans many writer steps */
}

/* Writer in another process over MAP_SHARED memory, as between nodes. */
static int writer_proc(void *arg)
{
	writer(arg);
	return 0;
}

static void test_race_processes(void **state)
{
	const size_t size = 1 << 20;
	uint8_t *base = proc_shared(size), buf[256];
	struct race *r = proc_shared(sizeof(*r));
	struct farm_slab s;
	struct farm_slab_change ch;
	uint64_t off;

	assert_int_equal(farm_slab_init(&s, base, size, 0), 0);
	assert_int_equal(farm_slab_alloc(&s, 250, &off, &ch), 0);
	r->obj = base + off;
	r->len = 250;
	make_payload(buf, 250, 0);
	bool ok;
	farm_obj_trylock(r->obj, &ok);
	farm_obj_install(r->obj, 250, 2, buf, 250);
	pid_t pid = proc_fork(writer_proc, r);
	assert_true(pid > 0);
	uint64_t t0 = proc_now_ms();
	while (proc_now_ms() - t0 < 400)
		race_read(r, 1000);
	r->stop = 1;
	assert_int_equal(proc_wait(pid, 5000), 0);
	print_message("processes: %llu reads, %llu snapshots, %llu retries, %llu bad\n",
		      (unsigned long long)r->reads, (unsigned long long)r->snaps,
		      (unsigned long long)r->retries, (unsigned long long)r->bad);
	assert_int_equal(r->bad, 0);
	assert_true(r->reads > 0);
	proc_unshare(r, sizeof(*r));
	proc_unshare(base, size);
}

/* ---- slab allocator ------------------------------------------------------ */

struct live {
	uint64_t off;
	uint32_t size;
};

static int by_off(const void *a, const void *b)
{
	const struct live *x = a, *y = b;
	return x->off < y->off ? -1 : x->off > y->off;
}

static void check_disjoint(struct live *l, size_t n, uint64_t region_size)
{
	qsort(l, n, sizeof(*l), by_off);
	for (size_t i = 0; i < n; i++) {
		uint64_t end = l[i].off +
			       (uint64_t)farm_slab_class_lines(farm_slab_class(farm_obj_lines(l[i].size))) *
				       FARM_LINE;
		assert_true(l[i].off >= FARM_LINE && l[i].off % FARM_LINE == 0);
		assert_true(end <= region_size);
		if (i + 1 < n)
			assert_true(end <= l[i + 1].off);
	}
}

static uint32_t rnd(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return (uint32_t)*x;
}

static void test_slab(void **state)
{
	const size_t size = 4 << 20;
	uint8_t *base = region_new(size);
	struct farm_slab s, s2;
	struct farm_slab_change ch;
	struct live *l = calloc(200000, sizeof(*l));
	size_t n = 0;
	uint64_t seed = 88172645463325252ull, off, bytes = 0;
	int rc;

	assert_int_equal(farm_slab_init(&s, base, size, 5), 0);
	assert_int_equal(farm_slab_alloc(&s, 0, &off, &ch), -EINVAL);
	assert_int_equal(farm_slab_alloc(&s, FARM_OBJ_MAX + 1, &off, &ch), -EINVAL);
	/* Fill with a mix of sizes, freeing a third as we go. */
	for (;;) {
		uint32_t r = rnd(&seed), sz = r % 8 ? 1 + r % 300 : 1 + r % FARM_OBJ_MAX;
		rc = farm_slab_alloc(&s, sz, &off, &ch);
		if (rc == -ENOSPC)
			break;
		assert_int_equal(rc, 0);
		assert_true(ch.n >= 1 && ch.n <= 2);
		assert_int_equal(ch.r[ch.n - 1].off, off);
		assert_int_equal(ch.r[ch.n - 1].len, farm_obj_lines(sz) * FARM_LINE);
		uint64_t h = farm_word_load(base + off);
		assert_true(farm_hdr_alloc(h) && farm_hdr_size(h) == sz);
		l[n].off = off;
		l[n++].size = sz;
		bytes += sz;
		if (rnd(&seed) % 3 == 0) {
			size_t k = rnd(&seed) % n;
			assert_int_equal(farm_slab_free(&s, l[k].off, &ch), 0);
			assert_int_equal(ch.n, 1);
			assert_false(farm_hdr_alloc(farm_word_load(base + l[k].off)));
			/* Freed twice: not an object any more. */
			assert_int_equal(farm_slab_free(&s, l[k].off, &ch), -EINVAL);
			bytes -= l[k].size;
			l[k] = l[--n];
		}
	}
	assert_true(n > 100);
	assert_int_equal(s.objects, n);
	assert_int_equal(s.bytes, bytes);
	check_disjoint(l, n, size);
	/* Small objects still fit in freed slots after the region is full. */
	size_t before = n;
	for (size_t i = 0; i < n; i++)
		if (l[i].size <= 56) {
			assert_int_equal(farm_slab_free(&s, l[i].off, &ch), 0);
			uint64_t v0 = farm_hdr_version(farm_word_load(base + l[i].off));
			assert_int_equal(farm_slab_alloc(&s, 50, &off, &ch), 0);
			assert_int_equal(off, l[i].off); /* same slot, LIFO */
			/* A reused slot gets a newer version. */
			assert_true(farm_hdr_version(farm_word_load(base + off)) > v0);
			l[i].size = 50;
			break;
		}
	/* Errors. */
	assert_int_equal(farm_slab_free(&s, size, &ch), -ERANGE);
	assert_int_equal(farm_slab_free(&s, 0, &ch), -EINVAL);
	assert_int_equal(farm_slab_free(&s, l[0].off + 8, &ch), -EINVAL);
	bool ok;
	farm_obj_trylock(base + l[0].off, &ok);
	assert_true(ok);
	assert_int_equal(farm_slab_free(&s, l[0].off, &ch), -EBUSY);
	farm_word_store(base + l[0].off, farm_word_load(base + l[0].off) & ~FARM_OBJ_LOCK);

	/* Rebuild from the bytes: same live set, and new allocations never
	 * land on a live object. */
	assert_int_equal(farm_slab_recover(&s2, base, size, 5), 0);
	assert_int_equal(s2.objects, s.objects);
	assert_int_equal(s2.bytes, s.bytes);
	assert_int_equal(s2.bump, s.bump);
	for (;;) {
		uint32_t sz = 1 + rnd(&seed) % 500;
		rc = farm_slab_alloc(&s2, sz, &off, &ch);
		if (rc == -ENOSPC)
			break;
		assert_int_equal(rc, 0);
		l[n].off = off;
		l[n++].size = sz;
		if (n > 199000)
			break;
	}
	assert_true(n >= before);
	check_disjoint(l, n, size);
	/* A region that is not one of ours. */
	assert_int_equal(farm_slab_recover(&s2, base, size, 6), -EINVAL);
	memset(base, 0xff, FARM_LINE);
	assert_int_equal(farm_slab_recover(&s2, base, size, 5), -EINVAL);
	assert_int_equal(farm_slab_init(&s2, base, 64, 5), -EINVAL);
	free(l);
	free(base);
}

static void test_slab_small_region(void **state)
{
	const size_t size = 64 << 10; /* the smallest region */
	uint8_t *base = region_new(size);
	struct farm_slab s;
	struct farm_slab_change ch;
	uint64_t off;
	int count = 0;

	assert_int_equal(farm_slab_init(&s, base, size, 0), 0);
	/* The largest object does not fit a 64 KiB region. */
	assert_int_equal(farm_slab_alloc(&s, FARM_OBJ_MAX, &off, &ch), -ENOSPC);
	while (farm_slab_alloc(&s, 40, &off, &ch) == 0)
		count++;
	/* 1023 lines after the region header, in slabs of 1 + 64 lines (1/16
	 * of the region): 15 full slabs and one of the 48 lines left. */
	assert_int_equal(count, 15 * 64 + 47);
	/* Another class still found room before the region filled up. */
	uint8_t *base2 = region_new(size);
	struct farm_slab s2;
	assert_int_equal(farm_slab_init(&s2, base2, size, 0), 0);
	assert_int_equal(farm_slab_alloc(&s2, 40, &off, &ch), 0);
	assert_int_equal(farm_slab_alloc(&s2, 1000, &off, &ch), 0);
	assert_int_equal(ch.n, 2); /* a new slab for the 1000-byte class */
	free(base2);
	free(base);
}

/* ---- region map --------------------------------------------------------- */

static void test_region_map(void **state)
{
	struct farm_config c;
	struct farm_rmap m;
	char err[256];
	uint32_t prim_total = 0, held_total = 0;

	assert_int_equal(farm_config_parse("regions = 40\nmember = 1 a\nmember = 2 b\n"
					   "member = 5 c\nmember = 9 d\n",
					   &c, err, sizeof(err)),
			 0);
	assert_int_equal(farm_rmap_build(&m, &c), 0);
	assert_int_equal(m.k, 3);
	for (uint32_t r = 0; r < 40; r++) {
		const uint32_t *rep = farm_rmap_replicas(&m, r);
		assert_true(rep[0] != rep[1] && rep[1] != rep[2] && rep[0] != rep[2]);
		for (uint32_t i = 0; i < 3; i++)
			assert_int_equal(farm_rmap_role(&m, r, rep[i]), (int)i);
	}
	for (uint32_t i = 0; i < c.nmembers; i++) {
		uint32_t p;
		held_total += farm_rmap_held(&m, c.members[i].id, &p);
		prim_total += p;
		assert_true(p > 0); /* 40 regions over 4 members: everyone leads some */
	}
	assert_int_equal(prim_total, 40);
	assert_int_equal(held_total, 120);
	assert_int_equal(farm_rmap_role(&m, 40, 1), -1);
	assert_int_equal(farm_rmap_role(&m, 0, 77), -1);
	/* Same config, same map: a pure function. */
	struct farm_rmap m2;
	assert_int_equal(farm_rmap_build(&m2, &c), 0);
	assert_memory_equal(m.rep, m2.rep, 40 * 3 * sizeof(uint32_t));
	farm_rmap_free(&m2);
	farm_rmap_free(&m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_word),   cmocka_unit_test(test_classes),
		cmocka_unit_test(test_install_read),  cmocka_unit_test(test_check_snapshot),
		cmocka_unit_test(test_race_threads),  cmocka_unit_test(test_race_processes),
		cmocka_unit_test(test_slab),          cmocka_unit_test(test_slab_small_region),
		cmocka_unit_test(test_region_map),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
