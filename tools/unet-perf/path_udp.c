/*
 * path_udp.c - kernel UDP sockets on 127.0.0.1, the baseline U-Net is about.
 *
 * Two sockets bound to loopback and connected to each other are made before
 * fork; each process keeps one. Two flavours share the code: "blocking"
 * (recv sleeps in the kernel, the usual way) and "busy" (recv with
 * MSG_DONTWAIT in a loop, the best a socket application can do without
 * kernel busy-poll knobs). The kernel copies twice (user to skb, skb to user)
 * and every message costs a system call each side.
 *
 * Streaming is blocking sends and receives. UDP has no flow control, so the
 * receiver counts what arrived and stops after a quiet 200 ms; the report
 * shows the goodput and the loss. Messages above 65507 bytes do not fit in
 * a UDP datagram and are skipped.
 */
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "perf.h"

#define UDP_MAX 65507u
#define SOCKBUF (4 << 20)

struct udp_ctx {
	int s[2];
	int fd;
	bool busy;
	size_t max;
	uint8_t *buf;
};

static void bufsize(int fd)
{
	int v = SOCKBUF;

	/* FORCE lets root go above net.core.[rw]mem_max; plain otherwise. */
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &v, sizeof(v));
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &v, sizeof(v)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &v, sizeof(v));
}

static int rcvtimeo(int fd, int ms)
{
	struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};

	return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ? -errno : 0;
}

static int udp_setup_common(struct udp_ctx *c, size_t max, bool busy)
{
	struct sockaddr_in sa[2];
	socklen_t len = sizeof(sa[0]);
	int rc;

	c->s[0] = c->s[1] = c->fd = -1;
	c->busy = busy;
	c->max = max;
	for (int i = 0; i < 2; i++) {
		c->s[i] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
		if (c->s[i] < 0)
			goto fail;
		memset(&sa[i], 0, sizeof(sa[i]));
		sa[i].sin_family = AF_INET;
		sa[i].sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		if (bind(c->s[i], (struct sockaddr *)&sa[i], sizeof(sa[i])) < 0 ||
		    getsockname(c->s[i], (struct sockaddr *)&sa[i], &len) < 0)
			goto fail;
		bufsize(c->s[i]);
	}
	for (int i = 0; i < 2; i++)
		if (connect(c->s[i], (struct sockaddr *)&sa[!i], sizeof(sa[!i])) < 0)
			goto fail;
	return 0;
fail:
	rc = -errno;
	for (int i = 0; i < 2; i++)
		if (c->s[i] >= 0)
			close(c->s[i]);
	c->s[0] = c->s[1] = -1;
	return rc;
}

static int udp_setup_blocking(void *vc, const struct perf_opts *o, size_t max)
{
	return udp_setup_common(vc, max, false);
}

static int udp_setup_busy(void *vc, const struct perf_opts *o, size_t max)
{
	return udp_setup_common(vc, max, true);
}

static int udp_attach(void *vc, int side)
{
	struct udp_ctx *c = vc;

	close(c->s[!side]);
	c->s[!side] = -1;
	c->fd = c->s[side];
	c->buf = malloc(c->max + 1);
	if (!c->buf)
		return -ENOMEM;
	memset(c->buf, 0x5a, c->max + 1);
	return rcvtimeo(c->fd, PERF_STALL_MS);
}

static void udp_detach(void *vc, int side)
{
	struct udp_ctx *c = vc;

	free(c->buf);
	c->buf = NULL;
}

static void udp_teardown(void *vc)
{
	struct udp_ctx *c = vc;

	for (int i = 0; i < 2; i++)
		if (c->s[i] >= 0)
			close(c->s[i]);
}

static inline int send_one(struct udp_ctx *c, size_t size, uint64_t seq)
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

/* Receive one datagram into c->buf; its length, or a negative code. */
static inline ssize_t recv_one(struct udp_ctx *c)
{
	if (!c->busy) {
		for (;;) {
			ssize_t n = recv(c->fd, c->buf, c->max + 1, 0);
			if (n >= 0)
				return n;
			if (errno == EAGAIN || errno == EWOULDBLOCK)
				return -ETIMEDOUT; /* SO_RCVTIMEO */
			if (errno != EINTR)
				return -errno;
		}
	}
	struct perf_wait w;
	perf_wait_begin(&w);
	for (;;) {
		ssize_t n = recv(c->fd, c->buf, c->max + 1, MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			return -errno;
		int rc = perf_wait_step(&w);
		if (rc)
			return rc;
	}
}

static inline int check(struct udp_ctx *c, ssize_t n, size_t size, uint64_t seq)
{
	uint64_t head;

	if (n < 0)
		return (int)n;
	if ((size_t)n != size)
		return -EBADMSG;
	memcpy(&head, c->buf, sizeof(head));
	return head == seq ? 0 : -EBADMSG;
}

static int udp_ping(void *vc, size_t size, uint32_t iters, uint64_t *rtt)
{
	struct udp_ctx *c = vc;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = (uint64_t)i + 1, t0 = perf_ticks();
		int rc = send_one(c, size, s);
		if (rc == 0)
			rc = check(c, recv_one(c), size, s);
		if (rc < 0)
			return rc;
		rtt[i] = perf_ticks() - t0;
	}
	return 0;
}

static int udp_pong(void *vc, size_t size, uint32_t iters)
{
	struct udp_ctx *c = vc;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = (uint64_t)i + 1;
		int rc = check(c, recv_one(c), size, s);
		if (rc == 0)
			rc = send_one(c, size, s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int udp_stream_tx(void *vc, size_t size, uint64_t count)
{
	struct udp_ctx *c = vc;

	for (uint64_t k = 0; k < count; k++) {
		int rc = send_one(c, size, k + 1);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int udp_stream_rx(void *vc, size_t size, uint64_t count, struct perf_stream_rx *res)
{
	struct udp_ctx *c = vc;
	uint64_t got = 0, last = 0;
	int rc;

	rc = rcvtimeo(c->fd, 200);
	while (rc == 0 && got < count) {
		ssize_t n = recv(c->fd, c->buf, c->max + 1, 0);
		uint64_t head;
		if (n < 0) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				rc = -errno;
			break; /* quiet for 200 ms: the rest was lost */
		}
		memcpy(&head, c->buf, sizeof(head));
		if ((size_t)n != size || head <= last || head > count) {
			rc = -EBADMSG;
			break;
		}
		last = head;
		got++;
		res->last_ns = perf_now_ns();
	}
	res->received = got;
	int rc2 = rcvtimeo(c->fd, PERF_STALL_MS);
	return rc < 0 ? rc : rc2;
}

const struct perf_path perf_path_udp_blocking = {
    .key = "udp_blocking",
    .title = "udp blocking",
    .ctx_size = sizeof(struct udp_ctx),
    .max_msg = UDP_MAX,
    .setup = udp_setup_blocking,
    .attach = udp_attach,
    .ping = udp_ping,
    .pong = udp_pong,
    .stream_tx = udp_stream_tx,
    .stream_rx = udp_stream_rx,
    .detach = udp_detach,
    .teardown = udp_teardown,
    .note = "kernel UDP on 127.0.0.1, blocking recv",
};

const struct perf_path perf_path_udp_busy = {
    .key = "udp_busy",
    .title = "udp busy-poll",
    .ctx_size = sizeof(struct udp_ctx),
    .max_msg = UDP_MAX,
    .setup = udp_setup_busy,
    .attach = udp_attach,
    .ping = udp_ping,
    .pong = udp_pong,
    .detach = udp_detach,
    .teardown = udp_teardown,
    .note = "kernel UDP on 127.0.0.1, recv(MSG_DONTWAIT) in a loop",
};
