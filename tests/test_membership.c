/* test_membership.c - ZooKeeper membership, CM election and configuration
 * changes (src/farm/membership.h), against a real standalone ZooKeeper
 * started and stopped by pid (tests/helpers/zk_server.h):
 *   - the configuration znode's text: round trip, refusals;
 *   - bootstrap: three members, one configuration, one CM; the CM leaves
 *     (its session closes): another is elected and publishes id+1;
 *   - conditional-set races: two writers add members concurrently, each
 *     retrying on a lost race; the result holds every change, ids dense;
 *   - kill -9 of a member process: the CM publishes a configuration
 *     without it within lease + a small bound (measured, printed);
 *   - kill -9 of the CM process: the successor takes over (lease probe)
 *     and publishes one without it (measured);
 *   - a member whose data thread spins at 100% keeps its lease;
 *   - a partitioned member (lease channel dropped) stops serving within
 *     its lease, is removed, and rejoins as a new incarnation when healed;
 *   - ZooKeeper stopped (kill -9) and restarted: no configuration change,
 *     members keep serving, everyone reconnects, changes work afterwards.
 * Skipped, with the reason, without ZooKeeper. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "helpers/zk_server.h"
#include "config.h"
#include "membership.h"
#include "zk.h"

#define MAXC 5

static struct zk_server srv;
static const char *skip_reason;
static int cluster_seq;

#define SKIP_IF_NO_ZK()                                                                            \
	do {                                                                                       \
		if (skip_reason) {                                                                 \
			printf("# skipped: %s\n", skip_reason);                                    \
			skip();                                                                    \
		}                                                                                  \
	} while (0)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int setup(void **state)
{
	(void)state;
	return zk_server_setup(&srv, &skip_reason);
}

static int teardown(void **state)
{
	(void)state;
	zk_server_destroy(&srv);
	return 0;
}

/* A seed of n members, cluster name unique per test. */
static void seed_config(struct farm_config *c, int n, char *name, size_t nlen)
{
	farm_config_defaults(c);
	snprintf(name, nlen, "mt%d-%d", (int)getpid(), ++cluster_seq);
	snprintf(c->cluster, sizeof(c->cluster), "%s", name);
	c->region_size = 1 << 20;
	c->nmembers = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		c->members[i].id = (uint32_t)i + 1;
		snprintf(c->members[i].addr, sizeof(c->members[i].addr), "%s-%d", name, i + 1);
	}
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
	if (farm_mconfig_parse(text, &c, NULL, 0))
		return NULL;
	return &c;
}

static struct farm_zk *zk_client(void)
{
	struct farm_zk_attr a = {.session_ms = 4000, .connect_ms = 10000};
	struct farm_zk *z = NULL;

	assert_int_equal(farm_zk_open(srv.hosts, &a, &z), 0);
	return z;
}

/* ---- the text ---------------------------------------------------------- */

static void test_config_text(void **state)
{
	(void)state;
	static struct farm_mconfig c, d;
	static char buf[32768];
	char name[64], err[256];
	int n;

	seed_config(&c.cfg, 3, name, sizeof(name));
	assert_int_equal(farm__config_finish(&c.cfg, NULL, 0), 0);
	c.id = 7;
	c.cm = 2;
	for (int i = 0; i < 3; i++) {
		c.lease[i].id = c.cfg.members[i].id;
		c.lease[i].inc = 0x1234567890ull + (uint64_t)i;
		snprintf(c.lease[i].addr, sizeof(c.lease[i].addr), "127.0.0.1:%d", 4000 + i);
	}
	n = farm_mconfig_format(&c, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(farm_mconfig_parse(buf, &d, err, sizeof(err)), 0);
	assert_int_equal(d.id, 7);
	assert_int_equal(d.cm, 2);
	assert_int_equal(d.boot, 1);
	assert_int_equal(d.cfg.config_id, 7);
	assert_int_equal(d.cfg.nmembers, 3);
	assert_int_equal(d.cfg.regions, c.cfg.regions);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(d.lease[i].inc, c.lease[i].inc);
		assert_string_equal(d.lease[i].addr, c.lease[i].addr);
		assert_string_equal(d.cfg.members[i].addr, c.cfg.members[i].addr);
	}
	assert_int_equal(farm_mconfig_format(&c, buf, 20), -ENOSPC);
	/* Refusals: no head, CM not a member, a member without lease line,
	 * ids that disagree, plain garbage. */
	n = farm_mconfig_format(&c, buf, sizeof(buf));
	assert_int_equal(farm_mconfig_parse(strchr(buf, '\n') + 1, &d, err, sizeof(err)), -EINVAL);
	c.cm = 9;
	farm_mconfig_format(&c, buf, sizeof(buf));
	assert_int_equal(farm_mconfig_parse(buf, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "CM 9"));
	c.cm = 2;
	farm_mconfig_format(&c, buf, sizeof(buf));
	char *l2 = strstr(buf, "# lease 2");
	assert_non_null(l2);
	memset(l2, ' ', (size_t)(strchr(l2, '\n') - l2));
	l2[0] = '#';
	assert_int_equal(farm_mconfig_parse(buf, &d, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "member 2"));
	farm_mconfig_format(&c, buf, sizeof(buf));
	char *cid = strstr(buf, "config_id = 7");
	assert_non_null(cid);
	cid[12] = '8';
	assert_int_equal(farm_mconfig_parse(buf, &d, err, sizeof(err)), -EINVAL);
	assert_int_equal(farm_mconfig_parse("garbage\n", &d, err, sizeof(err)), -EINVAL);
	assert_int_equal(farm_mconfig_parse(NULL, &d, err, sizeof(err)), -EINVAL);
}

/* ---- in-process members (threads) -------------------------------------- */

struct mthread {
	struct farm_config seed;
	uint32_t self;
	struct farm_membership *m;
	int rc;
	char err[256];
	uint32_t lease_ms;
};

static void *start_one(void *arg)
{
	struct mthread *t = arg;
	struct farm_membership_attr a = {.zk = srv.hosts,
					 .zk_session_ms = 2000,
					 .lease_ms = t->lease_ms,
					 .realtime = true,
					 .start_timeout_ms = 20000,
					 .rejoin = true};

	t->rc = farm_membership_start(&t->seed, t->self, &a, &t->m, t->err, sizeof(t->err));
	return NULL;
}

static void start_many(struct mthread *t, int n, const struct farm_config *seed)
{
	pthread_t th[MAXC];

	for (int i = 0; i < n; i++) {
		memset(&t[i], 0, sizeof(t[i]));
		t[i].seed = *seed;
		t[i].self = (uint32_t)i + 1;
		pthread_create(&th[i], NULL, start_one, &t[i]);
	}
	for (int i = 0; i < n; i++) {
		pthread_join(th[i], NULL);
		if (t[i].rc)
			fprintf(stderr, "member %d: %s\n", i + 1, t[i].err);
		assert_int_equal(t[i].rc, 0);
	}
}

static int wait_config(struct farm_membership *m, uint64_t id, int ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;
	struct farm_membership_stats st;

	for (;;) {
		farm_membership_get_stats(m, &st);
		if (st.config_id >= id)
			return 0;
		if (proc_now_ms() > end)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

static void test_bootstrap_and_reelection(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct mthread t[3];
	struct farm_config seed;
	struct farm_mconfig c;
	struct farm_membership_stats st;
	static struct farm_mchange ch;
	char name[64];
	int cm = -1, ncm = 0;

	seed_config(&seed, 3, name, sizeof(name));
	start_many(t, 3, &seed);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(farm_membership_config(t[i].m, &c), 0);
		assert_int_equal(c.id, 1);
		assert_int_equal(c.cfg.nmembers, 3);
		assert_true(c.cm >= 1 && c.cm <= 3);
		cm = (int)c.cm - 1;
	}
	usleep(300000);
	for (int i = 0; i < 3; i++) {
		farm_membership_get_stats(t[i].m, &st);
		ncm += st.is_cm;
		assert_true(st.serving);
		assert_int_equal(st.config_id, 1);
		/* The first take reports everyone as added. */
		assert_int_equal(farm_membership_take(t[i].m, &ch), 1);
		assert_int_equal(ch.nadded, 3);
		assert_int_equal(ch.nremoved, 0);
		assert_false(ch.self_removed);
		assert_int_equal(farm_membership_take(t[i].m, &ch), 0);
		assert_false(farm_membership_changed(t[i].m));
	}
	assert_int_equal(ncm, 1);
	/* The CM leaves: its session closes, its znodes go at once; the next
	 * in the election becomes CM and publishes id 2 without it. */
	uint64_t t0 = now_ns();
	farm_membership_stop(t[cm].m);
	t[cm].m = NULL;
	int other = (cm + 1) % 3, third = (cm + 2) % 3;
	assert_int_equal(wait_config(t[other].m, 2, 10000), 0);
	assert_int_equal(wait_config(t[third].m, 2, 10000), 0);
	printf("# CM left (clean close): new CM's configuration 2 after %.1f ms\n",
	       (now_ns() - t0) / 1e6);
	assert_int_equal(farm_membership_config(t[other].m, &c), 0);
	assert_int_equal(c.cfg.nmembers, 2);
	assert_true(c.cm != (uint32_t)cm + 1);
	assert_true(farm__config_member(&c.cfg, (uint32_t)cm + 1) < 0);
	assert_true(farm_membership_changed(t[other].m));
	assert_int_equal(farm_membership_take(t[other].m, &ch), 1);
	assert_int_equal(ch.next.id, 2);
	assert_int_equal(ch.nremoved, 1);
	assert_int_equal(ch.removed[0], (uint32_t)cm + 1);
	assert_int_equal(ch.nadded, 0);
	/* Members serve again under the new CM. */
	usleep(200000);
	assert_true(farm_membership_serving(t[other].m));
	assert_true(farm_membership_serving(t[third].m));
	/* The node comes back: a new incarnation joins (id 3). */
	t[cm].seed = seed;
	start_one(&t[cm]);
	assert_int_equal(t[cm].rc, 0);
	assert_int_equal(wait_config(t[other].m, 3, 10000), 0);
	assert_int_equal(farm_membership_config(t[other].m, &c), 0);
	assert_int_equal(c.cfg.nmembers, 3);
	assert_int_equal(farm_membership_take(t[other].m, &ch), 1);
	assert_int_equal(ch.nadded, 1);
	assert_int_equal(ch.added[0], (uint32_t)cm + 1);
	for (int i = 0; i < 3; i++)
		farm_membership_stop(t[i].m);
}

/* The whole cluster stops and starts again: a new generation at the next
 * id, which the nodes start in (boot == id), not a join. */
static void test_new_generation(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct mthread t[2];
	struct farm_config seed;
	struct farm_mconfig c;
	char name[64];

	seed_config(&seed, 2, name, sizeof(name));
	start_many(t, 2, &seed);
	assert_int_equal(farm_membership_config(t[0].m, &c), 0);
	assert_int_equal(c.id, 1);
	assert_int_equal(c.boot, 1);
	farm_membership_stop(t[0].m);
	farm_membership_stop(t[1].m);
	start_many(t, 2, &seed);
	for (int i = 0; i < 2; i++) {
		assert_int_equal(farm_membership_config(t[i].m, &c), 0);
		assert_true(c.id >= 2);
		assert_int_equal(c.boot, c.id);
		assert_int_equal(c.cfg.nmembers, 2);
	}
	printf("# cluster stopped and started again: new generation in configuration %llu\n",
	       (unsigned long long)c.id);
	for (int i = 0; i < 2; i++)
		farm_membership_stop(t[i].m);
}

/* ---- conditional-set races ---------------------------------------------- */

struct writer {
	const char *cluster;
	uint32_t first, count;
	uint32_t lost, won;
};

static void *writer_run(void *arg)
{
	struct writer *w = arg;
	struct farm_zk *z = NULL;
	struct farm_zk_attr a = {.session_ms = 4000, .connect_ms = 10000};
	static __thread char text[32768];
	static __thread struct farm_mconfig c;
	char path[128];

	if (farm_zk_open(srv.hosts, &a, &z))
		return NULL;
	snprintf(path, sizeof(path), "/farm/%s/config", w->cluster);
	for (uint32_t k = 0; k < w->count;) {
		size_t len = sizeof(text) - 1;
		int32_t ver;
		if (farm_zk_get(z, path, false, text, &len, &ver))
			break;
		text[len] = 0;
		if (farm_mconfig_parse(text, &c, NULL, 0))
			break;
		uint32_t i = c.cfg.nmembers++;
		c.cfg.members[i].id = w->first + k;
		snprintf(c.cfg.members[i].addr, sizeof(c.cfg.members[i].addr), "w-%u",
			 w->first + k);
		c.lease[i].id = w->first + k;
		c.lease[i].inc = k + 1;
		snprintf(c.lease[i].addr, sizeof(c.lease[i].addr), "127.0.0.1:%u",
			 1000 + w->first + k);
		c.id++;
		c.cfg.config_id = c.id;
		int n = farm_mconfig_format(&c, text, sizeof(text));
		int rc = farm_zk_set(z, path, text, (size_t)n, ver, NULL);
		if (rc == -ESTALE) {
			w->lost++; /* re-read and apply our change on top */
			continue;
		}
		if (rc)
			break;
		w->won++;
		k++;
	}
	farm_zk_close(z);
	return NULL;
}

static void test_conditional_races(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct farm_mconfig c;
	static char text[32768];
	struct farm_config seed;
	char name[64], path[128];
	struct writer w[2];
	pthread_t th[2];
	struct farm_zk *z = zk_client();

	seed_config(&seed, 1, name, sizeof(name));
	assert_int_equal(farm__config_finish(&seed, NULL, 0), 0);
	c.cfg = seed;
	c.id = 1;
	c.cm = 1;
	c.lease[0].id = 1;
	c.lease[0].inc = 1;
	strcpy(c.lease[0].addr, "127.0.0.1:999");
	snprintf(path, sizeof(path), "/farm/%s", name);
	assert_int_equal(farm_zk_mkdirs(z, path), 0);
	snprintf(path, sizeof(path), "/farm/%s/config", name);
	int n = farm_mconfig_format(&c, text, sizeof(text));
	assert_int_equal(farm_zk_create(z, path, text, (size_t)n, 0, NULL, 0), 0);
	for (int i = 0; i < 2; i++) {
		w[i] =
		    (struct writer){.cluster = name, .first = 10 + 20 * (uint32_t)i, .count = 15};
		pthread_create(&th[i], NULL, writer_run, &w[i]);
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("# two writers, 15 changes each: %u + %u races lost and retried\n", w[0].lost,
	       w[1].lost);
	assert_int_equal(w[0].won, 15);
	assert_int_equal(w[1].won, 15);
	struct farm_mconfig *f = zk_config(z, name);
	assert_non_null(f);
	/* Every change is in, each published once: ids are dense. */
	assert_int_equal(f->id, 1 + 30);
	assert_int_equal(f->cfg.nmembers, 31);
	for (uint32_t k = 0; k < 15; k++) {
		assert_true(farm__config_member(&f->cfg, 10 + k) >= 0);
		assert_true(farm__config_member(&f->cfg, 30 + k) >= 0);
	}
	farm_zk_close(z);
}

/* ---- member processes ---------------------------------------------------- */

struct child_sh {
	uint32_t ready[MAXC + 1];
	uint32_t serving[MAXC + 1];
	uint32_t drops[MAXC + 1];   /* serving true -> false */
	uint64_t stop_ns[MAXC + 1]; /* last drop */
	uint64_t cfg[MAXC + 1];
	uint32_t is_cm[MAXC + 1];
	uint32_t zk_up[MAXC + 1];
	uint32_t block[MAXC + 1]; /* command: cut the lease channel */
	uint32_t spin[MAXC + 1];  /* command: spin data threads */
	uint32_t quit;
	uint64_t max_gap_ns[MAXC + 1];
	uint64_t max_age_ns[MAXC + 1];
	uint32_t rt[MAXC + 1];
	char err[MAXC + 1][200];
};

struct child_arg {
	struct child_sh *sh;
	struct farm_config seed;
	uint32_t self;
	uint32_t lease_ms;
};

static struct child_sh *g_sh;
static uint32_t g_self;

static void child_serving(void *arg, bool on)
{
	(void)arg;
	if (!on && __atomic_load_n(&g_sh->serving[g_self], __ATOMIC_RELAXED)) {
		__atomic_store_n(&g_sh->stop_ns[g_self], now_ns(), __ATOMIC_RELEASE);
		__atomic_add_fetch(&g_sh->drops[g_self], 1, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&g_sh->serving[g_self], on, __ATOMIC_RELEASE);
}

static volatile int spin_on;

static void *spinner(void *arg)
{
	volatile uint64_t x = 0;

	(void)arg;
	for (;;)
		if (spin_on)
			x++;
		else
			usleep(1000);
	return NULL;
}

static int child_main(void *argp)
{
	struct child_arg *ca = argp;
	struct child_sh *sh = ca->sh;
	struct farm_membership_attr a = {.zk = srv.hosts,
					 .zk_session_ms = 4000,
					 .lease_ms = ca->lease_ms,
					 .realtime = true,
					 .start_timeout_ms = 20000,
					 .rejoin = true,
					 .on_serving = child_serving};
	struct farm_membership *m;
	struct farm_membership_stats st;
	uint32_t me = ca->self;
	bool spinning = false, blocked = false;

	g_sh = sh;
	g_self = me;
	if (farm_membership_start(&ca->seed, me, &a, &m, sh->err[me], sizeof(sh->err[me])))
		return 1;
	proc_set_u32(&sh->ready[me], 1);
	while (!proc_get_u32(&sh->quit)) {
		farm_membership_get_stats(m, &st);
		__atomic_store_n(&sh->cfg[me], st.config_id, __ATOMIC_RELEASE);
		proc_set_u32(&sh->is_cm[me], st.is_cm);
		proc_set_u32(&sh->zk_up[me], st.zk_connected);
		__atomic_store_n(&sh->max_gap_ns[me], st.lease.max_gap_ns, __ATOMIC_RELEASE);
		__atomic_store_n(&sh->max_age_ns[me], st.lease.max_grant_age_ns, __ATOMIC_RELEASE);
		proc_set_u32(&sh->rt[me], st.lease.realtime);
		bool b = proc_get_u32(&sh->block[me]);
		if (b != blocked) {
			farm_membership_block_lease(m, b);
			blocked = b;
		}
		if (proc_get_u32(&sh->spin[me]) && !spinning) {
			/* The data thread (this one) and a helper spin at 100%,
			 * as a busy node does; the lease thread must still run. */
			pthread_t th;
			spin_on = 1;
			pthread_create(&th, NULL, spinner, NULL);
			spinning = true;
		}
		if (spinning) {
			uint64_t end = now_ns() + 2000000;
			while (now_ns() < end)
				; /* spin */
			if (!proc_get_u32(&sh->spin[me]))
				spin_on = 0, spinning = false;
		} else {
			usleep(1000);
		}
	}
	spin_on = 0;
	farm_membership_stop(m);
	return 0;
}

struct cluster {
	struct child_sh *sh;
	struct child_arg args[MAXC + 1];
	pid_t pid[MAXC + 1];
	int n;
	char name[64];
	struct farm_zk *z;
};

static void cluster_up(struct cluster *c, int n, uint32_t lease_ms)
{
	struct farm_config seed;

	memset(c, 0, sizeof(*c));
	c->n = n;
	c->sh = proc_shared(sizeof(*c->sh));
	seed_config(&seed, n, c->name, sizeof(c->name));
	for (int i = 1; i <= n; i++) {
		c->args[i] = (struct child_arg){
		    .sh = c->sh, .seed = seed, .self = (uint32_t)i, .lease_ms = lease_ms};
		c->pid[i] = proc_fork(child_main, &c->args[i]);
		assert_true(c->pid[i] > 0);
	}
	for (int i = 1; i <= n; i++) {
		if (proc_wait_u32(&c->sh->ready[i], 1, 30000)) {
			fprintf(stderr, "member %d not ready: %s\n", i, c->sh->err[i]);
			fail();
		}
	}
	c->z = zk_client();
	/* Settle: every member serving. */
	for (int i = 1; i <= n; i++)
		assert_int_equal(proc_wait_u32(&c->sh->serving[i], 1, 5000), 0);
}

static void print_leases(const struct cluster *c, const char *what)
{
	printf("# %s:", what);
	for (int i = 1; i <= c->n; i++)
		printf(" [member %d: drops %u, longest renewal gap %.2f ms, longest ungranted "
		       "%.2f ms%s]",
		       i, c->sh->drops[i], c->sh->max_gap_ns[i] / 1e6, c->sh->max_age_ns[i] / 1e6,
		       c->sh->rt[i] ? ", SCHED_FIFO" : "");
	printf("\n");
}

static void cluster_down(struct cluster *c)
{
	proc_set_u32(&c->sh->quit, 1);
	for (int i = 1; i <= c->n; i++)
		if (c->pid[i] > 0)
			proc_wait(c->pid[i], 10000);
	farm_zk_close(c->z);
	proc_unshare(c->sh, sizeof(*c->sh));
}

static int cm_of(struct cluster *c)
{
	struct farm_mconfig *f = zk_config(c->z, c->name);

	return f ? (int)f->cm : -1;
}

/* Poll the configuration znode until one without member `gone` is there;
 * returns ns from t0, or 0 on timeout. */
static uint64_t wait_removed(struct cluster *c, uint32_t gone, uint64_t t0, int ms, uint64_t *id)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	for (;;) {
		struct farm_mconfig *f = zk_config(c->z, c->name);
		uint64_t t = now_ns();
		if (f && farm__config_member(&f->cfg, gone) < 0) {
			if (id)
				*id = f->id;
			return t - t0;
		}
		if (proc_now_ms() > end)
			return 0;
		usleep(500);
	}
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* kill -9 of a member (not the CM), `runs` times with a fresh cluster:
 * ns from the kill to a configuration without it, sorted. */
static void kill_member_runs(uint32_t lease_ms, uint64_t *d, int runs)
{
	static struct cluster c;

	for (int r = 0; r < runs; r++) {
		cluster_up(&c, 3, lease_ms);
		int cm = cm_of(&c);
		assert_true(cm >= 1);
		int victim = cm % 3 + 1;
		usleep(100000);
		uint64_t t0 = now_ns();
		proc_kill(c.pid[victim]);
		c.pid[victim] = 0;
		d[r] = wait_removed(&c, (uint32_t)victim, t0, 5000, NULL);
		assert_true(d[r] > 0);
		/* Survivors adopt it and serve. */
		for (int i = 1; i <= 3; i++)
			if (i != victim)
				assert_int_equal(proc_wait_u32(&c.sh->serving[i], 1, 2000), 0);
		cluster_down(&c);
	}
	qsort(d, (size_t)runs, sizeof(d[0]), cmp_u64);
	printf("# kill -9 of a member -> configuration without it published: "
	       "%.1f / %.1f / %.1f ms (min/median/max of %d; lease %u ms)\n",
	       d[0] / 1e6, d[runs / 2] / 1e6, d[runs - 1] / 1e6, runs,
	       lease_ms ? lease_ms : FARM_LEASE_DEFAULT_MS);
}

static void test_kill_member_detection(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	uint64_t d[3];

	/* The default lease: lease plus a small bound (one wake-up, one
	 * ZooKeeper write; loose for a loaded 2-core machine). */
	kill_member_runs(0, d, 3);
	assert_true(d[1] < (uint64_t)(FARM_LEASE_DEFAULT_MS + 80) * 1000000ull);
	assert_true(d[0] >= (uint64_t)FARM_LEASE_DEFAULT_MS * 1000000ull * 7 / 10);
	/* FaRM's scale (e.g. 20 ms) on request only:
	 * FARM_ZK_SHORT_LEASE_MS=20. On this shared VM such a lease can lapse
	 * by itself when the machine stalls (docs/farm.md), so it is a
	 * measurement, not part of the suite. */
	const char *short_ms = getenv("FARM_ZK_SHORT_LEASE_MS");
	if (short_ms && atoi(short_ms) > 1) {
		kill_member_runs((uint32_t)atoi(short_ms), d, 3);
		assert_true(d[1] < 400ull * 1000000ull);
	}
}

static void test_kill_cm_takeover(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct cluster c;
	uint64_t id = 0;

	cluster_up(&c, 3, 0);
	int cm = cm_of(&c);
	assert_true(cm >= 1);
	usleep(100000);
	uint64_t t0 = now_ns();
	proc_kill(c.pid[cm]);
	c.pid[cm] = 0;
	uint64_t d = wait_removed(&c, (uint32_t)cm, t0, 10000, &id);
	assert_true(d > 0);
	int ncm = cm_of(&c);
	printf("# kill -9 of the CM (member %d): member %d took over and published "
	       "configuration %llu after %.1f ms (its ZooKeeper session would take %d ms)\n",
	       cm, ncm, (unsigned long long)id, d / 1e6, 4000);
	assert_true(ncm >= 1 && ncm != cm);
	/* Well below the ZooKeeper session timeout: the lease did it. */
	assert_true(d < 2000ull * 1000000ull);
	for (int i = 1; i <= 3; i++)
		if (i != cm) {
			assert_int_equal(proc_wait_u32(&c.sh->serving[i], 1, 3000), 0);
			assert_int_equal(proc_wait_u32(&c.sh->is_cm[i], i == ncm, 3000), 0);
		}
	cluster_down(&c);
}

static void test_busy_member_keeps_lease(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct cluster c;

	cluster_up(&c, 3, 0);
	int cm = cm_of(&c);
	int busy = cm % 3 + 1;
	uint64_t id0 = c.sh->cfg[busy];
	proc_set_u32(&c.sh->spin[busy], 1);
	proc_set_u32(&c.sh->spin[cm], 1); /* the CM too: both cores saturated */
	usleep(2500000);
	proc_set_u32(&c.sh->spin[busy], 0);
	proc_set_u32(&c.sh->spin[cm], 0);
	usleep(100000);
	print_leases(&c, "busy member and CM spinning 2.5 s");
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(c.sh->drops[i], 0);
		assert_int_equal(c.sh->cfg[i], id0); /* no configuration change */
	}
	cluster_down(&c);
}

static void test_partitioned_member(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct cluster c;
	uint64_t id = 0;

	cluster_up(&c, 3, 0);
	int cm = cm_of(&c);
	int p = cm % 3 + 1;
	usleep(100000);
	uint64_t t0 = now_ns();
	proc_set_u32(&c.sh->block[p], 1);
	uint64_t d = wait_removed(&c, (uint32_t)p, t0, 5000, &id);
	assert_true(d > 0);
	assert_int_equal(proc_wait_u32(&c.sh->drops[p], 1, 1000), 0);
	uint64_t stop = c.sh->stop_ns[p] - t0;
	printf("# partitioned member: stopped serving after %.1f ms, removed (config %llu) "
	       "after %.1f ms\n",
	       stop / 1e6, (unsigned long long)id, d / 1e6);
	assert_false(proc_get_u32(&c.sh->serving[p]));
	assert_true(stop <= (uint64_t)(FARM_LEASE_DEFAULT_MS + 60) * 1000000ull); /* + a stall */
	assert_true(stop <= d); /* stopped before the cluster moved on */
	/* It stays stopped while cut off. */
	usleep(200000);
	assert_false(proc_get_u32(&c.sh->serving[p]));
	/* Healed: it registers again as a new incarnation and is added. */
	proc_set_u32(&c.sh->block[p], 0);
	uint64_t end = proc_now_ms() + 10000;
	struct farm_mconfig *f;
	for (;;) {
		f = zk_config(c.z, c.name);
		if (f && farm__config_member(&f->cfg, (uint32_t)p) >= 0)
			break;
		assert_true(proc_now_ms() < end);
		usleep(2000);
	}
	printf("# healed member rejoined in configuration %llu\n", (unsigned long long)f->id);
	assert_true(f->id > id);
	assert_int_equal(proc_wait_u32(&c.sh->serving[p], 1, 3000), 0);
	cluster_down(&c);
}

static void test_zk_restart(void **state)
{
	(void)state;
	SKIP_IF_NO_ZK();
	static struct cluster c;

	cluster_up(&c, 3, 0);
	uint64_t id0 = c.sh->cfg[1];
	farm_zk_close(c.z);
	zk_server_stop(&srv);
	/* ZooKeeper is down for 1.5 s: leases go on, no change is needed. */
	for (int k = 0; k < 15; k++) {
		usleep(100000);
		for (int i = 1; i <= 3; i++)
			assert_true(proc_get_u32(&c.sh->serving[i]));
	}
	print_leases(&c, "ZooKeeper down 1.5 s");
	for (int i = 1; i <= 3; i++) {
		assert_int_equal(c.sh->drops[i], 0);
		assert_int_equal(c.sh->cfg[i], id0);
		assert_int_equal(proc_get_u32(&c.sh->zk_up[i]), 0);
	}
	uint64_t t0 = now_ns();
	assert_int_equal(zk_server_restart(&srv, 30000), 0);
	for (int i = 1; i <= 3; i++)
		assert_int_equal(proc_wait_u32(&c.sh->zk_up[i], 1, 10000), 0);
	printf("# ZooKeeper down 1.5 s: no lease lost, no configuration change; members "
	       "reconnected %.0f ms after the restart began\n",
	       (now_ns() - t0) / 1e6);
	c.z = zk_client();
	/* And configuration changes work again. */
	int cm = cm_of(&c);
	int victim = cm % 3 + 1;
	t0 = now_ns();
	proc_kill(c.pid[victim]);
	c.pid[victim] = 0;
	uint64_t d = wait_removed(&c, (uint32_t)victim, t0, 5000, NULL);
	assert_true(d > 0);
	printf("# after the restart, a killed member was removed in %.1f ms\n", d / 1e6);
	cluster_down(&c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_config_text),
	    cmocka_unit_test_teardown(test_bootstrap_and_reelection, proc_teardown),
	    cmocka_unit_test(test_new_generation),
	    cmocka_unit_test(test_conditional_races),
	    cmocka_unit_test_teardown(test_kill_member_detection, proc_teardown),
	    cmocka_unit_test_teardown(test_kill_cm_takeover, proc_teardown),
	    cmocka_unit_test_teardown(test_busy_member_keeps_lease, proc_teardown),
	    cmocka_unit_test_teardown(test_partitioned_member, proc_teardown),
	    cmocka_unit_test_teardown(test_zk_restart, proc_teardown),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
