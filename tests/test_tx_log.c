/* test_tx_log.c - the transaction logs of FaRM's commit, on 3-node shm
 * clusters with 3-way replication:
 *   - tiny logs (4 KiB rings) and a node that mostly sleeps: commits wait
 *     for log space (the sleeper is told to truncate) or abort LOG_FULL
 *     when a tx cannot fit at all; no committed update is lost;
 *   - after a random run (writes, allocations, frees, aborts; seeded) every
 *     backup holds exactly its primary's committed state: replicas are
 *     compared byte for byte (region and slab headers, every allocated
 *     object whole; a free slot only by its allocated bit, since the
 *     allocator's free-list link lives in it at the primary alone);
 *   - a configuration change: participants in another configuration make
 *     commits abort FAILURE, and once all agree commits work again;
 *   - a participant that dies: commits abort FAILURE quickly, never hang. */
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
#include "helpers/farm_cluster.h"
#include "helpers/replicas.h"
#include "helpers/proc.h"
#include "node.h"
#include "slab.h"
#include "tx.h"

static uint64_t rnd(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

static uint64_t seed_from_env(void)
{
	const char *e = getenv("TX_SEED");
	uint64_t s = e ? strtoull(e, NULL, 0) : (uint64_t)proc_now_ms() * 2654435761u;

	return s ? s : 1;
}

static int alloc_here(struct farm *f, uint32_t size, farm_addr_t *a)
{
	uint32_t rep[8];
	int rc = farm_alloc(f, size, FARM_NULL, a);

	if (rc)
		return rc;
	return farm_region_replicas(f, FARM_REGION(*a), rep, 8) >= 1 && rep[0] == farm_self(f)
		   ? 0
		   : -EXDEV;
}

/* Every node: flush truncation points, then apply everything it holds. */
static int drain(struct farm *f, int idx, struct fc_shared *sh, int bar)
{
	int n = (int)farm_get_config(f)->nmembers;
	uint64_t end;

	if (fc_barrier(f, sh, bar, n, 30000))
		return -ETIMEDOUT;
	farm__tx_flush(f);
	if (fc_barrier(f, sh, bar + 1, n, 30000))
		return -ETIMEDOUT;
	end = proc_now_ms() + 10000;
	while (farm__tx_unapplied(f)) {
		if (proc_now_ms() >= end)
			return -ETIMEDOUT;
		farm_poll(f);
	}
	(void)idx;
	return fc_barrier(f, sh, bar + 2, n, 30000);
}

/* ---- tiny logs ------------------------------------------------------------------------- */

#define TINY_OBJ 700
#define TINY_TXS 150

/* count[idx]: 0 commits, 1 LOG_FULL aborts, 2 other aborts; val[k]: the
 * number of committed increments of object k (objects 0..5). */
static int node_tiny(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	uint8_t buf[TINY_OBJ];
	farm_addr_t a;

	(void)arg;
	for (int k = idx; k < 6; k += n) {
		FC_CHECK_RC(sh, idx, alloc_here(f, TINY_OBJ, &a), 0);
		sh->addr[k] = a;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	if (idx == 2) {
		/* The sleeper: wakes only for its messages (farm_idle), never
		 * polls on its own, so its rings fill until it is told. */
		while (__atomic_load_n(&sh->flag[0], __ATOMIC_ACQUIRE) < 2)
			if (farm_poll(f) == 0)
				farm_idle(f, 200);
	} else {
		uint64_t end = proc_now_ms() + 40000;
		for (int i = 0; i < TINY_TXS; i++) {
			struct farm_tx_result res;
			struct farm_tx *tx;
			int k0 = (i + idx) % 6, k1 = (i * 5 + 1 + idx) % 6, rc;
			FC_CHECK(sh, idx, proc_now_ms() < end);
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			/* Every 10th tx writes all six objects: 4.2 KB of images
			 * at one participant can never fit a 4 KiB ring. */
			int nk = i % 10 == 9 ? 6 : (k0 == k1 ? 1 : 2);
			int ks[6] = {k0, k1, 0, 0, 0, 0};
			if (nk == 6)
				for (int j = 0; j < 6; j++)
					ks[j] = j;
			rc = 0;
			for (int j = 0; j < nk && rc == 0; j++) {
				uint64_t c;
				rc = farm_tx_read(tx, sh->addr[ks[j]], buf, TINY_OBJ);
				if (rc)
					break;
				memcpy(&c, buf, 8);
				c++;
				memset(buf, (int)c, TINY_OBJ);
				memcpy(buf, &c, 8);
				rc = farm_tx_write(tx, sh->addr[ks[j]], buf, TINY_OBJ);
			}
			FC_CHECK(sh, idx, rc == 0 || rc == -EAGAIN);
			rc = farm_tx_commit(tx, &res);
			if (rc == 0) {
				FC_CHECK(sh, idx, nk != 6); /* can never fit a ring */
				sh->count[idx][0]++;
				for (int j = 0; j < nk; j++)
					__atomic_add_fetch(&sh->val[ks[j]], 1, __ATOMIC_ACQ_REL);
			} else if (res.reason == FARM_ABORT_LOG_FULL) {
				FC_CHECK(sh, idx, nk == 6);
				sh->count[idx][1]++;
			} else {
				FC_CHECK(sh, idx, res.reason != FARM_ABORT_FAILURE);
				sh->count[idx][2]++;
			}
		}
		struct farm_txstats ts;
		farm__tx_get_stats(f, &ts);
		sh->count[idx][3] = ts.log_waits;
		sh->count[idx][4] = ts.log_kicks;
		__atomic_add_fetch(&sh->flag[0], 1, __ATOMIC_ACQ_REL);
	}
	FC_CHECK_RC(sh, idx, drain(f, idx, sh, 1), 0);
	/* Nothing lost: each object holds its committed increment count, in
	 * every byte, at the primary and (read back below) at every backup. */
	for (int k = 0; k < 6; k++) {
		uint64_t c;
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[k], buf, TINY_OBJ, NULL), 0);
		memcpy(&c, buf, 8);
		FC_CHECK(sh, idx, c == sh->val[k]);
		for (int j = 8; j < TINY_OBJ; j++)
			FC_CHECK(sh, idx, buf[j] == (uint8_t)c);
		const struct farm_region *r = &f->regions[FARM_REGION(sh->addr[k])];
		FC_CHECK(sh, idx, r->mine != NULL);
		uint64_t h = farm_word_load(r->mine->base + FARM_OFFSET(sh->addr[k]));
		FC_CHECK(sh, idx, !farm_hdr_locked(h) && farm_hdr_alloc(h));
		uint8_t img[64];
		memcpy(img, r->mine->base + FARM_OFFSET(sh->addr[k]), 64);
		FC_CHECK(sh, idx, !memcmp(img + 8, buf, 56)); /* this node's replica */
	}
	return 0;
}

static void test_tiny_log(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	(void)state;
	fc_config(&cfg, 3, "txtiny", 1 << 20, 6, 3);
	cfg.log_size = 4096;
	int rc = fc_run(&cfg, node_tiny, NULL, sh, 10000, 50000);
	for (int i = 0; i < 2; i++)
		print_message(
		    "node %d: %llu commits, %llu LOG_FULL, %llu other aborts; "
		    "%llu waits for log space, %llu truncation requests\n",
		    i + 1, (unsigned long long)sh->count[i][0], (unsigned long long)sh->count[i][1],
		    (unsigned long long)sh->count[i][2], (unsigned long long)sh->count[i][3],
		    (unsigned long long)sh->count[i][4]);
	assert_int_equal(rc, 0);
	for (int i = 0; i < 2; i++) {
		/* Every oversize tx aborts: LOG_FULL unless a conflict came first. */
		assert_true(sh->count[i][1] > 0 && sh->count[i][1] <= TINY_TXS / 10);
		assert_true(sh->count[i][3] > 0); /* commits did wait */
		assert_true(sh->count[i][4] > 0); /* ... for the sleeper */
	}
	proc_unshare(sh, sizeof(*sh));
}

/* ---- replicas agree ------------------------------------------------------------------- */

#define REP_REGION  (256u << 10)
#define REP_REGIONS 3
#define REP_OBJS    48
#define REP_TXS	    400

struct rep_arg {
	uint64_t seed;
	uint8_t *dump; /* [node][region][REP_REGION], MAP_SHARED */
};

static int node_rep(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	const struct rep_arg *ra = arg;
	int n = (int)farm_get_config(f)->nmembers;
	uint64_t s = ra->seed + (uint64_t)idx * 104729;
	uint8_t buf[2000];

	/* Shared slots: addr[k] is object k or FARM_NULL (freed); objects are
	 * taken by whoever wins the tx that frees or allocates them. */
	if (idx == 0)
		for (int k = 0; k < REP_OBJS; k++) {
			farm_addr_t a;
			FC_CHECK_RC(sh, idx,
				    farm_alloc(f, 8 + (uint32_t)(k * 37) % 1500, FARM_NULL, &a), 0);
			sh->addr[k] = a;
		}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	uint64_t end = proc_now_ms() + 40000;
	for (int i = 0; i < REP_TXS; i++) {
		struct farm_tx *tx;
		int k = (int)(rnd(&s) % REP_OBJS), j = (int)(rnd(&s) % REP_OBJS), rc = 0;
		farm_addr_t a = __atomic_load_n(&sh->addr[k], __ATOMIC_ACQUIRE), na = FARM_NULL;
		unsigned what = (unsigned)(rnd(&s) % 10);
		uint32_t len = 1 + (uint32_t)(rnd(&s) % sizeof(buf));

		FC_CHECK(sh, idx, proc_now_ms() < end);
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		for (uint32_t b = 0; b < sizeof(buf); b++)
			buf[b] = (uint8_t)rnd(&s);
		if (a == FARM_NULL) {
			/* Re-create object k (sometimes near j, maybe remote). */
			farm_addr_t near = __atomic_load_n(&sh->addr[j], __ATOMIC_ACQUIRE);
			rc = farm_tx_alloc(tx, len, what < 5 ? near : FARM_NULL, &na);
			if (rc == 0)
				rc = farm_tx_write(tx, na, buf, len);
		} else if (what == 0) {
			rc = farm_tx_free(tx, a);
		} else {
			uint32_t size;
			rc = farm_obj_size(f, a, &size);
			if (rc == 0)
				rc = farm_tx_write(tx, a, buf, len < size ? len : size);
			farm_addr_t b2 = __atomic_load_n(&sh->addr[j], __ATOMIC_ACQUIRE);
			if (rc == 0 && b2 != FARM_NULL && b2 != a && what < 4)
				rc = farm_tx_write(tx, b2, buf, 8);
		}
		if (rc) { /* a slot changed under us: freed, reused, busy */
			farm_tx_abort(tx);
			continue;
		}
		if (what == 9 && a != FARM_NULL) { /* an abort on purpose */
			farm_tx_abort(tx);
			continue;
		}
		if (farm_tx_commit(tx, NULL) == 0) {
			if (a == FARM_NULL &&
			    !__atomic_compare_exchange_n(&sh->addr[k], &a, na, false,
							 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE)) {
				/* Another node re-created k first: free ours. */
				FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
				FC_CHECK_RC(sh, idx, farm_tx_free(tx, na), 0);
				FC_CHECK_RC(sh, idx, farm_tx_commit(tx, NULL), 0);
			} else if (a != FARM_NULL && what == 0) {
				__atomic_compare_exchange_n(&sh->addr[k], &a, FARM_NULL, false,
							    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE);
			}
			sh->count[idx][0]++;
		} else {
			sh->count[idx][1]++;
		}
		if (i % 8 == 0)
			farm_poll(f);
	}
	FC_CHECK_RC(sh, idx, drain(f, idx, sh, 1), 0);
	/* Dump every replica this node holds. */
	for (uint32_t r = 0; r < REP_REGIONS; r++) {
		const struct farm_replica *x = f->regions[r].mine;
		FC_CHECK(sh, idx, x != NULL);
		memcpy(ra->dump + ((size_t)idx * REP_REGIONS + r) * REP_REGION, x->base,
		       REP_REGION);
	}
	return 0;
}

static void test_replicas_agree(void **state)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	size_t dump_len = (size_t)3 * REP_REGIONS * REP_REGION;
	struct rep_arg ra = {seed_from_env(), proc_shared(dump_len)};
	uint64_t objs = 0;

	(void)state;
	print_message("seed %llu (TX_SEED=%llu replays)\n", (unsigned long long)ra.seed,
		      (unsigned long long)ra.seed);
	fc_config(&cfg, 3, "txrep", REP_REGION, REP_REGIONS, 3);
	int rc = fc_run(&cfg, node_rep, &ra, sh, 10000, 50000);
	print_message("commits %llu/%llu/%llu, aborts %llu/%llu/%llu\n",
		      (unsigned long long)sh->count[0][0], (unsigned long long)sh->count[1][0],
		      (unsigned long long)sh->count[2][0], (unsigned long long)sh->count[0][1],
		      (unsigned long long)sh->count[1][1], (unsigned long long)sh->count[2][1]);
	assert_int_equal(rc, 0);
	for (uint32_t r = 0; r < REP_REGIONS; r++) {
		/* Three replicas of every region (3 nodes, 3-way): all equal. */
		const uint8_t *base[3];
		for (int i = 0; i < 3; i++)
			base[i] = ra.dump + ((size_t)i * REP_REGIONS + r) * REP_REGION;
		for (int i = 1; i < 3; i++) {
			uint64_t d = replicas_diff(base[0], base[i], REP_REGION, &objs, NULL);
			if (d) {
				uint64_t o = (d - 1) & ~(uint64_t)(FARM_LINE - 1), h0, h1;
				memcpy(&h0, base[0] + o, 8);
				memcpy(&h1, base[i] + o, 8);
				print_message("region %u: node 1 and node %d differ at offset %llu "
					      "(line at %llu: headers %#llx / %#llx)\n",
					      r, i + 1, (unsigned long long)(d - 1),
					      (unsigned long long)o, (unsigned long long)h0,
					      (unsigned long long)h1);
				for (uint64_t x = o; x < o + 64 * 40; x++)
					if (base[0][x] != base[i][x]) {
						print_message(
						    "  first byte differing: +%llu (line %llu): "
						    "%02x / %02x / %02x\n",
						    (unsigned long long)(x - o),
						    (unsigned long long)((x - o) / 64), base[0][x],
						    base[i][x], base[3 - i][x]);
						break;
					}
			}
			assert_int_equal(d, 0);
		}
	}
	print_message("%llu object replicas compared equal\n", (unsigned long long)objs);
	assert_true(objs >= REP_OBJS / 2);
	proc_unshare(ra.dump, dump_len);
	proc_unshare(sh, sizeof(*sh));
}

/* ---- configuration change --------------------------------------------------------------- */

static int node_cfg(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	struct farm_tx_result res;
	struct farm_tx *tx;
	uint64_t v = 7;
	farm_addr_t a;

	(void)arg;
	FC_CHECK_RC(sh, idx, alloc_here(f, 8, &a), 0);
	sh->addr[idx] = a;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	if (idx == 1)
		farm__set_config_id(f, 2); /* node 2 moves on alone */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 20000), 0);
	if (idx == 0) {
		/* Node 2 leads one object, backs up the other: both refuse. */
		for (int k = 0; k < 3; k += 2) {
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			FC_CHECK_RC(sh, idx, farm_tx_write(tx, sh->addr[k], &v, 8), 0);
			FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), -EAGAIN);
			FC_CHECK(sh, idx, res.reason == FARM_ABORT_FAILURE);
		}
		/* A read of node 2's object dooms the tx. */
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		FC_CHECK_RC(sh, idx, farm_tx_read(tx, sh->addr[1], &v, 8), -EAGAIN);
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), -EAGAIN);
		FC_CHECK(sh, idx, res.reason == FARM_ABORT_FAILURE);
		/* Nothing was left locked or changed. */
		for (int k = 0; k < 3; k += 2) {
			FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[k], &v, 8, NULL), 0);
			FC_CHECK(sh, idx, v == 0);
		}
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, n, 20000), 0);
	if (idx != 1)
		farm__set_config_id(f, 2); /* everybody catches up */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, n, 20000), 0);
	/* A tx begun before the change is refused; new ones commit. */
	if (idx == 0) {
		v = 9;
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		for (int k = 0; k < 3; k++)
			FC_CHECK_RC(sh, idx, farm_tx_write(tx, sh->addr[k], &v, 8), 0);
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		farm__set_config_id(f, 3);
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), -EAGAIN);
		FC_CHECK(sh, idx, res.reason == FARM_ABORT_FAILURE);
		farm__set_config_id(f, 2);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, n, 20000), 0);
	for (int k = 0; k < 3; k++) {
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[k], &v, 8, NULL), 0);
		FC_CHECK(sh, idx, v == 9);
	}
	return 0;
}

static void test_config_change(void **state)
{
	struct farm_config cfg;

	(void)state;
	fc_config(&cfg, 3, "txcfg", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_cfg, NULL, NULL, 10000, 30000), 0);
}

/* ---- a participant dies ----------------------------------------------------------------- */

static int node_die(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	struct farm_tx_result res;
	struct farm_tx *tx;
	uint64_t v = 5;
	farm_addr_t a;

	(void)arg;
	FC_CHECK_RC(sh, idx, alloc_here(f, 8, &a), 0);
	sh->addr[idx] = a;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	if (idx == 2) {
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		_exit(0); /* a crash, as far as the peers can tell */
	}
	if (idx == 0) {
		/* Until the death is noticed a commit may still go through;
		 * after, every commit aborts FAILURE, each within seconds. */
		uint64_t t0 = proc_now_ms();
		int failures = 0;
		while (failures < 5) {
			uint64_t t1 = proc_now_ms();
			FC_CHECK(sh, idx, t1 - t0 < 20000);
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			int rc = farm_tx_write(tx, sh->addr[idx], &v, 8);
			FC_CHECK(sh, idx, rc == 0 || rc == -EAGAIN);
			rc = farm_tx_commit(tx, &res);
			FC_CHECK(sh, idx, proc_now_ms() - t1 < 10000);
			if (rc) {
				FC_CHECK(sh, idx, res.reason == FARM_ABORT_FAILURE);
				failures++;
			}
		}
	}
	__atomic_add_fetch(&sh->flag[0], 1, __ATOMIC_ACQ_REL);
	uint64_t end = proc_now_ms() + 20000;
	while (__atomic_load_n(&sh->flag[0], __ATOMIC_ACQUIRE) < 2 && proc_now_ms() < end)
		if (farm_poll(f) == 0)
			farm_idle(f, 2);
	return 0;
}

static void test_participant_dies(void **state)
{
	struct farm_config cfg;

	(void)state;
	fc_config(&cfg, 3, "txdie", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_die, NULL, NULL, 10000, 30000), 0);
}

/* ---- the log_size key ---------------------------------------------------------------- */

static void test_log_size_config(void **state)
{
	static const char *bad[] = {"3K", "5000", "2G", "0", "1Q", "-4K"};
	struct farm_config cfg, back;
	char text[512], err[256], out[2048];

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(text, sizeof(text), "log_size = %s\nmember = 1 a\n", bad[i]);
		assert_int_equal(farm_config_parse(text, &cfg, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "line 1"));
		assert_non_null(strstr(err, "log_size"));
	}
	assert_int_equal(farm_config_parse("member = 1 a\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.log_size, 1u << 20); /* the default */
	assert_int_equal(
	    farm_config_parse("log_size = 64K\nmember = 1 a\n", &cfg, err, sizeof(err)), 0);
	assert_int_equal(cfg.log_size, 64u << 10);
	assert_true(farm_config_format(&cfg, out, sizeof(out)) > 0);
	assert_non_null(strstr(out, "log_size = 64K"));
	assert_int_equal(farm_config_parse(out, &back, err, sizeof(err)), 0);
	assert_int_equal(back.log_size, cfg.log_size);
	assert_int_equal(farm_config_parse("log_size = 4K\nlog_size = 8K\nmember = 1 a\n", &cfg,
					   err, sizeof(err)),
			 -EINVAL); /* twice */
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_log_size_config),
	    cmocka_unit_test_teardown(test_tiny_log, proc_teardown),
	    cmocka_unit_test_teardown(test_replicas_agree, proc_teardown),
	    cmocka_unit_test_teardown(test_config_change, proc_teardown),
	    cmocka_unit_test_teardown(test_participant_dies, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
