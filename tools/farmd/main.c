/*
 * main.c - farmd: one FaRM node as a process.
 *
 *   farmd --config FILE --id N [--timeout MS] [--log-level L] [--zk HOSTS [--lease-ms MS]]
 *
 * Order of start-up, and why:
 *  1. arguments and config (exit 2 on either, with the parser's line);
 *  2. the pid file RUN_DIR/node-N.pid, refusing when it names a live farmd:
 *     a node started twice must fail before it touches the NIC;
 *  3. farm_node_start, bounded by --timeout (missing peers are an error
 *     naming them, never a hang); SIGTERM meanwhile ends the process at once;
 *  4. the admin socket, only now, so that its existence means "ready";
 *  5. the progress loop: farm_poll while there is work, farm_idle (short)
 *     when there is none, and the admin socket and the signalfd looked at
 *     about once a millisecond and after every idle wait that timed out,
 *     never blocking.
 * SIGTERM/SIGINT (through the signalfd) or the admin `stop` end the loop;
 * the node stops and the socket and pid file are removed.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/stat.h>

#include "farmd.h"
#include "memcache_gw.h"
#include "proto.h"

#define IDLE_MS	       5       /* longest idle sleep: bounds the admin latency */
#define ADMIN_EVERY_NS 1000000 /* look at the admin socket this often when busy */
#define OPT_MC_PORT    1001    /* long-only options */
#define OPT_MC_ADDR    1002
#define OPT_MC_SHARED  1003
#define OPT_MC_THREADS 1004

static const char usage_text[] =
    "usage: farmd --config FILE --id N [--timeout MS] [--log-level L] [--zk HOSTS]\n"
    "\n"
    "Runs node N of the FaRM cluster described by FILE (see farm_config_load in\n"
    "farm.h; `farm cluster up` writes one). Logs to stderr, serves the admin\n"
    "socket RUN_DIR/node-N.sock, stops cleanly on SIGTERM or SIGINT.\n"
    "\n"
    "  --config FILE     cluster configuration (required)\n"
    "  --id N            this node's member id (required)\n"
    "  --timeout MS      how long to wait for the other members (default 10000)\n"
    "  --log-level L     error, warn, info (default) or debug\n"
    "  --zk HOSTS        ZooKeeper membership (host:port,...): configurations,\n"
    "                    CM election, leases; without it the config file is the\n"
    "                    static membership\n"
    "  --lease-ms MS     lease between the CM and members with --zk (default 100)\n"
    "  --memcached-port P  serve the memcached text protocol on TCP port P (0: any\n"
    "                    free port, logged) from the key-value table \"memcached\"\n"
    "  --memcached-addr A  address for it (default 127.0.0.1, loopback only)\n"
    "  --memcached-shared-port P  also serve it on port P shared (SO_REUSEPORT)\n"
    "                    with the other nodes of this host given the same P\n"
    "  --memcached-threads N  worker threads serving its clients (default 4, as\n"
    "                    memcached's -t; 0: serve them from the node's own loop)\n"
    "  --help            this text\n"
    "\n"
    "Exit status: 0 stopped cleanly, 1 runtime failure, 2 bad arguments or config.\n";

static const char *startup_pid_path;

static void usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "farmd: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\n(farmd --help for usage)\n");
	exit(2);
}

/* SIGTERM while farm_node_start waits for peers: nothing to stop yet but
 * the pid file (unlink and write are async-signal-safe). */
static void startup_signal(int sig)
{
	static const char msg[] = "farmd: stopped by a signal during start-up\n";

	if (startup_pid_path)
		unlink(startup_pid_path);
	if (write(STDERR_FILENO, msg, sizeof(msg) - 1) < 0) {
		/* exiting anyway */
	}
	_exit(128 + sig);
}

static long parse_long(const char *s, long min, long max, const char *what)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max) {
		char msg[128];
		snprintf(msg, sizeof(msg), "%s must be an integer in %ld..%ld, got '%%s'", what,
			 min, max);
		usage_error(msg, s);
	}
	return v;
}

static int write_pid_file(const char *path)
{
	char tmp[PATH_MAX + 8], buf[32];
	int fd, n;

	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -errno;
	n = snprintf(buf, sizeof(buf), "%d\n", (int)getpid());
	if (write(fd, buf, (size_t)n) != n || close(fd) < 0 || rename(tmp, path) < 0) {
		int rc = -errno;
		unlink(tmp);
		return rc ? rc : -EIO;
	}
	return 0;
}

static int mkdir_p(const char *dir)
{
	char p[PATH_MAX];

	if (strlen(dir) >= sizeof(p))
		return -ENAMETOOLONG;
	strcpy(p, dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

void farmd_log_placement(struct farmd *d)
{
	const struct farm_config *c = farm_get_config(d->f);
	char prim[512] = "", back[512] = "";
	size_t np = 0, nb = 0;

	for (uint32_t r = 0; r < c->regions; r++) {
		uint32_t reps[FARM_MAX_MEMBERS];
		int k = farm_region_replicas(d->f, r, reps, FARM_MAX_MEMBERS);
		for (int i = 0; i < k; i++) {
			if (reps[i] != d->id)
				continue;
			char *s = i == 0 ? prim : back;
			size_t *n = i == 0 ? &np : &nb;
			if (*n < sizeof(prim) - 16)
				*n += (size_t)snprintf(s + *n, sizeof(prim) - *n, "%s%u",
						       *n ? "," : "", r);
		}
	}
	farmd_log(FARMD_INFO, "primary for regions [%s], backup for [%s]", prim, back);
}

/* Only our own: a pid file rewritten by a later node is not ours to drop. */
static void remove_pid_file(const char *path)
{
	if (farm_pid_read(path) == getpid())
		unlink(path);
}

static void run(struct farmd *d)
{
	uint64_t last = farmd_now_ns();
	unsigned errors = 0;

	while (!d->stop) {
		int n = farm_poll(d->f);
		uint64_t now;

		if (bench_tx_slice(d) > 0)
			n = 1; /* transactions ran: busy, no idle wait */
		farmd_zk_poll(d); /* one atomic load unless a configuration came */
		if (n < 0 && errors++ < 10)
			farmd_log(FARMD_WARN, "progress: %s", farm_strerror(n));
		/* Idle: sleep in farm_idle. It returns early when a peer needs us;
		 * then the admin socket waits for its millisecond like when busy
		 * (a served read on udp/xdp must not pay a poll(2) each time). */
		if (d->mc && n > 0) {
			mc_gw_poll(d->mc);  /* a busy node still serves its clients */
			mc_gw_yield(d->mc); /* and lets its workers in */
		}
		/* with the gateway, one sleep for the node and its clients */
		if (n <= 0 && (d->mc ? mc_gw_idle(d->mc, IDLE_MS) : farm_idle(d->f, IDLE_MS)) <= 0) {
			admin_poll(d);
			last = farmd_now_ns();
			continue;
		}
		now = farmd_now_ns();
		if (now - last >= ADMIN_EVERY_NS) {
			admin_poll(d);
			last = now;
		}
	}
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},  {"id", required_argument, NULL, 'i'},
	    {"timeout", required_argument, NULL, 't'}, {"log-level", required_argument, NULL, 'l'},
	    {"zk", required_argument, NULL, 'z'},      {"lease-ms", required_argument, NULL, 'L'},
	    {"memcached-port", required_argument, NULL, OPT_MC_PORT},
	    {"memcached-addr", required_argument, NULL, OPT_MC_ADDR},
	    {"memcached-shared-port", required_argument, NULL, OPT_MC_SHARED},
	    {"memcached-threads", required_argument, NULL, OPT_MC_THREADS},
	    {"help", no_argument, NULL, 'h'},	       {NULL, 0, NULL, 0},
	};
	static struct farmd d; /* big (config, client buffers): not on the stack */
	enum farmd_level level = FARMD_INFO;
	const char *mc_addr = "127.0.0.1";
	long mc_port = -1, mc_shared = 0, mc_threads = 4;
	bool mc_failed = false;
	const char *conf = NULL, *zk = NULL;
	long id = -1, timeout = 10000, lease_ms = 0;
	char err[512] = "";
	struct sigaction sa = {.sa_handler = startup_signal};
	sigset_t mask;
	pid_t other;
	int c, rc;

	opterr = 0;
	while ((c = getopt_long(argc, argv, ":c:i:t:l:z:L:h", opts, NULL)) != -1) {
		switch (c) {
		case 'z':
			zk = optarg;
			break;
		case 'L':
			lease_ms = parse_long(optarg, 2, 60000, "--lease-ms");
			break;
		case 'c':
			conf = optarg;
			break;
		case 'i':
			id = parse_long(optarg, 1, UINT32_MAX, "--id");
			break;
		case 't':
			timeout = parse_long(optarg, 1, 3600000, "--timeout");
			break;
		case 'l':
			if (farmd_level_parse(optarg, &level) < 0)
				usage_error(
				    "--log-level must be error, warn, info or debug, got '%s'",
				    optarg);
			break;
		case OPT_MC_PORT:
			mc_port = parse_long(optarg, 0, 65535, "--memcached-port");
			break;
		case OPT_MC_ADDR:
			mc_addr = optarg;
			break;
		case OPT_MC_SHARED:
			mc_shared = parse_long(optarg, 1, 65535, "--memcached-shared-port");
			break;
		case OPT_MC_THREADS:
			mc_threads = parse_long(optarg, 0, 64, "--memcached-threads");
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case ':':
			usage_error("option %s needs a value", argv[optind - 1]);
			break;
		default:
			usage_error("unknown option '%s'", argv[optind - 1]);
		}
	}
	if (optind < argc)
		usage_error("unexpected argument '%s'", argv[optind]);
	if (!conf)
		usage_error("%s", "--config FILE is required");
	if (id < 0)
		usage_error("%s", "--id N is required");
	if (mc_shared && mc_port < 0)
		usage_error("%s", "--memcached-shared-port needs --memcached-port");

	farmd_log_init((uint32_t)id, level);
	rc = farm_config_load(conf, &d.cfg, err, sizeof(err));
	if (rc < 0) {
		/* err names the file and the line */
		fprintf(stderr, "farmd: bad config: %s\n", err[0] ? err : farm_strerror(rc));
		return 2;
	}
	d.id = (uint32_t)id;
	d.sig_fd = d.listen_fd = -1;
	bool member = false;
	for (uint32_t i = 0; i < d.cfg.nmembers; i++)
		member |= d.cfg.members[i].id == d.id;
	if (!member) {
		fprintf(stderr,
			"farmd: %s: node %ld is not a member of cluster '%s' (%u members)\n", conf,
			id, d.cfg.cluster, d.cfg.nmembers);
		return 2;
	}
	snprintf(d.conf_path, sizeof(d.conf_path), "%s", conf);
	if (farm_path_sock(d.sock_path, sizeof(d.sock_path), d.cfg.run_dir, d.id) < 0 ||
	    farm_path_pid(d.pid_path, sizeof(d.pid_path), d.cfg.run_dir, d.id) < 0) {
		fprintf(stderr, "farmd: run directory path too long: %s\n", d.cfg.run_dir);
		return 2;
	}
	rc = mkdir_p(d.cfg.run_dir);
	if (rc < 0) {
		farmd_log(FARMD_ERROR, "cannot create run directory %s: %s", d.cfg.run_dir,
			  strerror(-rc));
		return 1;
	}
	other = farm_pid_read(d.pid_path);
	if (other && other != getpid() && farm_pid_is_node(other, NULL)) {
		farmd_log(FARMD_ERROR, "node %u of cluster '%s' is already running (pid %d, %s)",
			  d.id, d.cfg.cluster, (int)other, d.pid_path);
		return 1;
	}
	rc = write_pid_file(d.pid_path);
	if (rc < 0) {
		farmd_log(FARMD_ERROR, "cannot write %s: %s", d.pid_path, strerror(-rc));
		return 1;
	}
	startup_pid_path = d.pid_path;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	farmd_log(FARMD_INFO,
		  "starting node %u of cluster '%s': nic %s, %u members, %u regions of %llu bytes, "
		  "%u replicas, config %llu, waiting up to %ld ms for peers",
		  d.id, d.cfg.cluster, d.cfg.nic, d.cfg.nmembers, d.cfg.regions,
		  (unsigned long long)d.cfg.region_size, d.cfg.replicas,
		  (unsigned long long)d.cfg.config_id, timeout);
	d.start_ns = farmd_now_ns();
	if (zk) {
		rc = farmd_zk_join(&d, zk, (uint32_t)lease_ms, (int)timeout, err, sizeof(err));
		if (rc < 0) {
			farmd_log(FARMD_ERROR, "cannot join through ZooKeeper: %s", err);
			remove_pid_file(d.pid_path);
			return rc == -ENOTSUP ? 2 : 1;
		}
	}
	rc = farm_node_start_err(&d.cfg, d.id, (int)timeout, &d.f, err, sizeof(err));
	/* A joiner whose configuration moved on while it started (a peer
	 * refused it as stale, or a member it waited for was removed): start
	 * again in the newer one, within the same --timeout. */
	while (zk && (rc == -ESTALE || rc == -ETIMEDOUT) &&
	       farmd_now_ns() - d.start_ns < (uint64_t)timeout * 1000000u) {
		uint64_t until = farmd_now_ns() + 500000000ull;
		while (!farmd_zk_newer(&d) && farmd_now_ns() < until)
			usleep(2000);
		if (farmd_now_ns() >= until)
			break;
		farmd_log(FARMD_INFO, "start failed (%s): starting again in configuration %llu",
			  err, (unsigned long long)d.cfg.config_id);
		rc = farm_node_start_err(&d.cfg, d.id, (int)timeout, &d.f, err, sizeof(err));
	}
	if (rc < 0) {
		/* err names the member that did not answer, the field that is wrong... */
		farmd_log(FARMD_ERROR, "cannot start node %u: %s", d.id,
			  err[0] ? err : farm_strerror(rc));
		farmd_zk_stop(&d);
		remove_pid_file(d.pid_path);
		return 1;
	}
	d.ready_ns = farmd_now_ns();
	farmd_zk_attach(&d);

	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	sigprocmask(SIG_BLOCK, &mask, NULL);
	startup_pid_path = NULL;
	d.sig_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	rc = d.sig_fd < 0 ? -errno : admin_open(&d);
	if (rc < 0) {
		farmd_log(FARMD_ERROR, "cannot open the admin socket %s: %s", d.sock_path,
			  rc == -EADDRINUSE ? "another node answers on it" : strerror(-rc));
		farmd_zk_stop(&d);
		farm_node_stop(d.f);
		remove_pid_file(d.pid_path);
		return 1;
	}
	farmd_log(FARMD_INFO, "ready in %llu ms (config %llu); admin socket %s",
		  (unsigned long long)((d.ready_ns - d.start_ns) / 1000000u),
		  (unsigned long long)farm_config_id(d.f), d.sock_path);
	farmd_log_placement(&d);
	if (mc_port >= 0) {
		struct mc_gw_opts mo = {.addr = mc_addr,
					.port = (int)mc_port,
					.shared_port = (int)mc_shared,
					.threads = (unsigned)mc_threads};
		rc = mc_gw_open(d.f, &mo, &d.mc, err, sizeof(err));
		if (rc < 0) {
			farmd_log(FARMD_ERROR, "memcached gateway: %s", err);
			mc_failed = d.stop = true;
			d.stop_reason = "the memcached gateway could not start";
		} else {
			farmd_log(FARMD_INFO,
				  "memcached gateway on %s port %d (table %s, %ld threads)",
				  mc_addr, mc_gw_port(d.mc), MC_GW_TABLE, mc_threads);
			if (mc_shared)
				farmd_log(FARMD_INFO, "memcached gateway shared port %ld",
					  mc_shared);
		}
	}

	run(&d);
	bench_tx_free(&d);

	farmd_log(FARMD_INFO, "stopping (%s)", d.stop_reason ? d.stop_reason : "?");
	admin_close(&d);
	mc_gw_close(d.mc); /* its table handle goes before the node */
	farmd_zk_stop(&d);
	farm_node_stop(d.f);
	close(d.sig_fd);
	remove_pid_file(d.pid_path);
	farmd_log(FARMD_INFO, "stopped");
	return mc_failed ? 1 : 0;
}
