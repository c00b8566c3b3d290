/*
 * unet_xdp.bpf.c - the xdp NIC's XDP program: U-Net's multiplexing and
 * protection, done where the frame enters the host.
 *
 * A frame is taken away from the kernel only when it is IPv4/UDP and its
 * (destination address, destination port) is owned by an endpoint (the
 * unet_ports map). Everything else -- ARP, ICMP, TCP, other ports, frames too
 * short to carry the ports, non-first fragments -- goes on to the kernel
 * untouched, so the host keeps working while endpoints are open.
 *
 * A frame for an endpoint is *not* validated here beyond what is needed to
 * read the ports: checksums, length fields and IP options are checked in
 * user space (nic_xdp.c), which counts the bad ones in the endpoint's
 * statistics. The two checks that must happen here are those the endpoint
 * could not make itself, because the kernel would drop the frame before it
 * reaches the socket: too long for a receive frame, or arrived on an RX queue
 * the owner is not bound to (AF_XDP only redirects to a socket bound to the
 * frame's own queue). Those are dropped and counted in the port's map value.
 *
 * One program per interface, shared by every endpoint on it: the socket of
 * the endpoint bound to queue Q sits at index Q of unet_xsks.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "unet_xdp_maps.h"

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, UNET_XDP_MAX_PORTS);
	__type(key, struct unet_port_key);
	__type(value, struct unet_port_val);
} unet_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, UNET_XDP_MAX_QUEUES);
	__type(key, __u32);
	__type(value, __u32);
} unet_xsks SEC(".maps");

SEC("xdp")
int unet_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct unet_port_key k = {};
	struct unet_port_val *v;
	struct udphdr *udp;
	struct iphdr *ip;
	__u32 ihl;

	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->protocol != IPPROTO_UDP)
		return XDP_PASS;
	if (ip->frag_off & bpf_htons(0x1fff))
		return XDP_PASS; /* no UDP header in a later fragment */
	ihl = (__u32)ip->ihl * 4;
	if (ihl < sizeof(*ip))
		return XDP_PASS;
	udp = (void *)ip + ihl;
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	k.addr = ip->daddr;
	k.port = udp->dest;
	v = bpf_map_lookup_elem(&unet_ports, &k);
	if (!v)
		return XDP_PASS;
	if (end - data > v->max_frame) {
		__sync_fetch_and_add(&v->toobig, 1);
		return XDP_DROP;
	}
	if (ctx->rx_queue_index != v->queue) {
		__sync_fetch_and_add(&v->wrongq, 1);
		return XDP_DROP;
	}
	/* No socket at that index (its owner is being set up or torn down):
	 * let the kernel answer as it would for an unbound port. */
	return bpf_redirect_map(&unet_xsks, ctx->rx_queue_index, XDP_PASS);
}

char _license[] SEC("license") = "Dual BSD/GPL";
