/*
 * xdp_frame.h - the Ethernet/IPv4/UDP frames the xdp NIC puts on the wire
 * and takes off it: header layout, Internet checksum, build and parse.
 *
 * Header-only and free of libbpf so the hot path reads on one screen and the
 * tests can craft frames (good and deliberately broken) with the same layout.
 *
 * Sending builds every frame from a per-channel template whose fixed part of
 * both checksums is summed once at channel set-up; per message only the
 * lengths and the payload are added. Receiving accepts exactly one shape --
 * IPv4 without options, not fragmented, UDP, lengths consistent with each
 * other and with the frame, correct IP header checksum, and a correct UDP
 * checksum (or none: zero is "not computed" in IPv4; or the bare
 * pseudo-header sum a Linux peer leaves for checksum offload, see xf_parse)
 * -- and calls everything else bad, because a frame we half-understand is a frame we might deliver
 * wrongly.
 *
 * The checksum is the RFC 1071 one's-complement sum, accumulated in host
 * order 64 bits at a time (the sum is byte-order independent as long as the
 * result is stored back the same way), with unaligned loads through memcpy.
 */
#ifndef UNET_XDP_FRAME_H
#define UNET_XDP_FRAME_H

#include <stdint.h>
#include <string.h>
#include <arpa/inet.h>

#define XF_ETH_LEN 14
#define XF_IP_LEN 20
#define XF_UDP_LEN 8
#define XF_HDR_LEN (XF_ETH_LEN + XF_IP_LEN + XF_UDP_LEN) /* 42: payload offset */
#define XF_ETHERTYPE_IP 0x0800
#define XF_IPPROTO_UDP 17
#define XF_IP_DF 0x4000
#define XF_IP_MF_OFF 0x3fff /* more-fragments flag and fragment offset */

struct xf_hdr {
	uint8_t dst[6];
	uint8_t src[6];
	uint16_t ethertype;
	uint8_t ver_ihl;
	uint8_t tos;
	uint16_t tot_len;
	uint16_t id;
	uint16_t frag;
	uint8_t ttl;
	uint8_t proto;
	uint16_t ip_check;
	uint32_t saddr;
	uint32_t daddr;
	uint16_t sport;
	uint16_t dport;
	uint16_t udp_len;
	uint16_t udp_check;
} __attribute__((packed));

_Static_assert(sizeof(struct xf_hdr) == XF_HDR_LEN, "frame header layout");

/* One's-complement sum of `len` bytes, added to `sum`. An odd trailing byte
 * counts as the high byte of a zero-padded 16-bit word, as RFC 1071 says;
 * callers keep every piece but the last an even length. */
static inline uint64_t xf_sum(uint64_t sum, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	uint64_t v;

	while (len >= 8) {
		memcpy(&v, p, 8);
		sum += v;
		sum += sum < v; /* end-around carry */
		p += 8;
		len -= 8;
	}
	if (len >= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		sum += w;
		sum += sum < w;
		p += 4;
		len -= 4;
	}
	if (len >= 2) {
		uint16_t h;
		memcpy(&h, p, 2);
		sum += h;
		sum += sum < h;
		p += 2;
		len -= 2;
	}
	if (len) {
		uint16_t h = 0;
		memcpy(&h, p, 1);
		sum += h;
		sum += sum < h;
	}
	return sum;
}

static inline uint16_t xf_fold(uint64_t s)
{
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffffffu) + (s >> 32);
	s = (s & 0xffffu) + (s >> 16);
	s = (s & 0xffffu) + (s >> 16);
	return (uint16_t)s;
}

/* Per-channel template: headers with lengths and checksums zero, plus the
 * fixed parts of both sums. */
struct xf_tmpl {
	struct xf_hdr h;
	uint64_t ip_sum;  /* IP header without tot_len */
	uint64_t udp_sum; /* pseudo-header addresses and protocol, and the ports */
};

static inline void xf_tmpl_init(struct xf_tmpl *t, const uint8_t src_mac[6],
				const uint8_t dst_mac[6], uint32_t saddr, uint32_t daddr,
				uint16_t sport, uint16_t dport)
{
	uint16_t proto = htons(XF_IPPROTO_UDP);

	memset(t, 0, sizeof(*t));
	memcpy(t->h.dst, dst_mac, 6);
	memcpy(t->h.src, src_mac, 6);
	t->h.ethertype = htons(XF_ETHERTYPE_IP);
	t->h.ver_ihl = 0x45;
	t->h.frag = htons(XF_IP_DF); /* DF: id may stay 0 (RFC 6864) */
	t->h.ttl = 64;
	t->h.proto = XF_IPPROTO_UDP;
	t->h.saddr = saddr;
	t->h.daddr = daddr;
	t->h.sport = sport;
	t->h.dport = dport;
	t->ip_sum = xf_sum(0, &t->h.ver_ihl, XF_IP_LEN);
	t->udp_sum = xf_sum(0, &t->h.saddr, 8);
	t->udp_sum = xf_sum(t->udp_sum, &proto, 2);
	t->udp_sum = xf_sum(t->udp_sum, &t->h.sport, 4);
}

/* Write a complete frame for `len` payload bytes at `f`: headers from the
 * template, payload copied from `payload`. Returns the frame length. The
 * caller guarantees that the frame fits (len <= channel mtu). */
static inline uint32_t xf_build(uint8_t *f, const struct xf_tmpl *t, const void *payload,
				uint32_t len)
{
	struct xf_hdr *h = (struct xf_hdr *)f;
	uint16_t tot = htons((uint16_t)(XF_IP_LEN + XF_UDP_LEN + len));
	uint16_t ulen = htons((uint16_t)(XF_UDP_LEN + len));
	uint64_t s;

	memcpy(h, &t->h, sizeof(*h));
	memcpy(f + XF_HDR_LEN, payload, len);
	h->tot_len = tot;
	h->udp_len = ulen;
	h->ip_check = (uint16_t)~xf_fold(xf_sum(t->ip_sum, &tot, 2));
	/* udp length counts twice: once in the pseudo-header, once in the header */
	s = t->udp_sum + (uint64_t)ulen + ulen;
	s = xf_sum(s, f + XF_HDR_LEN, len);
	h->udp_check = (uint16_t)~xf_fold(s);
	if (h->udp_check == 0)
		h->udp_check = 0xffff; /* zero would mean "no checksum" */
	return XF_HDR_LEN + len;
}

/* Fill in both checksums of a frame whose headers are otherwise complete
 * (the tests use this to craft frames by hand). */
static inline void xf_checksum(uint8_t *f)
{
	struct xf_hdr *h = (struct xf_hdr *)f;
	uint16_t proto = htons(XF_IPPROTO_UDP);
	uint16_t ulen = h->udp_len;
	uint32_t n = ntohs(ulen) >= XF_UDP_LEN ? ntohs(ulen) - XF_UDP_LEN : 0;
	uint64_t s;

	h->ip_check = 0;
	h->ip_check = (uint16_t)~xf_fold(xf_sum(0, &h->ver_ihl, XF_IP_LEN));
	h->udp_check = 0;
	s = xf_sum(0, &h->saddr, 8);
	s = xf_sum(s, &proto, 2);
	s = xf_sum(s, &ulen, 2);
	s = xf_sum(s, &h->sport, 8);
	s = xf_sum(s, f + XF_HDR_LEN, n);
	h->udp_check = (uint16_t)~xf_fold(s);
	if (h->udp_check == 0)
		h->udp_check = 0xffff;
}

/* Parse a received frame of `flen` bytes addressed to `daddr`. On success
 * returns 0 with the sender and the payload length; -1 when the frame is
 * malformed in any way. */
static inline int xf_parse(const uint8_t *f, uint32_t flen, uint32_t daddr, uint32_t *saddr,
			   uint16_t *sport, uint32_t *plen)
{
	const struct xf_hdr *h = (const struct xf_hdr *)f;
	uint32_t tot, ulen;
	uint16_t proto = htons(XF_IPPROTO_UDP);
	uint64_t s;

	if (flen < XF_HDR_LEN || h->ethertype != htons(XF_ETHERTYPE_IP) || h->ver_ihl != 0x45 ||
	    (h->frag & htons(XF_IP_MF_OFF)) != 0 || h->proto != XF_IPPROTO_UDP ||
	    h->daddr != daddr)
		return -1;
	tot = ntohs(h->tot_len);
	ulen = ntohs(h->udp_len);
	/* Ethernet pads short frames, so the frame may be longer than the
	 * datagram, never shorter. */
	if (tot < XF_IP_LEN + XF_UDP_LEN || XF_ETH_LEN + tot > flen || ulen != tot - XF_IP_LEN)
		return -1;
	if (xf_fold(xf_sum(0, &h->ver_ihl, XF_IP_LEN)) != 0xffff)
		return -1;
	if (h->udp_check != 0) {
		uint64_t pseudo = xf_sum(0, &h->saddr, 8);
		pseudo = xf_sum(pseudo, &proto, 2);
		pseudo = xf_sum(pseudo, &h->udp_len, 2);
		s = xf_sum(pseudo, &h->sport, XF_UDP_LEN);
		s = xf_sum(s, f + XF_HDR_LEN, ulen - XF_UDP_LEN);
		/* A Linux sender with checksum offload leaves only the folded
		 * pseudo-header sum in the field (CHECKSUM_PARTIAL) for the
		 * NIC to finish; over veth no NIC ever does. The kernel trusts
		 * such frames, and so do we: any other wrong value is bad. */
		if (xf_fold(s) != 0xffff && h->udp_check != xf_fold(pseudo))
			return -1;
	}
	*saddr = h->saddr;
	*sport = h->sport;
	*plen = ulen - XF_UDP_LEN;
	return 0;
}

#endif /* UNET_XDP_FRAME_H */
