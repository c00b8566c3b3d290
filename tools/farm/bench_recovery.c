/*
 * bench_recovery.c - `farm bench recovery`: how long a cluster takes to get
 * its throughput back after a kill -9 (FaRM SOSP'15 section 6.5's curve).
 *
 * Every run is a fresh local cluster with ZooKeeper membership (`farm
 * cluster up --zk`, run as a child of this process, so the cluster comes up
 * and goes down exactly as a user's does): load the bank (or TATP), start
 * it on every node, let it run --warmup-ms, kill -9 the victim (a primary
 * that is not the CM by default; the CM, or a node by id), keep going for
 * --after-ms, then fetch every survivor's commits per CLOCK_MONOTONIC
 * millisecond (farmd's `bench tx timeline`) and add them up by absolute
 * millisecond. A fresh cluster per run, because a killed node cannot rejoin
 * a running cluster yet (farmd refuses a member added to a running
 * configuration until re-replication exists): each run starts from the
 * same state, and one run's stuck locks cannot leak into the next.
 *
 * What is computed from the merged curve (pure functions below, kill at
 * the millisecond bucket k0, times relative to the kill instant):
 *   before      median of the 1-ms buckets over the 500 ms before the kill
 *               (the survivors' own throughput: the victim's commits stop
 *               with it, so "as much as before" means as much as these
 *               nodes did before); the mean when the median is 0 (most
 *               milliseconds without a commit: a loaded machine);
 *   moving avg  the trailing --window-ms (default 5) mean ending at each
 *               bucket; "below" means below 90% of `before`;
 *   baseline    the longest stretch of "below" in the 500 ms before the
 *   dip         kill: how long this machine stalls with nothing wrong (3
 *               busy nodes on 2 cores are descheduled in turns), the
 *               resolution of everything after;
 *   back        the end of the first stretch of "below" after the kill that
 *               lasts longer than the baseline dip: the first moment the
 *               moving average is >= 90% of before again (0 when no such
 *               stretch exists; none when it lasts to the end);
 *   stable      the end of the last such stretch within --after-ms: from
 *               then on the curve never dips longer than it did before the
 *               kill (stuck locks show here: throughput that comes back in
 *               bursts between 200 ms waits for a lock nobody will free);
 *   adopted     when each survivor moved to the configuration without the
 *               victim (lease expiry, the CM's ZooKeeper write, the NOTIFY,
 *               adoption between two slices of transactions).
 * Over the runs: median, min and max of `back`; a run that never got back
 * counts as infinitely long, so the median says "none" when most did not.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

#define CALL_TIMEOUT_MS	 10000
#define LOAD_TIMEOUT_MS	 600000
#define CHILD_TIMEOUT_MS 120000 /* `farm cluster up` / `down` */
#define BEFORE_MS	 500
#define MAX_RUNS	 1000
#define TIMELINE_MS	 8192 /* farmd's ring: FARM_WL_TL_MS in src/farm/workload.h */

static const char usage[] =
    "usage: farm bench recovery [--runs N] [--victim primary|cm|ID] [--lease-ms MS]\n"
    "                           [--workload bank|tatp] [--nodes N] [--replicas K]\n"
    "                           [--accounts N] [--subscribers N] [--warmup-ms MS]\n"
    "                           [--after-ms MS] [--window-ms MS] [--curve FROM:TO]\n"
    "                           [--step MS] [--all-curves] [--png FILE] [--seed N]\n"
    "                           [--region-size S] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Measure how fast throughput comes back after a kill -9. Each run starts a\n"
    "fresh local cluster with ZooKeeper (farm cluster up --zk, shm NIC; default\n"
    "3 nodes, 3 replicas, cluster name 'recovery'), runs the workload on every\n"
    "node, kills the victim with SIGKILL after --warmup-ms (default 1000), keeps\n"
    "the survivors running --after-ms (default 1000), merges their committed\n"
    "transactions per millisecond by absolute time and stops the cluster.\n"
    "\n"
    "  --victim primary  a node that is primary of some regions and not the CM\n"
    "                    (default; the one leading the most regions)\n"
    "  --victim cm       the configuration manager\n"
    "  --victim ID       that node\n"
    "  --lease-ms MS     farmd's lease (default: farmd's, 100 ms); the time to\n"
    "                    recover includes it\n"
    "  --window-ms MS    moving window for 'back at >= 90%' (default 5)\n"
    "  --curve FROM:TO   the curve printed, ms around the kill (default -50:300),\n"
    "                    one line per --step ms (default 5) of the median run\n"
    "                    (every run with --all-curves)\n"
    "  --png FILE        plot every run's curve with gnuplot (when installed)\n"
    "\n"
    "Before = median committed tx per 1-ms bucket over the 500 ms before the\n"
    "kill (survivors only; the mean when the median is 0). Back = the first moment after the kill "
    "at which the\n"
    "--window-ms moving average is >= 90% of before again, after a dip longer\n"
    "than any the same curve shows in those 500 ms. Stable = from when on no\n"
    "such dip occurs until --after-ms. Reported: per run, then the median, min\n"
    "and max of back over the runs. Exit: 0 measured, 1 failed, 2 bad arguments.\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Sleep until `until` (CLOCK_MONOTONIC ns) or a signal. */
static void sleep_until(uint64_t until)
{
	struct timespec ts = {.tv_sec = (time_t)(until / 1000000000ull),
			      .tv_nsec = (long)(until % 1000000000ull)};

	while (!interrupted && clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
}

/* ---- the analysis: pure functions over one merged curve ----------------- */

struct analysis {
	double before_median, before_mean;
	double before; /* the reference: the median, or the mean when that is 0 */
	bool before_is_mean;
	long baseline_dip_ms; /* longest "below" stretch before the kill */
	long dip_start_ms;    /* first long dip after the kill: its start, or -1 */
	double back_ms;	      /* -1: never back within the curve */
	double stable_ms;     /* -1: a long dip runs to the end */
	long long_dips;	      /* how many long dips after the kill */
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;

	return x < y ? -1 : x > y;
}

static int cmp_dbl_inf(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	/* negative = never: after everything */
	if (x < 0)
		x = INFINITY;
	if (y < 0)
		y = INFINITY;
	return x < y ? -1 : x > y;
}

/* c[0..n): commits per ms; bucket k0 holds the kill, which happened
 * kill_off_ms into it (0..1). c[k0 - BEFORE_MS .. k0) must exist. */
static void analyse(const uint32_t *c, long n, long k0, double kill_off_ms, long window,
		    struct analysis *a)
{
	uint32_t tmp[BEFORE_MS];
	double sum = 0, thr, msum = 0;
	long run = 0;

	memset(a, 0, sizeof(*a));
	for (long i = 0; i < BEFORE_MS; i++) {
		tmp[i] = c[k0 - BEFORE_MS + i];
		sum += tmp[i];
	}
	qsort(tmp, BEFORE_MS, sizeof(tmp[0]), cmp_u32);
	a->before_median = (tmp[BEFORE_MS / 2 - 1] + tmp[BEFORE_MS / 2]) / 2.0;
	a->before_mean = sum / BEFORE_MS;
	/* More than half the milliseconds without a commit (a loaded machine,
	 * or a slow workload): the median says nothing, the mean still does. */
	a->before_is_mean = a->before_median < 1;
	a->before = a->before_is_mean ? a->before_mean : a->before_median;
	thr = 0.9 * a->before;

	/* Trailing moving average ending at bucket m, from k0 - BEFORE_MS on. */
	long first = k0 - BEFORE_MS;
	bool in_long = false;
	a->dip_start_ms = -1;
	a->back_ms = 0;
	a->stable_ms = 0;
	for (long m = first; m < n; m++) {
		msum += c[m];
		if (m - first >= window)
			msum -= c[m - window];
		if (m - first < window - 1)
			continue; /* the window is not full yet */
		bool below = msum / (double)window < thr;
		if (m < k0) {
			run = below ? run + 1 : 0;
			if (run > a->baseline_dip_ms)
				a->baseline_dip_ms = run;
			continue;
		}
		if (m == k0)
			run = 0; /* a dip in progress at the kill counts from the kill */
		if (below) {
			run++;
			if (run > a->baseline_dip_ms && !in_long) {
				in_long = true;
				a->long_dips++;
				if (a->dip_start_ms < 0)
					a->dip_start_ms = m - run + 1 - k0;
			}
			continue;
		}
		if (in_long) {
			/* Back: the end of bucket m, relative to the kill instant. */
			double t = (double)(m + 1 - k0) - kill_off_ms;
			if (a->long_dips == 1)
				a->back_ms = t;
			a->stable_ms = t;
		}
		in_long = false;
		run = 0;
	}
	if (in_long) {
		if (a->long_dips == 1)
			a->back_ms = -1;
		a->stable_ms = -1;
	}
}

/* ---- one run ------------------------------------------------------------- */

struct params {
	int runs, nodes, replicas;
	const char *victim; /* "primary", "cm" or an id */
	const char *lease_ms, *region_size;
	bool bank;
	uint64_t accounts, subscribers, seed;
	long warmup_ms, after_ms, window, curve_from, curve_to, step;
	bool all_curves;
	const char *png;
};

struct run {
	bool ok;
	char why[1024]; /* !ok: what went wrong */
	uint32_t victim, cm, victim_regions;
	int64_t kill_ms; /* absolute ms of the kill's bucket */
	double kill_off_ms;
	int64_t from_ms; /* absolute ms of counts[0] */
	uint32_t *counts;
	long n, k0;
	struct analysis a;
	double adopt_first_ms, adopt_last_ms; /* -1: not adopted */
	uint64_t new_config;
	double detect_ms; /* the CM's lease expiry -> configuration written, -1 unknown */
	uint64_t committed, aborted, errors, violations;
	uint64_t ab_read, ab_locked, ab_failure; /* aborts by reason */
	uint32_t gave_up;			 /* survivors whose run had stopped by itself */
	char last_error[128];			 /* the errors' last, when there were any */
	uint32_t survivors[FARM_MAX_MEMBERS], nsurv;
};

/* Run `farm ARGS` (this executable) with stdout and stderr to `log`. */
static int run_self(char *const *args, const char *log, int timeout_ms)
{
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	uint64_t deadline = now_ns() + (uint64_t)timeout_ms * 1000000ull;
	int status;
	pid_t pid;

	if (len <= 0)
		return -errno;
	self[len] = '\0';
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
		if (fd >= 0) {
			dup2(fd, STDOUT_FILENO);
			dup2(fd, STDERR_FILENO);
		}
		if (nul >= 0)
			dup2(nul, STDIN_FILENO);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execv(self, args);
		_exit(127);
	}
	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid)
			break;
		if (r < 0 && errno != EINTR)
			return -errno;
		if (now_ns() > deadline) {
			kill(pid, SIGTERM); /* `cluster up` stops what it started */
			waitpid(pid, &status, 0);
			return -ETIMEDOUT;
		}
		usleep(20000);
	}
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static int cluster_up(const struct cli *c, const struct params *p, const char *log)
{
	char nodes[16], replicas[16];
	char *args[24];
	int k = 0;

	snprintf(nodes, sizeof(nodes), "%d", p->nodes);
	snprintf(replicas, sizeof(replicas), "%d", p->replicas);
	args[k++] = "farm";
	args[k++] = "cluster";
	args[k++] = "up";
	args[k++] = "-n";
	args[k++] = nodes;
	args[k++] = "--zk";
	args[k++] = "--replicas";
	args[k++] = replicas;
	args[k++] = "--region-size";
	args[k++] = (char *)p->region_size;
	args[k++] = "--dir";
	args[k++] = (char *)c->run_dir;
	args[k++] = "--name";
	args[k++] = (char *)c->name;
	if (p->lease_ms) {
		args[k++] = "--lease-ms";
		args[k++] = (char *)p->lease_ms;
	}
	args[k] = NULL;
	return run_self(args, log, CHILD_TIMEOUT_MS);
}

static int cluster_down(const struct cli *c, const char *log)
{
	char *args[] = {"farm",	 "cluster",	     "down", "--timeout", "3000",
			"--dir", (char *)c->run_dir, NULL};

	return run_self(args, log, CHILD_TIMEOUT_MS);
}

static int query(const struct cli *c, uint32_t id, const char *line, int timeout_ms,
		 struct json **j, struct run *r)
{
	char err[512];
	int rc = admin_query(c->run_dir, id, line, timeout_ms, NULL, j, err, sizeof(err));

	if (rc == 0 && !json_true(*j, "ok")) {
		snprintf(err, sizeof(err), "node %u: %s: %s", id, line,
			 json_str(*j, "error") ? json_str(*j, "error") : "failed");
		rc = -EIO;
	}
	if (rc < 0) {
		json_free(*j);
		*j = NULL;
		snprintf(r->why, sizeof(r->why), "%s", err);
	}
	return rc;
}

/* The victim by --victim, from node 1's status (CM and region map). */
static int pick_victim(const struct cli *c, const struct params *p, struct run *r)
{
	struct json *st = NULL;
	uint32_t lead[FARM_MAX_MEMBERS + 1] = {0};

	if (query(c, 1, "status", CALL_TIMEOUT_MS, &st, r) < 0)
		return -1;
	r->cm = (uint32_t)json_u64(st, "cm");
	const struct json *map = json_get(st, "map");
	for (size_t i = 0; map && map->type == JSON_ARRAY && i < map->n; i++) {
		uint64_t prim = json_u64(map->kids[i], "primary");
		if (prim >= 1 && prim <= FARM_MAX_MEMBERS)
			lead[prim]++;
	}
	json_free(st);
	if (strcmp(p->victim, "cm") == 0) {
		r->victim = r->cm;
	} else if (strcmp(p->victim, "primary") == 0) {
		r->victim = 0;
		for (uint32_t id = 1; id <= (uint32_t)p->nodes; id++)
			if (id != r->cm && lead[id] > (r->victim ? lead[r->victim] : 0))
				r->victim = id;
	} else {
		r->victim = (uint32_t)atoi(p->victim);
	}
	if (r->victim < 1 || r->victim > (uint32_t)p->nodes) {
		snprintf(r->why, sizeof(r->why), "no node fits --victim %s (CM %u)", p->victim,
			 r->cm);
		return -1;
	}
	r->victim_regions = lead[r->victim];
	return 0;
}

static void stop_all(const struct cli *c, const struct params *p, uint32_t skip)
{
	for (uint32_t id = 1; id <= (uint32_t)p->nodes; id++) {
		char *raw = NULL;
		if (id != skip && admin_call(c->run_dir, id, "bench tx stop", 3000, &raw) == 0)
			free(raw);
	}
}

/* Add one survivor's timeline reply into r->counts. */
static int merge_timeline(struct run *r, const struct json *j, uint32_t id)
{
	const struct json *cnt = json_get(j, "counts"), *cfgs = json_get(j, "configs");
	int64_t from = (int64_t)json_u64(j, "from_ms");

	if (!cnt || cnt->type != JSON_ARRAY) {
		snprintf(r->why, sizeof(r->why), "node %u sent no timeline", id);
		return -1;
	}
	/* Buckets the node does not hold (its run began later) would read as
	 * zero throughput before the kill: refuse rather than guess. */
	if (from > r->from_ms) {
		snprintf(r->why, sizeof(r->why),
			 "node %u's timeline starts %lld ms after the window does (--warmup-ms "
			 "too short for the machine?)",
			 id, (long long)(from - r->from_ms));
		return -1;
	}
	for (size_t i = 0; i < cnt->n; i++) {
		int64_t k = from + (int64_t)i - r->from_ms;
		if (k >= 0 && k < r->n)
			r->counts[k] += (uint32_t)cnt->kids[i]->u64;
	}
	/* The first configuration after the one the run started in. */
	if (cfgs && cfgs->type == JSON_ARRAY && cfgs->n >= 2 && cfgs->kids[1]->type == JSON_ARRAY &&
	    cfgs->kids[1]->n == 2) {
		uint64_t ns = cfgs->kids[1]->kids[1]->u64;
		double t = ((double)ns / 1e6) - (double)r->kill_ms - r->kill_off_ms;
		if (r->adopt_first_ms < 0 || t < r->adopt_first_ms)
			r->adopt_first_ms = t;
		if (t > r->adopt_last_ms)
			r->adopt_last_ms = t;
		r->new_config = cfgs->kids[1]->kids[0]->u64;
	}
	if (!json_true(j, "running"))
		r->gave_up++; /* its curve ends early: said in the output */
	if (json_u64(j, "cm") == id && json_u64(j, "configs_published") > 0 &&
	    json_u64(j, "last_detect_ns") > 0)
		r->detect_ms = (double)json_u64(j, "last_detect_ns") / 1e6;
	return 0;
}

/* Collect node logs of run `k` as node-ID.runK.log (the next `up` truncates). */
static void keep_logs(const struct cli *c, int k, int nodes)
{
	for (int id = 1; id <= nodes; id++) {
		char from[PATH_MAX], to[PATH_MAX + 32];
		if (farm_path_log(from, sizeof(from), c->run_dir, (uint32_t)id) < 0)
			continue;
		snprintf(to, sizeof(to), "%s/node-%d.run%d.log", c->run_dir, id, k);
		rename(from, to);
	}
}

static int one_run(const struct cli *c, const struct params *p, int k, struct run *r)
{
	char log[PATH_MAX + 32], line[256], rootstr[FARM_ADDR_STRLEN];
	struct json *j = NULL;
	farm_addr_t root;
	uint64_t seed = p->seed * 1000003u + (uint64_t)k;
	int rc;

	memset(r, 0, sizeof(*r));
	r->adopt_first_ms = r->adopt_last_ms = r->detect_ms = -1;
	snprintf(log, sizeof(log), "%s/bench-recovery.log", c->run_dir);
	rc = cluster_up(c, p, log);
	if (rc != 0) {
		snprintf(r->why, sizeof(r->why), "farm cluster up failed (%s): see %.600s",
			 rc < 0 ? strerror(-rc) : "exit status", log);
		cluster_down(c, log);
		return -1;
	}
	if (pick_victim(c, p, r) < 0)
		goto out;
	if (p->bank)
		snprintf(line, sizeof(line), "bench tx load bank %llu 1000000",
			 (unsigned long long)p->accounts);
	else
		snprintf(line, sizeof(line), "bench tx load tatp %llu %llu",
			 (unsigned long long)p->subscribers, (unsigned long long)seed);
	if (query(c, 1, line, LOAD_TIMEOUT_MS, &j, r) < 0)
		goto out;
	if (farm_addr_parse(json_str(j, "root"), &root) < 0) {
		snprintf(r->why, sizeof(r->why), "node 1 sent no root address");
		goto out;
	}
	json_free(j);
	j = NULL;
	farm_addr_fmt(root, rootstr);

	/* Long enough for warm-up, the window after the kill and the fetch;
	 * the survivors are stopped once their timelines are in. */
	long secs = (p->warmup_ms + p->after_ms) / 1000 + 30;
	for (uint32_t id = 1; id <= (uint32_t)p->nodes; id++) {
		uint64_t s = seed * 1000003u + id;
		if (p->bank)
			snprintf(line, sizeof(line), "bench tx start bank %s %ld %llu 100 1",
				 rootstr, secs, (unsigned long long)s);
		else
			snprintf(line, sizeof(line), "bench tx start tatp %s %ld %llu", rootstr,
				 secs, (unsigned long long)s);
		if (query(c, id, line, CALL_TIMEOUT_MS, &j, r) < 0) {
			stop_all(c, p, 0);
			goto out;
		}
		json_free(j);
		j = NULL;
	}
	uint64_t t_start = now_ns();

	sleep_until(t_start + (uint64_t)p->warmup_ms * 1000000ull);
	pid_t pid = node_pid(c, r->victim);
	if (interrupted || pid <= 0) {
		snprintf(r->why, sizeof(r->why),
			 interrupted ? "interrupted" : "the victim, node %u, is not running",
			 r->victim);
		stop_all(c, p, 0);
		goto out;
	}
	/* The clock right before the signal: the curve's zero. */
	uint64_t kill_ns = now_ns();
	if (kill(pid, SIGKILL) < 0) {
		snprintf(r->why, sizeof(r->why), "kill -9 %d: %s", (int)pid, strerror(errno));
		stop_all(c, p, 0);
		goto out;
	}
	r->kill_ms = (int64_t)(kill_ns / 1000000u);
	r->kill_off_ms = (double)(kill_ns % 1000000u) / 1e6;
	sleep_until(kill_ns + (uint64_t)(p->after_ms + 20) * 1000000ull);
	if (interrupted) {
		snprintf(r->why, sizeof(r->why), "interrupted");
		stop_all(c, p, r->victim);
		goto out;
	}

	/* Window: the before period and a full moving window ahead of it. */
	r->from_ms = r->kill_ms - BEFORE_MS - p->window;
	r->n = (long)(r->kill_ms + p->after_ms - r->from_ms + 1);
	r->k0 = (long)(r->kill_ms - r->from_ms);
	r->counts = calloc((size_t)r->n, sizeof(*r->counts));
	if (!r->counts) {
		snprintf(r->why, sizeof(r->why), "out of memory");
		stop_all(c, p, r->victim);
		goto out;
	}
	snprintf(line, sizeof(line), "bench tx timeline %lld %lld", (long long)r->from_ms,
		 (long long)(r->kill_ms + p->after_ms));
	for (uint32_t id = 1; id <= (uint32_t)p->nodes; id++) {
		if (id == r->victim)
			continue;
		/* A survivor that stopped (removed from the configuration, a
		 * false lease expiry) has no timeline left: the run says so. */
		if (query(c, id, line, CALL_TIMEOUT_MS, &j, r) < 0 ||
		    merge_timeline(r, j, id) < 0) {
			stop_all(c, p, r->victim);
			goto out;
		}
		json_free(j);
		j = NULL;
		r->survivors[r->nsurv++] = id;
	}
	/* Stopped runs report their aborts by reason too. */
	stop_all(c, p, r->victim);
	for (uint32_t i = 0; i < r->nsurv; i++) {
		if (query(c, r->survivors[i], "bench tx status", CALL_TIMEOUT_MS, &j, r) < 0)
			goto out;
		const struct json *why = json_get(j, "reasons");
		r->committed += json_u64(j, "committed");
		r->aborted += json_u64(j, "aborted");
		r->errors += json_u64(j, "errors");
		r->violations += json_u64(j, "violations");
		r->ab_read += json_u64(why, "read");
		r->ab_locked += json_u64(why, "locked");
		r->ab_failure += json_u64(why, "failure");
		if (json_str(j, "last_error"))
			snprintf(r->last_error, sizeof(r->last_error), "%s",
				 json_str(j, "last_error"));
		json_free(j);
		j = NULL;
	}
	analyse(r->counts, r->n, r->k0, r->kill_off_ms, p->window, &r->a);
	r->ok = true;
out:
	json_free(j);
	cluster_down(c, log);
	keep_logs(c, k, p->nodes);
	return r->ok ? 0 : -1;
}

/* ---- output -------------------------------------------------------------- */

static void fmt_ms(char *out, size_t len, double ms)
{
	if (ms < 0)
		snprintf(out, len, "none");
	else
		snprintf(out, len, "%.1f", ms);
}

static void json_ms(double ms)
{
	if (ms < 0)
		printf("null");
	else
		printf("%.3f", ms);
}

/* Median, min, max of v[0..n) where negative means "never". */
static void stats(double *v, int n, double *med, double *min, double *max)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_dbl_inf);
	*min = v[0];
	*max = v[n - 1];
	if (n % 2)
		*med = v[n / 2];
	else if (v[n / 2 - 1] < 0 || v[n / 2] < 0)
		*med = -1;
	else
		*med = (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* The curve of one run: one line per `step` ms, commits per ms averaged
 * over the step, a bar scaled to `before`, events marked. */
static void print_curve(const struct params *p, const struct run *r, int k)
{
	double before = r->a.before > 0 ? r->a.before : 1;
	double scale = 40.0 / (1.5 * before);

	printf("curve run %d: committed tx per ms, survivors %u", k,
	       r->nsurv ? r->survivors[0] : 0);
	for (uint32_t i = 1; i < r->nsurv; i++)
		printf("+%u", r->survivors[i]);
	printf(", mean over %ld ms; '|' = 90%% of before (%.1f/ms, the %s)\n", p->step, r->a.before,
	       r->a.before_is_mean ? "mean" : "median");
	for (long t = p->curve_from; t < p->curve_to; t += p->step) {
		double sum = 0;
		long cnt = 0;
		for (long m = t; m < t + p->step; m++) {
			long idx = r->k0 + m;
			if (idx >= 0 && idx < r->n) {
				sum += r->counts[idx];
				cnt++;
			}
		}
		double v = cnt ? sum / (double)cnt : 0;
		char bar[64];
		int len = (int)(v * scale + 0.5), mark = (int)(0.9 * before * scale + 0.5);
		if (len > 60)
			len = 60;
		for (int i = 0; i < 62; i++)
			bar[i] = i < len ? '#' : i == mark ? '|' : ' ';
		int end = len > mark ? len : mark + 1;
		bar[end < 62 ? end : 62] = '\0';
		printf("%+6ld ms %7.1f %s", t, v, bar);
		if (t <= 0 && 0 < t + p->step)
			printf("  <- kill -9 node %u", r->victim);
		if (r->adopt_first_ms >= 0 && t <= r->adopt_first_ms &&
		    r->adopt_first_ms < t + p->step)
			printf("  <- configuration %llu adopted",
			       (unsigned long long)r->new_config);
		if (r->a.back_ms > 0 && t <= r->a.back_ms && r->a.back_ms < t + p->step)
			printf("  <- back >= 90%%");
		printf("\n");
	}
}

static void print_plain_run(const struct run *r, int k)
{
	char back[32], stable[32], a1[32], a2[32], det[32];

	if (!r->ok) {
		printf("run %d: FAILED: %s\n", k, r->why);
		return;
	}
	fmt_ms(back, sizeof(back), r->a.back_ms);
	fmt_ms(stable, sizeof(stable), r->a.stable_ms);
	fmt_ms(a1, sizeof(a1), r->adopt_first_ms);
	fmt_ms(a2, sizeof(a2), r->adopt_last_ms);
	fmt_ms(det, sizeof(det), r->detect_ms);
	printf("run %d: victim=%u%s primary_of=%u before=%s before_median=%.1f before_mean=%.1f "
	       "baseline_dip_ms=%ld dip_start_ms=%ld back_ms=%s stable_ms=%s long_dips=%ld "
	       "adopted_ms=%s..%s expiry_to_config_ms=%s committed=%llu aborted=%llu "
	       "(read=%llu locked=%llu failure=%llu) errors=%llu violations=%llu gave_up=%u%s%s\n",
	       k, r->victim, r->victim == r->cm ? "(cm)" : "", r->victim_regions,
	       r->a.before_is_mean ? "mean" : "median", r->a.before_median, r->a.before_mean,
	       r->a.baseline_dip_ms, r->a.dip_start_ms, back, stable, r->a.long_dips, a1, a2, det,
	       (unsigned long long)r->committed, (unsigned long long)r->aborted,
	       (unsigned long long)r->ab_read, (unsigned long long)r->ab_locked,
	       (unsigned long long)r->ab_failure, (unsigned long long)r->errors,
	       (unsigned long long)r->violations, r->gave_up,
	       r->last_error[0] ? " last_error=" : "", r->last_error);
}

static void print_json_run(const struct params *p, const struct run *r, int k)
{
	printf("{\"run\":%d,\"ok\":%s", k, r->ok ? "true" : "false");
	if (!r->ok) {
		printf(",\"error\":");
		json_print_str(r->why);
		printf("}");
		return;
	}
	printf(",\"victim\":%u,\"victim_was_cm\":%s,\"cm\":%u,\"victim_primary_of\":%u,"
	       "\"survivors\":[",
	       r->victim, r->victim == r->cm ? "true" : "false", r->cm, r->victim_regions);
	for (uint32_t i = 0; i < r->nsurv; i++)
		printf("%s%u", i ? "," : "", r->survivors[i]);
	printf("],\"kill_ms\":%lld,\"kill_offset_ms\":%.3f,\"before\":%.2f,\"before_is\":\"%s\","
	       "\"before_median\":%.1f,"
	       "\"before_mean\":%.2f,\"baseline_dip_ms\":%ld,\"dip_start_ms\":%ld,\"back_ms\":",
	       (long long)r->kill_ms, r->kill_off_ms, r->a.before,
	       r->a.before_is_mean ? "mean" : "median", r->a.before_median, r->a.before_mean,
	       r->a.baseline_dip_ms, r->a.dip_start_ms);
	json_ms(r->a.back_ms);
	printf(",\"stable_ms\":");
	json_ms(r->a.stable_ms);
	printf(",\"long_dips\":%ld,\"new_config\":%llu,\"adopted_first_ms\":", r->a.long_dips,
	       (unsigned long long)r->new_config);
	json_ms(r->adopt_first_ms);
	printf(",\"adopted_last_ms\":");
	json_ms(r->adopt_last_ms);
	printf(",\"expiry_to_config_ms\":");
	json_ms(r->detect_ms);
	printf(",\"committed\":%llu,\"aborted\":%llu,\"aborted_read\":%llu,"
	       "\"aborted_locked\":%llu,\"aborted_failure\":%llu,\"errors\":%llu,"
	       "\"violations\":%llu,\"gave_up\":%u,\"last_error\":",
	       (unsigned long long)r->committed, (unsigned long long)r->aborted,
	       (unsigned long long)r->ab_read, (unsigned long long)r->ab_locked,
	       (unsigned long long)r->ab_failure, (unsigned long long)r->errors,
	       (unsigned long long)r->violations, r->gave_up);
	if (r->last_error[0])
		json_print_str(r->last_error);
	else
		printf("null");
	/* The whole merged curve, from BEFORE_MS + window before the kill. */
	printf(",\"curve_from_ms\":%ld,\"curve\":[", -r->k0);
	for (long i = 0; i < r->n; i++)
		printf("%s%u", i ? "," : "", r->counts[i]);
	printf("]}");
	(void)p;
}

/* gnuplot: every run's moving average as % of its before, the median run
 * bold. 0 written, else why not. */
static int write_png(const struct params *p, const struct run *runs, int nruns, int med, char *err,
		     size_t errlen)
{
	if (access("/usr/bin/gnuplot", X_OK) != 0 && system("command -v gnuplot >/dev/null 2>&1")) {
		snprintf(err, errlen, "gnuplot is not installed (apt-get install gnuplot-nox)");
		return -1;
	}
	char cmd[PATH_MAX + 64];
	snprintf(cmd, sizeof(cmd), "gnuplot 2>&1");
	FILE *g = popen(cmd, "w");
	if (!g) {
		snprintf(err, errlen, "cannot run gnuplot: %s", strerror(errno));
		return -1;
	}
	fprintf(g, "set terminal pngcairo size 1000,560 noenhanced\n"
		   "set output '");
	for (const char *s = p->png; *s; s++) {
		if (*s == '\'')
			fputc('\'', g); /* gnuplot doubles a quote inside '...' */
		fputc(*s, g);
	}
	fprintf(g, "'\n");
	fprintf(g,
		"set title 'farm bench recovery: kill -9 at 0 (%d runs, %ld ms moving average)'\n"
		"set xlabel 'ms after kill -9'\nset ylabel 'committed tx/ms, %% of before (clipped "
		"at 300)'\n"
		"set xrange [%ld:%ld]\nset yrange [0:300]\nset grid\nset key top right\n"
		"set arrow from 0, graph 0 to 0, graph 1 nohead dt 2 lc rgb 'red'\n",
		nruns, p->window, p->curve_from, p->curve_to);
	fprintf(g, "$d << EOD\n");
	for (long t = p->curve_from; t < p->curve_to; t++) {
		fprintf(g, "%ld", t);
		for (int k = 0; k < nruns; k++) {
			const struct run *r = &runs[k];
			double s = 0;
			long cnt = 0;
			for (long m = t - p->window + 1; m <= t && r->ok; m++) {
				long idx = r->k0 + m;
				if (idx >= 0 && idx < r->n) {
					s += r->counts[idx];
					cnt++;
				}
			}
			if (r->ok && cnt && r->a.before > 0)
				fprintf(g, " %.2f", 100.0 * s / (double)cnt / r->a.before);
			else
				fprintf(g, " NaN");
		}
		fprintf(g, "\n");
	}
	fprintf(g, "EOD\nplot 90 title '90%%' dt 3 lc rgb 'black'");
	for (int k = 0; k < nruns; k++)
		if (runs[k].ok)
			fprintf(g, ", $d using 1:%d with lines %s title '%s%d'", k + 2,
				k == med ? "lw 2.5 lc rgb 'blue'" : "lw 0.7",
				k == med ? "median run " : "run ", k + 1);
	fprintf(g, "\n");
	int rc = pclose(g);
	if (rc != 0) {
		snprintf(err, errlen, "gnuplot failed (status %d)", rc);
		return -1;
	}
	return 0;
}

/* ---- the command ----------------------------------------------------------- */

static long parse_ms_pair(const struct cli *c, const char *s, long *to)
{
	char *end;
	long from = strtol(s, &end, 10);

	if (end == s || *end != ':')
		usage_fail(c, "--curve must be FROM:TO in ms, e.g. -50:300, got '%s'", s);
	*to = strtol(end + 1, &end, 10);
	if (*end || *to <= from)
		usage_fail(c, "--curve must be FROM:TO with FROM < TO, got '%s'", s);
	return from;
}

int cmd_bench_recovery(int argc, char **argv)
{
	struct cli c = {.cmd = "bench recovery", .usage = usage};
	const char *runs_s = NULL, *victim = NULL, *lease = NULL, *wl = NULL, *nodes_s = NULL,
		   *repl_s = NULL, *acc_s = NULL, *subs_s = NULL, *warm_s = NULL, *after_s = NULL,
		   *win_s = NULL, *curve_s = NULL, *step_s = NULL, *png = NULL, *seed_s = NULL,
		   *rs_s = NULL;
	bool all_curves = false;
	const struct opt opts[] = {
	    {"runs", 0, true, &runs_s, NULL},
	    {"victim", 0, true, &victim, NULL},
	    {"lease-ms", 0, true, &lease, NULL},
	    {"workload", 0, true, &wl, NULL},
	    {"nodes", 'n', true, &nodes_s, NULL},
	    {"replicas", 0, true, &repl_s, NULL},
	    {"accounts", 0, true, &acc_s, NULL},
	    {"subscribers", 0, true, &subs_s, NULL},
	    {"warmup-ms", 0, true, &warm_s, NULL},
	    {"after-ms", 0, true, &after_s, NULL},
	    {"window-ms", 0, true, &win_s, NULL},
	    {"curve", 0, true, &curve_s, NULL},
	    {"step", 0, true, &step_s, NULL},
	    {"png", 0, true, &png, NULL},
	    {"seed", 0, true, &seed_s, NULL},
	    {"region-size", 0, true, &rs_s, NULL},
	    {"all-curves", 0, false, NULL, &all_curves},
	    {NULL, 0, false, NULL, NULL},
	};
	struct params p = {.runs = 10,
			   .nodes = 3,
			   .victim = "primary",
			   .region_size = "1M",
			   .bank = true,
			   .accounts = 1000,
			   .subscribers = 10000,
			   .warmup_ms = 1000,
			   .after_ms = 1000,
			   .window = 5,
			   .curve_from = -50,
			   .curve_to = 300,
			   .step = 5};
	char *pos[1];
	int npos;

	opts_parse(&c, opts, argc, argv, pos, 0, &npos);
	if (runs_s)
		p.runs = (int)parse_num(&c, "--runs", runs_s, 1, MAX_RUNS);
	if (nodes_s)
		p.nodes = (int)parse_num(&c, "--nodes", nodes_s, 2, FARM_MAX_MEMBERS);
	p.replicas = p.nodes < 3 ? p.nodes : 3;
	if (repl_s)
		p.replicas = (int)parse_num(&c, "--replicas", repl_s, 2, p.nodes);
	if (victim) {
		if (strcmp(victim, "cm") && strcmp(victim, "primary"))
			parse_num(&c, "--victim (cm, primary or a node id)", victim, 1, p.nodes);
		p.victim = victim;
	}
	if (lease) {
		parse_num(&c, "--lease-ms", lease, 2, 60000);
		p.lease_ms = lease;
	}
	if (wl && strcmp(wl, "bank") && strcmp(wl, "tatp"))
		usage_fail(&c, "--workload must be bank or tatp, got '%s'", wl);
	p.bank = !wl || strcmp(wl, "bank") == 0;
	if (acc_s && !p.bank)
		usage_fail(&c, "--accounts is for --workload bank");
	if (subs_s && p.bank)
		usage_fail(&c, "--subscribers is for --workload tatp");
	if (acc_s)
		p.accounts = (uint64_t)parse_num(&c, "--accounts", acc_s, 2, 100000000);
	if (subs_s)
		p.subscribers = (uint64_t)parse_num(&c, "--subscribers", subs_s, 1, 100000000);
	if (win_s)
		p.window = parse_num(&c, "--window-ms", win_s, 1, 100);
	if (warm_s)
		p.warmup_ms =
		    parse_num(&c, "--warmup-ms", warm_s, BEFORE_MS + p.window + 100, 60000);
	/* The timeline ring holds 8192 ms; the fetch comes a little after. */
	if (after_s)
		p.after_ms = parse_num(&c, "--after-ms", after_s, 50,
				       (long)TIMELINE_MS - BEFORE_MS - p.window - 1000);
	if (curve_s)
		p.curve_from = parse_ms_pair(&c, curve_s, &p.curve_to);
	else if (p.curve_to > p.after_ms)
		p.curve_to = p.after_ms; /* the default curve, within a short --after-ms */
	if (p.curve_from < -BEFORE_MS || p.curve_to > p.after_ms)
		usage_fail(&c, "--curve must lie within -%d:%ld (the 500 ms before, --after-ms)",
			   BEFORE_MS, p.after_ms);
	if (step_s)
		p.step = parse_num(&c, "--step", step_s, 1, 1000);
	p.all_curves = all_curves;
	p.png = png;
	p.seed = seed_s ? (uint64_t)parse_num(&c, "--seed", seed_s, 0, INT64_MAX)
			: (now_ns() ^ (uint64_t)getpid()) % 1000000000000ull;
	if (rs_s) {
		uint64_t v = parse_size(&c, "--region-size", rs_s);
		if (v < (64u << 10) || v > (1ull << 31) || (v & (v - 1)))
			usage_fail(&c, "--region-size must be a power of two from 64K to 2G");
		p.region_size = rs_s;
	}
	if (!c.dir && !c.name)
		c.name = "recovery";
	if (!c.name)
		c.name = "recovery";
	if (rundir_resolve(&c) < 0)
		usage_fail(&c, "run directory path too long");
	const char *why = zk_local_unavailable();
	if (why)
		return fail(&c, "needs ZooKeeper: %s", why);
	int rc = mkdir_p(c.run_dir, 0700);
	if (rc < 0)
		return fail(&c, "cannot create %s: %s", c.run_dir, strerror(-rc));
	for (uint32_t id = 1; id <= (uint32_t)p.nodes; id++) {
		pid_t other = node_pid(&c, id);
		if (other)
			return fail(&c,
				    "a cluster runs in %s (node %u, pid %d): this benchmark starts "
				    "and stops its own; use another --dir or --name",
				    c.run_dir, id, (int)other);
	}

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);

	struct run *runs = calloc((size_t)p.runs, sizeof(*runs));
	if (!runs)
		return fail(&c, "out of memory");
	double load[3] = {0};
	if (getloadavg(load, 3) < 0)
		load[0] = -1;
	progress(&c,
		 "%d runs: %s on %d nodes (%d replicas, shm, ZooKeeper, lease %s ms), kill -9 of "
		 "%s after %ld ms, %ld ms after; seed %llu; run dir %s; load average %.2f",
		 p.runs, p.bank ? "bank" : "tatp", p.nodes, p.replicas,
		 p.lease_ms ? p.lease_ms : "farmd's default", p.victim, p.warmup_ms, p.after_ms,
		 (unsigned long long)p.seed, c.run_dir, load[0]);
	int nok = 0;
	for (int k = 0; k < p.runs && !interrupted; k++) {
		struct run *r = &runs[k];
		one_run(&c, &p, k + 1, r);
		if (r->ok) {
			char back[32], stable[32], adopt[32];
			nok++;
			fmt_ms(back, sizeof(back), r->a.back_ms);
			fmt_ms(stable, sizeof(stable), r->a.stable_ms);
			fmt_ms(adopt, sizeof(adopt), r->adopt_first_ms);
			progress(&c,
				 "run %d/%d: killed node %u%s, before %.1f tx/ms, configuration "
				 "adopted +%s ms, back >= 90%% at +%s ms, stable from +%s ms",
				 k + 1, p.runs, r->victim, r->victim == r->cm ? " (the CM)" : "",
				 r->a.before, adopt, back, stable);
		} else {
			progress(&c, "run %d/%d failed: %s", k + 1, p.runs, r->why);
		}
	}
	double load_end[3] = {0};
	if (getloadavg(load_end, 3) < 0)
		load_end[0] = -1;
	if (nok == 0) {
		rc =
		    fail(&c, "no run was measured (%s)", interrupted ? "interrupted" : runs[0].why);
		goto out;
	}

	/* Over the measured runs. */
	double back[MAX_RUNS], stable[MAX_RUNS], adopt[MAX_RUNS], before[MAX_RUNS];
	int n = 0, recovered = 0, med_run = -1;
	for (int k = 0; k < p.runs; k++) {
		if (!runs[k].ok)
			continue;
		back[n] = runs[k].a.back_ms;
		stable[n] = runs[k].a.stable_ms;
		adopt[n] = runs[k].adopt_first_ms;
		before[n] = runs[k].a.before;
		recovered += runs[k].a.back_ms >= 0;
		n++;
	}
	double bmed, bmin, bmax, smed, smin, smax, amed, amin, amax, fmed, fmin, fmax;
	stats(back, n, &bmed, &bmin, &bmax);
	stats(stable, n, &smed, &smin, &smax);
	stats(adopt, n, &amed, &amin, &amax);
	stats(before, n, &fmed, &fmin, &fmax);
	/* The run to draw: the one whose `back` is the (lower) median. */
	double want = back[(n - 1) / 2];
	for (int k = 0; k < p.runs && med_run < 0; k++)
		if (runs[k].ok && runs[k].a.back_ms == want)
			med_run = k;

	char png_err[256] = "";
	bool png_ok = false;
	if (p.png)
		png_ok = write_png(&p, runs, p.runs, med_run, png_err, sizeof(png_err)) == 0;
	if (p.png && !png_ok)
		progress(&c, "no PNG: %s", png_err);

	if (c.json) {
		printf(
		    "{\"ok\":true,\"workload\":\"%s\",\"nodes\":%d,\"replicas\":%d,\"nic\":\"shm\","
		    "\"lease_ms\":",
		    p.bank ? "bank" : "tatp", p.nodes, p.replicas);
		if (p.lease_ms)
			printf("%s", p.lease_ms);
		else
			printf("null");
		printf(",\"victim\":");
		json_print_str(p.victim);
		printf(",\"seed\":%llu,\"warmup_ms\":%ld,\"after_ms\":%ld,\"before_ms\":%d,"
		       "\"window_ms\":%ld,\"threshold\":0.9,\"load_average\":[%.2f,%.2f],"
		       "\"runs_requested\":%d,\"runs_measured\":%d,\"recovered\":%d,\"back_ms\":{"
		       "\"median\":",
		       (unsigned long long)p.seed, p.warmup_ms, p.after_ms, BEFORE_MS, p.window,
		       load[0], load_end[0], p.runs, n, recovered);
		json_ms(bmed);
		printf(",\"min\":");
		json_ms(bmin);
		printf(",\"max\":");
		json_ms(bmax);
		printf("},\"stable_ms\":{\"median\":");
		json_ms(smed);
		printf(",\"min\":");
		json_ms(smin);
		printf(",\"max\":");
		json_ms(smax);
		printf("},\"adopted_ms\":{\"median\":");
		json_ms(amed);
		printf(",\"min\":");
		json_ms(amin);
		printf(",\"max\":");
		json_ms(amax);
		printf("},\"before\":{\"median\":%.1f,\"min\":%.1f,\"max\":%.1f}", fmed, fmin,
		       fmax);
		printf(",\"median_run\":%d,\"png\":", med_run + 1);
		if (png_ok)
			json_print_str(p.png);
		else
			printf("null");
		printf(",\"runs\":[");
		for (int k = 0; k < p.runs; k++) {
			if (k)
				printf(",");
			print_json_run(&p, &runs[k], k + 1);
		}
		printf("]}\n");
	} else {
		for (int k = 0; k < p.runs; k++)
			print_plain_run(&runs[k], k + 1);
		for (int k = 0; k < p.runs; k++)
			if (runs[k].ok && (p.all_curves || k == med_run))
				print_curve(&p, &runs[k], k + 1);
		char s1[32], s2[32], s3[32], s4[32], s5[32], s6[32], s7[32], s8[32], s9[32];
		fmt_ms(s1, sizeof(s1), bmed);
		fmt_ms(s2, sizeof(s2), bmin);
		fmt_ms(s3, sizeof(s3), bmax);
		fmt_ms(s4, sizeof(s4), smed);
		fmt_ms(s5, sizeof(s5), smin);
		fmt_ms(s6, sizeof(s6), smax);
		fmt_ms(s7, sizeof(s7), amed);
		fmt_ms(s8, sizeof(s8), amin);
		fmt_ms(s9, sizeof(s9), amax);
		printf("workload=%s nodes=%d replicas=%d lease_ms=%s victim=%s window_ms=%ld "
		       "runs=%d measured=%d recovered=%d back_ms_median=%s back_ms_min=%s "
		       "back_ms_max=%s stable_ms_median=%s stable_ms_min=%s stable_ms_max=%s "
		       "adopted_ms_median=%s adopted_ms_min=%s adopted_ms_max=%s "
		       "before=%.1f load=%.2f,%.2f seed=%llu%s%s\n",
		       p.bank ? "bank" : "tatp", p.nodes, p.replicas,
		       p.lease_ms ? p.lease_ms : "default", p.victim, p.window, p.runs, n,
		       recovered, s1, s2, s3, s4, s5, s6, s7, s8, s9, fmed, load[0], load_end[0],
		       (unsigned long long)p.seed, png_ok ? " png=" : "", png_ok ? p.png : "");
	}
	rc = nok == p.runs ? 0 : 1;
out:
	for (int k = 0; k < p.runs; k++)
		free(runs[k].counts);
	free(runs);
	return rc;
}
