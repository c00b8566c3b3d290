/*
 * xdp_net.h - what the xdp NIC asks the kernel's network stack: an
 * interface's index, MAC, MTU and IPv4 address, and the MAC address of the
 * next hop towards a remote IPv4 address (route + neighbour table, over
 * rtnetlink). Control path only; nothing here is called per message.
 */
#ifndef UNET_XDP_NET_H
#define UNET_XDP_NET_H

#include <stdint.h>

struct xdp_ifinfo {
	int ifindex;
	uint8_t mac[6];
	uint32_t mtu;
	uint32_t addr; /* primary IPv4 address, network order; 0 when none */
};

/* 0, -ENODEV (no such interface), or -errno. */
int xdp_if_info(const char *ifname, struct xdp_ifinfo *out);

/* MAC of the next hop to `dst` (network order) out of interface `ifindex`:
 * the route's gateway, or `dst` itself when it is on-link. When the
 * neighbour table has no usable entry, provoke ARP by sending one empty
 * datagram to the discard port (9) of `dst` through an ordinary UDP socket
 * bound to the interface (the remote application never sees it), and poll
 * the table until `timeout_ms` passes. Returns 0, -EHOSTUNREACH (no route
 * through that interface, a local address, or no answer), or -errno. */
int xdp_resolve(int ifindex, const char *ifname, uint32_t dst, int timeout_ms, uint8_t mac[6]);

#endif /* UNET_XDP_NET_H */
