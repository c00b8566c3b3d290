/*
 * kvcmd.c - `kv ...` admin commands (kvcmd.h): each a call of kv.h on the
 * node's own thread, as an application inside the node would make it.
 *
 * Tables stay open once used: a handle caches the table's directory, so a
 * `farm kv load` of many batches does not re-read it for every line. The
 * handles live as long as the process (a node serves one cluster), kept in
 * a small table here rather than in struct farmd so that this feature is
 * one file and one dispatch line.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <farm/kv.h>

#include "kvcmd.h"
#include "proto.h"

#define KV_TABLES 16

static struct {
	char name[FARM_KV_NAME_MAX + 1];
	struct farm_kv *kv;
} tables[KV_TABLES];

static uint8_t key[FARM_KV_KEY_MAX + 1], val[FARM_KV_VAL_MAX + 1];
static char hexbuf[2 * FARM_KV_VAL_MAX + 1];

/* The open handle of `name`; creates the table when `create`. */
static int table(struct farmd *d, const char *name, bool create, struct farm_kv **out)
{
	struct farm_kv_opts o = {create ? FARM_KV_CREATE : 0, 0};
	int free_at = -1, rc;

	for (int i = 0; i < KV_TABLES; i++) {
		if (tables[i].kv && !strcmp(tables[i].name, name)) {
			*out = tables[i].kv;
			return 0;
		}
		if (!tables[i].kv && free_at < 0)
			free_at = i;
	}
	if ((rc = farm_kv_open(d->f, name, &o, out)))
		return rc;
	if (free_at < 0) { /* full: the oldest goes */
		farm_kv_close(tables[0].kv);
		memmove(&tables[0], &tables[1], sizeof(tables[0]) * (KV_TABLES - 1));
		free_at = KV_TABLES - 1;
	}
	snprintf(tables[free_at].name, sizeof(tables[free_at].name), "%s", name);
	tables[free_at].kv = *out;
	return 0;
}

/* Decode hex (or "-": empty) into dst; the length, or -1. */
static long unhex(const char *s, uint8_t *dst, size_t max)
{
	if (!strcmp(s, "-"))
		return 0;
	return farm_hex_decode(s, dst, max);
}

static int bad_key(struct sbuf *out, const char *what, const char *s, long n)
{
	if (n == -EFBIG)
		return cmd_error(out, -ENAMETOOLONG, "%s: key longer than %u bytes", what,
				 FARM_KV_KEY_MAX);
	if (n == 0)
		return cmd_error(out, -EINVAL, "%s: empty key", what);
	return cmd_error(out, -EINVAL, "%s: KEY must be hex, got '%.40s'", what, s);
}

static int bad_val(struct sbuf *out, const char *what, const char *s, long n)
{
	if (n == -EFBIG)
		return cmd_error(out, -EFBIG, "%s: value longer than %u bytes", what,
				 FARM_KV_VAL_MAX);
	return cmd_error(out, -EINVAL, "%s: VALUE must be hex or '-', got '%.40s'", what, s);
}

static int lib_error(struct sbuf *out, const char *what, const char *table_name, int rc)
{
	if (rc == -ENOENT)
		return cmd_error(out, rc, "%s: no such key in table '%s' (or no such table)", what,
				 table_name);
	if (rc == -ECANCELED)
		return cmd_error(out, rc, "%s: the item has another version", what);
	if (rc == -EEXIST)
		return cmd_error(out, rc, "%s: the key is already there", what);
	return cmd_error(out, rc, "%s: %s", what, farm_strerror(rc));
}

static int parse_ver(const char *s, uint64_t *v)
{
	char *end;

	*v = strtoull(s, &end, 0);
	return *end || !*s || s[0] == '-' ? -EINVAL : 0;
}

static void ok_head(struct farmd *d, struct sbuf *out, const char *op, const char *name)
{
	sb_printf(out, "{\"ok\":true,\"node\":%u,\"op\":\"%s\",\"table\":", d->id, op);
	sb_json_str(out, name);
}

static int kv_get(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	struct farm_kv *kv;
	size_t vl = 0;
	uint64_t ver = 0;
	long kl;
	int rc;

	if (n != 4)
		return cmd_error(out, -EINVAL, "usage: kv get TABLE KEY");
	if ((kl = unhex(tok[3], key, FARM_KV_KEY_MAX)) <= 0)
		return bad_key(out, "kv get", tok[3], kl);
	if ((rc = table(d, tok[2], false, &kv)))
		return lib_error(out, "kv get", tok[2], rc);
	if ((rc = farm_kv_get(kv, key, (size_t)kl, val, sizeof(val), &vl, &ver)))
		return lib_error(out, "kv get", tok[2], rc);
	ok_head(d, out, "get", tok[2]);
	farm_hex_encode(val, vl, hexbuf);
	sb_printf(out, ",\"len\":%zu,\"version\":%llu,\"hex\":\"%s\"}\n", vl,
		  (unsigned long long)ver, hexbuf);
	return 0;
}

static int kv_put(struct farmd *d, int n, char **tok, struct sbuf *out, bool cas)
{
	enum farm_kv_mode mode = FARM_KV_SET;
	const char *what = cas ? "kv cas" : "kv put";
	struct farm_kv *kv;
	uint64_t ver = 0, expect = 0;
	long kl, vl;
	int rc;

	if (cas ? n != 6 : (n != 5 && n != 6))
		return cmd_error(out, -EINVAL,
				 cas ? "usage: kv cas TABLE KEY VERSION VALUE"
				     : "usage: kv put TABLE KEY VALUE [set|add|replace]");
	if ((kl = unhex(tok[3], key, FARM_KV_KEY_MAX)) <= 0)
		return bad_key(out, what, tok[3], kl);
	if (cas && (parse_ver(tok[4], &expect) || !expect))
		return cmd_error(out, -EINVAL, "kv cas: VERSION must be a nonzero number, got '%s'",
				 tok[4]);
	const char *vs = tok[cas ? 5 : 4];
	if ((vl = unhex(vs, val, FARM_KV_VAL_MAX)) < 0)
		return bad_val(out, what, vs, vl);
	if (!cas && n == 6) {
		if (!strcmp(tok[5], "add"))
			mode = FARM_KV_ADD;
		else if (!strcmp(tok[5], "replace"))
			mode = FARM_KV_REPLACE;
		else if (strcmp(tok[5], "set"))
			return cmd_error(out, -EINVAL, "kv put: mode must be set, add or replace");
	}
	if ((rc = table(d, tok[2], !cas, &kv)))
		return lib_error(out, what, tok[2], rc);
	rc = cas ? farm_kv_cas(kv, key, (size_t)kl, expect, val, (size_t)vl, &ver)
		 : farm_kv_put(kv, key, (size_t)kl, val, (size_t)vl, mode, &ver);
	if (rc)
		return lib_error(out, what, tok[2], rc);
	ok_head(d, out, cas ? "cas" : "put", tok[2]);
	sb_printf(out, ",\"len\":%ld,\"version\":%llu}\n", vl, (unsigned long long)ver);
	return 0;
}

static int kv_del(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	struct farm_kv *kv;
	uint64_t expect = 0;
	long kl;
	int rc;

	if (n != 4 && n != 5)
		return cmd_error(out, -EINVAL, "usage: kv del TABLE KEY [VERSION]");
	if ((kl = unhex(tok[3], key, FARM_KV_KEY_MAX)) <= 0)
		return bad_key(out, "kv del", tok[3], kl);
	if (n == 5 && (parse_ver(tok[4], &expect) || !expect))
		return cmd_error(out, -EINVAL, "kv del: VERSION must be a nonzero number, got '%s'",
				 tok[4]);
	if ((rc = table(d, tok[2], false, &kv)))
		return lib_error(out, "kv del", tok[2], rc);
	if ((rc = farm_kv_del(kv, key, (size_t)kl, expect)))
		return lib_error(out, "kv del", tok[2], rc);
	ok_head(d, out, "del", tok[2]);
	sb_printf(out, "}\n");
	return 0;
}

/* KEY=VAL,KEY=VAL,...: decoded, then stored with farm_kv_mput (several
 * items per transaction). The reply of a failure says how many items went
 * in and which one failed first. */
#define LOAD_MAX 1024

static int kv_load(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	static struct farm_kv_put_item items[LOAD_MAX];
	static uint8_t *bufs;
	struct farm_kv *kv;
	size_t used = 0, m = 0;
	int rc = 0, stored;
	char msg[160];

	if (n != 4)
		return cmd_error(out, -EINVAL, "usage: kv load TABLE KEY=VALUE[,KEY=VALUE...]");
	/* Decoded bytes are never longer than the hex of the line. */
	if (!bufs && !(bufs = malloc(FARM_ADMIN_LINE_MAX)))
		return cmd_error(out, -ENOMEM, "kv load: out of memory");
	for (char *p = tok[3], *next; p && *p; p = next) {
		char *eq = strchr(p, '=');
		next = strchr(p, ',');
		if (next)
			*next++ = '\0';
		if (m == LOAD_MAX) {
			rc = -E2BIG;
			break;
		}
		if (!eq || (next && eq > next)) {
			rc = -EINVAL;
			break;
		}
		*eq = '\0';
		long kl = farm_hex_decode(p, bufs + used, FARM_KV_KEY_MAX);
		if (kl <= 0) {
			rc = kl == -EFBIG ? -ENAMETOOLONG : -EINVAL;
			break;
		}
		items[m].key = bufs + used;
		items[m].klen = (size_t)kl;
		used += (size_t)kl;
		long vl = farm_hex_decode(eq + 1, bufs + used, FARM_KV_VAL_MAX);
		if (vl < 0) {
			rc = (int)vl;
			break;
		}
		items[m].val = bufs + used;
		items[m++].vlen = (size_t)vl;
		used += (size_t)vl;
	}
	if (rc) {
		snprintf(msg, sizeof(msg), "kv load: item %zu: %s", m + 1,
			 rc == -EINVAL	? "not KEY=VALUE in hex, or an empty key"
			 : rc == -E2BIG ? "more than 1024 items in one line"
					: farm_strerror(rc));
		return cmd_error(out, rc, "%s (nothing stored)", msg);
	}
	if ((rc = table(d, tok[2], true, &kv)))
		return lib_error(out, "kv load", tok[2], rc);
	stored = farm_kv_mput(kv, items, m);
	for (size_t i = 0; i < m; i++) {
		if (!items[i].rc)
			continue;
		sb_printf(out, "{\"ok\":false,\"code\":%d,\"stored\":%d,\"error\":", items[i].rc,
			  stored);
		snprintf(msg, sizeof(msg), "kv load: item %zu: %s", i + 1,
			 farm_strerror(items[i].rc));
		sb_json_str(out, msg);
		sb_printf(out, "}\n");
		return items[i].rc;
	}
	ok_head(d, out, "load", tok[2]);
	sb_printf(out, ",\"stored\":%d}\n", stored);
	return 0;
}

static int kv_scan(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	struct farm_kv *kv;
	struct farm_kv_scan sc;
	struct farm_kv_stats st;
	int rc;

	if (n != 3)
		return cmd_error(out, -EINVAL, "usage: kv scan-stats TABLE");
	if ((rc = table(d, tok[2], false, &kv)))
		return lib_error(out, "kv scan-stats", tok[2], rc);
	uint64_t t0 = farmd_now_ns();
	if ((rc = farm_kv_scan_stats(kv, &sc)))
		return lib_error(out, "kv scan-stats", tok[2], rc);
	farm_kv_get_stats(kv, &st);
	ok_head(d, out, "scan-stats", tok[2]);
	sb_printf(out,
		  ",\"keys\":%llu,\"inline_keys\":%llu,\"ool_keys\":%llu,\"ovf_keys\":%llu,"
		  "\"segments\":%llu,\"slots\":%llu,\"load\":%.4f,\"global_depth\":%u,"
		  "\"min_local_depth\":%u,\"max_local_depth\":%u,\"neighbourhood\":%u,"
		  "\"key_bytes\":%llu,\"val_bytes\":%llu,\"dist\":[",
		  (unsigned long long)sc.keys, (unsigned long long)sc.inline_keys,
		  (unsigned long long)sc.ool_keys, (unsigned long long)sc.ovf_keys,
		  (unsigned long long)sc.segments, (unsigned long long)sc.slots, sc.load,
		  sc.global_depth, sc.min_local_depth, sc.max_local_depth, sc.neighbourhood,
		  (unsigned long long)sc.key_bytes, (unsigned long long)sc.val_bytes);
	for (uint32_t i = 0; i < sc.neighbourhood && i < 16; i++)
		sb_printf(out, "%s%llu", i ? "," : "", (unsigned long long)sc.dist[i]);
	sb_printf(out,
		  "],\"scan_ms\":%.1f,\"handle\":{\"gets\":%llu,\"puts\":%llu,\"dels\":%llu,"
		  "\"tx_commits\":%llu,\"tx_aborts\":%llu,\"splits\":%llu,\"displacements\":%llu,"
		  "\"dir_refreshes\":%llu}}\n",
		  (double)(farmd_now_ns() - t0) / 1e6, (unsigned long long)st.gets,
		  (unsigned long long)st.puts, (unsigned long long)st.dels,
		  (unsigned long long)st.tx_commits, (unsigned long long)st.tx_aborts,
		  (unsigned long long)st.splits, (unsigned long long)st.displacements,
		  (unsigned long long)st.dir_refreshes);
	return 0;
}

int kv_cmd(struct farmd *d, int n, char **tok, struct sbuf *out)
{
	if (n >= 3 && strlen(tok[2]) > FARM_KV_NAME_MAX)
		return cmd_error(out, -EINVAL, "kv: table names are 1..%u bytes", FARM_KV_NAME_MAX);
	if (n >= 2 && !strcmp(tok[1], "get"))
		return kv_get(d, n, tok, out);
	if (n >= 2 && !strcmp(tok[1], "put"))
		return kv_put(d, n, tok, out, false);
	if (n >= 2 && !strcmp(tok[1], "cas"))
		return kv_put(d, n, tok, out, true);
	if (n >= 2 && !strcmp(tok[1], "del"))
		return kv_del(d, n, tok, out);
	if (n >= 2 && !strcmp(tok[1], "load"))
		return kv_load(d, n, tok, out);
	if (n >= 2 && !strcmp(tok[1], "scan-stats"))
		return kv_scan(d, n, tok, out);
	return cmd_error(out, -EINVAL,
			 "usage: kv get|put|cas|del|load|scan-stats TABLE ... (keys and values "
			 "in hex)");
}
