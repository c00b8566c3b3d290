/*
 * bench_tx.c - `farm bench tx`: a transaction workload (TATP or the bank)
 * run by several nodes of a cluster at once, results merged.
 *
 * The work happens inside the nodes (farmd's `bench tx`, see
 * tools/farmd/bench_tx.c): one node lays out the data set (or --root names
 * one laid out before), then every client node starts the same timed run
 * with its own random stream. The CLI asks every node for its counters once
 * a second (the progress line) and, once all are done, merges them: rates
 * add up, latency histograms merge bucket by bucket, so the median and p99
 * are over every transaction of every node. A client is a node's own
 * thread, as in FaRM, where the application runs inside the node; one node
 * drives one transaction at a time, so --clients is how many nodes run.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

#define CALL_TIMEOUT_MS 10000
#define LOAD_TIMEOUT_MS 1800000 /* a large data set on a busy machine */
#define SLACK_MS	60000	/* past --seconds before nodes count as stuck */

static const char usage[] =
    "usage: farm bench tx [--workload tatp|bank] [--clients N] [--seconds S] [--seed N]\n"
    "                     [--subscribers N] [--accounts N] [--max-transfer N] [--audit-pct P]\n"
    "                     [--root ADDR] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Run a transaction workload inside the first N nodes of the cluster (default:\n"
    "all) for S seconds (default 10), each node one client issuing one transaction\n"
    "at a time, and print committed transactions per second, the abort rate and\n"
    "the median and p99 commit latency over every node.\n"
    "\n"
    "  --workload tatp   TATP's mix (80% reads) over --subscribers N (default 10000)\n"
    "  --workload bank   transfers between --accounts N (default 1000) accounts of\n"
    "                    1000000 each, amounts 1..--max-transfer (default 100), plus\n"
    "                    --audit-pct percent read-only audits of every account\n"
    "                    (default 1); at the end the total is audited (must not change)\n"
    "  --root ADDR       reuse a data set an earlier run loaded (its root address)\n"
    "  --seed N          random seed (printed; default from the clock)\n"
    "\n"
    "Progress goes to stderr once a second. Plain output: key=value pairs on one\n"
    "line; --json: one object with the per-node and per-type counts too.\n";

struct node_res {
	uint32_t id;
	struct json *j; /* the last status */
};

struct hist {
	uint64_t *v, *n;
	size_t len, cap;
};

static void hist_add(struct hist *h, const struct json *arr)
{
	for (size_t i = 0; arr && arr->type == JSON_ARRAY && i < arr->n; i++) {
		const struct json *p = arr->kids[i];
		if (p->type != JSON_ARRAY || p->n != 2)
			continue;
		if (h->len == h->cap) {
			size_t cap = h->cap ? h->cap * 2 : 256;
			uint64_t *v = realloc(h->v, cap * sizeof(*v)), *n;
			if (!v)
				return;
			h->v = v;
			n = realloc(h->n, cap * sizeof(*n));
			if (!n)
				return;
			h->n = n;
			h->cap = cap;
		}
		h->v[h->len] = p->kids[0]->u64;
		h->n[h->len++] = p->kids[1]->u64;
	}
}

/* Percentile over merged [value, count] pairs (same values from different
 * nodes are the same bucket). */
static uint64_t hist_pct(const struct hist *h, double p)
{
	uint64_t total = 0, want, seen = 0, best = 0;

	for (size_t i = 0; i < h->len; i++)
		total += h->n[i];
	if (!total)
		return 0;
	want = (uint64_t)(p * (double)total);
	if (want >= total)
		want = total - 1;
	/* Values are few (buckets): a selection by repeated minimum is fine. */
	uint64_t floor = 0;
	bool first = true;
	for (;;) {
		uint64_t v = UINT64_MAX, cnt = 0;
		for (size_t i = 0; i < h->len; i++)
			if ((first || h->v[i] > floor) && h->v[i] < v)
				v = h->v[i];
		if (v == UINT64_MAX)
			return best;
		for (size_t i = 0; i < h->len; i++)
			if (h->v[i] == v)
				cnt += h->n[i];
		best = v;
		seen += cnt;
		if (seen > want)
			return v;
		floor = v;
		first = false;
	}
}

static void hist_free(struct hist *h)
{
	free(h->v);
	free(h->n);
}

static uint64_t sum_u64(struct node_res *r, int n, const char *key)
{
	uint64_t s = 0;

	for (int i = 0; i < n; i++)
		s += json_u64(r[i].j, key);
	return s;
}

static uint64_t sum_sub(struct node_res *r, int n, const char *obj, const char *key)
{
	uint64_t s = 0;

	for (int i = 0; i < n; i++)
		s += json_u64(json_get(r[i].j, obj), key);
	return s;
}

/* Stop whatever we started, on a failure half-way. */
static void stop_all(const struct cli *c, struct node_res *r, int n)
{
	for (int i = 0; i < n; i++) {
		char *raw = NULL;
		if (admin_call(c->run_dir, r[i].id, "bench tx stop", CALL_TIMEOUT_MS, &raw) == 0)
			free(raw);
	}
}

static int query(struct cli *c, uint32_t id, const char *line, int timeout_ms, struct json **j)
{
	char err[512];
	int rc = admin_query(c->run_dir, id, line, timeout_ms, NULL, j, err, sizeof(err));

	if (rc < 0) {
		json_free(*j);
		*j = NULL;
		fail(c, "%s", err);
	}
	return rc;
}

static uint64_t clock_seed(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 30) ^ (uint64_t)getpid()) %
	       1000000000000ull;
}

int cmd_bench_tx(int argc, char **argv)
{
	struct cli c = {.cmd = "bench tx", .usage = usage};
	const char *wl_s = NULL, *clients_s = NULL, *secs_s = NULL, *seed_s = NULL, *subs_s = NULL,
		   *acc_s = NULL, *root_s = NULL, *maxt_s = NULL, *audit_s = NULL;
	const struct opt opts[] = {
	    {"workload", 0, true, &wl_s, NULL},	     {"clients", 0, true, &clients_s, NULL},
	    {"seconds", 0, true, &secs_s, NULL},     {"seed", 0, true, &seed_s, NULL},
	    {"subscribers", 0, true, &subs_s, NULL}, {"accounts", 0, true, &acc_s, NULL},
	    {"root", 0, true, &root_s, NULL},	     {"max-transfer", 0, true, &maxt_s, NULL},
	    {"audit-pct", 0, true, &audit_s, NULL},  {NULL, 0, false, NULL, NULL},
	};
	static struct farm_config cfg;
	struct node_res res[FARM_MAX_MEMBERS] = {{0}};
	char *pos[1], line[256], rootstr[FARM_ADDR_STRLEN];
	struct json *j = NULL;
	uint64_t seed, secs = 10, subs = 10000, accounts = 1000, maxt = 100, audit = 1, root = 0;
	bool bank;
	int npos, rc, clients, started = 0;

	opts_parse(&c, opts, argc, argv, pos, 0, &npos);
	if (wl_s && strcmp(wl_s, "tatp") != 0 && strcmp(wl_s, "bank") != 0)
		usage_fail(&c, "--workload must be tatp or bank, got '%s'", wl_s);
	bank = wl_s && strcmp(wl_s, "bank") == 0;
	if (secs_s)
		secs = (uint64_t)parse_num(&c, "--seconds", secs_s, 1, 86400);
	seed = seed_s ? (uint64_t)parse_num(&c, "--seed", seed_s, 0, INT64_MAX) : clock_seed();
	if (subs_s)
		subs = (uint64_t)parse_num(&c, "--subscribers", subs_s, 1, 100000000);
	if (acc_s)
		accounts = (uint64_t)parse_num(&c, "--accounts", acc_s, 2, 100000000);
	if (maxt_s)
		maxt = (uint64_t)parse_num(&c, "--max-transfer", maxt_s, 1, 1000000000);
	if (audit_s)
		audit = (uint64_t)parse_num(&c, "--audit-pct", audit_s, 0, 100);
	if (root_s)
		root = parse_addr(&c, "--root", root_s);
	if ((subs_s && bank) || ((acc_s || maxt_s || audit_s) && !bank))
		usage_fail(&c, "--subscribers is for tatp; --accounts, --max-transfer and "
			       "--audit-pct are for bank");
	if (rundir_resolve(&c) < 0)
		usage_fail(&c, "run directory path too long");
	if ((rc = cluster_load(&c, &cfg)))
		return rc;
	if (cfg.nmembers == 0)
		return fail(&c, "%s has no members", c.conf_path);
	clients = clients_s ? (int)parse_num(&c, "--clients", clients_s, 1, cfg.nmembers)
			    : (int)cfg.nmembers;

	const char *wl = bank ? "bank" : "tatp";
	progress(&c, "%s on %d of %u nodes, %llu s, seed %llu (--seed %llu replays it)", wl,
		 clients, cfg.nmembers, (unsigned long long)secs, (unsigned long long)seed,
		 (unsigned long long)seed);
	if (!root) {
		if (bank)
			snprintf(line, sizeof(line), "bench tx load bank %llu 1000000",
				 (unsigned long long)accounts);
		else
			snprintf(line, sizeof(line), "bench tx load tatp %llu %llu",
				 (unsigned long long)subs, (unsigned long long)seed);
		progress(&c, "node %u: loading %llu %s...", cfg.members[0].id,
			 (unsigned long long)(bank ? accounts : subs),
			 bank ? "accounts" : "subscribers");
		if (query(&c, cfg.members[0].id, line, LOAD_TIMEOUT_MS, &j) < 0)
			return 1;
		if (farm_addr_parse(json_str(j, "root"), &root) < 0) {
			json_free(j);
			return fail(&c, "node %u sent no root address", cfg.members[0].id);
		}
		progress(&c, "loaded in %.1f s: root %s (--root %s reuses it)",
			 json_num(j, "seconds"), json_str(j, "root"), json_str(j, "root"));
		json_free(j);
	}
	farm_addr_fmt(root, rootstr);

	for (int i = 0; i < clients; i++) {
		res[i].id = cfg.members[i].id;
		uint64_t s = seed * 1000003u + res[i].id; /* a stream per node */
		if (bank)
			snprintf(line, sizeof(line), "bench tx start bank %s %llu %llu %llu %llu",
				 rootstr, (unsigned long long)secs, (unsigned long long)s,
				 (unsigned long long)maxt, (unsigned long long)audit);
		else
			snprintf(line, sizeof(line), "bench tx start tatp %s %llu %llu", rootstr,
				 (unsigned long long)secs, (unsigned long long)s);
		if (query(&c, res[i].id, line, CALL_TIMEOUT_MS, &j) < 0) {
			stop_all(&c, res, started);
			return 1;
		}
		json_free(j);
		started++;
	}

	/* Progress once a second until every node is done. */
	uint64_t waited_ms = 0;
	for (bool running = true; running;) {
		uint64_t committed = 0, aborted = 0;
		double rate = 0, elapsed = 0;
		usleep(1000000);
		waited_ms += 1000;
		running = false;
		for (int i = 0; i < clients; i++) {
			json_free(res[i].j);
			res[i].j = NULL;
			if (query(&c, res[i].id, "bench tx status", CALL_TIMEOUT_MS, &res[i].j) <
			    0) {
				stop_all(&c, res, clients);
				goto out_fail;
			}
			running |= json_true(res[i].j, "running");
			committed += json_u64(res[i].j, "committed");
			aborted += json_u64(res[i].j, "aborted");
			rate += json_num(res[i].j, "tx_per_sec");
			if (json_num(res[i].j, "seconds") > elapsed)
				elapsed = json_num(res[i].j, "seconds");
		}
		progress(&c, "%5.1f s: %llu committed, %.0f tx/s, %.2f%% aborted", elapsed,
			 (unsigned long long)committed, rate,
			 committed + aborted
			     ? 100.0 * (double)aborted / (double)(committed + aborted)
			     : 0.0);
		if (running && waited_ms > secs * 1000 + SLACK_MS) {
			stop_all(&c, res, clients);
			fail(&c, "nodes still running %d s after the end", SLACK_MS / 1000);
			goto out_fail;
		}
	}

	/* Merge. */
	struct hist hc = {0}, hrw = {0}, htx = {0};
	double rate = 0, secs_max = 0;
	for (int i = 0; i < clients; i++) {
		hist_add(&hc, json_get(res[i].j, "commit"));
		hist_add(&hrw, json_get(res[i].j, "commit_rw"));
		hist_add(&htx, json_get(res[i].j, "tx"));
		rate += json_num(res[i].j, "tx_per_sec");
		if (json_num(res[i].j, "seconds") > secs_max)
			secs_max = json_num(res[i].j, "seconds");
	}
	uint64_t committed = sum_u64(res, clients, "committed");
	uint64_t aborted = sum_u64(res, clients, "aborted");
	uint64_t rolled = sum_u64(res, clients, "rolled_back");
	uint64_t errors = sum_u64(res, clients, "errors");
	uint64_t violations = sum_u64(res, clients, "violations");
	double abort_rate =
	    committed + aborted ? (double)aborted / (double)(committed + aborted) : 0;
	struct json *aud = NULL;
	if (bank) {
		snprintf(line, sizeof(line), "bench tx audit %s", rootstr);
		if (query(&c, cfg.members[0].id, line, LOAD_TIMEOUT_MS, &aud) < 0)
			goto out_fail_hist;
		if (!json_true(aud, "intact"))
			violations++;
	}
	static const char *const reasons[] = {"locked",	  "changed", "validate", "read",
					      "log_full", "failure", "user"};
	if (c.json) {
		printf(
		    "{\"ok\":true,\"workload\":\"%s\",\"clients\":%d,\"nodes\":%u,\"replicas\":%u,"
		    "\"seed\":%llu,\"root\":\"%s\",\"seconds\":%.3f,\"committed\":%llu,"
		    "\"aborted\":%llu,\"rolled_back\":%llu,\"errors\":%llu,\"violations\":%llu,"
		    "\"tx_per_sec\":%.0f,\"abort_rate\":%.6f,\"commit_median_ns\":%llu,"
		    "\"commit_p99_ns\":%llu,\"commit_rw_median_ns\":%llu,\"commit_rw_p99_ns\":%llu,"
		    "\"tx_median_ns\":%llu,\"tx_p99_ns\":%llu,\"reasons\":{",
		    wl, clients, cfg.nmembers, cfg.replicas, (unsigned long long)seed, rootstr,
		    secs_max, (unsigned long long)committed, (unsigned long long)aborted,
		    (unsigned long long)rolled, (unsigned long long)errors,
		    (unsigned long long)violations, rate, abort_rate,
		    (unsigned long long)hist_pct(&hc, 0.5), (unsigned long long)hist_pct(&hc, 0.99),
		    (unsigned long long)hist_pct(&hrw, 0.5),
		    (unsigned long long)hist_pct(&hrw, 0.99),
		    (unsigned long long)hist_pct(&htx, 0.5),
		    (unsigned long long)hist_pct(&htx, 0.99));
		for (size_t k = 0; k < sizeof(reasons) / sizeof(reasons[0]); k++)
			printf("%s\"%s\":%llu", k ? "," : "", reasons[k],
			       (unsigned long long)sum_sub(res, clients, "reasons", reasons[k]));
		printf("},\"types\":[");
		const struct json *types = json_get(res[0].j, "types");
		for (size_t t = 0; types && types->type == JSON_ARRAY && t < types->n; t++) {
			uint64_t att = 0, com = 0;
			for (int i = 0; i < clients; i++) {
				const struct json *ti = json_get(res[i].j, "types");
				if (ti && ti->type == JSON_ARRAY && t < ti->n) {
					att += json_u64(ti->kids[t], "attempts");
					com += json_u64(ti->kids[t], "committed");
				}
			}
			printf("%s{\"name\":", t ? "," : "");
			json_print_str(json_str(types->kids[t], "name")
					   ? json_str(types->kids[t], "name")
					   : "?");
			printf(",\"attempts\":%llu,\"committed\":%llu}", (unsigned long long)att,
			       (unsigned long long)com);
		}
		printf("],\"per_node\":[");
		for (int i = 0; i < clients; i++)
			printf("%s{\"node\":%u,\"committed\":%llu,\"aborted\":%llu,\"tx_per_sec\":%"
			       ".0f,"
			       "\"commit_median_ns\":%llu,\"commit_p99_ns\":%llu}",
			       i ? "," : "", res[i].id,
			       (unsigned long long)json_u64(res[i].j, "committed"),
			       (unsigned long long)json_u64(res[i].j, "aborted"),
			       json_num(res[i].j, "tx_per_sec"),
			       (unsigned long long)json_u64(res[i].j, "commit_median_ns"),
			       (unsigned long long)json_u64(res[i].j, "commit_p99_ns"));
		printf("]");
		if (aud)
			printf(",\"audit\":{\"total\":%lld,\"expected\":%lld,\"negative\":%llu,"
			       "\"intact\":%s}",
			       (long long)json_num(aud, "total"),
			       (long long)json_num(aud, "expected"),
			       (unsigned long long)json_u64(aud, "negative"),
			       json_true(aud, "intact") ? "true" : "false");
		printf("}\n");
	} else {
		printf("workload=%s clients=%d seconds=%.1f committed=%llu tx_per_sec=%.0f "
		       "abort_rate=%.4f rolled_back=%llu commit_median_ns=%llu commit_p99_ns=%llu "
		       "commit_rw_median_ns=%llu commit_rw_p99_ns=%llu tx_median_ns=%llu "
		       "tx_p99_ns=%llu errors=%llu violations=%llu",
		       wl, clients, secs_max, (unsigned long long)committed, rate, abort_rate,
		       (unsigned long long)rolled, (unsigned long long)hist_pct(&hc, 0.5),
		       (unsigned long long)hist_pct(&hc, 0.99),
		       (unsigned long long)hist_pct(&hrw, 0.5),
		       (unsigned long long)hist_pct(&hrw, 0.99),
		       (unsigned long long)hist_pct(&htx, 0.5),
		       (unsigned long long)hist_pct(&htx, 0.99), (unsigned long long)errors,
		       (unsigned long long)violations);
		if (aud)
			printf(" total=%lld expected=%lld negative=%llu",
			       (long long)json_num(aud, "total"),
			       (long long)json_num(aud, "expected"),
			       (unsigned long long)json_u64(aud, "negative"));
		printf(" root=%s seed=%llu\n", rootstr, (unsigned long long)seed);
	}
	rc = errors || violations ? 1 : 0;
	if (rc)
		fprintf(stderr, "farm bench tx: %llu errors, %llu invariant violations\n",
			(unsigned long long)errors, (unsigned long long)violations);
	json_free(aud);
	hist_free(&hc);
	hist_free(&hrw);
	hist_free(&htx);
	for (int i = 0; i < clients; i++)
		json_free(res[i].j);
	return rc;
out_fail_hist:
	hist_free(&hc);
	hist_free(&hrw);
	hist_free(&htx);
out_fail:
	for (int i = 0; i < clients; i++)
		json_free(res[i].j);
	return 1;
}
