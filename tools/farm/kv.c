/*
 * kv.c - `farm kv get | put | del | load | scan-stats`: the key-value store
 * (include/farm/kv.h) from the command line, through a node's admin socket
 * (the node runs the calls, as an application inside it would).
 *
 * Keys and values come from the arguments or from stdin ("-", or a value
 * left out), as text or, with --hex, as hex digits; they travel to the
 * node in hex either way, so any bytes work. `load` reads KEY<TAB>VALUE
 * lines (or KEY VALUE: the first tab, else the first space, separates) and
 * sends them in batches, with a progress line on stderr every second.
 * Mistakes in arguments or input lines are exit 2 before anything is sent
 * where possible; a missing key or table is exit 1.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <farm/kv.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

#define CALL_TIMEOUT_MS 30000
/* Items per `kv load` line (the node takes up to 1024) and hex bytes per
 * line (the node's line limit, less the command and table name): the
 * admin socket costs the node up to a few milliseconds per line, so lines
 * are long. */
#define LOAD_ITEMS	1000
#define LOAD_LINE_BYTES (FARM_ADMIN_LINE_MAX - 128u)

static const char kv_usage[] =
    "usage: farm kv get KEY [--raw|--hex]                 print the value of KEY\n"
    "       farm kv put KEY [VALUE] [--add|--replace|--cas VERSION]\n"
    "       farm kv del KEY [--version VERSION]\n"
    "       farm kv load [FILE] [--batch N] [--no-progress]   KEY<TAB>VALUE lines\n"
    "       farm kv scan-stats                            the table's shape\n"
    "  common: [--table NAME] [--hex] [--node N] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "The key-value store of the cluster: a hopscotch hashtable in FaRM's shared\n"
    "address space (docs/kv.md). --table picks the table (default 'default');\n"
    "put and load create it. KEY '-' reads the key from stdin; a VALUE left out\n"
    "or '-' is read from stdin (all of it). --hex: keys and values (arguments,\n"
    "stdin, load lines) are hex digits, and get prints hex. Keys are 1..250\n"
    "bytes, values 0..60416. put prints version=V (the item's version, for\n"
    "--cas and --version); with --add it fails if the key exists, with\n"
    "--replace if it does not, with --cas unless the version is still V.\n"
    "load sends lines in batches (--batch, at most and by default 1000 keys) and\n"
    "shows progress on stderr every second; it prints stored= seconds=\n"
    "keys_per_sec=.\n"
    "Exit status: 0 success, 1 runtime failure (missing key or table too),\n"
    "2 bad arguments or input.\n";

struct kvc {
	struct cli c;
	const char *table, *node;
	bool hex;
	uint32_t id;
};

static int pick_node(struct kvc *k)
{
	static struct farm_config cfg;
	int rc;

	if (rundir_resolve(&k->c) < 0)
		usage_fail(&k->c, "run directory path too long");
	if ((rc = cluster_load(&k->c, &cfg)))
		return rc;
	if (cfg.nmembers == 0)
		return fail(&k->c, "%s has no members", k->c.conf_path);
	if (!k->node) {
		k->id = cfg.members[0].id;
		return 0;
	}
	k->id = (uint32_t)parse_num(&k->c, "--node", k->node, 1, UINT32_MAX);
	for (uint32_t i = 0; i < cfg.nmembers; i++)
		if (cfg.members[i].id == k->id)
			return 0;
	usage_fail(&k->c, "--node %u is not a member of cluster '%s'", k->id, cfg.cluster);
}

static void check_table(struct kvc *k)
{
	size_t n = strlen(k->table);

	if (n == 0 || n > FARM_KV_NAME_MAX || strcspn(k->table, " \t\r\n=,") != n)
		usage_fail(&k->c, "--table must be 1..%u bytes without spaces, got '%s'",
			   FARM_KV_NAME_MAX, k->table);
}

/* All of stdin (binary-safe). */
static char *read_stdin(size_t *len)
{
	size_t cap = 4096, n = 0, r;
	char *b = malloc(cap);

	while (b && (r = fread(b + n, 1, cap - n, stdin)) > 0) {
		n += r;
		if (n == cap) {
			char *nb = realloc(b, cap *= 2);
			if (!nb) {
				free(b);
				return NULL;
			}
			b = nb;
		}
	}
	*len = n;
	return b;
}

/* The bytes of an argument: text, or hex with --hex. *out is malloc'd. */
static size_t arg_bytes(struct kvc *k, const char *what, const char *s, size_t len, uint8_t **out)
{
	if (!k->hex) {
		*out = malloc(len + 1);
		if (!*out)
			exit(1);
		memcpy(*out, s, len);
		return len;
	}
	char *t = malloc(len + 1);
	if (!t)
		exit(1);
	memcpy(t, s, len);
	t[len] = '\0';
	while (len && (t[len - 1] == '\n' || t[len - 1] == '\r')) /* stdin's newline */
		t[--len] = '\0';
	*out = malloc(len / 2 + 1);
	long n = *out ? farm_hex_decode(t, *out, len / 2 + 1) : -ENOMEM;
	free(t);
	if (n < 0)
		usage_fail(&k->c, "%s must be hex digits (an even number of them)", what);
	return (size_t)n;
}

/* A key from an argument or ("-") stdin, checked; returns it in hex. */
static char *key_hex(struct kvc *k, const char *arg)
{
	uint8_t *b;
	size_t n;

	if (!strcmp(arg, "-")) {
		size_t len;
		char *in = read_stdin(&len);
		if (!in)
			return NULL;
		if (!k->hex && len && in[len - 1] == '\n') /* one line's newline */
			len--;
		n = arg_bytes(k, "KEY", in, len, &b);
		free(in);
	} else {
		n = arg_bytes(k, "KEY", arg, strlen(arg), &b);
	}
	if (n == 0)
		usage_fail(&k->c, "KEY must not be empty");
	if (n > FARM_KV_KEY_MAX)
		usage_fail(&k->c, "KEY is %zu bytes; keys are at most %u", n, FARM_KV_KEY_MAX);
	char *h = malloc(2 * n + 1);
	if (!h)
		exit(1);
	farm_hex_encode(b, n, h);
	free(b);
	return h;
}

static int call(struct kvc *k, const char *line, struct json **j)
{
	char err[512], *raw = NULL;
	int rc = admin_query(k->c.run_dir, k->id, line, CALL_TIMEOUT_MS, &raw, j, err, sizeof(err));

	if (rc < 0) {
		if (k->c.json && raw) {
			puts(raw);
			k->c.json = false;
		}
		free(raw);
		json_free(*j);
		*j = NULL;
		return fail(&k->c, "%s", err);
	}
	if (k->c.json)
		puts(raw);
	free(raw);
	return 0;
}

static char *line_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *line_printf(const char *fmt, ...)
{
	va_list ap;
	char *s = NULL;

	va_start(ap, fmt);
	if (vasprintf(&s, fmt, ap) < 0)
		s = NULL;
	va_end(ap);
	if (!s)
		exit(1);
	return s;
}

static int kv_get(struct kvc *k, char **pos, int npos, bool raw)
{
	struct json *j;
	int rc;

	if (npos != 1)
		usage_fail(&k->c, "get takes one KEY");
	if (raw && (k->hex || k->c.json))
		usage_fail(&k->c, "--raw excludes --hex and --json");
	char *kh = key_hex(k, pos[0]);
	if ((rc = pick_node(k)))
		return rc;
	char *line = line_printf("kv get %s %s", k->table, kh);
	rc = call(k, line, &j);
	free(line);
	free(kh);
	if (rc)
		return rc;
	if (!k->c.json) {
		const char *hex = json_str(j, "hex");
		if (k->hex) {
			printf("%s\n", hex ? hex : "");
		} else {
			size_t n = hex ? strlen(hex) / 2 : 0;
			uint8_t *b = malloc(n + 1);
			if (!b || farm_hex_decode(hex ? hex : "", b, n) != (long)n) {
				free(b);
				json_free(j);
				return fail(&k->c, "node %u sent bad hex", k->id);
			}
			fwrite(b, 1, n, stdout);
			if (!raw)
				putchar('\n');
			free(b);
		}
	}
	json_free(j);
	return 0;
}

static int kv_put(struct kvc *k, char **pos, int npos, bool add, bool replace, const char *cas)
{
	struct json *j;
	uint64_t expect = 0;
	uint8_t *v;
	size_t vn;
	int rc;

	if (npos < 1 || npos > 2)
		usage_fail(&k->c, "put takes KEY [VALUE]");
	if (add + replace + (cas != NULL) > 1)
		usage_fail(&k->c, "--add, --replace and --cas exclude each other");
	if (cas && (farm_size_parse(cas, &expect) < 0 || expect == 0))
		usage_fail(&k->c, "--cas needs a nonzero VERSION, got '%s'", cas);
	bool from_stdin = npos == 1 || !strcmp(pos[1], "-");
	if (from_stdin && !strcmp(pos[0], "-"))
		usage_fail(&k->c, "KEY and VALUE cannot both come from stdin");
	char *kh = key_hex(k, pos[0]);
	if (from_stdin) {
		size_t len;
		char *in = read_stdin(&len);
		if (!in)
			return fail(&k->c, "reading stdin: out of memory");
		vn = arg_bytes(k, "VALUE", in, len, &v);
		free(in);
	} else {
		vn = arg_bytes(k, "VALUE", pos[1], strlen(pos[1]), &v);
	}
	if (vn > FARM_KV_VAL_MAX)
		usage_fail(&k->c, "VALUE is %zu bytes; values are at most %u", vn, FARM_KV_VAL_MAX);
	char *vh = malloc(2 * vn + 2);
	if (!vh)
		exit(1);
	if (vn)
		farm_hex_encode(v, vn, vh);
	else
		strcpy(vh, "-");
	free(v);
	if ((rc = pick_node(k)))
		return rc;
	char *line =
	    cas ? line_printf("kv cas %s %s %llu %s", k->table, kh, (unsigned long long)expect, vh)
		: line_printf("kv put %s %s %s %s", k->table, kh, vh,
			      add	? "add"
			      : replace ? "replace"
					: "set");
	rc = call(k, line, &j);
	free(line);
	free(kh);
	free(vh);
	if (rc)
		return rc;
	if (!k->c.json)
		printf("version=%llu\n", (unsigned long long)json_u64(j, "version"));
	json_free(j);
	return 0;
}

static int kv_del(struct kvc *k, char **pos, int npos, const char *version)
{
	struct json *j;
	uint64_t expect = 0;
	int rc;

	if (npos != 1)
		usage_fail(&k->c, "del takes one KEY");
	if (version && (farm_size_parse(version, &expect) < 0 || expect == 0))
		usage_fail(&k->c, "--version needs a nonzero VERSION, got '%s'", version);
	char *kh = key_hex(k, pos[0]);
	if ((rc = pick_node(k)))
		return rc;
	char *line =
	    expect ? line_printf("kv del %s %s %llu", k->table, kh, (unsigned long long)expect)
		   : line_printf("kv del %s %s", k->table, kh);
	rc = call(k, line, &j);
	free(line);
	free(kh);
	if (rc)
		return rc;
	if (!k->c.json)
		printf("deleted\n");
	json_free(j);
	return 0;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* "KEYHEX=VALHEX" of one input line into *item (grown as needed); its
 * length. Exit 2 on a bad line. */
static size_t load_item(struct kvc *k, char *ln, size_t len, unsigned long lineno, char **item,
			size_t *icap)
{
	char *sep = memchr(ln, '\t', len);
	if (!sep)
		sep = memchr(ln, ' ', len);
	size_t kl = sep ? (size_t)(sep - ln) : len, vl = sep ? len - kl - 1 : 0;
	uint8_t *kb, *vb;
	char what[64];

	snprintf(what, sizeof(what), "line %lu: KEY", lineno);
	size_t kn = arg_bytes(k, what, ln, kl, &kb);
	snprintf(what, sizeof(what), "line %lu: VALUE", lineno);
	size_t vn = arg_bytes(k, what, sep ? sep + 1 : "", vl, &vb);
	if (kn == 0 || kn > FARM_KV_KEY_MAX || vn > FARM_KV_VAL_MAX)
		usage_fail(&k->c, "line %lu: %s", lineno,
			   kn == 0		  ? "empty key"
			   : kn > FARM_KV_KEY_MAX ? "key longer than 250 bytes"
						  : "value longer than 60416 bytes");
	size_t need = 2 * (kn + vn) + 2;
	if (need > *icap) {
		*icap = need;
		*item = realloc(*item, *icap);
		if (!*item)
			exit(1);
	}
	char *p = *item;
	farm_hex_encode(kb, kn, p);
	p += 2 * kn;
	*p++ = '=';
	farm_hex_encode(vb, vn, p);
	p += 2 * vn;
	free(kb);
	free(vb);
	return (size_t)(p - *item);
}

static int load_send(struct kvc *k, const char *batch, uint64_t *stored)
{
	char err[512], *raw = NULL, *line = line_printf("kv load %s %s", k->table, batch);
	struct json *j = NULL;
	int rc =
	    admin_query(k->c.run_dir, k->id, line, CALL_TIMEOUT_MS, &raw, &j, err, sizeof(err));

	free(line);
	if (j)
		*stored += json_u64(j, "stored");
	free(raw);
	json_free(j);
	if (rc < 0)
		return fail(&k->c, "after %llu keys: %s", (unsigned long long)*stored, err);
	return 0;
}

static int kv_load(struct kvc *k, char **pos, int npos, const char *batch_s, bool quiet)
{
	FILE *in = stdin;
	long per = batch_s ? parse_num(&k->c, "--batch", batch_s, 1, LOAD_ITEMS) : LOAD_ITEMS;
	char *ln = NULL, *item = NULL, *batch = malloc(LOAD_LINE_BYTES + 1);
	size_t cap = 0, icap = 0, blen = 0;
	unsigned long lineno = 0, inbatch = 0;
	uint64_t stored = 0;
	double t0, last;
	ssize_t n;
	int rc;

	if (!batch)
		return fail(&k->c, "out of memory");
	if (npos > 1)
		usage_fail(&k->c, "load takes at most one FILE");
	if (npos == 1 && strcmp(pos[0], "-")) {
		in = fopen(pos[0], "r");
		if (!in)
			usage_fail(&k->c, "cannot open '%s': %s", pos[0], strerror(errno));
	}
	if ((rc = pick_node(k)))
		goto out;
	t0 = last = now_s();
	for (;;) {
		size_t ilen = 0;
		if ((n = getline(&ln, &cap, in)) >= 0) {
			lineno++;
			while (n && (ln[n - 1] == '\n' || ln[n - 1] == '\r'))
				ln[--n] = '\0';
			if (n == 0)
				continue; /* blank lines are fine */
			ilen = load_item(k, ln, (size_t)n, lineno, &item, &icap);
		}
		/* Send what is batched when this item would not fit, the batch
		 * is full, or the input ended. */
		if (blen &&
		    (n < 0 || inbatch == (unsigned long)per || blen + 1 + ilen > LOAD_LINE_BYTES)) {
			batch[blen] = '\0';
			if ((rc = load_send(k, batch, &stored)))
				goto out;
			blen = 0;
			inbatch = 0;
			double now = now_s();
			if (!quiet && now - last >= 1.0) {
				progress(&k->c, "kv load: %llu keys, %.0f keys/s",
					 (unsigned long long)stored, (double)stored / (now - t0));
				last = now;
			}
		}
		if (n < 0)
			break;
		if (blen)
			batch[blen++] = ',';
		memcpy(batch + blen, item, ilen);
		blen += ilen;
		inbatch++;
	}
	double secs = now_s() - t0;
	if (k->c.json)
		printf("{\"ok\":true,\"table\":\"%s\",\"stored\":%llu,\"seconds\":%.3f,"
		       "\"keys_per_sec\":%.0f}\n",
		       k->table, (unsigned long long)stored, secs,
		       secs > 0 ? (double)stored / secs : 0.0);
	else
		printf("stored=%llu seconds=%.3f keys_per_sec=%.0f\n", (unsigned long long)stored,
		       secs, secs > 0 ? (double)stored / secs : 0.0);
	rc = 0;
out:
	free(ln);
	free(item);
	free(batch);
	if (in != stdin)
		fclose(in);
	return rc;
}

static int kv_scan(struct kvc *k, int npos)
{
	struct json *j;
	int rc;

	if (npos != 0)
		usage_fail(&k->c, "scan-stats takes no arguments");
	if ((rc = pick_node(k)))
		return rc;
	char *line = line_printf("kv scan-stats %s", k->table);
	rc = call(k, line, &j);
	free(line);
	if (rc)
		return rc;
	if (!k->c.json) {
		static const char *const fields[] = {
		    "keys",	     "inline_keys",	"ool_keys",
		    "ovf_keys",	     "segments",	"slots",
		    "global_depth",  "min_local_depth", "max_local_depth",
		    "neighbourhood", "key_bytes",	"val_bytes",
		};
		printf("table=%s", k->table);
		for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
			printf(" %s=%llu", fields[i], (unsigned long long)json_u64(j, fields[i]));
		printf(" load=%.3f dist=", json_num(j, "load"));
		const struct json *d = json_get(j, "dist");
		for (size_t i = 0; d && i < d->n; i++)
			printf("%s%llu", i ? "," : "", (unsigned long long)d->kids[i]->u64);
		printf("\n");
	}
	json_free(j);
	return 0;
}

int cmd_kv(int argc, char **argv)
{
	struct kvc k = {.c = {.cmd = "kv", .usage = kv_usage}, .table = "default"};
	const char *cas = NULL, *version = NULL, *batch = NULL;
	bool raw = false, add = false, replace = false, quiet = false;
	const struct opt opts[] = {
	    {"table", 't', true, &k.table, NULL}, {"node", 0, true, &k.node, NULL},
	    {"hex", 0, false, NULL, &k.hex},	  {"raw", 0, false, NULL, &raw},
	    {"add", 0, false, NULL, &add},	  {"replace", 0, false, NULL, &replace},
	    {"cas", 0, true, &cas, NULL},	  {"version", 0, true, &version, NULL},
	    {"batch", 0, true, &batch, NULL},	  {"no-progress", 0, false, NULL, &quiet},
	    {NULL, 0, false, NULL, NULL},
	};
	char *all[4], **pos = all + 1;
	int npos;

	if (argc < 1) {
		fputs(kv_usage, stderr);
		return EXIT_USAGE;
	}
	/* Options may come before or after the subcommand. */
	opts_parse(&k.c, opts, argc, argv, all, 4, &npos);
	if (npos-- == 0)
		usage_fail(&k.c, "a subcommand is needed (get, put, del, load, scan-stats)");
	const char *sub = all[0];
	check_table(&k);
	bool put_opts = add || replace || cas, get_opts = raw;
	if (!strcmp(sub, "get") && !put_opts && !version && !batch && !quiet)
		return kv_get(&k, pos, npos, raw);
	if (!strcmp(sub, "put") && !get_opts && !version && !batch && !quiet)
		return kv_put(&k, pos, npos, add, replace, cas);
	if (!strcmp(sub, "del") && !put_opts && !get_opts && !batch && !quiet)
		return kv_del(&k, pos, npos, version);
	if (!strcmp(sub, "load") && !put_opts && !get_opts && !version)
		return kv_load(&k, pos, npos, batch, quiet);
	if (!strcmp(sub, "scan-stats") && !put_opts && !get_opts && !version && !batch && !quiet)
		return kv_scan(&k, npos);
	if (!strcmp(sub, "get") || !strcmp(sub, "put") || !strcmp(sub, "del") ||
	    !strcmp(sub, "load") || !strcmp(sub, "scan-stats"))
		usage_fail(&k.c, "an option given does not apply to 'kv %s'", sub);
	usage_fail(&k.c, "unknown subcommand '%s' (get, put, del, load, scan-stats)", sub);
}
