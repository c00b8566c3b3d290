/*
 * membership.h - cluster membership through ZooKeeper, FaRM style
 * (SOSP'15 section 5; Vertical Paxos): who is in the cluster, which
 * configuration is current, who is the configuration manager (CM), and
 * the leases that detect failures fast.
 *
 * ZooKeeper layout, for cluster C:
 *   /farm/C/members/ID     ephemeral, one per running node: "ID INC LEASE ADDR [NETNS]
 *                          [ready=CFG]" (ready: a joiner holds its replicas)
 *                          (INC = incarnation, different for every process;
 *                          LEASE = its lease socket; ADDR = its data address)
 *   /farm/C/election/n_SEQ ephemeral sequential, "ID INC": lowest is the CM,
 *                          everyone else watches its predecessor
 *   /farm/C/config         the configuration (text: farm.h's config format,
 *                          preceded by "# farm-config" lines with the id, the
 *                          CM and each member's incarnation and lease address)
 * The configuration znode is only ever changed by a set conditional on the
 * version that was read (a lost race re-reads and tries again) and only by
 * the CM, once per configuration change: ZooKeeper is never on the data
 * path, and leases, not ZooKeeper sessions, detect failures.
 *
 * What the node runtime (or a test) sees is one event: "configuration
 * changed: here is the new one (id, members, CM); these members were
 * removed, these added". Delivered by callback on the membership thread,
 * and/or picked up with farm_membership_take() on the node's own thread.
 * Recovery (later) plugs in there.
 */
#ifndef FARM_MEMBERSHIP_H
#define FARM_MEMBERSHIP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "farm/farm.h"
#include "lease.h"

/* One configuration as ZooKeeper holds it. cfg.members[i] and lease[i]
 * describe the same member; cfg.config_id == id. */
struct farm_mconfig {
	uint64_t id;
	uint32_t cm;
	uint64_t boot; /* id of the configuration that started this generation of
			* the cluster (all seed members starting together); a
			* configuration with id == boot is one nodes start in */
	struct farm_config cfg;
	struct farm_lease_peer lease[FARM_MAX_MEMBERS];
};

struct farm_mchange {
	struct farm_mconfig next;
	uint32_t removed[FARM_MAX_MEMBERS]; /* member ids gone (or restarted: also in added) */
	uint32_t nremoved;
	uint32_t added[FARM_MAX_MEMBERS];
	uint32_t nadded;
	bool self_removed; /* we are not in `next` any more: stop serving, rejoin */
};

typedef void (*farm_membership_change_fn)(void *arg, const struct farm_mchange *ch);

struct farm_membership_attr {
	const char *zk;		/* "host:port[,host:port...]" */
	int zk_session_ms;	/* 0: 4000 */
	uint32_t lease_ms;	/* 0: FARM_LEASE_DEFAULT_MS */
	uint32_t renew_ms;	/* 0: lease_ms / 5 */
	const char *lease_bind; /* IPv4 of the lease socket; NULL: 127.0.0.1 */
	bool realtime;		/* SCHED_FIFO lease thread when allowed */
	int start_timeout_ms;	/* wait for a configuration holding us (0: 10000) */
	bool rejoin;		/* removed while alive: register again as a new incarnation */
	farm_membership_change_fn on_change;	     /* on the membership thread; may be NULL */
	void (*on_serving)(void *arg, bool serving); /* on the lease thread; may be NULL */
	void *arg;
};

struct farm_membership_stats {
	uint64_t config_id;
	uint32_t cm;
	bool is_cm, serving, zk_connected;
	uint64_t configs_published; /* by us, as CM */
	uint64_t races_lost;	    /* conditional sets that found a newer version */
	uint64_t zk_sessions;	    /* sessions opened (1 + re-opened after expiry) */
	uint64_t takeovers;	    /* times we deleted a silent CM's election znode */
	uint64_t last_detect_ns;    /* CM: lease expiry of a member -> its removal published */
	struct farm_lease_stats lease;
};

struct farm_membership;

/* Join cluster seed->cluster as member `self`: connect to ZooKeeper,
 * register, stand in the CM election, and wait until a configuration that
 * holds us is published (the first CM creates configuration seed->config_id
 * from the seed's members once they have all registered; later, a node
 * not in the configuration is added by the CM). A configuration none of
 * whose members is alive any more (the whole cluster was stopped) starts a
 * new generation the same way, at the next id (boot == id). The seed gives the region
 * parameters and our own address (its member entry for `self`).
 * Errors (with a sentence in err): -ENOTSUP without ZooKeeper support,
 * -ETIMEDOUT (ZooKeeper or the configuration did not come), -EEXIST (a
 * live process registered as `self` already), -EINVAL. */
int farm_membership_start(const struct farm_config *seed, uint32_t self,
			  const struct farm_membership_attr *attr, struct farm_membership **out,
			  char *err, size_t errlen);
/* Leave: our ephemeral znodes go at once (the CM removes us at its next
 * look), the threads stop. */
void farm_membership_stop(struct farm_membership *m);

/* The configuration we adopted last. */
int farm_membership_config(struct farm_membership *m, struct farm_mconfig *out);

/* A configuration newer than the last taken one is there (one atomic load,
 * for the node's loop). */
bool farm_membership_changed(const struct farm_membership *m);
/* Take it: the newest configuration and what changed since the previous
 * take (the first take compares with the configuration we started in).
 * 1 when there was a change, 0 when not. */
int farm_membership_take(struct farm_membership *m, struct farm_mchange *out);

/* Our lease is valid: serve. Checked by the node on every request. */
bool farm_membership_serving(const struct farm_membership *m);
/* The flag itself, for the node to load without a call (never NULL). */
const int *farm_membership_serving_flag(const struct farm_membership *m);
/* The exact end of our lease (CLOCK_MONOTONIC ns), kept by the lease
 * thread: a check against the clock does not depend on that thread
 * running in time (never NULL). */
const uint64_t *farm_membership_lease_until(const struct farm_membership *m);

void farm_membership_get_stats(struct farm_membership *m, struct farm_membership_stats *st);

/* A joining member (farm_member.joining in the configuration we run) holds
 * every replica the map of configuration `config_id` gives it (its copies
 * are done: rerep.h). The membership thread writes it into our member
 * znode ("ready=ID": one ZooKeeper write per step of a join, none on the
 * data path; kept in ZooKeeper, so a CM elected meanwhile sees it too);
 * the CM watches it and, once every joiner is ready for the current
 * configuration, publishes the next one with their joining cleared. Any
 * thread; 0 or -EINVAL. */
int farm_membership_ready(struct farm_membership *m, uint64_t config_id);

/* Tests: cut our lease channel (a partition) or heal it. */
void farm_membership_block_lease(struct farm_membership *m, bool block);

/* The configuration znode text: format and parse (exported for tests and
 * for `farm cluster status --zk`). */
int farm_mconfig_format(const struct farm_mconfig *c, char *buf, size_t len);
int farm_mconfig_parse(const char *text, struct farm_mconfig *c, char *err, size_t errlen);

#endif /* FARM_MEMBERSHIP_H */
