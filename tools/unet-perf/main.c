/*
 * main.c - unet-perf's entry point: the mode table and the options all modes
 * share.
 *
 * A mode is a function `int perf_mode_NAME(int argc, char **argv)` in its own
 * file, returning the exit code (0 ok, 1 a measurement failed, 2 usage). To
 * add one, write that file and add one X(...) line to PERF_MODES below.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "perf.h"

/* X(function suffix, name on the command line, one-line description) */
#define PERF_MODES(X)                                                                              \
	X(compare, "compare", "shm NIC vs raw shared memory vs kernel UDP: latency, bandwidth")    \
	X(rdma, "rdma", "one-sided READ/WRITE/CAS/FADD, msg RTT vs kernel TCP, vs ucx_perftest")    \
	X(compare_net, "compare-net", "xdp and udp NICs vs kernel UDP over a veth pair (root)")

#define PERF_DECLARE(fn, name, help) int perf_mode_##fn(int argc, char **argv);
PERF_MODES(PERF_DECLARE)

struct perf_mode {
	const char *name;
	int (*run)(int argc, char **argv);
	const char *help;
};

static const struct perf_mode modes[] = {
#define PERF_ENTRY(fn, name, help) {name, perf_mode_##fn, help},
    PERF_MODES(PERF_ENTRY)};
#define NMODES (sizeof(modes) / sizeof(modes[0]))

static void usage(FILE *f)
{
	fprintf(f, "usage: unet-perf MODE [options]   (unet-perf MODE --help for its options)\n"
		   "\nModes:\n");
	for (size_t i = 0; i < NMODES; i++)
		fprintf(f, "  %-12s %s\n", modes[i].name, modes[i].help);
	fprintf(f, "\nExit codes: 0 done, 1 a measurement failed, 2 bad usage, 77 the mode\n"
		   "cannot run here (e.g. compare-net without root).\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < NMODES; i++)
		if (!strcmp(argv[1], modes[i].name))
			return modes[i].run(argc - 1, argv + 1);
	fprintf(stderr, "unet-perf: unknown %s '%s'\n", argv[1][0] == '-' ? "option" : "mode",
		argv[1]);
	usage(stderr);
	return 2;
}

/* ---- shared option parsing ----------------------------------------------- */

int perf_parse_size(const char *s, size_t *out)
{
	char *end;
	unsigned long long v;
	unsigned long long mul = 1;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (*end) {
		if (!strcasecmp(end, "k") || !strcasecmp(end, "kb") || !strcasecmp(end, "kib"))
			mul = 1ull << 10;
		else if (!strcasecmp(end, "m") || !strcasecmp(end, "mb") || !strcasecmp(end, "mib"))
			mul = 1ull << 20;
		else if (!strcasecmp(end, "g") || !strcasecmp(end, "gb") || !strcasecmp(end, "gib"))
			mul = 1ull << 30;
		else if (strcasecmp(end, "b") != 0)
			return -EINVAL;
	}
	if (v > (1ull << 40) / mul)
		return -ERANGE;
	*out = (size_t)(v * mul);
	return 0;
}

static int parse_u32(const char *s, uint32_t lo, uint32_t hi, uint32_t *out)
{
	char *end;
	unsigned long v;

	if (!s || *s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int cmp_size(const void *a, const void *b)
{
	size_t x = *(const size_t *)a, y = *(const size_t *)b;

	return x < y ? -1 : x > y;
}

static int parse_sizes(const char *arg, struct perf_opts *o)
{
	char buf[1024], *save = NULL;
	int n = 0;

	if (strlen(arg) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, arg);
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		size_t v;
		if (perf_parse_size(t, &v) < 0 || v < 8 || v > PERF_MAX_MSG || n == PERF_MAX_SIZES)
			return -EINVAL;
		o->sizes[n++] = v;
	}
	if (n == 0)
		return -EINVAL;
	qsort(o->sizes, (size_t)n, sizeof(o->sizes[0]), cmp_size);
	o->nsizes = 0;
	for (int i = 0; i < n; i++)
		if (o->nsizes == 0 || o->sizes[o->nsizes - 1] != o->sizes[i])
			o->sizes[o->nsizes++] = o->sizes[i];
	return 0;
}

static const char common_help[] =
    "  --json             one JSON object on stdout instead of tables\n"
    "  --json-out FILE    print tables and also write the JSON object to FILE\n"
    "  --iters N          measured round trips per size (default 20000)\n"
    "  --warmup N         round trips run first and not measured (default iters/10)\n"
    "  --sizes LIST       message sizes, e.g. 8,64,1K,64K (8 B to 1 MiB; default\n"
    "                     8,64,256,1K,4K,16K,64K)\n"
    "  --cpus A,B         CPUs for the initiator and the responder (default: the\n"
    "                     first two this process may run on). A,A is allowed, to\n"
    "                     see what sharing a CPU does; spinning paths then make\n"
    "                     progress only by yielding, so time them with care\n"
    "  --stream-bytes N   bytes streamed per size, e.g. 256M (default 256M), in 5\n"
    "                     runs whose median rate is reported; the message count is\n"
    "                     kept within 1000..200000 and 10 x iters\n"
    "  --no-stream        latency only\n"
    "  -h, --help         this text\n";

enum { O_JSON = 1000, O_JSON_OUT, O_ITERS, O_WARMUP, O_SIZES, O_CPUS, O_STREAM_BYTES, O_NO_STREAM };

static int bad(const char *mode, const char *what, const char *val)
{
	fprintf(stderr, "unet-perf %s: %s%s%s%s\n", mode, what, val ? " '" : "", val ? val : "",
		val ? "'" : "");
	fprintf(stderr, "try: unet-perf %s --help\n", mode);
	return 2;
}

int perf_parse_opts(const char *mode, const char *summary, int argc, char **argv,
		    struct perf_opts *o, const struct perf_extra_opts *extra)
{
	static const size_t defsizes[] = {8, 64, 256, 1024, 4096, 16384, 65536};
	const struct option common[] = {
	    {"json", no_argument, NULL, O_JSON},
	    {"json-out", required_argument, NULL, O_JSON_OUT},
	    {"iters", required_argument, NULL, O_ITERS},
	    {"warmup", required_argument, NULL, O_WARMUP},
	    {"sizes", required_argument, NULL, O_SIZES},
	    {"cpus", required_argument, NULL, O_CPUS},
	    {"stream-bytes", required_argument, NULL, O_STREAM_BYTES},
	    {"no-stream", no_argument, NULL, O_NO_STREAM},
	    {"help", no_argument, NULL, 'h'},
	};
	struct option all[64];
	size_t n = 0;
	bool warmup_set = false;
	int opt;

	memset(o, 0, sizeof(*o));
	o->iters = PERF_DEFAULT_ITERS;
	o->cpus[0] = o->cpus[1] = -1;
	o->stream_bytes = PERF_STREAM_BYTES;
	o->nsizes = (int)(sizeof(defsizes) / sizeof(defsizes[0]));
	memcpy(o->sizes, defsizes, sizeof(defsizes));

	for (size_t i = 0; i < sizeof(common) / sizeof(common[0]); i++)
		all[n++] = common[i];
	for (const struct option *e = extra ? extra->longopts : NULL; e && e->name && n < 63; e++)
		all[n++] = *e;
	memset(&all[n], 0, sizeof(all[n]));

	optind = 1;
	opterr = 0;
	while ((opt = getopt_long(argc, argv, ":h", all, NULL)) != -1) {
		switch (opt) {
		case 'h':
			printf("usage: unet-perf %s [options]\n\n%s\n\nOptions:\n%s%s", mode,
			       summary, common_help, extra && extra->help ? extra->help : "");
			return 1;
		case O_JSON:
			o->json = true;
			break;
		case O_JSON_OUT:
			o->json_out = optarg;
			break;
		case O_ITERS:
			if (parse_u32(optarg, 1, 10000000, &o->iters) < 0)
				return bad(mode, "--iters wants 1..10000000, not", optarg);
			break;
		case O_WARMUP:
			if (parse_u32(optarg, 0, 10000000, &o->warmup) < 0)
				return bad(mode, "--warmup wants 0..10000000, not", optarg);
			warmup_set = true;
			break;
		case O_SIZES:
			if (parse_sizes(optarg, o) < 0)
				return bad(mode,
					   "--sizes wants a comma list of up to 32 sizes, each 8 B "
					   "to 1 MiB (e.g. 8,64,1K,64K), not",
					   optarg);
			break;
		case O_CPUS: {
			uint32_t a, b;
			char buf[64], *comma;
			if (strlen(optarg) >= sizeof(buf) ||
			    !(comma = strchr(strcpy(buf, optarg), ',')))
				return bad(mode, "--cpus wants two CPU numbers A,B, not", optarg);
			*comma = 0;
			if (parse_u32(buf, 0, 4095, &a) < 0 ||
			    parse_u32(comma + 1, 0, 4095, &b) < 0)
				return bad(mode, "--cpus wants two CPU numbers A,B, not", optarg);
			o->cpus[0] = (int)a;
			o->cpus[1] = (int)b;
			break;
		}
		case O_STREAM_BYTES: {
			size_t v;
			if (perf_parse_size(optarg, &v) < 0 || v == 0)
				return bad(mode, "--stream-bytes wants a size such as 256M, not",
					   optarg);
			o->stream_bytes = v;
			break;
		}
		case O_NO_STREAM:
			o->no_stream = true;
			break;
		case ':':
			return bad(mode, "missing value for", argv[optind - 1]);
		case '?': {
			char sh[3] = {'-', (char)optopt, 0};
			return bad(mode, "unknown option",
				   optopt > 32 && optopt < 127 ? sh : argv[optind - 1]);
		}
		default:
			if (extra && extra->handle && extra->handle(extra->arg, opt, optarg) == 0)
				break;
			return 2;
		}
	}
	if (optind < argc)
		return bad(mode, "unexpected argument", argv[optind]);
	if (!warmup_set)
		o->warmup = o->iters / 10 < 10 ? 10 : o->iters / 10;
	return 0;
}
