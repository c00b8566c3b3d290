/* test_tx_basic.c - FaRM transactions on a 3-node shm cluster with 3-way
 * replication: commits seen by every node, read-your-writes, read-only
 * transactions, allocation and free inside transactions (aborted
 * allocations freed again), and every bad input farm.h names with its
 * error code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <errno.h>
#include <stdbool.h>
#include <unistd.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"
#include "node.h"
#include "tx.h"

/* An object this node leads (allocated here, so in a region it leads). */
static int alloc_here(struct farm *f, uint32_t size, farm_addr_t *a)
{
	uint32_t rep[8];
	int rc = farm_alloc(f, size, FARM_NULL, a);

	if (rc)
		return rc;
	if (farm_region_replicas(f, FARM_REGION(*a), rep, 8) < 1 || rep[0] != farm_self(f))
		return -EXDEV;
	return 0;
}

/* ---- commits seen everywhere ----------------------------------------------------- */

static int node_basics(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	struct farm_tx_result res;
	struct farm_tx *tx;
	uint64_t v, w;
	farm_addr_t a;

	(void)arg;
	/* Every node leads one object of 8 bytes and one of 300. */
	FC_CHECK_RC(sh, idx, alloc_here(f, 8, &a), 0);
	sh->addr[idx] = a;
	FC_CHECK_RC(sh, idx, alloc_here(f, 300, &a), 0);
	sh->addr[8 + idx] = a;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);

	/* Node k writes 1000 + k into object k+1 (a remote primary for all
	 * but none), reads it back in the same tx (read your writes). */
	farm_addr_t mine = sh->addr[(idx + 1) % n];
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, mine, &v, 8), 0);
	FC_CHECK(sh, idx, v == 0);
	v = 1000 + (uint64_t)idx;
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, mine, &v, 8), 0);
	w = 0;
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, mine, &w, 8), 0);
	FC_CHECK(sh, idx, w == v);
	/* A partial write of a multi-line object keeps the rest of it. */
	uint8_t big[300], back[300];
	for (int i = 0; i < 300; i++)
		big[i] = (uint8_t)(i * 7 + idx);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, sh->addr[8 + idx], big, 300), 0);
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
	FC_CHECK(sh, idx, res.reason == FARM_ABORT_NONE);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 20000), 0);

	/* Everybody sees every commit, through plain reads and a tx. */
	for (int k = 0; k < n; k++) {
		uint64_t ver;
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[(k + 1) % n], &v, 8, &ver), 0);
		FC_CHECK(sh, idx, v == 1000 + (uint64_t)k);
		FC_CHECK(sh, idx, ver >= 2);
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[8 + k], back, 300, NULL), 0);
		for (int i = 0; i < 300; i++)
			FC_CHECK(sh, idx, back[i] == (uint8_t)(i * 7 + k));
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, n, 20000), 0);
	/* A partial write inside a tx: bytes past it keep their value. */
	int other = 1 % n; /* node 2's object (our own when alone) */
	if (idx == 0) {
		uint8_t head[10] = {0};
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		FC_CHECK_RC(sh, idx, farm_tx_write(tx, sh->addr[8 + other], head, 10), 0);
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, NULL), 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, n, 20000), 0);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[8 + other], back, 300, NULL), 0);
	for (int i = 0; i < 300; i++)
		FC_CHECK(sh, idx, back[i] == (i < 10 ? 0 : (uint8_t)(i * 7 + other)));

	/* Read-only: one read (no validation), several (validated). */
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, sh->addr[0], &v, 8), 0);
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	for (int k = 0; k < n; k++)
		FC_CHECK_RC(sh, idx, farm_tx_read(tx, sh->addr[k], &v, 8), 0);
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
	struct farm_stats st;
	farm_get_stats(f, &st);
	FC_CHECK(sh, idx, st.tx_committed >= 3 && st.tx_ro_committed == 2);
	return 0;
}

static void test_basics(void **state)
{
	struct farm_config cfg;

	(void)state;
	fc_config(&cfg, 3, "txb", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_basics, NULL, NULL, 10000, 30000), 0);
}

/* One node alone (no backups: no COMMIT-BACKUP at all) and two nodes with
 * two replicas (every node is the other's only backup). */
static void test_small_clusters(void **state)
{
	struct farm_config cfg;

	(void)state;
	fc_config(&cfg, 1, "txb1", 1 << 20, 2, 1);
	assert_int_equal(fc_run(&cfg, node_basics, NULL, NULL, 10000, 30000), 0);
	fc_config(&cfg, 2, "txb2", 1 << 20, 4, 2);
	assert_int_equal(fc_run(&cfg, node_basics, NULL, NULL, 10000, 30000), 0);
}

/* ---- allocation and free ---------------------------------------------------------- */

static int node_alloc(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	struct farm_tx_result res;
	struct farm_tx *tx;
	farm_addr_t a, b, c, near;
	uint64_t v;

	(void)arg;
	if (idx == 0) {
		/* Allocate two objects (one here, one near node 2's object),
		 * write them, link them: visible everywhere after the commit. */
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 100, FARM_NULL, &a), 0);
		FC_CHECK_RC(sh, idx, farm_tx_read(tx, a, &v, 8), 0);
		FC_CHECK(sh, idx, v == 0); /* zeroed, visible to its tx at once */
		FC_CHECK_RC(sh, idx, farm_read(f, a, &v, 8, NULL), -EAGAIN); /* not to others */
		v = 42;
		FC_CHECK_RC(sh, idx, farm_tx_write(tx, a, &v, 8), 0);
		/* Near an object of a region node 3 leads: reserved there. */
		uint32_t rep[8];
		near = FARM_NULL;
		for (uint32_t r = 0; r < farm_get_config(f)->regions && near == FARM_NULL; r++)
			if (farm_region_replicas(f, r, rep, 8) > 0 && rep[0] == 3)
				near = FARM_ADDR(r, 64);
		FC_CHECK(sh, idx, near != FARM_NULL);
		FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 8, near, &b), 0);
		FC_CHECK(sh, idx, FARM_REGION(b) == FARM_REGION(near));
		FC_CHECK_RC(sh, idx, farm_tx_write(tx, b, &a, 8), 0);
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
		sh->addr[0] = a;
		sh->addr[1] = b;

		/* An aborted allocation is freed again: the address is not
		 * an object, and the next allocation of that size reuses it. */
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 100, FARM_NULL, &c), 0);
		farm_tx_abort(tx);
		FC_CHECK_RC(sh, idx, farm_read(f, c, &v, 8, NULL), -EINVAL);
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		farm_addr_t c2;
		FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 100, FARM_NULL, &c2), 0);
		FC_CHECK(sh, idx, c2 == c);
		/* ... also when the commit aborts (a doomed tx). */
		FC_CHECK_RC(sh, idx, farm_tx_write(tx, a, &v, 8), 0);
		FC_CHECK_RC(sh, idx, farm_write(f, a, &v, 8), 0); /* a conflict */
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), -EAGAIN);
		FC_CHECK(sh, idx, res.reason == FARM_ABORT_CHANGED);
		FC_CHECK_RC(sh, idx, farm_read(f, c2, &v, 8, NULL), -EINVAL);
		/* Allocate and free in one tx: nothing left. */
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 100, FARM_NULL, &c), 0);
		FC_CHECK_RC(sh, idx, farm_tx_free(tx, c), 0);
		FC_CHECK_RC(sh, idx, farm_tx_read(tx, c, &v, 8), -EINVAL);
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
		FC_CHECK_RC(sh, idx, farm_read(f, c, &v, 8, NULL), -EINVAL);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], &v, 8, NULL), 0);
	FC_CHECK(sh, idx, v == 42);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[1], &v, 8, NULL), 0);
	FC_CHECK(sh, idx, v == sh->addr[0]);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 20000), 0);
	if (idx == 2) {
		/* Free both in a tx on another node. */
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
		FC_CHECK_RC(sh, idx, farm_tx_read(tx, sh->addr[1], &a, 8), 0);
		FC_CHECK_RC(sh, idx, farm_tx_free(tx, a), 0);
		FC_CHECK_RC(sh, idx, farm_tx_free(tx, sh->addr[1]), 0);
		FC_CHECK_RC(sh, idx, farm_tx_free(tx, a), -EINVAL); /* twice */
		FC_CHECK_RC(sh, idx, farm_tx_write(tx, a, &v, 8), -EINVAL);
		FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, n, 20000), 0);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], &v, 8, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[1], &v, 8, NULL), -EINVAL);
	return 0;
}

static void test_alloc_free(void **state)
{
	struct farm_config cfg;

	(void)state;
	fc_config(&cfg, 3, "txa", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_alloc, NULL, NULL, 10000, 30000), 0);
}

/* ---- bad input ---------------------------------------------------------------------- */

static int node_bad(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	struct farm_tx_result res;
	struct farm_tx *tx, *pool[FARM_TX_POOL + 1];
	farm_addr_t a, freed, objs[FARM_TX_MAX_WRITES + 1];
	uint8_t buf[4096] = {0};
	uint64_t v = 1;

	(void)arg;
	if (idx != 1) {
		FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 30000), 0);
		return 0;
	}
	FC_CHECK_RC(sh, idx, farm_alloc(f, 100, FARM_NULL, &a), 0);
	FC_CHECK_RC(sh, idx, farm_alloc(f, 8, FARM_NULL, &freed), 0);
	FC_CHECK_RC(sh, idx, farm_free(f, freed), 0);

	FC_CHECK_RC(sh, idx, farm_tx_begin(NULL, &tx), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, NULL), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	/* Past the object, in a read and in a write (first and later). */
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, a, buf, 101), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, a, buf, 101), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, a, buf, 100), 0);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, a, buf, 101), -EFBIG);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, a, buf, 101), -EFBIG);
	/* Freed objects, addresses that are not objects, no such region. */
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, freed, buf, 8), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, freed, buf, 8), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_free(tx, freed), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, a + 64, buf, 8), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, a + 3, buf, 8), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, FARM_ADDR(999, 64), buf, 8), -ENOENT);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, FARM_ADDR(0, 1u << 30), buf, 8), -ERANGE);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, a, NULL, 8), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 0, FARM_NULL, &a), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, FARM_OBJ_MAX + 1, FARM_NULL, &a), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 8, FARM_ADDR(999, 64), &a), -ENOENT);
	FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 8, FARM_NULL, NULL), -EINVAL);
	/* The bad calls did not hurt the tx. */
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);
	/* Ended: every call refuses it. */
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, a, buf, 8), -EINVAL);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, a, buf, 8), -EINVAL);
	farm_tx_abort(tx); /* harmless */
	FC_CHECK_RC(sh, idx, farm_tx_commit(NULL, &res), -EINVAL);
	farm_tx_abort(NULL);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	farm_tx_abort(tx);
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), -EINVAL);

	/* Oversize write sets: too many objects, too many bytes. */
	for (int i = 0; i <= FARM_TX_MAX_WRITES; i++)
		FC_CHECK_RC(sh, idx, farm_alloc(f, 8, FARM_NULL, &objs[i]), 0);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	for (int i = 0; i < FARM_TX_MAX_WRITES; i++)
		FC_CHECK_RC(sh, idx, farm_tx_write(tx, objs[i], &v, 8), 0);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, objs[FARM_TX_MAX_WRITES], &v, 8), -ENOSPC);
	FC_CHECK_RC(sh, idx, farm_tx_alloc(tx, 8, FARM_NULL, &a), -ENOSPC);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, objs[0], &v, 8), 0); /* already in: fine */
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);	    /* 64 objects commit */
	farm_addr_t bigs[6];
	for (int i = 0; i < 6; i++)
		FC_CHECK_RC(sh, idx, farm_alloc(f, FARM_OBJ_MAX, FARM_NULL, &bigs[i]), 0);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	int k = 0, rc;
	while ((rc = farm_tx_write(tx, bigs[k], &v, 8)) == 0 && k < 5)
		k++;
	FC_CHECK_RC(sh, idx, rc, -ENOSPC);
	FC_CHECK(sh, idx, (uint64_t)k * FARM_OBJ_MAX <= FARM_TX_MAX_BYTES);
	FC_CHECK(sh, idx, (uint64_t)(k + 1) * FARM_OBJ_MAX > FARM_TX_MAX_BYTES);
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0); /* the largest tx commits */
	for (int i = 0; i < k; i++) {
		uint64_t got;
		FC_CHECK_RC(sh, idx, farm_read(f, bigs[i], &got, 8, NULL), 0);
		FC_CHECK(sh, idx, got == v);
	}
	/* A read set past its limit: refused before reading; rereads fine. */
	static farm_addr_t ro[FARM_TX_MAX_READS + 1];
	for (int i = 0; i <= FARM_TX_MAX_READS; i++)
		FC_CHECK_RC(sh, idx, farm_alloc(f, 8, FARM_NULL, &ro[i]), 0);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	for (int i = 0; i < FARM_TX_MAX_READS; i++)
		FC_CHECK_RC(sh, idx, farm_tx_read(tx, ro[i], &v, 8), 0);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, ro[FARM_TX_MAX_READS], &v, 8), -ENOSPC);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, ro[FARM_TX_MAX_READS], &v, 8), -ENOSPC);
	FC_CHECK_RC(sh, idx, farm_tx_read(tx, ro[7], &v, 8), 0);
	FC_CHECK_RC(sh, idx, farm_tx_write(tx, ro[7], &v, 8), 0);
	FC_CHECK_RC(sh, idx, farm_tx_commit(tx, &res), 0);

	/* The pool: FARM_TX_POOL open at once, then -EBUSY. */
	for (unsigned i = 0; i < FARM_TX_POOL; i++)
		FC_CHECK_RC(sh, idx, farm_tx_begin(f, &pool[i]), 0);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &pool[FARM_TX_POOL]), -EBUSY);
	for (unsigned i = 0; i < FARM_TX_POOL; i++)
		farm_tx_abort(pool[i]);
	FC_CHECK_RC(sh, idx, farm_tx_begin(f, &tx), 0);
	farm_tx_abort(tx);
	FC_CHECK(sh, idx,
		 strcmp(farm_abort_str(FARM_ABORT_LOG_FULL), farm_abort_str(FARM_ABORT_USER)));
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 30000), 0);
	return 0;
}

static void test_bad_input(void **state)
{
	struct farm_config cfg;

	(void)state;
	fc_config(&cfg, 3, "txbad", 1 << 20, 6, 3);
	assert_int_equal(fc_run(&cfg, node_bad, NULL, NULL, 10000, 30000), 0);
}

/* ---- over the udp NIC: one-sided operations served by the target's loop ----------- */

static void udp_config(struct farm_config *cfg, const char *tag)
{
	uint16_t base = (uint16_t)(40000 + (getpid() % 2000) * 8);

	fc_config(cfg, 3, tag, 1 << 20, 6, 3);
	strcpy(cfg->nic, "udp");
	for (int i = 0; i < 3; i++)
		snprintf(cfg->members[i].addr, sizeof(cfg->members[i].addr), "127.0.0.1:%u",
			 base + i);
}

static void test_udp(void **state)
{
	struct farm_config cfg;

	(void)state;
	udp_config(&cfg, "txudp");
	assert_int_equal(fc_run(&cfg, node_basics, NULL, NULL, 10000, 60000), 0);
	udp_config(&cfg, "txudp2");
	assert_int_equal(fc_run(&cfg, node_alloc, NULL, NULL, 10000, 60000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_basics, proc_teardown),
	    cmocka_unit_test_teardown(test_small_clusters, proc_teardown),
	    cmocka_unit_test_teardown(test_alloc_free, proc_teardown),
	    cmocka_unit_test_teardown(test_bad_input, proc_teardown),
	    cmocka_unit_test_teardown(test_udp, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
