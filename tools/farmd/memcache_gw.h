/*
 * memcache_gw.h - farmd's memcached text-protocol gateway
 * (`farmd --memcached-port P [--memcached-addr A]`): existing memcached
 * clients read and write the FaRM key-value table "memcached" through the
 * node they connect to.
 *
 * Two ways to serve. With worker threads (the default, 4 as memcached's),
 * each worker sleeps in its own epoll set on its own connections and
 * takes the node lock for one batch of commands; the node's loop holds the
 * lock the rest of the time. In-loop (--memcached-threads 0) it runs on
 * the node's own thread, from the progress loop, and never blocks it: one
 * epoll set holds the listening socket, the clients and the node's own
 * wake-up descriptor (farm_wait_fd), so the loop sleeps in one place,
 * woken by whichever has work. The protocol lives in src/farm/memcache*.c.
 */
#ifndef FARMD_MEMCACHE_GW_H
#define FARMD_MEMCACHE_GW_H

#include <stddef.h>

#include <farm/farm.h>

#define MC_GW_TABLE "memcached"

struct mc_gw;

struct mc_gw_opts {
	const char *addr; /* an IPv4 or IPv6 literal */
	int port;	  /* 0: a free one */
	int shared_port;  /* > 0: also this port, SO_REUSEPORT */
	unsigned threads; /* worker threads; 0: serve from the node's loop */
};

/* Listen on addr:port (TCP), and on addr:shared_port too when it is > 0,
 * with SO_REUSEPORT: every node of this host that gives the same shared
 * port serves it, the kernel spreading the connections over them. Opens
 * (creates) the table. With threads > 0 the clients are served by that
 * many worker threads, each with its own connections (round robin, like
 * memcached's), and the node is shared by one lock: from this call on the
 * calling thread holds it while it drives the node, and gives it up in
 * mc_gw_idle (asleep) and mc_gw_yield (workers queue for it). On failure
 * a sentence in err. */
int mc_gw_open(struct farm *f, const struct mc_gw_opts *o, struct mc_gw **out, char *err,
	       size_t errlen);
/* The port it listens on. */
int mc_gw_port(const struct mc_gw *g);
/* Serve whatever is ready, without blocking (in-loop mode; nothing with
 * threads). Returns the events handled. */
int mc_gw_poll(struct mc_gw *g);
/* The node has nothing to do: sleep until a client (in-loop mode), the
 * node or the timeout wakes us, serving what woke us. Returns > 0 when
 * something did, 0 on timeout (the caller's farm_idle, with clients in the
 * same sleep). */
int mc_gw_idle(struct mc_gw *g, int timeout_ms);
/* Threads mode, between two pieces of the loop's work: if workers wait for
 * the node, let them have it first (bounded). */
void mc_gw_yield(struct mc_gw *g);
/* Stop the workers (the caller still holds the lock it got in mc_gw_open),
 * close every connection and the table handle. */
void mc_gw_close(struct mc_gw *g);

#endif /* FARMD_MEMCACHE_GW_H */
