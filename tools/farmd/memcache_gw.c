/*
 * memcache_gw.c - the memcached gateway's sockets: a TCP listener, client
 * connections and one epoll set, driven from farmd's progress loop.
 *
 * Shape, and why: farm.h and kv.h calls belong to the node's thread, so the
 * gateway cannot have threads of its own; and a node must not stall for a
 * client. So every socket is non-blocking, one level-triggered epoll set
 * tells which are ready, and the node's own wake-up descriptor sits in the
 * same set: when neither the node nor a client has work, the loop sleeps in
 * one epoll_wait (mc_gw_idle) and whichever comes first wakes it. A ready
 * client costs one recv and one send per batch of commands it sent; the
 * protocol engine (src/farm/memcache_conn.c) runs all complete commands of a
 * read before the replies go out in one send. A client that does not read
 * its replies stops being read (EPOLLIN off) once MC_GW_HIGH bytes wait, so
 * one connection's memory stays bounded (memcache.h says by what).
 *
 * A node is one thread where memcached has several, so a host's nodes can
 * also share one port (SO_REUSEPORT, a second listener in the same epoll
 * set): the kernel spreads the connections over them by a hash of the
 * addresses. Each node serves as fast as a memcached worker when its client
 * runs on the same CPU (docs/memcached.md has the measurements); what it
 * cannot do alone is serve two clients on two CPUs.
 */
#include <errno.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#include <farm/kv.h>

#include "../../src/farm/memcache.h"
#include "farmd.h"
#include "memcache_gw.h"

#define MC_GW_MAX_CONNS 1024	     /* memcached's default -c */
#define MC_GW_HIGH	(256u << 10) /* reply backlog that stops reading a client */
#define MC_GW_EVENTS	64
#define MC_GW_REARM_NS	200000 /* serving clients, back to the loop this often */

struct gw_conn {
	struct gw_conn *prev, *next; /* all connections, for mc_gw_close */
	int fd;
	uint32_t events; /* what epoll watches now */
	bool eof;
	struct mc_conn mc;
};

struct mc_gw {
	struct farm *f;
	struct farm_kv *kv;
	int epfd, lfd, sfd, ffd, port;
	unsigned nconns;
	struct gw_conn *conns;
	struct mc_exec ex;
	uint8_t *scratch;
	char version[32];
};

/* epoll tags of the descriptors that are not clients */
static char tag_listen, tag_shared, tag_farm;

/* ---- the store: the kv table -------------------------------------------- */

static int kv_get(void *s, const void *key, size_t klen, void *val, size_t cap, size_t *vlen,
		  uint64_t *ver)
{
	return farm_kv_get(s, key, klen, val, cap, vlen, ver);
}

static int kv_put(void *s, const void *key, size_t klen, const void *val, size_t vlen,
		  enum mc_put_mode mode, uint64_t *ver)
{
	static const enum farm_kv_mode modes[] = {FARM_KV_SET, FARM_KV_ADD, FARM_KV_REPLACE};
	return farm_kv_put(s, key, klen, val, vlen, modes[mode], ver);
}

static int kv_cas(void *s, const void *key, size_t klen, uint64_t expect, const void *val,
		  size_t vlen, uint64_t *ver)
{
	return farm_kv_cas(s, key, klen, expect, val, vlen, ver);
}

static int kv_del(void *s, const void *key, size_t klen, uint64_t expect)
{
	return farm_kv_del(s, key, klen, expect);
}

static const struct mc_store_ops kv_ops = {kv_get, kv_put, kv_cas, kv_del};

static int64_t unix_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME_COARSE, &ts);
	return ts.tv_sec;
}

/* ---- connections ---------------------------------------------------------- */

static void conn_close(struct mc_gw *g, struct gw_conn *c)
{
	epoll_ctl(g->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		g->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	mc_conn_free(&c->mc);
	free(c);
	g->nconns--;
	g->ex.st.curr_connections--;
}

static void conn_watch(struct mc_gw *g, struct gw_conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (events == c->events)
		return;
	if (epoll_ctl(g->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = events;
}

static void accept_all(struct mc_gw *g, int lfd)
{
	static const char busy[] = "ERROR Too many open connections\r\n";
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct gw_conn *c = NULL;
		struct epoll_event ev = {.events = EPOLLIN};
		int one = 1;

		if (g->nconns < MC_GW_MAX_CONNS)
			c = calloc(1, sizeof(*c));
		if (!c) {
			g->ex.st.rejected_connections++;
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* it sees the close */
			}
			close(fd);
			continue;
		}
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c->fd = fd;
		c->events = EPOLLIN;
		ev.data.ptr = c;
		if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			free(c);
			continue;
		}
		c->next = g->conns;
		if (g->conns)
			g->conns->prev = c;
		g->conns = c;
		g->nconns++;
		g->ex.st.curr_connections++;
		g->ex.st.total_connections++;
	}
}

/* Send what waits; false when the client is gone. */
static bool conn_flush(struct mc_gw *g, struct gw_conn *c)
{
	while (c->mc.out.len > c->mc.out_off) {
		ssize_t n = send(c->fd, c->mc.out.p + c->mc.out_off, c->mc.out.len - c->mc.out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		mc_conn_sent(&g->ex, &c->mc, (size_t)n);
	}
	return true;
}

static void conn_io(struct mc_gw *g, struct gw_conn *c, uint32_t events)
{
	size_t backlog;

	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->events & EPOLLIN)) {
		size_t room;
		char *p = mc_conn_rbuf(&c->mc, g->ex.max_value, &room);
		ssize_t n = p ? recv(c->fd, p, room, MSG_DONTWAIT) : 0;
		if (n > 0)
			mc_conn_rdone(&g->ex, &c->mc, (size_t)n);
		else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = true;
	}
	mc_conn_run(&g->ex, &c->mc, MC_GW_HIGH);
	if (!conn_flush(g, c) || c->mc.close_now) {
		conn_close(g, c);
		return;
	}
	backlog = c->mc.out.len - c->mc.out_off;
	if ((c->eof || c->mc.quit) && backlog == 0) {
		conn_close(g, c);
		return;
	}
	/* Input that waits for the backlog to drain runs again on EPOLLOUT. */
	conn_watch(g, c,
		   (c->eof || c->mc.quit || backlog > MC_GW_HIGH ? 0u : (uint32_t)EPOLLIN) |
		       (backlog ? (uint32_t)EPOLLOUT : 0u));
}

/* Handle n events; *node says whether the node's descriptor was one. */
static int dispatch(struct mc_gw *g, struct epoll_event *ev, int n, bool *node)
{
	int work = 0;

	if (n <= 0)
		return 0;
	mc_exec_tick(&g->ex, unix_now());
	for (int i = 0; i < n; i++) {
		if (ev[i].data.ptr == &tag_farm) {
			*node = true; /* the loop's farm_poll takes it */
		} else if (ev[i].data.ptr == &tag_listen) {
			accept_all(g, g->lfd);
		} else if (ev[i].data.ptr == &tag_shared) {
			accept_all(g, g->sfd);
		} else {
			conn_io(g, ev[i].data.ptr, ev[i].events);
		}
		work++;
	}
	return work;
}

int mc_gw_poll(struct mc_gw *g)
{
	struct epoll_event ev[MC_GW_EVENTS];
	bool node = false;

	return dispatch(g, ev, epoll_wait(g->epfd, ev, MC_GW_EVENTS, 0), &node);
}

/* Sleep until the node or a client needs us. farm_idle(f, 0) sends owed
 * acks, takes the node's wake-ups and arms its descriptor; after that,
 * clients alone are served here, without going back to the loop: its
 * farm_poll would disarm the node's descriptor and cost another
 * farm_idle (a system call) per request. Back to the loop when the node's
 * descriptor fires, after MC_GW_REARM_NS of serving clients, or when
 * timeout_ms passed with nothing at all. The bound matters: a kv lookup
 * lets the node make progress now and then (every 16th completion poll),
 * which disarms its descriptor, and a peer's message would then wait for
 * the next farm_poll; so serving clients delays the node's own messages
 * by MC_GW_REARM_NS at most, for one system call per MC_GW_REARM_NS. */
int mc_gw_idle(struct mc_gw *g, int timeout_ms)
{
	struct epoll_event ev[MC_GW_EVENTS];
	uint64_t until;
	bool node = false;
	int work = 0, n;

	if (farm_idle(g->f, 0) != 0) {
		/* a timer is due: look at the clients too, without sleeping */
		n = epoll_wait(g->epfd, ev, MC_GW_EVENTS, 0);
		return dispatch(g, ev, n, &node) + 1;
	}
	until = farmd_now_ns() + MC_GW_REARM_NS;
	do {
		n = epoll_wait(g->epfd, ev, MC_GW_EVENTS, work ? 1 : timeout_ms);
		if (n <= 0)
			break;
		work += dispatch(g, ev, n, &node);
	} while (!node && farmd_now_ns() < until);
	return work;
}

int mc_gw_port(const struct mc_gw *g)
{
	return g->port;
}

static int listen_on(const char *addr, int port, bool shared, int *fd_out, int *port_out, char *err,
		     size_t errlen)
{
	struct addrinfo hints = {.ai_family = AF_UNSPEC,
				 .ai_socktype = SOCK_STREAM,
				 .ai_flags = AI_NUMERICHOST | AI_PASSIVE | AI_NUMERICSERV};
	struct addrinfo *ai;
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	char sport[16];
	int fd, one = 1, rc;

	snprintf(sport, sizeof(sport), "%d", port);
	rc = getaddrinfo(addr, sport, &hints, &ai);
	if (rc != 0) {
		snprintf(err, errlen, "--memcached-addr '%s' is not an IP address", addr);
		return -EINVAL;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    (shared && setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) ||
	    bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&ss, &sl) < 0) {
		rc = -errno;
		snprintf(err, errlen, "cannot listen on %s port %d: %s", addr, port, strerror(-rc));
		if (fd >= 0)
			close(fd);
		freeaddrinfo(ai);
		return rc;
	}
	freeaddrinfo(ai);
	*fd_out = fd;
	*port_out = ntohs(ss.ss_family == AF_INET ? ((struct sockaddr_in *)&ss)->sin_port
						  : ((struct sockaddr_in6 *)&ss)->sin6_port);
	return 0;
}

int mc_gw_open(struct farm *f, const char *addr, int port, int shared_port, struct mc_gw **out,
	       char *err, size_t errlen)
{
	struct farm_kv_opts opts = {.flags = FARM_KV_CREATE};
	struct epoll_event ev = {.events = EPOLLIN};
	struct mc_gw *g = calloc(1, sizeof(*g));
	int rc;

	*out = NULL;
	if (!g)
		return -ENOMEM;
	g->f = f;
	g->epfd = g->lfd = g->sfd = -1;
	g->ex.max_value = FARM_KV_VAL_MAX - MC_ITEM_HDR_MAX;
	g->scratch = malloc(FARM_KV_VAL_MAX);
	if (!g->scratch) {
		free(g);
		return -ENOMEM;
	}
	rc = farm_kv_open(f, MC_GW_TABLE, &opts, &g->kv);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open the key-value table '%s': %s", MC_GW_TABLE,
			 farm_strerror(rc));
		goto fail;
	}
	rc = listen_on(addr, port, false, &g->lfd, &g->port, err, errlen);
	if (rc == 0 && shared_port > 0)
		rc = listen_on(addr, shared_port, true, &g->sfd, &shared_port, err, errlen);
	if (rc < 0)
		goto fail;
	g->epfd = epoll_create1(EPOLL_CLOEXEC);
	g->ffd = farm_wait_fd(f);
	if (g->epfd < 0) {
		rc = -errno;
		snprintf(err, errlen, "epoll_create1: %s", strerror(-rc));
		goto fail;
	}
	ev.data.ptr = &tag_listen;
	if (epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->lfd, &ev) < 0)
		goto fail_errno;
	ev.data.ptr = &tag_shared;
	if (g->sfd >= 0 && epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->sfd, &ev) < 0)
		goto fail_errno;
	ev.data.ptr = &tag_farm;
	if (g->ffd < 0 || epoll_ctl(g->epfd, EPOLL_CTL_ADD, g->ffd, &ev) < 0)
		goto fail_errno;
	snprintf(g->version, sizeof(g->version), "1.6.18-farm");
	g->ex.ops = &kv_ops;
	g->ex.store = g->kv;
	g->ex.scratch = g->scratch;
	g->ex.version = g->version;
	g->ex.started = unix_now();
	mc_exec_tick(&g->ex, g->ex.started);
	*out = g;
	return 0;
fail_errno:
	rc = g->ffd < 0 ? g->ffd : -errno;
	snprintf(err, errlen, "epoll_ctl: %s", strerror(-rc));
fail:
	mc_gw_close(g);
	return rc;
}

void mc_gw_close(struct mc_gw *g)
{
	if (!g)
		return;
	while (g->conns)
		conn_close(g, g->conns);
	if (g->epfd >= 0)
		close(g->epfd);
	if (g->lfd >= 0)
		close(g->lfd);
	if (g->sfd >= 0)
		close(g->sfd);
	if (g->kv)
		farm_kv_close(g->kv);
	free(g->scratch);
	free(g);
}
