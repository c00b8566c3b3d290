/* test_rdma_alloc.c - the shm pool allocator (src/unet/rdma_alloc.c): 64-byte
 * alignment, first fit, coalescing back to one extent, refusal of double and
 * foreign frees, and a long random alloc/free run checked against a shadow
 * map (no two live allocations overlap, every byte is accounted for). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "rdma_wire.h"

static void test_basics(void **state)
{
	struct unet__rdma_heap h;
	uint64_t a, b, c;

	assert_int_equal(unet__rdma_heap_init(&h, 100, 4096, 8), -EINVAL); /* base unaligned */
	assert_int_equal(unet__rdma_heap_init(&h, 1024, 4096 + 63, 8), 0);
	assert_int_equal(h.size, 4096);
	assert_int_equal(unet__rdma_heap_alloc(&h, 0, &a), -ENOMEM);
	assert_int_equal(unet__rdma_heap_alloc(&h, 4097, &a), -ENOMEM);
	assert_int_equal(unet__rdma_heap_alloc(&h, 1, &a), 0);
	assert_int_equal(a, 1024);
	assert_int_equal(unet__rdma_heap_alloc(&h, 65, &b), 0);
	assert_int_equal(b, 1024 + 64); /* rounded to 64 */
	assert_int_equal(unet__rdma_heap_alloc(&h, 64, &c), 0);
	assert_int_equal(c, 1024 + 192);
	assert_int_equal(h.used, 256);
	/* A hole is found again first-fit. */
	assert_int_equal(unet__rdma_heap_free(&h, b, 65), 0);
	assert_int_equal(unet__rdma_heap_free(&h, b, 65), -EINVAL);	      /* double */
	assert_int_equal(unet__rdma_heap_free(&h, 1024 + 8, 64), -EINVAL);    /* unaligned */
	assert_int_equal(unet__rdma_heap_free(&h, 0, 64), -EINVAL);	      /* below */
	assert_int_equal(unet__rdma_heap_free(&h, 1024 + 4096, 64), -EINVAL); /* above */
	assert_int_equal(unet__rdma_heap_free(&h, UINT64_MAX - 63, 64), -EINVAL);
	assert_int_equal(unet__rdma_heap_alloc(&h, 100, &b), 0);
	assert_int_equal(b, 1024 + 64);
	/* Everything back: one extent covering the heap again. */
	assert_int_equal(unet__rdma_heap_free(&h, a, 1), 0);
	assert_int_equal(unet__rdma_heap_free(&h, c, 64), 0);
	assert_int_equal(unet__rdma_heap_free(&h, b, 100), 0);
	assert_int_equal(h.n, 1);
	assert_int_equal(h.used, 0);
	assert_int_equal(unet__rdma_heap_alloc(&h, 4096, &a), 0);
	assert_int_equal(unet__rdma_heap_alloc(&h, 64, &b), -ENOMEM);
	unet__rdma_heap_fini(&h);
}

#define UNITS 1024 /* heap of 1024 64-byte units */
#define LIVE  64

static void test_random(void **state)
{
	struct unet__rdma_heap h;
	static uint8_t owner[UNITS]; /* 0 free, else live index + 1 */
	struct {
		uint64_t off, len;
	} live[LIVE];
	int nlive = 0;
	unsigned seed = 12345;

	assert_int_equal(unet__rdma_heap_init(&h, 64 * 10, UNITS * 64, LIVE + 2), 0);
	memset(owner, 0, sizeof(owner));
	for (int step = 0; step < 200000; step++) {
		seed = seed * 1103515245u + 12345u;
		if (nlive < LIVE && (seed >> 16) % 3) {
			uint64_t len = 1 + (seed >> 8) % (64 * 40), off;
			int rc = unet__rdma_heap_alloc(&h, len, &off);
			if (rc == -ENOMEM)
				continue;
			assert_int_equal(rc, 0);
			assert_int_equal(off % 64, 0);
			uint64_t u0 = (off - 640) / 64, nu = (len + 63) / 64;
			assert_true(u0 + nu <= UNITS);
			for (uint64_t u = u0; u < u0 + nu; u++) {
				if (owner[u])
					fail_msg("step %d: overlap at unit %lu", step,
						 (unsigned long)u);
				owner[u] = (uint8_t)(nlive + 1);
			}
			live[nlive].off = off;
			live[nlive].len = len;
			nlive++;
		} else if (nlive) {
			int i = (int)((seed >> 4) % (unsigned)nlive);
			assert_int_equal(unet__rdma_heap_free(&h, live[i].off, live[i].len), 0);
			uint64_t u0 = (live[i].off - 640) / 64, nu = (live[i].len + 63) / 64;
			for (uint64_t u = u0; u < u0 + nu; u++)
				owner[u] = 0;
			live[i] = live[--nlive];
			for (int k = 0; k < nlive; k++) {
				uint64_t v0 = (live[k].off - 640) / 64,
					 nv = (live[k].len + 63) / 64;
				for (uint64_t u = v0; u < v0 + nv; u++)
					owner[u] = (uint8_t)(k + 1);
			}
		}
		uint64_t used = 0;
		for (int k = 0; k < nlive; k++)
			used += (live[k].len + 63) / 64 * 64;
		assert_int_equal(h.used, used);
		assert_true(h.n <= (uint32_t)nlive + 1);
	}
	while (nlive) {
		nlive--;
		assert_int_equal(unet__rdma_heap_free(&h, live[nlive].off, live[nlive].len), 0);
	}
	assert_int_equal(h.n, 1);
	assert_int_equal(h.ext[0].len, UNITS * 64);
	unet__rdma_heap_fini(&h);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_basics),
	    cmocka_unit_test(test_random),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
