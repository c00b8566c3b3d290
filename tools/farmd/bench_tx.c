/*
 * bench_tx.c - `bench tx`: the transaction workloads of libfarm
 * (src/farm/workload.h: the bank and TATP) run inside the node, where a
 * FaRM application runs.
 *
 *   bench tx load bank ACCOUNTS INITIAL        lay out a data set: {"root"}
 *   bench tx load tatp SUBSCRIBERS SEED
 *   bench tx start bank|tatp ROOT SECONDS SEED [MAX_TRANSFER AUDIT_PCT]
 *   bench tx status                            counters; everything once done
 *   bench tx stop                              end a run early
 *   bench tx audit ROOT                        the bank's total, by plain reads
 *   bench tx timeline [FROM_MS TO_MS]          commits per CLOCK_MONOTONIC ms
 *
 * A run does not hold the admin command: `start` returns at once and the
 * progress loop calls bench_tx_slice(), which runs transactions for about a
 * millisecond at a time. So the admin socket keeps answering (the CLI's
 * progress line is a `status` every second) and the node keeps serving its
 * peers between slices as well as inside every commit. The CLI starts the
 * same run on several nodes and merges their results: counters add up and
 * latency histograms are sent sparsely ([value, count] per bucket used) so
 * percentiles over all nodes are exact to the bucket.
 *
 * Every run also counts its commits per millisecond of CLOCK_MONOTONIC
 * (struct farm_wl_timeline, the last ~8 s) and notes when the node moved
 * to a new configuration (seen between slices): `farm bench recovery`
 * merges the survivors' timelines by absolute time around a kill -9.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../../src/farm/membership.h"
#include "../../src/farm/workload.h"
#include "farmd.h"
#include "proto.h"

/* A run that keeps failing stops: MAX_ERRORS errors and no commit for
 * STUCK_NS (errors come fast and in bulk while a configuration change is
 * sorted out, and a run that gave up then would fake a recovery curve). */
#define SLICE_NS    1000000u /* transactions per slice: about this long */
#define MAX_ERRORS  1000
#define STUCK_NS    2000000000ull
#define MAX_CONFIGS 16 /* configuration changes remembered per run */

struct bench_tx {
	const char *name; /* "bank" | "tatp" */
	bool running;
	struct farm_bank *bank;
	struct farm_tatp *tatp;
	farm_addr_t root;
	uint64_t seed, t0, until, t1;
	uint64_t last_commit_ns; /* the last committed transaction (or the start) */
	int error;
	struct farm_wl_stats st;
	struct farm_wl_timeline tl;
	/* configurations this run saw: [0] the one it started in */
	uint32_t nconfigs;
	uint64_t config_id[MAX_CONFIGS], config_ns[MAX_CONFIGS];
};

/* A configuration change, noticed between slices (farmd_zk_poll adopts
 * them right after a slice): the time is when the next slice began. */
static void note_config(struct bench_tx *b, uint64_t id, uint64_t now)
{
	if (b->nconfigs && b->config_id[b->nconfigs - 1] == id)
		return;
	if (b->nconfigs == MAX_CONFIGS)
		return;
	b->config_id[b->nconfigs] = id;
	b->config_ns[b->nconfigs++] = now;
}

static const char *const reasons[8] = {"none", "locked",   "changed", "validate",
				       "read", "log_full", "failure", "user"};

static void release(struct bench_tx *b)
{
	farm_bank_close(b->bank);
	farm_tatp_close(b->tatp);
	b->bank = NULL;
	b->tatp = NULL;
}

void bench_tx_free(struct farmd *d)
{
	if (d->btx)
		release(d->btx);
	free(d->btx);
	d->btx = NULL;
}

static void finish(struct farmd *d, int error)
{
	struct bench_tx *b = d->btx;

	b->running = false;
	b->t1 = farm_wl_now_ns();
	b->error = error;
	farmd_log(FARMD_INFO,
		  "bench tx %s done: %llu committed, %llu aborted, %llu rolled back, %llu errors, "
		  "%llu violations in %.2f s",
		  b->name, (unsigned long long)b->st.committed, (unsigned long long)b->st.aborted,
		  (unsigned long long)b->st.rolled_back, (unsigned long long)b->st.errors,
		  (unsigned long long)b->st.violations, (double)(b->t1 - b->t0) / 1e9);
}

int bench_tx_slice(struct farmd *d)
{
	struct bench_tx *b = d->btx;
	uint64_t now, until, committed;
	int n = 0;

	if (!b || !b->running)
		return 0;
	now = farm_wl_now_ns();
	note_config(b, farm_config_id(d->f), now);
	committed = b->st.committed;
	until = now + SLICE_NS < b->until ? now + SLICE_NS : b->until;
	do {
		int rc =
		    b->bank ? farm_bank_step(b->bank, &b->st) : farm_tatp_step(b->tatp, &b->st);
		n++;
		if (b->st.committed != committed) {
			committed = b->st.committed;
			b->last_commit_ns = now;
		}
		if (rc < 0 && b->st.errors >= MAX_ERRORS && now - b->last_commit_ns > STUCK_NS) {
			farmd_log(FARMD_ERROR, "bench tx %s: stopping after %llu errors, last: %s",
				  b->name, (unsigned long long)b->st.errors, farm_strerror(rc));
			finish(d, rc);
			return n;
		}
		now = farm_wl_now_ns();
	} while (now < until);
	if (now >= b->until)
		finish(d, 0);
	return n;
}

static int parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	uint64_t v;

	if (farm_size_parse(s, &v) < 0 || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static void addr_out(struct sbuf *out, const char *key, farm_addr_t a)
{
	char s[FARM_ADDR_STRLEN];

	farm_addr_fmt(a, s);
	sb_printf(out, ",\"%s\":\"%s\"", key, s);
}

static int cmd_load(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	uint64_t count, arg, t0 = farm_wl_now_ns();
	farm_addr_t root;
	int rc;

	if (n != 6 || (strcmp(tok[3], "bank") != 0 && strcmp(tok[3], "tatp") != 0))
		return cmd_error(out, -EINVAL,
				 "usage: bench tx load bank ACCOUNTS INITIAL | bench tx load tatp "
				 "SUBSCRIBERS SEED");
	if (parse_u64(tok[4], strcmp(tok[3], "bank") == 0 ? 2 : 1, 100000000u, &count) < 0)
		return cmd_error(out, -EINVAL, "bench tx load: bad count '%s'", tok[4]);
	/* INITIAL is bounded so that accounts * INITIAL fits an int64_t. */
	if (parse_u64(tok[5], 0, strcmp(tok[3], "bank") == 0 ? INT64_MAX / 100000000 : UINT64_MAX,
		      &arg) < 0)
		return cmd_error(out, -EINVAL, "bench tx load: bad %s '%s'",
				 strcmp(tok[3], "bank") == 0 ? "INITIAL" : "SEED", tok[5]);
	if (d->btx && d->btx->running)
		return cmd_error(out, -EBUSY, "bench tx load: a run is in progress");
	if (strcmp(tok[3], "bank") == 0) {
		struct farm_bank_params p = {(uint32_t)count, (int64_t)arg, 100, 0};
		rc = farm_bank_create(d->f, &p, &root);
	} else {
		rc = farm_tatp_create(d->f, (uint32_t)count, arg, &root);
	}
	if (rc < 0) {
		farmd_log(FARMD_WARN, "bench tx load %s %llu: %s", tok[3],
			  (unsigned long long)count, farm_strerror(rc));
		return cmd_error(out, rc, "bench tx load %s %llu: %s", tok[3],
				 (unsigned long long)count, farm_strerror(rc));
	}
	double secs = (double)(farm_wl_now_ns() - t0) / 1e9;
	farmd_log(FARMD_INFO, "bench tx load %s %llu: root 0x%016llx in %.2f s", tok[3],
		  (unsigned long long)count, (unsigned long long)root, secs);
	sb_printf(out, "{\"ok\":true,\"workload\":\"%s\",\"count\":%llu", tok[3],
		  (unsigned long long)count);
	addr_out(out, "root", root);
	sb_printf(out, ",\"seconds\":%.3f}\n", secs);
	return 0;
}

static int cmd_start(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	bool bank = n > 3 && strcmp(tok[3], "bank") == 0;
	uint64_t secs, seed, maxt = 100, audit = 0;
	farm_addr_t root;
	struct bench_tx *b;
	int rc;

	if (!(n == 7 || (bank && n == 9)) || (!bank && strcmp(tok[3], "tatp") != 0))
		return cmd_error(out, -EINVAL,
				 "usage: bench tx start bank|tatp ROOT SECONDS SEED [MAX_TRANSFER "
				 "AUDIT_PCT]");
	if (farm_addr_parse(tok[4], &root) < 0)
		return cmd_error(out, -EINVAL, "bench tx start: bad root '%s'", tok[4]);
	if (parse_u64(tok[5], 1, 86400, &secs) < 0)
		return cmd_error(out, -EINVAL, "bench tx start: SECONDS must be 1..86400, got '%s'",
				 tok[5]);
	if (parse_u64(tok[6], 0, UINT64_MAX, &seed) < 0)
		return cmd_error(out, -EINVAL, "bench tx start: bad seed '%s'", tok[6]);
	if (n == 9 &&
	    (parse_u64(tok[7], 1, 1000000000u, &maxt) < 0 || parse_u64(tok[8], 0, 100, &audit) < 0))
		return cmd_error(out, -EINVAL,
				 "bench tx start: MAX_TRANSFER must be >= 1, AUDIT_PCT 0..100");
	if (d->btx && d->btx->running)
		return cmd_error(out, -EBUSY, "bench tx start: a run is in progress");
	bench_tx_free(d);
	b = d->btx = calloc(1, sizeof(*b));
	if (!b)
		return cmd_error(out, -ENOMEM, "bench tx start: out of memory");
	b->name = bank ? "bank" : "tatp";
	b->root = root;
	b->seed = seed;
	rc = bank ? farm_bank_open(d->f, root, seed, &b->bank)
		  : farm_tatp_open(d->f, root, seed, &b->tatp);
	if (rc < 0) {
		bench_tx_free(d);
		return cmd_error(out, rc, "bench tx start: no %s data set at %s: %s",
				 bank ? "bank" : "tatp", tok[4], farm_strerror(rc));
	}
	if (bank)
		farm_bank_set_params(b->bank, (uint32_t)maxt, (uint32_t)audit);
	b->st.timeline = &b->tl;
	b->t0 = b->last_commit_ns = farm_wl_now_ns();
	note_config(b, farm_config_id(d->f), b->t0);
	b->until = b->t0 + secs * 1000000000ull;
	b->running = true;
	farmd_log(FARMD_INFO, "bench tx %s: %llu s, seed %llu", b->name, (unsigned long long)secs,
		  (unsigned long long)seed);
	sb_printf(out,
		  "{\"ok\":true,\"node\":%u,\"workload\":\"%s\",\"started\":true,\"seed\":%llu}\n",
		  d->id, b->name, (unsigned long long)seed);
	return 0;
}

static void lat_out(struct sbuf *out, const char *key, const struct farm_lat *l)
{
	bool first = true;

	sb_printf(out, ",\"%s_median_ns\":%llu,\"%s_p99_ns\":%llu,\"%s\":[", key,
		  (unsigned long long)farm_lat_pct(l, 0.5), key,
		  (unsigned long long)farm_lat_pct(l, 0.99), key);
	for (uint32_t i = 0; i < FARM_LAT_BUCKETS; i++) {
		if (!l->n[i])
			continue;
		sb_printf(out, "%s[%llu,%llu]", first ? "" : ",",
			  (unsigned long long)farm_lat_bucket_mid(i), (unsigned long long)l->n[i]);
		first = false;
	}
	sb_printf(out, "]");
}

static int cmd_status(struct farmd *d, struct sbuf *out)
{
	struct bench_tx *b = d->btx;
	const struct farm_wl_stats *s;
	uint64_t end;
	double secs;

	if (!b)
		return cmd_error(out, -ENOENT, "bench tx status: no run on node %u", d->id);
	s = &b->st;
	end = b->running ? farm_wl_now_ns() : b->t1;
	secs = (double)(end - b->t0) / 1e9;
	sb_printf(out,
		  "{\"ok\":true,\"node\":%u,\"workload\":\"%s\",\"running\":%s,\"seed\":%llu,"
		  "\"seconds\":%.6f,\"attempts\":%llu,\"committed\":%llu,\"aborted\":%llu,"
		  "\"rolled_back\":%llu,\"errors\":%llu,\"violations\":%llu,\"tx_per_sec\":%.0f",
		  d->id, b->name, b->running ? "true" : "false", (unsigned long long)b->seed, secs,
		  (unsigned long long)s->attempts, (unsigned long long)s->committed,
		  (unsigned long long)s->aborted, (unsigned long long)s->rolled_back,
		  (unsigned long long)s->errors, (unsigned long long)s->violations,
		  secs > 0 ? (double)s->committed / secs : 0.0);
	if (b->error || s->last_error) {
		sb_printf(out, ",\"last_error\":");
		sb_json_str(out, farm_strerror(b->error ? b->error : s->last_error));
	}
	if (b->running) {
		sb_printf(out, "}\n");
		return 0;
	}
	sb_printf(out, ",\"reasons\":{");
	for (int i = 1; i < 8; i++)
		sb_printf(out, "%s\"%s\":%llu", i > 1 ? "," : "", reasons[i],
			  (unsigned long long)s->reason[i]);
	sb_printf(out, "},\"types\":[");
	int ntypes = b->bank ? 2 : FARM_TATP_NTYPES;
	for (int t = 0; t < ntypes; t++)
		sb_printf(out, "%s{\"name\":\"%s\",\"attempts\":%llu,\"committed\":%llu}",
			  t ? "," : "", b->bank ? (t ? "audit" : "transfer") : farm_tatp_name(t),
			  (unsigned long long)s->type_attempts[t],
			  (unsigned long long)s->type_committed[t]);
	sb_printf(out, "]");
	lat_out(out, "commit", &s->commit);
	lat_out(out, "commit_rw", &s->commit_rw);
	lat_out(out, "tx", &s->tx);
	sb_printf(out, "}\n");
	return 0;
}

static int cmd_audit(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	struct farm_bank *bank;
	farm_addr_t root;
	int64_t total, expected;
	uint32_t negative;
	int rc;

	if (n != 4 || farm_addr_parse(tok[3], &root) < 0)
		return cmd_error(out, -EINVAL, "usage: bench tx audit ROOT");
	if ((rc = farm_bank_open(d->f, root, 1, &bank)) < 0)
		return cmd_error(out, rc, "bench tx audit: no bank at %s: %s", tok[3],
				 farm_strerror(rc));
	rc = farm_bank_audit(bank, &total, &expected, &negative);
	uint32_t accounts = farm_bank_accounts(bank);
	farm_bank_close(bank);
	if (rc < 0)
		return cmd_error(out, rc, "bench tx audit: %s", farm_strerror(rc));
	sb_printf(out,
		  "{\"ok\":true,\"accounts\":%u,\"total\":%lld,\"expected\":%lld,\"negative\":%u,"
		  "\"intact\":%s}\n",
		  accounts, (long long)total, (long long)expected, negative,
		  total == expected && negative == 0 ? "true" : "false");
	return 0;
}

/* Commits per millisecond over [FROM_MS, TO_MS] (CLOCK_MONOTONIC ms, at
 * most the ring; default: all of it), and the configurations seen. */
static int cmd_timeline(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	struct bench_tx *b = d->btx;
	uint64_t now_ms = farm_wl_now_ns() / 1000000u, from, to;

	if (n != 3 && n != 5)
		return cmd_error(out, -EINVAL, "usage: bench tx timeline [FROM_MS TO_MS]");
	if (!b)
		return cmd_error(out, -ENOENT, "bench tx timeline: no run on node %u", d->id);
	to = now_ms;
	from = now_ms >= FARM_WL_TL_MS ? now_ms - FARM_WL_TL_MS + 1 : 0;
	if (n == 5) {
		uint64_t f, t;
		if (parse_u64(tok[3], 0, UINT64_MAX, &f) < 0 ||
		    parse_u64(tok[4], 0, UINT64_MAX, &t) < 0 || f > t)
			return cmd_error(out, -EINVAL,
					 "bench tx timeline: FROM_MS and TO_MS must be "
					 "milliseconds, FROM_MS <= TO_MS");
		if (t - f >= FARM_WL_TL_MS)
			return cmd_error(out, -E2BIG, "bench tx timeline: at most %u ms at a time",
					 FARM_WL_TL_MS);
		from = f;
		to = t;
	}
	/* A millisecond older than the ring is unknown, not zero: say from
	 * where the counts are real. */
	uint64_t oldest = b->tl.last_ms >= FARM_WL_TL_MS ? b->tl.last_ms - FARM_WL_TL_MS + 1 : 0;
	uint64_t t0_ms = b->t0 / 1000000u;
	if (oldest < t0_ms)
		oldest = t0_ms;
	if (from < oldest)
		from = oldest;
	if (to > now_ms)
		to = now_ms;
	sb_printf(out,
		  "{\"ok\":true,\"node\":%u,\"running\":%s,\"now_ms\":%llu,\"start_ms\":%llu,"
		  "\"end_ms\":%llu,\"from_ms\":%llu,\"counts\":[",
		  d->id, b->running ? "true" : "false", (unsigned long long)now_ms,
		  (unsigned long long)t0_ms,
		  (unsigned long long)((b->running ? farm_wl_now_ns() : b->t1) / 1000000u),
		  (unsigned long long)from);
	sb_reserve(out, from <= to ? (size_t)(to - from + 1) * 4 : 0);
	for (uint64_t ms = from; ms <= to && from <= to; ms++)
		sb_printf(out, "%s%u", ms > from ? "," : "", farm_wl_timeline_get(&b->tl, ms));
	sb_printf(out, "],\"configs\":[");
	for (uint32_t i = 0; i < b->nconfigs; i++)
		sb_printf(out, "%s[%llu,%llu]", i ? "," : "", (unsigned long long)b->config_id[i],
			  (unsigned long long)b->config_ns[i]);
	sb_printf(out, "]");
	if (d->mem) {
		/* As CM: how long its last removal took from the lease expiry
		 * to the configuration written in ZooKeeper. */
		struct farm_membership_stats ms;
		farm_membership_get_stats(d->mem, &ms);
		sb_printf(out, ",\"cm\":%u,\"configs_published\":%llu,\"last_detect_ns\":%llu",
			  ms.cm, (unsigned long long)ms.configs_published,
			  (unsigned long long)ms.last_detect_ns);
	}
	sb_printf(out, "}\n");
	return 0;
}

int bench_tx_cmd(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	if (n >= 3 && strcmp(tok[2], "load") == 0)
		return cmd_load(d, n, tok, out);
	if (n >= 3 && strcmp(tok[2], "start") == 0)
		return cmd_start(d, n, tok, out);
	if (n == 3 && strcmp(tok[2], "status") == 0)
		return cmd_status(d, out);
	if (n == 3 && strcmp(tok[2], "stop") == 0) {
		if (!d->btx || !d->btx->running)
			return cmd_error(out, -ENOENT, "bench tx stop: nothing runs on node %u",
					 d->id);
		finish(d, 0);
		sb_printf(out, "{\"ok\":true,\"node\":%u,\"stopped\":true}\n", d->id);
		return 0;
	}
	if (n >= 3 && strcmp(tok[2], "audit") == 0)
		return cmd_audit(d, n, tok, out);
	if (n >= 3 && strcmp(tok[2], "timeline") == 0)
		return cmd_timeline(d, n, tok, out);
	return cmd_error(out, -EINVAL,
			 "usage: bench tx load|start|status|stop|audit|timeline ... (see proto.h)");
}
