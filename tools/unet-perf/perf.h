/*
 * perf.h - what the files of unet-perf share.
 *
 * unet-perf measures paths between two processes pinned to different CPUs.
 * A *path* (path_*.c) knows how to move one message of a given size from the
 * initiator to the responder and back (ping-pong), and how to stream many
 * messages one way; the *runner* (runner.c) forks the responder, pins both
 * sides, drives each path over a list of sizes through a control socket and
 * collects the samples; the *measure* helpers (measure.c) own the clock,
 * percentiles and CPU pinning; *report* (report.c) prints tables and JSON.
 * A *mode* (compare.c, and later compare-net, rdma) chooses paths and prints.
 *
 * So a new mode is one new file plus one line in the mode table in main.c,
 * and a new path is one struct perf_path the mode lists.
 */
#ifndef UNET_PERF_H
#define UNET_PERF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <getopt.h>

#define PERF_MAX_SIZES	   32
#define PERF_MAX_MSG	   (1u << 20) /* largest --sizes entry */
#define PERF_DEFAULT_ITERS 20000u
#define PERF_STREAM_BYTES  (256u << 20) /* bytes streamed per size, before caps */
#define PERF_STALL_MS	   5000		/* no progress for this long = peer lost */
#define PERF_STREAM_REPS   5		/* streaming runs per size; the median counts */

/* ---- options (main.c) --------------------------------------------------- */

struct perf_opts {
	bool json;
	const char *json_out; /* also write the JSON object to this file */
	uint32_t iters;	      /* measured ping-pong iterations per size */
	uint32_t warmup;      /* excluded iterations before them */
	size_t sizes[PERF_MAX_SIZES];
	int nsizes;
	int cpus[2]; /* initiator, responder; -1 = chosen by perf_pick_cpus */
	uint64_t stream_bytes;
	bool no_stream;
	uint32_t floor_slots; /* page pairs the floor moves over (0 = default) */
	uint32_t shm_pairs;   /* endpoint pairs the shm path moves over (0 = default) */
};

/* A mode's extra options: getopt_long entries plus a handler that returns 0,
 * or -1 after printing why the value is bad (exit code 2). */
struct perf_extra_opts {
	const struct option *longopts; /* terminated by a zero entry */
	int (*handle)(void *arg, int opt, const char *optarg);
	void *arg;
	const char *help; /* lines appended to the mode's --help */
};

/* Parse the options every mode shares (--json, --iters, --warmup, --sizes,
 * --cpus, --stream-bytes, --no-stream, --help) plus `extra`. Returns 0,
 * 1 when --help was printed, or 2 after printing a usage error. */
int perf_parse_opts(const char *mode, const char *summary, int argc, char **argv,
		    struct perf_opts *o, const struct perf_extra_opts *extra);
int perf_parse_size(const char *s, size_t *out); /* "64", "4K", "64KiB", "1M" */

/* ---- measurement helpers (measure.c) ------------------------------------ */

/* The clock: ticks are TSC cycles where the TSC is invariant, else ns. */
void perf_clock_init(void);
const char *perf_clock_name(void);
uint64_t perf_now_ns(void); /* CLOCK_MONOTONIC: comparable across processes */
double perf_ticks_to_ns(uint64_t ticks);

static inline uint64_t perf_ticks(void)
{
#if defined(__x86_64__) || defined(__i386__)
	extern bool perf__use_tsc;
	if (perf__use_tsc) {
		unsigned lo, hi;
		/* No lfence: here it adds ~80 ns to a ~200 ns round trip, far
		 * more than the skew it would remove. The read that ends a
		 * round trip sits behind the spin loop's exit branch anyway. */
		__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi)::"memory");
		return ((uint64_t)hi << 32) | lo;
	}
#endif
	return perf_now_ns();
}

static inline void perf_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

/* Spin-wait bookkeeping: spin hard first, give the CPU away (sched_yield)
 * once the wait is longer than any healthy round trip, fail after
 * PERF_STALL_MS. Call perf_wait_begin once, perf_wait_step per empty poll;
 * perf_wait_step returns -ETIMEDOUT when the peer is lost. */
struct perf_wait {
	uint32_t spins;
	uint64_t start_ns;
};
static inline void perf_wait_begin(struct perf_wait *w)
{
	w->spins = 0;
	w->start_ns = 0;
}
int perf_wait_slow(struct perf_wait *w);
static inline int perf_wait_step(struct perf_wait *w)
{
	if (++w->spins < 4096) {
		perf_relax();
		return 0;
	}
	return perf_wait_slow(w);
}

/* Latency summary of a set of samples, in ns. */
struct perf_lat {
	uint32_t n;
	double min, median, p99, p999, max, mean;
};
/* Sorts `ticks` in place. */
void perf_lat_compute(uint64_t *ticks, uint32_t n, struct perf_lat *out);

/* Who else ran on our two CPUs between two marks: the share of their time
 * (0..1) spent in tasks other than this process and its reaped children,
 * the host's steal included, and that steal alone. A busy machine shows
 * here before it shows as a strange number. */
struct perf_cpu_mark {
	uint64_t busy_ticks, steal_ticks; /* /proc/stat, both CPUs */
	uint64_t ours_us;                 /* rusage: self + reaped children */
	uint64_t wall_ns;
	int ncpu;
};
int perf_cpu_mark(struct perf_cpu_mark *m, const int cpus[2]);
void perf_cpu_others(const struct perf_cpu_mark *a, const struct perf_cpu_mark *b,
		     double *others, double *steal);

/* CPUs: pick two distinct allowed CPUs (fills -1 entries), pin the caller. */
int perf_pick_cpus(int cpus[2]);
int perf_pin(int cpu);

/* ---- paths and the runner (runner.c) ------------------------------------ */

enum { PERF_INITIATOR = 0, PERF_RESPONDER = 1 };

/* Result of one streaming run, as the receiver saw it. */
struct perf_stream_rx {
	uint64_t received; /* messages */
	uint64_t last_ns;  /* perf_now_ns() when the last one arrived */
};

/*
 * One way of moving bytes between the two processes. The runner calls
 * setup() before fork (shared mappings, sockets), attach() in each process
 * after it, then per size ping()/pong() or stream_tx()/stream_rx(), which run
 * at the same time on the two sides, and finally detach() in each process
 * and teardown() in the initiator. ctx is ctx_size zeroed bytes; each
 * process has its own copy after fork. Functions return 0 or -errno.
 */
struct perf_path {
	const char *key;   /* JSON key: "shm" */
	const char *title; /* table heading: "shm NIC" */
	size_t ctx_size;
	size_t max_msg; /* largest message this path can carry */
	int (*setup)(void *ctx, const struct perf_opts *o, size_t max_size);
	int (*attach)(void *ctx, int side);
	/* Initiator: `iters` round trips, tick count of each into rtt[]. */
	int (*ping)(void *ctx, size_t size, uint32_t iters, uint64_t *rtt);
	/* Responder: answer `iters` messages. */
	int (*pong)(void *ctx, size_t size, uint32_t iters);
	/* NULL when the path does not stream. */
	int (*stream_tx)(void *ctx, size_t size, uint64_t count);
	int (*stream_rx)(void *ctx, size_t size, uint64_t count, struct perf_stream_rx *res);
	void (*detach)(void *ctx, int side);
	void (*teardown)(void *ctx);
	const char *note; /* one line for the report: how the path works */
};

struct perf_point {
	size_t size;
	int lat_rc; /* 0, -EMSGSIZE (skipped: too big for the path), or failure */
	struct perf_lat lat;
	int bw_rc;		 /* 0, -EMSGSIZE, -ENOTSUP (path does not stream), or failure */
	uint64_t sent, received; /* summed over the streaming runs */
	double seconds;		 /* likewise */
	double gbps, mmsgs;	 /* median run; GB/s = 1e9 B/s, millions of msgs/s */
};

struct perf_result {
	const struct perf_path *path;
	int rc;		/* the path as a whole: set-up or peer failure */
	char err[160];	/* why, when rc < 0 */
	long preempted; /* involuntary context switches of both processes: noise */
	int n;
	struct perf_point pt[PERF_MAX_SIZES];
};

/* Messages streamed in all for one size, split over PERF_STREAM_REPS runs. */
uint64_t perf_stream_count(const struct perf_opts *o, size_t size);

/* Run `path` over o->sizes, forking the responder. Fills *res; returns 0
 * or the failure also recorded in res->rc. Progress goes to `log` if set. */
int perf_run_path(const struct perf_path *path, const struct perf_opts *o, struct perf_result *res,
		  FILE *log);
/* Fill *res for a path the user chose not to run (every point "not run"). */
void perf_skip_path(const struct perf_path *path, const struct perf_opts *o,
		    struct perf_result *res);

/* ---- output (report.c) -------------------------------------------------- */

/* Human tables. */
void perf_print_latency(FILE *f, const struct perf_result *r, int nr);
void perf_print_bandwidth(FILE *f, const struct perf_result *r, int nr);
const struct perf_point *perf_find_point(const struct perf_result *r, size_t size);

/* A small streaming JSON writer: it tracks nesting and commas so callers
 * only say what goes in. Non-finite numbers are written as null. */
struct perf_json {
	FILE *f;
	int depth;
	bool first[16]; /* per depth: no member written yet */
	char kind[16];	/* per depth: '{' or '[' */
};
void perf_json_begin(struct perf_json *j, FILE *f);
void perf_json_end(struct perf_json *j);
void perf_json_obj(struct perf_json *j, const char *key); /* key NULL inside arrays */
void perf_json_arr(struct perf_json *j, const char *key);
void perf_json_close(struct perf_json *j); /* closes the innermost obj/arr */
void perf_json_num(struct perf_json *j, const char *key, double v);
void perf_json_int(struct perf_json *j, const char *key, int64_t v);
void perf_json_str(struct perf_json *j, const char *key, const char *v);
void perf_json_bool(struct perf_json *j, const char *key, bool v);
void perf_json_null(struct perf_json *j, const char *key);
/* The full latency and bandwidth tables of results, as two members. */
void perf_json_results(struct perf_json *j, const struct perf_result *r, int nr);

/* ---- paths (path_*.c) --------------------------------------------------- */

extern const struct perf_path perf_path_floor;
extern const struct perf_path perf_path_shm;
extern const struct perf_path perf_path_udp_blocking;
extern const struct perf_path perf_path_udp_busy;

#endif /* UNET_PERF_H */
