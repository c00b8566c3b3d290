/*
 * measure.c - the measurement helpers every unet-perf mode shares: the clock,
 * spin-waiting with a way out, percentiles, CPU pinning.
 *
 * The clock is the TSC when the CPU says it is invariant (constant_tsc and
 * nonstop_tsc): reading it costs a few ns where clock_gettime costs ~26 ns
 * here, and a shared-memory round trip is only ~130 ns, so the timer must
 * not be a visible part of what it times. It is calibrated once against
 * CLOCK_MONOTONIC; the child inherits the calibration through fork.
 */
#include <errno.h>
#include <math.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>

#include "perf.h"

bool perf__use_tsc;
static double ns_per_tick = 1.0;

uint64_t perf_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static bool tsc_invariant(void)
{
#if defined(__x86_64__) || defined(__i386__)
	FILE *f = fopen("/proc/cpuinfo", "r");
	char line[4096];
	bool constant = false, nonstop = false;

	if (!f)
		return false;
	while (fgets(line, sizeof(line), f)) {
		if (strncmp(line, "flags", 5) != 0)
			continue;
		constant = strstr(line, " constant_tsc") != NULL;
		nonstop = strstr(line, " nonstop_tsc") != NULL;
		break;
	}
	fclose(f);
	return constant && nonstop;
#else
	return false;
#endif
}

void perf_clock_init(void)
{
	perf__use_tsc = tsc_invariant();
	if (!perf__use_tsc)
		return;
	/* Twice 20 ms; keep the second, by then the page faults are done. */
	for (int round = 0; round < 2; round++) {
		struct timespec nap = {0, 20 * 1000 * 1000};
		uint64_t n0 = perf_now_ns(), t0 = perf_ticks();
		nanosleep(&nap, NULL);
		uint64_t n1 = perf_now_ns(), t1 = perf_ticks();
		if (t1 <= t0 || n1 <= n0) {
			perf__use_tsc = false;
			ns_per_tick = 1.0;
			return;
		}
		ns_per_tick = (double)(n1 - n0) / (double)(t1 - t0);
	}
}

const char *perf_clock_name(void)
{
	return perf__use_tsc ? "tsc" : "clock_gettime";
}

double perf_ticks_to_ns(uint64_t ticks)
{
	return (double)ticks * ns_per_tick;
}

int perf_wait_slow(struct perf_wait *w)
{
	uint64_t now = perf_now_ns(), waited;

	if (!w->start_ns)
		w->start_ns = now;
	w->spins = 4096 - 256; /* look at the clock again after 256 more polls */
	waited = now - w->start_ns;
	if (waited > (uint64_t)PERF_STALL_MS * 1000000ull)
		return -ETIMEDOUT;
	/* Far beyond a healthy round trip: the peer is probably descheduled,
	 * so let whoever needs this CPU (maybe the peer itself) run. */
	if (waited > 200000)
		sched_yield();
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of sorted samples. */
static uint64_t rank(const uint64_t *s, uint32_t n, double p)
{
	double r = ceil(p * (double)n);
	uint32_t i = r < 1 ? 0 : (uint32_t)r - 1;

	return s[i < n ? i : n - 1];
}

void perf_lat_compute(uint64_t *ticks, uint32_t n, struct perf_lat *out)
{
	double sum = 0;

	memset(out, 0, sizeof(*out));
	if (n == 0)
		return;
	qsort(ticks, n, sizeof(*ticks), cmp_u64);
	for (uint32_t i = 0; i < n; i++)
		sum += (double)ticks[i];
	out->n = n;
	out->min = perf_ticks_to_ns(ticks[0]);
	out->median = perf_ticks_to_ns(rank(ticks, n, 0.5));
	out->p99 = perf_ticks_to_ns(rank(ticks, n, 0.99));
	out->p999 = perf_ticks_to_ns(rank(ticks, n, 0.999));
	out->max = perf_ticks_to_ns(ticks[n - 1]);
	out->mean = sum / n * ns_per_tick;
}

int perf_pick_cpus(int cpus[2])
{
	cpu_set_t set;
	int want = (cpus[0] < 0) + (cpus[1] < 0);

	if (sched_getaffinity(0, sizeof(set), &set) < 0)
		return -errno;
	for (int c = 0; c < CPU_SETSIZE && want > 0; c++) {
		if (!CPU_ISSET(c, &set) || c == cpus[0] || c == cpus[1])
			continue;
		if (cpus[0] < 0)
			cpus[0] = c;
		else
			cpus[1] = c;
		want--;
	}
	return want > 0 ? -ENODEV : 0; /* ENODEV: fewer than two CPUs to run on */
}

int perf_pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0 || cpu >= CPU_SETSIZE)
		return -EINVAL;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	return sched_setaffinity(0, sizeof(set), &set) < 0 ? -errno : 0;
}

/* ---- how much of our CPUs others used ---------------------------------- */

/* user+nice+system and steal of one CPU from /proc/stat, in clock ticks.
 * irq and softirq are left out: with IRQ time accounting the kernel's UDP
 * work for us lands there, and it is not someone else's. */
static int cpu_ticks(int cpu, uint64_t *busy, uint64_t *steal)
{
	char line[512], want[16];
	FILE *f = fopen("/proc/stat", "r");
	int rc = -ENOENT;

	if (!f)
		return -errno;
	snprintf(want, sizeof(want), "cpu%d ", cpu);
	while (fgets(line, sizeof(line), f)) {
		unsigned long long v[8] = {0};
		if (strncmp(line, want, strlen(want)) != 0)
			continue;
		if (sscanf(line + strlen(want), "%llu %llu %llu %llu %llu %llu %llu %llu", &v[0],
			   &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) == 8) {
			*busy = v[0] + v[1] + v[2] + v[7];
			*steal = v[7];
			rc = 0;
		}
		break;
	}
	fclose(f);
	return rc;
}

static uint64_t tv_us(struct timeval tv)
{
	return (uint64_t)tv.tv_sec * 1000000u + (uint64_t)tv.tv_usec;
}

int perf_cpu_mark(struct perf_cpu_mark *m, const int cpus[2])
{
	struct rusage self, kids;

	memset(m, 0, sizeof(*m));
	for (int i = 0; i < 2; i++) {
		uint64_t b = 0, st = 0;
		int rc = cpu_ticks(cpus[i], &b, &st);
		if (rc < 0)
			return rc;
		if (i == 1 && cpus[1] == cpus[0])
			break;
		m->busy_ticks += b;
		m->steal_ticks += st;
	}
	if (getrusage(RUSAGE_SELF, &self) < 0 || getrusage(RUSAGE_CHILDREN, &kids) < 0)
		return -errno;
	m->ours_us = tv_us(self.ru_utime) + tv_us(self.ru_stime) + tv_us(kids.ru_utime) +
		     tv_us(kids.ru_stime);
	m->wall_ns = perf_now_ns();
	m->ncpu = cpus[0] == cpus[1] ? 1 : 2;
	return 0;
}

void perf_cpu_others(const struct perf_cpu_mark *a, const struct perf_cpu_mark *b,
		     double *others, double *steal)
{
	double hz = (double)sysconf(_SC_CLK_TCK);
	double wall = (double)(b->wall_ns - a->wall_ns) / 1e9 * a->ncpu;
	double busy = (double)(b->busy_ticks - a->busy_ticks) / hz;
	double ours = (double)(b->ours_us - a->ours_us) / 1e6;

	*others = wall > 0 && busy > ours ? (busy - ours) / wall : 0;
	*steal = wall > 0 ? (double)(b->steal_ticks - a->steal_ticks) / hz / wall : 0;
}
