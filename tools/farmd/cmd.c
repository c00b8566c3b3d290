/*
 * cmd.c - one admin command line in, one JSON reply line out.
 *
 * Every reply starts with "ok"; a failure carries the negative errno-style
 * code and a sentence a person can act on (farm_strerror for the library's
 * codes). Arguments are checked here, before the library sees them, so a
 * typo gets a usage line rather than a library error.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "farmd.h"
#include "kvbench.h"
#include "proto.h"
#include "kvcmd.h"

#define MAX_TOKENS 12

int cmd_error(struct sbuf *out, int code, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sb_printf(out, "{\"ok\":false,\"code\":%d,\"error\":", code);
	sb_json_str(out, msg);
	sb_printf(out, "}\n");
	return code;
}

static int split(char *line, char **tok)
{
	int n = 0;

	for (char *s = strtok(line, " \t"); s; s = strtok(NULL, " \t")) {
		if (n == MAX_TOKENS)
			return -E2BIG;
		tok[n++] = s;
	}
	return n;
}

static void addr_field(struct sbuf *out, const char *key, farm_addr_t a)
{
	char s[FARM_ADDR_STRLEN];

	farm_addr_fmt(a, s);
	sb_printf(out, ",\"%s\":\"%s\"", key, s);
}

static uint32_t primary_of(struct farmd *d, farm_addr_t a)
{
	uint32_t reps[FARM_MAX_MEMBERS];

	return farm_region_replicas(d->f, FARM_REGION(a), reps, FARM_MAX_MEMBERS) > 0 ? reps[0] : 0;
}

static int cmd_status(struct farmd *d, struct sbuf *out)
{
	const struct farm_config *c = farm_get_config(d->f);
	uint64_t now = farmd_now_ns();
	struct farm_stats st;

	farm_get_stats(d->f, &st);
	sb_printf(out, "{\"ok\":true,\"node\":%u,\"pid\":%d,\"ready\":true,\"cluster\":", d->id,
		  (int)getpid());
	sb_json_str(out, c->cluster);
	sb_printf(out, ",\"nic\":");
	sb_json_str(out, c->nic);
	farmd_zk_status(d, out);
	sb_printf(out,
		  ",\"config_id\":%llu,\"region_size\":%llu,\"regions\":%u,\"replicas\":%u,"
		  "\"vnodes\":%u,\"uptime_ms\":%llu,\"startup_ms\":%llu,\"members\":[",
		  (unsigned long long)farm_config_id(d->f), (unsigned long long)c->region_size,
		  c->regions, c->replicas, c->vnodes,
		  (unsigned long long)((now - d->start_ns) / 1000000u),
		  (unsigned long long)((d->ready_ns - d->start_ns) / 1000000u));
	for (uint32_t i = 0; i < c->nmembers; i++) {
		sb_printf(out, "%s{\"id\":%u,\"addr\":", i ? "," : "", c->members[i].id);
		sb_json_str(out, c->members[i].addr);
		sb_printf(out, ",\"netns\":");
		sb_json_str(out, c->members[i].netns);
		sb_printf(out, ",\"joining\":%s}", c->members[i].joining ? "true" : "false");
	}
	sb_printf(out, "],\"map\":[");
	for (uint32_t r = 0; r < c->regions; r++) {
		uint32_t reps[FARM_MAX_MEMBERS];
		int k = farm_region_replicas(d->f, r, reps, FARM_MAX_MEMBERS);
		sb_printf(out, "%s{\"region\":%u,\"primary\":%u,\"backups\":[", r ? "," : "", r,
			  k > 0 ? reps[0] : 0);
		for (int i = 1; i < k; i++)
			sb_printf(out, "%s%u", i > 1 ? "," : "", reps[i]);
		sb_printf(out, "]}");
	}
	sb_printf(out,
		  "],\"stats\":{\"reads_local\":%llu,\"reads_remote\":%llu,\"read_retries\":%llu,"
		  "\"writes\":%llu,\"allocs\":%llu,\"frees\":%llu,\"msgs_in\":%llu,"
		  "\"msgs_out\":%llu,\"stale_refused\":%llu,\"resyncs\":%llu,"
		  "\"replies_deferred\":%llu,\"replies_lost\":%llu}}\n",
		  (unsigned long long)st.reads_local, (unsigned long long)st.reads_remote,
		  (unsigned long long)st.read_retries, (unsigned long long)st.writes,
		  (unsigned long long)st.allocs, (unsigned long long)st.frees,
		  (unsigned long long)st.msgs_in, (unsigned long long)st.msgs_out,
		  (unsigned long long)st.stale_refused, (unsigned long long)st.resyncs,
		  (unsigned long long)st.replies_deferred, (unsigned long long)st.replies_lost);
	return 0;
}

static int parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;

	if (farm_size_parse(s, &v) < 0 || v < min || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int cmd_alloc(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	farm_addr_t near = FARM_NULL, a;
	uint32_t size;
	int rc;

	if (n < 2 || n > 3)
		return cmd_error(out, -EINVAL, "usage: alloc SIZE [NEAR]");
	if (parse_u32(tok[1], 1, FARM_OBJ_MAX, &size) < 0)
		return cmd_error(out, -EINVAL, "alloc: SIZE must be 1..%u bytes, got '%s'",
				 FARM_OBJ_MAX, tok[1]);
	if (n == 3 && farm_addr_parse(tok[2], &near) < 0)
		return cmd_error(out, -EINVAL,
				 "alloc: NEAR must be an address 0xRRRRRRRROOOOOOOO, got '%s'",
				 tok[2]);
	rc = farm_alloc(d->f, size, near, &a);
	if (rc < 0)
		return cmd_error(out, rc, "alloc %u: %s", size, farm_strerror(rc));
	sb_printf(out, "{\"ok\":true");
	addr_field(out, "addr", a);
	sb_printf(out, ",\"region\":%u,\"offset\":%u,\"size\":%u,\"primary\":%u}\n", FARM_REGION(a),
		  FARM_OFFSET(a), size, primary_of(d, a));
	return 0;
}

static int cmd_free(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	farm_addr_t a;
	int rc;

	if (n != 2)
		return cmd_error(out, -EINVAL, "usage: free ADDR");
	if (farm_addr_parse(tok[1], &a) < 0)
		return cmd_error(out, -EINVAL, "free: bad address '%s' (want 0xRRRRRRRROOOOOOOO)",
				 tok[1]);
	rc = farm_free(d->f, a);
	if (rc < 0)
		return cmd_error(out, rc, "free %s: %s", tok[1], farm_strerror(rc));
	sb_printf(out, "{\"ok\":true");
	addr_field(out, "addr", a);
	sb_printf(out, "}\n");
	return 0;
}

static int cmd_read(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	farm_addr_t a;
	uint32_t len;
	uint64_t version = 0;
	void *buf;
	int rc;

	if (n < 2 || n > 3)
		return cmd_error(out, -EINVAL, "usage: read ADDR [LEN]");
	if (farm_addr_parse(tok[1], &a) < 0)
		return cmd_error(out, -EINVAL, "read: bad address '%s' (want 0xRRRRRRRROOOOOOOO)",
				 tok[1]);
	if (n == 3) {
		if (parse_u32(tok[2], 1, FARM_OBJ_MAX, &len) < 0)
			return cmd_error(out, -EINVAL, "read: LEN must be 1..%u, got '%s'",
					 FARM_OBJ_MAX, tok[2]);
	} else {
		rc = farm_obj_size(d->f, a, &len);
		if (rc < 0)
			return cmd_error(out, rc, "read %s: %s", tok[1], farm_strerror(rc));
	}
	buf = malloc(len ? len : 1);
	if (!buf)
		return cmd_error(out, -ENOMEM, "read: out of memory");
	rc = farm_read(d->f, a, buf, len, &version);
	if (rc < 0) {
		free(buf);
		return cmd_error(out, rc, "read %s: %s", tok[1], farm_strerror(rc));
	}
	sb_printf(out, "{\"ok\":true");
	addr_field(out, "addr", a);
	sb_printf(out, ",\"len\":%u,\"version\":%llu,\"primary\":%u,\"hex\":\"", len,
		  (unsigned long long)version, primary_of(d, a));
	sb_reserve(out, 2 * (size_t)len + 4);
	if (!out->oom) {
		farm_hex_encode(buf, len, out->p + out->len);
		out->len += 2 * (size_t)len;
	}
	sb_printf(out, "\"}\n");
	free(buf);
	return 0;
}

static int cmd_write(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	farm_addr_t a;
	void *buf;
	long len;
	int rc;

	if (n != 3)
		return cmd_error(out, -EINVAL, "usage: write ADDR HEX");
	if (farm_addr_parse(tok[1], &a) < 0)
		return cmd_error(out, -EINVAL, "write: bad address '%s' (want 0xRRRRRRRROOOOOOOO)",
				 tok[1]);
	buf = malloc(FARM_OBJ_MAX);
	if (!buf)
		return cmd_error(out, -ENOMEM, "write: out of memory");
	len = farm_hex_decode(tok[2], buf, FARM_OBJ_MAX);
	if (len <= 0) {
		free(buf);
		if (len == -EFBIG)
			return cmd_error(out, -EFBIG, "write: data longer than %u bytes",
					 FARM_OBJ_MAX);
		return cmd_error(out, -EINVAL,
				 "write: data must be a non-empty even-length hex string");
	}
	rc = farm_write(d->f, a, buf, (uint32_t)len);
	free(buf);
	if (rc < 0)
		return cmd_error(out, rc, "write %s: %s", tok[1], farm_strerror(rc));
	sb_printf(out, "{\"ok\":true");
	addr_field(out, "addr", a);
	sb_printf(out, ",\"len\":%ld,\"primary\":%u}\n", len, primary_of(d, a));
	return 0;
}

static int cmd_bench(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	struct bench_result r;
	char err[256] = "";
	uint32_t size;
	uint64_t count;
	bool remote = true;
	int rc;

	if (n >= 2 && strcmp(tok[1], "kv") == 0)
		return kvbench_cmd(d, n, tok, out); /* kvbench.c */
	if (n >= 2 && strcmp(tok[1], "tx") == 0)
		return bench_tx_cmd(d, n, tok, out); /* bench_tx.c */
	if (n < 4 || n > 5 || strcmp(tok[1], "read") != 0)
		return cmd_error(out, -EINVAL, "usage: bench read SIZE COUNT [remote|local]");
	if (parse_u32(tok[2], 1, FARM_OBJ_MAX, &size) < 0)
		return cmd_error(out, -EINVAL, "bench: SIZE must be 1..%u, got '%s'", FARM_OBJ_MAX,
				 tok[2]);
	if (farm_size_parse(tok[3], &count) < 0 || count < 1 || count > 1000000000u)
		return cmd_error(out, -EINVAL, "bench: COUNT must be 1..1000000000, got '%s'",
				 tok[3]);
	if (n == 5) {
		if (strcmp(tok[4], "local") == 0)
			remote = false;
		else if (strcmp(tok[4], "remote") != 0)
			return cmd_error(out, -EINVAL, "bench: want 'remote' or 'local', got '%s'",
					 tok[4]);
	}
	rc = bench_read(d, size, count, remote, &r, err, sizeof(err));
	if (rc < 0)
		return cmd_error(out, rc, "bench read: %s", err[0] ? err : farm_strerror(rc));
	farmd_log(FARMD_INFO,
		  "bench read %u B x %llu %s (node %u): %.0f ops/s (median chunk %.0f), median "
		  "%llu ns, p99 %llu ns",
		  size, (unsigned long long)count, remote ? "remote" : "local", r.target,
		  r.ops_per_sec, r.chunk_ops_per_sec, (unsigned long long)r.median_ns,
		  (unsigned long long)r.p99_ns);
	sb_printf(out, "{\"ok\":true,\"op\":\"read\",\"size\":%u,\"count\":%llu,\"where\":\"%s\"",
		  size, (unsigned long long)r.count, remote ? "remote" : "local");
	addr_field(out, "addr", r.addr);
	sb_printf(out,
		  ",\"node\":%u,\"target\":%u,\"seconds\":%.6f,\"ops_per_sec\":%.0f,"
		  "\"chunk_ops_per_sec\":%.0f,\"median_ns\":%llu,\"p99_ns\":%llu,\"min_ns\":%llu,"
		  "\"lat_samples\":%llu,"
		  "\"retries\":%llu}\n",
		  d->id, r.target, r.seconds, r.ops_per_sec, r.chunk_ops_per_sec,
		  (unsigned long long)r.median_ns, (unsigned long long)r.p99_ns,
		  (unsigned long long)r.min_ns, (unsigned long long)r.lat_samples,
		  (unsigned long long)r.retries);
	return 0;
}

void cmd_run(struct farmd *d, char *line, struct sbuf *out)
{
	char *tok[MAX_TOKENS];
	int n = split(line, tok);

	if (n == -E2BIG)
		cmd_error(out, -EINVAL, "too many arguments");
	else if (n == 0)
		cmd_error(out, -EINVAL, "empty command");
	else if (strcmp(tok[0], "status") == 0 && n == 1)
		cmd_status(d, out);
	else if (strcmp(tok[0], "alloc") == 0)
		cmd_alloc(d, n, tok, out);
	else if (strcmp(tok[0], "free") == 0)
		cmd_free(d, n, tok, out);
	else if (strcmp(tok[0], "read") == 0)
		cmd_read(d, n, tok, out);
	else if (strcmp(tok[0], "write") == 0)
		cmd_write(d, n, tok, out);
	else if (strcmp(tok[0], "bench") == 0)
		cmd_bench(d, n, tok, out);
	else if (strcmp(tok[0], "kv") == 0)
		kv_cmd(d, n, tok, out); /* kvcmd.c */
	else if (strcmp(tok[0], "stop") == 0 && n == 1) {
		d->stop = true;
		d->stop_reason = "admin stop";
		sb_printf(out, "{\"ok\":true,\"node\":%u,\"stopping\":true}\n", d->id);
	} else
		cmd_error(out, -EINVAL,
			  "unknown command '%s' (status, alloc SIZE [NEAR], free ADDR, read ADDR "
			  "[LEN], write ADDR HEX, bench read SIZE COUNT [remote|local], stop)",
			  tok[0]);
}
