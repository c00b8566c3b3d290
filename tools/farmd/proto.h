/*
 * proto.h - what farmd and the farm CLI must agree on: where a node's files
 * live in the run directory, how a global address is written, how bytes
 * travel on the admin line protocol, and how to tell that a pid file still
 * names a live farmd.
 *
 * Header-only (static inline) because it is the one piece of code two
 * executables share, and the build turns each tools/<name>/ directory into
 * one program; farm includes it as "../farmd/proto.h".
 *
 * Admin protocol (RUN_DIR/node-ID.sock, a path-based unix stream socket so
 * that it is reachable from every network namespace): one command per line,
 * one JSON object per reply line, always with "ok" first:
 *   status                          node, config, region map, stats
 *   alloc SIZE [NEAR]               {"addr": "0x..."}
 *   free ADDR
 *   read ADDR [LEN]                 {"len", "version", "hex"}
 *   write ADDR HEX
 *   bench read SIZE COUNT [remote|local]
 *   bench tx load|start|status|stop|audit ...   (bench_tx.c)
 *   stop
 * Errors: {"ok":false,"code":-errno,"error":"text"}.
 */
#ifndef FARMD_PROTO_H
#define FARMD_PROTO_H

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/types.h>

#define FARM_ADMIN_LINE_MAX (2u * (60u << 10) + 256u) /* write of the largest object */
#define FARM_ADDR_STRLEN    19			      /* "0x" + 16 hex digits + NUL */

static inline int farm_path_sock(char *buf, size_t len, const char *run_dir, uint32_t id)
{
	int n = snprintf(buf, len, "%s/node-%u.sock", run_dir, id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static inline int farm_path_pid(char *buf, size_t len, const char *run_dir, uint32_t id)
{
	int n = snprintf(buf, len, "%s/node-%u.pid", run_dir, id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static inline int farm_path_log(char *buf, size_t len, const char *run_dir, uint32_t id)
{
	int n = snprintf(buf, len, "%s/node-%u.log", run_dir, id);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

/* 0xRRRRRRRROOOOOOOO: region in the high half, offset in the low half. */
static inline void farm_addr_fmt(uint64_t a, char out[FARM_ADDR_STRLEN])
{
	snprintf(out, FARM_ADDR_STRLEN, "0x%08x%08x", (unsigned)(a >> 32), (unsigned)a);
}

/* Accepts "0x" followed by 1..16 hex digits (the printed form has 16). */
static inline int farm_addr_parse(const char *s, uint64_t *out)
{
	uint64_t v = 0;
	size_t n = 0;

	if (!s || s[0] != '0' || (s[1] != 'x' && s[1] != 'X'))
		return -EINVAL;
	for (s += 2; *s; s++, n++) {
		int d;
		if (*s >= '0' && *s <= '9')
			d = *s - '0';
		else if (*s >= 'a' && *s <= 'f')
			d = *s - 'a' + 10;
		else if (*s >= 'A' && *s <= 'F')
			d = *s - 'A' + 10;
		else
			return -EINVAL;
		if (n == 16)
			return -EINVAL;
		v = v << 4 | (uint64_t)d;
	}
	if (n == 0)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Decimal unsigned with an optional K/M/G suffix (powers of 1024). */
static inline int farm_size_parse(const char *s, uint64_t *out)
{
	char *end;
	unsigned long long v;
	uint64_t mul = 1;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end == 'K' || *end == 'k')
		mul = 1ull << 10, end++;
	else if (*end == 'M' || *end == 'm')
		mul = 1ull << 20, end++;
	else if (*end == 'G' || *end == 'g')
		mul = 1ull << 30, end++;
	if (*end || (v && mul > UINT64_MAX / v))
		return -EINVAL;
	*out = (uint64_t)v * mul;
	return 0;
}

static inline void farm_hex_encode(const void *src, size_t n, char *out)
{
	static const char dig[] = "0123456789abcdef";
	const unsigned char *p = src;

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = dig[p[i] >> 4];
		out[2 * i + 1] = dig[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static inline int farm_hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* Decodes an even-length hex string of at most 2*max digits; returns the
 * byte count or -EINVAL / -EFBIG. */
static inline long farm_hex_decode(const char *s, void *dst, size_t max)
{
	unsigned char *p = dst;
	size_t n = strlen(s);

	if (n % 2)
		return -EINVAL;
	if (n / 2 > max)
		return -EFBIG;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = farm_hex_val(s[2 * i]), lo = farm_hex_val(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		p[i] = (unsigned char)(hi << 4 | lo);
	}
	return (long)(n / 2);
}

/* A process is alive unless it is gone or a zombie: PID 1 reaps orphans
 * late here, so kill(pid, 0) would call a dead farmd alive. */
static inline bool farm_pid_alive(pid_t pid)
{
	char path[64], buf[512], *rp;
	FILE *f;
	size_t n;

	if (pid <= 0)
		return false;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	rp = strrchr(buf, ')'); /* comm may contain spaces and parentheses */
	if (!rp || rp[1] != ' ')
		return false;
	return rp[2] != 'Z' && rp[2] != 'X' && rp[2] != 'x';
}

/* True when `pid` is alive and runs farmd (argv[0]'s basename) with
 * `--config conf` (any config when conf is NULL), i.e. it is a node of the
 * cluster whose config is `conf`: the only processes the CLI may signal. */
static inline bool farm_pid_is_node(pid_t pid, const char *conf)
{
	char path[64], buf[4096];
	const char *arg, *base, *prev = NULL;
	bool is_farmd, has_conf = conf == NULL;
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	f = fopen(path, "re");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	if (n == 0)
		return false;
	buf[n] = '\0';
	base = strrchr(buf, '/');
	base = base ? base + 1 : buf;
	is_farmd = strcmp(base, "farmd") == 0;
	for (arg = buf; arg < buf + n; arg += strlen(arg) + 1) {
		if (conf && prev && strcmp(prev, "--config") == 0 && strcmp(arg, conf) == 0)
			has_conf = true;
		prev = arg;
	}
	return is_farmd && has_conf && farm_pid_alive(pid);
}

/* The pid a pid file names, or 0 when it is missing or unreadable. */
static inline pid_t farm_pid_read(const char *path)
{
	char buf[32];
	FILE *f = fopen(path, "re");
	long v;
	size_t n;

	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	v = strtol(buf, NULL, 10);
	return v > 0 && v < (1l << 22) ? (pid_t)v : 0;
}

#endif /* FARMD_PROTO_H */
