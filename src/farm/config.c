/*
 * config.c - the static cluster configuration: defaults, the `key = value`
 * file format (farm.h shows it), and the checks.
 *
 * Strict on purpose: a typo in a config file must not silently start a
 * cluster with a default in its place, so unknown keys, repeated keys,
 * numbers with trailing junk, sizes that are not powers of two and
 * duplicate members are all refused with the line that holds them. The
 * checks that do not depend on a line (no members at all) name the last
 * line. Everything that can be left out has one meaning written down in
 * config.h, shared by the parser and by configs the CLI builds in memory.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static int fail(char *err, size_t errlen, int line, const char *fmt, ...)
{
	va_list ap;
	int n = 0;

	if (!err || errlen == 0)
		return -EINVAL;
	if (line > 0)
		n = snprintf(err, errlen, "line %d: ", line);
	if (n < 0 || (size_t)n >= errlen)
		return -EINVAL;
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

void farm_config_defaults(struct farm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	strcpy(cfg->cluster, "farm");
	strcpy(cfg->nic, "shm");
	cfg->region_size = FARM_DEFAULT_REGION_SIZE;
	cfg->regions = 0; /* 4 per member, resolved once the members are known */
	cfg->replicas = FARM_DEFAULT_REPLICAS;
	cfg->vnodes = FARM_DEFAULT_VNODES;
	cfg->config_id = 1;
}

unsigned farm__config_ndata(const struct farm_config *cfg)
{
	unsigned n = 0;

	for (uint32_t i = 0; i < cfg->nmembers; i++)
		n += !cfg->members[i].joining;
	return n;
}

unsigned farm__config_k(const struct farm_config *cfg)
{
	unsigned n = farm__config_ndata(cfg);

	return cfg->replicas < n ? cfg->replicas : n;
}

int farm__config_member(const struct farm_config *cfg, uint32_t id)
{
	for (uint32_t i = 0; i < cfg->nmembers && i < FARM_MAX_MEMBERS; i++)
		if (cfg->members[i].id == id)
			return (int)i;
	return -ENOENT;
}

/* Names that end up in paths and socket names: no spaces, no slashes. */
static bool name_ok(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("._-:", *s))
			return false;
	return true;
}

static bool nic_ok(const char *s)
{
	if (!strcmp(s, "shm") || !strcmp(s, "udp"))
		return true;
	if (!strncmp(s, "udp:", 4))
		return s[4] != 0;
	if (!strncmp(s, "xdp:", 4))
		return s[4] != 0;
	return false;
}

static bool pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* Checks of single fields, shared by the parser (which names the line) and
 * farm__config_finish (which checks configs built in memory). */
static int check_region_size(uint64_t v, char *err, size_t errlen, int line)
{
	if (!pow2(v) || v < FARM_MIN_REGION_SIZE || v > FARM_MAX_REGION_SIZE)
		return fail(err, errlen, line,
			    "region_size %" PRIu64 " must be a power of two in [64K, 2G]", v);
	return 0;
}

static int check_log_size(uint64_t v, char *err, size_t errlen, int line)
{
	if (!pow2(v) || v < FARM_MIN_LOG_SIZE || v > FARM_MAX_LOG_SIZE)
		return fail(err, errlen, line,
			    "log_size %" PRIu64 " must be a power of two in [4K, 1G]", v);
	return 0;
}

static int check_member(const struct farm_config *cfg, uint32_t upto, const struct farm_member *m,
			char *err, size_t errlen, int line)
{
	if (m->id == 0)
		return fail(err, errlen, line, "member id must be > 0");
	if (!name_ok(m->addr))
		return fail(err, errlen, line, "member %u: bad address '%s'", m->id, m->addr);
	if (m->netns[0] && !name_ok(m->netns))
		return fail(err, errlen, line, "member %u: bad netns '%s'", m->id, m->netns);
	for (uint32_t i = 0; i < upto; i++) {
		if (cfg->members[i].id == m->id)
			return fail(err, errlen, line, "duplicate member id %u", m->id);
		if (!strcmp(cfg->members[i].addr, m->addr) &&
		    !strcmp(cfg->members[i].netns, m->netns))
			return fail(err, errlen, line, "duplicate member address '%s'", m->addr);
	}
	return 0;
}

int farm__config_finish(struct farm_config *cfg, char *err, size_t errlen)
{
	int rc;

	if (!cfg)
		return -EINVAL;
	if (!name_ok(cfg->cluster) || strlen(cfg->cluster) >= sizeof(cfg->cluster))
		return fail(err, errlen, 0, "bad cluster name '%.64s'", cfg->cluster);
	if (!nic_ok(cfg->nic))
		return fail(err, errlen, 0, "bad nic '%.128s' (shm, udp[:ADDR], xdp:IF)", cfg->nic);
	if ((rc = check_region_size(cfg->region_size, err, errlen, 0)))
		return rc;
	if (cfg->nmembers == 0)
		return fail(err, errlen, 0, "no members");
	if (cfg->nmembers > FARM_MAX_MEMBERS)
		return fail(err, errlen, 0, "%u members, at most %u", cfg->nmembers,
			    FARM_MAX_MEMBERS);
	for (uint32_t i = 0; i < cfg->nmembers; i++)
		if ((rc = check_member(cfg, i, &cfg->members[i], err, errlen, 0)))
			return rc;
	if (farm__config_ndata(cfg) == 0)
		return fail(err, errlen, 0, "every member is joining: none holds the data");
	if (cfg->regions == 0)
		cfg->regions = FARM_DEFAULT_REGIONS_PER_MEMBER * cfg->nmembers;
	if (cfg->regions > FARM_MAX_REGIONS)
		return fail(err, errlen, 0, "regions %u, at most %u", cfg->regions,
			    FARM_MAX_REGIONS);
	if (cfg->replicas == 0 || cfg->replicas > 8)
		return fail(err, errlen, 0, "replicas %u must be in [1, 8]", cfg->replicas);
	if (cfg->vnodes == 0)
		cfg->vnodes = FARM_DEFAULT_VNODES;
	if (cfg->vnodes > FARM_MAX_VNODES)
		return fail(err, errlen, 0, "vnodes %u, at most %u", cfg->vnodes, FARM_MAX_VNODES);
	if (cfg->config_id == 0)
		return fail(err, errlen, 0, "config_id must be >= 1");
	if (cfg->log_size == 0)
		cfg->log_size = FARM_DEFAULT_LOG_SIZE;
	if ((rc = check_log_size(cfg->log_size, err, errlen, 0)))
		return rc;
	if (!cfg->run_dir[0]) {
		int n = snprintf(cfg->run_dir, sizeof(cfg->run_dir), "/run/farm/%s", cfg->cluster);
		if (n < 0 || (size_t)n >= sizeof(cfg->run_dir))
			return fail(err, errlen, 0, "run_dir too long");
	}
	return 0;
}

/* ---- parsing ------------------------------------------------------------ */

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/* A plain decimal number, optionally with a K/M/G (binary) suffix. */
static int parse_u64(const char *s, bool suffix, uint64_t max, uint64_t *out)
{
	uint64_t v = 0, mul = 1;

	if (!isdigit((unsigned char)*s))
		return -EINVAL;
	for (; isdigit((unsigned char)*s); s++) {
		unsigned d = (unsigned)(*s - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	if (*s && suffix) {
		switch (*s) {
		case 'k': case 'K': mul = 1ull << 10; break;
		case 'm': case 'M': mul = 1ull << 20; break;
		case 'g': case 'G': mul = 1ull << 30; break;
		default: return -EINVAL;
		}
		s++;
		if (*s == 'i' || *s == 'B')  /* "4Mi", "4MB" */
			s += *s == 'i' && s[1] == 'B' ? 2 : 1;
	}
	if (*s)
		return -EINVAL;
	if (v > UINT64_MAX / mul || v * mul > max)
		return -EINVAL;
	*out = v * mul;
	return 0;
}

static int set_str(char *dst, size_t cap, const char *v, char *err, size_t errlen, int line,
		   const char *key)
{
	size_t n = strlen(v);

	if (n == 0)
		return fail(err, errlen, line, "%s: empty value", key);
	if (n >= cap)
		return fail(err, errlen, line, "%s: longer than %zu bytes", key, cap - 1);
	memcpy(dst, v, n + 1);
	return 0;
}

static int parse_member(struct farm_config *cfg, char *v, char *err, size_t errlen, int line)
{
	struct farm_member m;
	char *tok[4], *save = NULL;
	int ntok = 0;
	uint64_t id;
	int rc;

	for (char *t = strtok_r(v, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
		if (ntok == 3)
			return fail(err, errlen, line, "member: expected 'ID ADDRESS [NETNS]'");
		tok[ntok++] = t;
	}
	if (ntok < 2)
		return fail(err, errlen, line, "member: expected 'ID ADDRESS [NETNS]'");
	if (parse_u64(tok[0], false, UINT32_MAX, &id))
		return fail(err, errlen, line, "member: bad id '%s'", tok[0]);
	if (cfg->nmembers >= FARM_MAX_MEMBERS)
		return fail(err, errlen, line, "more than %u members", FARM_MAX_MEMBERS);
	memset(&m, 0, sizeof(m));
	m.id = (uint32_t)id;
	if ((rc = set_str(m.addr, sizeof(m.addr), tok[1], err, errlen, line, "member address")))
		return rc;
	if (ntok == 3 &&
	    (rc = set_str(m.netns, sizeof(m.netns), tok[2], err, errlen, line, "member netns")))
		return rc;
	if ((rc = check_member(cfg, cfg->nmembers, &m, err, errlen, line)))
		return rc;
	cfg->members[cfg->nmembers++] = m;
	return 0;
}

enum {
	K_CLUSTER, K_NIC, K_REGION_SIZE, K_REGIONS, K_REPLICAS, K_VNODES, K_CONFIG_ID, K_RUN_DIR,
	K_MEMBER, K_LOG_SIZE, K_JOINING, K_COUNT
};
static const char *const key_names[K_COUNT] = {
	"cluster", "nic", "region_size", "regions", "replicas", "vnodes", "config_id", "run_dir",
	"member", "log_size", "joining",
};

/* joining = ID[,ID...]: members already listed (member lines come first). */
static int parse_joining(struct farm_config *cfg, char *v, char *err, size_t errlen, int line)
{
	char *save = NULL;

	for (char *tok = strtok_r(v, ", \t", &save); tok; tok = strtok_r(NULL, ", \t", &save)) {
		uint64_t id;
		int i;
		if (parse_u64(tok, false, UINT32_MAX, &id) || id == 0)
			return fail(err, errlen, line, "joining: bad member id '%s'", tok);
		if ((i = farm__config_member(cfg, (uint32_t)id)) < 0)
			return fail(err, errlen, line,
				    "joining: %s is not a member (member lines come first)", tok);
		cfg->members[i].joining = 1;
	}
	return 0;
}

static int parse_line(struct farm_config *cfg, char *s, int line, int *seen, char *err,
		      size_t errlen)
{
	char *eq = strchr(s, '='), *key, *val;
	uint64_t n;
	int k;

	if (!eq)
		return fail(err, errlen, line, "expected 'key = value'");
	*eq = 0;
	key = trim(s);
	val = trim(eq + 1);
	for (k = 0; k < K_COUNT && strcmp(key, key_names[k]); k++)
		;
	if (k == K_COUNT)
		return fail(err, errlen, line, "unknown key '%s'", key);
	if (k != K_MEMBER && seen[k])
		return fail(err, errlen, line, "'%s' given twice (first on line %d)", key, seen[k]);
	seen[k] = line;
	switch (k) {
	case K_CLUSTER:
		if (!name_ok(val))
			return fail(err, errlen, line, "bad cluster name '%s'", val);
		return set_str(cfg->cluster, sizeof(cfg->cluster), val, err, errlen, line, key);
	case K_NIC:
		if (!nic_ok(val))
			return fail(err, errlen, line, "bad nic '%s' (shm, udp[:ADDR], xdp:IF)", val);
		return set_str(cfg->nic, sizeof(cfg->nic), val, err, errlen, line, key);
	case K_RUN_DIR:
		return set_str(cfg->run_dir, sizeof(cfg->run_dir), val, err, errlen, line, key);
	case K_MEMBER:
		return parse_member(cfg, val, err, errlen, line);
	case K_JOINING:
		return parse_joining(cfg, val, err, errlen, line);
	case K_REGION_SIZE:
		if (parse_u64(val, true, UINT64_MAX, &n))
			return fail(err, errlen, line, "region_size: bad number '%s'", val);
		cfg->region_size = n;
		return check_region_size(n, err, errlen, line);
	case K_LOG_SIZE:
		if (parse_u64(val, true, UINT64_MAX, &n))
			return fail(err, errlen, line, "log_size: bad number '%s'", val);
		cfg->log_size = n <= UINT32_MAX ? (uint32_t)n : 0;
		return check_log_size(n, err, errlen, line);
	case K_REGIONS:
		if (parse_u64(val, false, FARM_MAX_REGIONS, &n) || n == 0)
			return fail(err, errlen, line, "regions: '%s' is not in [1, %u]", val,
				    FARM_MAX_REGIONS);
		cfg->regions = (uint32_t)n;
		return 0;
	case K_REPLICAS:
		if (parse_u64(val, false, 8, &n) || n == 0)
			return fail(err, errlen, line, "replicas: '%s' is not in [1, 8]", val);
		cfg->replicas = (uint32_t)n;
		return 0;
	case K_VNODES:
		if (parse_u64(val, false, FARM_MAX_VNODES, &n) || n == 0)
			return fail(err, errlen, line, "vnodes: '%s' is not in [1, %u]", val,
				    FARM_MAX_VNODES);
		cfg->vnodes = (uint32_t)n;
		return 0;
	case K_CONFIG_ID:
		if (parse_u64(val, false, UINT64_MAX, &n) || n == 0)
			return fail(err, errlen, line, "config_id: '%s' is not a number >= 1", val);
		cfg->config_id = n;
		return 0;
	}
	return fail(err, errlen, line, "unknown key '%s'", key);
}

int farm_config_parse(const char *text, struct farm_config *cfg, char *err, size_t errlen)
{
	int seen[K_COUNT] = {0}, line = 0, rc = 0;
	char buf[1024];
	const char *p;

	if (err && errlen)
		err[0] = 0;
	if (!text || !cfg)
		return fail(err, errlen, 0, "no text or no config");
	farm_config_defaults(cfg);
	for (p = text; *p && !rc;) {
		const char *nl = strchr(p, '\n');
		size_t n = nl ? (size_t)(nl - p) : strlen(p);
		char *hash, *s;

		line++;
		if (n >= sizeof(buf))
			return fail(err, errlen, line, "line longer than %zu bytes", sizeof(buf) - 1);
		memcpy(buf, p, n);
		buf[n] = 0;
		if (memchr(buf, 0, n))
			return fail(err, errlen, line, "NUL byte");
		if ((hash = strchr(buf, '#')))
			*hash = 0;
		s = trim(buf);
		if (*s)
			rc = parse_line(cfg, s, line, seen, err, errlen);
		p += n + (nl ? 1 : 0);
	}
	if (rc)
		return rc;
	if (cfg->nmembers == 0)
		return fail(err, errlen, line ? line : 1, "no 'member' lines (end of input)");
	/* Per-line checks passed; what remains is whole-config (defaults). */
	rc = farm__config_finish(cfg, err, errlen);
	if (rc && err && errlen && strncmp(err, "line ", 5)) {
		char tmp[256];
		snprintf(tmp, sizeof(tmp), "%s", err);
		fail(err, errlen, line, "%s", tmp);
	}
	return rc;
}

int farm_config_load(const char *path, struct farm_config *cfg, char *err, size_t errlen)
{
	FILE *fp;
	char *text;
	long len;
	size_t got;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!path || !cfg)
		return -EINVAL;
	fp = fopen(path, "r");
	if (!fp) {
		rc = -errno;
		if (err && errlen)
			snprintf(err, errlen, "%s: %s", path, strerror(-rc));
		return rc;
	}
	if (fseek(fp, 0, SEEK_END) || (len = ftell(fp)) < 0 || fseek(fp, 0, SEEK_SET)) {
		rc = -errno;
		fclose(fp);
		return rc ? rc : -EIO;
	}
	if (len > (1 << 20)) {
		fclose(fp);
		if (err && errlen)
			snprintf(err, errlen, "%s: larger than 1 MiB", path);
		return -EFBIG;
	}
	text = malloc((size_t)len + 1);
	if (!text) {
		fclose(fp);
		return -ENOMEM;
	}
	got = fread(text, 1, (size_t)len, fp);
	fclose(fp);
	text[got] = 0;
	if (memchr(text, 0, got)) {
		free(text);
		if (err && errlen)
			snprintf(err, errlen, "%s: NUL byte in file", path);
		return -EINVAL;
	}
	rc = farm_config_parse(text, cfg, err, errlen);
	if (rc && err && errlen) {
		char tmp[256];
		snprintf(tmp, sizeof(tmp), "%s", err);
		snprintf(err, errlen, "%s: %s", path, tmp);
	}
	free(text);
	return rc;
}

static int put(char *buf, size_t len, size_t *at, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + (*at < len ? *at : len), *at < len ? len - *at : 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return -EINVAL;
	*at += (size_t)n;
	return 0;
}

static void size_str(uint64_t v, char *out, size_t n)
{
	if (v && !(v & ((1ull << 30) - 1)))
		snprintf(out, n, "%" PRIu64 "G", v >> 30);
	else if (v && !(v & ((1ull << 20) - 1)))
		snprintf(out, n, "%" PRIu64 "M", v >> 20);
	else if (v && !(v & ((1ull << 10) - 1)))
		snprintf(out, n, "%" PRIu64 "K", v >> 10);
	else
		snprintf(out, n, "%" PRIu64, v);
}

int farm_config_format(const struct farm_config *cfg, char *buf, size_t len)
{
	size_t at = 0;
	char sz[32];

	if (!cfg || (!buf && len) || cfg->nmembers > FARM_MAX_MEMBERS)
		return -EINVAL;
	size_str(cfg->region_size, sz, sizeof(sz));
	put(buf, len, &at, "cluster = %s\nnic = %s\nregion_size = %s\n", cfg->cluster, cfg->nic,
	    sz);
	if (cfg->regions)
		put(buf, len, &at, "regions = %u\n", cfg->regions);
	put(buf, len, &at, "replicas = %u\nvnodes = %u\nconfig_id = %" PRIu64 "\n",
	    cfg->replicas, cfg->vnodes ? cfg->vnodes : FARM_DEFAULT_VNODES, cfg->config_id);
	if (cfg->run_dir[0])
		put(buf, len, &at, "run_dir = %s\n", cfg->run_dir);
	if (cfg->log_size) {
		size_str(cfg->log_size, sz, sizeof(sz));
		put(buf, len, &at, "log_size = %s\n", sz);
	}
	for (uint32_t i = 0; i < cfg->nmembers; i++) {
		const struct farm_member *m = &cfg->members[i];
		put(buf, len, &at, "member = %u %s%s%s\n", m->id, m->addr, m->netns[0] ? " " : "",
		    m->netns);
	}
	for (uint32_t i = 0, n = 0; i < cfg->nmembers; i++)
		if (cfg->members[i].joining)
			put(buf, len, &at, "%s%u", n++ ? "," : "joining = ", cfg->members[i].id);
	for (uint32_t i = 0; i < cfg->nmembers; i++)
		if (cfg->members[i].joining) {
			put(buf, len, &at, "\n");
			break;
		}
	if (at >= len)
		return -ENOSPC;
	return (int)at;
}
