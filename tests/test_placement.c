/* test_placement.c - the consistent-hashing ring: replicas distinct, load
 * balanced, and membership changes move only what they must. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "placement.h"

#define REGIONS 4096

static void test_distinct_replicas(void **state)
{
	uint32_t m[5] = {1, 2, 3, 4, 5}, out[FARM_MAX_REPLICAS];
	struct farm_ring r;

	assert_int_equal(farm_ring_build(&r, m, 5, 0), 0);
	for (uint32_t reg = 0; reg < REGIONS; reg++) {
		assert_int_equal(farm_ring_place(&r, reg, out, 3), 3);
		assert_true(out[0] != out[1] && out[1] != out[2] && out[0] != out[2]);
		for (int i = 0; i < 3; i++)
			assert_true(out[i] >= 1 && out[i] <= 5);
	}
	/* More replicas asked than members: capped. */
	assert_int_equal(farm_ring_place(&r, 7, out, 8), 5);
	farm_ring_free(&r);
}

static void test_balance(void **state)
{
	uint32_t m[8], out[3], prim[8] = {0}, any[8] = {0};
	struct farm_ring r;

	for (uint32_t i = 0; i < 8; i++)
		m[i] = 100 + i * 7;
	assert_int_equal(farm_ring_build(&r, m, 8, 128), 0);
	for (uint32_t reg = 0; reg < REGIONS; reg++) {
		farm_ring_place(&r, reg, out, 3);
		for (int k = 0; k < 3; k++)
			for (int i = 0; i < 8; i++)
				if (out[k] == m[i]) {
					any[i]++;
					prim[i] += k == 0;
				}
	}
	/* Mean primaries 512 per member; 128 vnodes keep each within 25%. */
	for (int i = 0; i < 8; i++) {
		assert_true(prim[i] > REGIONS / 8 * 3 / 4 && prim[i] < REGIONS / 8 * 5 / 4);
		assert_true(any[i] > REGIONS * 3 / 8 * 3 / 4 && any[i] < REGIONS * 3 / 8 * 5 / 4);
	}
	farm_ring_free(&r);
}

/* Removing one member changes replica sets only of regions it held, and
 * adding it back restores the original placement exactly. */
static void test_minimal_movement(void **state)
{
	uint32_t m[6] = {10, 11, 12, 13, 14, 15};
	static uint32_t before[REGIONS][3], after[REGIONS][3];
	struct farm_ring r;
	uint32_t moved = 0;

	assert_int_equal(farm_ring_build(&r, m, 6, 64), 0);
	for (uint32_t reg = 0; reg < REGIONS; reg++)
		farm_ring_place(&r, reg, before[reg], 3);
	farm_ring_free(&r);

	uint32_t less[5] = {10, 11, 12, 14, 15}; /* 13 leaves */
	assert_int_equal(farm_ring_build(&r, less, 5, 64), 0);
	for (uint32_t reg = 0; reg < REGIONS; reg++) {
		farm_ring_place(&r, reg, after[reg], 3);
		int had13 = before[reg][0] == 13 || before[reg][1] == 13 || before[reg][2] == 13;
		if (!had13) {
			assert_memory_equal(before[reg], after[reg], sizeof(before[reg]));
		} else {
			moved++;
			/* Survivors keep their order; one newcomer fills the gap. */
			uint32_t j = 0;
			for (int k = 0; k < 3; k++)
				if (before[reg][k] != 13) {
					while (j < 3 && after[reg][j] != before[reg][k])
						j++;
					assert_true(j < 3);
				}
		}
	}
	/* About 3/6 of the regions had 13 as a replica. */
	assert_true(moved > REGIONS / 2 * 3 / 4 && moved < REGIONS / 2 * 5 / 4);
	farm_ring_free(&r);

	assert_int_equal(farm_ring_build(&r, m, 6, 64), 0);
	for (uint32_t reg = 0; reg < REGIONS; reg++) {
		farm_ring_place(&r, reg, after[reg], 3);
		assert_memory_equal(before[reg], after[reg], sizeof(before[reg]));
	}
	farm_ring_free(&r);
}

static void test_bad_input(void **state)
{
	uint32_t dup[3] = {1, 2, 1};
	struct farm_ring r;

	assert_int_equal(farm_ring_build(&r, dup, 3, 4), -EINVAL);
	assert_int_equal(farm_ring_build(&r, dup, 0, 4), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_distinct_replicas),
		cmocka_unit_test(test_balance),
		cmocka_unit_test(test_minimal_movement),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
