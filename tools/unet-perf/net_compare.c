/*
 * net_compare.c - `unet-perf compare-net`: U-Net on the wire against the
 * kernel, over one veth pair between two namespaces, in one run.
 *
 * Paths, all over the same veth: xdp NIC endpoints (in the mode the NIC
 * picks, and in generic mode: on veth the two differ by a quarter), udp
 * NIC endpoints, kernel UDP sockets with blocking receives and with
 * busy-polled ones (ping-pong, 8 B to 1400 B); then the one-way 64-byte
 * packet rate of the same endpoints and of kernel sockets with
 * sendmmsg/recvmmsg, counted by the receiver over fixed windows, in rounds
 * that take every path in turn (load on a shared machine comes and goes),
 * with the sender's CPU time per packet beside it (what the rate would be
 * on an idle CPU).
 *
 * Processes. This process stays in the host's namespace and only owns the
 * wire: it creates the namespaces, forks a measuring child and removes the
 * namespaces when that child is gone -- always, also on SIGINT, SIGTERM,
 * SIGHUP or a crash of the child. The child enters the first namespace and
 * runs each path through the shared runner, which forks the responder; a
 * path's attach() puts the responder into the second namespace and re-pins
 * both sides to their two different CPUs there (net.h). The child prints.
 *
 * The bars of issue 3 are checked and printed, but they are benchmarks,
 * not tests: missing one does not change the exit code; a path that fails
 * does (1). Without root nothing can be measured: exit 77, with the reason.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "net.h"

#define BAR_XDP_BUSY	 0.6 /* xdp 8 B RTT <= 0.6 x kernel UDP busy-poll */
#define BAR_XDP_BLOCKING 0.2 /* xdp 8 B RTT <= 0.2 x kernel UDP blocking */
#define BAR_PPS		 2.0 /* xdp 64 B one-way rate >= 2 x kernel mmsg */
#define CONTENDED	 200 /* preemptions of one path's two processes */
#define PPS_SIZE	 64
#define EXIT_CANNOT_RUN	 77
#define MAX_ROUNDS	 15

static const struct perf_path *const lat_paths[] = {
    &net_path_xdp,	    &net_path_xdp_generic, &net_path_udp_nic,
    &net_path_udp_blocking, &net_path_udp_busy,
};
enum { L_XDP, L_XDPG, L_UDP_NIC, L_BLOCKING, L_BUSY, NLAT };

static const struct perf_path *const pps_paths[] = {
    &net_path_pps_xdp,
    &net_path_pps_xdp_generic,
    &net_path_pps_udp_nic,
    &net_path_pps_kernel,
};
enum { P_XDP, P_XDPG, P_UDP_NIC, P_KERNEL, NPPS };
static const int pps_report[NPPS] = {NR_PPS_XDP, NR_PPS_XDP_GENERIC, NR_PPS_UDP_NIC, NR_PPS_KERNEL};

/* --paths keys: the five latency paths (same order), then kernel_mmsg
 * (rate only). */
static const char *const path_keys[] = {"xdp",		"xdp_generic", "udp_nic",
					"udp_blocking", "udp_busy",    "kernel_mmsg"};
enum { K_XDP, K_XDPG, K_UDP_NIC, K_BLOCKING, K_BUSY, K_MMSG, NKEYS };

struct run {
	struct perf_opts o;
	bool want[NKEYS];
	struct perf_result lat[NLAT], pps[NPPS];
	bool pps_run[NPPS];
	unsigned rounds;	       /* of rate runs */
	double rate[NPPS][MAX_ROUNDS]; /* M msgs/s, per round */
	unsigned nrate[NPPS];
	char load_before[32], load_after[32];
	int ncpus;
};

/* ---- small helpers --------------------------------------------------------- */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	buf[0] = 0;
	if (f) {
		if (fgets(buf, (int)len, f))
			buf[strcspn(buf, " ")] = 0; /* the 1-minute figure, as uptime shows */
		fclose(f);
	}
}

static double median_at(const struct perf_result *r, size_t size)
{
	const struct perf_point *p = perf_find_point(r, size);

	return p && p->lat_rc == 0 ? p->lat.median : NAN;
}

static double pps_of(const struct run *R, int i)
{
	const struct perf_point *p = R->pps_run[i] ? perf_find_point(&R->pps[i], PPS_SIZE) : NULL;

	return p && p->bw_rc == 0 ? p->mmsgs * 1e6 : NAN;
}

/* "key=value" out of a unet_ep_info line. */
static void info_field(const char *info, const char *key, char *out, size_t len)
{
	size_t kl = strlen(key);

	out[0] = 0;
	for (const char *s = info; s && *s; s = strchr(s, ' '), s = s ? s + 1 : NULL) {
		if (strncmp(s, key, kl) == 0 && s[kl] == '=') {
			snprintf(out, len, "%.*s", (int)strcspn(s + kl + 1, " "), s + kl + 1);
			return;
		}
	}
}

/* An xdp path's unet_ep_info line for `side`: from its latency run, or its
 * rate run when only that ran. */
static const char *xdp_info(bool generic, int side)
{
	const struct net_report *a = &net_report[generic ? NR_XDP_GENERIC : NR_XDP];
	const struct net_report *b = &net_report[generic ? NR_PPS_XDP_GENERIC : NR_PPS_XDP];

	if (a->valid && a->info[side][0])
		return a->info[side];
	if (b->valid && b->info[side][0])
		return b->info[side];
	return "";
}

static double cpu_per_packet(const struct net_report *nr)
{
	return nr->tx_sent ? (double)nr->tx_cpu_ns / (double)nr->tx_sent : NAN;
}

static double load_of(const char *s)
{
	return s[0] ? atof(s) : NAN;
}

/* Why the numbers are not clean, or NULL. Load at the start is the other
 * work that was there before us (during the run we add two spinners). */
static const char *contention(const struct run *R, char *buf, size_t len)
{
	long worst = 0;
	const char *who = "";
	double load = load_of(R->load_before);

	for (int i = 0; i < NLAT; i++)
		if (R->lat[i].preempted > worst)
			worst = R->lat[i].preempted, who = R->lat[i].path->key;
	for (int i = 0; i < NPPS; i++)
		if (R->pps_run[i] && R->pps[i].preempted > worst)
			worst = R->pps[i].preempted, who = R->pps[i].path->key;
	if (load >= 1.0 || worst > CONTENDED) {
		snprintf(buf, len,
			 "load average %.2f on %d CPUs before the run, up to %ld preemptions in "
			 "one path (%s)",
			 load, R->ncpus, worst, who);
		return buf;
	}
	return NULL;
}

static const char *verdict(double v, double bar, bool at_most)
{
	if (isnan(v))
		return "not measured";
	return (at_most ? v <= bar : v >= bar) ? "met" : "MISSED";
}

/* The three ratios the bars are about, for one xdp path. */
struct ratios {
	double busy, blocking, pps;
};

static struct ratios ratios_of(const struct run *R, bool generic)
{
	double x = median_at(&R->lat[generic ? L_XDPG : L_XDP], 8);
	struct ratios q = {
	    .busy = x / median_at(&R->lat[L_BUSY], 8),
	    .blocking = x / median_at(&R->lat[L_BLOCKING], 8),
	    .pps = pps_of(R, generic ? P_XDPG : P_XDP) / pps_of(R, P_KERNEL),
	};
	return q;
}

/* ---- output ---------------------------------------------------------------- */

static void print_xdp_mode(const char *title, bool generic)
{
	char mode[16], bind[16];

	info_field(xdp_info(generic, 0), "mode", mode, sizeof(mode));
	info_field(xdp_info(generic, 0), "bind", bind, sizeof(bind));
	if (!mode[0])
		return;
	printf("%-16s mode=%s bind=%s%s\n", title, mode, bind,
	       !strcmp(bind, "copy") ? " (veth has no zero-copy)" : "");
	printf("  initiator: %s\n  responder: %s\n", xdp_info(generic, 0), xdp_info(generic, 1));
}

static void print_bar(const char *what, double a, double b, double bar, bool at_most)
{
	char ca[32], cb[32];

	snprintf(ca, sizeof(ca), "%.2fx %s", a, verdict(a, bar, at_most));
	snprintf(cb, sizeof(cb), "%.2fx %s", b, verdict(b, bar, at_most));
	printf("  %-32s %s %.1fx   %-20s %s\n", what, at_most ? "<=" : ">=", bar, ca, cb);
}

static void print_text(const struct run *R)
{
	const struct perf_opts *o = &R->o;
	const struct net_ns *n = &net_cfg.ns;
	struct ratios a = ratios_of(R, false), g = ratios_of(R, true);
	char why[160];

	printf("unet-perf compare-net: %s (%s, %s) <-> %s (%s, %s), one veth pair\n", n->dev[0],
	       n->ns[0], n->ip[0], n->dev[1], n->ns[1], n->ip[1]);
	printf("CPUs %d (initiator) and %d (responder), clock %s, load average %s before, %s "
	       "after (%d CPUs)\n",
	       o->cpus[0], o->cpus[1], perf_clock_name(), R->load_before, R->load_after, R->ncpus);
	printf("XDP measured:\n");
	print_xdp_mode("  xdp NIC", false);
	print_xdp_mode("  xdp NIC generic", true);
	printf("\nPing-pong round trip in ns: median / p99 / p99.9 (%u round trips after %u "
	       "warm-up)\n",
	       o->iters, o->warmup);
	perf_print_latency(stdout, R->lat, NLAT);

	if (!o->no_stream) {
		printf("\nOne-way %d-byte packet rate, counted by the receiver in %u ms windows "
		       "(median of %u rounds, each the median of %d runs; counts summed)\n",
		       PPS_SIZE, net_cfg.window_ms, R->rounds, PERF_STREAM_REPS);
		for (int i = 0; i < NPPS; i++) {
			const struct net_report *nr = &net_report[pps_report[i]];
			double v = pps_of(R, i);
			if (!R->pps_run[i])
				printf("  %-16s not run\n", pps_paths[i]->title);
			else if (isnan(v))
				printf("  %-16s FAILED: %s\n", pps_paths[i]->title, R->pps[i].err);
			else {
				printf("  %-16s %7.3f Mpps  (rounds:", pps_paths[i]->title,
				       v / 1e6);
				for (unsigned k = 0; k < R->nrate[i]; k++)
					printf(" %.3f", R->rate[i][k]);
				printf(")\n");
				printf("  %-16s sender CPU %.0f ns per packet sent (%.3f Mpps per "
				       "sender CPU)\n",
				       "", cpu_per_packet(nr), 1e3 / cpu_per_packet(nr));
				printf("  %-16s sent %llu, received in windows %llu, "
				       "receiver drops %llu, late %llu, twice %llu\n",
				       "", (unsigned long long)nr->tx_sent,
				       (unsigned long long)nr->rx_in_window,
				       (unsigned long long)nr->rx_dropped,
				       (unsigned long long)nr->rx_reordered,
				       (unsigned long long)nr->rx_duplicated);
			}
		}
	}

	printf("\nSummary, 8-byte round trip medians in ns:");
	for (int i = 0; i < NLAT; i++)
		printf(" %s %.0f%s", lat_paths[i]->key, median_at(&R->lat[i], 8),
		       i + 1 < NLAT ? "," : "\n");
	printf("  %-32s %-7s   %-20s %s\n", "bars (issue 3)", "", "xdp NIC", "xdp NIC generic");
	print_bar("xdp RTT / udp busy-poll RTT", a.busy, g.busy, BAR_XDP_BUSY, true);
	print_bar("xdp RTT / udp blocking RTT", a.blocking, g.blocking, BAR_XDP_BLOCKING, true);
	if (o->no_stream)
		printf("  %-32s    not measured (--no-stream)\n", "xdp 64 B rate / kernel mmsg");
	else
		print_bar("xdp 64 B rate / kernel mmsg", a.pps, g.pps, BAR_PPS, false);
	if (!o->no_stream)
		printf(
		    "  kernel / xdp sender CPU per 64 B packet: %.2fx (xdp), %.2fx (xdp generic)\n",
		    cpu_per_packet(&net_report[NR_PPS_KERNEL]) /
			cpu_per_packet(&net_report[NR_PPS_XDP]),
		    cpu_per_packet(&net_report[NR_PPS_KERNEL]) /
			cpu_per_packet(&net_report[NR_PPS_XDP_GENERIC]));
	printf("  udp NIC / udp busy-poll RTT: %.2fx\n",
	       median_at(&R->lat[L_UDP_NIC], 8) / median_at(&R->lat[L_BUSY], 8));
	for (int i = 0; i < NLAT; i++)
		if (R->lat[i].rc < 0)
			printf("  %s FAILED: %s\n", R->lat[i].path->title, R->lat[i].err);
	printf("  preemptions (other work took our CPUs):");
	for (int i = 0; i < NLAT; i++)
		printf(" %s %ld,", R->lat[i].path->key, R->lat[i].preempted);
	for (int i = 0; i < NPPS; i++)
		if (R->pps_run[i])
			printf(" %s rate %ld,", R->pps[i].path->key, R->pps[i].preempted);
	printf("\n");
	if (contention(R, why, sizeof(why)))
		printf("  NOTE: CONTENDED run (%s): other work competed for the two CPUs, so\n"
		       "  tails and rates above are pessimistic; rerun when `uptime` shows a "
		       "load below 1.\n",
		       why);
}

static void bar_json(struct perf_json *j, const char *key, double v, double bar, bool at_most)
{
	if (isnan(v))
		perf_json_null(j, key);
	else
		perf_json_bool(j, key, at_most ? v <= bar : v >= bar);
}

static void xdp_json(struct perf_json *j, const char *key, bool generic)
{
	char mode[16], bind[16];

	perf_json_obj(j, key);
	info_field(xdp_info(generic, 0), "mode", mode, sizeof(mode));
	info_field(xdp_info(generic, 0), "bind", bind, sizeof(bind));
	if (mode[0]) {
		perf_json_str(j, "mode", mode);
		perf_json_str(j, "bind", bind);
	} else {
		perf_json_null(j, "mode");
		perf_json_null(j, "bind");
	}
	perf_json_arr(j, "info");
	perf_json_str(j, NULL, xdp_info(generic, 0));
	perf_json_str(j, NULL, xdp_info(generic, 1));
	perf_json_close(j);
	perf_json_close(j);
}

static void print_json(FILE *f, const struct run *R)
{
	const struct perf_opts *o = &R->o;
	const struct net_ns *n = &net_cfg.ns;
	struct ratios a = ratios_of(R, false), g = ratios_of(R, true);
	char why[160];
	struct perf_json j;

	perf_json_begin(&j, f);
	perf_json_str(&j, "tool", "unet-perf");
	perf_json_str(&j, "mode", "compare-net");
	perf_json_str(&j, "clock", perf_clock_name());
	perf_json_arr(&j, "cpus");
	perf_json_int(&j, NULL, o->cpus[0]);
	perf_json_int(&j, NULL, o->cpus[1]);
	perf_json_close(&j);
	perf_json_int(&j, "ncpus", R->ncpus);
	perf_json_int(&j, "iters", o->iters);
	perf_json_int(&j, "warmup", o->warmup);
	perf_json_num(&j, "loadavg_1min", load_of(R->load_before));
	perf_json_num(&j, "loadavg_1min_after", load_of(R->load_after));
	const char *c = contention(R, why, sizeof(why));
	perf_json_bool(&j, "contended", c != NULL);
	if (c)
		perf_json_str(&j, "contention", c);
	else
		perf_json_null(&j, "contention");

	perf_json_obj(&j, "wire");
	for (int k = 0; k < 3; k++) {
		perf_json_arr(&j, k == 0 ? "netns" : k == 1 ? "dev" : "ip");
		for (int i = 0; i < 2; i++)
			perf_json_str(&j, NULL, k == 0 ? n->ns[i] : k == 1 ? n->dev[i] : n->ip[i]);
		perf_json_close(&j);
	}
	perf_json_close(&j);
	xdp_json(&j, "xdp", false);
	xdp_json(&j, "xdp_generic", true);

	perf_json_obj(&j, "median_rtt_ns_8b");
	for (int i = 0; i < NLAT; i++)
		perf_json_num(&j, lat_paths[i]->key, median_at(&R->lat[i], 8));
	perf_json_close(&j);
	perf_json_num(&j, "ratio_xdp_udp_busy", a.busy);
	perf_json_num(&j, "ratio_xdp_udp_blocking", a.blocking);
	perf_json_num(&j, "ratio_xdp_generic_udp_busy", g.busy);
	perf_json_num(&j, "ratio_xdp_generic_udp_blocking", g.blocking);

	perf_json_num(&j, "window_ms", net_cfg.window_ms);
	perf_json_int(&j, "rate_rounds", R->rounds);
	perf_json_obj(&j, "pps_64b");
	for (int i = 0; i < NPPS; i++)
		perf_json_num(&j, pps_paths[i]->key, pps_of(R, i));
	perf_json_close(&j);
	perf_json_num(&j, "ratio_pps_xdp_kernel", a.pps);
	perf_json_num(&j, "ratio_pps_xdp_generic_kernel", g.pps);
	/* The same ratio in sender CPU per packet: what the rates would be on
	 * idle CPUs, and what a contended run cannot show. */
	perf_json_num(&j, "ratio_cpu_per_packet_kernel_xdp",
		      cpu_per_packet(&net_report[NR_PPS_KERNEL]) /
			  cpu_per_packet(&net_report[NR_PPS_XDP]));
	perf_json_num(&j, "ratio_cpu_per_packet_kernel_xdp_generic",
		      cpu_per_packet(&net_report[NR_PPS_KERNEL]) /
			  cpu_per_packet(&net_report[NR_PPS_XDP_GENERIC]));
	perf_json_obj(&j, "pps_detail");
	for (int i = 0; i < NPPS; i++) {
		const struct net_report *nr = &net_report[pps_report[i]];
		if (!R->pps_run[i] || !nr->valid)
			continue;
		perf_json_obj(&j, pps_paths[i]->key);
		perf_json_int(&j, "sent", (int64_t)nr->tx_sent);
		perf_json_int(&j, "received_in_windows", (int64_t)nr->rx_in_window);
		perf_json_int(&j, "receiver_drops", (int64_t)nr->rx_dropped);
		perf_json_int(&j, "reordered", (int64_t)nr->rx_reordered);
		perf_json_int(&j, "duplicated", (int64_t)nr->rx_duplicated);
		perf_json_int(&j, "runs_per_round", PERF_STREAM_REPS);
		perf_json_num(&j, "sender_cpu_ns_per_packet", cpu_per_packet(nr));
		perf_json_arr(&j, "pps_per_round");
		for (unsigned k = 0; k < R->nrate[i]; k++)
			perf_json_num(&j, NULL, R->rate[i][k] * 1e6);
		perf_json_close(&j);
		perf_json_close(&j);
	}
	perf_json_close(&j);

	perf_json_obj(&j, "bars");
	bar_json(&j, "xdp_rtt_le_0.6x_udp_busy", a.busy, BAR_XDP_BUSY, true);
	bar_json(&j, "xdp_rtt_le_0.2x_udp_blocking", a.blocking, BAR_XDP_BLOCKING, true);
	bar_json(&j, "xdp_pps_ge_2x_kernel", a.pps, BAR_PPS, false);
	bar_json(&j, "xdp_generic_rtt_le_0.6x_udp_busy", g.busy, BAR_XDP_BUSY, true);
	bar_json(&j, "xdp_generic_rtt_le_0.2x_udp_blocking", g.blocking, BAR_XDP_BLOCKING, true);
	bar_json(&j, "xdp_generic_pps_ge_2x_kernel", g.pps, BAR_PPS, false);
	perf_json_close(&j);

	perf_json_obj(&j, "preempted");
	for (int i = 0; i < NLAT; i++)
		perf_json_int(&j, R->lat[i].path->key, R->lat[i].preempted);
	perf_json_close(&j);
	perf_json_obj(&j, "preempted_pps");
	for (int i = 0; i < NPPS; i++)
		if (R->pps_run[i])
			perf_json_int(&j, R->pps[i].path->key, R->pps[i].preempted);
	perf_json_close(&j);

	perf_json_obj(&j, "errors");
	for (int i = 0; i < NLAT; i++)
		if (R->lat[i].rc < 0)
			perf_json_str(&j, R->lat[i].path->key, R->lat[i].err);
	for (int i = 0; i < NPPS; i++)
		if (R->pps_run[i] && R->pps[i].rc < 0) {
			char k[32];
			snprintf(k, sizeof(k), "%s_pps", R->pps[i].path->key);
			perf_json_str(&j, k, R->pps[i].err);
		}
	perf_json_close(&j);

	perf_json_obj(&j, "paths");
	for (int i = 0; i < NLAT; i++)
		perf_json_str(&j, lat_paths[i]->key, lat_paths[i]->note);
	for (int i = 0; i < NPPS; i++) {
		char k[32];
		snprintf(k, sizeof(k), "%s_pps", pps_paths[i]->key);
		perf_json_str(&j, k, pps_paths[i]->note);
	}
	perf_json_close(&j);
	perf_json_results(&j, R->lat, NLAT);
	perf_json_end(&j);
}

/* ---- the measuring child --------------------------------------------------- */

/* With --xdp-mode generic the xdp path is already the generic one. */
static bool generic_twice(int key)
{
	return key == K_XDPG && !strcmp(net_cfg.xdp_mode, "generic");
}

static bool lat_wanted(const struct run *R, int i)
{
	return R->want[i] && !generic_twice(i); /* L_* and K_* agree for the first five */
}

static bool pps_wanted(const struct run *R, int i)
{
	static const int key[NPPS] = {K_XDP, K_XDPG, K_UDP_NIC, K_MMSG};

	return R->want[key[i]] && !generic_twice(key[i]);
}

static int measure(struct run *R)
{
	FILE *log = isatty(STDERR_FILENO) ? stderr : NULL;
	struct perf_opts po = R->o;
	int rc, failed = 0;

	rc = net_ns_enter(&net_cfg.ns, PERF_INITIATOR);
	if (rc < 0) {
		fprintf(stderr, "unet-perf compare-net: entering %s: %s\n", net_cfg.ns.ns[0],
			strerror(-rc));
		return 1;
	}
	for (int i = 0; i < NLAT; i++) {
		if (!lat_wanted(R, i)) {
			perf_skip_path(lat_paths[i], &R->o, &R->lat[i]);
			continue;
		}
		struct perf_opts lo = R->o;
		lo.no_stream = true;
		if (perf_run_path(lat_paths[i], &lo, &R->lat[i], log) < 0) {
			failed = 1;
			fprintf(stderr, "unet-perf compare-net: %s: %s\n", lat_paths[i]->title,
				R->lat[i].err);
		}
	}
	/* The rate runs: one size; their ping-pong only proves the path. */
	po.nsizes = 1;
	po.sizes[0] = PPS_SIZE;
	po.iters = po.iters < 1000 ? po.iters : 1000;
	po.warmup = 10;
	/* Rounds, each running every path once in turn: the load of a shared
	 * machine comes and goes, and a path measured only in a bad minute
	 * would make the ratio a lottery. Each round's rate is a median of
	 * PERF_STREAM_REPS runs; the median over rounds is reported. */
	for (unsigned round = 0; round < R->rounds && !R->o.no_stream; round++) {
		for (int i = 0; i < NPPS; i++) {
			struct perf_result one;
			if (!pps_wanted(R, i) || (R->pps_run[i] && R->pps[i].rc < 0))
				continue;
			if (perf_run_path(pps_paths[i], &po, &one, log) < 0) {
				failed = 1;
				fprintf(stderr, "unet-perf compare-net: %s rate: %s\n",
					pps_paths[i]->title, one.err);
			}
			long pre = R->pps_run[i] ? R->pps[i].preempted : 0;
			if (!R->pps_run[i] || one.rc < 0)
				R->pps[i] = one; /* the first round, or the failure */
			R->pps[i].preempted = pre + (R->pps_run[i] ? one.preempted : 0);
			R->pps_run[i] = true;
			if (one.rc == 0)
				R->rate[i][R->nrate[i]++] = one.pt[0].mmsgs;
		}
	}
	for (int i = 0; i < NPPS; i++) {
		double v[MAX_ROUNDS];
		if (!R->pps_run[i] || R->pps[i].rc < 0 || R->nrate[i] == 0)
			continue;
		memcpy(v, R->rate[i], sizeof(v));
		qsort(v, R->nrate[i], sizeof(v[0]), cmp_double);
		R->pps[i].pt[0].mmsgs = v[R->nrate[i] / 2];
	}
	loadavg(R->load_after, sizeof(R->load_after));
	if (R->o.json)
		print_json(stdout, R);
	else
		print_text(R);
	if (R->o.json_out) {
		FILE *f = fopen(R->o.json_out, "w");
		if (!f) {
			fprintf(stderr, "unet-perf compare-net: cannot write %s: %s\n",
				R->o.json_out, strerror(errno));
			return 1;
		}
		print_json(f, R);
		if (fclose(f) != 0)
			failed = 1;
	}
	fflush(stdout);
	return failed;
}

/* ---- the owner of the wire ------------------------------------------------- */

static volatile sig_atomic_t got_signal;
static volatile pid_t measurer;

static void on_signal(int sig)
{
	got_signal = sig;
	if (measurer > 0)
		kill(measurer, SIGKILL); /* its responder follows (PDEATHSIG) */
}

static const int stop_signals[] = {SIGINT, SIGTERM, SIGHUP, SIGQUIT};
#define NSTOP (int)(sizeof(stop_signals) / sizeof(stop_signals[0]))

static void signals_catch(void)
{
	struct sigaction sa;

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	for (int i = 0; i < NSTOP; i++)
		sigaction(stop_signals[i], &sa, NULL);
}

static void signals_default(void)
{
	for (int i = 0; i < NSTOP; i++)
		signal(stop_signals[i], SIG_DFL);
}

/* Remove the wire; if a signal stopped us, die of it now. */
static int finish(int rc)
{
	net_ns_destroy(&net_cfg.ns);
	if (got_signal) {
		fprintf(stderr, "unet-perf compare-net: stopped by signal %d; namespaces removed\n",
			(int)got_signal);
		signals_default();
		raise(got_signal);
	}
	return rc;
}

static int run_measurer(struct run *R)
{
	int st;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		fprintf(stderr, "unet-perf compare-net: fork: %s\n", strerror(errno));
		return 1;
	}
	if (pid == 0) {
		signals_default();
		prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the wire's owner */
		if (getppid() == 1)
			_exit(1);
		int rc = measure(R);
		fflush(NULL);
		_exit(rc);
	}
	measurer = pid;
	if (got_signal) /* it came between fork and the line above */
		kill(pid, SIGKILL);
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return 1;
	measurer = 0;
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	if (!got_signal)
		fprintf(stderr, "unet-perf compare-net: the measuring process died (signal %d)\n",
			WTERMSIG(st));
	return 1;
}

/* ---- options --------------------------------------------------------------- */

enum { O_WINDOW = 3000, O_XDP_MODE, O_RX_BUFS, O_PATHS, O_NIC, O_ROUNDS };

static int parse_keys(struct run *R, const char *val, bool nic_only)
{
	char buf[256], *save = NULL;
	bool any = false;

	if (strlen(val) >= sizeof(buf))
		return -1;
	strcpy(buf, val);
	if (nic_only)
		R->want[K_XDP] = R->want[K_XDPG] = R->want[K_UDP_NIC] = false;
	else
		memset(R->want, 0, sizeof(R->want));
	for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
		int k = -1;
		if (nic_only && !strcmp(t, "xdp"))
			R->want[K_XDPG] = true; /* both XDP modes */
		if (nic_only)
			k = !strcmp(t, "xdp") ? K_XDP : !strcmp(t, "udp") ? K_UDP_NIC : -1;
		else
			for (int i = 0; i < NKEYS; i++)
				if (!strcmp(t, path_keys[i]))
					k = i;
		if (k < 0)
			return -1;
		R->want[k] = any = true;
	}
	return any ? 0 : -1;
}

static int parse_uint(const char *val, unsigned lo, unsigned hi, unsigned *out)
{
	char *end;
	unsigned long v;

	if (*val < '0' || *val > '9')
		return -1;
	errno = 0;
	v = strtoul(val, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = (unsigned)v;
	return 0;
}

static int net_opt(void *arg, int opt, const char *val)
{
	struct run *R = arg;
	unsigned v;

	switch (opt) {
	case O_WINDOW:
		if (parse_uint(val, 10, 10000, &v) == 0) {
			net_cfg.window_ms = v;
			return 0;
		}
		fprintf(stderr, "unet-perf compare-net: --window-ms wants 10..10000, not '%s'\n",
			val);
		return -1;
	case O_ROUNDS:
		if (parse_uint(val, 1, MAX_ROUNDS, &v) == 0) {
			R->rounds = v;
			return 0;
		}
		fprintf(stderr, "unet-perf compare-net: --rounds wants 1..%d, not '%s'\n",
			MAX_ROUNDS, val);
		return -1;
	case O_RX_BUFS:
		if (parse_uint(val, 64, 32768, &v) == 0) {
			net_cfg.xdp_rx_bufs = v;
			return 0;
		}
		fprintf(stderr, "unet-perf compare-net: --xdp-rx-bufs wants 64..32768, not '%s'\n",
			val);
		return -1;
	case O_XDP_MODE:
		if (!strcmp(val, "auto") || !strcmp(val, "native") || !strcmp(val, "generic")) {
			snprintf(net_cfg.xdp_mode, sizeof(net_cfg.xdp_mode), "%s", val);
			return 0;
		}
		fprintf(
		    stderr,
		    "unet-perf compare-net: --xdp-mode wants auto, native or generic, not '%s'\n",
		    val);
		return -1;
	case O_PATHS:
		if (parse_keys(R, val, false) == 0)
			return 0;
		fprintf(stderr,
			"unet-perf compare-net: --paths wants a comma list of xdp, xdp_generic, "
			"udp_nic, udp_blocking, udp_busy, kernel_mmsg, not '%s'\n",
			val);
		return -1;
	case O_NIC:
		if (parse_keys(R, val, true) == 0)
			return 0;
		fprintf(stderr,
			"unet-perf compare-net: --nic wants xdp, udp or xdp,udp, not '%s'\n", val);
		return -1;
	}
	return -1;
}

static const char net_help[] =
    "  --nic LIST         U-Net NICs to measure: xdp, udp or xdp,udp (default both;\n"
    "                     the kernel socket baselines always run)\n"
    "  --paths LIST       run only these of xdp, xdp_generic, udp_nic, udp_blocking,\n"
    "                     udp_busy, kernel_mmsg (the others show as not run)\n"
    "  --xdp-mode M       the xdp path's XDP mode: auto (native where the driver has\n"
    "                     it: veth does), native or generic. The xdp_generic path\n"
    "                     always runs generic mode (skipped when M is generic)\n"
    "  --xdp-rx-bufs N    receive frames of each xdp endpoint (default 8192: a\n"
    "                     receiver descheduled for a few ms must not drop)\n"
    "  --window-ms N      receiver's counting window of one rate run (default 100)\n"
    "  --rounds N         rate rounds, every path once per round in turn, the median\n"
    "                     reported (default 3; each round is 5 runs per path)\n"
    "\n"
    "Default sizes here: 8,64,256,1K,1400 (at most 1472: one datagram in the veth's\n"
    "1500-byte MTU). --no-stream skips the packet-rate runs; --stream-bytes is not\n"
    "used (rates are counted over time windows). Needs root (namespaces, veth,\n"
    "XDP); without it nothing is measured and the exit code is 77.\n";

static bool default_sizes(const struct perf_opts *o)
{
	static const size_t def[] = {8, 64, 256, 1024, 4096, 16384, 65536};

	if (o->nsizes != (int)(sizeof(def) / sizeof(def[0])))
		return false;
	for (int i = 0; i < o->nsizes; i++)
		if (o->sizes[i] != def[i])
			return false;
	return true;
}

static void ensure_size(struct perf_opts *o, size_t want)
{
	int i;

	for (i = 0; i < o->nsizes; i++)
		if (o->sizes[i] == want)
			return;
	if (o->nsizes == PERF_MAX_SIZES)
		o->nsizes--;
	for (i = o->nsizes; i > 0 && o->sizes[i - 1] > want; i--)
		o->sizes[i] = o->sizes[i - 1];
	o->sizes[i] = want;
	o->nsizes++;
}

int perf_mode_compare_net(int argc, char **argv)
{
	static struct run R;
	static const struct option longopts[] = {
	    {"window-ms", required_argument, NULL, O_WINDOW},
	    {"xdp-mode", required_argument, NULL, O_XDP_MODE},
	    {"xdp-rx-bufs", required_argument, NULL, O_RX_BUFS},
	    {"paths", required_argument, NULL, O_PATHS},
	    {"nic", required_argument, NULL, O_NIC},
	    {"rounds", required_argument, NULL, O_ROUNDS},
	    {NULL, 0, NULL, 0},
	};
	const struct perf_extra_opts extra = {
	    .longopts = longopts, .handle = net_opt, .arg = &R, .help = net_help};
	const char *why;
	int rc;

	for (int i = 0; i < NKEYS; i++)
		R.want[i] = true;
	net_cfg.window_ms = 100;
	R.rounds = 3;
	net_cfg.xdp_rx_bufs = 8192;
	snprintf(net_cfg.xdp_mode, sizeof(net_cfg.xdp_mode), "auto");
	rc = perf_parse_opts(
	    "compare-net",
	    "Over one veth pair between two network namespaces it creates (and always\n"
	    "removes), with the two processes pinned to two different CPUs: ping-pong round\n"
	    "trips of U-Net endpoints on the xdp NIC and on the udp NIC against kernel UDP\n"
	    "sockets (blocking and busy-polled), and the one-way 64-byte packet rate of xdp\n"
	    "endpoints against kernel sockets with sendmmsg/recvmmsg.",
	    argc, argv, &R.o, &extra);
	if (rc)
		return rc == 1 ? 0 : rc;
	if (default_sizes(&R.o)) {
		static const size_t def[] = {8, 64, 256, 1024, 1400};
		R.o.nsizes = (int)(sizeof(def) / sizeof(def[0]));
		memcpy(R.o.sizes, def, sizeof(def));
	}
	ensure_size(&R.o, 8);
	why = net_ns_unavailable();
	if (why) {
		fprintf(stderr, "unet-perf compare-net: skipped: %s\n", why);
		return EXIT_CANNOT_RUN;
	}
	rc = perf_pick_cpus(R.o.cpus);
	if (rc < 0) {
		fprintf(stderr, "unet-perf compare-net: %s\n",
			rc == -ENODEV ? "needs two CPUs to run on (the two sides are pinned to "
					"different CPUs)"
				      : strerror(-rc));
		return 1;
	}
	if (R.o.cpus[0] == R.o.cpus[1])
		fprintf(stderr,
			"unet-perf compare-net: warning: both sides on CPU %d; the "
			"kernel paths then measure a shared core\n",
			R.o.cpus[0]);
	net_cfg.cpus[0] = R.o.cpus[0];
	net_cfg.cpus[1] = R.o.cpus[1];
	R.ncpus = (int)sysconf(_SC_NPROCESSORS_ONLN);
	perf_clock_init(); /* before the fork: the children inherit the calibration */
	loadavg(R.load_before, sizeof(R.load_before));

	signals_catch();
	rc = net_ns_create(&net_cfg.ns);
	if (rc < 0 || got_signal) {
		if (!got_signal)
			fprintf(stderr,
				"unet-perf compare-net: cannot create the namespaces and veth pair "
				"(%s)\n",
				strerror(-rc));
		return finish(1);
	}
	return finish(run_measurer(&R));
}
