/*
 * xdp_net.c - interface facts and next-hop MAC resolution for the xdp NIC.
 *
 * An AF_XDP endpoint writes whole Ethernet frames, so it must know the
 * destination MAC the kernel would have used: the route decides the next hop
 * (gateway or the destination itself) and the neighbour table holds its MAC.
 * Both are asked over rtnetlink (RTM_GETROUTE, RTM_GETNEIGH: one request,
 * one answer each), which works in any network namespace and needs no /sys
 * or /proc. Nothing is hard-coded and nothing is cached here: the NIC keeps
 * the answer per channel.
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/ioctl.h>
#include <sys/socket.h>

#include "nic.h"
#include "xdp_net.h"

int xdp_if_info(const char *ifname, struct xdp_ifinfo *out)
{
	struct ifreq ifr;
	int fd, rc = 0;

	memset(out, 0, sizeof(*out));
	if (strlen(ifname) >= IFNAMSIZ)
		return -ENAMETOOLONG;
	out->ifindex = (int)if_nametoindex(ifname);
	if (out->ifindex == 0)
		return -ENODEV;
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, ifname);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		rc = -errno;
		goto out;
	}
	memcpy(out->mac, ifr.ifr_hwaddr.sa_data, 6);
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
		rc = -errno;
		goto out;
	}
	out->mtu = (uint32_t)ifr.ifr_mtu;
	if (ioctl(fd, SIOCGIFADDR, &ifr) == 0) {
		struct sockaddr_in sin;
		memcpy(&sin, &ifr.ifr_addr, sizeof(sin));
		out->addr = sin.sin_addr.s_addr;
	}
out:
	close(fd);
	return rc;
}

/* One rtnetlink request, one answer. Returns the answer's length, or -errno
 * (the kernel's own error for an NLMSG_ERROR answer). */
static int nl_ask(struct nlmsghdr *req, void *ans, size_t anslen)
{
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK};
	struct timeval tv = {.tv_sec = 1};
	int fd, rc;
	ssize_t n;

	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return -errno;
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	req->nlmsg_seq = 1;
	if (sendto(fd, req, req->nlmsg_len, 0, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		goto out;
	}
	n = recv(fd, ans, anslen, 0);
	if (n < 0) {
		rc = errno == EAGAIN ? -ETIMEDOUT : -errno;
		goto out;
	}
	struct nlmsghdr *h = ans;
	if (n < (ssize_t)sizeof(*h) || !NLMSG_OK(h, (size_t)n)) {
		rc = -EBADMSG;
		goto out;
	}
	if (h->nlmsg_type == NLMSG_ERROR) {
		const struct nlmsgerr *e = NLMSG_DATA(h);
		rc = e->error < 0 ? e->error : -EBADMSG;
		goto out;
	}
	rc = (int)n;
out:
	close(fd);
	return rc;
}

static void nl_attr(struct nlmsghdr *h, unsigned short type, const void *data, unsigned short len)
{
	struct rtattr *a = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));

	a->rta_type = type;
	a->rta_len = (unsigned short)RTA_LENGTH(len);
	memcpy(RTA_DATA(a), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Next hop for `dst` out of `ifindex`: the gateway, or dst when on-link. */
static int route_nexthop(int ifindex, uint32_t dst, uint32_t *hop)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg r;
		char attrs[64];
	} req;
	union {
		struct nlmsghdr h;
		char buf[4096];
	} ans;
	int n;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.h.nlmsg_type = RTM_GETROUTE;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.r.rtm_family = AF_INET;
	req.r.rtm_dst_len = 32;
	nl_attr(&req.h, RTA_DST, &dst, 4);
	nl_attr(&req.h, RTA_OIF, &ifindex, 4);
	n = nl_ask(&req.h, &ans, sizeof(ans));
	if (n < 0)
		return n == -ENETUNREACH || n == -EHOSTUNREACH || n == -ENODEV ? -EHOSTUNREACH : n;
	if (ans.h.nlmsg_type != RTM_NEWROUTE)
		return -EBADMSG;
	const struct rtmsg *r = NLMSG_DATA(&ans.h);
	if (r->rtm_type != RTN_UNICAST)
		return -EHOSTUNREACH; /* local, broadcast, blackhole: not on the wire */
	int len = (int)RTM_PAYLOAD(&ans.h);
	int oif = 0;
	*hop = dst;
	for (const struct rtattr *a = RTM_RTA(r); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == RTA_GATEWAY && RTA_PAYLOAD(a) == 4)
			memcpy(hop, RTA_DATA(a), 4);
		else if (a->rta_type == RTA_OIF && RTA_PAYLOAD(a) == 4)
			memcpy(&oif, RTA_DATA(a), 4);
	}
	return oif == ifindex ? 0 : -EHOSTUNREACH;
}

/* Neighbour entry for `ip` on `ifindex`: 1 with the MAC when usable, 0 when
 * missing or not (yet) resolved, or -errno. */
static int neigh_get(int ifindex, uint32_t ip, uint8_t mac[6])
{
	struct {
		struct nlmsghdr h;
		struct ndmsg n;
		char attrs[64];
	} req;
	union {
		struct nlmsghdr h;
		char buf[1024];
	} ans;
	int n;

	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	req.h.nlmsg_type = RTM_GETNEIGH;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.n.ndm_family = AF_INET;
	req.n.ndm_ifindex = ifindex;
	nl_attr(&req.h, NDA_DST, &ip, 4);
	n = nl_ask(&req.h, &ans, sizeof(ans));
	if (n == -ENOENT)
		return 0;
	if (n < 0)
		return n;
	if (ans.h.nlmsg_type != RTM_NEWNEIGH)
		return -EBADMSG;
	const struct ndmsg *nd = NLMSG_DATA(&ans.h);
	if (!(nd->ndm_state & (NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT |
			       NUD_NOARP)))
		return 0;
	int len = (int)(ans.h.nlmsg_len - NLMSG_LENGTH(sizeof(*nd)));
	for (const struct rtattr *a = (const struct rtattr *)((const char *)nd +
							      NLMSG_ALIGN(sizeof(*nd)));
	     RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
			memcpy(mac, RTA_DATA(a), 6);
			return 1;
		}
	}
	return 0;
}

/* An empty datagram to the discard port makes the kernel resolve the next
 * hop; the answer (ARP reply) passes our XDP program to the kernel. */
static void provoke(const char *ifname, uint32_t dst)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons(9)};
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);

	if (fd < 0)
		return;
	sin.sin_addr.s_addr = dst;
	setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, ifname, (socklen_t)strlen(ifname));
	if (sendto(fd, "", 0, 0, (struct sockaddr *)&sin, sizeof(sin)) < 0) {
		/* an error here just means no ARP; the deadline reports it */
	}
	close(fd);
}

int xdp_resolve(int ifindex, const char *ifname, uint32_t dst, int timeout_ms, uint8_t mac[6])
{
	uint64_t start = unet__now_ns(), last = 0;
	uint32_t hop;
	int rc;

	rc = route_nexthop(ifindex, dst, &hop);
	if (rc < 0)
		return rc;
	for (;;) {
		rc = neigh_get(ifindex, hop, mac);
		if (rc != 0)
			return rc < 0 ? rc : 0;
		uint64_t now = unet__now_ns();
		if (now - start >= (uint64_t)timeout_ms * 1000000ull)
			return -EHOSTUNREACH;
		if (last == 0 || now - last >= 250000000ull) { /* ARP retries on its own, too */
			provoke(ifname, dst);
			last = now;
		}
		poll(NULL, 0, 5);
	}
}
