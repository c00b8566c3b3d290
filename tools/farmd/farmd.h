/*
 * farmd.h - the node daemon's pieces and the state they share.
 *
 * farmd is one FaRM node: main.c starts it (farm_node_start) and runs its
 * progress loop; admin.c serves the admin socket without ever blocking that
 * loop; cmd.c turns one admin line into one JSON reply; bench.c measures
 * reads from inside the node, where the application would run; bench_tx.c
 * runs the transaction workloads in slices of the progress loop; log.c
 * writes one timestamped line per event to stderr.
 */
#ifndef FARMD_FARMD_H
#define FARMD_FARMD_H

#include <limits.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <farm/farm.h>

#define FARMD_MAX_CLIENTS 16

enum farmd_level { FARMD_ERROR, FARMD_WARN, FARMD_INFO, FARMD_DEBUG };

/* ---- log.c ---- */
void farmd_log_init(uint32_t id, enum farmd_level level);
int farmd_level_parse(const char *s, enum farmd_level *out);
void farmd_log(enum farmd_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
uint64_t farmd_now_ns(void);

/* ---- a growable reply buffer (admin path only: allocation is fine) ---- */
struct sbuf {
	char *p;
	size_t len, cap;
	bool oom;
};
void sb_printf(struct sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sb_reserve(struct sbuf *b, size_t more);
void sb_free(struct sbuf *b);
void sb_json_str(struct sbuf *b, const char *s); /* a quoted, escaped JSON string */

struct admin_client {
	int fd;
	char *in;
	size_t in_len;
	bool in_overflow; /* discarding the rest of an over-long line */
	struct sbuf out;
	size_t out_off;
	bool close_after; /* close once `out` is flushed */
};

struct farmd {
	struct farm *f;
	struct farm_config cfg;
	uint32_t id;
	char conf_path[PATH_MAX];
	char sock_path[PATH_MAX];
	char pid_path[PATH_MAX];
	int sig_fd;
	int listen_fd;
	struct admin_client clients[FARMD_MAX_CLIENTS];
	bool stop;
	const char *stop_reason;
	uint64_t start_ns, ready_ns;
	struct bench_tx *btx; /* bench_tx.c: the last transaction run, or NULL */
	struct mc_gw *mc; /* --memcached-port (memcache_gw.h), NULL without */
	/* --zk (zk.c) */
	struct farm_membership *mem;
	uint32_t lease_ms;
	uint64_t lease_flips, rehello_until;
	bool joining;		 /* this node joins a running cluster (zk.c) */
	uint64_t ready_reported; /* configuration we reported ready in */
	uint64_t join_seen;	 /* configuration joining_poll looked at last */
};

/* ---- zk.c: ZooKeeper membership (--zk) ---- */
struct farm_membership;
/* Join through ZooKeeper; on success d->cfg is the configuration to start. */
int farmd_zk_join(struct farmd *d, const char *zk, uint32_t lease_ms, int timeout_ms, char *err,
		  size_t errlen);
void farmd_zk_attach(struct farmd *d); /* after farm_node_start */
void farmd_zk_poll(struct farmd *d);   /* node loop: adopt new configurations */
void farmd_zk_stop(struct farmd *d);   /* before farm_node_stop */
void farmd_zk_status(struct farmd *d, struct sbuf *out); /* ,"membership":... */
/* The start failed: true when membership has a newer configuration that
 * lists us as joining (d->cfg is now that one: start again in it). */
bool farmd_zk_newer(struct farmd *d);
/* main.c: one line with the regions this node leads and backs. */
void farmd_log_placement(struct farmd *d);

/* ---- admin.c ---- */
/* Bind RUN_DIR/node-ID.sock (refusing one a live node answers on). */
int admin_open(struct farmd *d);
/* Accept, read, answer, flush: never waits. Also reads the signalfd. */
void admin_poll(struct farmd *d);
void admin_close(struct farmd *d);

/* ---- cmd.c ---- */
/* Run one admin command line and append exactly one JSON line to `out`. */
void cmd_run(struct farmd *d, char *line, struct sbuf *out);
int cmd_error(struct sbuf *out, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- bench.c ---- */
struct bench_result {
	farm_addr_t addr;
	uint32_t target; /* primary of the object read */
	uint64_t count, retries;
	double seconds, ops_per_sec, chunk_ops_per_sec;
	uint64_t median_ns, p99_ns, min_ns, lat_samples;
};
/* Read one object of `size` bytes `count` times, remote (primary elsewhere)
 * or local; allocates the object and frees it afterwards. */
int bench_read(struct farmd *d, uint32_t size, uint64_t count, bool remote, struct bench_result *r,
	       char *err, size_t errlen);

/* ---- bench_tx.c ---- */
/* `bench tx ...` (tok[0] is "bench", tok[1] "tx"). */
int bench_tx_cmd(struct farmd *d, int n, char **tok, struct sbuf *out);
/* Run transactions for about a millisecond when a run is on; returns how
 * many ran (0: none, the loop may go idle). */
int bench_tx_slice(struct farmd *d);
void bench_tx_free(struct farmd *d);

#endif /* FARMD_FARMD_H */
