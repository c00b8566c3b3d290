/*
 * unet.h - U-Net: user-level network endpoints.
 *
 * After von Eicken et al., "U-Net: A User-Level Network Interface for Parallel
 * and Distributed Computing" (SOSP 1995). A process opens a NIC, creates an
 * *endpoint* on it and gets:
 *
 *   - a communication segment: memory for message bytes, shared with the NIC;
 *   - a send queue: descriptors of messages to send (offset, length, channel);
 *   - a completion queue: tells when a send buffer may be reused;
 *   - a receive queue: descriptors of arrived messages, pointing into the
 *     segment (zero copy);
 *   - a free queue: receive buffers handed back to the NIC.
 *
 * Small messages (up to UNET_INLINE_MAX bytes) ride inside the descriptor and
 * use no buffer at all. A *channel* names a (local endpoint, remote endpoint)
 * pair; traffic that matches no open channel is dropped and counted, never
 * delivered to anyone else.
 *
 * NICs, chosen by a URI-like string to unet_nic_open():
 *   "shm"                 endpoints in processes on this host (shared memory)
 *   "udp[:ADDR]"          kernel UDP sockets (the paper's kernel-emulated
 *                         endpoint); ADDR is the local IPv4 address to bind
 *   "xdp:IFNAME[?opts]"   AF_XDP on a Linux interface (see nic_xdp.c)
 *
 * Conventions: functions return 0 (or a count) on success and a negative
 * errno-style code on failure; unet_strerror() explains a code in U-Net's
 * terms. Handles are opaque. Nothing here allocates, locks or enters the
 * kernel on the data path (unet_send, unet_recv, unet_release, unet_poll_comp)
 * except where a NIC's nature requires it (the udp NIC is the kernel).
 * One endpoint is used by one thread at a time.
 */
#ifndef UNET_UNET_H
#define UNET_UNET_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define UNET_INLINE_MAX 48 /* bytes carried inside a descriptor */
#define UNET_NAME_MAX 64   /* endpoint name, including the NUL */
#define UNET_REMOTE_MAX 128 /* remote address string, including the NUL */

/* Descriptor: one cache line. For a segment message `off`/`len` name bytes
 * in the communication segment; for an inline one (UNET_DF_INLINE) the bytes
 * are in `data` and `off` is unused. */
struct unet_desc {
	uint64_t off;
	uint32_t len;
	uint16_t chan;
	uint16_t flags;
	uint8_t data[UNET_INLINE_MAX];
};

/* Descriptor flags. */
#define UNET_DF_INLINE 0x0001    /* payload in data[], no segment buffer */
#define UNET_DF_CHAN_DOWN 0x0002 /* receive only: an event, the channel failed
                                    (peer died or closed it); len is 0 */

/* Send completion: the buffer [off, off+len) may be reused. */
struct unet_comp {
	uint64_t off;
	uint32_t len;
	uint16_t chan;
	int16_t status; /* 0, or a negative code: the message was not delivered */
};

/* Endpoint attributes. Zero in a field means "the default". */
struct unet_ep_attr {
	size_t seg_size;      /* application part of the segment (default 1 MiB) */
	uint32_t sq_depth;    /* send queue and completion queue slots (256) */
	uint32_t rq_depth;    /* receive queue slots (256); per channel on shm */
	uint32_t rx_bufs;     /* receive buffers (64); per channel on shm */
	uint32_t rx_buf_size; /* bytes per receive buffer (2048) */
	uint32_t max_chans;   /* channels (64) */
	size_t rdma_pool;     /* bytes peers may reach one-sidedly (0: none); on
				 shm shared with every channel peer at set-up
				 (see unet/rdma.h) */
};

/* Per-endpoint counters. */
struct unet_stats {
	uint64_t tx_msgs, tx_bytes, tx_inline;
	uint64_t tx_dropped;    /* sends the NIC could not deliver (see comp status) */
	uint64_t rx_msgs, rx_bytes, rx_inline;
	uint64_t rx_drop_nobuf; /* no free receive buffer (free queue empty) */
	uint64_t rx_drop_full;  /* receive queue full */
	uint64_t rx_drop_nochan;/* matched no open channel */
	uint64_t rx_drop_bad;   /* malformed: bad descriptor, truncated, checksum */
	uint64_t rx_drop_toobig;/* larger than a receive buffer */
	uint64_t wakeups;       /* times the endpoint blocked in unet_wait */
};

struct unet_nic;
struct unet_ep;

/* Open a NIC by URI (see above). *out is the handle. */
int unet_nic_open(const char *uri, struct unet_nic **out);
void unet_nic_close(struct unet_nic *nic);
const char *unet_nic_kind(const struct unet_nic *nic); /* "shm", "udp", ... */

/* Create an endpoint. `name` identifies it on its NIC: on shm it is the
 * host-wide unique name peers open channels to (-EADDRINUSE when taken by a
 * live process; a name left by a dead one is reclaimed); on udp and xdp it is
 * the UDP port number as a string ("7000", or "0" for any). `attr` may be
 * NULL for the defaults. */
int unet_ep_create(struct unet_nic *nic, const char *name, const struct unet_ep_attr *attr,
		   struct unet_ep **out);
void unet_ep_destroy(struct unet_ep *ep);

/* The application's part of the communication segment: [base, base+size).
 * Receive descriptors may point beyond it (per-channel receive areas on shm);
 * use unet_ptr() to turn any descriptor offset into a pointer. */
void *unet_ep_segment(struct unet_ep *ep, size_t *size);
void *unet_ptr(struct unet_ep *ep, uint64_t off);
const char *unet_ep_name(const struct unet_ep *ep); /* on udp: the bound port */
const struct unet_ep_attr *unet_ep_attr(const struct unet_ep *ep);

/* Open a channel to `remote` and return its id (>= 0). On shm `remote` is
 * the peer endpoint's name and both sides must open the channel to each
 * other (the first to arrive waits up to timeout_ms for the other; -1 = no
 * limit); on udp/xdp it is "IPV4:PORT" and returns at once (xdp first
 * resolves the next hop's MAC, which may take an ARP round trip: up to
 * timeout_ms, at least 1 s, -1 = 3 s; -EHOSTUNREACH when there is no route
 * through the interface or no answer). A channel from
 * a shm endpoint to itself is refused with -EINVAL. On shm a timeout of 0
 * only answers an open the peer has already started, and never dials:
 * -ENOENT when there is none (poll for a peer's open without blocking). */
int unet_chan_open(struct unet_ep *ep, const char *remote, int timeout_ms);
int unet_chan_close(struct unet_ep *ep, unsigned chan);
/* 0 when open, -ENOTCONN when closed or unknown, -ECONNRESET when the peer
 * died or closed its side. */
int unet_chan_status(struct unet_ep *ep, unsigned chan);
/* Largest message the peer on `chan` can receive, or a negative code. */
int unet_chan_mtu(struct unet_ep *ep, unsigned chan);

/* Push `n` descriptors onto the send queue and let the NIC move them.
 * Returns how many were accepted (a prefix of d[]), or a negative code when
 * the first one was refused: -ERANGE (outside the segment), -EMSGSIZE (larger
 * than the peer's buffers or UNET_INLINE_MAX for inline), -ENOTCONN (closed
 * or unknown channel), -ECONNRESET (peer dead), -EAGAIN (send queue full:
 * reap completions). */
int unet_send(struct unet_ep *ep, const struct unet_desc *d, unsigned n);
/* Convenience: one inline message of len <= UNET_INLINE_MAX. */
int unet_send_inline(struct unet_ep *ep, unsigned chan, const void *buf, uint32_t len);

/* Reap up to `max` send completions. Returns the count. */
int unet_poll_comp(struct unet_ep *ep, struct unet_comp *c, unsigned max);

/* Take up to `max` received descriptors. Segment messages must be given
 * back with unet_release() once consumed; inline ones need not (it is a
 * no-op for them). Returns the count. */
int unet_recv(struct unet_ep *ep, struct unet_desc *d, unsigned max);
/* Return receive buffers to the free queue. Returns 0, or -ERANGE for an
 * offset that is not a receive buffer of this endpoint. */
int unet_release(struct unet_ep *ep, const struct unet_desc *d, unsigned n);

/* A file descriptor that becomes readable when the endpoint needs attention
 * (messages may have arrived, a channel changed state). Call unet_arm()
 * before blocking on it: it returns 1 if work is already pending (do not
 * block) and 0 once armed. */
int unet_fd(struct unet_ep *ep);
int unet_arm(struct unet_ep *ep);
/* Spin briefly, then block until something is received or `timeout_ms`
 * passes (-1: forever). Returns 1 when there is work, 0 on timeout. */
int unet_wait(struct unet_ep *ep, int timeout_ms);
/* Service control work (channel hand-shakes, peer failures) without
 * receiving. unet_recv and unet_wait do this too, cheaply. */
int unet_progress(struct unet_ep *ep);

void unet_get_stats(const struct unet_ep *ep, struct unet_stats *st);
/* One line saying how the NIC runs this endpoint, "KIND key=value ...", e.g.
 * "xdp dev=veth0 queue=0 mode=native bind=copy frame=2048 ...". Written into
 * buf (always NUL-terminated when len > 0); returns the length it needed,
 * like snprintf, or a negative code. */
int unet_ep_info(const struct unet_ep *ep, char *buf, size_t len);
const char *unet_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* UNET_UNET_H */
