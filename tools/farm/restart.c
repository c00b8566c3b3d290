/*
 * restart.c - `farm cluster restart ID`: start member ID of a running
 * cluster again, after it died or was stopped, and follow its join.
 *
 * The node is started exactly as `up` started it: the same farm.conf, the
 * options `up` recorded in RUN_DIR/farmd.opts (timeout, log level, --zk,
 * --lease-ms), the ZooKeeper server that runs now (RUN_DIR/zk.hosts), the
 * member's network namespace from farm.conf, the same pid file and log
 * (appended to, so the old incarnation's last lines stay). It is refused
 * while the member's pid file names a live farmd.
 *
 * Only clusters with ZooKeeper membership: there the new process is a new
 * incarnation that the CM adds as `joining`, its replicas are filled from
 * the primaries, and the CM publishes the configuration that gives it its
 * regions (docs/recovery.md, "Members that join"). With static membership
 * the others would still count the member as holding data that the new
 * process does not have.
 *
 * Two bounded waits: until the node answers `status` (--timeout, as `up`),
 * then, polling that status every 10 ms, until its configuration lists it
 * as a member that is no longer joining (--join-timeout). A node that does
 * not start is stopped again (it is our child); one that answers but stays
 * joining is left running and reported. How long the join took is read from
 * the lines the new incarnation appended to its log (where it started as a
 * joiner, where it logged `joined`): a small join is over before the admin
 * socket first answers, so polling alone would miss it.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

#define STATUS_TIMEOUT_MS 2000
#define JOIN_POLL_MS	  10

static const char restart_usage[] =
    "usage: farm cluster restart ID [--timeout MS] [--join-timeout MS] [--dir RUN_DIR]\n"
    "                          [--name NAME] [--json]\n"
    "\n"
    "Start member ID of a running cluster again (after a crash or a stop), as\n"
    "`farm cluster up` started it: same config, same farmd options, same ZooKeeper,\n"
    "same network namespace, pid file and log (appended to). Refused while ID's\n"
    "pid file names a live farmd. Needs a cluster started with --zk: the node\n"
    "comes back as a new incarnation, is added as joining, its replicas are filled\n"
    "and the CM publishes the configuration in which it holds its regions.\n"
    "\n"
    "  --timeout MS       how long the node may take to answer `status` (default:\n"
    "                     the --timeout of `up`)\n"
    "  --join-timeout MS  then how long it may stay joining (default 30000)\n"
    "\n"
    "Output: 'node ID pid PID restarted: configuration A joining -> configuration B\n"
    "joined in T ms (its log) ...' on stdout (T: from the node's start in A to its\n"
    "adoption of B, as the node logged them), progress on stderr. Exit: 0 joined,\n"
    "1 failed (a node that is up but still joining keeps running), 2 bad arguments.\n";

/* Where `id` stands in a status reply's configuration: -1 not a member,
 * 1 joining, 0 a member like any. */
static int member_state(const struct json *st, uint32_t id)
{
	const struct json *mem = json_get(st, "members");

	for (size_t i = 0; mem && mem->type == JSON_ARRAY && i < mem->n; i++)
		if (json_u64(mem->kids[i], "id") == id)
			return json_true(mem->kids[i], "joining") ? 1 : 0;
	return -1;
}

/* A farmd log line's timestamp (2026-11-25T11:51:45.092Z) in ms. */
static long long log_ms(const char *line)
{
	struct tm tm = {0};
	int ms;

	if (sscanf(line, "%d-%d-%dT%d:%d:%d.%dZ", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
		   &tm.tm_min, &tm.tm_sec, &ms) != 7)
		return -1;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (long long)timegm(&tm) * 1000 + ms;
}

/* What the node logged of its join, from `off` (where its incarnation's
 * lines start): the configuration it started in as a joiner and when, and
 * the one it was joined in and when. The log is the node's own account:
 * a small join is over before the admin socket answers the first time. */
struct join_log {
	unsigned long long join_cfg, joined_cfg;
	long long t_join, t_joined;
};

static void read_join_log(const char *path, long off, struct join_log *jl)
{
	char line[1024];
	FILE *f = fopen(path, "re");

	memset(jl, 0, sizeof(*jl));
	if (!f)
		return;
	if (fseek(f, off, SEEK_SET) == 0) {
		while (fgets(line, sizeof(line), f)) {
			const char *p;
			if (strstr(line, "joining the running cluster") &&
			    (p = strstr(line, "membership: configuration ")) &&
			    sscanf(p, "membership: configuration %llu", &jl->join_cfg) == 1)
				jl->t_join = log_ms(line);
			else if ((p = strstr(line, "joined: configuration ")) &&
				 sscanf(p, "joined: configuration %llu", &jl->joined_cfg) == 1)
				jl->t_joined = log_ms(line);
		}
	}
	fclose(f);
}

/* Our child did not come up: SIGTERM, then SIGKILL; reap it. */
static void stop_child(pid_t pid)
{
	long end = now_ms() + 3000;

	kill(pid, SIGTERM);
	while (waitpid(pid, NULL, WNOHANG) == 0 && now_ms() < end)
		sleep_ms(20);
	if (farm_pid_alive(pid)) {
		kill(pid, SIGKILL);
		waitpid(pid, NULL, 0);
	}
}

/* 0 while our child runs; else a message about how it ended. */
static int child_ended(pid_t pid, char *why, size_t len)
{
	int status;

	if (waitpid(pid, &status, WNOHANG) != pid)
		return 0;
	snprintf(why, len, "%s %d", WIFEXITED(status) ? "exit code" : "killed by signal",
		 WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
	return 1;
}

int cluster_restart(struct cli *c, int argc, char **argv)
{
	const char *timeout_s = NULL, *join_s = NULL;
	const struct opt opts[] = {
	    {"timeout", 0, true, &timeout_s, NULL},
	    {"join-timeout", 0, true, &join_s, NULL},
	    {NULL, 0, false, NULL, NULL},
	};
	static struct farm_config cfg;
	struct join_log jl = {0};
	struct node_opts no;
	struct stat lst;
	long log_off;
	char *pos[1], err[512] = "", why[64], log[PATH_MAX], path[PATH_MAX], zk[64], ids[256];
	const struct farm_member *m = NULL;
	struct json *st = NULL;
	uint64_t join_cfg = 0, joined_cfg = 0;
	long t0, t_ready, t_joined = 0, deadline, join_ms;
	uint32_t id, live = 0;
	size_t at = 0;
	int npos, timeout, join_timeout, rc, state;
	pid_t pid, other;

	c->usage = restart_usage;
	opts_parse(c, opts, argc, argv, pos, 1, &npos);
	if (npos != 1)
		usage_fail(c, "ID (the member to start again) is required");
	id = (uint32_t)parse_num(c, "ID", pos[0], 1, UINT32_MAX);
	timeout = timeout_s ? (int)parse_num(c, "--timeout", timeout_s, 100, 600000) : 0;
	join_timeout = join_s ? (int)parse_num(c, "--join-timeout", join_s, 100, 3600000) : 30000;
	if (rundir_resolve(c) < 0)
		usage_fail(c, "run directory path too long");
	if ((rc = cluster_load(c, &cfg)))
		return rc;
	ids[0] = '\0';
	for (uint32_t i = 0; i < cfg.nmembers; i++) {
		if (cfg.members[i].id == id)
			m = &cfg.members[i];
		else if (node_pid(c, cfg.members[i].id))
			live++;
		if (at < sizeof(ids) - 12)
			at += (size_t)snprintf(ids + at, sizeof(ids) - at, "%s%u", i ? "," : "",
					       cfg.members[i].id);
	}
	if (!m)
		return fail(c, "node %u is not a member of cluster '%s' (members %s in %s)", id,
			    cfg.cluster, ids, c->conf_path);
	farm_path_pid(path, sizeof(path), c->run_dir, id);
	other = farm_pid_read(path);
	if (other && farm_pid_is_node(other, NULL))
		return fail(c,
			    "node %u is running (pid %d, %s): nothing to restart; stop it first "
			    "(kill %d) if it should start again",
			    id, (int)other, path, (int)other);
	rc = node_opts_read(c->run_dir, &no);
	if (rc < 0)
		return fail(c,
			    "cannot read %s/farmd.opts (%s): how `farm cluster up` started the "
			    "nodes is unknown; a cluster started by an older farm cannot be "
			    "restarted node by node",
			    c->run_dir, strerror(-rc));
	if (!no.zk)
		return fail(c,
			    "cluster '%s' runs with static membership (started without --zk): the "
			    "other nodes still count node %u as holding its replicas, which a new "
			    "process does not have; only ZooKeeper membership adds it back as a "
			    "joining member and fills them (farm cluster up --zk)",
			    cfg.cluster, id);
	if (zk_local_hosts(c->run_dir, zk, sizeof(zk)) < 0)
		return fail(c, "the cluster's ZooKeeper is not running (no %s/zk.hosts)",
			    c->run_dir);
	if (!live)
		return fail(c,
			    "no other member of cluster '%s' is running: there is nothing to join; "
			    "start the cluster again (farm cluster down, farm cluster up)",
			    cfg.cluster);
	if (!timeout)
		timeout = no.timeout_ms;

	struct spawn s = {.id = id,
			  .conf = c->conf_path,
			  .log = log,
			  .netns = m->netns,
			  .log_level = no.log_level[0] ? no.log_level : NULL,
			  .timeout_ms = timeout,
			  .zk = zk,
			  .lease_ms = no.lease_ms[0] ? no.lease_ms : NULL,
			  .keep_log = true};
	farm_path_log(log, sizeof(log), c->run_dir, id);
	log_off = stat(log, &lst) == 0 ? (long)lst.st_size : 0;
	t0 = now_ms();
	pid = spawn_farmd(&s, err, sizeof(err));
	if (pid < 0)
		return fail(c, "node %u: %s", id, err);
	progress(c, "node %u: pid %d, %s%s%s, ZooKeeper %s, log %s", id, (int)pid, m->addr,
		 m->netns[0] ? " in netns " : "", m->netns, zk, log);

	/* 1. Until it answers: it opens the admin socket once it runs. */
	deadline = t0 + timeout + 5000;
	for (long last = t0;;) {
		if (child_ended(pid, why, sizeof(why))) {
			fail(c, "node %u (pid %d) failed to start: %s", id, (int)pid, why);
			print_tail(log, 12);
			return 1;
		}
		if (admin_query(c->run_dir, id, "status", STATUS_TIMEOUT_MS, NULL, &st, err,
				sizeof(err)) == 0)
			break;
		json_free(st);
		st = NULL;
		if (now_ms() > deadline) {
			fail(c, "node %u (pid %d) did not answer within %.1f s: stopping it", id,
			     (int)pid, (double)(now_ms() - t0) / 1000);
			print_tail(log, 12);
			stop_child(pid);
			return 1;
		}
		if (now_ms() - last >= 1000) {
			progress(c, "waiting for node %u (%.1f s)", id,
				 (double)(now_ms() - t0) / 1000);
			last = now_ms();
		}
		sleep_ms(20);
	}
	t_ready = now_ms();
	state = member_state(st, id);
	progress(c, "node %u answers after %.1f s (start-up %llu ms): configuration %llu, %s", id,
		 (double)(t_ready - t0) / 1000, (unsigned long long)json_u64(st, "startup_ms"),
		 (unsigned long long)json_u64(st, "config_id"),
		 state > 0    ? "joining"
		 : state == 0 ? "a member"
			      : "not a member");

	/* 2. Until its configuration holds it like any member. */
	deadline = t_ready + join_timeout;
	for (long last = t_ready;;) {
		uint64_t cid = json_u64(st, "config_id");
		state = member_state(st, id);
		if (state > 0 && !join_cfg)
			join_cfg = cid;
		if (state == 0) {
			joined_cfg = cid;
			t_joined = now_ms();
			break;
		}
		json_free(st);
		st = NULL;
		if (child_ended(pid, why, sizeof(why))) {
			fail(c, "node %u (pid %d) stopped while joining: %s", id, (int)pid, why);
			print_tail(log, 12);
			return 1;
		}
		if (now_ms() > deadline) {
			fail(c,
			     "node %u (pid %d) is still joining after %.1f s (configuration %llu); "
			     "it "
			     "keeps running: `farm cluster status` shows when it joins, its log is "
			     "%s",
			     id, (int)pid, (double)(now_ms() - t_ready) / 1000,
			     (unsigned long long)cid, log);
			return 1;
		}
		if (now_ms() - last >= 1000) {
			progress(c, "node %u is joining in configuration %llu (%.1f s)", id,
				 (unsigned long long)cid, (double)(now_ms() - t_ready) / 1000);
			last = now_ms();
		}
		sleep_ms(JOIN_POLL_MS);
		if (admin_query(c->run_dir, id, "status", STATUS_TIMEOUT_MS, NULL, &st, err,
				sizeof(err)) < 0) {
			json_free(st);
			st = NULL; /* busy: ask again; a dead child is caught above */
		}
	}
	json_free(st);
	/* The node logs `joined` on the loop turn after it adopted the
	 * configuration, which its status may show first. */
	for (long end = now_ms() + 1000; now_ms() < end; sleep_ms(10)) {
		read_join_log(log, log_off, &jl);
		if (jl.joined_cfg >= joined_cfg)
			break;
	}
	if (!join_cfg)
		join_cfg = jl.join_cfg; /* joined before it first answered */
	join_ms = jl.t_join > 0 && jl.t_joined >= jl.t_join && jl.join_cfg == join_cfg
		      ? (long)(jl.t_joined - jl.t_join)
		      : -1;
	if (c->json) {
		printf("{\"ok\":true,\"node\":%u,\"pid\":%d,\"zk\":", id, (int)pid);
		json_print_str(zk);
		printf(",\"joining_config\":%llu,\"joined_config\":%llu,\"join_ms\":%ld,"
		       "\"answered_ms\":%ld,\"joined_seen_ms\":%ld,\"log\":",
		       (unsigned long long)join_cfg, (unsigned long long)joined_cfg, join_ms,
		       t_ready - t0, t_joined - t_ready);
		json_print_str(log);
		printf("}\n");
		return 0;
	}
	printf("node %u pid %d restarted: configuration ", id, (int)pid);
	if (join_cfg)
		printf("%llu joining -> configuration ", (unsigned long long)join_cfg);
	printf("%llu joined", (unsigned long long)joined_cfg);
	if (join_ms >= 0)
		printf(" in %ld ms (its log)", join_ms);
	printf("; status answered %ld ms after the start, joined seen %ld ms later\n", t_ready - t0,
	       t_joined - t_ready);
	return 0;
}
