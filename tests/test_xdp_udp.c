/* test_xdp_udp.c - the wire NICs across a veth pair between two namespaces
 * the test creates: udp-NIC <-> udp-NIC, udp-NIC <-> plain kernel UDP socket
 * both ways, and xdp <-> udp-NIC (the two NICs put the same raw UDP on the
 * wire, so they are each other's legacy peer). Every byte is checked.
 * Needs root; says "skipped: <reason>" otherwise. */
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

static const uint32_t sizes[] = {1, 8, 48, 49, 200, 1000, 1472};
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))
#define ROUNDS 300

struct shared {
	uint32_t ready[2];
	struct unet_stats st[2];
	char info[2][256];
};

static struct netns_pair P;
static struct shared *S;
static char g_uri[2][64]; /* per side; "" = a plain kernel socket */

static int teardown(void **state)
{
	netns_pair_destroy(&P);
	if (S)
		proc_unshare(S, sizeof(*S));
	S = NULL;
	return 0;
}

/* side 1 echoes ROUNDS messages back to side 0 */
static int echo_ep(void *arg)
{
	struct np p;
	struct unet_desc d[8];
	int ch;

	CHECK(np_open(&p, g_uri[1], "7001", NULL) == 0);
	CHECK((ch = np_chan(&p, P.ip[0], 7000, 2000)) >= 0);
	unet_ep_info(p.ep, S->info[1], sizeof(S->info[1]));
	proc_set_u32(&S->ready[1], 1);
	for (int got = 0; got < ROUNDS;) {
		int n = np_recv(&p, d, 8, 5000);
		CHECK(n > 0);
		for (int i = 0; i < n; i++, got++) {
			struct unet_desc out = d[i];
			CHECK(d[i].chan == ch);
			if (!(d[i].flags & UNET_DF_INLINE)) {
				memcpy(p.seg, unet_ptr(p.ep, d[i].off), d[i].len);
				out.off = 0;
				CHECK(unet_release(p.ep, &d[i], 1) == 0);
			}
			CHECK(np_send(&p, &out, 2000) == 0);
			struct unet_comp c[8];
			unet_poll_comp(p.ep, c, 8);
		}
	}
	unet_get_stats(p.ep, &S->st[1]);
	usleep(50000); /* the last echo leaves before the socket closes */
	np_close(&p);
	return 0;
}

static int echo_kernel(void *arg)
{
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(7001)};
	struct timeval tv = {.tv_sec = 5};
	uint8_t buf[2048];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	inet_pton(AF_INET, P.ip[1], &me.sin_addr);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	proc_set_u32(&S->ready[1], 1);
	for (int r = 0; r < ROUNDS; r++) {
		struct sockaddr_in from;
		socklen_t fl = sizeof(from);
		ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&from, &fl);
		CHECK(n >= 0);
		CHECK(n == (ssize_t)sizes[r % NSIZES]);
		CHECK(np_check(buf, (uint32_t)n, (uint64_t)r) == 0); /* checked here too */
		CHECK(sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&from, fl) == n);
	}
	close(fd);
	return 0;
}

/* side 0 pings */
static int ping_ep(void *arg)
{
	struct np p;
	int ch;

	CHECK(proc_wait_u32(&S->ready[1], 1, 10000) == 0);
	CHECK(np_open(&p, g_uri[0], "7000", NULL) == 0);
	CHECK((ch = np_chan(&p, P.ip[1], 7001, 2000)) >= 0);
	unet_ep_info(p.ep, S->info[0], sizeof(S->info[0]));
	for (int r = 0; r < ROUNDS; r++) {
		uint32_t len = sizes[r % NSIZES];
		struct unet_desc d = {.chan = (uint16_t)ch, .len = len}, in;
		if (len <= UNET_INLINE_MAX) {
			d.flags = UNET_DF_INLINE;
			np_fill(d.data, len, (uint64_t)r);
		} else {
			d.off = 4096 + (uint64_t)(r % 5);
			np_fill(p.seg + d.off, len, (uint64_t)r);
		}
		CHECK(np_send(&p, &d, 2000) == 0);
		CHECK(np_recv(&p, &in, 1, 3000) == 1);
		CHECK(in.len == len && in.chan == ch);
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

/* side 0 is a kernel socket pinging an endpoint */
static int ping_kernel(void *arg)
{
	struct sockaddr_in me = {.sin_family = AF_INET, .sin_port = htons(7000)};
	struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(7001)};
	struct timeval tv = {.tv_sec = 3};
	uint8_t buf[2048], got[2048];
	int fd = socket(AF_INET, SOCK_DGRAM, 0);

	CHECK(proc_wait_u32(&S->ready[1], 1, 10000) == 0);
	inet_pton(AF_INET, P.ip[0], &me.sin_addr);
	inet_pton(AF_INET, P.ip[1], &to.sin_addr);
	CHECK(fd >= 0 && bind(fd, (struct sockaddr *)&me, sizeof(me)) == 0);
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	for (int r = 0; r < ROUNDS; r++) {
		uint32_t len = sizes[r % NSIZES];
		np_fill(buf, len, (uint64_t)r);
		CHECK(sendto(fd, buf, len, 0, (struct sockaddr *)&to, sizeof(to)) == (ssize_t)len);
		ssize_t n = recv(fd, got, sizeof(got), 0);
		CHECK(n == (ssize_t)len);
		CHECK(np_check(got, len, (uint64_t)r) == 0);
	}
	close(fd);
	return 0;
}

static void run(const char *a, const char *b)
{
	const char *why = netns_unavailable();

	if (why) {
		printf("skipped: %s\n", why);
		skip();
		return;
	}
	assert_int_equal(netns_pair_create(&P, NULL), 0);
	S = proc_shared(sizeof(*S));
	/* "udp" binds the namespace's own address; "xdp" the veth end */
	const char *kinds[2] = {a, b};
	for (int i = 0; i < 2; i++) {
		if (strcmp(kinds[i], "udp") == 0)
			snprintf(g_uri[i], sizeof(g_uri[i]), "udp:%s", P.ip[i]);
		else if (strcmp(kinds[i], "xdp") == 0)
			snprintf(g_uri[i], sizeof(g_uri[i]), "xdp:%s", P.dev[i]);
		else
			g_uri[i][0] = 0;
	}
	pid_t e = netns_fork(P.ns[1], g_uri[1][0] ? echo_ep : echo_kernel, NULL);
	int rp = netns_run(P.ns[0], g_uri[0][0] ? ping_ep : ping_kernel, NULL, 30000);
	int re = proc_wait(e, 10000);
	printf("  %s <-> %s\n", g_uri[0][0] ? S->info[0] : "kernel socket",
	       g_uri[1][0] ? S->info[1] : "kernel socket");
	assert_int_equal(rp, 0);
	assert_int_equal(re, 0);
	for (int i = 0; i < 2; i++)
		if (g_uri[i][0]) {
			assert_int_equal(S->st[i].rx_msgs, ROUNDS);
			assert_int_equal(S->st[i].rx_drop_bad + S->st[i].rx_drop_nochan, 0);
		}
}

static void test_udp_udp(void **state)
{
	run("udp", "udp");
}

static void test_udp_to_kernel(void **state)
{
	run("udp", "kernel");
}

static void test_kernel_to_udp(void **state)
{
	run("kernel", "udp");
}

static void test_xdp_udp(void **state)
{
	run("xdp", "udp");
}

static void test_udp_xdp(void **state)
{
	run("udp", "xdp");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_udp_udp, teardown),
		cmocka_unit_test_teardown(test_udp_to_kernel, teardown),
		cmocka_unit_test_teardown(test_kernel_to_udp, teardown),
		cmocka_unit_test_teardown(test_xdp_udp, teardown),
		cmocka_unit_test_teardown(test_udp_xdp, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
