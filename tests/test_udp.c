/* test_udp.c - the udp NIC (kernel-emulated endpoint) over loopback:
 * naming and port ownership, udp<->udp and udp<->plain-socket traffic with
 * every byte checked, drops (unknown source, oversize, kernel queue full)
 * counted and never delivered, bad input refused, release bookkeeping,
 * a two-process ping-pong, and blocking in unet_wait. Traffic stays on
 * 127.0.0.1. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "unet/unet.h"

#define LO "127.0.0.1"

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static struct unet_ep *mk_ep(struct unet_nic *nic, const struct unet_ep_attr *a)
{
	struct unet_ep *ep = NULL;

	assert_int_equal(unet_ep_create(nic, "0", a, &ep), 0);
	return ep;
}

static unsigned ep_port(const struct unet_ep *ep)
{
	return (unsigned)atoi(unet_ep_name(ep));
}

static void addr_of(char *out, unsigned port)
{
	sprintf(out, LO ":%u", port);
}

static int chan_to_ep(struct unet_ep *ep, const struct unet_ep *peer)
{
	char r[64];

	addr_of(r, ep_port(peer));
	return unet_chan_open(ep, r, 0);
}

/* A plain kernel UDP socket on 127.0.0.1, any port. */
static int plain_sock(unsigned *port)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	*port = ntohs(sa.sin_port);
	return fd;
}

static void plain_send(int fd, unsigned port, const void *buf, size_t len)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&sa, sizeof(sa)),
			 (ssize_t)len);
}

/* Receive one descriptor within `ms`; 0 if none came. */
static int recv1(struct unet_ep *ep, struct unet_desc *d, int ms)
{
	uint64_t end = now_ms() + (uint64_t)ms;

	for (;;) {
		int n = unet_recv(ep, d, 1);
		if (n != 0)
			return n;
		if (now_ms() >= end)
			return 0;
		unet_wait(ep, 10);
	}
}

static const uint8_t *payload(struct unet_ep *ep, const struct unet_desc *d)
{
	return (d->flags & UNET_DF_INLINE) ? d->data : unet_ptr(ep, d->off);
}

static void fill(uint8_t *p, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed * 131 + i * 7 + (i >> 8));
}

static void check(const uint8_t *p, uint32_t len, uint32_t seed)
{
	for (uint32_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seed * 131 + i * 7 + (i >> 8)))
			fail_msg("byte %u of %u differs (seed %u)", i, len, seed);
}

/* Send len bytes of pattern `seed` on chan: inline when it fits, else from
 * the segment at `off`, reaping the completion. */
static void send_pattern(struct unet_ep *ep, int chan, uint32_t len, uint32_t seed, uint64_t off)
{
	struct unet_desc d = {.chan = (uint16_t)chan, .len = len};

	if (len <= UNET_INLINE_MAX) {
		d.flags = UNET_DF_INLINE;
		fill(d.data, len, seed);
	} else {
		d.off = off;
		fill(unet_ptr(ep, off), len, seed);
	}
	assert_int_equal(unet_send(ep, &d, 1), 1);
	if (len > UNET_INLINE_MAX) {
		struct unet_comp c;
		uint64_t end = now_ms() + 2000;
		int n;
		while ((n = unet_poll_comp(ep, &c, 1)) == 0 && now_ms() < end)
			;
		assert_int_equal(n, 1);
		assert_int_equal(c.status, 0);
		assert_int_equal(c.off, off);
		assert_int_equal(c.len, len);
	}
}

/* ---- naming ------------------------------------------------------------ */

static void test_create_reports_port(void **state)
{
	struct unet_nic *nic;
	struct unet_ep *ep, *bad = NULL;
	size_t segsz;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	assert_string_equal(unet_nic_kind(nic), "udp");
	ep = mk_ep(nic, NULL);
	unsigned port = ep_port(ep);
	assert_true(port > 0 && port < 65536);
	char expect[16];
	sprintf(expect, "%u", port);
	assert_string_equal(unet_ep_name(ep), expect);
	assert_true(unet_fd(ep) >= 0);
	assert_non_null(unet_ep_segment(ep, &segsz));
	assert_int_equal(segsz, 1u << 20);

	/* The port really is ours: the kernel refuses it to anyone else. */
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), -1);
	close(fd);

	const char *names[] = {"abc", "70000", "65536", "-1", "123456", "1 ", " 1", "+5", "0x10"};
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		assert_int_equal(unet_ep_create(nic, names[i], NULL, &bad), -EINVAL);
	assert_null(bad);
	unet_ep_destroy(ep);
	unet_nic_close(nic);

	/* An address that is not this host's: refused when binding, not later. */
	assert_int_equal(unet_nic_open("udp:192.0.2.1", &nic), 0);
	assert_int_equal(unet_ep_create(nic, "0", NULL, &bad), -EADDRNOTAVAIL);
	assert_null(bad);
	unet_nic_close(nic);

	const char *uris[] = {"udp:1.2.3", "udp:localhost", "udp:127.0.0.1:5", "udp:256.0.0.1"};
	for (size_t i = 0; i < sizeof(uris) / sizeof(uris[0]); i++)
		assert_int_equal(unet_nic_open(uris[i], &nic), -EINVAL);
}

static void test_same_port_in_use(void **state)
{
	struct unet_nic *nic;
	struct unet_ep *a, *b = NULL;
	unsigned port;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	a = mk_ep(nic, NULL);
	assert_int_equal(unet_ep_create(nic, unet_ep_name(a), NULL, &b), -EADDRINUSE);
	/* A plain socket holding a port keeps it too. */
	int fd = plain_sock(&port);
	char name[16];
	sprintf(name, "%u", port);
	assert_int_equal(unet_ep_create(nic, name, NULL, &b), -EADDRINUSE);
	close(fd);
	/* Freed ports can be taken again. */
	assert_int_equal(unet_ep_create(nic, name, NULL, &b), 0);
	assert_string_equal(unet_ep_name(b), name);
	unet_ep_destroy(b);
	unet_ep_destroy(a);
	unet_nic_close(nic);
}

/* ---- udp <-> udp ------------------------------------------------------- */

static void test_pingpong_sizes(void **state)
{
	struct unet_nic *nic;
	struct unet_ep_attr at = {.rx_bufs = 8, .rx_buf_size = 65536};
	const uint32_t sizes[] = {0, 1, 47, 48, 49, 64, 100, 1400, 2048, 4097, 9000, 32768, 61440,
				  65507};

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *a = mk_ep(nic, &at), *b = mk_ep(nic, &at);
	int ca = chan_to_ep(a, b), cb = chan_to_ep(b, a);
	assert_true(ca >= 0 && cb >= 0);
	assert_int_equal(unet_chan_mtu(a, (unsigned)ca), 65507);
	assert_int_equal(unet_chan_status(a, (unsigned)ca), 0);

	for (int round = 0; round < 3; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			uint32_t len = sizes[i], seed = (uint32_t)(round * 100 + i);
			struct unet_desc d;

			send_pattern(a, ca, len, seed, 4096);
			assert_int_equal(recv1(b, &d, 2000), 1);
			assert_int_equal(d.len, len);
			assert_int_equal(d.chan, cb);
			assert_int_equal(!!(d.flags & UNET_DF_INLINE), len <= UNET_INLINE_MAX);
			check(payload(b, &d), len, seed);
			assert_int_equal(unet_release(b, &d, 1), 0);

			send_pattern(b, cb, len, seed + 7, 0);
			assert_int_equal(recv1(a, &d, 2000), 1);
			assert_int_equal(d.len, len);
			assert_int_equal(d.chan, ca);
			check(payload(a, &d), len, seed + 7);
			assert_int_equal(unet_release(a, &d, 1), 0);
		}
	}
	/* Larger than the wire allows: refused before it reaches the queue. */
	struct unet_desc big = {.chan = (uint16_t)ca, .len = 65508};
	assert_int_equal(unet_send(a, &big, 1), -EMSGSIZE);

	struct unet_stats sa, sb;
	unet_get_stats(a, &sa);
	unet_get_stats(b, &sb);
	const uint64_t n = 3 * sizeof(sizes) / sizeof(sizes[0]);
	assert_int_equal(sa.tx_msgs, n);
	assert_int_equal(sb.rx_msgs, n);
	assert_int_equal(sb.tx_msgs, n);
	assert_int_equal(sa.rx_msgs, n);
	assert_int_equal(sa.tx_inline, 3 * 4);
	assert_int_equal(sb.rx_inline, 3 * 4);
	assert_int_equal(sa.tx_dropped + sb.rx_drop_nochan + sb.rx_drop_toobig + sb.rx_drop_full,
			 0);
	unet_ep_destroy(a);
	unet_ep_destroy(b);
	unet_nic_close(nic);
}

/* ---- legacy interoperability ----------------------------------------------- */

static void test_plain_socket_interop(void **state)
{
	struct unet_nic *nic;
	unsigned sport;
	char r[64];
	uint8_t buf[4000], in[4100];

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, NULL);
	int s = plain_sock(&sport);
	addr_of(r, sport);
	int ch = unet_chan_open(ep, r, 0);
	assert_true(ch >= 0);

	/* socket -> endpoint, inline and segment sizes */
	const uint32_t sizes[] = {5, 48, 200, 2048};
	for (size_t i = 0; i < 4; i++) {
		struct unet_desc d;
		fill(buf, sizes[i], (uint32_t)i);
		plain_send(s, ep_port(ep), buf, sizes[i]);
		assert_int_equal(recv1(ep, &d, 2000), 1);
		assert_int_equal(d.chan, ch);
		assert_int_equal(d.len, sizes[i]);
		check(payload(ep, &d), sizes[i], (uint32_t)i);
		assert_int_equal(unet_release(ep, &d, 1), 0);
	}

	/* endpoint -> socket: raw bytes, from the endpoint's port */
	const uint32_t out[] = {3, 1000, 3999};
	for (size_t i = 0; i < 3; i++) {
		struct sockaddr_in from;
		socklen_t flen = sizeof(from);
		send_pattern(ep, ch, out[i], (uint32_t)(50 + i), 8192);
		ssize_t n = recvfrom(s, in, sizeof(in), 0, (struct sockaddr *)&from, &flen);
		assert_int_equal(n, out[i]);
		check(in, out[i], (uint32_t)(50 + i));
		assert_int_equal(ntohs(from.sin_port), ep_port(ep));
		assert_int_equal(ntohl(from.sin_addr.s_addr), INADDR_LOOPBACK);
	}
	close(s);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

/* ---- drops -------------------------------------------------------------------- */

static void test_unknown_source_dropped(void **state)
{
	struct unet_nic *nic;
	unsigned p1, p2;
	char r[64];
	struct unet_desc d;
	struct unet_stats st;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, NULL);
	int s1 = plain_sock(&p1), s2 = plain_sock(&p2);
	addr_of(r, p1);
	int ch = unet_chan_open(ep, r, 0);
	assert_true(ch >= 0);

	for (int i = 0; i < 5; i++)
		plain_send(s2, ep_port(ep), i % 2 ? "intruder-intruder-intruder-intruder-intruder-"
						     "intruder-intruder"
						   : "intr", i % 2 ? 60 : 4);
	plain_send(s1, ep_port(ep), "friend", 6);
	assert_int_equal(recv1(ep, &d, 2000), 1);
	assert_int_equal(d.len, 6);
	assert_memory_equal(d.data, "friend", 6);
	assert_int_equal(d.chan, ch);
	assert_int_equal(recv1(ep, &d, 50), 0);
	unet_get_stats(ep, &st);
	assert_int_equal(st.rx_drop_nochan, 5);
	assert_int_equal(st.rx_msgs, 1);

	/* A closed channel's source becomes unknown too. */
	assert_int_equal(unet_chan_close(ep, (unsigned)ch), 0);
	plain_send(s1, ep_port(ep), "late", 4);
	assert_int_equal(recv1(ep, &d, 50), 0);
	unet_get_stats(ep, &st);
	assert_int_equal(st.rx_drop_nochan, 6);
	close(s1);
	close(s2);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

static void test_oversize_dropped(void **state)
{
	struct unet_nic *nic;
	struct unet_ep_attr at = {.rx_bufs = 4, .rx_buf_size = 2048};
	unsigned sp;
	char r[64];
	uint8_t buf[3000];
	struct unet_desc d;
	struct unet_stats st;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, &at);
	int s = plain_sock(&sp);
	addr_of(r, sp);
	int ch = unet_chan_open(ep, r, 0);
	assert_true(ch >= 0);

	fill(buf, sizeof(buf), 9);
	plain_send(s, ep_port(ep), buf, 2049); /* one byte too many */
	plain_send(s, ep_port(ep), buf, 3000);
	plain_send(s, ep_port(ep), buf, 2048); /* exactly a buffer: fine */
	assert_int_equal(recv1(ep, &d, 2000), 1);
	assert_int_equal(d.len, 2048);
	check(payload(ep, &d), 2048, 9);
	assert_int_equal(unet_release(ep, &d, 1), 0);
	assert_int_equal(recv1(ep, &d, 50), 0);
	unet_get_stats(ep, &st);
	assert_int_equal(st.rx_drop_toobig, 2);
	assert_int_equal(st.rx_msgs, 1);

	/* A udp sender may send it (the wire allows it); the receiver drops. */
	struct unet_ep *tx = mk_ep(nic, NULL);
	int ct = chan_to_ep(tx, ep);
	assert_true(ct >= 0);
	addr_of(r, ep_port(tx));
	assert_true(unet_chan_open(ep, r, 0) >= 0);
	send_pattern(tx, ct, 5000, 1, 0);
	send_pattern(tx, ct, 100, 2, 0);
	assert_int_equal(recv1(ep, &d, 2000), 1);
	assert_int_equal(d.len, 100);
	check(payload(ep, &d), 100, 2);
	assert_int_equal(unet_release(ep, &d, 1), 0);
	unet_get_stats(ep, &st);
	assert_int_equal(st.rx_drop_toobig, 3);
	/* Every buffer came back: four more segment messages fit at once. */
	for (uint32_t i = 0; i < 4; i++)
		send_pattern(tx, ct, 1000, 10 + i, 0);
	struct unet_desc ds[4];
	int got = 0;
	for (uint64_t end = now_ms() + 2000; got < 4 && now_ms() < end;) {
		int n = unet_recv(ep, ds + got, 4 - (unsigned)got);
		got += n;
		if (n == 0)
			unet_wait(ep, 10);
	}
	assert_int_equal(got, 4);
	for (int i = 0; i < 4; i++)
		check(payload(ep, &ds[i]), 1000, 10 + (uint32_t)i);
	assert_int_equal(unet_release(ep, ds, 4), 0);
	close(s);
	unet_ep_destroy(tx);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

/* ---- bad input ------------------------------------------------------------------ */

static void test_bad_channel_strings(void **state)
{
	struct unet_nic *nic;
	const char *bad[] = {"127.0.0.1", "127.0.0.1:", ":7000", "127.0.0.1:0", "127.0.0.1:65536",
			     "127.0.0.1:70a", "localhost:7000", "1.2.3:7000", "0.0.0.0:7000",
			     "127.0.0.1:+80", " 127.0.0.1:80", "127.0.0.1: 80", "127.0.0.1:-1",
			     "127.0.0.1:123456", "300.0.0.1:80", "127.0.0.1:80:80", "::1:80",
			     "1111111111111111.0.0.1:80"};
	char longname[300];

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int rc = unet_chan_open(ep, bad[i], 0);
		if (rc != -EINVAL)
			fail_msg("chan_open(\"%s\") = %d, expected -EINVAL", bad[i], rc);
	}
	memset(longname, '1', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = 0;
	assert_int_equal(unet_chan_open(ep, longname, 0), -ENAMETOOLONG);
	assert_int_equal(unet_chan_open(ep, "", 0), -EINVAL);

	int c = unet_chan_open(ep, "127.0.0.1:9", 0);
	assert_true(c >= 0);
	assert_int_equal(unet_chan_open(ep, "127.0.0.1:9", 0), -EISCONN);
	int c2 = unet_chan_open(ep, "127.0.0.2:9", 0);
	assert_true(c2 >= 0 && c2 != c);
	assert_int_equal(unet_chan_close(ep, (unsigned)c), 0);
	assert_int_equal(unet_chan_close(ep, (unsigned)c), -ENOTCONN);
	assert_int_equal(unet_chan_open(ep, "127.0.0.1:9", 0), c);
	/* Sends on closed or unknown channels are refused up front. */
	assert_int_equal(unet_send_inline(ep, 63, "x", 1), -ENOTCONN);
	assert_int_equal(unet_send_inline(ep, 5000, "x", 1), -ENOTCONN);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

/* Many channels: the source table keeps every one of them distinct, also
 * after churn (close every other one, reopen). */
static void test_many_channels(void **state)
{
	struct unet_nic *nic;
	struct unet_ep_attr at = {.max_chans = 16};
	enum { N = 16 };
	int fds[N], ch[N];
	unsigned ports[N];
	char r[64];
	struct unet_desc d;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, &at);
	for (int i = 0; i < N; i++) {
		fds[i] = plain_sock(&ports[i]);
		addr_of(r, ports[i]);
		ch[i] = unet_chan_open(ep, r, 0);
		assert_true(ch[i] >= 0);
	}
	assert_int_equal(unet_chan_open(ep, "127.0.0.3:1", 0), -EMFILE);
	for (int i = 0; i < N; i += 2) {
		assert_int_equal(unet_chan_close(ep, (unsigned)ch[i]), 0);
		addr_of(r, ports[i]);
		ch[i] = unet_chan_open(ep, r, 0);
		assert_true(ch[i] >= 0);
	}
	for (int k = 0; k < 2; k++)
		for (int i = 0; i < N; i++) {
			uint8_t b = (uint8_t)(i * 3 + k);
			plain_send(fds[i], ep_port(ep), &b, 1);
			assert_int_equal(recv1(ep, &d, 2000), 1);
			assert_int_equal(d.chan, ch[i]);
			assert_int_equal(d.data[0], b);
		}
	for (int i = 0; i < N; i++)
		close(fds[i]);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

static void test_release_errors(void **state)
{
	struct unet_nic *nic;
	struct unet_ep_attr at = {.rx_bufs = 4, .rx_buf_size = 1024, .seg_size = 10000};
	struct unet_desc d, x;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *a = mk_ep(nic, &at), *b = mk_ep(nic, NULL);
	int ca = chan_to_ep(a, b), cb = chan_to_ep(b, a);
	assert_true(ca >= 0 && cb >= 0);
	send_pattern(b, cb, 500, 3, 0);
	assert_int_equal(recv1(a, &d, 2000), 1);
	assert_int_equal(d.flags, 0);
	assert_true(d.off >= 10000); /* beyond the application part */
	check(payload(a, &d), 500, 3);

	x = d;
	x.off = 0; /* application part */
	assert_int_equal(unet_release(a, &x, 1), -ERANGE);
	x.off = d.off + 1; /* not a buffer boundary */
	assert_int_equal(unet_release(a, &x, 1), -ERANGE);
	x.off = d.off - 1;
	assert_int_equal(unet_release(a, &x, 1), -ERANGE);
	x.off = d.off + 4 * 1024; /* past the pool (the first message took buffer 0) */
	assert_int_equal(unet_release(a, &x, 1), -ERANGE);
	x.off = UINT64_MAX - 7;
	assert_int_equal(unet_release(a, &x, 1), -ERANGE);
	x.off = d.off + 1024; /* a pool buffer the NIC still owns */
	assert_int_equal(unet_release(a, &x, 1), -EALREADY);

	assert_int_equal(unet_release(a, &d, 1), 0);
	assert_int_equal(unet_release(a, &d, 1), -EALREADY);
	/* Inline descriptors need no release; releasing them is harmless. */
	x = d;
	x.flags = UNET_DF_INLINE;
	assert_int_equal(unet_release(a, &x, 1), 0);
	assert_int_equal(unet_release(a, NULL, 0), 0);

	/* A batch stops at the first bad one; those before it are released. */
	struct unet_desc two[3];
	send_pattern(b, cb, 600, 4, 0);
	send_pattern(b, cb, 700, 5, 0);
	int got = 0;
	for (uint64_t end = now_ms() + 2000; got < 2 && now_ms() < end;) {
		int n = unet_recv(a, two + got, 2 - (unsigned)got);
		got += n;
		if (!n)
			unet_wait(a, 10);
	}
	assert_int_equal(got, 2);
	two[2] = two[1];
	two[1] = two[0];
	assert_int_equal(unet_release(a, two, 3), -EALREADY);
	assert_int_equal(unet_release(a, &two[0], 1), -EALREADY);
	assert_int_equal(unet_release(a, &two[2], 1), 0);
	unet_ep_destroy(a);
	unet_ep_destroy(b);
	unet_nic_close(nic);
}

/* A send the kernel refuses completes with its errno, and nothing leaves:
 * the limited broadcast address without SO_BROADCAST is refused before a
 * packet exists. */
static void test_send_refused(void **state)
{
	struct unet_nic *nic;
	struct unet_comp c;
	struct unet_stats st;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, NULL);
	int ch = unet_chan_open(ep, "255.255.255.255:9", 0);
	assert_true(ch >= 0);
	struct unet_desc d[2] = {{.chan = (uint16_t)ch, .off = 64, .len = 100},
				 {.chan = (uint16_t)ch, .len = 3, .flags = UNET_DF_INLINE}};
	assert_int_equal(unet_send(ep, d, 2), 2);
	assert_int_equal(unet_poll_comp(ep, &c, 1), 1);
	assert_true(c.status < 0);
	assert_int_equal(c.off, 64);
	assert_int_equal(c.len, 100);
	unet_get_stats(ep, &st);
	assert_int_equal(st.tx_dropped, 2);
	assert_int_equal(st.tx_msgs, 0);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

/* ---- more than the free queue holds ------------------------------------------ */

static void test_burst_beyond_free_queue(void **state)
{
	struct unet_nic *nic;
	struct unet_ep_attr rat = {.rx_bufs = 8, .rq_depth = 16, .rx_buf_size = 2048};
	enum { N = 3000, LEN = 200 };
	struct unet_desc d[32];
	struct unet_stats rs, ts;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *rx = mk_ep(nic, &rat), *tx = mk_ep(nic, NULL);
	int cr = chan_to_ep(rx, tx), ct = chan_to_ep(tx, rx);
	assert_true(cr >= 0 && ct >= 0);
	/* A small kernel queue, so that the burst must overflow it. */
	int small = 16384;
	assert_int_equal(setsockopt(unet_fd(rx), SOL_SOCKET, SO_RCVBUF, &small, sizeof(small)), 0);

	uint8_t *seg = unet_ep_segment(tx, NULL);
	for (uint32_t i = 0; i < N;) {
		uint32_t k = N - i < 32 ? N - i : 32;
		for (uint32_t j = 0; j < k; j++) {
			uint64_t off = (uint64_t)((i + j) % 256) * 4096;
			memcpy(seg + off, &(uint32_t){i + j}, 4);
			fill(seg + off + 4, LEN - 4, i + j);
			d[j] = (struct unet_desc){.chan = (uint16_t)ct, .off = off, .len = LEN};
		}
		int n = unet_send(tx, d, k);
		assert_true(n > 0);
		i += (uint32_t)n;
		struct unet_comp c[64];
		int nc;
		while ((nc = unet_poll_comp(tx, c, 64)) > 0)
			for (int j = 0; j < nc; j++)
				assert_int_equal(c[j].status, 0);
	}

	/* Hold every buffer: receive stops at rx_bufs, nothing breaks. */
	int held = 0;
	struct unet_desc h[8];
	for (int tries = 0; tries < 100 && held < 8; tries++)
		held += unet_recv(rx, h + held, 8 - (unsigned)held);
	assert_int_equal(held, 8);
	assert_int_equal(unet_recv(rx, d, 32), 0);
	assert_int_equal(unet_recv(rx, d, 32), 0);
	assert_int_equal(unet_wait(rx, 0), 1); /* work waits: buffers to give back */

	/* Release and drain; what arrives is in order and intact. */
	uint32_t last = 0, got = 0;
	for (int i = 0; i < held; i++) {
		uint32_t seq;
		memcpy(&seq, payload(rx, &h[i]), 4);
		assert_true(got == 0 || seq > last);
		check(payload(rx, &h[i]) + 4, LEN - 4, seq);
		last = seq;
		got++;
	}
	assert_int_equal(unet_release(rx, h, 8), 0);
	for (uint64_t quiet = now_ms() + 200; now_ms() < quiet;) {
		int n = unet_recv(rx, d, 32);
		if (n == 0) {
			unet_wait(rx, 20);
			continue;
		}
		for (int i = 0; i < n; i++) {
			uint32_t seq;
			assert_int_equal(d[i].len, LEN);
			memcpy(&seq, payload(rx, &d[i]), 4);
			assert_true(seq > last && seq < N);
			check(payload(rx, &d[i]) + 4, LEN - 4, seq);
			last = seq;
			got++;
		}
		assert_int_equal(unet_release(rx, d, (unsigned)n), 0);
		quiet = now_ms() + 200;
	}
	unet_get_stats(rx, &rs);
	unet_get_stats(tx, &ts);
	assert_int_equal(ts.tx_msgs, N);
	assert_int_equal(rs.rx_msgs, got);
	assert_true(rs.rx_drop_full > 0);
	assert_int_equal(rs.rx_msgs + rs.rx_drop_full, N);
	assert_int_equal(rs.rx_drop_nochan + rs.rx_drop_toobig, 0);
	unet_ep_destroy(rx);
	unet_ep_destroy(tx);
	unet_nic_close(nic);
}

/* Messages already pulled from the kernel for a channel that then closes
 * are dropped with it, never surfaced under the slot's next channel. */
static void test_close_purges_queued(void **state)
{
	struct unet_nic *nic;
	struct unet_ep_attr at = {.rx_bufs = 8, .rq_depth = 32};
	struct unet_desc d;
	struct unet_stats st;
	unsigned p1, p2;
	char r[64];

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, &at);
	int s1 = plain_sock(&p1), s2 = plain_sock(&p2);
	addr_of(r, p1);
	int ch = unet_chan_open(ep, r, 0);
	assert_true(ch >= 0);
	uint8_t buf[300];
	memset(buf, 0xab, sizeof(buf));
	for (int i = 0; i < 6; i++)
		plain_send(s1, ep_port(ep), buf, i % 2 ? 8 : 300);
	/* unet_wait pulls them into the endpoint's receive queue. */
	uint64_t end = now_ms() + 2000;
	unet_get_stats(ep, &st);
	while (now_ms() < end && unet_wait(ep, 10) != 1)
		;
	usleep(20000);
	assert_int_equal(unet_wait(ep, 0), 1);
	assert_int_equal(unet_chan_close(ep, (unsigned)ch), 0);
	addr_of(r, p2);
	assert_int_equal(unet_chan_open(ep, r, 0), ch); /* same slot, new peer */
	plain_send(s2, ep_port(ep), "new", 3);
	assert_int_equal(recv1(ep, &d, 2000), 1);
	assert_int_equal(d.len, 3);
	assert_memory_equal(d.data, "new", 3);
	assert_int_equal(recv1(ep, &d, 50), 0);
	unet_get_stats(ep, &st);
	assert_int_equal(st.rx_msgs, 1);
	assert_int_equal(st.rx_drop_nochan, 6);
	/* The purged buffers went back: all eight can be filled again. */
	for (int i = 0; i < 8; i++)
		plain_send(s2, ep_port(ep), buf, 300);
	struct unet_desc ds[8];
	int got = 0;
	for (end = now_ms() + 2000; got < 8 && now_ms() < end;) {
		int n = unet_recv(ep, ds + got, 8 - (unsigned)got);
		got += n;
		if (!n)
			unet_wait(ep, 10);
	}
	assert_int_equal(got, 8);
	assert_int_equal(unet_release(ep, ds, 8), 0);
	close(s1);
	close(s2);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

/* ---- two processes ------------------------------------------------------------------ */

static int child_echo(int pipe_w, unsigned parent_port, int rounds)
{
	struct unet_nic *nic;
	struct unet_ep *ep;
	struct unet_ep_attr at = {.rx_buf_size = 16384, .rx_bufs = 32};
	struct unet_desc d[16];
	char r[64];

	if (unet_nic_open("udp", &nic) || unet_ep_create(nic, "0", &at, &ep))
		return 10;
	addr_of(r, parent_port);
	int ch = unet_chan_open(ep, r, 0);
	if (ch < 0)
		return 11;
	unsigned me = ep_port(ep);
	if (write(pipe_w, &me, sizeof(me)) != sizeof(me))
		return 12;
	uint8_t *seg = unet_ep_segment(ep, NULL);
	uint64_t end = now_ms() + 30000;
	for (int got = 0; got < rounds;) {
		if (now_ms() > end)
			return 13;
		int n = unet_recv(ep, d, 16);
		if (n == 0) {
			unet_wait(ep, 100);
			continue;
		}
		for (int i = 0; i < n; i++, got++) {
			struct unet_desc out = d[i];
			out.chan = (uint16_t)ch;
			if (d[i].chan != ch)
				return 14;
			if (!(d[i].flags & UNET_DF_INLINE)) {
				out.off = (uint64_t)(got % 32) * 16384;
				memcpy(seg + out.off, unet_ptr(ep, d[i].off), d[i].len);
				if (unet_release(ep, &d[i], 1))
					return 15;
			}
			int rc;
			while ((rc = unet_send(ep, &out, 1)) == -EAGAIN) {
				struct unet_comp c[16];
				unet_poll_comp(ep, c, 16);
			}
			if (rc != 1)
				return 16;
		}
		struct unet_comp c[16];
		int nc;
		while ((nc = unet_poll_comp(ep, c, 16)) > 0)
			for (int j = 0; j < nc; j++)
				if (c[j].status)
					return 17;
	}
	unet_ep_destroy(ep);
	unet_nic_close(nic);
	return 0;
}

static void test_two_processes(void **state)
{
	struct unet_nic *nic;
	struct unet_ep_attr at = {.rx_buf_size = 16384, .rx_bufs = 32};
	enum { ROUNDS = 2000, WINDOW = 8, STREAM = 2000 };
	int pfd[2];
	char r[64];
	unsigned cport;

	assert_int_equal(unet_nic_open("udp", &nic), 0);
	struct unet_ep *ep = mk_ep(nic, &at);
	assert_int_equal(pipe(pfd), 0);
	pid_t pid = fork();
	if (pid == 0) {
		close(pfd[0]);
		_exit(child_echo(pfd[1], ep_port(ep), ROUNDS + STREAM));
	}
	close(pfd[1]);
	assert_int_equal(read(pfd[0], &cport, sizeof(cport)), sizeof(cport));
	close(pfd[0]);
	addr_of(r, cport);
	int ch = unet_chan_open(ep, r, 0);
	assert_true(ch >= 0);

	/* Ping-pong, one message in flight. */
	for (uint32_t i = 0; i < ROUNDS; i++) {
		uint32_t len = i % 3 == 0 ? i % 49 : 49 + (i * 37) % 16000;
		struct unet_desc d;
		send_pattern(ep, ch, len, i, (uint64_t)(i % 64) * 16384);
		assert_int_equal(recv1(ep, &d, 5000), 1);
		assert_int_equal(d.chan, ch);
		assert_int_equal(d.len, len);
		check(payload(ep, &d), len, i);
		assert_int_equal(unet_release(ep, &d, 1), 0);
	}
	/* Pipelined: WINDOW messages in flight, echoes checked in order. */
	uint8_t *seg = unet_ep_segment(ep, NULL);
	uint32_t sent = 0, recvd = 0;
	uint64_t end = now_ms() + 20000;
	while (recvd < STREAM) {
		assert_true(now_ms() < end);
		while (sent < STREAM && sent - recvd < WINDOW) {
			uint64_t off = (uint64_t)(sent % 64) * 16384;
			fill(seg + off, 1000, sent);
			struct unet_desc d = {.chan = (uint16_t)ch, .off = off, .len = 1000};
			int rc = unet_send(ep, &d, 1);
			if (rc == -EAGAIN)
				break;
			assert_int_equal(rc, 1);
			sent++;
		}
		struct unet_comp c[16];
		int nc = unet_poll_comp(ep, c, 16);
		for (int j = 0; j < nc; j++)
			assert_int_equal(c[j].status, 0);
		struct unet_desc d[16];
		int n = unet_recv(ep, d, 16);
		if (n == 0) {
			unet_wait(ep, 100);
			continue;
		}
		for (int i = 0; i < n; i++) {
			assert_int_equal(d[i].len, 1000);
			check(payload(ep, &d[i]), 1000, recvd);
			recvd++;
		}
		assert_int_equal(unet_release(ep, d, (unsigned)n), 0);
	}
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	struct unet_stats st;
	unet_get_stats(ep, &st);
	assert_int_equal(st.tx_msgs, ROUNDS + STREAM);
	assert_int_equal(st.rx_msgs, ROUNDS + STREAM);
	assert_int_equal(st.rx_drop_full + st.rx_drop_nochan + st.rx_drop_toobig, 0);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

/* ---- blocking ------------------------------------------------------------------------ */

static void test_wait_wakes_on_arrival(void **state)
{
	struct unet_nic *nic;
	unsigned sp;
	char r[64];
	struct unet_desc d;
	struct unet_stats st;

	assert_int_equal(unet_nic_open("udp:" LO, &nic), 0);
	struct unet_ep *ep = mk_ep(nic, NULL);
	int s = plain_sock(&sp);
	addr_of(r, sp);
	int ch = unet_chan_open(ep, r, 0);
	assert_true(ch >= 0);

	/* Nothing comes: a timeout, after about the time asked. */
	uint64_t t0 = now_ms();
	assert_int_equal(unet_wait(ep, 60), 0);
	assert_true(now_ms() - t0 >= 55);

	unsigned port = ep_port(ep);
	pid_t pid = fork();
	if (pid == 0) {
		usleep(200000);
		struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
		sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		_exit(sendto(s, "wake", 4, 0, (struct sockaddr *)&sa, sizeof(sa)) == 4 ? 0 : 1);
	}
	t0 = now_ms();
	assert_int_equal(unet_wait(ep, 10000), 1);
	uint64_t dt = now_ms() - t0;
	assert_true(dt >= 150 && dt < 5000);
	unet_get_stats(ep, &st);
	assert_true(st.wakeups >= 1);
	assert_int_equal(unet_recv(ep, &d, 1), 1);
	assert_int_equal(d.chan, ch);
	assert_memory_equal(d.data, "wake", 4);
	int status;
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_int_equal(WEXITSTATUS(status), 0);

	/* The fd blocks like any socket once armed. */
	assert_int_equal(unet_arm(ep), 0);
	plain_send(s, ep_port(ep), "poll", 4);
	struct pollfd p = {.fd = unet_fd(ep), .events = POLLIN};
	assert_int_equal(poll(&p, 1, 2000), 1);
	assert_int_equal(unet_arm(ep), 1);
	assert_int_equal(unet_recv(ep, &d, 1), 1);
	assert_memory_equal(d.data, "poll", 4);
	close(s);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_create_reports_port),
		cmocka_unit_test(test_same_port_in_use),
		cmocka_unit_test(test_pingpong_sizes),
		cmocka_unit_test(test_plain_socket_interop),
		cmocka_unit_test(test_unknown_source_dropped),
		cmocka_unit_test(test_oversize_dropped),
		cmocka_unit_test(test_bad_channel_strings),
		cmocka_unit_test(test_many_channels),
		cmocka_unit_test(test_release_errors),
		cmocka_unit_test(test_send_refused),
		cmocka_unit_test(test_burst_beyond_free_queue),
		cmocka_unit_test(test_close_purges_queued),
		cmocka_unit_test(test_two_processes),
		cmocka_unit_test(test_wait_wakes_on_arrival),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
