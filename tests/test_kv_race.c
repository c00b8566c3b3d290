/* test_kv_race.c - concurrent readers and writers of the key-value store.
 *
 * Two nodes keep rewriting their own keys (transactions) while a third
 * node, and the writers between their writes, read them with one-sided
 * reads, one by one and in multi-gets. Every value carries its key id, a
 * revision and a checksum: a reader must never see a torn value, a value
 * of another key, a revision that was not yet written, or -- the part
 * that needs the commit protocol and the read protocol to agree -- a
 * revision older than one whose put had already returned when the read
 * began (stale after commit). Values alternate between inline and out of
 * line sizes, so item objects are freed and reused under the readers.
 * Both writers also increment one shared counter with get + compare-and-put;
 * no increment may be lost. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <stdbool.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "farm/kv.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"

#define NKEYS	   16u /* keys 0..7 written by node 0, 8..15 by node 1 */
#define RUN_MS	   4000u
#define MIN_WRITES 30u
#define INCS	   40u /* counter increments per writer */

/* Shared: committed[id] (a put of that revision returned), started[id] (a
 * put of that revision began), in fc_shared's val/addr slots. */
#define COMMITTED(sh, id) (&(sh)->val[id])
#define STARTED(sh, id)	  (&(sh)->addr[id])

static uint32_t vlen_of(uint32_t id, uint32_t rev)
{
	return (id + rev) % 3 == 0 ? 200 : (id + rev) % 3 == 1 ? 32 : 12;
}

static size_t key_of(char *k, uint32_t id)
{
	if (id % 4 == 3) /* out-of-line keys too */
		return (size_t)sprintf(k, "race-key-long-enough-to-be-out-of-line-%u", id);
	return (size_t)sprintf(k, "race%u", id);
}

static uint32_t fnv(const uint8_t *p, uint32_t n)
{
	uint32_t h = 2166136261u;
	for (uint32_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 16777619u;
	return h;
}

static void make(uint8_t *p, uint32_t len, uint32_t id, uint32_t rev)
{
	memcpy(p, &id, 4);
	memcpy(p + 4, &rev, 4);
	for (uint32_t i = 8; i < len - 4; i++)
		p[i] = (uint8_t)(id * 29 + rev * 7 + i);
	uint32_t h = fnv(p, len - 4);
	memcpy(p + len - 4, &h, 4);
}

/* 0 when intact and of key id; *rev gets its revision. */
static int intact(const uint8_t *p, size_t len, uint32_t id, uint32_t *rev)
{
	uint32_t gid, h;

	if (len < 12)
		return -1;
	memcpy(&gid, p, 4);
	memcpy(rev, p + 4, 4);
	memcpy(&h, p + len - 4, 4);
	if (gid != id || len != vlen_of(id, *rev) || h != fnv(p, (uint32_t)len - 4))
		return -1;
	return 0;
}

static uint64_t ld(const uint64_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

static void st(uint64_t *p, uint64_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

/* Read key id and check it against what writers published. */
static int check_one(struct fc_shared *sh, int idx, uint32_t id, const uint8_t *buf, size_t len,
		     int rc, uint64_t lo)
{
	uint32_t rev;

	FC_CHECK_RC(sh, idx, rc, 0);
	FC_CHECK(sh, idx, intact(buf, len, id, &rev) == 0);
	if (rev < lo) {
		snprintf(sh->err[idx], sizeof(sh->err[idx]),
			 "key %u: read revision %u after revision %llu had committed", id, rev,
			 (unsigned long long)lo);
		return 1;
	}
	FC_CHECK(sh, idx, rev <= ld(STARTED(sh, id)));
	return 0;
}

static int read_round(struct farm_kv *kv, struct fc_shared *sh, int idx, uint32_t *x,
		      uint64_t *reads)
{
	static uint8_t bufs[NKEYS][256];
	static char keys[NKEYS][64];
	struct farm_kv_item it[NKEYS];
	uint64_t lo[NKEYS];

	*x = *x * 1103515245u + 12345u;
	if ((*x >> 16) % 4 == 0) { /* a multi-get of every key */
		for (uint32_t id = 0; id < NKEYS; id++) {
			lo[id] = ld(COMMITTED(sh, id));
			it[id].key = keys[id];
			it[id].klen = key_of(keys[id], id);
			it[id].val = bufs[id];
			it[id].cap = sizeof(bufs[id]);
		}
		int n = farm_kv_mget(kv, it, NKEYS);
		FC_CHECK(sh, idx, n == (int)NKEYS);
		for (uint32_t id = 0; id < NKEYS; id++)
			if (check_one(sh, idx, id, bufs[id], it[id].vlen, it[id].rc, lo[id]))
				return 1;
		*reads += NKEYS;
		return 0;
	}
	uint32_t id = (*x >> 8) % NKEYS;
	size_t kl = key_of(keys[id], id), vl = 0;
	uint64_t low = ld(COMMITTED(sh, id));
	int rc = farm_kv_get(kv, keys[id], kl, bufs[id], sizeof(bufs[id]), &vl, NULL);
	(*reads)++;
	return check_one(sh, idx, id, bufs[id], vl, rc, low);
}

static int incr(struct farm_kv *kv, struct fc_shared *sh, int idx)
{
	for (int t = 0; t < 1000; t++) {
		uint64_t v, ver;
		size_t vl;
		int rc = farm_kv_get(kv, "counter", 7, &v, sizeof(v), &vl, &ver);
		FC_CHECK_RC(sh, idx, rc, 0);
		FC_CHECK(sh, idx, vl == 8);
		v++;
		rc = farm_kv_cas(kv, "counter", 7, ver, &v, sizeof(v), NULL);
		if (rc == 0)
			return 0;
		FC_CHECK_RC(sh, idx, rc, -ECANCELED);
		sh->count[idx][2]++;
	}
	snprintf(sh->err[idx], sizeof(sh->err[idx]), "counter: 1000 lost races in a row");
	return 1;
}

static int node_race(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	struct farm_kv *kv;
	struct farm_kv_opts o = {FARM_KV_CREATE, 64};
	uint8_t v[256];
	char k[64];
	uint32_t x = 777u + (uint32_t)idx * 1000u, rev = 0;
	uint64_t reads = 0, writes = 0;

	if (idx == 0) {
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "race", &o, &kv), 0);
		for (uint32_t id = 0; id < NKEYS; id++) {
			size_t kl = key_of(k, id);
			make(v, vlen_of(id, 0), id, 0);
			FC_CHECK_RC(sh, idx,
				    farm_kv_put(kv, k, kl, v, vlen_of(id, 0), FARM_KV_ADD, NULL),
				    0);
		}
		uint64_t zero = 0;
		FC_CHECK_RC(sh, idx, farm_kv_put(kv, "counter", 7, &zero, 8, FARM_KV_ADD, NULL), 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 3, 20000), 0);
	if (idx)
		FC_CHECK_RC(sh, idx, farm_kv_open(f, "race", NULL, &kv), 0);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 3, 20000), 0);

	uint64_t end = proc_now_ms() + RUN_MS;
	if (idx < 2) {
		uint32_t incs = 0;
		while (proc_now_ms() < end || writes < MIN_WRITES || incs < INCS) {
			FC_CHECK(sh, idx, proc_now_ms() < end + 60000);
			uint32_t id = (uint32_t)idx * 8 + (uint32_t)(writes % 8);
			rev = (uint32_t)(writes / 8) + 1;
			size_t kl = key_of(k, id);
			uint32_t len = vlen_of(id, rev);
			make(v, len, id, rev);
			st(STARTED(sh, id), rev);
			FC_CHECK_RC(sh, idx, farm_kv_put(kv, k, kl, v, len, FARM_KV_REPLACE, NULL),
				    0);
			st(COMMITTED(sh, id), rev);
			writes++;
			if (incs < INCS && writes % 2 == 0) {
				if (incr(kv, sh, idx))
					return 1;
				incs++;
			}
			for (int r = 0; r < 4; r++)
				if (read_round(kv, sh, idx, &x, &reads))
					return 1;
		}
		sh->count[idx][0] = writes;
		proc_set_u32(&sh->flag[idx], 1);
	} else {
		while (!proc_get_u32(&sh->flag[0]) || !proc_get_u32(&sh->flag[1])) {
			FC_CHECK(sh, idx, proc_now_ms() < end + 60000);
			if (read_round(kv, sh, idx, &x, &reads))
				return 1;
			if (reads % 256 < NKEYS)
				farm_poll(f); /* the writers wait for this node's acks */
		}
	}
	sh->count[idx][1] = reads;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, 3, 60000), 0);
	uint64_t c;
	size_t vl;
	FC_CHECK_RC(sh, idx, farm_kv_get(kv, "counter", 7, &c, sizeof(c), &vl, NULL), 0);
	FC_CHECK(sh, idx, c == 2 * INCS);
	struct farm_kv_stats s;
	farm_kv_get_stats(kv, &s);
	sh->count[idx][3] = s.get_retries;
	sh->count[idx][4] = s.tx_aborts;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, 3, 20000), 0);
	farm_kv_close(kv);
	return 0;
}

static void test_kv_race(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	fc_config(&cfg, 3, "kvr", 4u << 20, 6, 2);
	assert_int_equal(fc_run(&cfg, node_race, NULL, sh, 10000, 120000), 0);
	print_message("writes %llu + %llu, reads %llu / %llu / %llu, lost counter races %llu + "
		      "%llu, reader re-reads %llu, tx aborts %llu + %llu\n",
		      (unsigned long long)sh->count[0][0], (unsigned long long)sh->count[1][0],
		      (unsigned long long)sh->count[0][1], (unsigned long long)sh->count[1][1],
		      (unsigned long long)sh->count[2][1], (unsigned long long)sh->count[0][2],
		      (unsigned long long)sh->count[1][2], (unsigned long long)sh->count[2][3],
		      (unsigned long long)sh->count[0][4], (unsigned long long)sh->count[1][4]);
	assert_true(sh->count[2][1] > 1000);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_kv_race, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
