/* test_kv.c - the key-value store (kv.h) on in-process FaRM clusters:
 * semantics of every call (inline and out-of-line items, modes, versions,
 * compare-and-put, delete), a table opened by name from another node, bad
 * input, growth from a tiny table (splits, directory doublings) while
 * another node keeps reading what was inserted, forced hash collisions in
 * one neighbourhood (hopscotch moves, then overflow), and multi-get. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdbool.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "farm/kv.h"
#include "kv_int.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"

#define RSIZE (4u << 20)

static const struct farm_kv_opts create = {FARM_KV_CREATE, 0};

/* Value of key id at revision rev: its length varies with both, so items
 * move between inline and out of line. */
static uint32_t val_len(uint32_t id, uint32_t rev)
{
	static const uint32_t lens[] = {0, 1, 8, 31, 32, 33, 100, 1000, 5000};
	return lens[(id * 7 + rev) % (sizeof(lens) / sizeof(lens[0]))];
}

static void val_fill(uint8_t *p, uint32_t id, uint32_t rev, uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(id * 131 + rev * 17 + i * 7);
}

static size_t key_of(char *k, uint32_t id)
{
	/* Mostly short keys (inline); every 5th is long (out of line). */
	if (id % 5 == 4)
		return (size_t)sprintf(k, "a-much-longer-key-that-goes-out-of-line-%u", id);
	return (size_t)sprintf(k, "k%u", id);
}

static int check_val(struct farm_kv *kv, uint32_t id, uint32_t rev, uint8_t *buf, size_t cap)
{
	char k[96];
	size_t kl = key_of(k, id), vl = 0;
	uint8_t want[5000];
	uint32_t len = val_len(id, rev);
	int rc = farm_kv_get(kv, k, kl, buf, cap, &vl, NULL);

	if (rc)
		return rc;
	val_fill(want, id, rev, len);
	if (vl != len || memcmp(buf, want, len))
		return -EBADMSG;
	return 0;
}

static int put_val(struct farm_kv *kv, uint32_t id, uint32_t rev, enum farm_kv_mode mode)
{
	char k[96];
	uint8_t v[5000];
	size_t kl = key_of(k, id);
	uint32_t len = val_len(id, rev);

	val_fill(v, id, rev, len);
	return farm_kv_put(kv, k, kl, v, len, mode, NULL);
}

/* ---- semantics --------------------------------------------------------- */

static int node_basic(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct farm_kv *kv = NULL;
	uint8_t buf[FARM_KV_VAL_MAX], big[FARM_KV_VAL_MAX];
	char bigkey[FARM_KV_KEY_MAX + 1];
	size_t vl;
	uint64_t v1, v2, v3;

	memset(bigkey, 'K', sizeof(bigkey));
	for (size_t i = 0; i < sizeof(big); i++)
		big[i] = (uint8_t)(i * 13 + 1);
	if (idx == 0) {
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "nope", NULL, &kv), -ENOENT);
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "basic", &create, &kv), 0);
		/* Inline: 16-byte key, 32-byte value. */
		FC_CHECK_RC(sh, idx,
			    farm_kv_put(kv, "0123456789abcdef", 16,
					"0123456789abcdef0123456789abcdef", 32, FARM_KV_SET, &v1),
			    0);
		FC_CHECK(sh, idx, v1 != 0);
		FC_CHECK_RC(sh, idx,
			    farm_kv_get(kv, "0123456789abcdef", 16, buf, sizeof(buf), &vl, &v2), 0);
		FC_CHECK(sh, idx,
			 vl == 32 && v2 == v1 &&
			     !memcmp(buf, "0123456789abcdef0123456789abcdef", 32));
		/* Overwrite: a new version. */
		FC_CHECK_RC(sh, idx,
			    farm_kv_put(kv, "0123456789abcdef", 16, "x", 1, FARM_KV_SET, &v2), 0);
		FC_CHECK(sh, idx, v2 != v1);
		/* Modes. */
		FC_CHECK_RC(sh, idx,
			    farm_kv_put(kv, "0123456789abcdef", 16, "y", 1, FARM_KV_ADD, NULL),
			    -EEXIST);
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "absent", 6, "y", 1, FARM_KV_REPLACE, NULL),
			    -ENOENT);
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "added", 5, "", 0, FARM_KV_ADD, &v3), 0);
		FC_CHECK_RC(sh, idx, farm_kv_get(kv, "added", 5, NULL, 0, &vl, NULL), 0);
		FC_CHECK(sh, idx, vl == 0);
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "added", 5, "r", 1, FARM_KV_REPLACE, NULL), 0);
		/* Compare-and-put. */
		FC_CHECK_RC(sh, idx, farm_kv_cas(kv, "0123456789abcdef", 16, v1, "z", 1, NULL),
			    -ECANCELED);
		FC_CHECK_RC(sh, idx, farm_kv_cas(kv, "0123456789abcdef", 16, v2, "z", 1, &v3), 0);
		FC_CHECK(sh, idx, v3 != v2 && v3 != v1);
		FC_CHECK_RC(sh, idx, farm_kv_cas(kv, "absent", 6, v3, "z", 1, NULL), -ENOENT);
		/* Out of line: a long key, a big value, and the largest ones. */
		FC_CHECK_RC(sh, idx,
			    farm_kv_put(kv, bigkey, FARM_KV_KEY_MAX, big, FARM_KV_VAL_MAX,
					FARM_KV_SET, &v1),
			    0);
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "small-key", 9, big, 33, FARM_KV_SET, NULL),
			    0);
		FC_CHECK_RC(sh, idx,
			    farm_kv_put(kv, "seventeen-bytes!!", 17, "v", 1, FARM_KV_SET, NULL), 0);
		/* A small buffer: -ENOBUFS with the length. */
		FC_CHECK_RC(sh, idx, farm_kv_get(kv, "small-key", 9, buf, 32, &vl, NULL), -ENOBUFS);
		FC_CHECK(sh, idx, vl == 33);
		/* Out-of-line item becomes inline, and back. */
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "small-key", 9, "tiny", 4, FARM_KV_SET, NULL),
			    0);
		FC_CHECK_RC(sh, idx, farm_kv_get(kv, "small-key", 9, buf, sizeof(buf), &vl, NULL),
			    0);
		FC_CHECK(sh, idx, vl == 4 && !memcmp(buf, "tiny", 4));
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "small-key", 9, big, 1000, FARM_KV_SET, NULL),
			    0);
		/* Delete, with and without a version. */
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "gone", 4, "1", 1, FARM_KV_SET, &v2), 0);
		FC_CHECK_RC(sh, idx, farm_kv_del(kv, "gone", 4, v2 + 1), -ECANCELED);
		FC_CHECK_RC(sh, idx, farm_kv_del(kv, "gone", 4, v2), 0);
		FC_CHECK_RC(sh, idx, farm_kv_get(kv, "gone", 4, buf, sizeof(buf), &vl, NULL),
			    -ENOENT);
		FC_CHECK_RC(sh, idx, farm_kv_del(kv, "gone", 4, 0), -ENOENT);
		/* Re-inserted: never the old version. */
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "gone", 4, "1", 1, FARM_KV_SET, &v3), 0);
		FC_CHECK(sh, idx, v3 != v2);
		FC_CHECK_RC(sh, idx, farm_kv_del(kv, "gone", 4, 0), 0);
		sh->val[0] = v1;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 3, 20000), 0);
	if (idx != 0) /* another node opens it by name, without creating */
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "basic", NULL, &kv), 0);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, bigkey, FARM_KV_KEY_MAX, buf, sizeof(buf), &vl, &v2),
		    0);
	FC_CHECK(sh, idx, vl == FARM_KV_VAL_MAX && v2 == sh->val[0] && !memcmp(buf, big, vl));
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "0123456789abcdef", 16, buf, sizeof(buf), &vl, NULL),
		    0);
	FC_CHECK(sh, idx, vl == 1 && buf[0] == 'z');
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "small-key", 9, buf, sizeof(buf), &vl, NULL), 0);
	FC_CHECK(sh, idx, vl == 1000 && !memcmp(buf, big, 1000));
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "seventeen-bytes!!", 17, buf, sizeof(buf), &vl, NULL),
		    0);
	FC_CHECK(sh, idx, vl == 1 && buf[0] == 'v');
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "gone", 4, buf, sizeof(buf), &vl, NULL), -ENOENT);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "added", 5, buf, sizeof(buf), &vl, NULL), 0);
	FC_CHECK(sh, idx, vl == 1 && buf[0] == 'r');
	/* A second handle on the same node sees the same table. */
	struct farm_kv *kv2;
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "basic", &create, &kv2), 0);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv2, "added", 5, buf, sizeof(buf), &vl, NULL), 0);
	farm_kv_close(kv2);
	struct farm_kv_scan sc;
	FC_CHECK_RC(sh, idx, farm_kv_scan_stats(kv, &sc), 0);
	FC_CHECK(sh, idx, sc.keys == 5 && sc.ool_keys == 3 && sc.inline_keys == 2);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 3, 20000), 0);
	farm_kv_close(kv);
	return 0;
}

static void test_kv_basic(void **state)
{
	struct farm_config cfg;

	fc_config(&cfg, 3, "kvb", RSIZE, 6, 2);
	assert_int_equal(fc_run(&cfg, node_basic, NULL, NULL, 10000, 60000), 0);
}

/* ---- bad input ----------------------------------------------------------- */

static int node_bad(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct farm_kv *kv;
	struct farm_kv_opts o = {FARM_KV_CREATE, 0};
	char name[FARM_KV_NAME_MAX + 2], key[FARM_KV_KEY_MAX + 2];
	static uint8_t val[FARM_KV_VAL_MAX + 2];
	uint8_t buf[64];
	size_t vl;
	struct farm_kv_item it = {0};

	memset(name, 'n', sizeof(name));
	name[FARM_KV_NAME_MAX + 1] = 0;
	memset(key, 'k', sizeof(key));
	FC_CHECK_RC(sh, idx, farm_kv_open(NULL, "t", &o, &kv), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "t", &o, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_open(f, NULL, &o, &kv), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "", &o, &kv), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_open(f, name, &o, &kv), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "with space", &o, &kv), -EINVAL);
	o.flags = 0x80;
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "t", &o, &kv), -EINVAL);
	/* Unknown names, before and after a catalog exists. */
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "t", NULL, &kv), -ENOENT);
	o.flags = FARM_KV_CREATE;
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "t", &o, &kv), 0);
	struct farm_kv *k2;
	FC_CHECK_RC(sh, idx, farm_kv_open(f, "t2", NULL, &k2), -ENOENT);
	name[FARM_KV_NAME_MAX] = 0; /* the longest name is fine */
	FC_CHECK_RC(sh, idx, farm_kv_open(f, name, &o, &k2), 0);
	farm_kv_close(k2);

	FC_CHECK_RC(sh, idx, farm_kv_get(NULL, "a", 1, buf, sizeof(buf), &vl, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "", 0, buf, sizeof(buf), &vl, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, NULL, 3, buf, sizeof(buf), &vl, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "a", 1, NULL, 5, &vl, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, key, FARM_KV_KEY_MAX + 1, buf, 64, &vl, NULL),
		    -ENAMETOOLONG);
	FC_CHECK_RC(sh, idx, farm_kv_put(kv, "", 0, "v", 1, FARM_KV_SET, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_put(kv, key, FARM_KV_KEY_MAX + 1, "v", 1, FARM_KV_SET, NULL),
		    -ENAMETOOLONG);
	FC_CHECK_RC(sh, idx, farm_kv_put(kv, "a", 1, val, FARM_KV_VAL_MAX + 1, FARM_KV_SET, NULL),
		    -EFBIG);
	FC_CHECK_RC(sh, idx, farm_kv_put(kv, "a", 1, NULL, 1, FARM_KV_SET, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_put(kv, "a", 1, "v", 1, (enum farm_kv_mode)7, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_put(NULL, "a", 1, "v", 1, FARM_KV_SET, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_cas(kv, "a", 1, 0, "v", 1, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_cas(kv, "", 0, 5, "v", 1, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_cas(kv, "a", 1, 5, val, FARM_KV_VAL_MAX + 1, NULL), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_kv_del(kv, "", 0, 0), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_del(kv, key, FARM_KV_KEY_MAX + 1, 0), -ENAMETOOLONG);
	FC_CHECK_RC(sh, idx, farm_kv_del(NULL, "a", 1, 0), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_mget(NULL, &it, 1), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_mget(kv, NULL, 1), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_mget(kv, NULL, 0), 0);
	it.key = "";
	FC_CHECK_RC(sh, idx, farm_kv_mget(kv, &it, 1), 0);
	FC_CHECK(sh, idx, it.rc == -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_scan_stats(NULL, NULL), -EINVAL);
	/* Multi-put: bad items get their own code, the good ones go in. */
	struct farm_kv_put_item pi[4] = {
	    {"m1", 2, "v1", 2, 0, 0},
	    {"", 0, "v", 1, 0, 0},
	    {key, FARM_KV_KEY_MAX + 1, "v", 1, 0, 0},
	    {"m2", 2, val, FARM_KV_VAL_MAX + 1, 0, 0},
	};
	FC_CHECK_RC(sh, idx, farm_kv_mput(NULL, pi, 4), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_mput(kv, NULL, 4), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_kv_mput(kv, pi, 4), 1);
	FC_CHECK(sh, idx, pi[0].rc == 0 && pi[0].ver != 0);
	FC_CHECK(sh, idx, pi[1].rc == -EINVAL && pi[2].rc == -ENAMETOOLONG && pi[3].rc == -EFBIG);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "m1", 2, buf, sizeof(buf), &vl, NULL), 0);
	FC_CHECK_RC(sh, idx, farm_kv_del(kv, "m1", 2, pi[0].ver), 0);
	/* The largest key and value are fine, and nothing above was stored. */
	FC_CHECK_RC(sh, idx,
		    farm_kv_put(kv, key, FARM_KV_KEY_MAX, val, FARM_KV_VAL_MAX, FARM_KV_SET, NULL),
		    0);
	struct farm_kv_scan sc;
	FC_CHECK_RC(sh, idx, farm_kv_scan_stats(kv, &sc), 0);
	FC_CHECK(sh, idx, sc.keys == 1);
	farm_kv_close(kv);
	farm_kv_close(NULL);
	return 0;
}

static void test_kv_bad(void **state)
{
	struct farm_config cfg;

	fc_config(&cfg, 1, "kvbad", RSIZE, 2, 1);
	assert_int_equal(fc_run(&cfg, node_bad, NULL, NULL, 10000, 30000), 0);
}

/* ---- growth, with reads during it --------------------------------------- */

#define GROW_KEYS 6000u

static int node_grow(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct farm_kv *kv;
	static uint8_t buf[8192];
	struct farm_kv_scan sc;

	if (idx == 0) {
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "grow", &create, &kv), 0);
		FC_CHECK_RC(sh, idx, farm_kv_scan_stats(kv, &sc), 0);
		sh->count[0][0] = sc.global_depth;
		sh->count[0][1] = sc.segments;
		proc_set_u32(&sh->flag[0], 1);
		for (uint32_t id = 0; id < GROW_KEYS; id++) {
			FC_CHECK_RC(sh, idx, put_val(kv, id, 0, FARM_KV_ADD), 0);
			proc_set_u32(&sh->flag[1], id + 1); /* inserted so far */
			if (id == GROW_KEYS / 2) {
				/* Halfway, the reader must be reading (a busy machine
				 * could starve it through the whole growth). */
				uint64_t end = proc_now_ms() + 20000;
				while (proc_get_u32(&sh->flag[3]) < 100) {
					FC_CHECK(sh, idx, proc_now_ms() < end);
					if (farm_poll(f) == 0)
						farm_idle(f, 1);
				}
			}
			/* Every key inserted so far is still there, now and then. */
			if (id % 500 == 499)
				for (uint32_t j = 0; j <= id; j += 7)
					FC_CHECK_RC(sh, idx, check_val(kv, j, 0, buf, sizeof(buf)),
						    0);
		}
		/* Deletes of every third key, then everything checked. */
		for (uint32_t id = 0; id < GROW_KEYS; id += 3) {
			char k[96];
			size_t kl = key_of(k, id);
			FC_CHECK_RC(sh, idx, farm_kv_del(kv, k, kl, 0), 0);
		}
		for (uint32_t id = 0; id < GROW_KEYS; id++)
			FC_CHECK_RC(sh, idx, check_val(kv, id, 0, buf, sizeof(buf)),
				    id % 3 ? 0 : -ENOENT);
		FC_CHECK_RC(sh, idx, farm_kv_scan_stats(kv, &sc), 0);
		FC_CHECK(sh, idx, sc.keys == GROW_KEYS - (GROW_KEYS + 2) / 3);
		FC_CHECK(sh, idx, sc.global_depth > sh->count[0][0]);
		FC_CHECK(sh, idx, sc.segments > sh->count[0][1] * 16);
		struct farm_kv_stats st;
		farm_kv_get_stats(kv, &st);
		FC_CHECK(sh, idx, st.splits > 0);
		print_message("growth: %llu keys in %llu segments (depth %u..%u, global %u), load "
			      "%.2f, %llu splits, %llu displacements; dist from home:",
			      (unsigned long long)sc.keys, (unsigned long long)sc.segments,
			      sc.min_local_depth, sc.max_local_depth, sc.global_depth, sc.load,
			      (unsigned long long)st.splits, (unsigned long long)st.displacements);
		for (int i = 0; i < (int)KV_H; i++)
			print_message(" %llu", (unsigned long long)sc.dist[i]);
		print_message("\n");
		proc_set_u32(&sh->flag[2], 1);
	} else {
		/* Reader: opens the tiny table, then keeps reading keys as they
		 * are inserted (its directory goes stale all the time). */
		uint64_t end = proc_now_ms() + 20000;
		while (!proc_get_u32(&sh->flag[0])) { /* serving: we may hold region 0 */
			FC_CHECK(sh, idx, proc_now_ms() < end);
			if (farm_poll(f) == 0)
				farm_idle(f, 1);
		}
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "grow", NULL, &kv), 0);
		uint64_t reads = 0;
		uint32_t x = 12345;
		while (!proc_get_u32(&sh->flag[2]) && proc_get_u32(&sh->flag[1]) < GROW_KEYS) {
			uint32_t n = proc_get_u32(&sh->flag[1]);
			if (n == 0) {
				farm_poll(f);
				continue;
			}
			x = x * 1103515245u + 12345u;
			uint32_t id = (x >> 8) % n;
			FC_CHECK_RC(sh, idx, check_val(kv, id, 0, buf, sizeof(buf)), 0);
			reads++;
			if (reads % 64 == 0) {
				proc_set_u32(&sh->flag[3], (uint32_t)reads);
				farm_poll(f);
			}
		}
		struct farm_kv_stats st;
		farm_kv_get_stats(kv, &st);
		FC_CHECK(sh, idx, reads > 100);
		FC_CHECK(sh, idx, st.dir_refreshes > 0);
		print_message("reader during growth: %llu reads, %llu directory refreshes, %llu "
			      "re-reads\n",
			      (unsigned long long)reads, (unsigned long long)st.dir_refreshes,
			      (unsigned long long)st.get_retries);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 2, 60000), 0);
	farm_kv_close(kv);
	return 0;
}

static void test_kv_grow(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, 2, "kvg", 16u << 20, 4, 2);
	assert_int_equal(fc_run(&cfg, node_grow, NULL, sh, 10000, 120000), 0);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- collisions ---------------------------------------------------------- */

/* Every key of the form "c<n>" gets the same hash; a neighbourhood holds 8,
 * the rest must overflow (a split cannot separate equal hashes). Keys
 * "h<n>" crowd four home slots only, so hopscotch moves and splits
 * place them. */
static uint64_t same_hash(const void *key, size_t klen, uint64_t seed)
{
	const char *k = key;

	if (klen && k[0] == 'c')
		return 0x5555555555555555ull;
	if (klen && k[0] == 'h') { /* homes 3..6 only: crowded, so items move */
		uint64_t h = kv__hash_default(key, klen, seed);
		return (h & ~(uint64_t)(KV_HOMES - 1)) | (3 + (h >> 20) % 4);
	}
	return kv__hash_default(key, klen, seed);
}

#define NCOLL 60u

static int node_collide(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct farm_kv *kv;
	char k[64];
	uint8_t buf[2048], v[2048];
	size_t vl;

	if (idx == 0) {
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "coll", &create, &kv), 0);
		farm_kv__set_hash(kv, same_hash);
		for (uint32_t i = 0; i < NCOLL; i++) {
			/* every 4th out of line */
			uint32_t len = i % 4 == 3 ? 100 + i : 8;
			memset(v, (int)i, len);
			sprintf(k, "c%u", i);
			FC_CHECK_RC(sh, idx,
				    farm_kv_put(kv, k, strlen(k), v, len, FARM_KV_SET, NULL), 0);
			sprintf(k, "h%u", i);
			FC_CHECK_RC(sh, idx,
				    farm_kv_put(kv, k, strlen(k), v, len, FARM_KV_SET, NULL), 0);
		}
		struct farm_kv_scan sc;
		FC_CHECK_RC(sh, idx, farm_kv_scan_stats(kv, &sc), 0);
		FC_CHECK(sh, idx, sc.keys == 2 * NCOLL);
		FC_CHECK(sh, idx, sc.ovf_keys >= NCOLL - KV_H);
		struct farm_kv_stats st;
		farm_kv_get_stats(kv, &st);
		FC_CHECK(sh, idx, st.displacements > 0);
		print_message("collisions: %llu keys, %llu in overflow, %llu displacements, %llu "
			      "splits\n",
			      (unsigned long long)sc.keys, (unsigned long long)sc.ovf_keys,
			      (unsigned long long)st.displacements, (unsigned long long)st.splits);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 2, 20000), 0);
	if (idx == 1) {
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "coll", NULL, &kv), 0);
		farm_kv__set_hash(kv, same_hash);
	}
	for (uint32_t i = 0; i < NCOLL; i++) {
		uint32_t len = i % 4 == 3 ? 100 + i : 8;
		memset(v, (int)i, len);
		for (int p = 0; p < 2; p++) {
			sprintf(k, "%c%u", p ? 'h' : 'c', i);
			FC_CHECK_RC(sh, idx,
				    farm_kv_get(kv, k, strlen(k), buf, sizeof(buf), &vl, NULL), 0);
			FC_CHECK(sh, idx, vl == len && !memcmp(buf, v, len));
		}
	}
	sprintf(k, "c%u", NCOLL);
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, k, strlen(k), buf, sizeof(buf), &vl, NULL), -ENOENT);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 2, 20000), 0);
	if (idx == 0) {
		/* Delete half of the colliding keys, from the neighbourhood and
		 * from the overflow, and update the others. */
		for (uint32_t i = 0; i < NCOLL; i += 2) {
			sprintf(k, "c%u", i);
			FC_CHECK_RC(sh, idx, farm_kv_del(kv, k, strlen(k), 0), 0);
		}
		for (uint32_t i = 1; i < NCOLL; i += 2) {
			sprintf(k, "c%u", i);
			FC_CHECK_RC(sh, idx,
				    farm_kv_put(kv, k, strlen(k), "upd", 3, FARM_KV_REPLACE, NULL),
				    0);
		}
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, 2, 20000), 0);
	for (uint32_t i = 0; i < NCOLL; i++) {
		sprintf(k, "c%u", i);
		int rc = farm_kv_get(kv, k, strlen(k), buf, sizeof(buf), &vl, NULL);
		FC_CHECK_RC(sh, idx, rc, i % 2 ? 0 : -ENOENT);
		FC_CHECK(sh, idx, i % 2 == 0 || (vl == 3 && !memcmp(buf, "upd", 3)));
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, 2, 20000), 0);
	if (idx == 0) { /* everything deleted: the overflow goes away */
		for (uint32_t i = 1; i < NCOLL; i += 2) {
			sprintf(k, "c%u", i);
			FC_CHECK_RC(sh, idx, farm_kv_del(kv, k, strlen(k), 0), 0);
		}
		struct farm_kv_scan sc;
		FC_CHECK_RC(sh, idx, farm_kv_scan_stats(kv, &sc), 0);
		FC_CHECK(sh, idx, sc.keys == NCOLL && sc.ovf_keys == 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, 2, 20000), 0);
	farm_kv_close(kv);
	return 0;
}

static void test_kv_collide(void **state)
{
	struct farm_config cfg;

	fc_config(&cfg, 2, "kvc", RSIZE, 4, 2);
	assert_int_equal(fc_run(&cfg, node_collide, NULL, NULL, 10000, 60000), 0);
}

/* ---- multi-get ------------------------------------------------------------ */

static int node_mget(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct farm_kv *kv;
	enum { N = 100 };
	static struct farm_kv_item it[N];
	static char keys[N][96];
	static uint8_t bufs[N][5000];

	if (idx == 0) {
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "mget", &create, &kv), 0);
		for (uint32_t id = 0; id < N; id += 2) /* only even ids exist */
			FC_CHECK_RC(sh, idx, put_val(kv, id, 1, FARM_KV_SET), 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 2, 20000), 0);
	if (idx == 1)
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "mget", NULL, &kv), 0);
	for (uint32_t id = 0; id < N; id++) {
		it[id].key = keys[id];
		it[id].klen = key_of(keys[id], id);
		it[id].val = bufs[id];
		it[id].cap = id == 10 ? 0 : sizeof(bufs[id]);
	}
	int found = farm_kv_mget(kv, it, N);
	FC_CHECK(sh, idx, found == N / 2 - (val_len(10, 1) > 0));
	for (uint32_t id = 0; id < N; id++) {
		uint32_t len = val_len(id, 1);
		uint8_t want[5000];
		val_fill(want, id, 1, len);
		if (id % 2) {
			FC_CHECK_RC(sh, idx, it[id].rc, -ENOENT);
		} else if (id == 10 && len) {
			FC_CHECK_RC(sh, idx, it[id].rc, -ENOBUFS);
			FC_CHECK(sh, idx, it[id].vlen == len);
		} else {
			FC_CHECK_RC(sh, idx, it[id].rc, 0);
			FC_CHECK(sh, idx,
				 it[id].vlen == len && it[id].ver != 0 &&
				     !memcmp(bufs[id], want, len));
		}
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 2, 20000), 0);
	farm_kv_close(kv);
	return 0;
}

static void test_kv_mget(void **state)
{
	struct farm_config cfg;

	fc_config(&cfg, 2, "kvm", RSIZE, 4, 2);
	assert_int_equal(fc_run(&cfg, node_mget, NULL, NULL, 10000, 60000), 0);
}

/* ---- the same over the udp NIC: one-sided READs served by the target ---- */

static void udp_config(struct farm_config *cfg, const char *tag, int n)
{
	uint16_t base = (uint16_t)(30000 + (getpid() % 2000) * 8);

	fc_config(cfg, n, tag, RSIZE, 6, 2);
	strcpy(cfg->nic, "udp");
	for (int i = 0; i < n; i++)
		snprintf(cfg->members[i].addr, sizeof(cfg->members[i].addr), "127.0.0.1:%u",
			 base + (unsigned)i);
}

static void test_kv_udp(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	udp_config(&cfg, "kvub", 3);
	assert_int_equal(fc_run(&cfg, node_basic, NULL, NULL, 10000, 60000), 0);
	udp_config(&cfg, "kvum", 2);
	assert_int_equal(fc_run(&cfg, node_mget, NULL, NULL, 10000, 60000), 0);
	udp_config(&cfg, "kvug", 2);
	assert_int_equal(fc_run(&cfg, node_grow, NULL, sh, 10000, 120000), 0);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_kv_basic, proc_teardown),
	    cmocka_unit_test_teardown(test_kv_bad, proc_teardown),
	    cmocka_unit_test_teardown(test_kv_collide, proc_teardown),
	    cmocka_unit_test_teardown(test_kv_mget, proc_teardown),
	    cmocka_unit_test_teardown(test_kv_grow, proc_teardown),
	    cmocka_unit_test_teardown(test_kv_udp, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
