/* test_xdp.c - the xdp NIC on a veth pair between two network namespaces the
 * test creates: xdp <-> xdp ping-pong in native and generic mode with every
 * byte checked, xdp <-> plain kernel UDP socket both ways (the kernel checks
 * our checksums: a bad one never arrives), the rest of the interface's
 * traffic (other UDP ports, TCP, ICMP, ARP) still reaching the kernel while
 * an endpoint is open, and bad input refused. Needs root; says
 * "skipped: <reason>" otherwise. Frames only ever travel between 10.77.x.y
 * addresses that exist inside the test's own namespaces. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "helpers/net_peer.h"
#include "helpers/netns.h"
#include "helpers/proc.h"
#include "unet/unet.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "[%d] %s:%d: check failed: %s\n", (int)getpid(),   \
				__FILE__, __LINE__, #cond);                                \
			return __LINE__ % 200 + 1;                                         \
		}                                                                          \
	} while (0)

struct shared {
	uint32_t ready[4];
	uint32_t go;
	uint32_t port[4];
	char info[2][256];
	struct unet_stats st[2];
};

static struct netns_pair P;
static struct shared *S;
static const char *g_mode; /* URI options for this test's endpoints */

static int pair_up(const struct netns_opts *o)
{
	const char *why = netns_unavailable();
	int rc;

	if (why) {
		printf("skipped: %s\n", why);
		return -1;
	}
	rc = netns_pair_create(&P, o);
	if (rc < 0) {
		printf("skipped: cannot create namespaces: %s\n", strerror(-rc));
		return -1;
	}
	S = proc_shared(sizeof(*S));
	return 0;
}

static int teardown(void **state)
{
	netns_pair_destroy(&P);
	if (S)
		proc_unshare(S, sizeof(*S));
	S = NULL;
	return 0;
}

/* Open the xdp NIC on our side's veth end and an endpoint on `port`. */
static int xdp_open(struct np *p, int side, const char *opts, const char *port)
{
	char uri[128];
	int rc;

	memset(p, 0, sizeof(*p));
	snprintf(uri, sizeof(uri), "xdp:%s%s", P.dev[side], opts ? opts : "");
	rc = unet_nic_open(uri, &p->nic);
	if (rc < 0)
		return rc;
	rc = unet_ep_create(p->nic, port, NULL, &p->ep);
	if (rc < 0) {
		fprintf(stderr, "ep_create(%s, %s): %s\n", uri, port, unet_strerror(rc));
		unet_nic_close(p->nic);
		p->nic = NULL;
		return rc;
	}
	p->seg = unet_ep_segment(p->ep, &p->seg_size);
	return 0;
}

static int chan_to(struct np *p, int side, unsigned port)
{
	char r[64];

	snprintf(r, sizeof(r), "%s:%u", P.ip[side], port);
	return unet_chan_open(p->ep, r, 2000);
}

/* ---- xdp <-> xdp --------------------------------------------------------- */

static const uint32_t sizes[] = {1, 8, 47, 48, 49, 64, 100, 512, 1000, 1400, 1472};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define ROUNDS 600

static int echo_child(void *arg)
{
	struct np p;
	struct unet_desc d[16];
	int ch;

	CHECK(xdp_open(&p, 1, g_mode, "7001") == 0);
	CHECK((ch = chan_to(&p, 0, 7000)) >= 0);
	unet_ep_info(p.ep, S->info[1], sizeof(S->info[1]));
	proc_set_u32(&S->ready[1], 1);
	for (int got = 0; got < ROUNDS;) {
		int n = np_recv(&p, d, 16, 5000);
		CHECK(n > 0);
		for (int i = 0; i < n; i++, got++) {
			struct unet_desc out = d[i];
			CHECK(d[i].chan == ch);
			out.chan = (uint16_t)ch;
			if (!(d[i].flags & UNET_DF_INLINE)) {
				memcpy(p.seg, unet_ptr(p.ep, d[i].off), d[i].len);
				out.off = 0;
				/* One call, the same frame twice: the first is
				 * given back (else the echo runs dry), the
				 * second refused. */
				struct unet_desc twice[2] = {d[i], d[i]};
				CHECK(unet_release(p.ep, twice, 2) == -EALREADY);
				CHECK(unet_release(p.ep, &d[i], 1) == -EALREADY);
			}
			CHECK(np_send(&p, &out, 2000) == 0);
			struct unet_comp c[8];
			unet_poll_comp(p.ep, c, 8);
		}
	}
	unet_get_stats(p.ep, &S->st[1]);
	np_close(&p);
	return 0;
}

static int ping_child(void *arg)
{
	struct np p;
	int ch;

	CHECK(proc_wait_u32(&S->ready[1], 1, 10000) == 0);
	CHECK(xdp_open(&p, 0, g_mode, "7000") == 0);
	CHECK((ch = chan_to(&p, 1, 7001)) >= 0);
	CHECK(unet_chan_mtu(p.ep, (unsigned)ch) == 1472);
	unet_ep_info(p.ep, S->info[0], sizeof(S->info[0]));
	for (int r = 0; r < ROUNDS; r++) {
		uint32_t len = sizes[r % NSIZES];
		struct unet_desc d = {.chan = (uint16_t)ch, .len = len}, in;
		if (len <= UNET_INLINE_MAX) {
			d.flags = UNET_DF_INLINE;
			np_fill(d.data, len, (uint64_t)r);
		} else {
			d.off = 8192 + (uint64_t)(r % 7) * 3; /* odd offsets too */
			np_fill(p.seg + d.off, len, (uint64_t)r);
		}
		CHECK(np_send(&p, &d, 2000) == 0);
		CHECK(np_recv(&p, &in, 1, 2000) == 1);
		CHECK(in.len == len);
		CHECK(in.chan == ch);
		CHECK(((in.flags & UNET_DF_INLINE) != 0) == (len <= UNET_INLINE_MAX));
		CHECK(np_check(np_payload(&p, &in), len, (uint64_t)r) == 0);
		CHECK(unet_release(p.ep, &in, 1) == 0);
		struct unet_comp c[8];
		int nc = unet_poll_comp(p.ep, c, 8);
		for (int i = 0; i < nc; i++)
			CHECK(c[i].status == 0);
	}
	unet_get_stats(p.ep, &S->st[0]);
	np_close(&p);
	return 0;
}

static void pingpong(const char *mode, const char *want)
{
	if (pair_up(NULL) < 0) {
		skip();
		return;
	}
	g_mode = mode;
	pid_t e = netns_fork(P.ns[1], echo_child, NULL);
	int rp = netns_run(P.ns[0], ping_child, NULL, 40000);
	int re = proc_wait(e, 10000);
	printf("  side 0: %s\n  side 1: %s\n", S->info[0], S->info[1]);
	assert_int_equal(rp, 0);
	assert_int_equal(re, 0);
	assert_non_null(strstr(S->info[0], want));
	assert_non_null(strstr(S->info[1], want));
	assert_int_equal(S->st[0].tx_msgs, ROUNDS);
	assert_int_equal(S->st[0].rx_msgs, ROUNDS);
	assert_int_equal(S->st[1].rx_msgs, ROUNDS);
	assert_int_equal(S->st[0].rx_drop_bad + S->st[1].rx_drop_bad, 0);
	assert_int_equal(S->st[0].rx_drop_nochan + S->st[1].rx_drop_nochan, 0);
}

static void test_pingpong_auto(void **state)
{
	pingpong("", "bind=");
}

static void test_pingpong_native(void **state)
{
	pingpong("?mode=native", "mode=native");
}

static void test_pingpong_generic(void **state)
{
	pingpong("?mode=generic", "mode=generic");
}

/* ---- xdp <-> kernel UDP socket ------------------------------------------ */

static int kernel_child(void *arg)
{
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(9000)};
	struct sockaddr_in ep = {.sin_family = AF_INET, .sin_port = htons(7000)};
	uint8_t buf[2048];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	struct timeval tv = {.tv_sec = 3};

	inet_pton(AF_INET, P.ip[1], &me.sin_addr);
	inet_pton(AF_INET, P.ip[0], &ep.sin_addr);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	proc_set_u32(&S->ready[1], 1);
	CHECK(proc_wait_u32(&S->ready[0], 1, 10000) == 0);
	/* kernel -> endpoint */
	for (unsigned r = 0; r < NSIZES; r++) {
		np_fill(buf, sizes[r], r);
		CHECK(sendto(fd, buf, sizes[r], 0, (struct sockaddr *)&ep, sizeof(ep)) ==
		      (ssize_t)sizes[r]);
		usleep(2000); /* the endpoint's rx frames are few; no burst needed */
	}
	/* endpoint -> kernel: the kernel verifies the UDP checksum for us */
	for (unsigned r = 0; r < NSIZES; r++) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		CHECK(n == (ssize_t)sizes[r]);
		CHECK(from.sin_addr.s_addr == ep.sin_addr.s_addr && from.sin_port == htons(7000));
		CHECK(np_check(buf, (uint32_t)n, 100 + r) == 0);
	}
	close(fd);
	return 0;
}

static int xdp_kernel_child(void *arg)
{
	struct np p;
	struct unet_desc in;
	int ch;

	CHECK(proc_wait_u32(&S->ready[1], 1, 10000) == 0);
	CHECK(xdp_open(&p, 0, g_mode, "7000") == 0);
	CHECK((ch = chan_to(&p, 1, 9000)) >= 0);
	unet_ep_info(p.ep, S->info[0], sizeof(S->info[0]));
	proc_set_u32(&S->ready[0], 1);
	for (unsigned r = 0; r < NSIZES; r++) {
		if (np_recv(&p, &in, 1, 3000) != 1) {
			struct unet_stats st;
			unet_get_stats(p.ep, &st);
			fprintf(stderr, "rx %u: bad %llu nochan %llu nobuf %llu\n", r,
				(unsigned long long)st.rx_drop_bad, (unsigned long long)st.rx_drop_nochan,
				(unsigned long long)st.rx_drop_nobuf);
			return 99;
		}
		CHECK(in.len == sizes[r] && in.chan == ch);
		CHECK(np_check(np_payload(&p, &in), in.len, r) == 0);
		CHECK(unet_release(p.ep, &in, 1) == 0);
	}
	for (unsigned r = 0; r < NSIZES; r++) {
		struct unet_desc d = {.chan = (uint16_t)ch, .len = sizes[r], .off = 100 * r};
		np_fill(p.seg + d.off, d.len, 100 + r);
		CHECK(np_send(&p, &d, 2000) == 0);
	}
	struct unet_comp c[16];
	int nc = 0;
	for (int i = 0; i < 100 && nc < (int)NSIZES; i++)
		nc += unet_poll_comp(p.ep, c, 16);
	CHECK(nc == (int)NSIZES);
	usleep(100000); /* let the kernel side read before we go */
	unet_get_stats(p.ep, &S->st[0]);
	np_close(&p);
	return 0;
}

static void kernel_interop(const char *mode)
{
	if (pair_up(NULL) < 0) {
		skip();
		return;
	}
	g_mode = mode;
	pid_t k = netns_fork(P.ns[1], kernel_child, NULL);
	int rx = netns_run(P.ns[0], xdp_kernel_child, NULL, 30000);
	int rk = proc_wait(k, 10000);
	printf("  %s\n", S->info[0]);
	assert_int_equal(rx, 0);
	assert_int_equal(rk, 0);
	assert_int_equal(S->st[0].rx_drop_bad, 0);
}

static void test_kernel_interop_native(void **state)
{
	kernel_interop("?mode=native");
}

static void test_kernel_interop_generic(void **state)
{
	kernel_interop("?mode=generic");
}

/* ---- the rest of the interface's traffic still reaches the kernel ------- */

static int icmp_ping(const char *dst)
{
	struct sockaddr_in to = {.sin_family = AF_INET};
	struct icmphdr req = {.type = ICMP_ECHO, .un.echo.id = htons(0x7557)};
	uint8_t buf[256];
	int fd = socket(AF_INET, SOCK_RAW, IPPROTO_ICMP);

	if (fd < 0)
		return -errno;
	inet_pton(AF_INET, dst, &to.sin_addr);
	for (int seq = 1; seq <= 3; seq++) {
		req.un.echo.sequence = htons((uint16_t)seq);
		req.checksum = 0;
		uint32_t sum = 0;
		const uint16_t *w = (const uint16_t *)&req;
		for (unsigned i = 0; i < sizeof(req) / 2; i++)
			sum += w[i];
		while (sum >> 16)
			sum = (sum & 0xffff) + (sum >> 16);
		req.checksum = (uint16_t)~sum;
		sendto(fd, &req, sizeof(req), 0, (struct sockaddr *)&to, sizeof(to));
		struct pollfd pf = {.fd = fd, .events = POLLIN};
		while (poll(&pf, 1, 1000) == 1) {
			ssize_t n = recv(fd, buf, sizeof(buf), 0);
			if (n < 28)
				continue;
			const struct icmphdr *h = (const struct icmphdr *)(buf + (buf[0] & 15) * 4);
			if (h->type == ICMP_ECHOREPLY && h->un.echo.id == req.un.echo.id) {
				close(fd);
				return 0;
			}
		}
	}
	close(fd);
	return -ETIMEDOUT;
}

static int others_server(void *arg)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7001)};
	struct np p;
	struct unet_desc d;
	uint8_t buf[64];
	int one = 1;

	CHECK(xdp_open(&p, 0, g_mode, "7000") == 0);
	CHECK(chan_to(&p, 1, 7000) >= 0); /* a channel to the very port the client uses */
	inet_pton(AF_INET, P.ip[0], &a.sin_addr);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(u >= 0 && bind(u, (struct sockaddr *)&a, sizeof(a)) == 0);
	a.sin_port = htons(7002);
	int t = socket(AF_INET, SOCK_STREAM, 0);
	setsockopt(t, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	CHECK(t >= 0 && bind(t, (struct sockaddr *)&a, sizeof(a)) == 0 && listen(t, 4) == 0);
	proc_set_u32(&S->ready[0], 1);
	/* UDP echo on another port of the same address, then one TCP accept */
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	struct pollfd pf = {.fd = u, .events = POLLIN};
	CHECK(poll(&pf, 1, 5000) == 1);
	ssize_t n = recvfrom(u, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
	CHECK(n == 5 && memcmp(buf, "hello", 5) == 0);
	CHECK(sendto(u, "olleh", 5, 0, (struct sockaddr *)&from, fl) == 5);
	pf.fd = t;
	CHECK(poll(&pf, 1, 5000) == 1);
	int c = accept(t, NULL, NULL);
	CHECK(c >= 0);
	CHECK(read(c, buf, 3) == 3 && memcmp(buf, "tcp", 3) == 0);
	CHECK(proc_wait_u32(&S->go, 1, 10000) == 0);
	/* none of that was the endpoint's */
	CHECK(unet_recv(p.ep, &d, 1) == 0);
	unet_get_stats(p.ep, &S->st[0]);
	close(c);
	close(t);
	close(u);
	np_close(&p);
	return 0;
}

static int others_client(void *arg)
{
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(7001)};
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(7000)};
	uint8_t buf[16];

	CHECK(proc_wait_u32(&S->ready[0], 1, 10000) == 0);
	inet_pton(AF_INET, P.ip[0], &to.sin_addr);
	inet_pton(AF_INET, P.ip[1], &me.sin_addr);
	int u = socket(AF_INET, SOCK_DGRAM, 0);
	struct timeval tv = {.tv_sec = 3};
	setsockopt(u, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	CHECK(bind(u, (struct sockaddr *)&me, sizeof(me)) == 0);
	CHECK(sendto(u, "hello", 5, 0, (struct sockaddr *)&to, sizeof(to)) == 5);
	CHECK(recv(u, buf, sizeof(buf), 0) == 5 && memcmp(buf, "olleh", 5) == 0);
	int t = socket(AF_INET, SOCK_STREAM, 0);
	to.sin_port = htons(7002);
	CHECK(connect(t, (struct sockaddr *)&to, sizeof(to)) == 0);
	CHECK(write(t, "tcp", 3) == 3);
	CHECK(icmp_ping(P.ip[0]) == 0);
	close(t);
	close(u);
	return 0;
}

static void test_other_traffic_reaches_kernel(void **state)
{
	char out[512];

	if (pair_up(NULL) < 0) {
		skip();
		return;
	}
	g_mode = "";
	/* Empty neighbour tables: both kernels must ARP through the program. */
	netns_sh(P.ns[0], NULL, 0, "ip neigh flush dev %s", P.dev[0]);
	netns_sh(P.ns[1], NULL, 0, "ip neigh flush dev %s", P.dev[1]);
	pid_t srv = netns_fork(P.ns[0], others_server, NULL);
	int rc = netns_run(P.ns[1], others_client, NULL, 20000);
	proc_set_u32(&S->go, 1);
	assert_int_equal(rc, 0);
	assert_int_equal(proc_wait(srv, 10000), 0);
	assert_int_equal(S->st[0].rx_msgs, 0);
	assert_int_equal(S->st[0].rx_drop_nochan + S->st[0].rx_drop_bad, 0);
	assert_int_equal(netns_sh(P.ns[1], out, sizeof(out), "ip neigh show %s", P.ip[0]), 0);
	assert_non_null(strstr(out, "lladdr"));
}

/* ---- bad input ------------------------------------------------------------ */

static int bad_input_child(void *arg)
{
	struct unet_nic *nic;
	struct unet_ep *ep, *ep2;
	char uri[128], r[64];
	struct unet_ep_attr big = {.rx_buf_size = 8192};

	CHECK(unet_nic_open("xdp:", &nic) == -EINVAL);
	CHECK(unet_nic_open("xdp:nosuchdev0", &nic) == -ENODEV);
	CHECK(unet_nic_open("xdp:averyveryverylongifname", &nic) == -ENAMETOOLONG);
	snprintf(uri, sizeof(uri), "xdp:%s?mode=fast", P.dev[0]);
	CHECK(unet_nic_open(uri, &nic) == -EINVAL);
	snprintf(uri, sizeof(uri), "xdp:%s?queue=x", P.dev[0]);
	CHECK(unet_nic_open(uri, &nic) == -EINVAL);
	snprintf(uri, sizeof(uri), "xdp:%s?queue=1000", P.dev[0]);
	CHECK(unet_nic_open(uri, &nic) == -EINVAL);
	snprintf(uri, sizeof(uri), "xdp:%s?ip=1.2.3", P.dev[0]);
	CHECK(unet_nic_open(uri, &nic) == -EINVAL);
	snprintf(uri, sizeof(uri), "xdp:%s?color=red", P.dev[0]);
	CHECK(unet_nic_open(uri, &nic) == -EINVAL);
	snprintf(uri, sizeof(uri), "xdp:%s?mode=generic&queue=0", P.dev[0]);
	CHECK(unet_nic_open(uri, &nic) == 0);
	CHECK(strcmp(unet_nic_kind(nic), "xdp") == 0);
	CHECK(unet_ep_create(nic, "http", NULL, &ep) == -EINVAL);
	CHECK(unet_ep_create(nic, "70000", NULL, &ep) == -EINVAL);
	CHECK(unet_ep_create(nic, "-1", NULL, &ep) == -EINVAL);
	CHECK(unet_ep_create(nic, "7000", &big, &ep) == -EINVAL);

	/* A port a kernel socket holds is not ours to take. */
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(7005)};
	inet_pton(AF_INET, P.ip[0], &a.sin_addr);
	int k = socket(AF_INET, SOCK_DGRAM, 0);
	CHECK(bind(k, (struct sockaddr *)&a, sizeof(a)) == 0);
	CHECK(unet_ep_create(nic, "7005", NULL, &ep) == -EADDRINUSE);
	close(k);

	CHECK(unet_ep_create(nic, "0", NULL, &ep) == 0);
	CHECK(atoi(unet_ep_name(ep)) > 0); /* "0" became the port the kernel chose */
	/* One socket per queue: a second endpoint on queue 0 is refused. */
	CHECK(unet_ep_create(nic, "7006", NULL, &ep2) == -EBUSY);

	CHECK(unet_chan_open(ep, "10.77.1.2", 0) == -EINVAL);
	CHECK(unet_chan_open(ep, "10.77.1.2:0", 0) == -EINVAL);
	CHECK(unet_chan_open(ep, "10.77.1.2:65536", 0) == -EINVAL);
	CHECK(unet_chan_open(ep, "300.1.1.1:5", 0) == -EINVAL);
	CHECK(unet_chan_open(ep, "peer:5", 0) == -EINVAL);
	CHECK(unet_chan_open(ep, "192.0.2.1:5", 0) == -EHOSTUNREACH); /* no route */
	CHECK(unet_chan_open(ep, "127.0.0.1:5", 0) == -EHOSTUNREACH);
	snprintf(r, sizeof(r), "10.77.%u.99:5", P.subnet); /* on-link, nobody there */
	CHECK(unet_chan_open(ep, r, 0) == -EHOSTUNREACH);
	snprintf(r, sizeof(r), "%s:7000", P.ip[1]);
	int ch = unet_chan_open(ep, r, 1000);
	CHECK(ch >= 0);
	CHECK(unet_chan_open(ep, r, 1000) == -EEXIST);
	int mtu = unet_chan_mtu(ep, (unsigned)ch);
	CHECK(mtu == 1472);

	size_t segsz;
	uint8_t *seg = unet_ep_segment(ep, &segsz);
	CHECK(seg != NULL && segsz >= (1u << 20));
	struct unet_desc d = {.chan = (uint16_t)ch, .len = (uint32_t)mtu + 1};
	CHECK(unet_send(ep, &d, 1) == -EMSGSIZE);
	d.len = 16;
	d.off = segsz - 8;
	CHECK(unet_send(ep, &d, 1) == -ERANGE);
	d.chan = 63;
	d.off = 0;
	CHECK(unet_send(ep, &d, 1) == -ENOTCONN);
	/* Releasing what was never received: application part, beyond the
	 * rx frames, inline/event descriptors are no-ops. */
	struct unet_desc rel = {.off = 0, .len = 10};
	CHECK(unet_release(ep, &rel, 1) == -ERANGE);
	rel.off = segsz + 64 * 4096 + 10 * 4096;
	CHECK(unet_release(ep, &rel, 1) == -ERANGE);
	rel.off = segsz + 256 + 42; /* the first rx frame, with the kernel */
	CHECK(unet_release(ep, &rel, 1) == -EALREADY);
	rel.flags = UNET_DF_INLINE;
	CHECK(unet_release(ep, &rel, 1) == 0);
	CHECK(unet_chan_close(ep, (unsigned)ch) == 0);
	CHECK(unet_chan_close(ep, (unsigned)ch) == -ENOTCONN);
	unet_ep_destroy(ep);
	unet_nic_close(nic);
	return 0;
}

static void test_bad_input(void **state)
{
	if (pair_up(NULL) < 0) {
		skip();
		return;
	}
	assert_int_equal(netns_run(P.ns[0], bad_input_child, NULL, 20000), 0);
}

/* ---- under `ip netns exec`, which remounts /sys and hides bpffs ---------- */

/* Run as "test_xdp --open DEV": create an endpoint, say how it runs, close. */
static int open_and_close(const char *dev)
{
	struct np p;
	char uri[64], info[256];
	int rc;

	snprintf(uri, sizeof(uri), "xdp:%s", dev);
	rc = np_open(&p, uri, "7000", NULL);
	if (rc < 0) {
		printf("open: %s\n", unet_strerror(rc));
		return 1;
	}
	unet_ep_info(p.ep, info, sizeof(info));
	printf("%s\n", info);
	np_close(&p);
	return 0;
}

static char self_path[512];

static void test_under_ip_netns_exec(void **state)
{
	char out[512];

	if (pair_up(NULL) < 0) {
		skip();
		return;
	}
	int rc = netns_sh(P.ns[0], out, sizeof(out), "%s --open %s", self_path, P.dev[0]);
	printf("  %s", out);
	assert_int_equal(rc, 0);
	assert_non_null(strstr(out, "xdp dev="));
	rc = netns_sh(NULL, out, sizeof(out), "ip -n %s link show dev %s", P.ns[0], P.dev[0]);
	assert_int_equal(rc, 0);
	assert_null(strstr(out, "xdp"));
}

int main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "--open") == 0)
		return open_and_close(argv[2]);
	if (readlink("/proc/self/exe", self_path, sizeof(self_path) - 1) < 0)
		strcpy(self_path, argv[0]);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_pingpong_auto, teardown),
		cmocka_unit_test_teardown(test_pingpong_native, teardown),
		cmocka_unit_test_teardown(test_pingpong_generic, teardown),
		cmocka_unit_test_teardown(test_kernel_interop_native, teardown),
		cmocka_unit_test_teardown(test_kernel_interop_generic, teardown),
		cmocka_unit_test_teardown(test_other_traffic_reaches_kernel, teardown),
		cmocka_unit_test_teardown(test_bad_input, teardown),
		cmocka_unit_test_teardown(test_under_ip_netns_exec, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
