/* test_farm_udp.c - FaRM over the udp NIC: one-sided reads are then served
 * by the target's progress loop (rdma over msg), so this is the path a
 * cluster of real machines takes. On loopback (always), and with the nodes
 * in two network namespaces joined by a veth (when namespaces are
 * available: root). Same checks as on shm: allocation on every node, reads
 * of remote objects, replicas that agree, readers racing a writer never
 * see a torn object, the configuration fence on one-sided reads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
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
#include "helpers/netns.h"
#include "helpers/proc.h"
#include "node.h"
#include "object.h"

#define K 12
#define RACE_WRITES 1000u   /* at most, and at least RACE_MIN in RACE_MS */
#define RACE_MIN 100u
#define RACE_MS 5000

static uint32_t size_of(int node, int k)
{
	static const uint32_t s[] = {8, 56, 64, 200, 1000, 3000};
	return s[(node + k) % 6];
}

static void fill(uint8_t *b, uint32_t len, uint64_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		b[i] = (uint8_t)(seed * 131 + i * 7);
}

static void make(uint8_t *p, uint32_t len, uint32_t round)
{
	uint32_t h = 2166136261u;

	memcpy(p, &round, 4);
	for (uint32_t i = 4; i < len - 4; i++)
		p[i] = (uint8_t)(round * 31 + i);
	for (uint32_t i = 0; i < len - 4; i++)
		h = (h ^ p[i]) * 16777619u;
	memcpy(p + len - 4, &h, 4);
}

static bool intact(const uint8_t *p, uint32_t len)
{
	uint32_t h = 2166136261u, want, round;

	memcpy(&round, p, 4);
	for (uint32_t i = 4; i < len - 4; i++)
		if (p[i] != (uint8_t)(round * 31 + i))
			return false;
	for (uint32_t i = 0; i < len - 4; i++)
		h = (h ^ p[i]) * 16777619u;
	memcpy(&want, p + len - 4, 4);
	return h == want;
}

static int node_udp(struct farm *f, int idx, struct fc_shared *sh, void *arg)
{
	int n = (int)farm_get_config(f)->nmembers;
	uint8_t in[4096], out[4096];

	(void)arg;
	for (int k = 0; k < K; k++) {
		farm_addr_t a;
		uint32_t sz = size_of(idx, k);
		FC_CHECK_RC(sh, idx, farm_alloc(f, sz, FARM_NULL, &a), 0);
		fill(in, sz, (uint64_t)idx * 100 + (uint64_t)k);
		FC_CHECK_RC(sh, idx, farm_write(f, a, in, sz), 0);
		sh->addr[idx * K + k] = a;
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 0, n, 30000), 0);
	for (int j = 0; j < n; j++)
		for (int k = 0; k < K; k++) {
			uint32_t sz = size_of(j, k), got;
			fill(in, sz, (uint64_t)j * 100 + (uint64_t)k);
			FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[j * K + k], out, sz, NULL), 0);
			FC_CHECK(sh, idx, memcmp(in, out, sz) == 0);
			FC_CHECK_RC(sh, idx, farm_obj_size(f, sh->addr[j * K + k], &got), 0);
			FC_CHECK(sh, idx, got == sz);
		}
	/* Replicas agree. */
	for (int j = 0; j < n; j++)
		for (int k = 0; k < K; k++) {
			farm_addr_t a = sh->addr[j * K + k];
			const struct farm_replica *x = f->regions[FARM_REGION(a)].mine;
			if (!x)
				continue;
			uint64_t h = 1469598103934665603ull, zero = 0;
			const uint8_t *p = x->base + FARM_OFFSET(a);
			for (uint32_t i = 0; i < farm_obj_lines(size_of(j, k)) * FARM_LINE; i++)
				h = (h ^ p[i]) * 1099511628211ull;
			if (!__atomic_compare_exchange_n(&sh->val[j * K + k], &zero, h, false,
							 __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
				FC_CHECK(sh, idx, zero == h);
		}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 1, n, 30000), 0);

	/* Race: node 1 rewrites one 1-line and one 4-line object it leads;
	 * the others read them remotely (served READs) and check them. */
	if (idx == 0) {
		for (int k = 0; k < 2; k++) {
			uint32_t sz = k ? 200 : 48;
			farm_addr_t a;
			FC_CHECK_RC(sh, idx, farm_alloc(f, sz, FARM_NULL, &a), 0);
			make(in, sz, 0);
			FC_CHECK_RC(sh, idx, farm_write(f, a, in, sz), 0);
			sh->addr[FC_SLOTS - 1 - k] = a;
		}
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 2, n, 30000), 0);
	if (idx == 0) {
		/* Under load every served exchange waits for the scheduler (ms):
		 * stop at RACE_MS once RACE_MIN writes are in. */
		uint64_t stop = proc_now_ms() + RACE_MS;
		for (uint32_t w = 0; w < RACE_WRITES && (w < RACE_MIN || proc_now_ms() < stop);
		     w++) {
			int k = (int)(w & 1);
			uint32_t sz = k ? 200 : 48;
			make(in, sz, w + 1);
			FC_CHECK_RC(sh, idx, farm_write(f, sh->addr[FC_SLOTS - 1 - k], in, sz), 0);
			farm_poll(f); /* serve the readers' READs between writes */
		}
		__atomic_store_n(&sh->flag[0], 1, __ATOMIC_RELEASE);
	} else {
		uint64_t end = proc_now_ms() + 60000;
		while (!__atomic_load_n(&sh->flag[0], __ATOMIC_ACQUIRE)) {
			FC_CHECK(sh, idx, proc_now_ms() < end);
			for (int k = 0; k < 2; k++) {
				uint32_t sz = k ? 200 : 48;
				int rc = farm_read(f, sh->addr[FC_SLOTS - 1 - k], out, sz, NULL);
				if (rc == -EAGAIN)
					continue;
				FC_CHECK_RC(sh, idx, rc, 0);
				FC_CHECK(sh, idx, intact(out, sz));
				sh->count[idx][0]++;
			}
		}
	}
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 3, n, 30000), 0);
	/* The fence on served one-sided reads: node 1 moves on. */
	if (idx == 0)
		farm__set_config_id(f, 7);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 4, n, 30000), 0);
	if (idx == 1)
		FC_CHECK_RC(sh, idx, farm_read(f, sh->addr[FC_SLOTS - 1], out, 48, NULL), -ESTALE);
	FC_CHECK_RC(sh, idx, fc_barrier(f, sh, 5, n, 30000), 0);
	struct farm_stats st;
	farm_get_stats(f, &st);
	sh->count[idx][1] = st.reads_remote;
	return 0;
}

static void report(const struct farm_config *cfg, struct fc_shared *sh)
{
	for (uint32_t i = 0; i < cfg->nmembers; i++)
		print_message("node %u (%s%s%s): started in %llu ms, %llu racing reads ok, %llu "
			      "remote reads\n",
			      cfg->members[i].id, cfg->members[i].addr,
			      cfg->members[i].netns[0] ? " in " : "", cfg->members[i].netns,
			      (unsigned long long)sh->start_ms[i],
			      (unsigned long long)sh->count[i][0],
			      (unsigned long long)sh->count[i][1]);
	for (uint32_t i = 1; i < cfg->nmembers; i++)
		assert_true(sh->count[i][0] > 0 && sh->count[i][1] > 0);
}

static void udp_config(struct farm_config *cfg, const char *tag, const char *ip[3])
{
	uint16_t base = (uint16_t)(20000 + (getpid() % 2000) * 8);

	fc_config(cfg, 3, tag, 1 << 20, 6, 3);
	strcpy(cfg->nic, "udp");
	for (int i = 0; i < 3; i++)
		snprintf(cfg->members[i].addr, sizeof(cfg->members[i].addr), "%s:%u", ip[i],
			 base + i);
}

static void test_udp_loopback(void **state)
{
	const char *ip[3] = {"127.0.0.1", "127.0.0.1", "127.0.0.1"};
	struct farm_config cfg;
	struct fc_shared *sh = proc_shared(sizeof(*sh));

	udp_config(&cfg, "fudp", ip);
	assert_int_equal(fc_run(&cfg, node_udp, NULL, sh, 10000, 90000), 0);
	report(&cfg, sh);
	proc_unshare(sh, sizeof(*sh));
}

static void test_udp_netns(void **state)
{
	const char *why = netns_unavailable();
	struct netns_pair p;
	struct farm_config cfg;
	struct fc_shared *sh;

	if (why) {
		print_message("skipped: %s\n", why);
		skip();
	}
	assert_int_equal(netns_pair_create(&p, NULL), 0);
	/* Node 1 alone in one namespace, nodes 2 and 3 in the other: every
	 * exchange with node 1 crosses the veth. */
	const char *ip[3] = {p.ip[0], p.ip[1], p.ip[1]};
	udp_config(&cfg, "fudpns", ip);
	snprintf(cfg.members[0].netns, sizeof(cfg.members[0].netns), "%s", p.ns[0]);
	snprintf(cfg.members[1].netns, sizeof(cfg.members[1].netns), "%s", p.ns[1]);
	snprintf(cfg.members[2].netns, sizeof(cfg.members[2].netns), "%s", p.ns[1]);
	sh = proc_shared(sizeof(*sh));
	int rc = fc_run(&cfg, node_udp, NULL, sh, 10000, 90000);
	netns_pair_destroy(&p);
	assert_int_equal(rc, 0);
	report(&cfg, sh);
	proc_unshare(sh, sizeof(*sh));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_udp_loopback),
		cmocka_unit_test(test_udp_netns),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
