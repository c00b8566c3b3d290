/*
 * compare.c - `unet-perf compare`: the shm NIC against its physical floor
 * and against kernel UDP, all in one run so that the ratios compare numbers
 * taken on the same machine in the same minute.
 *
 * Paths, in order: raw shared-memory flag ping-pong (the floor), the shm
 * NIC, kernel UDP on loopback with blocking receives, and with busy-polled
 * ones. The summary is defined on 8-byte messages, so 8 B is always among
 * the sizes. The bars of the project's first issue are checked and printed,
 * but they are benchmarks, not tests: missing one does not change the exit
 * code, a path that fails to run does (1).
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "perf.h"

#define BAR_SHM_FLOOR 1.5  /* shm 8 B RTT <= 1.5 x floor */
#define BAR_UDP_SHM   40.0 /* udp blocking 8 B RTT >= 40 x shm */
#define BAR_SHM_GBPS  5.0  /* shm 64 KiB streaming >= 5 GB/s */
#define CONTENDED     0.10 /* share of our two CPUs that other work used */

static const struct perf_path *const paths[] = {
    &perf_path_floor,
    &perf_path_shm,
    &perf_path_udp_blocking,
    &perf_path_udp_busy,
};
#define NPATHS (int)(sizeof(paths) / sizeof(paths[0]))
enum { P_FLOOR, P_SHM, P_UDP_BLOCK, P_UDP_BUSY };

static void ensure_size(struct perf_opts *o, size_t want)
{
	int i;

	for (i = 0; i < o->nsizes; i++)
		if (o->sizes[i] == want)
			return;
	if (o->nsizes == PERF_MAX_SIZES)
		o->nsizes--; /* drop the largest to make room */
	for (i = o->nsizes; i > 0 && o->sizes[i - 1] > want; i--)
		o->sizes[i] = o->sizes[i - 1];
	o->sizes[i] = want;
	o->nsizes++;
}

static double median_at(const struct perf_result *r, size_t size)
{
	const struct perf_point *p = perf_find_point(r, size);

	return p && p->lat_rc == 0 ? p->lat.median : NAN;
}

static double gbps_at(const struct perf_result *r, size_t size)
{
	const struct perf_point *p = perf_find_point(r, size);

	return p && p->bw_rc == 0 ? p->gbps : NAN;
}

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	buf[0] = 0;
	if (f) {
		if (fgets(buf, (int)len, f))
			buf[strcspn(buf, " ")] = 0; /* the 1-minute figure */
		fclose(f);
	}
}

static const char *verdict(double v, double bar, bool at_most)
{
	if (isnan(v))
		return "not measured";
	return (at_most ? v <= bar : v >= bar) ? "met" : "MISSED";
}

/* What else ran on our CPUs during the run, filled in by perf_mode_compare. */
struct noise {
	bool known;
	double others, steal;
};

static bool contended(const struct noise *nz)
{
	return nz->known && nz->others > CONTENDED;
}

static void print_text(const struct perf_opts *o, const struct perf_result *r, const char *load,
		       const struct noise *nz)
{
	double fl = median_at(&r[P_FLOOR], 8), shm = median_at(&r[P_SHM], 8);
	double ub = median_at(&r[P_UDP_BLOCK], 8), up = median_at(&r[P_UDP_BUSY], 8);
	double bw = gbps_at(&r[P_SHM], 65536);

	printf("unet-perf compare: CPUs %d and %d, clock %s, load %s\n\n", o->cpus[0], o->cpus[1],
	       perf_clock_name(), load);
	printf("Ping-pong round trip in ns: median / p99 / p99.9 (%u round trips after %u "
	       "warm-up)\n",
	       o->iters, o->warmup);
	perf_print_latency(stdout, r, NPATHS);
	if (!o->no_stream) {
		printf("\nOne-way streaming in GB/s (1 GB = 1e9 bytes), messages/s in brackets\n");
		perf_print_bandwidth(stdout, r, NPATHS);
	}
	printf("\nSummary, 8-byte round trip medians: floor %.0f ns, shm %.0f ns, udp blocking "
	       "%.0f ns, udp busy-poll %.0f ns\n",
	       fl, shm, ub, up);
	printf("  shm / floor              %7.2fx   bar <= %.1fx: %s\n", shm / fl, BAR_SHM_FLOOR,
	       verdict(shm / fl, BAR_SHM_FLOOR, true));
	printf("  udp blocking / shm       %7.1fx   bar >= %.0fx: %s\n", ub / shm, BAR_UDP_SHM,
	       verdict(ub / shm, BAR_UDP_SHM, false));
	printf("  udp busy-poll / shm      %7.1fx\n", up / shm);
	printf("  shm 64 KiB streaming     %7.2f GB/s   bar >= %.0f GB/s: %s\n", bw, BAR_SHM_GBPS,
	       o->no_stream ? "not measured" : verdict(bw, BAR_SHM_GBPS, false));
	for (int i = 0; i < NPATHS; i++)
		if (r[i].rc < 0)
			printf("  %s FAILED: %s\n", r[i].path->title, r[i].err);
	if (nz->known)
		printf("  other work used %.0f%% of CPUs %d,%d during the run (host steal %.0f%%)\n",
		       nz->others * 100, o->cpus[0], o->cpus[1], nz->steal * 100);
	if (contended(nz))
		printf(
		    "  NOTE: other work competed for the CPUs during this run; its numbers, the\n"
		    "  streaming ones above all, are unreliable. Rerun when the machine is "
		    "quiet.\n");
}

static void bar_json(struct perf_json *j, const char *key, double v, double bar, bool at_most)
{
	if (isnan(v))
		perf_json_null(j, key);
	else
		perf_json_bool(j, key, at_most ? v <= bar : v >= bar);
}

static void print_json(FILE *f, const struct perf_opts *o, const struct perf_result *r,
		       const char *load, const struct noise *nz)
{
	struct perf_json j;
	double fl = median_at(&r[P_FLOOR], 8), shm = median_at(&r[P_SHM], 8);
	double ub = median_at(&r[P_UDP_BLOCK], 8), up = median_at(&r[P_UDP_BUSY], 8);

	perf_json_begin(&j, f);
	perf_json_str(&j, "tool", "unet-perf");
	perf_json_str(&j, "mode", "compare");
	perf_json_str(&j, "clock", perf_clock_name());
	perf_json_arr(&j, "cpus");
	perf_json_int(&j, NULL, o->cpus[0]);
	perf_json_int(&j, NULL, o->cpus[1]);
	perf_json_close(&j);
	perf_json_int(&j, "iters", o->iters);
	perf_json_int(&j, "warmup", o->warmup);
	perf_json_num(&j, "loadavg_1min", load[0] ? atof(load) : NAN);

	perf_json_obj(&j, "median_rtt_ns_8b");
	for (int i = 0; i < NPATHS; i++)
		perf_json_num(&j, r[i].path->key, median_at(&r[i], 8));
	perf_json_close(&j);
	perf_json_num(&j, "ratio_shm_floor", shm / fl);
	perf_json_num(&j, "ratio_udp_blocking_shm", ub / shm);
	perf_json_num(&j, "ratio_udp_busy_shm", up / shm);
	perf_json_obj(&j, "stream_gbps_64k");
	for (int i = 0; i < NPATHS; i++)
		if (r[i].path->stream_tx)
			perf_json_num(&j, r[i].path->key, gbps_at(&r[i], 65536));
	perf_json_close(&j);

	perf_json_obj(&j, "bars");
	bar_json(&j, "shm_rtt_le_1.5x_floor", shm / fl, BAR_SHM_FLOOR, true);
	bar_json(&j, "udp_blocking_rtt_ge_40x_shm", ub / shm, BAR_UDP_SHM, false);
	bar_json(&j, "shm_stream_64k_ge_5gbps", gbps_at(&r[P_SHM], 65536), BAR_SHM_GBPS, false);
	perf_json_close(&j);

	perf_json_obj(&j, "preempted");
	for (int i = 0; i < NPATHS; i++)
		perf_json_int(&j, r[i].path->key, r[i].preempted);
	perf_json_close(&j);
	perf_json_num(&j, "others_cpu_share", nz->known ? nz->others : NAN);
	perf_json_num(&j, "steal_cpu_share", nz->known ? nz->steal : NAN);
	perf_json_bool(&j, "contended", contended(nz));

	perf_json_obj(&j, "errors");
	for (int i = 0; i < NPATHS; i++)
		if (r[i].rc < 0)
			perf_json_str(&j, r[i].path->key, r[i].err);
	perf_json_close(&j);

	perf_json_obj(&j, "paths");
	for (int i = 0; i < NPATHS; i++)
		perf_json_str(&j, r[i].path->key, r[i].path->note);
	perf_json_close(&j);
	perf_json_results(&j, r, NPATHS);
	perf_json_end(&j);
}

enum { O_FLOOR_SLOTS = 2000, O_PATHS, O_SHM_PAIRS };

struct compare_args {
	struct perf_opts *o;
	bool run[NPATHS];
};

static int parse_paths(struct compare_args *a, const char *val)
{
	char buf[256], *save = NULL;

	if (strlen(val) >= sizeof(buf))
		return -1;
	strcpy(buf, val);
	memset(a->run, 0, sizeof(a->run));
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int i;
		for (i = 0; i < NPATHS; i++)
			if (!strcmp(t, paths[i]->key))
				break;
		if (i == NPATHS)
			return -1;
		a->run[i] = true;
	}
	for (int i = 0; i < NPATHS; i++)
		if (a->run[i])
			return 0;
	return -1;
}

static int compare_opt(void *arg, int opt, const char *val)
{
	struct compare_args *a = arg;
	struct perf_opts *o = a->o;
	char *end;
	unsigned long v;

	if (opt == O_PATHS) {
		if (parse_paths(a, val) == 0)
			return 0;
		fprintf(
		    stderr,
		    "unet-perf compare: --paths wants a comma list of floor, shm, udp_blocking, "
		    "udp_busy, not '%s'\n",
		    val);
		return -1;
	}
	if (opt == O_SHM_PAIRS) {
		v = strtoul(val, &end, 10);
		if (*val < '0' || *val > '9' || *end || v < 1 || v > 64) {
			fprintf(stderr, "unet-perf compare: --shm-pairs wants 1..64, not '%s'\n",
				val);
			return -1;
		}
		o->shm_pairs = (uint32_t)v;
		return 0;
	}
	if (opt != O_FLOOR_SLOTS)
		return -1;
	v = strtoul(val, &end, 10);
	if (*val < '0' || *val > '9' || *end || v < 1 || v > 1024) {
		fprintf(stderr, "unet-perf compare: --floor-slots wants 1..1024, not '%s'\n", val);
		return -1;
	}
	o->floor_slots = (uint32_t)v;
	return 0;
}

int perf_mode_compare(int argc, char **argv)
{
	static struct perf_result res[NPATHS];
	struct perf_opts o;
	char load[32];
	int rc, failed = 0;

	static const struct option longopts[] = {
	    {"floor-slots", required_argument, NULL, O_FLOOR_SLOTS},
	    {"paths", required_argument, NULL, O_PATHS},
	    {"shm-pairs", required_argument, NULL, O_SHM_PAIRS},
	    {NULL, 0, NULL, 0},
	};
	struct compare_args args = {.o = &o, .run = {true, true, true, true}};
	const struct perf_extra_opts extra = {
	    .longopts = longopts,
	    .handle = compare_opt,
	    .arg = &args,
	    .help = "  --paths LIST       run only these of floor,shm,udp_blocking,udp_busy\n"
		    "                     (the others show as not run)\n"
		    "  --floor-slots N    page pairs the floor moves over (default 64 or fewer\n"
		    "                     for big messages; 1 = one fixed line each way)\n"
		    "  --shm-pairs N      endpoint pairs the shm NIC ping-pong moves over\n"
		    "                     (default 8; 1 = a single pair)\n",
	};

	rc = perf_parse_opts("compare",
			     "Ping-pong latency and one-way streaming bandwidth between two "
			     "processes on two CPUs,\nover raw shared memory (the floor), the "
			     "U-Net shm NIC and kernel UDP on loopback.",
			     argc, argv, &o, &extra);
	if (rc)
		return rc == 1 ? 0 : rc;
	ensure_size(&o, 8);
	rc = perf_pick_cpus(o.cpus);
	if (rc < 0) {
		fprintf(stderr, "unet-perf compare: %s\n",
			rc == -ENODEV ? "needs two CPUs to run on (ping-pong between two "
					"pinned processes)"
				      : strerror(-rc));
		return 1;
	}
	perf_clock_init();
	loadavg(load, sizeof(load));
	FILE *log = isatty(STDERR_FILENO) ? stderr : NULL;
	struct perf_cpu_mark m0, m1;
	struct noise nz = {0};
	bool marked = perf_cpu_mark(&m0, o.cpus) == 0;
	for (int i = 0; i < NPATHS; i++) {
		if (!args.run[i]) {
			perf_skip_path(paths[i], &o, &res[i]);
			continue;
		}
		if (perf_run_path(paths[i], &o, &res[i], log) < 0) {
			failed = 1;
			fprintf(stderr, "unet-perf compare: %s: %s\n", paths[i]->title, res[i].err);
		}
	}
	if (marked && perf_cpu_mark(&m1, o.cpus) == 0) {
		perf_cpu_others(&m0, &m1, &nz.others, &nz.steal);
		nz.known = true;
	}
	if (o.json)
		print_json(stdout, &o, res, load, &nz);
	else
		print_text(&o, res, load, &nz);
	if (o.json_out) {
		FILE *f = fopen(o.json_out, "w");
		if (!f) {
			fprintf(stderr, "unet-perf compare: cannot write %s: %s\n", o.json_out,
				strerror(errno));
			return 1;
		}
		print_json(f, &o, res, load, &nz);
		if (fclose(f) != 0)
			failed = 1;
	}
	return failed;
}
