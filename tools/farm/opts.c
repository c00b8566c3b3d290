/*
 * opts.c - one option parser for every farm command, so that --help,
 * --json, --dir and --name behave the same everywhere, `--opt VALUE` and
 * `--opt=VALUE` both work, and every mistake is exit code 2 with a
 * sentence naming the command and the option.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

void usage_fail(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "farm %s: ", c->cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n(see: farm %s --help)\n", c->cmd);
	exit(EXIT_USAGE);
}

void json_print_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

int fail(const struct cli *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "farm %s: %s\n", c->cmd, msg);
	if (c->json) {
		printf("{\"ok\":false,\"error\":");
		json_print_str(msg);
		printf("}\n");
	}
	return 1;
}

void progress(const struct cli *c, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "farm: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

long parse_num(const struct cli *c, const char *what, const char *s, long min, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		usage_fail(c, "%s must be an integer in %ld..%ld, got '%s'", what, min, max, s);
	return v;
}

uint64_t parse_size(const struct cli *c, const char *what, const char *s)
{
	uint64_t v;

	if (farm_size_parse(s, &v) < 0)
		usage_fail(c, "%s must be a size like 4096, 64K or 4M, got '%s'", what, s);
	return v;
}

uint64_t parse_addr(const struct cli *c, const char *what, const char *s)
{
	uint64_t v;

	if (farm_addr_parse(s, &v) < 0)
		usage_fail(c, "%s must be an address 0xRRRRRRRROOOOOOOO (region, offset), got '%s'",
			   what, s);
	return v;
}

static const struct opt *find(const struct opt *opts, const char *name, size_t len, char shrt)
{
	for (; opts->name; opts++) {
		if (shrt ? opts->shrt == shrt
			 : strlen(opts->name) == len && strncmp(opts->name, name, len) == 0)
			return opts;
	}
	return NULL;
}

void opts_parse(struct cli *c, const struct opt *opts, int argc, char **argv, char **pos,
		int maxpos, int *npos)
{
	bool help = false, dashdash = false;
	const struct opt common[] = {
	    {"json", 0, false, NULL, &c->json}, {"dir", 0, true, &c->dir, NULL},
	    {"name", 0, true, &c->name, NULL},	{"help", 'h', false, NULL, &help},
	    {NULL, 0, false, NULL, NULL},
	};

	*npos = 0;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i], *val = NULL;
		const struct opt *o;
		if (dashdash || a[0] != '-' || a[1] == '\0') {
			if (*npos == maxpos)
				usage_fail(c, "unexpected argument '%s'", a);
			pos[(*npos)++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = true;
			continue;
		}
		if (a[1] == '-') {
			const char *eq = strchr(a + 2, '=');
			size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
			o = find(opts, a + 2, len, 0);
			if (!o)
				o = find(common, a + 2, len, 0);
			if (eq)
				val = eq + 1;
		} else {
			if (a[2] != '\0')
				usage_fail(c, "unknown option '%s'", a);
			o = find(opts, NULL, 0, a[1]);
			if (!o)
				o = find(common, NULL, 0, a[1]);
		}
		if (!o)
			usage_fail(c, "unknown option '%s'", a);
		if (!o->has_arg) {
			if (val)
				usage_fail(c, "option --%s takes no value", o->name);
			*o->flag = true;
			continue;
		}
		if (!val) {
			if (i + 1 == argc)
				usage_fail(c, "option --%s needs a value", o->name);
			val = argv[++i];
		}
		*o->val = val;
	}
	if (help) {
		fputs(c->usage, stdout);
		exit(0);
	}
	if (c->name) {
		size_t n = strlen(c->name);
		if (n == 0 || n > 32 ||
		    strspn(c->name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
				    "0123456789_") != n)
			usage_fail(c, "--name must be 1..32 letters, digits or '_', got '%s'",
				   c->name);
	}
}

long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void sleep_ms(int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000};

	nanosleep(&ts, NULL);
}
