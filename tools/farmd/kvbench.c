/*
 * kvbench.c - `bench kv load|get` (kvbench.h): the native client of the
 * head-to-head KV benchmark, run where a FaRM application runs, inside a
 * node, on the node's thread.
 *
 * The get loop is what an application would write: farm_kv_get (or
 * farm_kv_mget for DEPTH > 1) on keys drawn by keygen.h, the value checked
 * (length, and its first byte against the key's pattern). Time: one clock
 * read per 256 lookups for the deadline; latency from every 64th lookup
 * timed alone (so the sample includes one ~26 ns clock read). The node
 * keeps serving its peers: farm_poll every 4096 lookups.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <farm/kv.h>

#include "../kvload/keygen.h"
#include "kvbench.h"

#define POLL_EVERY   4096u
#define SAMPLE_EVERY 64u
#define LAT_MAX	     200000u
#define DEPTH_MAX    64u

static int parse_sizes(const char *s, uint32_t *ksize, uint32_t *vsize)
{
	char *end;
	unsigned long k = strtoul(s, &end, 10), v;

	if (*end != ':')
		return -EINVAL;
	v = strtoul(end + 1, &end, 10);
	if (*end || k < KEYGEN_KEY_MIN || k > FARM_KV_KEY_MAX || v > FARM_KV_VAL_MAX)
		return -EINVAL;
	*ksize = (uint32_t)k;
	*vsize = (uint32_t)v;
	return 0;
}

static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v = strtoull(s, &end, 10);

	if (end == s || *end || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int open_table(struct farmd *d, uint32_t vsize, uint64_t keys, struct farm_kv **kv)
{
	struct farm_kv_opts o = {.flags = FARM_KV_CREATE, .capacity = keys};
	char name[32];

	snprintf(name, sizeof(name), "kvbench-%u", vsize);
	return farm_kv_open(d->f, name, &o, kv);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
	return x < y ? -1 : x > y;
}

static int kv_load(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	uint64_t keys, first, count, t0;
	uint32_t ksize, vsize;
	struct keygen g;
	struct farm_kv *kv;
	char key[FARM_KV_KEY_MAX], *val;
	double secs;
	int rc = 0;

	if (n != 7 || parse_u64(tok[3], 1000000000000ull, &keys) < 0 ||
	    parse_sizes(tok[4], &ksize, &vsize) < 0 || parse_u64(tok[5], keys, &first) < 0 ||
	    parse_u64(tok[6], keys - first, &count) < 0 || keygen_init(&g, keys, ksize, 0, 1) < 0)
		return cmd_error(out, -EINVAL,
				 "usage: bench kv load KEYS KSIZE:VSIZE FIRST COUNT (keys must fit "
				 "the key size)");
	rc = open_table(d, vsize, keys, &kv);
	if (rc < 0)
		return cmd_error(out, rc, "bench kv: cannot open the table: %s", farm_strerror(rc));
	val = malloc(vsize ? vsize : 1);
	if (!val) {
		farm_kv_close(kv);
		return cmd_error(out, -ENOMEM, "bench kv: out of memory");
	}
	t0 = farmd_now_ns();
	for (uint64_t i = first; i < first + count; i++) {
		keygen_key(&g, i, key);
		keygen_value(i, val, vsize);
		rc = farm_kv_put(kv, key, ksize, val, vsize, FARM_KV_SET, NULL);
		if (rc < 0)
			break;
		if ((i & 1023) == 0)
			farm_poll(d->f);
	}
	secs = (double)(farmd_now_ns() - t0) / 1e9;
	free(val);
	farm_kv_close(kv);
	if (rc < 0)
		return cmd_error(out, rc, "bench kv load: put failed: %s", farm_strerror(rc));
	farmd_log(FARMD_INFO, "bench kv load: %llu keys of %u:%u in %.2f s",
		  (unsigned long long)count, ksize, vsize, secs);
	sb_printf(out,
		  "{\"ok\":true,\"op\":\"kv-load\",\"node\":%u,\"loaded\":%llu,\"seconds\":%.6f,"
		  "\"ops_per_sec\":%.0f}\n",
		  d->id, (unsigned long long)count, secs, secs > 0 ? (double)count / secs : 0.0);
	return 0;
}

struct get_state {
	struct keygen g;
	uint32_t ksize, vsize;
	uint64_t hits, misses, errors;
};

static void check(struct get_state *s, uint64_t k, int rc, size_t vlen, const char *v)
{
	if (rc == 0 && vlen == s->vsize && (vlen == 0 || v[0] == (char)('a' + k % 26)))
		s->hits++;
	else if (rc == -ENOENT)
		s->misses++;
	else
		s->errors++;
}

static int kv_get(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	static uint64_t lat[LAT_MAX];
	struct get_state s = {0};
	struct farm_kv_item items[DEPTH_MAX];
	static char keys[DEPTH_MAX][FARM_KV_KEY_MAX];
	static char vals[DEPTH_MAX][FARM_KV_VAL_MAX];
	uint64_t nkeys, depth = 1, ops = 0, nlat = 0, t0, deadline, idx[DEPTH_MAX];
	double theta, secs, p50 = 0, p99 = 0;
	struct farm_kv *kv;
	char *end;
	int rc;

	if (n < 7 || n > 8 || parse_u64(tok[3], 1000000000000ull, &nkeys) < 0 ||
	    parse_sizes(tok[4], &s.ksize, &s.vsize) < 0 ||
	    (theta = strtod(tok[5], &end), *end || theta < 0 || theta >= 1) ||
	    (secs = strtod(tok[6], &end), *end || secs <= 0 || secs > 600) ||
	    (n == 8 && (parse_u64(tok[7], DEPTH_MAX, &depth) < 0 || depth < 1)) ||
	    keygen_init(&s.g, nkeys, s.ksize, theta, 0x5eed0000ull + d->id) < 0)
		return cmd_error(out, -EINVAL,
				 "usage: bench kv get KEYS KSIZE:VSIZE THETA SECONDS [DEPTH 1..%u] "
				 "(THETA 0 = uniform, else Zipf, < 1)",
				 DEPTH_MAX);
	rc = open_table(d, s.vsize, nkeys, &kv);
	if (rc < 0)
		return cmd_error(out, rc, "bench kv: cannot open the table: %s", farm_strerror(rc));
	t0 = farmd_now_ns();
	deadline = t0 + (uint64_t)(secs * 1e9);
	for (uint64_t now = t0; now < deadline;) {
		for (unsigned r = 0; r < 256; r++) {
			uint64_t ts = 0;
			bool sample = (ops / depth) % SAMPLE_EVERY == 0 && nlat < LAT_MAX;
			if (depth == 1) {
				size_t vlen = 0;
				uint64_t k = keygen_next(&s.g);
				keygen_key(&s.g, k, keys[0]);
				if (sample)
					ts = farmd_now_ns();
				rc = farm_kv_get(kv, keys[0], s.ksize, vals[0], FARM_KV_VAL_MAX,
						 &vlen, NULL);
				if (sample)
					lat[nlat++] = farmd_now_ns() - ts;
				check(&s, k, rc, vlen, vals[0]);
			} else {
				for (uint64_t i = 0; i < depth; i++) {
					idx[i] = keygen_next(&s.g);
					keygen_key(&s.g, idx[i], keys[i]);
					items[i] = (struct farm_kv_item){.key = keys[i],
									 .klen = s.ksize,
									 .val = vals[i],
									 .cap = FARM_KV_VAL_MAX};
				}
				if (sample)
					ts = farmd_now_ns();
				farm_kv_mget(kv, items, depth);
				if (sample)
					lat[nlat++] = farmd_now_ns() - ts;
				for (uint64_t i = 0; i < depth; i++)
					check(&s, idx[i], items[i].rc, items[i].vlen, vals[i]);
			}
			ops += depth;
			if (ops % POLL_EVERY < depth)
				farm_poll(d->f);
		}
		now = farmd_now_ns();
	}
	secs = (double)(farmd_now_ns() - t0) / 1e9;
	farm_kv_close(kv);
	if (nlat) {
		qsort(lat, nlat, sizeof(lat[0]), cmp_u64);
		p50 = (double)lat[nlat / 2];
		p99 = (double)lat[(uint64_t)((double)nlat * 0.99)];
	}
	farmd_log(FARMD_INFO,
		  "bench kv get %llu keys %u:%u theta %.2f depth %llu: %.0f ops/s, %llu hits, %llu "
		  "misses, %llu errors, p50 %.0f ns",
		  (unsigned long long)nkeys, s.ksize, s.vsize, theta, (unsigned long long)depth,
		  (double)ops / secs, (unsigned long long)s.hits, (unsigned long long)s.misses,
		  (unsigned long long)s.errors, p50);
	sb_printf(out,
		  "{\"ok\":true,\"op\":\"kv-get\",\"node\":%u,\"keys\":%llu,\"key_size\":%u,"
		  "\"value_size\":%u,\"theta\":%.4f,\"depth\":%llu,\"seconds\":%.6f,\"ops\":%llu,"
		  "\"ops_per_sec\":%.0f,\"hits\":%llu,\"misses\":%llu,\"errors\":%llu,"
		  "\"p50_ns\":%.0f,\"p99_ns\":%.0f,\"lat_samples\":%llu}\n",
		  d->id, (unsigned long long)nkeys, s.ksize, s.vsize, theta,
		  (unsigned long long)depth, secs, (unsigned long long)ops, (double)ops / secs,
		  (unsigned long long)s.hits, (unsigned long long)s.misses,
		  (unsigned long long)s.errors, p50, p99, (unsigned long long)nlat);
	return 0;
}

int kvbench_cmd(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	if (n >= 3 && strcmp(tok[2], "load") == 0)
		return kv_load(d, n, tok, out);
	if (n >= 3 && strcmp(tok[2], "get") == 0)
		return kv_get(d, n, tok, out);
	return cmd_error(out, -EINVAL,
			 "usage: bench kv load KEYS KSIZE:VSIZE FIRST COUNT | bench kv get KEYS "
			 "KSIZE:VSIZE THETA SECONDS [DEPTH]");
}
