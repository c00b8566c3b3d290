/*
 * net_kudp.c - plain kernel UDP sockets over the veth: the baseline the
 * wire NICs are measured against.
 *
 * Each side makes its socket in attach(), after entering its namespace (a
 * socket belongs to the namespace it was made in, so nothing can be made
 * before the fork as path_udp.c does on loopback), binds its own address
 * and connects to the peer's. Three flavours:
 *
 *   udp_blocking  recv() sleeps in the kernel: the usual way, and what the
 *                 paper's kernel path costs (a wake-up per message)
 *   udp_busy      recv(MSG_DONTWAIT) in a loop: the best a socket
 *                 application does without kernel busy-poll knobs
 *   kernel_mmsg   one-way rate with sendmmsg / recvmmsg(MSG_DONTWAIT),
 *                 BATCH datagrams per call each way (its ping-pong, which
 *                 only warms the path up, is the busy-poll one)
 *
 * Every datagram carries a sequence number in its first 8 bytes, checked
 * by the receiver.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <linux/sock_diag.h>
#include <sys/socket.h>

#include "net.h"

#define PORT_BASE 7200
#define SOCKBUF	  (4 << 20)
#define BATCH	  32u
#define RX_BATCH  64u

struct kudp_ctx {
	int which;
	bool busy;
	uint16_t port;
	struct net_shared *sh;
	int fd;
	uint8_t *buf; /* BATCH x NET_MAX_MSG + 1: the mmsg paths use them all */
	uint64_t seq;
	struct net_seqs rx; /* stream receiver only */
};

static int kudp_setup(struct kudp_ctx *c, int which, bool busy)
{
	c->which = which;
	c->busy = busy;
	c->port = (uint16_t)(PORT_BASE + which);
	c->fd = -1;
	c->sh = net_shared_map();
	return c->sh ? 0 : -ENOMEM;
}

static int setup_blocking(void *vc, const struct perf_opts *o, size_t max)
{
	return kudp_setup(vc, NR_UDP_BLOCKING, false);
}
static int setup_busy(void *vc, const struct perf_opts *o, size_t max)
{
	return kudp_setup(vc, NR_UDP_BUSY, true);
}
static int setup_mmsg(void *vc, const struct perf_opts *o, size_t max)
{
	return kudp_setup(vc, NR_PPS_KERNEL, true);
}

static void bufsize(int fd)
{
	int v = SOCKBUF;

	/* FORCE lets root go above net.core.[rw]mem_max. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

static void kudp_detach(void *vc, int side)
{
	struct kudp_ctx *c = vc;

	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	free(c->buf);
	c->buf = NULL;
	net_seqs_free(&c->rx);
}

static int kudp_attach(void *vc, int side)
{
	struct kudp_ctx *c = vc;
	struct sockaddr_in sa[2];
	struct timeval tv = {.tv_sec = PERF_STALL_MS / 1000};
	int rc;

	rc = net_side_enter(side);
	if (rc < 0)
		return rc;
	for (int i = 0; i < 2; i++) {
		memset(&sa[i], 0, sizeof(sa[i]));
		sa[i].sin_family = AF_INET;
		sa[i].sin_port = htons(c->port);
		inet_pton(AF_INET, net_cfg.ns.ip[i], &sa[i].sin_addr);
	}
	c->buf = malloc((size_t)BATCH * NET_MAX_MSG + 1);
	if (!c->buf)
		return -ENOMEM;
	memset(c->buf, 0x5a, (size_t)BATCH * NET_MAX_MSG + 1);
	c->fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || bind(c->fd, (struct sockaddr *)&sa[side], sizeof(sa[side])) < 0 ||
	    connect(c->fd, (struct sockaddr *)&sa[!side], sizeof(sa[!side])) < 0 ||
	    setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0) {
		rc = -errno;
		kudp_detach(c, side);
		return rc;
	}
	bufsize(c->fd);
	snprintf(c->sh->info[side], sizeof(c->sh->info[side]),
		 "kernel udp %s:%u -> %s:%u, %s recv, cpu %d", net_cfg.ns.ip[side], c->port,
		 net_cfg.ns.ip[!side], c->port, c->busy ? "MSG_DONTWAIT" : "blocking",
		 net_cfg.cpus[side]);
	return 0;
}

static void kudp_teardown(void *vc)
{
	struct kudp_ctx *c = vc;

	net_shared_done(c->sh, c->which);
	c->sh = NULL;
}

static inline int send_one(struct kudp_ctx *c, size_t size, uint64_t seq)
{
	memcpy(c->buf, &seq, sizeof(seq));
	for (;;) {
		ssize_t n = send(c->fd, c->buf, size, 0);
		if (n == (ssize_t)size)
			return 0;
		if (n >= 0)
			return -EMSGSIZE;
		if (errno != EINTR && errno != ENOBUFS && errno != EAGAIN)
			return -errno;
	}
}

/* One datagram into c->buf: its length, or a negative code. */
static inline ssize_t recv_one(struct kudp_ctx *c)
{
	struct perf_wait w;

	perf_wait_begin(&w);
	for (;;) {
		ssize_t n = recv(c->fd, c->buf, NET_MAX_MSG + 1, c->busy ? MSG_DONTWAIT : 0);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK)
			return -errno;
		if (!c->busy)
			return -ETIMEDOUT; /* SO_RCVTIMEO */
		int rc = perf_wait_step(&w);
		if (rc)
			return rc;
	}
}

static inline int check(struct kudp_ctx *c, ssize_t n, size_t size, uint64_t seq)
{
	uint64_t head;

	if (n < 0)
		return (int)n;
	if ((size_t)n != size)
		return -EBADMSG;
	memcpy(&head, c->buf, sizeof(head));
	return head == seq ? 0 : -EBADMSG;
}

static int kudp_ping(void *vc, size_t size, uint32_t iters, uint64_t *rtt)
{
	struct kudp_ctx *c = vc;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq, t0 = perf_ticks();
		int rc = send_one(c, size, s);
		if (rc == 0)
			rc = check(c, recv_one(c), size, s);
		if (rc < 0)
			return rc;
		rtt[i] = perf_ticks() - t0;
	}
	return 0;
}

static int kudp_pong(void *vc, size_t size, uint32_t iters)
{
	struct kudp_ctx *c = vc;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq;
		int rc = check(c, recv_one(c), size, s);
		if (rc == 0)
			rc = send_one(c, size, s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int mmsg_stream_tx(void *vc, size_t size, uint64_t count)
{
	struct kudp_ctx *c = vc;
	const uint64_t end =
	    perf_now_ns() + (uint64_t)(net_cfg.window_ms + NET_TAIL_MS) * 1000000ull;
	const uint64_t cpu0 = net_thread_cpu_ns();
	struct mmsghdr mh[BATCH];
	struct iovec iov[BATCH];
	uint64_t sent = 0;
	int rc = 0;

	memset(mh, 0, sizeof(mh));
	for (unsigned k = 0; k < BATCH; k++) {
		iov[k].iov_base = c->buf + (size_t)k * NET_MAX_MSG;
		iov[k].iov_len = size;
		mh[k].msg_hdr.msg_iov = &iov[k];
		mh[k].msg_hdr.msg_iovlen = 1;
	}
	for (uint32_t loops = 0;; loops++) {
		if ((loops & 15) == 0 && perf_now_ns() >= end)
			break;
		for (unsigned k = 0; k < BATCH; k++) {
			uint64_t seq = c->seq + k + 1;
			memcpy(iov[k].iov_base, &seq, sizeof(seq));
		}
		int r = sendmmsg(c->fd, mh, BATCH, 0);
		if (r < 0) {
			/* A full transmit queue pushes back; anything else is
			 * a broken path. */
			if (errno == EINTR || errno == ENOBUFS || errno == EAGAIN)
				continue;
			rc = -errno;
			break;
		}
		/* A short count leaves the rest for the next call, whose
		 * sequence numbers simply continue. */
		c->seq += (uint64_t)r;
		sent += (uint64_t)r;
	}
	c->sh->tx_sent += sent;
	c->sh->tx_cpu_ns += net_thread_cpu_ns() - cpu0;
	return rc;
}

static int mmsg_stream_rx(void *vc, size_t size, uint64_t count, struct perf_stream_rx *res)
{
	struct kudp_ctx *c = vc;
	struct mmsghdr mh[RX_BATCH];
	struct iovec iov[RX_BATCH];
	const size_t each = (size_t)BATCH * NET_MAX_MSG / RX_BATCH; /* >= 64 B + 1 */
	struct net_window w;
	uint32_t idle = 0;
	int rc = 0;

	if (size + 1 > each)
		return -EMSGSIZE;
	if (!c->rx.seen && net_seqs_init(&c->rx) < 0)
		return -ENOMEM;
	memset(mh, 0, sizeof(mh));
	for (unsigned k = 0; k < RX_BATCH; k++) {
		iov[k].iov_base = c->buf + (size_t)k * each;
		iov[k].iov_len = each;
		mh[k].msg_hdr.msg_iov = &iov[k];
		mh[k].msg_hdr.msg_iovlen = 1;
	}
	net_window_begin(&w);
	for (;;) {
		int n = recvmmsg(c->fd, mh, RX_BATCH, MSG_DONTWAIT, NULL);
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
			rc = -errno;
			break;
		}
		if (n <= 0) {
			if (++idle % 64)
				continue;
			uint64_t now = perf_now_ns();
			rc = net_window_idle(&w, now);
			if (rc)
				break;
			if (now - w.quiet_since > 200000)
				sched_yield();
			continue;
		}
		idle = 0;
		for (int k = 0; k < n; k++) {
			uint64_t head;
			memcpy(&head, iov[k].iov_base, sizeof(head));
			if (mh[k].msg_len != size || head == 0 || head > c->rx.last + (1ull << 32))
				return -EBADMSG; /* not what the sender wrote */
			net_seqs_note(&c->rx, head);
		}
		net_window_add(&w, perf_now_ns(), (uint64_t)n);
	}
	if (rc < 0)
		return rc;
	res->received = w.counted;
	res->last_ns = w.last_ns;
	c->sh->rx_in_window += w.counted;
	c->sh->rx_reordered = c->rx.reordered;
	c->sh->rx_duplicated = c->rx.duplicated;
	return 0;
}

/* The receiver's socket drops: what its queue could not hold. */
static void mmsg_detach(void *vc, int side)
{
	struct kudp_ctx *c = vc;

	if (c->fd >= 0 && side == PERF_RESPONDER) {
		uint32_t mem[SK_MEMINFO_VARS];
		socklen_t len = sizeof(mem);
		if (getsockopt(c->fd, SOL_SOCKET, SO_MEMINFO, mem, &len) == 0 &&
		    len > SK_MEMINFO_DROPS * sizeof(mem[0]))
			c->sh->rx_dropped += mem[SK_MEMINFO_DROPS];
	}
	kudp_detach(c, side);
}

const struct perf_path net_path_udp_blocking = {
    .key = "udp_blocking",
    .title = "udp blocking",
    .ctx_size = sizeof(struct kudp_ctx),
    .max_msg = NET_MAX_MSG,
    .setup = setup_blocking,
    .attach = kudp_attach,
    .ping = kudp_ping,
    .pong = kudp_pong,
    .detach = kudp_detach,
    .teardown = kudp_teardown,
    .note = "kernel UDP sockets at both ends of the veth, blocking recv",
};

const struct perf_path net_path_udp_busy = {
    .key = "udp_busy",
    .title = "udp busy-poll",
    .ctx_size = sizeof(struct kudp_ctx),
    .max_msg = NET_MAX_MSG,
    .setup = setup_busy,
    .attach = kudp_attach,
    .ping = kudp_ping,
    .pong = kudp_pong,
    .detach = kudp_detach,
    .teardown = kudp_teardown,
    .note = "kernel UDP sockets at both ends of the veth, recv(MSG_DONTWAIT) in a loop",
};

const struct perf_path net_path_pps_kernel = {
    .key = "kernel_mmsg",
    .title = "kernel UDP mmsg",
    .ctx_size = sizeof(struct kudp_ctx),
    .max_msg = NET_MAX_MSG,
    .setup = setup_mmsg,
    .attach = kudp_attach,
    .ping = kudp_ping,
    .pong = kudp_pong,
    .stream_tx = mmsg_stream_tx,
    .stream_rx = mmsg_stream_rx,
    .detach = mmsg_detach,
    .teardown = kudp_teardown,
    .note = "kernel UDP sockets: sendmmsg batches of 32, recvmmsg(MSG_DONTWAIT) batches of 64, "
	    "receiver counts in a fixed window",
};
