/* test_membership_node.c - the node runtime under membership
 * (src/farm/membership_node.h), without ZooKeeper: forked shm nodes.
 *   - lease flag: a node whose lease lapsed refuses its own reads, writes
 *     and allocations, its peers' requests, and (through its node page)
 *     its peers' one-sided reads; all work again once the lease is back;
 *     requests are refused as soon as the lease's end passes, even before
 *     the flag drops;
 *   - adoption of a configuration that removes a crashed member: the
 *     config id moves (the fence), backups of its regions become primaries
 *     (their allocator rebuilt), every survivor learns the new primaries'
 *     keys through fresh HELLOs, and the dead member's objects read back
 *     with the values it wrote; bad configurations are refused unchanged. */
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
#include "membership_node.h"
#include "node.h"

/* ---- lease flag ------------------------------------------------------- */

static int node_lease(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	static int flag = 1;
	static uint64_t until = UINT64_MAX;
	uint8_t b[64], w[64];
	farm_addr_t a, x;
	uint32_t rep[8];

	(void)arg;
	farm__membership_attach(f, &flag, &until);
	memset(w, 0x40 + idx, sizeof(w));
	FC_CHECK_RC(sh, idx, farm_alloc(f, 64, FARM_NULL, &a), 0);
	FC_CHECK(sh, idx,
		 farm_region_replicas(f, FARM_REGION(a), rep, 8) > 0 && rep[0] == farm_self(f));
	FC_CHECK_RC(sh, idx, farm_write(f, a, w, 64), 0);
	sh->addr[idx] = a;
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 3, 20000), 0);
	if (idx == 0) {
		/* Our lease lapses. */
		__atomic_store_n(&flag, 0, __ATOMIC_RELEASE);
		farm__lease_fence(f, false);
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], b, 64, NULL), -ESTALE);
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[1], b, 64, NULL), -ESTALE);
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[0], w, 8), -ESTALE);
		FC_CHECK_RC(sh, idx, farm_alloc(f, 8, FARM_NULL, &x), -ESTALE);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 3, 20000), 0);
	if (idx == 1) {
		/* Node 1's one-sided read of node 0's memory: its page says 0. */
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], b, 64, NULL), -ESTALE);
		/* A write is a request to node 0: refused. */
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[0], w, 8), -ESTALE);
		/* Node 2 is unaffected. */
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[2], b, 64, NULL), 0);
		FC_CHECK(sh, idx, b[0] == 0x42);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, 3, 20000), 0);
	if (idx == 0) {
		__atomic_store_n(&flag, 1, __ATOMIC_RELEASE);
		farm__lease_fence(f, true);
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], b, 64, NULL), 0);
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, 3, 20000), 0);
	FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[0], b, 64, NULL), 0);
	FC_CHECK(sh, idx, b[0] == 0x40);
	/* The lease's end passed but the lease thread has not lowered the
	 * flag yet (late): requests are refused all the same. */
	if (idx == 0)
		__atomic_store_n(&until, farm__now_ns() - 1, __ATOMIC_RELEASE);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, 3, 20000), 0);
	if (idx == 1)
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[0], w, 8), -ESTALE);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 5, 3, 20000), 0);
	if (idx == 0)
		__atomic_store_n(&until, UINT64_MAX, __ATOMIC_RELEASE);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 6, 3, 20000), 0);
	if (idx == 1)
		FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[0], w, 8), 0);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 7, 3, 20000), 0);
	return 0;
}

static void test_lease_flag(void **state)
{
	(void)state;
	struct farm_config cfg;

	fc_config(&cfg, 3, "mnl", 1 << 20, 12, 2);
	assert_int_equal(fc_run(&cfg, node_lease, NULL, NULL, 20000, 60000), 0);
}

/* ---- adoption ---------------------------------------------------------- */

#define OBJS 24

static int node_adopt(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	const struct farm_config *cfg = arg;
	static struct farm_config next, bad;
	uint32_t rep[8];
	uint8_t b[64];
	char err[256];

	/* Every node writes OBJS objects in regions it leads (value: its
	 * index and the object's number). */
	for (int k = 0; k < OBJS; k++) {
		farm_addr_t a;
		uint8_t w[64];
		memset(w, (idx << 5) | k, sizeof(w));
		FC_CHECK_RC(sh, idx, farm_alloc(f, 64, FARM_NULL, &a), 0);
		FC_CHECK_RC(sh, idx, farm_write(f, a, w, 64), 0);
		sh->addr[idx * OBJS + k] = a;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, 3, 20000), 0);
	if (idx == 2) {
		/* Member 3 crashes (counted as done, so the survivors do not
		 * wait for it at the end of the run). */
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		_exit(0);
	}
	/* The configuration manager's verdict: member 3 is out. */
	next = *cfg;
	next.nmembers = 2;
	next.config_id = 2;
	/* Refused, leaving the node as it was: not newer, another region
	 * size, this node not a member. */
	bad = next;
	bad.config_id = 1;
	FC_CHECK_RC(sh, idx, farm__adopt_config(f, &bad, err, sizeof(err)), -ESTALE);
	bad = next;
	bad.regions = cfg->regions + 1;
	FC_CHECK_RC(sh, idx, farm__adopt_config(f, &bad, err, sizeof(err)), -EINVAL);
	bad = next;
	bad.members[idx] = cfg->members[2];
	FC_CHECK_RC(sh, idx, farm__adopt_config(f, &bad, err, sizeof(err)), -ENOENT);
	FC_CHECK(sh, idx, farm_config_id(f) == 1);

	FC_CHECK_RC(sh, idx, farm__adopt_config(f, &next, err, sizeof(err)), 0);
	FC_CHECK(sh, idx, farm_config_id(f) == 2);
	/* Until the other survivor adopts too, its memory is fenced from us
	 * (its page shows configuration 1): -ESTALE, rightly. */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, 2, 20000), 0);
	FC_CHECK(sh, idx, farm_get_config(f)->nmembers == 2);
	/* Every region is led by a survivor now; the ones member 3 led by
	 * their first backup. */
	for (uint32_t r = 0; r < cfg->regions; r++) {
		FC_CHECK(sh, idx, farm_region_replicas(f, r, rep, 8) == 2);
		FC_CHECK(sh, idx, rep[0] != 3 && rep[1] != 3);
	}
	/* The dead member's objects read back from the promoted backups once
	 * the survivors have exchanged keys (bounded). */
	uint64_t end = proc_now_ms() + 10000;
	for (int k = 0; k < OBJS; k++) {
		farm_addr_t a = sh->addr[2 * OBJS + k];
		int rc;
		while ((rc = farm_read(f, a, b, 64, NULL)) == -EAGAIN && proc_now_ms() < end) {
			farm__rehello_poll(f);
			farm_poll(f);
		}
		FC_CHECK_RC(sh, idx, rc, 0);
		FC_CHECK(sh, idx, b[0] == ((2 << 5) | k) && b[63] == b[0]);
	}
	/* And the survivors' own objects still read. */
	for (int k = 0; k < OBJS; k++) {
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[(1 - idx) * OBJS + k], b, 64, NULL), 0);
		FC_CHECK(sh, idx, b[0] == (((1 - idx) << 5) | k));
	}
	/* A promoted primary allocates from its rebuilt slab without
	 * clobbering what was there (both survivors adopted first: a backup
	 * checks the sender is the primary under its own map). */
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, 2, 20000), 0);
	farm_addr_t a;
	FC_CHECK_RC(sh, idx, farm_alloc(f, 64, sh->addr[2 * OBJS], &a), 0);
	for (int k = 0; k < OBJS; k++)
		FC_CHECK(sh, idx, a != sh->addr[2 * OBJS + k]);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, 2, 20000), 0);
	return 0;
}

static void test_adopt_removal(void **state)
{
	(void)state;
	static struct farm_config cfg;

	/* Three replicas of three members: every survivor holds every region,
	 * so the map after the removal needs no new replica (recovery's job). */
	fc_config(&cfg, 3, "mna", 1 << 20, 12, 3);
	assert_int_equal(fc_run(&cfg, node_adopt, &cfg, NULL, 20000, 60000), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_lease_flag, proc_teardown),
	    cmocka_unit_test_teardown(test_adopt_removal, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
