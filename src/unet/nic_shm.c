/*
 * nic_shm.c - the shared-memory NIC: U-Net endpoints in processes on one host.
 *
 * The sending process plays the NIC: it takes a buffer from the receiver's
 * free queue, copies the message into it, and posts a descriptor on the
 * receiver's receive queue. No kernel call on that path.
 *
 * Protection by construction. Each channel has, at each end, a *receive
 * area*: a sealed memfd holding that channel's receive queue, free queue and
 * receive buffers, created by the receiver and handed to exactly one peer at
 * channel set-up (SCM_RIGHTS over a unix socket). The application's own part
 * of the segment is private anonymous memory that no other process can map.
 * A peer therefore sees only the buffers it may deliver into, and the
 * channel a message arrived on is known from which area it was found in:
 * the sender cannot forge it. The receiver maps its areas into one reserved
 * address range right after the application's part, so every receive
 * descriptor is an offset into "the segment" and receive is zero copy.
 *
 *   segment:  [ application part | chan 0 area | chan 1 area | ... ]
 *   area:     [ hdr | receive ring | free ring | buffers ]
 *
 * Why per-channel queues rather than one receive queue per endpoint: with
 * several senders a shared queue needs multi-producer reservation, and a
 * sender that dies mid-reservation would wedge everybody. Per-channel
 * single-producer rings isolate peers from each other (RDMA's queue pairs
 * make the same choice).
 *
 * The receive ring carries a lap tag in each slot's `chan` field (the
 * receiver fills in the real channel itself): the receiver polls the next
 * slot rather than the producer index, so a message costs one cache-line
 * transfer, not two.
 *
 * Names: an endpoint listens on the abstract unix socket "unet.shm.NAME".
 * The kernel refuses a second bind of a live name and frees the name when its
 * owner dies, so names are unique and a crashed process's name is reclaimed
 * with no stale files. The same socket, kept open per channel, tells each
 * side when its peer dies (hang-up).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "nic.h"

#define SHM_MAGIC 0x554e4554u /* "UNET" */
#define SHM_VERSION 1u
#define SHM_SOCK_PREFIX "unet.shm."
#define SHM_VA_ALIGN (2u << 20)
/* Send-queue descriptor whose channel was closed while it waited (flags the
 * application cannot set: unet_send refuses them). */
#define SHM_DF_DEAD 0x8000u

enum { MSG_HELLO = 1, MSG_WELCOME = 2, MSG_REFUSE = 3 };

/* HELLO and WELCOME carry: receive area, doorbell, and when the endpoint
 * has one, its RDMA pool and key table. */
#define SHM_NFDS 4

/* Control message on the channel socket; fds travel with SCM_RIGHTS. */
struct shm_msg {
	uint32_t magic;
	uint32_t version;
	uint32_t type;
	int32_t code; /* REFUSE: negative reason */
	char name[UNET_NAME_MAX];
	int32_t pid;
};

/* First bytes of a receive area. Geometry is written once by the owner; the
 * peer copies it into its private view at map time and never re-reads it. */
struct shm_area_hdr {
	uint32_t magic, version;
	uint32_t rq_depth, fq_size, nbufs, buf_size;
	uint64_t rq_off, fq_off, buf_off, size;
	/* Counted by the sender on the receiver's behalf. */
	_Alignas(UNET_CACHELINE) uint64_t drop_nobuf, drop_full, drop_bad;
};

struct shm_geom {
	uint32_t rq_depth, fq_size, nbufs, buf_size;
	uint64_t rq_off, fq_off, buf_off, size;
};

struct shm_chan {
	int conn;          /* control socket; hang-up = peer gone */
	int peer_efd;      /* peer's doorbell */
	int32_t peer_pid;
	char peer[UNET_NAME_MAX];

	/* Our receive area for this channel (the peer writes into it). */
	int rx_fd;
	uint8_t *rx_area; /* inside our segment reservation */
	struct unet_ring rq; /* consumer view, lap-tagged */
	struct unet_ring fq; /* producer view: buffers we give back */
	uint32_t rq_shift;
	uint8_t *held;   /* per buffer: 1 while the application owns it */
	uint64_t drop_bad; /* malformed descriptors found by us */

	/* The peer's receive area (we write into it). */
	uint8_t *tx_area;
	size_t tx_size;
	struct shm_area_hdr *phdr;
	struct unet_ring prq; /* producer view of the peer's receive ring */
	struct unet_ring pfq; /* consumer view of the peer's free ring */
	uint32_t prq_shift;
	uint8_t *pbufs;
	uint32_t pnbufs, pbuf_size;
	uint8_t *ppool;          /* the peer's RDMA pool, if it has one */
	size_t ppool_size;
	uint8_t *pkeytab;        /* ... and its key table (mapped read-only) */
	bool kick;        /* delivered since the last doorbell check */
	bool has_rx;      /* our area exists (not yet for a pending inbound) */
	bool listed;      /* in the receive poll list */
};

struct shm_ep {
	int lfd, efd, epfd;
	int pool_fd, key_fd; /* RDMA pool and key table, shared with peers */
	uint8_t *pool, *keytab;
	size_t pool_size;
	uint8_t *va;
	size_t va_size, app_span, stride;
	struct shm_geom geom; /* of our receive areas */

	uint16_t *polled; /* channels whose areas we poll */
	unsigned npolled, rr;
	uint16_t *events; /* CHAN_DOWN events not yet handed to the app */
	unsigned ev_head, ev_tail;
	uint16_t *kicks;  /* channels delivered to in this tx batch */
	unsigned nkicks;
	uint32_t idle;
	bool armed;

	/* chan_open in progress: whom we are dialling, and an inbound HELLO
	 * from that same peer, parked outside the slot table until the
	 * simultaneous-open race is decided (see accept_all). */
	const char *dialling;
	struct shm_chan *parked;
};

#define EV_LISTEN 0xffffffffu
#define EV_DOORBELL 0xfffffffeu

static uint32_t ilog2(uint32_t v)
{
	return 31u - (uint32_t)__builtin_clz(v);
}

static uint32_t pow2_ge(uint32_t v)
{
	return v <= 1 ? 1 : 1u << (32 - __builtin_clz(v - 1));
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

static inline uint16_t lap_tag(uint32_t idx, uint32_t shift)
{
	return (uint16_t)((idx >> shift) + 1);
}

static void geom_compute(struct shm_geom *g, uint32_t rq_depth, uint32_t nbufs,
			 uint32_t buf_size)
{
	long page = sysconf(_SC_PAGESIZE);

	g->rq_depth = rq_depth;
	g->fq_size = pow2_ge(nbufs);
	g->nbufs = nbufs;
	g->buf_size = buf_size;
	g->rq_off = align_up(sizeof(struct shm_area_hdr), UNET_CACHELINE);
	g->fq_off = align_up(g->rq_off + unet_ring__bytes(rq_depth, sizeof(struct unet_desc)),
			     UNET_CACHELINE);
	g->buf_off = align_up(g->fq_off + unet_ring__bytes(g->fq_size, sizeof(uint64_t)),
			      (uint64_t)page);
	g->size = align_up(g->buf_off + (uint64_t)nbufs * buf_size, (uint64_t)page);
}

/* ---- control socket helpers ------------------------------------------- */

static int sock_addr(const char *name, struct sockaddr_un *sa, socklen_t *len)
{
	size_t n = strlen(name);

	if (sizeof(SHM_SOCK_PREFIX) + n > sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	memcpy(sa->sun_path + 1, SHM_SOCK_PREFIX, sizeof(SHM_SOCK_PREFIX) - 1);
	memcpy(sa->sun_path + sizeof(SHM_SOCK_PREFIX), name, n);
	*len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + sizeof(SHM_SOCK_PREFIX) + n);
	return 0;
}

static int msg_send(int fd, uint32_t type, int32_t code, const char *name, const int *fds,
		    int nfds)
{
	struct shm_msg m = {.magic = SHM_MAGIC, .version = SHM_VERSION, .type = type,
			    .code = code, .pid = (int32_t)getpid()};
	union {
		char buf[CMSG_SPACE(SHM_NFDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = &m, .iov_len = sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1};

	/* m is zeroed: the name stays NUL-terminated (callers check its
	 * length against UNET_NAME_MAX first). */
	size_t nl = strnlen(name, sizeof(m.name) - 1);
	memcpy(m.name, name, nl);
	if (nfds) {
		memset(&u, 0, sizeof(u));
		mh.msg_control = u.buf;
		mh.msg_controllen = CMSG_SPACE((size_t)nfds * sizeof(int));
		struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN((size_t)nfds * sizeof(int));
		memcpy(CMSG_DATA(c), fds, (size_t)nfds * sizeof(int));
	}
	return sendmsg(fd, &mh, MSG_NOSIGNAL) == (ssize_t)sizeof(m) ? 0 : -ECONNRESET;
}

static void close_fds(int fds[SHM_NFDS])
{
	for (int i = 0; i < SHM_NFDS; i++)
		if (fds[i] >= 0) {
			close(fds[i]);
			fds[i] = -1;
		}
}

/* Receive one control message. Returns 1 with *m filled and up to
 * SHM_NFDS fds (-1 where absent), 0 on orderly hang-up, -EAGAIN when
 * nothing is there, -EBADMSG on garbage. */
static int msg_recv(int fd, struct shm_msg *m, int fds[SHM_NFDS])
{
	union {
		char buf[CMSG_SPACE(SHM_NFDS * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {.iov_base = m, .iov_len = sizeof(*m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	ssize_t n;

	for (int i = 0; i < SHM_NFDS; i++)
		fds[i] = -1;
	n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	/* A peer that closed with our message unread makes the kernel report
	 * ECONNRESET ahead of what the peer queued before (a REFUSE): once the
	 * error is taken, the queued message can still be read. */
	if (n < 0 && errno == ECONNRESET)
		n = recvmsg(fd, &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -EAGAIN : 0;
	if (n == 0)
		return 0;
	for (struct cmsghdr *c = CMSG_FIRSTHDR(&mh); c; c = CMSG_NXTHDR(&mh, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		int got[SHM_NFDS];
		if (k > SHM_NFDS)
			k = SHM_NFDS; /* cannot happen: the control buffer holds no more */
		memcpy(got, CMSG_DATA(c), (size_t)k * sizeof(int));
		for (int i = 0; i < k; i++) {
			if (fds[i] < 0)
				fds[i] = got[i];
			else
				close(got[i]);
		}
	}
	if (n != (ssize_t)sizeof(*m) || (mh.msg_flags & MSG_TRUNC) || m->magic != SHM_MAGIC ||
	    m->version != SHM_VERSION || memchr(m->name, 0, sizeof(m->name)) == NULL) {
		close_fds(fds);
		return -EBADMSG;
	}
	return 1;
}

static int wait_readable(int fd, int ms)
{
	struct pollfd p = {.fd = fd, .events = POLLIN};
	return poll(&p, 1, ms) > 0 ? 0 : -ETIMEDOUT;
}

/* ---- receive areas ------------------------------------------------------ */

/* Create our receive area for channel `id` and map it into its window. */
static int area_create(struct unet_ep *ep, unsigned id, struct shm_chan *c)
{
	struct shm_ep *se = ep->priv;
	const struct shm_geom *g = &se->geom;
	struct shm_area_hdr *h;
	uint8_t *at = se->va + se->app_span + (size_t)id * se->stride;
	uint32_t idx;
	int fd;

	fd = memfd_create("unet-rx", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (fd < 0)
		return -errno;
	if (ftruncate(fd, (off_t)g->size) < 0 ||
	    fcntl(fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail;
	if (mmap(at, g->size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0) == MAP_FAILED)
		goto fail;
	c->held = calloc(g->nbufs ? g->nbufs : 1, 1);
	if (!c->held) {
		errno = ENOMEM;
		goto fail_map;
	}
	h = (struct shm_area_hdr *)at;
	*h = (struct shm_area_hdr){.magic = SHM_MAGIC, .version = SHM_VERSION,
				   .rq_depth = g->rq_depth, .fq_size = g->fq_size,
				   .nbufs = g->nbufs, .buf_size = g->buf_size,
				   .rq_off = g->rq_off, .fq_off = g->fq_off,
				   .buf_off = g->buf_off, .size = g->size};
	unet_ring_attach(&c->rq, at + g->rq_off, g->rq_depth, sizeof(struct unet_desc), 1);
	unet_ring_attach(&c->fq, at + g->fq_off, g->fq_size, sizeof(uint64_t), 1);
	c->rq.pub = 0;
	c->fq.pub = 0;
	c->rq_shift = ilog2(g->rq_depth);
	/* Every buffer starts on the free queue. */
	unet_ring_prod__reserve(&c->fq, g->nbufs, &idx);
	for (uint32_t b = 0; b < g->nbufs; b++)
		*(uint64_t *)unet_ring__slot(&c->fq, idx + b) = (uint64_t)b * g->buf_size;
	unet_ring_prod__submit(&c->fq, g->nbufs);
	c->rx_fd = fd;
	c->rx_area = at;
	c->has_rx = true;
	return 0;
fail_map:
	mmap(at, g->size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE,
	     -1, 0);
fail:;
	int e = -errno;
	close(fd);
	return e;
}

static void area_destroy(struct shm_ep *se, struct shm_chan *c)
{
	if (!c->has_rx)
		return;
	/* Put the reservation back so the window cannot be reused by mmap. */
	mmap(c->rx_area, se->geom.size, PROT_NONE,
	     MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED | MAP_NORESERVE, -1, 0);
	close(c->rx_fd);
	free(c->held);
	c->held = NULL;
	c->has_rx = false;
}

/* Map the peer's area from its fd, refusing anything we cannot trust the
 * shape of: unsealed (it could shrink under us and SIGBUS), or with a
 * geometry that does not fit its size. */
static int peer_map(struct shm_chan *c, int fd)
{
	struct shm_area_hdr h;
	struct shm_geom g;
	struct stat st;
	void *p;
	int seals = fcntl(fd, F_GET_SEALS);

	if (seals < 0 || !(seals & F_SEAL_SHRINK) || fstat(fd, &st) < 0 ||
	    st.st_size < (off_t)sizeof(h) || st.st_size > (off_t)(1ull << 36))
		return -EBADMSG;
	p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return -errno;
	memcpy(&h, p, sizeof(h));
	if (h.magic != SHM_MAGIC || h.version != SHM_VERSION || h.rq_depth == 0 ||
	    (h.rq_depth & (h.rq_depth - 1)) || h.rq_depth > (1u << 20) || h.nbufs > (1u << 20) ||
	    h.buf_size > (64u << 20) || h.buf_size == 0 || h.buf_size % 64 != 0)
		goto bad; /* a size of 0 would divide by zero in deliver() */
	geom_compute(&g, h.rq_depth, h.nbufs, h.buf_size);
	if (g.fq_size != h.fq_size || g.rq_off != h.rq_off || g.fq_off != h.fq_off ||
	    g.buf_off != h.buf_off || g.size != h.size || g.size > (uint64_t)st.st_size)
		goto bad;
	c->tx_area = p;
	c->tx_size = (size_t)st.st_size;
	c->phdr = p;
	unet_ring_attach(&c->prq, (uint8_t *)p + g.rq_off, g.rq_depth, sizeof(struct unet_desc), 0);
	unet_ring_attach(&c->pfq, (uint8_t *)p + g.fq_off, g.fq_size, sizeof(uint64_t), 0);
	c->prq.pub = c->prq.cached_prod;
	c->pfq.pub = c->pfq.cached_cons;
	c->prq_shift = ilog2(g.rq_depth);
	c->pbufs = (uint8_t *)p + g.buf_off;
	c->pnbufs = g.nbufs;
	c->pbuf_size = g.buf_size;
	return 0;
bad:
	munmap(p, (size_t)st.st_size);
	return -EBADMSG;
}

/* Map the peer's RDMA pool (read-write) and key table (read-only; its fd is
 * sealed against writable mappings, so we could not map it otherwise). */
static int peer_map_pool(struct shm_chan *c, int pool_fd, int key_fd)
{
	struct stat ps, ks;
	int seals = fcntl(pool_fd, F_GET_SEALS), kseals = fcntl(key_fd, F_GET_SEALS);

	if (seals < 0 || !(seals & F_SEAL_SHRINK) || kseals < 0 || !(kseals & F_SEAL_SHRINK) ||
	    fstat(pool_fd, &ps) < 0 || fstat(key_fd, &ks) < 0 ||
	    ks.st_size != UNET_KEYTAB_BYTES)
		return -EBADMSG;
	c->ppool = mmap(NULL, (size_t)ps.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, pool_fd, 0);
	if (c->ppool == MAP_FAILED) {
		c->ppool = NULL;
		return -errno;
	}
	c->ppool_size = (size_t)ps.st_size;
	c->pkeytab = mmap(NULL, UNET_KEYTAB_BYTES, PROT_READ, MAP_SHARED, key_fd, 0);
	if (c->pkeytab == MAP_FAILED) {
		c->pkeytab = NULL;
		return -errno;
	}
	return 0;
}

/* Take the peer's side of a channel from its HELLO/WELCOME. Consumes all
 * fds (the mappings keep what is needed). */
static int peer_attach(struct shm_chan *c, const struct shm_msg *m, int fds[SHM_NFDS])
{
	int rc = -EBADMSG;

	if (fds[0] < 0 || fds[1] < 0 || (fds[2] < 0) != (fds[3] < 0))
		goto out;
	rc = peer_map(c, fds[0]);
	if (rc == 0 && fds[2] >= 0)
		rc = peer_map_pool(c, fds[2], fds[3]);
	/* The doorbell is whatever the peer sent: if it could block (a full
	 * pipe), ringing it would hang our sends. */
	if (rc == 0 && fcntl(fds[1], F_SETFL, O_NONBLOCK) < 0)
		rc = -EBADMSG;
	if (rc == 0) {
		c->peer_efd = fds[1];
		fds[1] = -1;
		c->peer_pid = m->pid;
		strcpy(c->peer, m->name);
	}
out:
	close_fds(fds);
	return rc;
}

/* Undo peer_attach's mappings. */
static void chan_release_peer(struct shm_chan *c)
{
	if (c->tx_area)
		munmap(c->tx_area, c->tx_size);
	if (c->ppool)
		munmap(c->ppool, c->ppool_size);
	if (c->pkeytab)
		munmap(c->pkeytab, UNET_KEYTAB_BYTES);
	c->tx_area = c->ppool = c->pkeytab = NULL;
}

/* What we hand a peer: receive area, doorbell, and our pool if any. */
static int my_fds(const struct shm_ep *se, const struct shm_chan *c, int fds[SHM_NFDS])
{
	fds[0] = c->rx_fd;
	fds[1] = se->efd;
	if (se->pool_fd < 0)
		return 2;
	fds[2] = se->pool_fd;
	fds[3] = se->key_fd;
	return 4;
}

/* ---- channel bookkeeping ------------------------------------------------ */

static void chan_free(struct unet_ep *ep, unsigned id)
{
	struct shm_ep *se = ep->priv;
	struct shm_chan *c = ep->chans[id].priv;

	if (!c)
		return;
	if (c->listed) {
		for (unsigned i = 0; i < se->npolled; i++)
			if (se->polled[i] == id) {
				se->polled[i] = se->polled[--se->npolled];
				break;
			}
	}
	/* Drop a queued event for this slot: the slot may be reused. Remove it
	 * rather than mark it, so the queue (max_chans + 1 entries) never holds
	 * more than one event per slot and cannot wrap onto itself. */
	unsigned qn = ep->attr.max_chans + 1, kept = se->ev_head;
	for (unsigned i = se->ev_head; i != se->ev_tail; i = (i + 1) % qn)
		if (se->events[i] != id) {
			se->events[kept] = se->events[i];
			kept = (kept + 1) % qn;
		}
	se->ev_tail = kept;
	if (c->conn >= 0) {
		epoll_ctl(se->epfd, EPOLL_CTL_DEL, c->conn, NULL);
		close(c->conn);
	}
	if (c->peer_efd >= 0)
		close(c->peer_efd);
	chan_release_peer(c);
	if (c->has_rx) { /* keep the channel's drop counts in the endpoint's */
		const struct shm_area_hdr *h = (const struct shm_area_hdr *)c->rx_area;
		ep->st.rx_drop_nobuf += h->drop_nobuf;
		ep->st.rx_drop_full += h->drop_full;
		ep->st.rx_drop_bad += h->drop_bad + c->drop_bad;
	}
	area_destroy(se, c);
	free(c);
	memset(&ep->chans[id], 0, sizeof(ep->chans[id]));
}

static struct shm_chan *chan_new(void)
{
	struct shm_chan *c = calloc(1, sizeof(*c));

	if (c) {
		c->conn = -1;
		c->peer_efd = -1;
		c->rx_fd = -1;
	}
	return c;
}

static void chan_down(struct unet_ep *ep, unsigned id)
{
	struct shm_ep *se = ep->priv;
	struct shm_chan *c = ep->chans[id].priv;

	if (ep->chans[id].state == CHAN_OPEN) {
		ep->chans[id].state = CHAN_DOWN;
		epoll_ctl(se->epfd, EPOLL_CTL_DEL, c->conn, NULL);
		se->events[se->ev_tail] = (uint16_t)id;
		se->ev_tail = (se->ev_tail + 1) % (ep->attr.max_chans + 1);
	} else if (ep->chans[id].state == CHAN_PENDING && !c->has_rx) {
		chan_free(ep, id); /* an inbound hello nobody answered yet */
	}
}

/* The peer on this channel: still there? Costs a syscall; used only when a
 * delivery fails, which is when a dead receiver shows. */
static bool peer_alive(struct unet_ep *ep, unsigned id)
{
	struct shm_chan *c = ep->chans[id].priv;
	struct pollfd p = {.fd = c->conn, .events = POLLIN | POLLRDHUP};

	if (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR))) {
		chan_down(ep, id);
		return false;
	}
	return true;
}

/* Has the other end of a control connection hung up? (Queued data may
 * remain; this is about the sender.) */
static bool conn_gone(int fd)
{
	struct pollfd p = {.fd = fd, .events = POLLRDHUP};

	return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP | POLLERR));
}

static int chan_finish(struct unet_ep *ep, unsigned id)
{
	struct shm_ep *se = ep->priv;
	struct shm_chan *c = ep->chans[id].priv;
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = id};

	/* An inbound connection is watched from its HELLO on, maybe under
	 * another slot's tag (simultaneous open): retag it. */
	if (epoll_ctl(se->epfd, EPOLL_CTL_ADD, c->conn, &ev) < 0 &&
	    (errno != EEXIST || epoll_ctl(se->epfd, EPOLL_CTL_MOD, c->conn, &ev) < 0))
		return -errno;
	strcpy(ep->chans[id].remote, c->peer);
	ep->chans[id].mtu = c->pbuf_size;
	se->polled[se->npolled++] = (uint16_t)id;
	c->listed = true;
	return (int)id;
}

/* A peer side that never got a slot (parked or refused). */
static void chan_discard(struct shm_chan *c)
{
	if (c->conn >= 0)
		close(c->conn);
	if (c->peer_efd >= 0)
		close(c->peer_efd);
	chan_release_peer(c);
	free(c);
}

/* Give an inbound HELLO a slot until the application opens the channel.
 * A HELLO whose sender already hung up (it timed out, or won a simultaneous
 * open on its own connection) is stale: answering it later would fail the
 * application's open. The live ones are watched so that a dialler giving up
 * frees its slot (chan_down). */
static int pending_add(struct unet_ep *ep, struct shm_chan *c)
{
	struct shm_ep *se = ep->priv;
	unsigned id;

	if (conn_gone(c->conn)) {
		chan_discard(c);
		return 0;
	}
	for (id = 0; id < ep->attr.max_chans; id++)
		if (ep->chans[id].state == CHAN_FREE)
			break;
	if (id == ep->attr.max_chans) {
		msg_send(c->conn, MSG_REFUSE, -EMFILE, ep->name, NULL, 0);
		chan_discard(c);
		return -EMFILE;
	}
	ep->chans[id].state = CHAN_PENDING;
	ep->chans[id].priv = c;
	strcpy(ep->chans[id].remote, c->peer);
	struct epoll_event ev = {.events = EPOLLIN | EPOLLRDHUP, .data.u32 = id};
	if (epoll_ctl(se->epfd, EPOLL_CTL_ADD, c->conn, &ev) < 0) {
		chan_free(ep, id);
		return -errno;
	}
	return 0;
}

/* The race is decided: a parked HELLO is now stale or a new open. */
static void unpark(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;
	struct shm_chan *c = se->parked;

	se->parked = NULL;
	if (c)
		pending_add(ep, c);
}

/* Accept every waiting connection and read its HELLO. A HELLO from the peer
 * we are dialling ourselves is the simultaneous-open race: it is parked, and
 * the endpoint with the larger name adopts it in place of its own outbound
 * connection, while the smaller one waits for the WELCOME to its own HELLO.
 * The parked HELLO may also be the peer's *next* open (several channels
 * between one pair), which is why the smaller side neither refuses it nor
 * answers it; and it needs no slot, so a race works with one slot free. */
static void accept_all(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;

	for (;;) {
		struct shm_msg m;
		struct ucred cred;
		socklen_t clen = sizeof(cred);
		int fds[SHM_NFDS], fd, rc;
		unsigned id;

		fd = accept4(se->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (fd < 0)
			return;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &clen) < 0 ||
		    (cred.uid != getuid() && cred.uid != 0)) {
			msg_send(fd, MSG_REFUSE, -EPERM, ep->name, NULL, 0);
			close(fd);
			continue;
		}
		/* The HELLO follows connect() at once; give it a moment. */
		rc = wait_readable(fd, 200) == 0 ? msg_recv(fd, &m, fds) : -ETIMEDOUT;
		if (rc != 1 || m.type != MSG_HELLO) {
			if (rc == 1)
				close_fds(fds);
			close(fd);
			continue;
		}
		bool park = se->dialling && !se->parked && strcmp(m.name, se->dialling) == 0;
		for (id = 0; id < ep->attr.max_chans; id++)
			if (ep->chans[id].state == CHAN_FREE)
				break;
		struct shm_chan *c = park || id < ep->attr.max_chans ? chan_new() : NULL;
		rc = c ? peer_attach(c, &m, fds) : -EMFILE;
		if (rc < 0) {
			if (!c)
				close_fds(fds);
			msg_send(fd, MSG_REFUSE, rc, ep->name, NULL, 0);
			if (c)
				chan_release_peer(c);
			free(c);
			close(fd);
			continue;
		}
		c->conn = fd;
		if (park && !conn_gone(fd))
			se->parked = c;
		else
			pending_add(ep, c);
	}
}

/* The RDMA pool: sparse memfd, sealed so no peer can shrink it under us.
 * The key table is sealed against *future* writable mappings after we map
 * it: we keep writing it, peers can only map it read-only. */
static int pool_create(struct shm_ep *se, size_t size)
{
	size = (size_t)align_up(size, (uint64_t)sysconf(_SC_PAGESIZE));
	se->pool_fd = memfd_create("unet-rdma-pool", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	se->key_fd = memfd_create("unet-rdma-keys", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (se->pool_fd < 0 || se->key_fd < 0 || ftruncate(se->pool_fd, (off_t)size) < 0 ||
	    ftruncate(se->key_fd, UNET_KEYTAB_BYTES) < 0 ||
	    fcntl(se->pool_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		return -errno;
	se->pool = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, se->pool_fd, 0);
	if (se->pool == MAP_FAILED) {
		se->pool = NULL;
		return -errno;
	}
	se->pool_size = size;
	se->keytab = mmap(NULL, UNET_KEYTAB_BYTES, PROT_READ | PROT_WRITE, MAP_SHARED,
			  se->key_fd, 0);
	if (se->keytab == MAP_FAILED) {
		se->keytab = NULL;
		return -errno;
	}
	if (fcntl(se->key_fd, F_ADD_SEALS,
		  F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_FUTURE_WRITE | F_SEAL_SEAL) < 0)
		return -errno;
	return 0;
}

static void pool_destroy(struct shm_ep *se)
{
	if (se->pool)
		munmap(se->pool, se->pool_size);
	if (se->keytab)
		munmap(se->keytab, UNET_KEYTAB_BYTES);
	if (se->pool_fd >= 0)
		close(se->pool_fd);
	if (se->key_fd >= 0)
		close(se->key_fd);
	se->pool = se->keytab = NULL;
	se->pool_fd = se->key_fd = -1;
}

static int shm_pool(struct unet_ep *ep, int chan, struct unet_pool_view *v)
{
	struct shm_ep *se = ep->priv;

	if (chan < 0) {
		if (!se->pool)
			return -EOPNOTSUPP;
		*v = (struct unet_pool_view){se->pool, se->pool_size, se->keytab};
		return 0;
	}
	if ((unsigned)chan >= ep->attr.max_chans || ep->chans[chan].state != CHAN_OPEN)
		return -ENOTCONN;
	const struct shm_chan *c = ep->chans[chan].priv;
	if (!c->ppool)
		return -EOPNOTSUPP;
	*v = (struct unet_pool_view){c->ppool, c->ppool_size, c->pkeytab};
	return 0;
}

/* ---- ops ---------------------------------------------------------------- */

static int shm_ep_create(struct unet_ep *ep, const char *name)
{
	struct shm_ep *se = calloc(1, sizeof(*se));
	struct sockaddr_un sa;
	socklen_t salen;
	unsigned n = ep->attr.max_chans;
	int rc;

	if (!se)
		return -ENOMEM;
	se->lfd = se->efd = se->epfd = se->pool_fd = se->key_fd = -1;
	ep->priv = se;
	rc = sock_addr(name, &sa, &salen);
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	se->polled = calloc(n, sizeof(*se->polled));
	se->events = calloc(n + 1, sizeof(*se->events));
	se->kicks = calloc(n, sizeof(*se->kicks));
	if (!se->polled || !se->events || !se->kicks)
		goto fail;
	se->lfd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (se->lfd < 0 || bind(se->lfd, (struct sockaddr *)&sa, salen) < 0 ||
	    listen(se->lfd, 64) < 0) {
		rc = -errno;
		goto fail;
	}
	se->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	se->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (se->efd < 0 || se->epfd < 0) {
		rc = -errno;
		goto fail;
	}
	struct epoll_event ev = {.events = EPOLLIN, .data.u32 = EV_LISTEN};
	epoll_ctl(se->epfd, EPOLL_CTL_ADD, se->lfd, &ev);
	ev.data.u32 = EV_DOORBELL;
	epoll_ctl(se->epfd, EPOLL_CTL_ADD, se->efd, &ev);

	geom_compute(&se->geom, ep->attr.rq_depth, ep->attr.rx_bufs, ep->attr.rx_buf_size);
	se->app_span = align_up(ep->attr.seg_size, SHM_VA_ALIGN);
	se->stride = align_up(se->geom.size, SHM_VA_ALIGN);
	se->va_size = se->app_span + (size_t)n * se->stride;
	se->va = mmap(NULL, se->va_size, PROT_NONE,
		      MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (se->va == MAP_FAILED) {
		se->va = NULL;
		rc = -ENOMEM;
		goto fail;
	}
	if (mprotect(se->va, ep->attr.seg_size, PROT_READ | PROT_WRITE) < 0) {
		rc = -errno;
		goto fail;
	}
	if (ep->attr.rdma_pool) {
		rc = pool_create(se, ep->attr.rdma_pool);
		if (rc < 0)
			goto fail;
	}
	ep->seg = se->va;
	ep->seg_size = ep->attr.seg_size;
	ep->fd = se->epfd;
	return 0;
fail:
	pool_destroy(se);
	if (se->va)
		munmap(se->va, se->va_size);
	if (se->lfd >= 0)
		close(se->lfd);
	if (se->efd >= 0)
		close(se->efd);
	if (se->epfd >= 0)
		close(se->epfd);
	free(se->polled);
	free(se->events);
	free(se->kicks);
	free(se);
	ep->priv = NULL;
	return rc;
}

static void shm_ep_destroy(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;

	for (unsigned i = 0; i < ep->attr.max_chans; i++)
		chan_free(ep, i);
	pool_destroy(se);
	munmap(se->va, se->va_size);
	close(se->lfd);
	close(se->efd);
	close(se->epfd);
	free(se->polled);
	free(se->events);
	free(se->kicks);
	free(se);
}

static int shm_chan_open(struct unet_ep *ep, unsigned id, const char *remote, int timeout_ms)
{
	struct shm_ep *se = ep->priv;
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : unet__now_ns() + (uint64_t)timeout_ms * 1000000ull;
	struct sockaddr_un sa;
	socklen_t salen;
	struct shm_chan *c;
	int rc, fds[SHM_NFDS], nfds;

	if (strlen(remote) >= UNET_NAME_MAX)
		return -ENAMETOOLONG;
	if (strcmp(remote, ep->name) == 0)
		return -EINVAL; /* a channel pairs two endpoints; ours would race itself */
	rc = sock_addr(remote, &sa, &salen);
	if (rc < 0)
		return rc;

	/* The peer may have dialled us already: answer its HELLO. */
	accept_all(ep);
	for (unsigned j = 0; j < ep->attr.max_chans; j++) {
		c = ep->chans[j].priv;
		if (ep->chans[j].state != CHAN_PENDING || !c || c->has_rx ||
		    strcmp(c->peer, remote) != 0)
			continue;
		if (conn_gone(c->conn)) { /* that dialler gave up: look further, or dial */
			chan_free(ep, j);
			continue;
		}
		rc = area_create(ep, j, c);
		if (rc < 0) {
			chan_free(ep, j);
			return rc;
		}
		nfds = my_fds(se, c, fds);
		if (msg_send(c->conn, MSG_WELCOME, 0, ep->name, fds, nfds) < 0) {
			chan_free(ep, j); /* it gave up just now */
			continue;
		}
		return chan_finish(ep, j);
	}
	/* Zero timeout: answer a pending open only. A dial given up at once
	 * would leave the peer a dead hand-shake in a channel slot (and map
	 * our areas there) every time it is tried. */
	if (timeout_ms == 0)
		return -ENOENT;

	/* Dial. accept_all() may have taken the caller's slot; find another. */
	for (id = 0; id < ep->attr.max_chans; id++)
		if (ep->chans[id].state == CHAN_FREE)
			break;
	if (id == ep->attr.max_chans)
		return -EMFILE;
	c = chan_new();
	if (!c)
		return -ENOMEM;
	ep->chans[id].state = CHAN_PENDING;
	ep->chans[id].priv = c;
	rc = area_create(ep, id, c);
	if (rc < 0)
		goto fail;
	se->dialling = remote;
	for (;;) { /* connect, retrying while the peer has not created its endpoint */
		/* Non-blocking: a blocking connect() to a peer whose listen queue
		 * is full (it does not service its endpoint) would ignore our
		 * deadline. A full queue means alive but not answering. */
		c->conn = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (c->conn < 0) {
			rc = -errno;
			goto fail;
		}
		if (connect(c->conn, (struct sockaddr *)&sa, salen) == 0)
			break;
		rc = errno == ECONNREFUSED || errno == ENOENT ? -ENOENT
		     : errno == EAGAIN			     ? -ETIMEDOUT
							     : -errno;
		close(c->conn);
		c->conn = -1;
		if ((rc != -ENOENT && rc != -ETIMEDOUT) || unet__now_ns() >= deadline)
			goto fail;
		accept_all(ep);
		usleep(1000);
	}
	nfds = my_fds(se, c, fds);
	rc = msg_send(c->conn, MSG_HELLO, 0, ep->name, fds, nfds);
	if (rc < 0) {
		/* Refused before it read our HELLO (another uid): say why. */
		struct shm_msg m;
		if (msg_recv(c->conn, &m, fds) == 1) {
			close_fds(fds);
			if (m.type == MSG_REFUSE && m.code < 0)
				rc = m.code;
		}
		goto fail;
	}
	for (;;) {
		struct pollfd p[2] = {{.fd = c->conn, .events = POLLIN},
				      {.fd = se->lfd, .events = POLLIN}};
		struct shm_msg m;
		uint64_t now = unet__now_ns();

		if (now >= deadline) {
			rc = -ETIMEDOUT;
			goto fail;
		}
		uint64_t left = (deadline - now) / 1000000 + 1;
		int wait = left > 100 ? 100 : (int)left;
		if (c->conn >= 0)
			poll(p, 2, wait);
		else
			poll(&p[1], 1, wait); /* race lost: only the listener matters */
		accept_all(ep);
		/* Our own connection first: a WELCOME there means the peer
		 * answered our HELLO, and what we parked is its next open. It
		 * sent that WELCOME before dialling again, and we parked the
		 * dial before reading, so the order cannot fool us. */
		rc = c->conn >= 0 ? msg_recv(c->conn, &m, fds) : -EAGAIN;
		if (rc == -EAGAIN && se->parked && strcmp(ep->name, remote) > 0) {
			/* Both dialled; the larger name adopts the peer's connection
			 * into slot id and drops its own. */
			struct shm_chan *in = se->parked;
			struct shm_chan mine = *c;
			if (mine.conn >= 0)
				close(mine.conn);
			*c = *in; /* the peer's side comes from the inbound HELLO */
			c->rx_fd = mine.rx_fd;
			c->rx_area = mine.rx_area;
			c->rq = mine.rq;
			c->fq = mine.fq;
			c->rq_shift = mine.rq_shift;
			c->held = mine.held;
			c->has_rx = mine.has_rx;
			free(in);
			se->parked = NULL;
			nfds = my_fds(se, c, fds);
			rc = msg_send(c->conn, MSG_WELCOME, 0, ep->name, fds, nfds);
			if (rc < 0)
				goto fail;
			break;
		}
		if (rc == -EAGAIN)
			continue;
		if (rc == 1 && m.type == MSG_WELCOME) {
			rc = peer_attach(c, &m, fds);
			if (rc < 0)
				goto fail;
			break;
		}
		if (rc == 1)
			close_fds(fds);
		rc = rc == 1 && m.type == MSG_REFUSE && m.code < 0 ? m.code
		     : rc == 0				    ? -ECONNRESET
							    : -EBADMSG;
		goto fail;
	}
	se->dialling = NULL;
	unpark(ep);
	return chan_finish(ep, id);
fail:
	se->dialling = NULL;
	unpark(ep);
	chan_free(ep, id);
	return rc;
}

static void shm_chan_close(struct unet_ep *ep, unsigned id)
{
	/* Sends still queued for this channel (held back by a full completion
	 * queue) complete with -ENOTCONN, never reach the next channel to use
	 * slot id (another peer, maybe with smaller buffers). */
	for (uint32_t i = ep->sq_nic.cached_cons; i != ep->sq.pub; i++) {
		struct unet_desc *d = unet_ring__slot(&ep->sq_nic, i);
		if (d->chan == id)
			d->flags |= SHM_DF_DEAD;
	}
	chan_free(ep, id);
}

/* Deliver one descriptor into the peer's area. */
static int deliver(struct unet_ep *ep, struct shm_chan *c, const struct unet_desc *d)
{
	struct unet_desc *s;
	uint32_t ridx, fidx;

	if (unet_ring_prod__reserve(&c->prq, 1, &ridx) == 0) {
		__atomic_fetch_add(&c->phdr->drop_full, 1, __ATOMIC_RELAXED);
		return -ENOSPC;
	}
	s = unet_ring__slot(&c->prq, ridx);
	if (d->flags & UNET_DF_INLINE) {
		s->off = 0;
		s->flags = UNET_DF_INLINE;
		memcpy(s->data, d->data, d->len);
	} else {
		if (unet_ring_cons__peek(&c->pfq, 1, &fidx) == 0) {
			unet_ring_prod__cancel(&c->prq, 1);
			__atomic_fetch_add(&c->phdr->drop_nobuf, 1, __ATOMIC_RELAXED);
			return -ENOBUFS;
		}
		uint64_t rel = *(volatile uint64_t *)unet_ring__slot(&c->pfq, fidx);
		unet_ring_cons__release(&c->pfq, 1);
		if (rel % c->pbuf_size != 0 || rel / c->pbuf_size >= c->pnbufs) {
			/* The receiver handed us a bogus buffer: its loss. */
			unet_ring_prod__cancel(&c->prq, 1);
			__atomic_fetch_add(&c->phdr->drop_bad, 1, __ATOMIC_RELAXED);
			return -EBADMSG;
		}
		memcpy(c->pbufs + rel, ep->seg + d->off, d->len);
		s->off = rel;
		s->flags = 0;
	}
	s->len = d->len;
	__atomic_store_n(&s->chan, lap_tag(ridx, c->prq_shift), __ATOMIC_RELEASE);
	unet_ring_prod__submit(&c->prq, 1);
	c->kick = true;
	return 0;
}

static void shm_tx(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;
	uint32_t idx, n, done;

	n = unet_ring_cons__peek(&ep->sq_nic, ep->attr.sq_depth, &idx);
	for (done = 0; done < n; done++) {
		const struct unet_desc *d = unet_ring__slot(&ep->sq_nic, idx + done);
		bool inl = d->flags & UNET_DF_INLINE;
		struct unet_chan *ch = &ep->chans[d->chan];
		struct shm_chan *c = ch->priv;
		int st;

		if (!inl && !unet__comp_room(ep))
			break; /* stall until the application reaps completions */
		if (ch->state != CHAN_OPEN || (d->flags & SHM_DF_DEAD)) {
			st = ch->state == CHAN_DOWN && !(d->flags & SHM_DF_DEAD) ? -ECONNRESET
										 : -ENOTCONN;
		} else {
			bool first = !c->kick;
			st = deliver(ep, c, d);
			if (st == 0 && first)
				se->kicks[se->nkicks++] = d->chan;
			else if (st < 0 && !peer_alive(ep, d->chan))
				st = -ECONNRESET;
		}
		if (st == 0) {
			ep->st.tx_msgs++;
			ep->st.tx_bytes += d->len;
			ep->st.tx_inline += inl;
		} else {
			ep->st.tx_dropped++;
		}
		if (!inl)
			unet__complete(ep, d, st);
	}
	if (done < n)
		unet_ring_cons__cancel(&ep->sq_nic, n - done);
	if (done)
		unet_ring_cons__release(&ep->sq_nic, done);
	if (se->nkicks) {
		/* Dekker with shm_arm: our slot stores before their flag load. */
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		for (unsigned i = 0; i < se->nkicks; i++) {
			struct shm_chan *c = ep->chans[se->kicks[i]].priv;
			c->kick = false;
			if (__atomic_load_n(&c->prq.hdr->flags, __ATOMIC_RELAXED) &
			    UNET_RING_NEED_WAKEUP) {
				uint64_t one = 1;
				if (write(c->peer_efd, &one, sizeof(one)) < 0) {
					/* counter saturated: the peer is awake anyway */
				}
			}
		}
		se->nkicks = 0;
	}
}

static void disarm(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;

	for (unsigned i = 0; i < se->npolled; i++) {
		struct shm_chan *c = ep->chans[se->polled[i]].priv;
		__atomic_store_n(&c->rq.hdr->flags, 0, __ATOMIC_RELAXED);
	}
	se->armed = false;
}

/* Take messages from one channel's receive ring. */
static unsigned chan_rx(struct unet_ep *ep, unsigned id, struct unet_desc *d, unsigned max)
{
	struct shm_ep *se = ep->priv;
	struct shm_chan *c = ep->chans[id].priv;
	const struct shm_geom *g = &se->geom;
	uint64_t area_off = se->app_span + (uint64_t)id * se->stride + g->buf_off;
	unsigned got = 0, used = 0;

	while (got < max) {
		uint32_t ci = c->rq.cached_cons;
		struct unet_desc *s = unet_ring__slot(&c->rq, ci);
		if (__atomic_load_n(&s->chan, __ATOMIC_ACQUIRE) != lap_tag(ci, c->rq_shift))
			break;
		struct unet_desc *o = &d[got];
		uint64_t rel = s->off;
		uint32_t len = s->len;
		uint16_t fl = s->flags;
		c->rq.cached_cons++;
		used++;
		if (fl == UNET_DF_INLINE && len <= UNET_INLINE_MAX) {
			o->off = 0;
			o->len = len;
			o->flags = UNET_DF_INLINE;
			memcpy(o->data, s->data, len);
		} else if (fl == 0 && rel % g->buf_size == 0 && rel / g->buf_size < g->nbufs &&
			   !c->held[rel / g->buf_size] && len <= g->buf_size) {
			c->held[rel / g->buf_size] = 1;
			o->off = area_off + rel;
			o->len = len;
			o->flags = 0;
		} else {
			c->drop_bad++; /* the sender broke the ring protocol */
			continue;
		}
		o->chan = (uint16_t)id;
		got++;
	}
	if (used)
		unet_ring_cons__release(&c->rq, used);
	return got;
}

/* Does channel id's receive ring hold a message? */
static bool chan_ready(struct unet_ep *ep, unsigned id)
{
	struct shm_chan *c = ep->chans[id].priv;

	if (!c || !c->has_rx)
		return false;
	uint32_t ci = c->rq.cached_cons;
	struct unet_desc *s = unet_ring__slot(&c->rq, ci);
	return __atomic_load_n(&s->chan, __ATOMIC_ACQUIRE) == lap_tag(ci, c->rq_shift);
}

static int shm_rx(struct unet_ep *ep, struct unet_desc *d, unsigned max)
{
	struct shm_ep *se = ep->priv;
	unsigned n = 0;

	if (se->armed)
		disarm(ep);
	for (unsigned k = 0; k < se->npolled && n < max; k++)
		n += chan_rx(ep, se->polled[(se->rr + k) % se->npolled], d + n, max - n);
	se->rr++;
	/* A channel's down event comes after every message that reached it
	 * first: the application closes the channel on the event, and the
	 * buffers go with it. */
	while (n < max && se->ev_head != se->ev_tail) {
		uint16_t id = se->events[se->ev_head];
		if (id != UINT16_MAX && chan_ready(ep, id))
			break;
		se->ev_head = (se->ev_head + 1) % (ep->attr.max_chans + 1);
		if (id == UINT16_MAX)
			continue;
		memset(&d[n], 0, sizeof(d[n]));
		d[n].chan = id;
		d[n].flags = UNET_DF_CHAN_DOWN;
		n++;
	}
	if (n == 0 && ++se->idle >= 4096) {
		se->idle = 0; /* look for hang-ups and hand-shakes now and then */
		ep->nic->ops->event(ep);
	}
	return (int)n;
}

static int shm_release(struct unet_ep *ep, const struct unet_desc *d, unsigned n)
{
	struct shm_ep *se = ep->priv;
	const struct shm_geom *g = &se->geom;

	for (unsigned i = 0; i < n; i++) {
		uint64_t off = d[i].off, rel, k;
		struct shm_chan *c;
		uint32_t idx;

		if (d[i].flags & (UNET_DF_INLINE | UNET_DF_CHAN_DOWN))
			continue;
		if (off < se->app_span)
			return -ERANGE;
		k = (off - se->app_span) / se->stride;
		rel = off - se->app_span - k * se->stride;
		if (k >= ep->attr.max_chans || rel < g->buf_off)
			return -ERANGE;
		rel -= g->buf_off;
		if (rel % g->buf_size != 0 || rel / g->buf_size >= g->nbufs)
			return -ERANGE;
		c = ep->chans[k].priv;
		if (!c || !c->has_rx)
			return -ENOTCONN; /* its channel was closed: the buffer went with it */
		if (!c->held[rel / g->buf_size])
			return -EALREADY;
		c->held[rel / g->buf_size] = 0;
		unet_ring_prod__reserve(&c->fq, 1, &idx); /* never full: fq_size >= nbufs */
		*(uint64_t *)unet_ring__slot(&c->fq, idx) = rel;
		unet_ring_prod__submit(&c->fq, 1);
	}
	return 0;
}

static int shm_pending(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;

	if (se->ev_head != se->ev_tail)
		return 1;
	for (unsigned i = 0; i < se->npolled; i++) {
		struct shm_chan *c = ep->chans[se->polled[i]].priv;
		uint32_t ci = c->rq.cached_cons;
		struct unet_desc *s = unet_ring__slot(&c->rq, ci);
		if (__atomic_load_n(&s->chan, __ATOMIC_ACQUIRE) == lap_tag(ci, c->rq_shift))
			return 1;
	}
	return 0;
}

static int shm_arm(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;

	for (unsigned i = 0; i < se->npolled; i++) {
		struct shm_chan *c = ep->chans[se->polled[i]].priv;
		__atomic_store_n(&c->rq.hdr->flags, UNET_RING_NEED_WAKEUP, __ATOMIC_RELAXED);
	}
	se->armed = true;
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (shm_pending(ep)) {
		disarm(ep);
		return 1;
	}
	return 0;
}

static int shm_event(struct unet_ep *ep)
{
	struct shm_ep *se = ep->priv;
	struct epoll_event evs[16];
	int n = epoll_wait(se->epfd, evs, 16, 0);

	for (int i = 0; i < n; i++) {
		uint32_t tag = evs[i].data.u32;
		if (tag == EV_LISTEN) {
			accept_all(ep);
		} else if (tag == EV_DOORBELL) {
			uint64_t v;
			if (read(se->efd, &v, sizeof(v)) < 0) {
				/* already drained */
			}
		} else if (tag < ep->attr.max_chans && ep->chans[tag].priv) {
			struct shm_chan *c = ep->chans[tag].priv;
			struct shm_msg m;
			int fds[SHM_NFDS];
			int rc = msg_recv(c->conn, &m, fds);
			if (rc == 1)
				close_fds(fds);
			if (rc != -EAGAIN || (evs[i].events & (EPOLLHUP | EPOLLRDHUP | EPOLLERR)))
				chan_down(ep, tag);
		}
	}
	return se->ev_head != se->ev_tail;
}

static void shm_stats(const struct unet_ep *ep, struct unet_stats *st)
{
	for (unsigned i = 0; i < ep->attr.max_chans; i++) {
		const struct shm_chan *c = ep->chans[i].priv;
		if (!c || !c->has_rx)
			continue;
		const struct shm_area_hdr *h = (const struct shm_area_hdr *)c->rx_area;
		st->rx_drop_nobuf += __atomic_load_n(&h->drop_nobuf, __ATOMIC_RELAXED);
		st->rx_drop_full += __atomic_load_n(&h->drop_full, __ATOMIC_RELAXED);
		st->rx_drop_bad += __atomic_load_n(&h->drop_bad, __ATOMIC_RELAXED) + c->drop_bad;
	}
}

const struct unet_nic_ops unet_nic_shm_ops = {
	.kind = "shm",
	.ep_create = shm_ep_create,
	.ep_destroy = shm_ep_destroy,
	.chan_open = shm_chan_open,
	.chan_close = shm_chan_close,
	.tx = shm_tx,
	.rx = shm_rx,
	.release = shm_release,
	.pending = shm_pending,
	.arm = shm_arm,
	.event = shm_event,
	.stats = shm_stats,
	.pool = shm_pool,
};
