/* test_xdp_frames.c - hostile frames at an xdp endpoint. From the peer
 * namespace, an AF_PACKET socket writes frames by hand at the endpoint's
 * address and port: truncated, bad IP checksum, bad UDP checksum, UDP length
 * wrong, IP length too small and too large, IP options, a fragment, an
 * unknown source, an oversized frame, runts and non-IP frames, between good
 * ones. Exactly the good ones must be delivered, in order and intact, and
 * every bad one counted where it belongs (rx_drop_bad, rx_drop_nochan,
 * rx_drop_toobig), in native mode (veth MTU 1500) and in generic mode (MTU
 * 5000, so that a frame larger than a receive frame can be sent at all).
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
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "helpers/net_peer.h"
#include "helpers/netns.h"
#include "helpers/proc.h"
#include "unet/unet.h"
#include "xdp_frame.h"

#define CHECK(cond)                                                                        \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "[%d] %s:%d: check failed: %s\n", (int)getpid(),   \
				__FILE__, __LINE__, #cond);                                \
			return __LINE__ % 200 + 1;                                         \
		}                                                                          \
	} while (0)

#define MAX_GOOD 8

struct shared {
	uint32_t ready, sent;
	uint8_t mac[6];
	uint32_t ngood;
	char good[MAX_GOOD][32];
	uint32_t delivered;
	char got[MAX_GOOD][32];
	struct unet_stats st;
	char info[256];
};

static struct netns_pair P;
static struct shared *S;
static const char *g_opts;
static int g_oversize;

static int mac_of(const char *dev, uint8_t mac[6])
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0), rc;

	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", dev);
	rc = ioctl(fd, SIOCGIFHWADDR, &ifr);
	close(fd);
	if (rc == 0)
		memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	return rc;
}

/* The endpoint: record what is delivered until the closing good frame. */
static int receiver(void *arg)
{
	struct np p;
	char uri[64];
	struct unet_desc d[8];

	snprintf(uri, sizeof(uri), "xdp:%s%s", P.dev[0], g_opts);
	CHECK(np_open(&p, uri, "7000", NULL) == 0);
	CHECK(np_chan(&p, P.ip[1], 7001, 2000) >= 0);
	CHECK(mac_of(P.dev[0], S->mac) == 0);
	unet_ep_info(p.ep, S->info, sizeof(S->info));
	proc_set_u32(&S->ready, 1);
	while (S->delivered < MAX_GOOD) {
		int n = np_recv(&p, d, 8, 3000);
		if (n <= 0)
			break;
		for (int i = 0; i < n && S->delivered < MAX_GOOD; i++) {
			const uint8_t *pl = np_payload(&p, &d[i]);
			uint32_t k = S->delivered++;
			snprintf(S->got[k], sizeof(S->got[k]), "%.*s",
				 (int)(d[i].len < 31 ? d[i].len : 31), (const char *)pl);
			CHECK(unet_release(p.ep, &d[i], 1) == 0);
			if (strncmp(S->got[k], "good-end", 8) == 0)
				goto done;
		}
	}
done:
	unet_get_stats(p.ep, &S->st);
	np_close(&p);
	return 0;
}

struct raw {
	int fd;
	struct sockaddr_ll to;
	uint8_t src[6];
	uint32_t saddr, daddr;
};

/* A correct frame from (ip1, sport) to (ip0, 7000) carrying `len` bytes that
 * start with `tag`. Returns the frame length. */
static uint32_t good_frame(struct raw *r, uint8_t *f, uint16_t sport, const char *tag,
			   uint32_t len)
{
	struct xf_tmpl t;
	uint8_t pl[9000];

	memset(pl, 'x', len);
	memcpy(pl, tag, strlen(tag) < len ? strlen(tag) : len);
	xf_tmpl_init(&t, r->src, S->mac, r->saddr, r->daddr, htons(sport), htons(7000));
	return xf_build(f, &t, pl, len);
}

static int put(struct raw *r, const uint8_t *f, uint32_t len)
{
	ssize_t n = sendto(r->fd, f, len, 0, (struct sockaddr *)&r->to, sizeof(r->to));

	usleep(1000);
	return n == (ssize_t)len ? 0 : -errno;
}

static void good(struct raw *r, uint8_t *f, const char *tag, uint32_t len, uint32_t *flen)
{
	*flen = good_frame(r, f, 7001, tag, len);
	snprintf(S->good[S->ngood++], sizeof(S->good[0]), "%s", tag);
}

static void ip_recheck(uint8_t *f)
{
	struct xf_hdr *h = (struct xf_hdr *)f;
	uint32_t ihl = (h->ver_ihl & 15u) * 4;

	h->ip_check = 0;
	h->ip_check = (uint16_t)~xf_fold(xf_sum(0, f + XF_ETH_LEN, ihl));
}

static int sender(void *arg)
{
	static uint8_t f[9100];
	struct xf_hdr *h = (struct xf_hdr *)f;
	struct raw r;
	uint32_t n;

	CHECK(proc_wait_u32(&S->ready, 1, 10000) == 0);
	memset(&r, 0, sizeof(r));
	r.fd = socket(AF_PACKET, SOCK_RAW, 0); /* send only: protocol 0 receives nothing */
	CHECK(r.fd >= 0);
	r.to.sll_family = AF_PACKET;
	r.to.sll_ifindex = (int)if_nametoindex(P.dev[1]);
	r.to.sll_halen = 6;
	memcpy(r.to.sll_addr, S->mac, 6);
	CHECK(mac_of(P.dev[1], r.src) == 0);
	inet_pton(AF_INET, P.ip[1], &r.saddr);
	inet_pton(AF_INET, P.ip[0], &r.daddr);

	good(&r, f, "good-1", 300, &n);
	CHECK(put(&r, f, n) == 0);
	good(&r, f, "good-inline", 20, &n);
	CHECK(put(&r, f, n) == 0);

	/* truncated: the frame ends before the datagram does */
	n = good_frame(&r, f, 7001, "bad-trunc", 200);
	CHECK(put(&r, f, n - 100) == 0);
	/* bad IP header checksum */
	n = good_frame(&r, f, 7001, "bad-ipsum", 100);
	h->ip_check ^= htons(0x0101);
	CHECK(put(&r, f, n) == 0);
	/* bad UDP checksum (and not the offload form either) */
	n = good_frame(&r, f, 7001, "bad-udpsum", 100);
	h->udp_check ^= htons(0x00f0);
	CHECK(put(&r, f, n) == 0);
	/* UDP length disagrees with the IP length */
	n = good_frame(&r, f, 7001, "bad-udplen", 100);
	h->udp_len = htons(ntohs(h->udp_len) + 4);
	CHECK(put(&r, f, n) == 0);
	/* IP total length too small for IP + UDP headers */
	n = good_frame(&r, f, 7001, "bad-iplen-small", 100);
	h->tot_len = htons(24);
	ip_recheck(f);
	CHECK(put(&r, f, n) == 0);
	/* IP total length beyond the frame */
	n = good_frame(&r, f, 7001, "bad-iplen-big", 100);
	h->tot_len = htons(ntohs(h->tot_len) + 50);
	ip_recheck(f);
	CHECK(put(&r, f, n) == 0);
	/* IP options (one NOP word): not handled, so never delivered */
	n = good_frame(&r, f, 7001, "bad-options", 100);
	memmove(f + XF_ETH_LEN + 24, f + XF_ETH_LEN + 20, n - XF_ETH_LEN - 20);
	memset(f + XF_ETH_LEN + 20, 1, 4);
	h->ver_ihl = 0x46;
	h->tot_len = htons(ntohs(h->tot_len) + 4);
	ip_recheck(f);
	CHECK(put(&r, f, n + 4) == 0);
	/* first fragment of a datagram: we do not reassemble */
	n = good_frame(&r, f, 7001, "bad-fragment", 100);
	h->frag = htons(0x2000);
	ip_recheck(f);
	CHECK(put(&r, f, n) == 0);
	/* a well-formed frame from a source no channel names */
	n = good_frame(&r, f, 7002, "bad-nochan", 100);
	CHECK(put(&r, f, n) == 0);
	/* runt and non-IP frames: not the endpoint's, they go to the kernel */
	n = good_frame(&r, f, 7001, "bad-runt", 100);
	CHECK(put(&r, f, 30) == 0);
	n = good_frame(&r, f, 7001, "bad-ipv6", 100);
	h->ethertype = htons(0x86dd);
	CHECK(put(&r, f, n) == 0);
	if (g_oversize) {
		n = good_frame(&r, f, 7001, "bad-oversize", 4500);
		CHECK(put(&r, f, n) == 0);
	}
	/* no UDP checksum at all is legal in IPv4 */
	good(&r, f, "good-nocsum", 64, &n);
	h->udp_check = 0;
	CHECK(put(&r, f, n) == 0);
	good(&r, f, "good-end", 1000, &n);
	CHECK(put(&r, f, n) == 0);
	close(r.fd);
	return 0;
}

static void frames(const char *opts, unsigned mtu, int oversize)
{
	struct netns_opts o = {.mtu = mtu};
	const char *why = netns_unavailable();

	if (why) {
		printf("skipped: %s\n", why);
		skip();
		return;
	}
	assert_int_equal(netns_pair_create(&P, &o), 0);
	S = proc_shared(sizeof(*S));
	g_opts = opts;
	g_oversize = oversize;
	pid_t rx = netns_fork(P.ns[0], receiver, NULL);
	int rs = netns_run(P.ns[1], sender, NULL, 20000);
	int rr = proc_wait(rx, 10000);
	printf("  %s\n  bad %llu nochan %llu toobig %llu delivered %u\n", S->info,
	       (unsigned long long)S->st.rx_drop_bad, (unsigned long long)S->st.rx_drop_nochan,
	       (unsigned long long)S->st.rx_drop_toobig, S->delivered);
	assert_int_equal(rs, 0);
	assert_int_equal(rr, 0);
	assert_int_equal(S->delivered, S->ngood);
	for (uint32_t i = 0; i < S->ngood; i++)
		assert_memory_equal(S->got[i], S->good[i], strlen(S->good[i]) + 0);
	assert_int_equal(S->st.rx_msgs, S->ngood);
	assert_int_equal(S->st.rx_drop_bad, 8);
	assert_int_equal(S->st.rx_drop_nochan, 1);
	assert_int_equal(S->st.rx_drop_toobig, oversize ? 1 : 0);
}

static int teardown(void **state)
{
	netns_pair_destroy(&P);
	if (S)
		proc_unshare(S, sizeof(*S));
	S = NULL;
	return 0;
}

static void test_frames_native(void **state)
{
	frames("?mode=native", 0, 0);
}

static void test_frames_generic_jumbo(void **state)
{
	frames("?mode=generic", 5000, 1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_frames_native, teardown),
		cmocka_unit_test_teardown(test_frames_generic_jumbo, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
