/*
 * net_unet.c - U-Net endpoints on the wire NICs (xdp, udp) through the
 * public API (include/unet/unet.h), exactly as an application uses them.
 *
 * Each side opens its NIC on its own end of the veth ("xdp:DEV?mode=M" or
 * "udp:ADDR"), one endpoint on a fixed UDP port (the namespaces are ours,
 * so no port is taken) and one channel to the peer's address and port.
 * Both NICs put plain UDP on the wire, so the two sides need no hand-shake.
 *
 * Ping-pong: messages up to UNET_INLINE_MAX ride inline (unet_send_inline);
 * larger ones are sent from the segment, and the receive buffer is released
 * and the send completion reaped inside the timed loop, because an
 * application must do both. Receivers busy-poll unet_recv.
 *
 * One-way rate: the sender rotates over NSRC source slots, unet_send()s
 * batches of BATCH and reaps completions before reusing a slot; there is no
 * flow control (the point is what the receiver can take), so what finds no
 * free buffer at the receiver is dropped by its NIC and counted there. The
 * receiver gives buffers back at once. Every message carries a sequence
 * number in its first 8 bytes that must grow at the receiver.
 */
#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>

#include "net.h"
#include "unet/unet.h"

#define PORT_BASE 7100 /* + path index: each path its own port */
#define SLOT	  2048u
#define NSRC	  64u
#define BATCH	  32u
#define RX_BATCH  64u

struct ep_ctx {
	int which;	  /* NR_* */
	const char *mode; /* xdp: "auto", "native" or "generic"; NULL: the udp NIC */
	uint16_t port;
	struct net_shared *sh;
	int side;
	struct unet_nic *nic;
	struct unet_ep *ep;
	unsigned ch;
	uint8_t *seg;
	uint32_t outstanding; /* segment sends not yet completed */
	uint64_t seq;
	struct net_seqs rx; /* stream receiver only */
	uint8_t small[UNET_INLINE_MAX];
};

static int ep_setup(struct ep_ctx *c, int which, const char *mode)
{
	c->which = which;
	c->mode = mode;
	c->port = (uint16_t)(PORT_BASE + which);
	c->sh = net_shared_map();
	return c->sh ? 0 : -ENOMEM;
}

static int setup_xdp(void *vc, const struct perf_opts *o, size_t max)
{
	return ep_setup(vc, NR_XDP, net_cfg.xdp_mode);
}
static int setup_xdp_generic(void *vc, const struct perf_opts *o, size_t max)
{
	return ep_setup(vc, NR_XDP_GENERIC, "generic");
}
static int setup_udp_nic(void *vc, const struct perf_opts *o, size_t max)
{
	return ep_setup(vc, NR_UDP_NIC, NULL);
}
static int setup_pps_xdp(void *vc, const struct perf_opts *o, size_t max)
{
	return ep_setup(vc, NR_PPS_XDP, net_cfg.xdp_mode);
}
static int setup_pps_xdp_generic(void *vc, const struct perf_opts *o, size_t max)
{
	return ep_setup(vc, NR_PPS_XDP_GENERIC, "generic");
}
static int setup_pps_udp_nic(void *vc, const struct perf_opts *o, size_t max)
{
	return ep_setup(vc, NR_PPS_UDP_NIC, NULL);
}

static void ep_detach(void *vc, int side)
{
	struct ep_ctx *c = vc;

	if (c->ep) {
		struct unet_stats st;
		unet_get_stats(c->ep, &st);
		if (c->sh && side == PERF_RESPONDER) /* the streams' receiver */
			c->sh->rx_dropped += st.rx_drop_nobuf + st.rx_drop_full + st.rx_drop_bad +
					     st.rx_drop_nochan + st.rx_drop_toobig;
		unet_ep_destroy(c->ep);
	}
	c->ep = NULL;
	net_seqs_free(&c->rx);
	if (c->nic)
		unet_nic_close(c->nic);
	c->nic = NULL;
}

static int ep_attach(void *vc, int side)
{
	struct ep_ctx *c = vc;
	struct unet_ep_attr attr = {0};
	char uri[96], name[8], remote[32];
	size_t segsz;
	int rc;

	c->side = side;
	rc = net_side_enter(side);
	if (rc < 0)
		return rc;
	if (c->mode)
		snprintf(uri, sizeof(uri), "xdp:%s?mode=%s", net_cfg.ns.dev[side], c->mode);
	else
		snprintf(uri, sizeof(uri), "udp:%s", net_cfg.ns.ip[side]);
	rc = unet_nic_open(uri, &c->nic);
	if (rc < 0)
		return rc;
	attr.seg_size = (size_t)NSRC * SLOT;
	attr.sq_depth = 512;
	if (c->mode) {
		/* A receiver that is to keep up with a flat-out sender needs
		 * frames on its fill ring while it is busy with a batch. */
		attr.rx_bufs = net_cfg.xdp_rx_bufs;
		attr.rq_depth = net_cfg.xdp_rx_bufs;
	} else {
		attr.rx_bufs = 256;
		attr.rq_depth = 256;
	}
	snprintf(name, sizeof(name), "%u", c->port);
	rc = unet_ep_create(c->nic, name, &attr, &c->ep);
	if (rc < 0)
		goto fail;
	snprintf(remote, sizeof(remote), "%s:%u", net_cfg.ns.ip[!side], c->port);
	rc = unet_chan_open(c->ep, remote, PERF_STALL_MS);
	if (rc < 0)
		goto fail;
	c->ch = (unsigned)rc;
	rc = unet_chan_mtu(c->ep, c->ch);
	if (rc >= 0 && (unsigned)rc < NET_MAX_MSG) {
		rc = -EMSGSIZE; /* the wire is not what the report claims */
		goto fail;
	}
	c->seg = unet_ep_segment(c->ep, &segsz);
	memset(c->seg, 0x5a, segsz); /* fault it in now, not in the timed loop */
	memset(c->small, 0x5a, sizeof(c->small));
	unet_ep_info(c->ep, c->sh->info[side], sizeof(c->sh->info[side]));
	return 0;
fail:
	ep_detach(c, side);
	return rc;
}

static void ep_teardown(void *vc)
{
	struct ep_ctx *c = vc;

	net_shared_done(c->sh, c->which);
	c->sh = NULL;
}

/* Reap completions; a failed send fails the run. */
static inline int reap(struct ep_ctx *c)
{
	struct unet_comp comp[64];
	int m = unet_poll_comp(c->ep, comp, 64);

	for (int k = 0; k < m; k++)
		if (comp[k].status < 0)
			return comp[k].status;
	c->outstanding -= (uint32_t)m;
	return 0;
}

static inline int send_one(struct ep_ctx *c, size_t size, uint64_t seq)
{
	int rc;

	if (size <= UNET_INLINE_MAX) {
		memcpy(c->small, &seq, sizeof(seq));
		return unet_send_inline(c->ep, c->ch, c->small, (uint32_t)size);
	}
	/* Slot 0 is rewritten: its previous send must be done with it. */
	if (c->outstanding) {
		struct perf_wait w;
		perf_wait_begin(&w);
		while ((rc = reap(c)) == 0 && c->outstanding)
			if ((rc = perf_wait_step(&w)) != 0)
				break;
		if (rc < 0)
			return rc;
	}
	memcpy(c->seg, &seq, sizeof(seq));
	struct unet_desc d = {.off = 0, .len = (uint32_t)size, .chan = (uint16_t)c->ch};
	rc = unet_send(c->ep, &d, 1);
	if (rc != 1)
		return rc < 0 ? rc : -EAGAIN;
	c->outstanding++;
	return 0;
}

static inline int recv_one(struct ep_ctx *c, struct unet_desc *in)
{
	struct perf_wait w;

	perf_wait_begin(&w);
	for (;;) {
		int n = unet_recv(c->ep, in, 1);
		if (n == 1)
			return in->flags & UNET_DF_CHAN_DOWN ? -ECONNRESET : 0;
		if (n < 0)
			return n;
		int rc = perf_wait_step(&w);
		if (rc)
			return rc;
	}
}

static inline const void *payload(struct ep_ctx *c, const struct unet_desc *d)
{
	return d->flags & UNET_DF_INLINE ? (const void *)d->data : unet_ptr(c->ep, d->off);
}

/* Check what came, give its buffer back, reap our own send's completion. */
static inline int finish(struct ep_ctx *c, const struct unet_desc *in, size_t size, uint64_t seq)
{
	uint64_t head;
	int rc;

	if (in->len != size || in->chan != c->ch)
		return -EBADMSG;
	memcpy(&head, payload(c, in), sizeof(head));
	if (head != seq)
		return -EBADMSG;
	rc = unet_release(c->ep, in, 1);
	return rc < 0 ? rc : reap(c);
}

static int ep_ping(void *vc, size_t size, uint32_t iters, uint64_t *rtt)
{
	struct ep_ctx *c = vc;
	struct unet_desc in;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq, t0 = perf_ticks();
		int rc = send_one(c, size, s);
		if (rc == 0)
			rc = recv_one(c, &in);
		if (rc == 0)
			rc = finish(c, &in, size, s);
		if (rc < 0)
			return rc;
		rtt[i] = perf_ticks() - t0;
	}
	return 0;
}

static int ep_pong(void *vc, size_t size, uint32_t iters)
{
	struct ep_ctx *c = vc;
	struct unet_desc in;

	for (uint32_t i = 0; i < iters; i++) {
		uint64_t s = ++c->seq;
		int rc = recv_one(c, &in);
		if (rc == 0)
			rc = send_one(c, size, s);
		if (rc == 0)
			rc = finish(c, &in, size, s);
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int ep_stream_tx(void *vc, size_t size, uint64_t count)
{
	struct ep_ctx *c = vc;
	const bool inl = size <= UNET_INLINE_MAX;
	const uint64_t end =
	    perf_now_ns() + (uint64_t)(net_cfg.window_ms + NET_TAIL_MS) * 1000000ull;
	const uint64_t cpu0 = net_thread_cpu_ns();
	uint64_t sent = 0;
	struct unet_desc d[BATCH];
	int rc = 0;

	for (unsigned k = 0; k < BATCH; k++) {
		memset(&d[k], 0x5a, sizeof(d[k]));
		d[k].chan = (uint16_t)c->ch;
		d[k].len = (uint32_t)size;
		d[k].flags = inl ? UNET_DF_INLINE : 0;
	}
	for (uint32_t loops = 0;; loops++) {
		if ((loops & 15) == 0 && perf_now_ns() >= end)
			break;
		if ((rc = reap(c)) < 0)
			break;
		uint32_t room = inl ? BATCH : NSRC - c->outstanding;
		if (room > BATCH)
			room = BATCH;
		for (unsigned k = 0; k < room; k++) {
			uint64_t seq = c->seq + k + 1;
			if (inl) {
				memcpy(d[k].data, &seq, sizeof(seq));
			} else {
				d[k].off = (uint64_t)((c->seq + k) % NSRC) * SLOT;
				memcpy(c->seg + d[k].off, &seq, sizeof(seq));
			}
		}
		int r = room ? unet_send(c->ep, d, room) : 0;
		if (r < 0 && r != -EAGAIN) {
			rc = r;
			break;
		}
		if (r > 0) {
			c->seq += (uint64_t)r;
			sent += (uint64_t)r;
			if (!inl)
				c->outstanding += (uint32_t)r;
		} else {
			perf_relax();
		}
	}
	/* Leave no completion behind for the next run to miscount. */
	struct perf_wait w;
	perf_wait_begin(&w);
	while (rc == 0 && c->outstanding)
		if ((rc = reap(c)) == 0 && c->outstanding)
			rc = perf_wait_step(&w);
	c->sh->tx_sent += sent;
	c->sh->tx_cpu_ns += net_thread_cpu_ns() - cpu0;
	return rc;
}

static int ep_stream_rx(void *vc, size_t size, uint64_t count, struct perf_stream_rx *res)
{
	struct ep_ctx *c = vc;
	struct unet_desc d[RX_BATCH];
	struct net_window w;
	uint32_t idle = 0;
	int rc = 0;

	if (!c->rx.seen && net_seqs_init(&c->rx) < 0)
		return -ENOMEM;
	net_window_begin(&w);
	for (;;) {
		int n = unet_recv(c->ep, d, RX_BATCH);
		if (n < 0) {
			rc = n;
			break;
		}
		if (n == 0) {
			if (++idle % 256)
				continue;
			uint64_t now = perf_now_ns();
			rc = net_window_idle(&w, now);
			if (rc)
				break;
			/* Long quiet: someone else may need this CPU. */
			if (now - w.quiet_since > 200000)
				sched_yield();
			continue;
		}
		idle = 0;
		for (int k = 0; k < n; k++) {
			uint64_t head;
			if (d[k].flags & UNET_DF_CHAN_DOWN)
				return -ECONNRESET;
			memcpy(&head, payload(c, &d[k]), sizeof(head));
			if (d[k].len != size || head == 0 || head > c->rx.last + (1ull << 32))
				return -EBADMSG; /* not what the sender wrote */
			net_seqs_note(&c->rx, head);
		}
		rc = unet_release(c->ep, d, (unsigned)n);
		if (rc < 0)
			break;
		net_window_add(&w, perf_now_ns(), (uint64_t)n);
	}
	if (rc < 0)
		return rc;
	res->received = w.counted;
	res->last_ns = w.last_ns;
	c->sh->rx_in_window += w.counted;
	c->sh->rx_reordered = c->rx.reordered;
	c->sh->rx_duplicated = c->rx.duplicated;
	return 0;
}

/* One member a line: easier to read than what clang-format packs. */
/* clang-format off */
#define EP_PATH(key_, title_, setup_, stream_, note_)                                              \
	{                                                                                          \
	    .key = key_,                                                                           \
	    .title = title_,                                                                       \
	    .ctx_size = sizeof(struct ep_ctx),                                                     \
	    .max_msg = NET_MAX_MSG,                                                                \
	    .setup = setup_,                                                                       \
	    .attach = ep_attach,                                                                   \
	    .ping = ep_ping,                                                                       \
	    .pong = ep_pong,                                                                       \
	    .stream_tx = stream_ ? ep_stream_tx : NULL,                                            \
	    .stream_rx = stream_ ? ep_stream_rx : NULL,                                            \
	    .detach = ep_detach,                                                                   \
	    .teardown = ep_teardown,                                                               \
	    .note = note_,                                                                         \
	}
/* clang-format on */

const struct perf_path net_path_xdp =
    EP_PATH("xdp", "xdp NIC", setup_xdp, false,
	    "U-Net endpoints on the xdp NIC (AF_XDP, --xdp-mode, auto by default) at both ends "
	    "of the veth, inline <= 48 B, segment above, busy-polled unet_recv");
const struct perf_path net_path_xdp_generic =
    EP_PATH("xdp_generic", "xdp NIC generic", setup_xdp_generic, false,
	    "the same with the XDP program in generic (skb) mode");
const struct perf_path net_path_udp_nic =
    EP_PATH("udp_nic", "udp NIC", setup_udp_nic, false,
	    "U-Net endpoints on the udp NIC (kernel UDP sockets, sendmmsg/recvmmsg) at both "
	    "ends, busy-polled unet_recv");
const struct perf_path net_path_pps_xdp =
    EP_PATH("xdp", "xdp NIC", setup_pps_xdp, true,
	    "xdp NIC endpoints (--xdp-mode): batches of 32 unet_send, receiver counts in a fixed "
	    "window");
const struct perf_path net_path_pps_xdp_generic =
    EP_PATH("xdp_generic", "xdp NIC generic", setup_pps_xdp_generic, true,
	    "xdp NIC endpoints in generic XDP mode: batches of 32 unet_send, receiver counts in a "
	    "fixed window");
const struct perf_path net_path_pps_udp_nic =
    EP_PATH("udp_nic", "udp NIC", setup_pps_udp_nic, true,
	    "udp NIC endpoints: batches of 32 unet_send, receiver counts in a fixed window");
