/*
 * memcache_gw.c - the memcached gateway's sockets: TCP listeners, client
 * connections, and who serves them.
 *
 * farm.h and kv.h calls belong to the thread that drives the node, and a
 * node must not stall for a client. Two shapes (docs/memcached.md):
 *
 * Worker threads (default 4, as memcached's): each worker sleeps in its own
 * epoll set on its own connections, does its recv and send outside any
 * lock, and takes the node lock for one batch of commands in between. The
 * node's progress loop holds that lock except while it sleeps (on the
 * node's descriptor alone) and when workers queue for it (mc_gw_yield).
 * One thread at a time drives the node, so libfarm stays single-threaded;
 * the workers give what memcached's give: a client's requests are served
 * on the client's CPU, not by one thread that must be woken on the other.
 *
 * In the loop (--memcached-threads 0): every socket is non-blocking, one
 * level-triggered epoll set tells which are ready, and the node's own
 * wake-up descriptor sits in the same set: when neither the node nor a
 * client has work, the loop sleeps in one epoll_wait (mc_gw_idle) and
 * whichever comes first wakes it.
 *
 * Either way a ready client costs one recv and one send per batch of
 * commands it sent; the protocol engine (src/farm/memcache_conn.c) runs all
 * complete commands of a read before the replies go out in one send. A
 * client that does not read its replies stops being read (EPOLLIN off) once
 * MC_GW_HIGH bytes wait, so one connection's memory stays bounded
 * (memcache.h says by what). A host's nodes can also share one port
 * (SO_REUSEPORT): the kernel spreads the connections over them.
 */
#include <errno.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>

#include <farm/kv.h>

#include "../../src/farm/memcache.h"
#include "farmd.h"
#include "memcache_gw.h"

#define MC_GW_MAX_CONNS 1024	     /* memcached's default -c */
#define MC_GW_MAX_THREADS 64
#define MC_GW_HIGH	(256u << 10) /* reply backlog that stops reading a client */
#define MC_GW_EVENTS	64
#define MC_GW_REARM_NS	200000 /* serving clients, back to the loop this often */
#define MC_GW_YIELD_NS	200000 /* longest the node thread stands aside for workers */
#define MC_GW_LOCK_SPIN_NS 10000 /* a worker spins this long for the node lock */

struct gw_worker;

struct gw_conn {
	struct gw_conn *prev, *next; /* its worker's connections, for closing */
	struct gw_worker *w;	     /* the one thread that serves it */
	int fd;
	uint32_t events; /* what epoll watches now */
	bool eof;
	struct mc_conn mc;
};

/* A thread that serves connections (threads mode), or the node's own loop
 * (g->loop, in-loop mode). Its connections and epoll set are its own. */
struct gw_worker {
	struct mc_gw *g;
	pthread_t tid;
	bool started;
	int epfd, stopfd;
	struct gw_conn *conns;
	uint64_t written; /* bytes sent, not yet in g->ex.st (threads mode) */
};

struct mc_gw {
	struct farm *f;
	struct farm_kv *kv;
	int lfd, sfd, ffd, kickfd, port;
	unsigned nconns;
	struct mc_exec ex;
	uint8_t *scratch;
	char version[32];
	/* threads mode: the node lock, and who waits for it */
	unsigned nthreads, rr;
	pthread_mutex_t lock;
	atomic_uint waiting;
	atomic_bool node_asleep;
	bool locked; /* the loop's thread holds the lock (from mc_gw_open on) */
	struct gw_worker loop; /* in-loop mode: the node's loop is the worker */
	struct gw_worker *w;
};

/* epoll tags of the descriptors that are not clients */
static char tag_listen, tag_shared, tag_farm, tag_stop;

/* ---- the node lock (threads mode) ----------------------------------------
 *
 * In threads mode every farm.h/kv.h call, and every field of g other than
 * the descriptors, belongs to whoever holds g->lock: the node's loop holds
 * it except while it sleeps, a worker takes it for one batch of commands.
 * `waiting` tells the loop to stand aside when workers queue up for it. */

static void node_lock(struct mc_gw *g)
{
	uint64_t until = 0;

	atomic_fetch_add(&g->waiting, 1);
	/* A batch holds it for a microsecond or two: spin for a few before
	 * sleeping in the kernel, whose wake-up from another CPU costs tens. */
	for (unsigned i = 0; pthread_mutex_trylock(&g->lock) != 0; i++) {
		if ((i & 63) == 63) {
			uint64_t now = farmd_now_ns();
			if (!until) {
				until = now + MC_GW_LOCK_SPIN_NS;
			} else if (now >= until) {
				pthread_mutex_lock(&g->lock);
				break;
			}
		}
		__builtin_ia32_pause();
	}
	atomic_fetch_sub(&g->waiting, 1);
}

static void node_unlock(struct mc_gw *g)
{
	pthread_mutex_unlock(&g->lock);
}

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

/* In threads mode the caller holds the node lock (list, counts). */
static void conn_close(struct mc_gw *g, struct gw_conn *c)
{
	struct gw_worker *w = c->w;

	epoll_ctl(w->epfd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		w->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	mc_conn_free(&c->mc);
	free(c);
	g->nconns--;
	g->ex.st.curr_connections--;
}

static void conn_watch(struct gw_conn *c, uint32_t events)
{
	struct epoll_event ev = {.events = events, .data.ptr = c};

	if (events == c->events)
		return;
	if (epoll_ctl(c->w->epfd, EPOLL_CTL_MOD, c->fd, &ev) == 0)
		c->events = events;
}

/* The worker that gets the next connection: round robin, as memcached's
 * dispatcher does. */
static struct gw_worker *next_worker(struct mc_gw *g)
{
	if (!g->nthreads)
		return &g->loop;
	return &g->w[g->rr++ % g->nthreads];
}

static void accept_all(struct mc_gw *g, int lfd)
{
	static const char busy[] = "ERROR Too many open connections\r\n";
	int fd;

	while ((fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct gw_conn *c = NULL;
		struct epoll_event ev = {.events = EPOLLIN};
		struct gw_worker *w;
		int one = 1;

		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		if (g->nthreads)
			node_lock(g);
		if (g->nconns < MC_GW_MAX_CONNS)
			c = calloc(1, sizeof(*c));
		if (!c) {
			g->ex.st.rejected_connections++;
			if (g->nthreads)
				node_unlock(g);
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* it sees the close */
			}
			close(fd);
			continue;
		}
		w = next_worker(g);
		c->w = w;
		c->fd = fd;
		c->events = EPOLLIN;
		ev.data.ptr = c;
		c->next = w->conns;
		if (w->conns)
			w->conns->prev = c;
		w->conns = c;
		g->nconns++;
		g->ex.st.curr_connections++;
		g->ex.st.total_connections++;
		/* last: from here on the worker may serve it */
		if (epoll_ctl(w->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
			conn_close(g, c);
		if (g->nthreads)
			node_unlock(g);
	}
}

/* Send what waits; false when the client is gone. In threads mode this runs
 * without the node lock: the bytes are counted in w->written. */
static bool conn_flush(struct mc_gw *g, struct gw_conn *c)
{
	while (c->mc.out.len > c->mc.out_off) {
		ssize_t n = send(c->fd, c->mc.out.p + c->mc.out_off, c->mc.out.len - c->mc.out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if (g->nthreads) {
			c->w->written += (size_t)n;
			mc_conn_sent(NULL, &c->mc, (size_t)n);
		} else {
			mc_conn_sent(&g->ex, &c->mc, (size_t)n);
		}
	}
	return true;
}

static uint64_t node_polls(struct mc_gw *g)
{
	struct farm_stats st;

	farm_get_stats(g->f, &st);
	return st.polls;
}

/* The node's descriptor, after a worker used the node: a kv command that
 * made the node progress (farm_poll) disarmed it and may have left acks
 * and messages queued. While the loop sleeps, nobody else would re-arm it
 * or send them; so re-arm here (a system call, only then), and if the
 * node has work already, wake the loop. A plain lookup does not poll. */
static void node_rearm(struct mc_gw *g, uint64_t polls_before)
{
	static const uint64_t one = 1;

	if (!atomic_load_explicit(&g->node_asleep, memory_order_relaxed) ||
	    node_polls(g) == polls_before)
		return; /* awake (its own loop does it), or untouched */
	if (farm_idle(g->f, 0) != 0 && write(g->kickfd, &one, sizeof(one)) < 0) {
		/* the counter is full: it is awake already */
	}
}

static void conn_io(struct mc_gw *g, struct gw_conn *c, uint32_t events)
{
	bool mt = g->nthreads != 0;
	uint64_t polls = 0;
	ssize_t got = -1;
	size_t backlog;

	if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && (c->events & EPOLLIN)) {
		size_t room;
		char *p = mc_conn_rbuf(&c->mc, g->ex.max_value, &room);
		got = p ? recv(c->fd, p, room, MSG_DONTWAIT) : 0;
		if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR))
			c->eof = true;
	}
	if (mt) {
		node_lock(g);
		g->ex.st.bytes_written += c->w->written;
		c->w->written = 0;
		mc_exec_tick(&g->ex, unix_now());
		polls = node_polls(g);
	}
	if (got > 0)
		mc_conn_rdone(&g->ex, &c->mc, (size_t)got);
	mc_conn_run(&g->ex, &c->mc, MC_GW_HIGH);
	if (mt) {
		node_rearm(g, polls);
		node_unlock(g);
	}
	if (!conn_flush(g, c) || c->mc.close_now)
		goto close;
	backlog = c->mc.out.len - c->mc.out_off;
	if ((c->eof || c->mc.quit) && backlog == 0)
		goto close;
	/* Input that waits for the backlog to drain runs again on EPOLLOUT. */
	conn_watch(c, (c->eof || c->mc.quit || backlog > MC_GW_HIGH ? 0u : (uint32_t)EPOLLIN) |
			  (backlog ? (uint32_t)EPOLLOUT : 0u));
	return;
close:
	if (mt)
		node_lock(g);
	conn_close(g, c);
	if (mt)
		node_unlock(g);
}

/* Handle n events; *node says whether the node's descriptor was one, *stop
 * whether the worker was told to end. */
static int dispatch(struct mc_gw *g, struct epoll_event *ev, int n, bool *node, bool *stop)
{
	int work = 0;

	if (n <= 0)
		return 0;
	if (!g->nthreads)
		mc_exec_tick(&g->ex, unix_now());
	for (int i = 0; i < n; i++) {
		if (ev[i].data.ptr == &tag_farm) {
			*node = true; /* the loop's farm_poll takes it */
		} else if (ev[i].data.ptr == &tag_stop) {
			*stop = true;
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

/* ---- threads mode: the workers, and the loop's side of the lock ----------- */

static void *worker_main(void *arg)
{
	struct gw_worker *w = arg;
	struct epoll_event ev[MC_GW_EVENTS];
	bool node = false, stop = false;

	while (!stop) {
		int n = epoll_wait(w->epfd, ev, MC_GW_EVENTS, -1);
		if (n < 0 && errno != EINTR)
			break;
		dispatch(w->g, ev, n, &node, &stop);
	}
	return NULL;
}

void mc_gw_yield(struct mc_gw *g)
{
	uint64_t until;

	if (!g || !g->nthreads || !atomic_load_explicit(&g->waiting, memory_order_relaxed))
		return;
	node_unlock(g);
	until = farmd_now_ns() + MC_GW_YIELD_NS;
	while (atomic_load(&g->waiting) && farmd_now_ns() < until)
		sched_yield();
	node_lock(g);
}

/* Threads mode: the loop sleeps on the node's descriptor alone (the workers
 * have the clients), without the lock. */
static int idle_threads(struct mc_gw *g, int timeout_ms)
{
	struct pollfd pfd[2] = {{.fd = g->ffd, .events = POLLIN},
				{.fd = g->kickfd, .events = POLLIN}};
	uint64_t v;
	int n;

	if (farm_idle(g->f, 0) != 0)
		return 1;
	atomic_store(&g->node_asleep, true);
	node_unlock(g);
	n = poll(pfd, 2, timeout_ms);
	if (n > 0 && (pfd[1].revents & POLLIN) && read(g->kickfd, &v, sizeof(v)) < 0) {
		/* drained by nobody else: nothing to do */
	}
	node_lock(g);
	atomic_store(&g->node_asleep, false);
	return n > 0 ? n : 0;
}

int mc_gw_poll(struct mc_gw *g)
{
	struct epoll_event ev[MC_GW_EVENTS];
	bool node = false, stop = false;

	if (g->nthreads)
		return 0; /* the workers serve the clients */
	return dispatch(g, ev, epoll_wait(g->loop.epfd, ev, MC_GW_EVENTS, 0), &node, &stop);
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
	bool node = false, stop = false;
	int work = 0, n;

	if (g->nthreads)
		return idle_threads(g, timeout_ms);
	if (farm_idle(g->f, 0) != 0) {
		/* a timer is due: look at the clients too, without sleeping */
		n = epoll_wait(g->loop.epfd, ev, MC_GW_EVENTS, 0);
		return dispatch(g, ev, n, &node, &stop) + 1;
	}
	until = farmd_now_ns() + MC_GW_REARM_NS;
	do {
		n = epoll_wait(g->loop.epfd, ev, MC_GW_EVENTS, work ? 1 : timeout_ms);
		if (n <= 0)
			break;
		work += dispatch(g, ev, n, &node, &stop);
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

static int worker_init(struct mc_gw *g, struct gw_worker *w)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = &tag_stop};

	w->g = g;
	w->stopfd = -1;
	w->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (w->epfd < 0)
		return -errno;
	if (w == &g->loop)
		return 0;
	w->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (w->stopfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->stopfd, &ev) < 0)
		return -errno;
	return 0;
}

static int watch(int epfd, int fd, void *tag)
{
	struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};

	return epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) < 0 ? -errno : 0;
}

int mc_gw_open(struct farm *f, const struct mc_gw_opts *o, struct mc_gw **out, char *err,
	       size_t errlen)
{
	struct farm_kv_opts opts = {.flags = FARM_KV_CREATE};
	struct mc_gw *g;
	struct gw_worker *acceptor;
	int rc, shared_port = o->shared_port;

	*out = NULL;
	if (o->threads > MC_GW_MAX_THREADS) {
		snprintf(err, errlen, "at most %d gateway threads, not %u", MC_GW_MAX_THREADS,
			 o->threads);
		return -EINVAL;
	}
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->f = f;
	g->lfd = g->sfd = g->kickfd = -1;
	g->loop.epfd = g->loop.stopfd = -1;
	g->nthreads = o->threads;
	pthread_mutex_init(&g->lock, NULL);
	g->ex.max_value = FARM_KV_VAL_MAX - MC_ITEM_HDR_MAX;
	g->ex.threads = o->threads;
	g->scratch = malloc(FARM_KV_VAL_MAX);
	if (g->nthreads)
		g->w = calloc(g->nthreads, sizeof(*g->w));
	if (!g->scratch || (g->nthreads && !g->w)) {
		free(g->scratch);
		free(g);
		return -ENOMEM;
	}
	for (unsigned i = 0; i < g->nthreads; i++)
		g->w[i].epfd = g->w[i].stopfd = -1;
	rc = farm_kv_open(f, MC_GW_TABLE, &opts, &g->kv);
	if (rc < 0) {
		snprintf(err, errlen, "cannot open the key-value table '%s': %s", MC_GW_TABLE,
			 farm_strerror(rc));
		goto fail;
	}
	rc = listen_on(o->addr, o->port, false, &g->lfd, &g->port, err, errlen);
	if (rc == 0 && shared_port > 0)
		rc = listen_on(o->addr, shared_port, true, &g->sfd, &shared_port, err, errlen);
	if (rc < 0)
		goto fail;
	/* in-loop mode: one epoll set for the clients and the node; threads
	 * mode: a set per worker, the first also accepts */
	rc = worker_init(g, &g->loop);
	for (unsigned i = 0; rc == 0 && i < g->nthreads; i++)
		rc = worker_init(g, &g->w[i]);
	acceptor = g->nthreads ? &g->w[0] : &g->loop;
	g->ffd = farm_wait_fd(f);
	if (rc == 0 && g->ffd < 0)
		rc = g->ffd;
	if (rc == 0)
		rc = watch(acceptor->epfd, g->lfd, &tag_listen);
	if (rc == 0 && g->sfd >= 0)
		rc = watch(acceptor->epfd, g->sfd, &tag_shared);
	if (rc == 0 && !g->nthreads)
		rc = watch(g->loop.epfd, g->ffd, &tag_farm);
	if (rc == 0 && g->nthreads) {
		g->kickfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		rc = g->kickfd < 0 ? -errno : 0;
	}
	if (rc < 0) {
		snprintf(err, errlen, "epoll/eventfd: %s", strerror(-rc));
		goto fail;
	}
	snprintf(g->version, sizeof(g->version), "1.6.18-farm");
	g->ex.ops = &kv_ops;
	g->ex.store = g->kv;
	g->ex.scratch = g->scratch;
	g->ex.version = g->version;
	g->ex.started = unix_now();
	mc_exec_tick(&g->ex, g->ex.started);
	/* From here on the caller's thread drives the node under the lock. */
	if (g->nthreads) {
		node_lock(g);
		g->locked = true;
	}
	for (unsigned i = 0; i < g->nthreads; i++) {
		rc = -pthread_create(&g->w[i].tid, NULL, worker_main, &g->w[i]);
		if (rc < 0) {
			snprintf(err, errlen, "cannot start gateway thread %u: %s", i,
				 strerror(-rc));
			goto fail;
		}
		g->w[i].started = true;
	}
	*out = g;
	return 0;
fail:
	mc_gw_close(g);
	return rc;
}

static void worker_close(struct mc_gw *g, struct gw_worker *w)
{
	while (w->conns)
		conn_close(g, w->conns);
	if (w->epfd >= 0)
		close(w->epfd);
	if (w->stopfd >= 0)
		close(w->stopfd);
}

void mc_gw_close(struct mc_gw *g)
{
	static const uint64_t one = 1;

	if (!g)
		return;
	if (g->nthreads) {
		/* the workers finish their batch (they need the lock), then stop */
		if (g->locked)
			node_unlock(g);
		for (unsigned i = 0; i < g->nthreads; i++) {
			if (!g->w[i].started)
				continue;
			if (write(g->w[i].stopfd, &one, sizeof(one)) < 0) {
				/* cannot fail on a fresh eventfd */
			}
			pthread_join(g->w[i].tid, NULL);
		}
		for (unsigned i = 0; i < g->nthreads; i++)
			worker_close(g, &g->w[i]);
	}
	worker_close(g, &g->loop);
	if (g->lfd >= 0)
		close(g->lfd);
	if (g->sfd >= 0)
		close(g->sfd);
	if (g->kickfd >= 0)
		close(g->kickfd);
	if (g->kv)
		farm_kv_close(g->kv);
	pthread_mutex_destroy(&g->lock);
	free(g->w);
	free(g->scratch);
	free(g);
}
