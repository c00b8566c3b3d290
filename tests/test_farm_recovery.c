/* test_farm_recovery.c - transaction recovery (src/farm/recovery.h) on
 * forked 3-node shm clusters with 3-way replication, without ZooKeeper:
 * a member dies at a chosen point of a commit (a transaction hook calls
 * _exit), and the survivors adopt the configuration without it, as the
 * configuration manager would publish it.
 *   - the coordinator dies after COMMIT-BACKUP: the transaction commits
 *     everywhere (primaries install, the promoted backup of the dead
 *     node's region installs under its recovery lock), nothing stays locked;
 *   - the coordinator dies after LOCK: it aborts everywhere, the old values
 *     stay, nothing stays locked;
 *   - a primary dies after COMMIT-BACKUP of a live coordinator's commit:
 *     the commit is reported, and the promoted backup never shows the old
 *     value: a read right after adoption sees the new one;
 * and after each, every survivor's replica of every written object holds
 * the same bytes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "membership_node.h"
#include "node.h"
#include "object.h"
#include "recovery.h"
#include "tx.h"

#define NODES  3
#define VICTIM 2

/* Slots in sh->addr: the object each node leads. */
enum { F_DEAD = 0, F_DIE = 1 };

struct scen {
	int coord;	  /* who commits */
	int phase;	  /* FARM_TXH_* at which the victim dies */
	bool expect_new;  /* the commit must survive */
	bool kill_by_coord; /* the coordinator tells the victim to die */
};

static struct fc_shared *g_sh;

static void die_now(struct fc_shared *sh)
{
	__atomic_store_n(&sh->flag[F_DEAD], 1, __ATOMIC_RELEASE);
	__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
	_exit(0);
}

static void hook_die(struct farm *f, int phase, void *arg)
{
	const struct scen *s = arg;

	(void)f;
	if (phase == s->phase)
		die_now(g_sh);
}

/* The coordinator's hook when a primary dies: tell the victim, wait until
 * it is gone. */
static void hook_kill(struct farm *f, int phase, void *arg)
{
	const struct scen *s = arg;
	uint64_t t0 = farm__now_ns();

	if (phase != s->phase)
		return;
	__atomic_store_n(&g_sh->flag[F_DIE], 1, __ATOMIC_RELEASE);
	while (!__atomic_load_n(&g_sh->flag[F_DEAD], __ATOMIC_ACQUIRE) &&
	       farm__now_ns() - t0 < 5000000000ull)
		farm_poll(f);
	usleep(20000); /* the process is gone, not just exiting */
}

/* What farmd's loop does after a configuration change: poll, and re-send
 * HELLOs a peer refused before it had adopted the configuration. */
static void poll_all(struct farm *f)
{
	farm_poll(f);
	farm__rehello_poll(f);
}

static void fill(uint8_t *b, int who, int gen)
{
	for (int i = 0; i < 64; i++)
		b[i] = (uint8_t)(who * 16 + gen * 3 + i);
}

/* This node's replica of a, checked unlocked and equal to want. */
static int replica_is(struct farm *f, farm_addr_t a, const uint8_t *want)
{
	struct farm_replica *x = f->regions[FARM_REGION(a)].mine;
	uint8_t got[64];
	uint64_t ver;

	if (!x)
		return -ENOENT;
	uint64_t h = farm_word_load(x->base + FARM_OFFSET(a));
	if (farm_hdr_locked(h) || !farm_hdr_alloc(h))
		return -EBUSY;
	if (farm_obj_read_local(x->base + FARM_OFFSET(a), got, 64, &ver, 100, NULL))
		return -EAGAIN;
	return memcmp(got, want, 64) ? -EINVAL : 0;
}

static int node_fn(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	const struct scen *s = arg;
	static struct farm_config next;
	uint32_t rep[8];
	uint8_t w[64], b[64];
	farm_addr_t a;
	char err[256];

	g_sh = sh;
	/* Every node leads one object, written with generation 0. */
	fill(w, idx, 0);
	FC_CHECK_RC(sh, idx, farm_alloc(f, 64, FARM_NULL, &a), 0);
	FC_CHECK(sh, idx, farm_region_replicas(f, FARM_REGION(a), rep, 8) == 3 &&
				  rep[0] == farm_self(f));
	FC_CHECK_RC(sh, idx, farm_write(f, a, w, 64), 0);
	sh->addr[idx] = a;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, NODES, 20000), 0);

	if (idx == s->coord) {
		struct farm_tx *tx;
		struct farm_tx_result res;
		farm__tx_set_hook(f, s->kill_by_coord ? hook_kill : hook_die, (void *)s);
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		for (int k = 0; k < NODES; k++) {
			FC_CHECK_RC(sh, idx, farm_tx_read(tx, sh->addr[k], b, 64), 0);
			fill(w, k, 1);
			FC_CHECK_RC(sh, idx, farm_tx_write(tx, sh->addr[k], w, 64), 0);
		}
		int rc = farm_tx_commit(tx, &res);
		/* Only a live coordinator gets here. */
		FC_CHECK(sh, idx, s->kill_by_coord);
		FC_CHECK_RC(sh, idx, rc, 0);
		sh->flag[2] = 1; /* the commit was reported */
	} else if (idx == VICTIM) {
		/* Serve until told to die (or until the coordinator's hook
		 * kills us through _exit in our own process). */
		uint64_t t0 = farm__now_ns();
		while (!__atomic_load_n(&sh->flag[F_DIE], __ATOMIC_ACQUIRE) &&
		       farm__now_ns() - t0 < 20000000000ull)
			poll_all(f);
		die_now(sh);
	}
	/* Survivors: wait for the death, then adopt the configuration
	 * without the victim (member ids are index + 1). */
	uint64_t t0 = farm__now_ns();
	while (!__atomic_load_n(&sh->flag[F_DEAD], __ATOMIC_ACQUIRE) &&
	       farm__now_ns() - t0 < 20000000000ull)
		farm_poll(f);
	FC_CHECK(sh, idx, sh->flag[F_DEAD]);
	next = f->cfg;
	next.nmembers = 0;
	for (uint32_t i = 0; i < f->cfg.nmembers; i++)
		if (f->cfg.members[i].id != (uint32_t)VICTIM + 1)
			next.members[next.nmembers++] = f->cfg.members[i];
	next.config_id = f->config_id + 1;
	FC_CHECK_RC(sh, idx, farm__adopt_config(f, &next, err, sizeof(err)), 0);

	/* The promoted primary never shows what the dead one overwrote. */
	if (s->expect_new) {
		int rc;
		fill(w, VICTIM, 1);
		t0 = farm__now_ns();
		/* (a new primary's key arrives with its HELLO: poll) */
		while ((rc = farm_read(f, sh->addr[VICTIM], b, 64, NULL)) == -EAGAIN &&
		       farm__now_ns() - t0 < 5000000000ull)
			poll_all(f);
		if (rc) {
			const struct farm_region *r = &f->regions[FARM_REGION(sh->addr[VICTIM])];
			snprintf(sh->err[idx], sizeof(sh->err[idx]),
				 "read of the dead primary's object: %s (region %u: known %d "
				 "local %d peer %d header %llx, rlocks %u, recovery %s)",
				 farm_strerror(rc), FARM_REGION(sh->addr[VICTIM]), r->known,
				 r->local != NULL, r->peer,
				 r->local ? (unsigned long long)farm_word_load(
						r->local + FARM_OFFSET(sh->addr[VICTIM]))
					  : 0ull,
				 f->tx->nrlock, farm__rcv_pending(f) ? "pending" : "done");
			return 1;
		}
		FC_CHECK(sh, idx, memcmp(b, w, 64) == 0);
	}
	t0 = farm__now_ns();
	while (farm__rcv_pending(f) && farm__now_ns() - t0 < 5000000000ull)
		poll_all(f);
	FC_CHECK(sh, idx, !farm__rcv_pending(f));
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, NODES - 1, 20000), 0);
	/* Truncation of the live coordinators' records, then the checks. */
	farm__tx_flush(f);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, NODES - 1, 20000), 0);
	t0 = farm__now_ns();
	for (int k = 0; k < NODES; k++) {
		int rc;
		fill(w, k, s->expect_new ? 1 : 0);
		do {
			poll_all(f);
			rc = replica_is(f, sh->addr[k], w);
		} while (rc == -EBUSY && farm__now_ns() - t0 < 5000000000ull);
		if (rc) {
			snprintf(sh->err[idx], sizeof(sh->err[idx]),
				 "object of node %d: replica %s", k,
				 rc == -EBUSY ? "still locked" : rc == -EINVAL ? "has other bytes"
									: "unreadable");
			return 1;
		}
		while ((rc = farm_read(f, sh->addr[k], b, 64, NULL)) == -EAGAIN &&
		       farm__now_ns() - t0 < 5000000000ull)
			poll_all(f);
		FC_CHECK_RC(sh, idx, rc, 0);
		if (memcmp(b, w, 64)) {
			snprintf(sh->err[idx], sizeof(sh->err[idx]),
				 "object of node %d reads %02x.. want %02x.. (gen 0 %02x)", k, b[0],
				 w[0], k * 16);
			return 1;
		}
	}
	/* And the cluster goes on: a transaction over all three objects. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, NODES - 1, 20000), 0);
	if (idx == 0) {
		struct farm_tx *tx;
		struct farm_tx_result res;
		int rc = -EAGAIN;
		for (int tries = 0; tries < 200 && rc; tries++) {
			FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
			for (int k = 0; k < NODES; k++) {
				fill(w, k, 2);
				FC_CHECK_RC(sh, idx, farm_tx_write(tx, sh->addr[k], w, 64), 0);
			}
			rc = farm_tx_commit(tx, &res);
			if (rc)
				poll_all(f);
		}
		FC_CHECK_RC(sh, idx, rc, 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, NODES - 1, 20000), 0);
	return 0;
}

static void run(const struct scen *s, const char *tag)
{
	struct farm_config cfg;

	fc_config(&cfg, NODES, tag, 1 << 20, 12, 3);
	assert_int_equal(fc_run(&cfg, node_fn, (void *)s, NULL, 20000, 60000), 0);
}

static void test_coordinator_dies_after_backup(void **state)
{
	static const struct scen s = {
	    .coord = VICTIM, .phase = FARM_TXH_BACKED_UP, .expect_new = true};
	(void)state;
	run(&s, "rcb");
}

static void test_coordinator_dies_after_lock(void **state)
{
	static const struct scen s = {.coord = VICTIM, .phase = FARM_TXH_LOCKED};
	(void)state;
	run(&s, "rcl");
}

static void test_primary_dies_after_backup(void **state)
{
	static const struct scen s = {.coord = 0,
				      .phase = FARM_TXH_BACKED_UP,
				      .expect_new = true,
				      .kill_by_coord = true};
	(void)state;
	run(&s, "rpb");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_coordinator_dies_after_backup),
	    cmocka_unit_test(test_coordinator_dies_after_lock),
	    cmocka_unit_test(test_primary_dies_after_backup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
