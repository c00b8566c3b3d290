/*
 * unet_xdp_maps.h - the maps shared by the XDP program (unet_xdp.bpf.c) and
 * the xdp NIC in user space (xdp_prog.c). One layout, one header, so that the
 * two sides cannot drift apart; xdp_prog.c also checks the key and value
 * sizes of a program it finds attached before it trusts its maps.
 */
#ifndef UNET_XDP_MAPS_H
#define UNET_XDP_MAPS_H

#include <linux/types.h>

#define UNET_XDP_PROG_NAME "unet_xdp"
#define UNET_XDP_PORTS_MAP "unet_ports"
#define UNET_XDP_XSKS_MAP "unet_xsks"
#define UNET_XDP_MAX_PORTS 256
#define UNET_XDP_MAX_QUEUES 256

/* An endpoint owns one (local IPv4 address, UDP port), both in network byte
 * order. */
struct unet_port_key {
	__be32 addr;
	__be16 port;
	__u16 pad; /* zero */
};

/* What the program needs to steer a frame to its owner, and the drops it
 * counts on the owner's behalf (frames the owner could never receive). */
struct unet_port_val {
	__u32 queue;     /* RX queue the owner's socket is bound to */
	__u32 max_frame; /* largest frame that fits one of its receive frames */
	__u64 toobig;    /* dropped: longer than max_frame */
	__u64 wrongq;    /* dropped: arrived on another RX queue */
};

#endif /* UNET_XDP_MAPS_H */
