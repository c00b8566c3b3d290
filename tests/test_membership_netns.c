/* test_membership_netns.c - a real partition: three member processes,
 * two in one network namespace with the ZooKeeper server, one in another,
 * joined by a veth (tests/helpers/netns.h; 10.77.x.y addresses exist only
 * inside these namespaces). The third member's link goes down: it loses
 * its lease (and ZooKeeper) and stops serving within its lease; the
 * others publish a configuration without it (through a takeover when it
 * was the CM). The link comes back: it registers again as a new
 * incarnation and is added. Times are printed. Skipped, with the reason,
 * without root or ZooKeeper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/netns.h"
#include "helpers/proc.h"
#include "helpers/zk_server.h"
#include "config.h"
#include "membership.h"
#include "zk.h"

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

struct sh {
	uint32_t ready[4], serving[4], drops[4], quit;
	uint64_t stop_ns[4];
	char err[4][200];
};

struct member_arg {
	struct sh *sh;
	struct farm_config seed;
	uint32_t self;
	char zk[64], bind[32];
};

static struct sh *g_sh;
static uint32_t g_self;

static void on_serving(void *arg, bool on)
{
	(void)arg;
	if (!on && __atomic_load_n(&g_sh->serving[g_self], __ATOMIC_RELAXED)) {
		__atomic_store_n(&g_sh->stop_ns[g_self], now_ns(), __ATOMIC_RELEASE);
		__atomic_add_fetch(&g_sh->drops[g_self], 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&g_sh->serving[g_self], on, __ATOMIC_RELEASE);
}

static int member_main(void *p)
{
	struct member_arg *a = p;
	struct farm_membership_attr at = {.zk = a->zk,
					  .zk_session_ms = 4000,
					  .lease_bind = a->bind,
					  .realtime = true,
					  .start_timeout_ms = 20000,
					  .rejoin = true,
					  .on_serving = on_serving};
	struct farm_membership *m;

	g_sh = a->sh;
	g_self = a->self;
	if (farm_membership_start(&a->seed, a->self, &at, &m, a->sh->err[a->self],
				  sizeof(a->sh->err[a->self])))
		return 1;
	proc_set_u32(&a->sh->ready[a->self], 1);
	while (!proc_get_u32(&a->sh->quit))
		usleep(2000);
	farm_membership_stop(m);
	return 0;
}

static struct farm_mconfig *zk_config(struct farm_zk *z, const char *cluster)
{
	static struct farm_mconfig c;
	static char text[32768];
	char path[128];
	size_t len = sizeof(text) - 1;

	snprintf(path, sizeof(path), "/farm/%s/config", cluster);
	if (farm_zk_get(z, path, false, text, &len, NULL))
		return NULL;
	text[len] = 0;
	return farm_mconfig_parse(text, &c, NULL, 0) ? NULL : &c;
}

/* Wait until member 3 is out (want_in false) or in again (true). */
static uint64_t wait_member3(struct farm_zk *z, const char *cluster, bool want_in, uint64_t t0,
			     int ms, uint64_t *id)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	for (;;) {
		struct farm_mconfig *c = zk_config(z, cluster);
		if (c && (farm__config_member(&c->cfg, 3) >= 0) == want_in) {
			*id = c->id;
			return now_ns() - t0;
		}
		if (proc_now_ms() > end)
			return 0;
		usleep(1000);
	}
}

/* What link_teardown must undo, whatever happened in the test. */
static struct netns_pair g_p;
static struct zk_server g_srv;
static pid_t g_pid[4];
static int g_host = -1, g_zk_up, g_ns_up;

static void test_link_down(void **state)
{
	(void)state;
	const char *why = netns_unavailable();
	if (!why && !farm_zk_available())
		why = "libfarm built without libzookeeper-mt";
	if (!why)
		why = zk_server_unavailable();
	if (why) {
		printf("# skipped: %s\n", why);
		skip();
	}
	struct netns_pair *pp = &g_p;
#define p (*pp)
	struct zk_server *srvp = &g_srv;
#define srv (*srvp)
	static struct member_arg args[4];
	struct farm_zk_attr za = {.session_ms = 4000, .connect_ms = 10000};
	struct farm_zk *z = NULL;
	struct farm_config seed;
	pid_t *pid = g_pid;
	char name[64];
	uint64_t id = 0;
	int host = g_host = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);

	assert_true(host >= 0);
	assert_int_equal(netns_pair_create(&p, NULL), 0);
	g_ns_up = 1;
	/* The test process (and so the ZooKeeper server and members 1, 2)
	 * lives in the first namespace; member 3 in the second. */
	assert_int_equal(netns_enter(p.ns[0]), 0);
	int rc = zk_server_start_at(&srv, p.ip[0], 200, 30000);
	if (rc)
		fail_msg("zookeeper in %s: %s", p.ns[0], strerror(-rc));
	g_zk_up = 1;
	printf("# zookeeper on %s in %s; member 3 in %s (%s)\n", srv.hosts, p.ns[0], p.ns[1],
	       p.ip[1]);
	struct sh *sh = proc_shared(sizeof(*sh));
	farm_config_defaults(&seed);
	snprintf(name, sizeof(name), "mn%d", (int)getpid());
	snprintf(seed.cluster, sizeof(seed.cluster), "%s", name);
	seed.region_size = 1 << 20;
	seed.nmembers = 3;
	for (int i = 0; i < 3; i++) {
		seed.members[i].id = (uint32_t)i + 1;
		snprintf(seed.members[i].addr, sizeof(seed.members[i].addr), "%s-%d", name, i + 1);
	}
	for (uint32_t i = 1; i <= 3; i++) {
		args[i].sh = sh;
		args[i].seed = seed;
		args[i].self = i;
		snprintf(args[i].zk, sizeof(args[i].zk), "%.*s", (int)sizeof(args[i].zk) - 1,
			 srv.hosts);
		snprintf(args[i].bind, sizeof(args[i].bind), "%.*s", (int)sizeof(args[i].bind) - 1,
			 i == 3 ? p.ip[1] : p.ip[0]);
		pid[i] = i == 3 ? netns_fork(p.ns[1], member_main, &args[i])
				: proc_fork(member_main, &args[i]);
		assert_true(pid[i] > 0);
	}
	for (int i = 1; i <= 3; i++) {
		if (proc_wait_u32(&sh->ready[i], 1, 30000))
			fail_msg("member %d: %s", i, sh->err[i]);
		assert_int_equal(proc_wait_u32(&sh->serving[i], 1, 5000), 0);
	}
	assert_int_equal(farm_zk_open(srv.hosts, &za, &z), 0);
	struct farm_mconfig *c = zk_config(z, name);
	assert_non_null(c);
	uint32_t cm = c->cm;
	usleep(200000);

	/* Member 3's link goes down. */
	uint64_t t0 = now_ns();
	assert_int_equal(netns_sh(p.ns[1], NULL, 0, "ip link set %s down", p.dev[1]), 0);
	uint64_t d = wait_member3(z, name, false, t0, 10000, &id);
	assert_true(d > 0);
	assert_int_equal(proc_wait_u32(&sh->drops[3], 1, 2000), 0);
	uint64_t stop = sh->stop_ns[3] - t0;
	printf("# link down (member 3%s): it stopped serving after %.1f ms; configuration %llu "
	       "without it after %.1f ms (lease %u ms)\n",
	       cm == 3 ? ", the CM" : "", stop / 1e6, (unsigned long long)id, d / 1e6,
	       FARM_LEASE_DEFAULT_MS);
	/* Within two leases plus a stall: sanitizer builds on a loaded 2-CPU VM
	 * measured 232 ms. That it stops before it is removed is the safety
	 * property, checked exactly below. */
	assert_true(stop <= (uint64_t)(2 * FARM_LEASE_DEFAULT_MS + 100) * 1000000ull);
	assert_true(stop <= d);
	usleep(300000);
	assert_false(proc_get_u32(&sh->serving[3])); /* still cut off: still stopped */
	assert_true(proc_get_u32(&sh->serving[1]) && proc_get_u32(&sh->serving[2]));

	/* Link up: it comes back as a new incarnation. */
	t0 = now_ns();
	assert_int_equal(netns_sh(p.ns[1], NULL, 0, "ip link set %s up", p.dev[1]), 0);
	d = wait_member3(z, name, true, t0, 15000, &id);
	assert_true(d > 0);
	assert_int_equal(proc_wait_u32(&sh->serving[3], 1, 5000), 0);
	printf("# link up: member 3 rejoined in configuration %llu after %.0f ms\n",
	       (unsigned long long)id, d / 1e6);

	farm_zk_close(z);
	proc_set_u32(&sh->quit, 1);
	for (int i = 1; i <= 3; i++)
		if (proc_wait(pid[i], 10000) >= 0)
			pid[i] = 0;
	proc_unshare(sh, sizeof(*sh));
	/* link_teardown removes the server, the namespaces and any member left,
	 * also when an assertion above ended the test early. */
}
#undef p
#undef srv

/* Runs after the test whether it passed or failed: a member left waiting
 * for `quit` would otherwise keep ctest's output pipe open until its
 * timeout. */
static int link_teardown(void **state)
{
	proc_teardown(state);
	for (int i = 1; i <= 3; i++)
		if (g_pid[i] > 0) {
			kill(g_pid[i], SIGKILL);
			waitpid(g_pid[i], NULL, 0);
			g_pid[i] = 0;
		}
	if (g_zk_up)
		zk_server_destroy(&g_srv);
	g_zk_up = 0;
	if (g_host >= 0) {
		if (setns(g_host, CLONE_NEWNET) < 0) {
			/* nothing better to do: the namespaces go below anyway */
		}
		close(g_host);
		g_host = -1;
	}
	if (g_ns_up)
		netns_pair_destroy(&g_p);
	g_ns_up = 0;
	return 0;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_teardown(test_link_down, link_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
