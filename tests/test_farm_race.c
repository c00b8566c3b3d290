/* test_farm_race.c - readers racing concurrent writers never see a torn
 * object. Every object carries a checksum of its payload; two nodes keep
 * rewriting the objects (through their primary) while every node reads
 * them, locally on the primary and with one-sided READs elsewhere, and
 * checks every copy it is given. Objects of one line and of several. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <sched.h>
#include <stdbool.h>
#include <cmocka.h>

#include "farm/farm.h"
#include "helpers/farm_cluster.h"
#include "helpers/proc.h"

#define NOBJ 6
static const uint32_t sizes[NOBJ] = {16, 56, 120, 300, 1000, 4000};

/* payload: [writer:4][round:4][bytes ...][fnv32 of everything before:4] */
static void make(uint8_t *p, uint32_t len, uint32_t writer, uint32_t round)
{
	uint32_t h = 2166136261u;

	memcpy(p, &writer, 4);
	memcpy(p + 4, &round, 4);
	for (uint32_t i = 8; i < len - 4; i++)
		p[i] = (uint8_t)(writer * 97 + round * 31 + i);
	for (uint32_t i = 0; i < len - 4; i++)
		h = (h ^ p[i]) * 16777619u;
	memcpy(p + len - 4, &h, 4);
}

static int intact(const uint8_t *p, uint32_t len)
{
	uint32_t h = 2166136261u, want, writer, round;

	memcpy(&writer, p, 4);
	memcpy(&round, p + 4, 4);
	for (uint32_t i = 8; i < len - 4; i++)
		if (p[i] != (uint8_t)(writer * 97 + round * 31 + i))
			return 0;
	for (uint32_t i = 0; i < len - 4; i++)
		h = (h ^ p[i]) * 16777619u;
	memcpy(&want, p + len - 4, 4);
	return h == want;
}

struct race_arg {
	uint32_t writers;    /* bit i: node index i writes */
	uint32_t writes;     /* per writer, at most */
	uint32_t min_writes; /* per writer, at least (else the test fails) */
	uint32_t max_ms;     /* writers stop here even short of `writes` */
	bool yield;          /* readers yield the CPU every round */
};

/* Counters per node: 0 reads ok, 1 writes, 2 -EAGAIN, 3 version went back */
static int node_race(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	const struct race_arg *ra = arg;
	int n = (int)farm_get_config(f)->nmembers;
	uint8_t buf[4096];
	uint64_t last_ver[NOBJ] = {0};

	if (idx == 0) {
		/* Objects in a region node 1 leads, so node 1 reads locally while
		 * the others read one-sidedly. */
		for (int k = 0; k < NOBJ; k++) {
			farm_addr_t a;
			FC_CHECK_RC(sh, idx, farm_alloc(f, sizes[k], FARM_NULL, &a), 0);
			uint32_t rep[8];
			FC_CHECK(sh, idx, farm_region_replicas(f, FARM_REGION(a), rep, 8) > 0);
			FC_CHECK(sh, idx, rep[0] == farm_self(f));
			make(buf, sizes[k], 0, 0);
			FC_CHECK_RC(sh, idx, farm_write(f, a, buf, sizes[k]), 0);
			sh->addr[k] = a;
		}
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 20000), 0);
	/* Writers write ra->writes times each (through the primary, node 1)
	 * and read; the others read until every writer is through. Count, not
	 * time: a loaded machine slows the race, it does not shorten it. */
	bool writer = ra->writers & (1u << idx);
	uint32_t nwriters = (uint32_t)__builtin_popcount(ra->writers);
	uint32_t round = 0, writes = 0;
	uint64_t end = proc_now_ms() + 25000, stop = proc_now_ms() + ra->max_ms;
	while (writer ? writes < ra->writes && (writes < ra->min_writes || proc_now_ms() < stop)
		      : __atomic_load_n(&sh->flag[0], __ATOMIC_ACQUIRE) < nwriters) {
		FC_CHECK(sh, idx, proc_now_ms() < end);
		for (int k = 0; k < NOBJ; k++) {
			uint64_t ver;
			if (writer && writes < ra->writes && (round + (uint32_t)k) % 3 == 0) {
				make(buf, sizes[k], (uint32_t)idx, round);
				FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[k], buf, sizes[k]), 0);
				writes++;
			}
			int rc = farm_read(f, sh->addr[k], buf, sizes[k], &ver);
			if (rc == -EAGAIN) {
				sh->count[idx][2]++;
				continue;
			}
			FC_CHECK_RC(sh, idx, rc, 0);
			FC_CHECK(sh, idx, intact(buf, sizes[k]));
			if (ver < last_ver[k])
				sh->count[idx][3]++;
			last_ver[k] = ver;
			sh->count[idx][0]++;
		}
		round++;
		if (!writer) {
			farm_poll(f);
			if (ra->yield)
				sched_yield();
		} else if (round % 64 == 0) {
			farm_poll(f);
		}
	}
	sh->count[idx][1] = writes;
	if (writer)
		__atomic_add_fetch(&sh->flag[0], 1, __ATOMIC_ACQ_REL);
	struct farm_stats st;
	farm_get_stats(f, &st);
	sh->count[idx][4] = st.read_retries;
	sh->count[idx][5] = st.reads_local;
	sh->count[idx][6] = st.reads_remote;
	return 0;
}

static struct fc_shared *run_race(uint32_t replicas, const struct race_arg *ra)
{
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));
	uint64_t reads = 0, writes = 0, retries = 0;

	fc_config(&cfg, replicas > 1 ? 4 : 3, "frace", 1 << 20, 8, replicas);
	assert_int_equal(fc_run(&cfg, node_race, (void *)ra, sh, 10000, 40000), 0);
	for (uint32_t i = 0; i < cfg.nmembers; i++) {
		print_message("node %u: %llu reads ok, %llu writes, %llu gave up, %llu retries, "
			      "local %llu remote %llu\n",
			      i + 1, (unsigned long long)sh->count[i][0],
			      (unsigned long long)sh->count[i][1], (unsigned long long)sh->count[i][2],
			      (unsigned long long)sh->count[i][4], (unsigned long long)sh->count[i][5],
			      (unsigned long long)sh->count[i][6]);
		reads += sh->count[i][0];
		writes += sh->count[i][1];
		retries += sh->count[i][4];
		assert_int_equal(sh->count[i][3], 0); /* a reader never goes back in time */
		assert_true(sh->count[i][0] > 0);
	}
	assert_true(sh->count[0][5] > 0);              /* node 1 reads locally */
	assert_true(sh->count[cfg.nmembers - 1][6] > 0); /* the last node remotely */
	for (uint32_t i = 0; i < cfg.nmembers; i++)
		if (ra->writers & (1u << i))
			assert_true(sh->count[i][1] >= ra->min_writes);
	print_message("total %llu reads, %llu writes, %llu retries\n", (unsigned long long)reads,
		      (unsigned long long)writes, (unsigned long long)retries);
	return sh;
}

/* Two remote writers through the primary, replicated 3 ways: the writes'
 * lock spans the backups' acks. */
static void test_race_replicated(void **state)
{
	/* Readers yield: the writers wait on backups that must get a CPU (2
	 * cores, 4 nodes), and a write keeps its lock until they acked. */
	const struct race_arg ra = {.writers = 0x6, .writes = 300, .min_writes = 50,
				    .max_ms = 8000, .yield = true};
	proc_unshare(run_race(3, &ra), sizeof(struct fc_shared));
}

/* No backups: the primary itself rewrites the objects in a tight loop, so
 * the remote readers' one-sided READs keep landing in the middle of a
 * write. This is the test that catches a reader that accepts a torn copy. */
static void test_race_hot(void **state)
{
	const struct race_arg ra = {.writers = 0x1, .writes = 300000, .min_writes = 20000,
				    .max_ms = 8000};
	struct fc_shared *sh = run_race(1, &ra);
	/* The race happened: remote readers met objects mid-write. */
	assert_true(sh->count[1][4] + sh->count[2][4] > 0);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_race_hot),
		cmocka_unit_test(test_race_replicated),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
