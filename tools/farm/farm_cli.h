/*
 * farm_cli.h - the farm CLI's pieces and what they share.
 *
 * main.c dispatches `farm <command>`; opts.c parses every command's
 * options the same way (--help, --json, --dir, --name everywhere); rundir.c
 * finds a cluster's run directory and its nodes' files; cluster.c starts,
 * inspects and stops local clusters; restart.c starts one member of a
 * running cluster again (it rejoins through ZooKeeper); netns.c builds and
 * removes their network namespaces; spawn.c starts one farmd; client.c
 * talks to a node's admin socket; mem.c is alloc/read/write/free/bench;
 * bench_tx.c is `bench tx`; bench_recovery.c is `bench recovery`; json.c
 * reads replies.
 *
 * Exit codes everywhere: 0 success, 1 runtime failure, 2 bad arguments.
 */
#ifndef FARM_CLI_H
#define FARM_CLI_H

#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <farm/farm.h>

#define EXIT_USAGE 2

/* ---- opts.c ---- */
struct opt {
	const char *name; /* long name without "--" */
	char shrt;	  /* short letter or 0 */
	bool has_arg;
	const char **val; /* has_arg: where the value goes */
	bool *flag;	  /* !has_arg: set to true */
};

struct cli {
	const char *cmd;   /* "cluster up", "alloc", ...: for messages */
	const char *usage; /* the command's --help text */
	bool json;
	const char *dir, *name;
	char run_dir[PATH_MAX - 64];
	char conf_path[PATH_MAX];
};

/* Parse argv against `opts` plus the common ones; positionals land in
 * pos[0..*npos). Prints help and exits 0 on --help; exits 2 on errors. */
void opts_parse(struct cli *c, const struct opt *opts, int argc, char **argv, char **pos,
		int maxpos, int *npos);
void usage_fail(const struct cli *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3), noreturn));
/* Runtime failure: the message on stderr (and as JSON on stdout with
 * --json); returns 1 for `return fail(...)`. */
int fail(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void progress(const struct cli *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
long parse_num(const struct cli *c, const char *what, const char *s, long min, long max);
uint64_t parse_size(const struct cli *c, const char *what, const char *s);
uint64_t parse_addr(const struct cli *c, const char *what, const char *s);
void json_print_str(const char *s); /* quoted, escaped, to stdout */
long now_ms(void);	       /* CLOCK_MONOTONIC */
void sleep_ms(int ms);

/* ---- rundir.c ---- */
/* Fill c->run_dir / c->conf_path from --dir, else --name. */
int rundir_resolve(struct cli *c);
int mkdir_p(const char *dir, mode_t mode);
/* Load RUN_DIR/farm.conf; 1 (with a message) when there is no cluster. */
int cluster_load(const struct cli *c, struct farm_config *cfg);
/* A live farmd of this cluster named by node `id`'s pid file, else 0. */
pid_t node_pid(const struct cli *c, uint32_t id);
int write_file(const char *path, const char *text, mode_t mode);
/* The last `lines` lines of a file, to stderr, indented. */
void print_tail(const char *path, int lines);
/* RUN_DIR/farmd.opts: how `up` started every farmd, for `restart`. */
struct node_opts {
	int timeout_ms;
	char log_level[16]; /* "" = farmd's default */
	bool zk;	    /* --zk, with the address in RUN_DIR/zk.hosts */
	char lease_ms[16];  /* --lease-ms, "" when not given */
};
int node_opts_write(const char *run_dir, const struct node_opts *o);
/* 0, -ENOENT (a cluster started before the file existed), -EINVAL. */
int node_opts_read(const char *run_dir, struct node_opts *o);

/* ---- json.c ---- */
enum json_type { JSON_NULL, JSON_BOOL, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT };
struct json {
	enum json_type type;
	bool boolean;
	double num;
	uint64_t u64;
	char *str;
	size_t n; /* array / object members */
	struct json **kids;
	char **keys; /* object keys (NULL for arrays) */
};
struct json *json_parse(const char *text);
void json_free(struct json *j);
const struct json *json_get(const struct json *j, const char *key);
const char *json_str(const struct json *j, const char *key);
uint64_t json_u64(const struct json *j, const char *key);
double json_num(const struct json *j, const char *key);
bool json_true(const struct json *j, const char *key);

/* ---- client.c ---- */
/* Send one command line to node `id`, wait up to timeout_ms for the reply
 * line. *reply is malloc'd (the raw line, without '\n'). Returns 0,
 * -ENOENT (no socket: not running), -ECONNREFUSED, -ETIMEDOUT, ... */
int admin_call(const char *run_dir, uint32_t id, const char *line, int timeout_ms, char **reply);
/* admin_call + parse; on failure a message for the user in err. */
int admin_query(const char *run_dir, uint32_t id, const char *line, int timeout_ms, char **raw,
		struct json **j, char *err, size_t errlen);

/* ---- netns.c ---- */
int netns_up(const struct cli *c, const char *cluster, uint32_t n, char *err, size_t errlen);
/* Remove farm-CLUSTER-* namespaces (and with them every veth and the
 * bridge); returns how many were removed. */
int netns_down(const char *cluster);
int netns_enter(const char *name);
void netns_name(char *out, size_t len, const char *cluster, uint32_t id); /* id 0: bridge */

/* ---- spawn.c ---- */
struct spawn {
	uint32_t id;
	const char *conf, *log, *netns, *log_level;
	int timeout_ms;
	const char *zk;       /* --zk HOSTS, or NULL: static membership */
	const char *lease_ms; /* --lease-ms, or NULL */
	bool keep_log;	      /* append to the log (restart) instead of truncating it */
};
/* fork + exec farmd detached (own session, stdin /dev/null, stdout and
 * stderr to the log), inside its namespace when netns is set. */
pid_t spawn_farmd(const struct spawn *s, char *err, size_t errlen);

/* ---- zkserver.c: `cluster up --zk`, a standalone ZooKeeper in RUN_DIR/zk ---- */
/* NULL when java and the server jar are there, else why not. */
const char *zk_local_unavailable(void);
/* Start it (fresh data, free 127.0.0.1 port, pid in RUN_DIR/zk.pid), wait
 * for `imok`; hosts gets "127.0.0.1:PORT". 0 or -errno with err set. */
int zk_local_start(const char *run_dir, char *hosts, size_t hlen, char *err, size_t errlen);
/* The hosts string of a running one (RUN_DIR/zk.hosts). */
int zk_local_hosts(const char *run_dir, char *hosts, size_t hlen);
/* Stop it by pid (SIGTERM, SIGKILL after timeout_ms): 1 killed, 0 otherwise. */
int zk_local_stop(const char *run_dir, int timeout_ms);

/* ---- commands ---- */
int cmd_cluster(int argc, char **argv);
int cluster_restart(struct cli *c, int argc, char **argv); /* restart.c */
int cmd_alloc(int argc, char **argv);
int cmd_read(int argc, char **argv);
int cmd_write(int argc, char **argv);
int cmd_free(int argc, char **argv);
int cmd_bench(int argc, char **argv);
int cmd_bench_tx(int argc, char **argv);       /* bench_tx.c: `farm bench tx` */
int cmd_bench_recovery(int argc, char **argv); /* bench_recovery.c */
int cmd_kv(int argc, char **argv);	       /* kv.c: `farm kv ...` */

#endif /* FARM_CLI_H */
