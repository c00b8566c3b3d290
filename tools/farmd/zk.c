/*
 * zk.c - farmd with --zk: ZooKeeper membership around the node.
 *
 * Before the node starts, membership joins the cluster in ZooKeeper and
 * waits for a configuration that holds this node (the first CM publishes
 * one once every member of the config file has registered); the node then
 * starts with that configuration. While it runs, the node's loop picks up
 * new configurations (farmd_zk_poll: one atomic load when nothing changed)
 * and adopts them on its own thread; the lease thread fences the node page
 * whenever the lease lapses. A node removed from the configuration stops
 * (its state may be stale; a restart makes it a new incarnation).
 *
 * A node added to a running cluster (a new id, or a restarted process: a
 * new incarnation) is listed as joining (docs/farm.md, "Joining"): it
 * starts holding only extra backups, which re-replication fills from their
 * primaries; once none is left to fill, farmd reports it ready
 * (farm_membership_ready: its member znode) and the CM publishes the
 * configuration in which it holds its regions like any member.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "farmd.h"
#include "../../src/farm/config.h"
#include "../../src/farm/membership.h"
#include "../../src/farm/membership_node.h"
#include "../../src/farm/rerep.h"

#define REHELLO_NS (2000ull * 1000000ull) /* re-send refused HELLOs this long */

static void on_serving(void *arg, bool on)
{
	struct farmd *d = arg;
	struct farm *f = __atomic_load_n(&d->f, __ATOMIC_ACQUIRE);

	/* Lease thread: fence the node page (one store), nothing slow. */
	if (f)
		farm__lease_fence(f, on);
	__atomic_store_n(&d->lease_flips, d->lease_flips + 1, __ATOMIC_RELAXED);
}

int farmd_zk_join(struct farmd *d, const char *zk, uint32_t lease_ms, int timeout_ms, char *err,
		  size_t errlen)
{
	struct farm_membership_attr a = {.zk = zk,
					 .lease_ms = lease_ms,
					 .realtime = true,
					 .start_timeout_ms = timeout_ms,
					 .rejoin = false,
					 .on_serving = on_serving,
					 .arg = d};
	static struct farm_mconfig mc;
	static struct farm_mchange ch;
	char run_dir[sizeof(d->cfg.run_dir)];
	int rc;

	/* The membership, lease and ZooKeeper threads must not take the
	 * signals main.c handles (start-up handler, then its signalfd): they
	 * inherit this mask. */
	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, &old);
	rc = farm_membership_start(&d->cfg, d->id, &a, &d->mem, err, errlen);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return rc;
	farm_membership_config(d->mem, &mc);
	int me = farm__config_member(&mc.cfg, d->id);
	bool joining = me >= 0 && mc.cfg.members[me].joining;
	if (mc.id != mc.boot && !joining) {
		/* A seed member that comes after the cluster moved on: its
		 * replicas would start empty where the others hold data. */
		snprintf(err, errlen,
			 "configuration %llu of the running cluster '%s' lists member %u as a "
			 "member that holds data, which this new process does not have; stop "
			 "it (its lease lapses) and start again to join",
			 (unsigned long long)mc.id, d->cfg.cluster, d->id);
		farm_membership_stop(d->mem);
		d->mem = NULL;
		return -EOPNOTSUPP;
	}
	memcpy(run_dir, d->cfg.run_dir, sizeof(run_dir));
	d->cfg = mc.cfg;
	memcpy(d->cfg.run_dir, run_dir, sizeof(run_dir));
	farm_membership_take(d->mem, &ch); /* the one we start in */
	d->lease_ms = lease_ms ? lease_ms : FARM_LEASE_DEFAULT_MS;
	farmd_log(FARMD_INFO,
		  "membership: configuration %llu from ZooKeeper %s, CM %u, lease %u ms%s",
		  (unsigned long long)mc.id, zk, mc.cm, d->lease_ms,
		  joining ? "; joining the running cluster" : "");
	return 0;
}

bool farmd_zk_newer(struct farmd *d)
{
	static struct farm_mconfig mc;
	static struct farm_mchange ch;
	char run_dir[sizeof(d->cfg.run_dir)];

	if (!d->mem || farm_membership_config(d->mem, &mc) || mc.id <= d->cfg.config_id)
		return false;
	int me = farm__config_member(&mc.cfg, d->id);
	if (me < 0 || !mc.cfg.members[me].joining)
		return false; /* removed, or moved on without us: nothing to retry */
	memcpy(run_dir, d->cfg.run_dir, sizeof(run_dir));
	d->cfg = mc.cfg;
	memcpy(d->cfg.run_dir, run_dir, sizeof(run_dir));
	farm_membership_take(d->mem, &ch);
	return true;
}

/* A joiner: once every replica it holds is filled in the configuration it
 * runs, tell the CM (once per configuration); log the join's steps. */
static void joining_poll(struct farmd *d)
{
	const struct farm_config *c;
	uint64_t id = farm_config_id(d->f);
	int me;

	if (id == d->join_seen && !d->joining)
		return; /* the loop's cost while not joining: one compare */
	d->join_seen = id;
	c = farm_get_config(d->f);
	me = -1;
	for (uint32_t i = 0; i < c->nmembers && me < 0; i++)
		if (c->members[i].id == d->id)
			me = (int)i;
	if (me < 0)
		return;
	if (!c->members[me].joining) {
		if (d->joining) {
			d->joining = false;
			farmd_log(FARMD_INFO,
				  "joined: configuration %llu holds this node like any member",
				  (unsigned long long)id);
			farmd_log_placement(d);
		}
		return;
	}
	d->joining = true;
	if (d->ready_reported == id || farm__rerep_pending(d->f))
		return;
	struct farm_rerep_stats st;
	farm__rerep_get_stats(d->f, &st);
	if (farm_membership_ready(d->mem, id) == 0) {
		d->ready_reported = id;
		farmd_log(FARMD_INFO,
			  "joining: every replica filled in configuration %llu (%llu copies, %llu "
			  "bytes); reported ready",
			  (unsigned long long)id, (unsigned long long)st.done,
			  (unsigned long long)st.bytes);
	}
}

void farmd_zk_attach(struct farmd *d)
{
	if (d->mem) {
		farm__membership_attach(d->f, farm_membership_serving_flag(d->mem),
					farm_membership_lease_until(d->mem));
		farm__membership_attach_changes(d->f, d->mem);
	}
}

void farmd_zk_poll(struct farmd *d)
{
	static struct farm_mchange ch;
	char err[256], list[256];
	size_t at = 0;
	int rc;

	if (!d->mem)
		return;
	joining_poll(d);
	if (d->rehello_until) {
		farm__rehello_poll(d->f);
		if (farmd_now_ns() > d->rehello_until)
			d->rehello_until = 0;
	}
	if (!farm_membership_changed(d->mem) || farm_membership_take(d->mem, &ch) <= 0)
		return;
	list[0] = 0;
	for (uint32_t i = 0; i < ch.nremoved && at < sizeof(list) - 12; i++)
		at += (size_t)snprintf(list + at, sizeof(list) - at, "%s%u", i ? "," : "",
				       ch.removed[i]);
	if (ch.self_removed) {
		farmd_log(FARMD_WARN,
			  "configuration %llu no longer holds this node (lease lapsed?): stopping",
			  (unsigned long long)ch.next.id);
		d->stop = true;
		d->stop_reason = "removed from the configuration";
		return;
	}
	rc = farm__adopt_config(d->f, &ch.next.cfg, err, sizeof(err));
	if (rc) {
		farmd_log(FARMD_ERROR, "cannot adopt configuration %llu: %s",
			  (unsigned long long)ch.next.id, err);
		return;
	}
	d->rehello_until = farmd_now_ns() + REHELLO_NS;
	farmd_log(FARMD_INFO, "configuration %llu: %u members, CM %u, removed [%s], %u added",
		  (unsigned long long)ch.next.id, ch.next.cfg.nmembers, ch.next.cm, list,
		  ch.nadded);
}

void farmd_zk_stop(struct farmd *d)
{
	if (d->mem)
		farm_membership_stop(d->mem); /* before the node: the lease thread uses it */
	d->mem = NULL;
}

void farmd_zk_status(struct farmd *d, struct sbuf *out)
{
	struct farm_membership_stats st;

	if (!d->mem) {
		sb_printf(out, ",\"membership\":\"static\"");
		return;
	}
	farm_membership_get_stats(d->mem, &st);
	sb_printf(out,
		  ",\"membership\":\"zookeeper\",\"cm\":%u,\"is_cm\":%s,\"serving\":%s,"
		  "\"zk_connected\":%s,\"lease_ms\":%u,\"lease_realtime\":%s,"
		  "\"configs_published\":%llu",
		  st.cm, st.is_cm ? "true" : "false", st.serving ? "true" : "false",
		  st.zk_connected ? "true" : "false", d->lease_ms,
		  st.lease.realtime ? "true" : "false", (unsigned long long)st.configs_published);
}
