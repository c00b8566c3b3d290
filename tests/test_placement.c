/* test_placement.c - the consistent-hashing ring: replicas distinct, load
 * balanced, and membership changes move only what they must. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <cmocka.h>

#include "config.h"
#include "placement.h"
#include "regionmap.h"

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

/* A joining member (regionmap.h) is an extra backup of exactly the regions
 * it will hold once it has joined, and moves nothing else. */
static void test_joining_member(void **state)
{
	static struct farm_config c3, c4, cj;
	struct farm_rmap m3, m4, mj;
	static char text[8192];
	uint32_t extra = 0;

	(void)state;
	farm_config_defaults(&c3);
	strcpy(c3.cluster, "j");
	strcpy(c3.nic, "shm");
	c3.region_size = 1 << 20;
	c3.regions = 64;
	c3.replicas = 3;
	for (uint32_t i = 0; i < 4; i++) {
		c4.members[i].id = i + 1;
		snprintf(c4.members[i].addr, sizeof(c4.members[i].addr), "j-%u", i + 1);
	}
	memcpy(c3.members, c4.members, sizeof(c4.members));
	c3.nmembers = 3;
	cj = c3;
	cj.nmembers = 4;
	cj.members[3].joining = 1;
	c4 = cj;
	c4.members[3].joining = 0;
	assert_int_equal(farm__config_finish(&c3, NULL, 0), 0);
	assert_int_equal(farm__config_finish(&c4, NULL, 0), 0);
	assert_int_equal(farm__config_finish(&cj, NULL, 0), 0);
	assert_int_equal(farm_rmap_build(&m3, &c3), 0);
	assert_int_equal(farm_rmap_build(&m4, &c4), 0);
	assert_int_equal(farm_rmap_build(&mj, &cj), 0);
	assert_int_equal(mj.kd, 3);
	assert_int_equal(mj.k, 4);
	for (uint32_t r = 0; r < 64; r++) {
		const uint32_t *a = farm_rmap_replicas(&m3, r), *j = farm_rmap_replicas(&mj, r);
		assert_memory_equal(a, j, 3 * sizeof(uint32_t));
		bool will = farm_rmap_role(&m4, r, 4) >= 0;
		assert_int_equal(j[3], will ? 4u : 0u);
		assert_int_equal(farm_rmap_role(&mj, r, 4), will ? 3 : -1);
		extra += will;
	}
	assert_true(extra > 0 && extra < 64);
	/* The flag survives the file format, and a config of joiners only is
	 * refused. */
	assert_true(farm_config_format(&cj, text, sizeof(text)) > 0);
	assert_non_null(strstr(text, "joining = 4\n"));
	static struct farm_config back;
	assert_int_equal(farm_config_parse(text, &back, NULL, 0), 0);
	assert_int_equal(back.members[3].joining, 1);
	assert_int_equal(back.members[2].joining, 0);
	assert_int_equal(farm_config_parse("cluster = j\nmember = 1 a\njoining = 2\n", &back,
					   NULL, 0),
			 -EINVAL);
	assert_int_equal(farm_config_parse("cluster = j\nmember = 1 a\njoining = 1\n", &back,
					   NULL, 0),
			 -EINVAL);
	farm_rmap_free(&m3);
	farm_rmap_free(&m4);
	farm_rmap_free(&mj);
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
		cmocka_unit_test(test_joining_member),
		cmocka_unit_test(test_bad_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
