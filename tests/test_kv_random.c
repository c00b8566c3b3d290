/* test_kv_random.c - random operations on the key-value store checked one
 * by one against a reference map: get, multi-get, set, add, replace,
 * multi-put, compare-and-put (right and wrong versions), delete (with and
 * without a version), over a key space where keys come and go, values
 * change size across the inline / out-of-line boundary, and the table grows
 * from its smallest size. Every return code, value, length and version is checked;
 * at the end the whole key space and the table's scan agree with the map.
 *
 * One node, so every operation is a local transaction: 1 M operations take
 * a few seconds here. KV_RANDOM_OPS sets another count, KV_RANDOM_SEED the
 * seed (printed, so a failure can be replayed). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdbool.h>
#include <time.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "farm/kv.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"

#define KEYSPACE 30000u
#define MGET	 8u

struct ref {
	uint32_t rev; /* value revision; 0 = absent */
	uint64_t ver; /* item version */
};

struct args {
	uint64_t ops, seed;
	struct ref *ref; /* KEYSPACE */
};

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static size_t key_of(char *k, uint32_t id)
{
	if (id % 11 == 5)
		return (size_t)sprintf(k, "random/long/key/out/of/line/%u", id);
	return (size_t)sprintf(k, "r%u", id);
}

static uint32_t len_of(uint32_t id, uint32_t rev)
{
	static const uint32_t lens[] = {0, 3, 16, 32, 32, 24, 33, 64, 250, 2000};
	return lens[(id * 3 + rev * 5) % 10];
}

static void fill(uint8_t *p, uint32_t id, uint32_t rev, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(id ^ (rev * 31) ^ (i * 101));
}

#define FAIL(...)                                                                                  \
	do {                                                                                       \
		snprintf(sh->err[idx], sizeof(sh->err[idx]), __VA_ARGS__);                         \
		return 1;                                                                          \
	} while (0)

static int check_get(struct fc_shared *sh, int idx, uint64_t op, uint32_t id, const struct ref *r,
		     int rc, const uint8_t *buf, size_t vl, uint64_t ver)
{
	uint8_t want[2048];

	if (!r->rev) {
		if (rc != -ENOENT)
			FAIL("op %llu: get of absent id %u: %d", (unsigned long long)op, id, rc);
		return 0;
	}
	uint32_t len = len_of(id, r->rev);
	fill(want, id, r->rev, len);
	if (rc != 0 || vl != len || memcmp(buf, want, len) || ver != r->ver)
		FAIL("op %llu: get of id %u rev %u: rc %d len %zu (want %u) ver %llx (want %llx)",
		     (unsigned long long)op, id, r->rev, rc, vl, len, (unsigned long long)ver,
		     (unsigned long long)r->ver);
	return 0;
}

static int node_random(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct args *a = arg;
	struct ref *ref = a->ref;
	struct farm_kv *kv;
	struct farm_kv_opts o = {FARM_KV_CREATE, 0};
	static uint8_t buf[MGET][2048], val[2048];
	static char keys[MGET][64];
	struct farm_kv_item it[MGET];
	uint64_t s = a->seed, counts[8] = {0};
	uint64_t t0 = proc_now_ms();

	FC_CHECK_RC(sh, idx, farm_kv_open(f, "random", &o, &kv), 0);
	for (uint64_t op = 0; op < a->ops; op++) {
		uint32_t id = (uint32_t)(rnd(&s) % KEYSPACE), kind = (uint32_t)(rnd(&s) % 100);
		struct ref *r = &ref[id];
		char k[64];
		size_t kl = key_of(k, id), vl = 0;
		uint64_t ver = 0;
		int rc;

		if (kind < 35) { /* get */
			rc = farm_kv_get(kv, k, kl, buf[0], sizeof(buf[0]), &vl, &ver);
			if (check_get(sh, idx, op, id, r, rc, buf[0], vl, ver))
				return 1;
			counts[0]++;
		} else if (kind < 40) { /* multi-get of MGET ids from here */
			uint32_t ids[MGET];
			for (uint32_t j = 0; j < MGET; j++) {
				ids[j] = (id + j * 7919u) % KEYSPACE;
				it[j].key = keys[j];
				it[j].klen = key_of(keys[j], ids[j]);
				it[j].val = buf[j];
				it[j].cap = sizeof(buf[j]);
			}
			int found = farm_kv_mget(kv, it, MGET), want = 0;
			for (uint32_t j = 0; j < MGET; j++) {
				want += ref[ids[j]].rev != 0;
				if (check_get(sh, idx, op, ids[j], &ref[ids[j]], it[j].rc, buf[j],
					      it[j].vlen, it[j].ver))
					return 1;
			}
			if (found != want)
				FAIL("op %llu: mget found %d, want %d", (unsigned long long)op,
				     found, want);
			counts[1]++;
		} else if (kind < 72) { /* set / add / replace */
			enum farm_kv_mode mode = kind < 58   ? FARM_KV_SET
						 : kind < 68 ? FARM_KV_ADD
							     : FARM_KV_REPLACE;
			uint32_t rev = r->rev + 1 + (uint32_t)(rnd(&s) % 3);
			uint32_t len = len_of(id, rev);
			fill(val, id, rev, len);
			rc = farm_kv_put(kv, k, kl, val, len, mode, &ver);
			int want = mode == FARM_KV_ADD && r->rev	? -EEXIST
				   : mode == FARM_KV_REPLACE && !r->rev ? -ENOENT
									: 0;
			if (rc != want)
				FAIL("op %llu: put mode %d of id %u (rev %u): %d, want %d",
				     (unsigned long long)op, mode, id, r->rev, rc, want);
			if (rc == 0) {
				if (ver <= r->ver && r->rev)
					FAIL("op %llu: version did not grow",
					     (unsigned long long)op);
				r->rev = rev;
				r->ver = ver;
			}
			counts[2]++;
		} else if (kind < 75) { /* multi-put of MGET items, ids may repeat */
			static uint8_t vals[MGET][2048];
			struct farm_kv_put_item pi[MGET];
			uint32_t ids[MGET], revs[MGET];
			for (uint32_t j = 0; j < MGET; j++) {
				ids[j] = j && rnd(&s) % 4 == 0 ? ids[j - 1]
							       : (uint32_t)(rnd(&s) % KEYSPACE);
				revs[j] = ref[ids[j]].rev + 1 + j;
				uint32_t len = len_of(ids[j], revs[j]);
				fill(vals[j], ids[j], revs[j], len);
				pi[j].key = keys[j];
				pi[j].klen = key_of(keys[j], ids[j]);
				pi[j].val = vals[j];
				pi[j].vlen = len;
			}
			rc = farm_kv_mput(kv, pi, MGET);
			if (rc != (int)MGET)
				FAIL("op %llu: mput stored %d of %u", (unsigned long long)op, rc,
				     MGET);
			for (uint32_t j = 0; j < MGET; j++) {
				if (pi[j].rc || !pi[j].ver)
					FAIL("op %llu: mput item %u: %d", (unsigned long long)op, j,
					     pi[j].rc);
				ref[ids[j]].rev = revs[j];
				ref[ids[j]].ver = pi[j].ver;
			}
			counts[5]++;
		} else if (kind < 88) { /* compare-and-put */
			bool right = rnd(&s) % 10 < 7;
			uint64_t expect = right ? r->ver : r->ver + 1 + rnd(&s) % 5;
			uint32_t rev = r->rev + 1;
			uint32_t len = len_of(id, rev);
			if (!expect)
				expect = 1;
			fill(val, id, rev, len);
			rc = farm_kv_cas(kv, k, kl, expect, val, len, &ver);
			int want = !r->rev ? -ENOENT : expect == r->ver ? 0 : -ECANCELED;
			if (rc != want)
				FAIL("op %llu: cas of id %u: %d, want %d", (unsigned long long)op,
				     id, rc, want);
			if (rc == 0) {
				r->rev = rev;
				r->ver = ver;
			}
			counts[3]++;
		} else { /* delete */
			uint64_t expect = rnd(&s) % 3 ? 0 : (rnd(&s) % 2 ? r->ver : r->ver + 1);
			rc = farm_kv_del(kv, k, kl, expect);
			int want = !r->rev			   ? -ENOENT
				   : (!expect || expect == r->ver) ? 0
								   : -ECANCELED;
			if (rc != want)
				FAIL("op %llu: del of id %u: %d, want %d", (unsigned long long)op,
				     id, rc, want);
			if (rc == 0)
				r->rev = 0;
			counts[4]++;
		}
		if (op % 4096 == 0)
			farm_poll(f);
	}
	uint64_t present = 0;
	for (uint32_t id = 0; id < KEYSPACE; id++) {
		char k[64];
		size_t kl = key_of(k, id), vl = 0;
		uint64_t ver = 0;
		int rc = farm_kv_get(kv, k, kl, buf[0], sizeof(buf[0]), &vl, &ver);
		if (check_get(sh, idx, a->ops, id, &ref[id], rc, buf[0], vl, ver))
			return 1;
		present += ref[id].rev != 0;
	}
	struct farm_kv_scan sc;
	struct farm_kv_stats st;
	FC_CHECK_RC(sh, idx, farm_kv_scan_stats(kv, &sc), 0);
	farm_kv_get_stats(kv, &st);
	if (sc.keys != present)
		FAIL("scan counts %llu keys, the map %llu", (unsigned long long)sc.keys,
		     (unsigned long long)present);
	uint64_t ms = proc_now_ms() - t0;
	printf("%llu ops in %llu ms (%.0f ops/s): %llu gets, %llu mgets, %llu puts, %llu cas, "
	       "%llu dels, %llu mputs; %llu keys, %llu segments, depth %u, load %.2f, %llu splits, "
	       "%llu "
	       "moves, %llu tx aborts\n",
	       (unsigned long long)a->ops, (unsigned long long)ms,
	       ms ? (double)a->ops * 1000.0 / (double)ms : 0.0, (unsigned long long)counts[0],
	       (unsigned long long)counts[1], (unsigned long long)counts[2],
	       (unsigned long long)counts[3], (unsigned long long)counts[4],
	       (unsigned long long)counts[5], (unsigned long long)sc.keys,
	       (unsigned long long)sc.segments, sc.global_depth, sc.load,
	       (unsigned long long)st.splits, (unsigned long long)st.displacements,
	       (unsigned long long)st.tx_aborts);
	fflush(stdout);
	farm_kv_close(kv);
	return 0;
}

static void test_kv_random(void **state)
{
	struct farm_config cfg;
	struct args a;
	const char *e = getenv("KV_RANDOM_OPS"), *se = getenv("KV_RANDOM_SEED");

	a.ops = e ? strtoull(e, NULL, 10) : 1000000;
	a.seed = se ? strtoull(se, NULL, 0) : (uint64_t)time(NULL) * 2654435761u;
	if (!a.seed)
		a.seed = 1;
	a.ref = calloc(KEYSPACE, sizeof(*a.ref));
	assert_non_null(a.ref);
	print_message("seed %#llx, %llu operations\n", (unsigned long long)a.seed,
		      (unsigned long long)a.ops);
	fc_config(&cfg, 1, "kvrnd", 64u << 20, 4, 1);
	assert_int_equal(fc_run(&cfg, node_random, &a, NULL, 10000, 600000), 0);
	free(a.ref);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_kv_random, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
