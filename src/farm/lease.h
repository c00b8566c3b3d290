/*
 * lease.h - leases between the configuration manager (CM) and every
 * member, as in FaRM (SOSP'15 section 5.1): each member holds a lease from
 * the CM, and the CM holds one from the members. They run on a thread of
 * their own with a UDP socket of their own (loopback, or the node's address
 * in its namespace), SCHED_FIFO when allowed, so a data thread spinning at
 * 100% cannot starve a renewal.
 *
 * Protocol (one datagram per message, host order, fixed size):
 *   REQ(seq)    sent every renew_ms by a member to the CM, and by the CM to
 *               every member;
 *   GRANT(seq)  the answer, only from a party that recognises the sender:
 *               the CM grants members of its view with the right
 *               incarnation, a member grants the CM of its view (or of a
 *               newer configuration, which it then asks membership about).
 * A member's lease runs until t_sent(REQ) + lease_ms for the newest REQ the
 * CM granted; measured from the *send* time, so it always ends no later
 * than the CM's view of it (last REQ received + lease_ms): the CM declares
 * a member expired only after that member has stopped serving.
 * The CM's own lease runs until t_sent + lease_ms of its newest REQ round
 * granted by a majority of the other members (always valid alone): a CM
 * cut off from the cluster stops serving too.
 *
 * Also carried: NOTIFY(config id) from the CM after it published a
 * configuration (members then read it); PING / PONG (is this socket
 * reachable: a removed node asks the CM before it rejoins); and PROBE /
 * PROBE-ACK: a member
 * that wants to take over from a CM it cannot hear asks the others, who
 * agree only if they cannot hear that CM either (see membership.c).
 *
 * Callbacks run on the lease thread: they must be short and must not call
 * back into this lease (note, signal, return).
 */
#ifndef FARM_LEASE_H
#define FARM_LEASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "farm/farm.h"

/* Defaults (docs/farm.md "Leases" has the measurements behind them): this
 * shared 2-core VM stalls even SCHED_FIFO threads for up to ~50 ms now and
 * then (the whole VM: every process at once), so a lease must outlast
 * that with room: 100 ms, renewed every 20 ms. FaRM's 10 ms needs a
 * machine that never stalls; pass lease_ms (farmd --lease-ms) for that. */
#define FARM_LEASE_DEFAULT_MS 100u
#define FARM_LEASE_RENEW_DIV  5u /* renew every lease/5, as FaRM */
#define FARM_LEASE_ADDR_MAX   48

struct farm_lease_peer {
	uint32_t id;
	uint64_t inc;			/* incarnation: a restarted process differs */
	char addr[FARM_LEASE_ADDR_MAX]; /* "IPV4:PORT" of its lease socket */
};

/* What the lease thread needs of a configuration. */
struct farm_lease_view {
	uint64_t config_id;
	uint32_t cm; /* the CM's member id */
	uint32_t n;
	struct farm_lease_peer m[FARM_MAX_MEMBERS];
};

struct farm_lease_attr {
	uint32_t self;
	uint64_t inc;
	uint64_t cluster;  /* tag carried by every datagram (a hash of the cluster
			    * name): another cluster's stray ones are dropped */
	uint32_t lease_ms; /* 0: FARM_LEASE_DEFAULT_MS */
	uint32_t renew_ms; /* 0: lease_ms / FARM_LEASE_RENEW_DIV (at least 1) */
	const char *bind;  /* IPv4 to bind (port chosen by the kernel); NULL: 127.0.0.1 */
	bool realtime;	   /* try SCHED_FIFO for the thread (root only; else ignored) */
	/* CM: member `id` has not been heard from for a lease (once per view). */
	void (*on_member_expired)(void *arg, uint32_t id, uint64_t config_id);
	/* Member: the CM has not been heard from for a lease (once per view). */
	void (*on_cm_expired)(void *arg, uint32_t cm, uint64_t config_id);
	/* Our own lease started or stopped being valid. */
	void (*on_serving)(void *arg, bool serving);
	/* Someone speaks of a configuration newer than our view. */
	void (*on_newer)(void *arg, uint64_t config_id);
	void *arg;
	/* Optional: kept equal to the exact end of our lease (CLOCK_MONOTONIC
	 * ns; UINT64_MAX for a CM alone, 0 outside the view), for checks that
	 * must not depend on this thread being scheduled in time. */
	uint64_t *until_out;
};

struct farm_lease_stats {
	uint64_t req_sent, req_recv, grant_sent, grant_recv, dropped, bad;
	uint64_t expiries_seen;	   /* on_member_expired + on_cm_expired calls */
	uint64_t max_gap_ns;	   /* longest wait between two renewals we sent */
	uint64_t max_grant_age_ns; /* longest a valid lease went without a new grant */
	uint64_t stalls;	   /* ticks late by > 2 renewal periods: expiries deferred */
	bool realtime;		   /* the thread runs SCHED_FIFO */
};

struct farm_lease;

/* Bind the socket, start the thread. The view starts empty (nothing is
 * leased, not serving) until farm_lease_set_view. */
int farm_lease_start(const struct farm_lease_attr *a, struct farm_lease **out);
void farm_lease_stop(struct farm_lease *l);

/* "IPV4:PORT" of our lease socket: goes into our member znode. */
int farm_lease_addr(const struct farm_lease *l, char *buf, size_t len);

/* Adopt a configuration's view. Members new to it get a whole lease from
 * now to start talking. The serving flag keeps its state until the next
 * grant or expiry. -EINVAL: bad address or too many members. */
int farm_lease_set_view(struct farm_lease *l, const struct farm_lease_view *v);

/* Our own lease is valid now (member: granted by the CM; CM: granted by a
 * majority). One atomic load; the thread keeps it current to within the
 * scheduler's latency, and farm_lease_valid_until says the exact end. */
bool farm_lease_serving(const struct farm_lease *l);
uint64_t farm_lease_valid_until(const struct farm_lease *l); /* CLOCK_MONOTONIC ns */

/* CM: tell every member of the view that configuration `config_id` is out. */
void farm_lease_notify(struct farm_lease *l, uint64_t config_id);

/* Ask every member of the view but the CM whether it, too, has lost the
 * CM; wait up to timeout_ms for the answers (yes or not yet). Returns how
 * many agree, counting ourselves when we have lost it. */
int farm_lease_probe(struct farm_lease *l, int timeout_ms);

/* The CM of our view has not been heard from for a lease. */
bool farm_lease_cm_lost(const struct farm_lease *l);

/* Is member `id`'s lease socket at `addr` reachable from ours? PING, wait
 * up to timeout_ms for the PONG: 0, -ETIMEDOUT, -EINVAL. */
int farm_lease_ping(struct farm_lease *l, uint32_t id, const char *addr, int timeout_ms);

/* Fault injection for tests: drop every lease datagram in and out (a
 * partition of the lease channel), or stop dropping. */
void farm_lease_block(struct farm_lease *l, bool block);

void farm_lease_get_stats(const struct farm_lease *l, struct farm_lease_stats *st);

#endif /* FARM_LEASE_H */
