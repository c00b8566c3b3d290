/* test_farm_resync.c - a primary killed while a change is on its way to its
 * backups leaves the change at some of them only; the replicas must agree
 * again afterwards (replica.c, "resync"; log.c, a COMMIT-BACKUP of the same
 * version). Forked shm nodes, three members, three replicas; the victim's
 * REPLs to one backup are suppressed (farm__test_repl_skip) for a
 * farm_write of O and a farm_free of O2, then the victim exits and the two
 * survivors adopt a configuration without it (farm__adopt_config).
 *
 *   - the new primary has the change, the other backup not: the new
 *     primary pushes it again; both hold O's new bytes and O2 freed;
 *   - the other backup has it, the new primary not: the new primary's push
 *     of O and O2 (their earlier changes are in its REPL log) brings the
 *     backup back to the primary's bytes;
 *   - control: without the push, the replicas differ (the check can fail);
 *   - without the push, a transaction that writes O afterwards makes them
 *     agree: its COMMIT-BACKUP record has the version the backup's stray
 *     change has, and is applied anyway;
 *   - without a crash: a backup that adopted a newer configuration than its
 *     primary refuses a write's REPL (-ESTALE); the primary keeps the write
 *     and pushes it again once it has adopted too (control: without). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"
#include "config.h"
#include "membership_node.h"
#include "node.h"
#include "object.h"
#include "regionmap.h"
#include "tx.h"

#define NODES 3
#define VICTIM NODES /* member id of the last node */
#define RSIZE (1u << 20)
#define NREG 6
#define OSIZE 200
#define IMG 512 /* >= farm_obj_lines(OSIZE) * FARM_LINE */

struct rs_arg {
	const struct farm_config *cfg;
	bool resync;	 /* the new primary pushes (else: the control) */
	bool primary_ahead; /* the new primary has the change (else the backup) */
	bool tx_after;	 /* a transaction writes O after the change */
	/* shared: each survivor's image of O and O2, by member id */
	uint8_t (*img)[2][IMG];
};

static int wait_flag(struct farm *f, struct fc_shared *sh, int i, int ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	while (!__atomic_load_n(&sh->flag[i], __ATOMIC_ACQUIRE)) {
		if (proc_now_ms() >= end)
			return -ETIMEDOUT;
		if (farm_poll(f) == 0)
			farm_idle(f, 1);
	}
	return 0;
}

static void serve_ms(struct farm *f, int ms)
{
	for (uint64_t end = proc_now_ms() + (uint64_t)ms; proc_now_ms() < end;)
		if (farm_poll(f) == 0)
			farm_idle(f, 1);
}

static int node_fn(struct farm *f, int idx, struct fc_shared *sh, void *argp)
{
	const struct rs_arg *a = argp;
	static struct farm_config nx;
	struct farm_rmap nm;
	uint32_t R = UINT32_MAX, N = 0, B = 0, skip_idx = 0, rep[4];
	uint8_t buf[OSIZE];
	char err[256];

	farm__test_resync_off = !a->resync;
	/* Region R: led by the victim; N leads it next, B backs it up. */
	nx = *a->cfg;
	nx.nmembers = NODES - 1;
	nx.config_id = 2;
	FC_CHECK_RC(sh, idx, farm__config_finish(&nx, err, sizeof(err)), 0);
	FC_CHECK_RC(sh, idx, farm_rmap_build(&nm, &nx), 0);
	for (uint32_t r = 0; r < NREG && R == UINT32_MAX; r++) {
		FC_CHECK(sh, idx, farm_region_replicas(f, r, rep, 4) == NODES);
		if (rep[0] != VICTIM)
			continue;
		R = r;
		N = farm_rmap_replicas(&nm, r)[0];
		B = farm_rmap_replicas(&nm, r)[1];
		uint32_t left_out = a->primary_ahead ? B : N;
		for (uint32_t b = 1; b < NODES; b++)
			if (rep[b] == left_out)
				skip_idx = b;
	}
	farm_rmap_free(&nm);
	FC_CHECK(sh, idx, R != UINT32_MAX && skip_idx != 0);

	if (farm_self(f) == VICTIM) {
		farm_addr_t o, o2;
		memset(buf, 0x11, sizeof(buf));
		FC_CHECK_RC(sh, idx, farm_alloc(f, OSIZE, FARM_ADDR(R, FARM_LINE), &o), 0);
		FC_CHECK_RC(sh, idx, farm_alloc(f, OSIZE, FARM_ADDR(R, FARM_LINE), &o2), 0);
		FC_CHECK(sh, idx, FARM_REGION(o) == R && FARM_REGION(o2) == R);
		FC_CHECK_RC(sh, idx, farm_write(f, o, buf, OSIZE), 0);
		sh->addr[0] = o;
		sh->addr[1] = o2;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, NODES, 20000), 0);
	if (farm_self(f) == VICTIM) {
		/* The change reaches one backup only; then the crash. */
		farm__test_repl_skip = 1u << skip_idx;
		memset(buf, 0x22, sizeof(buf));
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[0], buf, OSIZE), 0);
		FC_CHECK_RC(sh, idx, farm_free(f, sh->addr[1]), 0);
		__atomic_store_n(&sh->flag[0], 1, __ATOMIC_RELEASE);
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		_exit(0);
	}
	FC_CHECK_RC(sh, idx, wait_flag(f, sh, 0, 20000), 0);
	FC_CHECK_RC(sh, idx, farm__adopt_config(f, &nx, err, sizeof(err)), 0);
	__atomic_store_n(&sh->flag[1 + idx], 1, __ATOMIC_RELEASE);
	for (int i = 0; i < NODES - 1; i++)
		FC_CHECK_RC(sh, idx, wait_flag(f, sh, 1 + i, 20000), 0);

	if (a->tx_after && farm_self(f) == N) {
		int rc = -EAGAIN;
		memset(buf, 0x33, sizeof(buf));
		for (int t = 0; t < 200 && rc; t++) {
			struct farm_tx *tx;
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			rc = farm_tx_write(tx, sh->addr[0], buf, OSIZE);
			rc = rc ? (farm_tx_abort(tx), rc) : farm_tx_commit(tx, NULL);
			if (rc)
				serve_ms(f, 5);
		}
		FC_CHECK_RC(sh, idx, rc, 0);
	}
	/* Every COMMIT-BACKUP record applied, every push acked. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, NODES - 1, 20000), 0);
	farm__tx_flush(f);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, NODES - 1, 20000), 0);
	uint64_t end = proc_now_ms() + 10000;
	while (farm__tx_unapplied(f) || f->nrsq) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		if (farm_poll(f) == 0)
			farm_idle(f, 1);
	}
	serve_ms(f, 200);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, NODES - 1, 20000), 0);
	const uint8_t *base = f->regions[R].mine->base;
	for (int k = 0; k < 2; k++)
		memcpy(a->img[farm_self(f) - 1][k], base + FARM_OFFSET(sh->addr[k]), IMG);
	if (farm_self(f) == N)
		sh->count[idx][0] = f->st.resyncs;
	sh->val[0] = N;
	sh->val[1] = B;
	return 0;
}

/* Header and payload of an object image (line words carry the version). */
static void payload(const uint8_t *img, uint8_t *out)
{
	uint32_t lines = farm_obj_lines(OSIZE);

	for (uint32_t l = 0; l < lines; l++) {
		uint32_t n = OSIZE - l * FARM_LINE_PAYLOAD;
		if (n > FARM_LINE_PAYLOAD)
			n = FARM_LINE_PAYLOAD;
		memcpy(out + l * FARM_LINE_PAYLOAD, img + l * FARM_LINE + 8, n);
	}
}

static bool all_bytes(const uint8_t *p, uint8_t v)
{
	for (int i = 0; i < OSIZE; i++)
		if (p[i] != v)
			return false;
	return true;
}

struct outcome {
	uint64_t hn[2], hb[2]; /* header of O, O2 at N and at B */
	uint8_t pn[OSIZE], pb[OSIZE];
	bool same[2];	       /* whole images equal */
	uint64_t resyncs;
};

static void run(bool resync, bool primary_ahead, bool tx_after, struct outcome *out)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	uint8_t(*img)[2][IMG] = proc_shared(NODES * sizeof(*img));
	struct rs_arg a = {&cfg, resync, primary_ahead, tx_after, img};

	fc_config(&cfg, NODES, "frsync", RSIZE, NREG, 3);
	assert_int_equal(fc_run(&cfg, node_fn, &a, sh, 10000, 40000), 0);
	uint32_t n = (uint32_t)sh->val[0], b = (uint32_t)sh->val[1];
	assert_true(n >= 1 && n < VICTIM && b >= 1 && b < VICTIM && n != b);
	for (int k = 0; k < 2; k++) {
		memcpy(&out->hn[k], img[n - 1][k], 8);
		memcpy(&out->hb[k], img[b - 1][k], 8);
		out->same[k] = memcmp(img[n - 1][k], img[b - 1][k],
				      farm_obj_lines(OSIZE) * FARM_LINE) == 0;
	}
	payload(img[n - 1][0], out->pn);
	payload(img[b - 1][0], out->pb);
	out->resyncs = sh->count[n - 1][0];
	print_message("resync %s, %s ahead%s: O v%llu/v%llu at primary/backup (%s), O2 %s/%s "
		      "(%s), %llu objects pushed\n",
		      resync ? "on" : "off", primary_ahead ? "primary" : "backup",
		      tx_after ? ", tx after" : "",
		      (unsigned long long)farm_hdr_version(out->hn[0]),
		      (unsigned long long)farm_hdr_version(out->hb[0]),
		      out->same[0] ? "same" : "DIFFER",
		      farm_hdr_alloc(out->hn[1]) ? "allocated" : "free",
		      farm_hdr_alloc(out->hb[1]) ? "allocated" : "free",
		      out->same[1] ? "same" : "DIFFER", (unsigned long long)out->resyncs);
	proc_unshare(img, NODES * sizeof(*img));
	proc_unshare(sh, sizeof(*sh));
}

static void test_primary_ahead_pushes(void **state)
{
	struct outcome o;

	(void)state;
	run(true, true, false, &o);
	assert_true(o.same[0] && o.same[1]);
	assert_true(all_bytes(o.pn, 0x22)); /* the change the primary has */
	assert_false(farm_hdr_alloc(o.hn[1]) || farm_hdr_alloc(o.hb[1]));
	assert_true(o.resyncs >= 2);
}

static void test_backup_ahead_reverted(void **state)
{
	struct outcome o;

	(void)state;
	run(true, false, false, &o);
	assert_true(o.same[0] && o.same[1]);
	assert_true(all_bytes(o.pb, 0x11)); /* the primary's bytes won */
	assert_true(farm_hdr_alloc(o.hn[1]) && farm_hdr_alloc(o.hb[1]));
}

static void test_control_diverges(void **state)
{
	struct outcome o;

	(void)state;
	run(false, true, false, &o);
	assert_false(o.same[0]);
	assert_true(all_bytes(o.pn, 0x22) && all_bytes(o.pb, 0x11));
	assert_int_equal(o.resyncs, 0);
}

static void test_tx_same_version_applied(void **state)
{
	struct outcome o;

	(void)state;
	run(false, false, true, &o);
	assert_true(o.same[0]);
	assert_true(all_bytes(o.pn, 0x33) && all_bytes(o.pb, 0x33));
}

/* ---- a backup in a newer configuration than its primary ---------------------- */

/* Member 1 leads R; B (the backup that adopts first) refuses the write's
 * REPL (-ESTALE), C takes it; then everyone adopts. */
static int node_stale(struct farm *f, int idx, struct fc_shared *sh, void *argp)
{
	const struct rs_arg *a = argp;
	static struct farm_config nx;
	uint32_t R = UINT32_MAX, rep[4];
	uint8_t buf[OSIZE];
	char err[256];

	farm__test_resync_off = !a->resync;
	nx = *a->cfg;
	nx.config_id = 2; /* the same members: only the id moves */
	for (uint32_t r = 0; r < NREG && R == UINT32_MAX; r++) {
		FC_CHECK(sh, idx, farm_region_replicas(f, r, rep, 4) == NODES);
		if (rep[0] == 1)
			R = r;
	}
	FC_CHECK(sh, idx, R != UINT32_MAX);
	uint32_t B = rep[1];
	if (farm_self(f) == 1) {
		farm_addr_t o;
		memset(buf, 0x11, sizeof(buf));
		FC_CHECK_RC(sh, idx, farm_alloc(f, OSIZE, FARM_ADDR(R, FARM_LINE), &o), 0);
		FC_CHECK(sh, idx, FARM_REGION(o) == R);
		FC_CHECK_RC(sh, idx, farm_write(f, o, buf, OSIZE), 0);
		sh->addr[0] = o;
		sh->addr[1] = o;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, NODES, 20000), 0);
	if (farm_self(f) == B) {
		FC_CHECK_RC(sh, idx, farm__adopt_config(f, &nx, err, sizeof(err)), 0);
		__atomic_store_n(&sh->flag[0], 1, __ATOMIC_RELEASE);
	}
	FC_CHECK_RC(sh, idx, wait_flag(f, sh, 0, 20000), 0);
	if (farm_self(f) == 1) {
		memset(buf, 0x44, sizeof(buf));
		int rc = farm_write(f, sh->addr[0], buf, OSIZE);
		FC_CHECK(sh, idx, rc == -ESTALE); /* B refused; we keep it */
		__atomic_store_n(&sh->flag[1], 1, __ATOMIC_RELEASE);
	}
	FC_CHECK_RC(sh, idx, wait_flag(f, sh, 1, 20000), 0);
	if (farm_self(f) != B)
		FC_CHECK_RC(sh, idx, farm__adopt_config(f, &nx, err, sizeof(err)), 0);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, NODES, 20000), 0);
	uint64_t end = proc_now_ms() + 10000;
	while (f->nrsq) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		if (farm_poll(f) == 0)
			farm_idle(f, 1);
	}
	serve_ms(f, 200);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, NODES, 20000), 0);
	memcpy(a->img[farm_self(f) - 1][0], f->regions[R].mine->base + FARM_OFFSET(sh->addr[0]),
	       IMG);
	if (farm_self(f) == 1)
		sh->count[idx][0] = f->st.resyncs;
	sh->val[0] = 1;
	sh->val[1] = B;
	return 0;
}

static void run_stale(bool resync, struct outcome *out)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	uint8_t(*img)[2][IMG] = proc_shared(NODES * sizeof(*img));
	struct rs_arg a = {&cfg, resync, false, false, img};

	fc_config(&cfg, NODES, "frstale", RSIZE, NREG, 3);
	assert_int_equal(fc_run(&cfg, node_stale, &a, sh, 10000, 40000), 0);
	uint32_t b = (uint32_t)sh->val[1];
	out->same[0] = memcmp(img[0][0], img[b - 1][0], farm_obj_lines(OSIZE) * FARM_LINE) == 0;
	payload(img[0][0], out->pn);
	payload(img[b - 1][0], out->pb);
	out->resyncs = sh->count[0][0];
	print_message("resync %s, backup in a newer configuration: O %s at primary/backup, %llu "
		      "objects pushed\n",
		      resync ? "on" : "off", out->same[0] ? "same" : "DIFFER",
		      (unsigned long long)out->resyncs);
	proc_unshare(img, NODES * sizeof(*img));
	proc_unshare(sh, sizeof(*sh));
}

static void test_refused_repl_pushed_again(void **state)
{
	struct outcome o;

	(void)state;
	run_stale(true, &o);
	assert_true(o.same[0]);
	assert_true(all_bytes(o.pn, 0x44) && all_bytes(o.pb, 0x44));
	assert_true(o.resyncs >= 1);
	run_stale(false, &o); /* control */
	assert_false(o.same[0]);
	assert_true(all_bytes(o.pn, 0x44) && all_bytes(o.pb, 0x11));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_primary_ahead_pushes, proc_teardown),
	    cmocka_unit_test_teardown(test_backup_ahead_reverted, proc_teardown),
	    cmocka_unit_test_teardown(test_control_diverges, proc_teardown),
	    cmocka_unit_test_teardown(test_tx_same_version_applied, proc_teardown),
	    cmocka_unit_test_teardown(test_refused_repl_pushed_again, proc_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
