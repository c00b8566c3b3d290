/*
 * cluster.c - `farm cluster up | status | down`: a local cluster, one farmd
 * process per member, described by RUN_DIR/farm.conf.
 *
 * up: refuse when a pid file in RUN_DIR names a live farmd; write the
 * config (farm_config_format, then parsed back so that a bad combination of
 * options is caught by the same parser farmd uses); build the namespaces
 * (--netns); start every farmd (they must run at once: each waits for the
 * others); wait until each answers `status` on its admin socket, with a
 * progress line whenever something changes; print the region map. If a
 * node dies or the wait times out, stop the others and show the failed
 * node's log tail.
 *
 * status also shows the configuration the nodes run now (with --zk it
 * changes as members leave and join; farm.conf holds only the first).
 * restart (restart.c) starts one member again.
 *
 * down: SIGTERM the nodes named by the pid files, but only processes that
 * are farmd with *this* config on their command line (a recycled pid is not
 * ours), wait, SIGKILL the survivors after --timeout; then remove leftover
 * sockets and pid files and the namespaces.
 */
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/wait.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

#define STATUS_TIMEOUT_MS 2000
#define NETNS_PORT	  7000

static const char up_usage[] =
    "usage: farm cluster up -n N [options]\n"
    "\n"
    "Start a local FaRM cluster of N nodes (one farmd process each) and wait\n"
    "until every node is ready; then print where each region lives.\n"
    "\n"
    "  -n, --nodes N        number of nodes (1..64)\n"
    "  --nic shm|udp|xdp    transport (default shm; with --netns default udp;\n"
    "                       xdp needs --netns)\n"
    "  --netns              each node in its own network namespace farm-NAME-ID,\n"
    "                       veths to a bridge in namespace farm-NAME-br,\n"
    "                       addresses 10.99.0.ID/24 (root only)\n"
    "  --region-size S      bytes per region, power of two (e.g. 4M; default 64M)\n"
    "  --regions R          regions in the address space (default 4 per node)\n"
    "  --replicas K         copies of each region, primary included (default 3,\n"
    "                       at most N)\n"
    "  --port P             udp: first port (127.0.0.1:P+ID, or P in a namespace;\n"
    "                       default 7000)\n"
    "  --timeout MS         how long nodes may take to find each other (default 10000;\n"
    "                       30000 with --zk: a cold ZooKeeper on a busy machine)\n"
    "  --log-level L        farmd's log level: error, warn, info, debug\n"
    "  --dir RUN_DIR        run directory (default /run/farm/NAME as root, else\n"
    "                       $XDG_RUNTIME_DIR/farm/NAME or /tmp/farm-UID/NAME)\n"
    "  --name NAME          cluster name (default 'default')\n"
    "  --json               print the result as one JSON object\n"
    "  --zk                 ZooKeeper membership: start a standalone ZooKeeper in\n"
    "                       RUN_DIR/zk (stopped by `down`) and run every farmd\n"
    "                       with --zk (CM election, configurations, leases)\n"
    "  --lease-ms MS        lease between the CM and members with --zk (default 100)\n"
    "\n"
    "Output: 'node ID pid PID STATE ...' and 'region R primary P backups B,...' lines\n"
    "on stdout, progress on stderr. Exit: 0 ready, 1 failed, 2 bad arguments.\n";

static const char status_usage[] =
    "usage: farm cluster status [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Show each node (pid, state: ready, starting, busy or dead), the configuration\n"
    "the nodes run now ('configuration ID cm C members 1,2,3 joining -': with --zk\n"
    "it changes as members leave and join) and where each region lives. Exit: 0\n"
    "when every node is ready, 1 otherwise.\n";

static const char down_usage[] =
    "usage: farm cluster down [--timeout MS] [--dir RUN_DIR] [--name NAME] [--json]\n"
    "\n"
    "Stop the cluster's nodes: SIGTERM, then SIGKILL after --timeout (default 5000)\n"
    "for those still alive; remove their sockets, pid files and network namespaces.\n"
    "Only farmd processes started with this cluster's config are signalled.\n";

static const char cluster_usage[] =
    "usage: farm cluster up|status|down|restart [options]   (farm cluster CMD --help)\n";

static volatile sig_atomic_t interrupted;

static void on_signal(int sig)
{
	interrupted = sig;
}

static void human_size(uint64_t v, char *out, size_t len)
{
	if (v >= (1ull << 30) && v % (1ull << 30) == 0)
		snprintf(out, len, "%lluG", (unsigned long long)(v >> 30));
	else if (v >= (1ull << 20) && v % (1ull << 20) == 0)
		snprintf(out, len, "%lluM", (unsigned long long)(v >> 20));
	else if (v >= (1ull << 10) && v % (1ull << 10) == 0)
		snprintf(out, len, "%lluK", (unsigned long long)(v >> 10));
	else
		snprintf(out, len, "%llu", (unsigned long long)v);
}

/* ---- what we know about each node -------------------------------------- */

struct node {
	uint32_t id;
	pid_t pid;
	const char *state; /* "ready", "starting", "busy", "dead" */
	struct json *status;
};

static void nodes_probe(const struct cli *c, const struct farm_config *cfg, struct node *nodes)
{
	for (uint32_t i = 0; i < cfg->nmembers; i++) {
		struct node *n = &nodes[i];
		char err[256];
		n->id = cfg->members[i].id;
		n->pid = node_pid(c, n->id);
		n->state = n->pid ? "starting" : "dead";
		n->status = NULL;
		if (!n->pid)
			continue;
		int rc = admin_query(c->run_dir, n->id, "status", STATUS_TIMEOUT_MS, NULL,
				     &n->status, err, sizeof(err));
		if (rc == 0)
			n->state = "ready";
		else if (rc == -ETIMEDOUT)
			n->state = "busy"; /* alive, socket there, no answer in time */
		json_free(rc == 0 ? NULL : n->status);
		if (rc != 0)
			n->status = NULL;
	}
}

static void nodes_free(struct node *nodes, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++) {
		json_free(nodes[i].status);
		nodes[i].status = NULL;
	}
}

/* The status of the ready node that runs the newest configuration: with
 * --zk the nodes adopt a change one after another. */
static const struct json *newest_status(const struct node *nodes, uint32_t n)
{
	const struct json *best = NULL;

	for (uint32_t i = 0; i < n; i++)
		if (nodes[i].status &&
		    (!best || json_u64(nodes[i].status, "config_id") > json_u64(best, "config_id")))
			best = nodes[i].status;
	return best;
}

/* The region map, as a ready node reports it. */
static const struct json *region_map(const struct node *nodes, uint32_t n)
{
	const struct json *m = json_get(newest_status(nodes, n), "map");

	return m && m->type == JSON_ARRAY ? m : NULL;
}

/* The configuration the nodes run (members, those still joining), as the
 * newest status has it: one line, or a JSON member. */
static void print_live_config(const struct json *st, bool json)
{
	const struct json *mem = json_get(st, "members");
	const struct json *cm = json_get(st, "cm");
	bool any = false;

	if (!st || !mem || mem->type != JSON_ARRAY)
		return;
	if (json) {
		printf(",\"configuration\":{\"id\":%llu,\"cm\":%llu,\"members\":[",
		       (unsigned long long)json_u64(st, "config_id"),
		       (unsigned long long)(cm ? cm->u64 : 0));
		for (size_t i = 0; i < mem->n; i++)
			printf("%s%llu", i ? "," : "",
			       (unsigned long long)json_u64(mem->kids[i], "id"));
		printf("],\"joining\":[");
		for (size_t i = 0; i < mem->n; i++)
			if (json_true(mem->kids[i], "joining")) {
				printf("%s%llu", any ? "," : "",
				       (unsigned long long)json_u64(mem->kids[i], "id"));
				any = true;
			}
		printf("]}");
		return;
	}
	printf("configuration %llu", (unsigned long long)json_u64(st, "config_id"));
	if (cm)
		printf(" cm %llu", (unsigned long long)cm->u64);
	printf(" members ");
	for (size_t i = 0; i < mem->n; i++)
		printf("%s%llu", i ? "," : "", (unsigned long long)json_u64(mem->kids[i], "id"));
	printf(" joining ");
	for (size_t i = 0; i < mem->n; i++)
		if (json_true(mem->kids[i], "joining")) {
			printf("%s%llu", any ? "," : "",
			       (unsigned long long)json_u64(mem->kids[i], "id"));
			any = true;
		}
	printf("%s\n", any ? "" : "-");
}

static void print_map_plain(const struct json *map)
{
	for (size_t i = 0; map && i < map->n; i++) {
		const struct json *r = map->kids[i], *b = json_get(r, "backups");
		printf("region %llu primary %llu backups ",
		       (unsigned long long)json_u64(r, "region"),
		       (unsigned long long)json_u64(r, "primary"));
		for (size_t k = 0; b && k < b->n; k++)
			printf("%s%llu", k ? "," : "", (unsigned long long)b->kids[k]->u64);
		printf("%s\n", b && b->n ? "" : "-");
	}
}

static void print_map_json(const struct json *map)
{
	printf(",\"map\":[");
	for (size_t i = 0; map && i < map->n; i++) {
		const struct json *r = map->kids[i], *b = json_get(r, "backups");
		printf("%s{\"region\":%llu,\"primary\":%llu,\"backups\":[", i ? "," : "",
		       (unsigned long long)json_u64(r, "region"),
		       (unsigned long long)json_u64(r, "primary"));
		for (size_t k = 0; b && k < b->n; k++)
			printf("%s%llu", k ? "," : "", (unsigned long long)b->kids[k]->u64);
		printf("]}");
	}
	printf("]");
}

/* The cluster as `up` and `status` print it. */
static void print_cluster(const struct cli *c, const struct farm_config *cfg,
			  const struct node *nodes, bool ok)
{
	const struct json *map = region_map(nodes, cfg->nmembers);
	char rs[32], path[PATH_MAX];

	human_size(cfg->region_size, rs, sizeof(rs));
	if (c->json) {
		printf("{\"ok\":%s,\"cluster\":", ok ? "true" : "false");
		json_print_str(cfg->cluster);
		printf(",\"run_dir\":");
		json_print_str(c->run_dir);
		printf(",\"nic\":");
		json_print_str(cfg->nic);
		printf(",\"config_id\":%llu,\"region_size\":%llu,\"regions\":%u,\"replicas\":%u,"
		       "\"nodes\":[",
		       (unsigned long long)cfg->config_id, (unsigned long long)cfg->region_size,
		       cfg->regions, cfg->replicas);
		for (uint32_t i = 0; i < cfg->nmembers; i++) {
			const struct farm_member *m = &cfg->members[i];
			printf("%s{\"id\":%u,\"pid\":%d,\"state\":\"%s\",\"addr\":", i ? "," : "",
			       m->id, (int)nodes[i].pid, nodes[i].state);
			json_print_str(m->addr);
			printf(",\"netns\":");
			json_print_str(m->netns);
			farm_path_sock(path, sizeof(path), c->run_dir, m->id);
			printf(",\"socket\":");
			json_print_str(path);
			farm_path_log(path, sizeof(path), c->run_dir, m->id);
			printf(",\"log\":");
			json_print_str(path);
			printf("}");
		}
		printf("]");
		print_live_config(newest_status(nodes, cfg->nmembers), true);
		if (map)
			print_map_json(map);
		printf("}\n");
		return;
	}
	printf("cluster %s: %u nodes, nic %s, %u regions of %s, %u replicas, config %llu\n",
	       cfg->cluster, cfg->nmembers, cfg->nic, cfg->regions, rs, cfg->replicas,
	       (unsigned long long)cfg->config_id);
	printf("run_dir %s\n", c->run_dir);
	for (uint32_t i = 0; i < cfg->nmembers; i++) {
		const struct farm_member *m = &cfg->members[i];
		farm_path_log(path, sizeof(path), c->run_dir, m->id);
		printf("node %u pid %d %s addr %s netns %s log %s\n", m->id, (int)nodes[i].pid,
		       nodes[i].state, m->addr, m->netns[0] ? m->netns : "-", path);
	}
	print_live_config(newest_status(nodes, cfg->nmembers), false);
	if (map)
		print_map_plain(map);
	else
		printf("no node answers: region map unknown\n");
}

/* ---- stopping ------------------------------------------------------------ */

/* SIGTERM, wait (reaping our own children: PID 1 reaps the others late,
 * so a zombie counts as dead), SIGKILL what is left. Returns how many
 * needed SIGKILL. */
static int stop_pids(const struct cli *c, const uint32_t *ids, const pid_t *pids, uint32_t n,
		     int timeout_ms)
{
	long deadline = now_ms() + timeout_ms;
	int killed = 0;
	bool any;

	for (uint32_t i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGTERM);
	for (bool hard = false;; hard = true) {
		do {
			any = false;
			for (uint32_t i = 0; i < n; i++) {
				if (pids[i] <= 0)
					continue;
				waitpid(pids[i], NULL, WNOHANG);
				any |= farm_pid_alive(pids[i]);
			}
			if (any)
				sleep_ms(20);
		} while (any && now_ms() < deadline);
		if (!any || hard)
			break;
		for (uint32_t i = 0; i < n; i++) {
			if (pids[i] > 0 && farm_pid_alive(pids[i])) {
				progress(c, "node %u (pid %d) ignored SIGTERM for %d ms: SIGKILL",
					 ids[i], (int)pids[i], timeout_ms);
				kill(pids[i], SIGKILL);
				killed++;
			}
		}
		deadline = now_ms() + 2000;
	}
	return killed;
}

/* Files a killed node could not remove; never those of a live node. */
static void remove_leftovers(const struct cli *c, const struct farm_config *cfg)
{
	char path[PATH_MAX];

	for (uint32_t i = 0; i < cfg->nmembers; i++) {
		uint32_t id = cfg->members[i].id;
		if (farm_path_pid(path, sizeof(path), c->run_dir, id) == 0 &&
		    farm_pid_is_node(farm_pid_read(path), NULL))
			continue;
		unlink(path);
		if (farm_path_sock(path, sizeof(path), c->run_dir, id) == 0)
			unlink(path);
	}
}

static bool uses_netns(const struct farm_config *cfg)
{
	for (uint32_t i = 0; i < cfg->nmembers; i++)
		if (cfg->members[i].netns[0])
			return true;
	return false;
}

/* ---- up ------------------------------------------------------------------- */

/* A pid file in RUN_DIR that names a live farmd: the cluster is up. */
static pid_t live_node_in(const char *run_dir, uint32_t *id)
{
	DIR *d = opendir(run_dir);
	struct dirent *e;
	pid_t found = 0;

	if (!d)
		return 0;
	while (!found && (e = readdir(d))) {
		unsigned nid;
		char path[PATH_MAX + 300], tail[8];
		if (sscanf(e->d_name, "node-%u.%7s", &nid, tail) != 2 || strcmp(tail, "pid") != 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", run_dir, e->d_name);
		pid_t pid = farm_pid_read(path);
		if (pid && farm_pid_is_node(pid, NULL)) {
			found = pid;
			*id = nid;
		}
	}
	closedir(d);
	return found;
}

struct up_opts {
	const char *nodes, *nic, *region_size, *regions, *replicas, *port, *timeout, *log_level;
	const char *lease_ms;
	bool netns, zk;
};

static void build_config(struct cli *c, const struct up_opts *o, uint32_t n, const char *nic,
			 struct farm_config *cfg)
{
	uint32_t h = 2166136261u; /* FNV-1a of the run dir: shm names unique per cluster */
	long port = o->port ? parse_num(c, "--port", o->port, 1, 65535 - FARM_MAX_MEMBERS) : 7000;

	for (const char *s = c->run_dir; *s; s++)
		h = (h ^ (unsigned char)*s) * 16777619u;
	farm_config_defaults(cfg);
	snprintf(cfg->cluster, sizeof(cfg->cluster), "%s", c->name ? c->name : "default");
	if (strlen(c->run_dir) >= sizeof(cfg->run_dir) - 16)
		usage_fail(c, "run directory path too long: %s", c->run_dir);
	memcpy(cfg->run_dir, c->run_dir, strlen(c->run_dir) + 1);
	if (o->region_size) {
		uint64_t v = parse_size(c, "--region-size", o->region_size);
		if (v < (64u << 10) || v > (1ull << 31) || (v & (v - 1)))
			usage_fail(c,
				   "--region-size must be a power of two from 64K to 2G, got '%s'",
				   o->region_size);
		cfg->region_size = v;
	}
	if (o->regions)
		cfg->regions = (uint32_t)parse_num(c, "--regions", o->regions, 1, 1 << 20);
	else if (cfg->regions == 0)
		cfg->regions = 4 * n;
	if (o->replicas) {
		cfg->replicas =
		    (uint32_t)parse_num(c, "--replicas", o->replicas, 1, FARM_MAX_MEMBERS);
		if (cfg->replicas > n)
			usage_fail(c, "--replicas %u is more than the %u nodes", cfg->replicas, n);
	} else if (cfg->replicas > n || cfg->replicas == 0) {
		cfg->replicas = n;
	}
	cfg->nmembers = n;
	for (uint32_t i = 0; i < n; i++) {
		struct farm_member *m = &cfg->members[i];
		m->id = i + 1;
		if (o->netns) {
			netns_name(m->netns, sizeof(m->netns), cfg->cluster, m->id);
			snprintf(m->addr, sizeof(m->addr), "10.99.0.%u:%ld", m->id, port);
		} else if (strcmp(nic, "udp") == 0) {
			snprintf(m->addr, sizeof(m->addr), "127.0.0.1:%ld", port + (long)m->id);
		} else {
			snprintf(m->addr, sizeof(m->addr), "farm-%s-%08x-%u", cfg->cluster, h,
				 m->id);
		}
	}
	if (strcmp(nic, "shm") == 0)
		snprintf(cfg->nic, sizeof(cfg->nic), "shm");
	else if (strcmp(nic, "udp") == 0)
		snprintf(cfg->nic, sizeof(cfg->nic), o->netns ? "udp" : "udp:127.0.0.1");
	else
		snprintf(cfg->nic, sizeof(cfg->nic), "xdp:eth0");
}

static int up_fail(const struct cli *c, const struct farm_config *cfg, const pid_t *pids,
		   uint32_t started, bool netns)
{
	uint32_t ids[FARM_MAX_MEMBERS];

	for (uint32_t i = 0; i < cfg->nmembers; i++)
		ids[i] = cfg->members[i].id;
	if (started) {
		progress(c, "stopping the nodes that did start");
		stop_pids(c, ids, pids, started, 3000);
	}
	remove_leftovers(c, cfg);
	if (netns)
		netns_down(cfg->cluster);
	zk_local_stop(c->run_dir, 3000); /* --zk: nothing to do otherwise */
	return 1;
}

static int cluster_up(struct cli *c, int argc, char **argv)
{
	struct up_opts o = {0};
	const struct opt opts[] = {
	    {"nodes", 'n', true, &o.nodes, NULL},
	    {"nic", 0, true, &o.nic, NULL},
	    {"netns", 0, false, NULL, &o.netns},
	    {"region-size", 0, true, &o.region_size, NULL},
	    {"regions", 0, true, &o.regions, NULL},
	    {"replicas", 0, true, &o.replicas, NULL},
	    {"port", 0, true, &o.port, NULL},
	    {"timeout", 0, true, &o.timeout, NULL},
	    {"log-level", 0, true, &o.log_level, NULL},
	    {"zk", 0, false, NULL, &o.zk},
	    {"lease-ms", 0, true, &o.lease_ms, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	static char zk_hosts[64];
	static struct farm_config cfg, check;
	static char text[1 << 16];
	struct node nodes[FARM_MAX_MEMBERS] = {{0}};
	pid_t pids[FARM_MAX_MEMBERS] = {0};
	char err[512] = "", path[PATH_MAX], log[PATH_MAX];
	const char *nic;
	uint32_t n, nready = 0, other_id = 0;
	int timeout, rc, npos;
	long t0, deadline, last_report;
	pid_t other;
	struct sigaction sa = {.sa_handler = on_signal};

	c->usage = up_usage;
	opts_parse(c, opts, argc, argv, NULL, 0, &npos);
	if (!o.nodes)
		usage_fail(c, "-n N (the number of nodes) is required");
	n = (uint32_t)parse_num(c, "-n", o.nodes, 1, o.netns ? 250 : FARM_MAX_MEMBERS);
	if (n > FARM_MAX_MEMBERS)
		usage_fail(c, "-n must be at most %d", FARM_MAX_MEMBERS);
	nic = o.nic ? o.nic : o.netns ? "udp" : "shm";
	if (strcmp(nic, "shm") != 0 && strcmp(nic, "udp") != 0 && strcmp(nic, "xdp") != 0)
		usage_fail(c, "--nic must be shm, udp or xdp, got '%s'", nic);
	if (o.netns && strcmp(nic, "shm") == 0)
		usage_fail(c,
			   "--netns needs --nic udp or xdp (shared memory does not cross hosts)");
	if (!o.netns && strcmp(nic, "xdp") == 0)
		usage_fail(c, "--nic xdp needs --netns (each node gets an interface of its own)");
	/* With --zk the nodes also wait for a cold JVM to serve and for the
	 * CM's first configuration: 10 s was seen to run out at load 10. */
	timeout = o.timeout ? (int)parse_num(c, "--timeout", o.timeout, 100, 600000)
			    : o.zk ? 30000 : 10000;
	if (o.log_level && strcmp(o.log_level, "error") && strcmp(o.log_level, "warn") &&
	    strcmp(o.log_level, "info") && strcmp(o.log_level, "debug"))
		usage_fail(c, "--log-level must be error, warn, info or debug, got '%s'",
			   o.log_level);
	if (o.zk && o.netns)
		usage_fail(c, "--zk with --netns is not supported: the local ZooKeeper listens "
			      "on the host's loopback, which the namespaces do not reach");
	if (o.lease_ms && !o.zk)
		usage_fail(c, "--lease-ms needs --zk");
	if (o.lease_ms)
		parse_num(c, "--lease-ms", o.lease_ms, 2, 60000);
	if (rundir_resolve(c) < 0)
		usage_fail(c, "run directory path too long");
	build_config(c, &o, n, nic, &cfg);
	rc = farm_config_format(&cfg, text, sizeof(text));
	if (rc >= 0)
		rc = farm_config_parse(text, &check, err, sizeof(err));
	if (rc < 0) {
		fprintf(stderr, "farm %s: these options make an invalid configuration: %s\n",
			c->cmd, err[0] ? err : farm_strerror(rc));
		return EXIT_USAGE;
	}
	if (o.netns && geteuid() != 0)
		return fail(c, "--netns needs root (it creates network namespaces); run as root "
			       "or drop --netns");

	rc = mkdir_p(c->run_dir, 0700);
	if (rc < 0)
		return fail(c, "cannot create %s: %s", c->run_dir, strerror(-rc));
	other = live_node_in(c->run_dir, &other_id);
	if (other)
		return fail(c,
			    "a cluster is already running in %s (node %u is pid %d); stop it "
			    "first: farm cluster down --dir %s",
			    c->run_dir, other_id, (int)other, c->run_dir);
	if (o.netns) {
		char br[96];
		netns_name(br, sizeof(br), cfg.cluster, 0);
		snprintf(path, sizeof(path), "/run/netns/%s", br);
		if (access(path, F_OK) == 0)
			return fail(c,
				    "network namespace %s exists: a cluster named '%s' is up "
				    "elsewhere, or one was not stopped (farm cluster down --name "
				    "%s)",
				    br, cfg.cluster, cfg.cluster);
	}
	rc = write_file(c->conf_path, text, 0644);
	if (rc < 0)
		return fail(c, "cannot write %s: %s", c->conf_path, strerror(-rc));
	{
		struct node_opts no = {.timeout_ms = timeout, .zk = o.zk};
		snprintf(no.log_level, sizeof(no.log_level), "%s", o.log_level ? o.log_level : "");
		snprintf(no.lease_ms, sizeof(no.lease_ms), "%s", o.lease_ms ? o.lease_ms : "");
		if ((rc = node_opts_write(c->run_dir, &no)) < 0)
			return fail(c, "cannot write %s/farmd.opts: %s", c->run_dir, strerror(-rc));
	}

	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	t0 = now_ms();
	progress(c, "starting %u nodes of cluster '%s' in %s (nic %s)", n, cfg.cluster, c->run_dir,
		 cfg.nic);
	if (o.netns && netns_up(c, cfg.cluster, n, err, sizeof(err)) < 0)
		return fail(c, "cannot build the namespaces: %s", err);
	if (o.zk) {
		if (zk_local_start(c->run_dir, zk_hosts, sizeof(zk_hosts), err, sizeof(err)) < 0)
			return fail(c, "cannot start ZooKeeper: %s", err);
		progress(c, "ZooKeeper on %s (RUN_DIR/zk, pid file zk.pid)", zk_hosts);
	}
	for (uint32_t i = 0; i < n; i++) {
		const struct farm_member *m = &cfg.members[i];
		struct spawn s = {.id = m->id,
				  .conf = c->conf_path,
				  .log = log,
				  .netns = m->netns,
				  .log_level = o.log_level,
				  .timeout_ms = timeout,
				  .zk = o.zk ? zk_hosts : NULL,
				  .lease_ms = o.lease_ms};
		farm_path_log(log, sizeof(log), c->run_dir, m->id);
		pids[i] = spawn_farmd(&s, err, sizeof(err));
		if (pids[i] < 0) {
			pids[i] = 0;
			fail(c, "node %u: %s", m->id, err);
			return up_fail(c, &cfg, pids, i, o.netns);
		}
		progress(c, "node %u: pid %d, %s%s%s, log %s", m->id, (int)pids[i], m->addr,
			 m->netns[0] ? " in netns " : "", m->netns, log);
	}

	deadline = now_ms() + timeout + 5000;
	last_report = now_ms();
	while (nready < n) {
		for (uint32_t i = 0; i < n; i++) {
			int status;
			if (nodes[i].status)
				continue;
			if (waitpid(pids[i], &status, WNOHANG) == pids[i]) {
				farm_path_log(log, sizeof(log), c->run_dir, cfg.members[i].id);
				fail(c, "node %u (pid %d) failed to start: %s %d",
				     cfg.members[i].id, (int)pids[i],
				     WIFEXITED(status) ? "exit code" : "killed by signal",
				     WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
				print_tail(log, 15);
				pids[i] = 0;
				return up_fail(c, &cfg, pids, n, o.netns);
			}
			if (admin_query(c->run_dir, cfg.members[i].id, "status", STATUS_TIMEOUT_MS,
					NULL, &nodes[i].status, err, sizeof(err)) == 0) {
				nready++;
				progress(c, "node %u ready (%u/%u) after %.1f s", cfg.members[i].id,
					 nready, n, (double)(now_ms() - t0) / 1000);
			} else {
				json_free(nodes[i].status);
				nodes[i].status = NULL;
			}
		}
		if (nready == n)
			break;
		if (interrupted) {
			fail(c, "interrupted while waiting for the nodes");
			return up_fail(c, &cfg, pids, n, o.netns);
		}
		if (now_ms() > deadline) {
			fail(c, "nodes not ready after %.1f s", (double)(now_ms() - t0) / 1000);
			for (uint32_t i = 0; i < n; i++) {
				if (nodes[i].status)
					continue;
				farm_path_log(log, sizeof(log), c->run_dir, cfg.members[i].id);
				fprintf(stderr, "node %u is not ready\n", cfg.members[i].id);
				print_tail(log, 8);
			}
			return up_fail(c, &cfg, pids, n, o.netns);
		}
		if (now_ms() - last_report >= 1000) {
			char waiting[256] = "";
			size_t k = 0;
			for (uint32_t i = 0; i < n && k < sizeof(waiting) - 16; i++)
				if (!nodes[i].status)
					k += (size_t)snprintf(waiting + k, sizeof(waiting) - k,
							      "%s%u", k ? "," : "",
							      cfg.members[i].id);
			progress(c, "waiting for node(s) %s (%u/%u ready, %.1f s)", waiting, nready,
				 n, (double)(now_ms() - t0) / 1000);
			last_report = now_ms();
		}
		sleep_ms(50);
	}
	progress(c, "all %u nodes ready in %.1f s", n, (double)(now_ms() - t0) / 1000);
	for (uint32_t i = 0; i < n; i++) {
		nodes[i].id = cfg.members[i].id;
		nodes[i].pid = pids[i];
		nodes[i].state = "ready";
	}
	print_cluster(c, &cfg, nodes, true);
	nodes_free(nodes, n);
	return 0;
}

/* ---- status / down ------------------------------------------------------------ */

static int cluster_status(struct cli *c, int argc, char **argv)
{
	const struct opt opts[] = {{NULL, 0, false, NULL, NULL}};
	static struct farm_config cfg;
	struct node nodes[FARM_MAX_MEMBERS];
	bool all = true;
	int npos, rc;

	c->usage = status_usage;
	opts_parse(c, opts, argc, argv, NULL, 0, &npos);
	if (rundir_resolve(c) < 0)
		usage_fail(c, "run directory path too long");
	rc = cluster_load(c, &cfg);
	if (rc)
		return rc;
	nodes_probe(c, &cfg, nodes);
	for (uint32_t i = 0; i < cfg.nmembers; i++)
		all &= strcmp(nodes[i].state, "ready") == 0;
	print_cluster(c, &cfg, nodes, all);
	nodes_free(nodes, cfg.nmembers);
	return all ? 0 : 1;
}

static int cluster_down(struct cli *c, int argc, char **argv)
{
	const char *timeout_s = NULL;
	const struct opt opts[] = {
	    {"timeout", 0, true, &timeout_s, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	static struct farm_config cfg;
	uint32_t ids[FARM_MAX_MEMBERS];
	pid_t pids[FARM_MAX_MEMBERS];
	char path[PATH_MAX];
	int npos, timeout, killed, nns = 0;
	uint32_t nlive = 0;

	c->usage = down_usage;
	opts_parse(c, opts, argc, argv, NULL, 0, &npos);
	timeout = timeout_s ? (int)parse_num(c, "--timeout", timeout_s, 0, 600000) : 5000;
	if (rundir_resolve(c) < 0)
		usage_fail(c, "run directory path too long");
	if (access(c->conf_path, F_OK) < 0) {
		/* Nothing of ours to stop; namespaces by name only when named. */
		if (c->name && geteuid() == 0)
			nns = netns_down(c->name);
		if (c->json) {
			printf("{\"ok\":true,\"run_dir\":");
			json_print_str(c->run_dir);
			printf(",\"stopped\":[],\"namespaces_removed\":%d}\n", nns);
		} else {
			printf("no cluster in %s: nothing to stop%s\n", c->run_dir,
			       nns ? " (removed its namespaces)" : "");
		}
		return 0;
	}
	if (cluster_load(c, &cfg))
		return 1;
	for (uint32_t i = 0; i < cfg.nmembers; i++) {
		pid_t recorded;
		ids[i] = cfg.members[i].id;
		pids[i] = node_pid(c, ids[i]);
		farm_path_pid(path, sizeof(path), c->run_dir, ids[i]);
		recorded = farm_pid_read(path);
		if (!pids[i] && recorded && farm_pid_alive(recorded))
			progress(c,
				 "node %u: pid %d is alive but is not this cluster's farmd: left "
				 "alone",
				 ids[i], (int)recorded);
		if (pids[i]) {
			nlive++;
			progress(c, "stopping node %u (pid %d)", ids[i], (int)pids[i]);
		}
	}
	killed = stop_pids(c, ids, pids, cfg.nmembers, timeout);
	remove_leftovers(c, &cfg);
	killed += zk_local_stop(c->run_dir, timeout); /* after the nodes: they leave first */
	if (uses_netns(&cfg) && geteuid() == 0)
		nns = netns_down(cfg.cluster);
	if (c->json) {
		printf("{\"ok\":true,\"cluster\":");
		json_print_str(cfg.cluster);
		printf(",\"run_dir\":");
		json_print_str(c->run_dir);
		printf(",\"stopped\":[");
		for (uint32_t i = 0, k = 0; i < cfg.nmembers; i++)
			if (pids[i])
				printf("%s{\"id\":%u,\"pid\":%d}", k++ ? "," : "", ids[i],
				       (int)pids[i]);
		printf("],\"killed\":%d,\"namespaces_removed\":%d}\n", killed, nns);
	} else {
		for (uint32_t i = 0; i < cfg.nmembers; i++)
			if (pids[i])
				printf("node %u pid %d stopped\n", ids[i], (int)pids[i]);
		printf("cluster %s down: %u node(s) stopped, %d killed, %d namespace(s) removed\n",
		       cfg.cluster, nlive, killed, nns);
	}
	return 0;
}

int cmd_cluster(int argc, char **argv)
{
	static char cmd[32];
	struct cli c = {.usage = cluster_usage};

	if (argc < 1 || strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0) {
		fputs(cluster_usage, argc < 1 ? stderr : stdout);
		return argc < 1 ? EXIT_USAGE : 0;
	}
	snprintf(cmd, sizeof(cmd), "cluster %s", argv[0]);
	c.cmd = cmd;
	if (strcmp(argv[0], "up") == 0)
		return cluster_up(&c, argc - 1, argv + 1);
	if (strcmp(argv[0], "status") == 0)
		return cluster_status(&c, argc - 1, argv + 1);
	if (strcmp(argv[0], "down") == 0)
		return cluster_down(&c, argc - 1, argv + 1);
	if (strcmp(argv[0], "restart") == 0)
		return cluster_restart(&c, argc - 1, argv + 1);
	fprintf(stderr, "farm cluster: unknown command '%s'\n%s", argv[0], cluster_usage);
	return EXIT_USAGE;
}
