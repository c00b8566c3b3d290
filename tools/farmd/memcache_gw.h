/*
 * memcache_gw.h - farmd's memcached text-protocol gateway
 * (`farmd --memcached-port P [--memcached-addr A]`): existing memcached
 * clients read and write the FaRM key-value table "memcached" through the
 * node they connect to.
 *
 * It runs on the node's own thread, from the progress loop (farm.h and
 * kv.h calls belong to that thread), and never blocks it: one epoll set
 * holds the listening socket, the clients and the node's own wake-up
 * descriptor (farm_wait_fd), so the loop sleeps in one place, woken by
 * whichever has work. The protocol itself lives in src/farm/memcache*.c.
 */
#ifndef FARMD_MEMCACHE_GW_H
#define FARMD_MEMCACHE_GW_H

#include <stddef.h>

#include <farm/farm.h>

#define MC_GW_TABLE "memcached"

struct mc_gw;

/* Listen on addr:port (TCP; addr is an IPv4 or IPv6 literal, port 0 picks
 * a free one), and on addr:shared_port too when it is > 0, with
 * SO_REUSEPORT: every node of this host that gives the same shared port
 * serves it, the kernel spreading the connections over them (one node is
 * one thread; memcached has several). Opens (creates) the table. On
 * failure a sentence in err. */
int mc_gw_open(struct farm *f, const char *addr, int port, int shared_port, struct mc_gw **out,
	       char *err, size_t errlen);
/* The port it listens on. */
int mc_gw_port(const struct mc_gw *g);
/* Serve whatever is ready, without blocking. Returns the events handled. */
int mc_gw_poll(struct mc_gw *g);
/* The node has nothing to do: sleep until a client, the node or the
 * timeout wakes us, serving what woke us. Returns > 0 when something did,
 * 0 on timeout (the caller's farm_idle, with clients in the same sleep). */
int mc_gw_idle(struct mc_gw *g, int timeout_ms);
void mc_gw_close(struct mc_gw *g);

#endif /* FARMD_MEMCACHE_GW_H */
