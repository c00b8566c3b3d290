/*
 * nic_udp.c - the kernel-emulated NIC: a U-Net endpoint on an ordinary UDP
 * socket (the paper's "kernel-emulated endpoint").
 *
 * The kernel is the NIC here, so every transfer is a system call; what this
 * file can do is pay for as few of them as possible (sendmmsg/recvmmsg, up
 * to UDP_BATCH datagrams per call) and copy nothing in user space.
 *
 * Addressing. URI "udp" or "udp:ADDR" picks the local IPv4 address to bind
 * (default 0.0.0.0). An endpoint's name is its UDP port ("0": the kernel
 * picks one, and ep->name then holds the real port). A channel is a remote
 * "IPV4:PORT"; opening it is local and immediate. Payloads travel raw, with
 * no U-Net header, so a plain kernel UDP socket on the other side is a
 * valid peer (legacy interoperability). Receive demultiplexes by the
 * datagram's source address and port through a small open-addressing hash
 * table; a datagram from no open channel is dropped and counted
 * (rx_drop_nochan) and its buffer goes straight back to the free queue. A
 * peer must therefore answer from the address the channel names: a
 * multi-homed peer bound to 0.0.0.0 replies from its primary address for
 * the route, which is what the channel should name.
 *
 * The segment is one private anonymous mapping:
 *
 *   [ application part (attr.seg_size) | pad to a page | rx_bufs x rx_buf_size ]
 *
 * Receive descriptors are segment offsets into the buffer pool; recvmmsg
 * writes each datagram straight into a pool buffer, so receive is zero copy
 * from the application's point of view. Datagrams of at most
 * UNET_INLINE_MAX bytes are copied into the descriptor (UNET_DF_INLINE) and
 * their buffer is recycled at once; the application need not release them.
 * Sends go from the segment (or the descriptor's inline bytes) through an
 * iovec: no user-space copy either.
 *
 * Queues. The free queue is a local SPSC ring (unet/ring.h) of free buffer
 * offsets; unet_release() pushes onto it after checking that the offset is
 * a pool buffer the application holds (held[] byte per buffer). The
 * receive queue is a small local array: one recvmmsg may bring in more
 * datagrams than the caller asked for, and the extras wait there rather
 * than cost another system call. The kernel's socket queue stands in front
 * of it as the "hardware" queue: with no free buffer, datagrams stay there
 * and the kernel drops when it overflows. Those drops are visible through
 * SO_MEMINFO (sk_drops) and are reported as rx_drop_full, at no cost on the
 * data path. Datagrams larger than a receive buffer arrive truncated
 * (MSG_TRUNC) and are counted as rx_drop_toobig, never delivered.
 *
 * MTU. A channel's mtu is 65507 bytes, the IPv4 UDP limit: the peer may be
 * a legacy socket, and nothing tells us a U-Net peer's buffer size. A peer
 * whose buffers are smaller drops the datagram and counts it as toobig.
 *
 * Send. tx() drains the send queue in batches of up to UDP_BATCH with one
 * sendmmsg per batch. A message the kernel refuses completes with the
 * negative errno; EAGAIN/ENOBUFS (socket send buffer full) leave the rest
 * queued, to be retried on the next call into the endpoint (send, receive,
 * poll_comp, progress, wait).
 *
 * Blocking. unet_fd() is the socket. pending() does the receive itself
 * (into the local queue) when it has buffers, so a spin in unet_wait costs
 * one receive call per look and a hit needs no second one; with no free
 * buffer it only peeks. It also yields the core on each look (see
 * udp_pending for why and what it costs). The socket's readiness is
 * level-triggered, so arm() needs no state.
 *
 * Not here: peer failure. UDP has no connection, so a dead peer is
 * silence, never UNET_DF_CHAN_DOWN; layers above that need liveness (msg,
 * FaRM leases) time out on their own.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <netinet/in.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <linux/sock_diag.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include "nic.h"

#define UDP_BATCH 32
#define UDP_MTU 65507u
#define UDP_SOCKBUF (4 << 20) /* asked for; the kernel caps it at [rw]mem_max */

/* Private descriptor flag: the channel was closed while the message sat in
 * the send queue. Applications cannot set it (endpoint.c refuses unknown
 * flags), so it cannot be forged. */
#define UDP_DF_DEAD 0x8000

/* Ownership of a pool buffer. */
enum { BUF_NIC = 0, BUF_APP = 1, BUF_QUEUED = 2 };

struct udp_nic {
	struct in_addr bind_addr;
};

struct udp_hslot {
	uint64_t key; /* addr << 16 | port, host order; 0 = empty (port 0 never opens) */
	uint16_t chan;
};

struct udp_ep {
	int fd;
	uint8_t *map; /* whole mapping: app part + pool */
	size_t map_size;
	uint64_t pool_off; /* segment offset of buffer 0 */
	uint32_t nbufs, buf_size;
	uint8_t *held; /* per buffer: BUF_* */

	void *fq_mem;
	struct unet_ring fq;     /* producer view: release() and recycling */
	struct unet_ring fq_nic; /* consumer view: receive takes from here */

	struct unet_desc *rq; /* received, not yet handed to the application */
	uint32_t rq_mask, rq_head, rq_count;

	struct sockaddr_in *peer; /* per channel */
	struct udp_hslot *hash;
	uint32_t hash_mask;

	bool tx_blocked; /* the kernel said EAGAIN/ENOBUFS last time */

	/* Batch scratch, allocated once: the data path allocates nothing. */
	struct mmsghdr tmsg[UDP_BATCH];
	struct iovec tiov[UDP_BATCH];
	int16_t tst[UDP_BATCH];
	uint8_t tmap[UDP_BATCH];
	struct mmsghdr rmsg[UDP_BATCH];
	struct iovec riov[UDP_BATCH];
	struct sockaddr_in rsrc[UDP_BATCH];
	uint64_t roff[UDP_BATCH];
	uint64_t recycle[UDP_BATCH];
};

static uint32_t pow2_ge(uint32_t v)
{
	return v <= 1 ? 1 : 1u << (32 - __builtin_clz(v - 1));
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

/* ---- parsing ------------------------------------------------------------- */

/* Decimal port, digits only, no sign or blanks. */
static int parse_port(const char *s, bool allow_zero, uint16_t *out)
{
	uint32_t v = 0;
	size_t n = 0;

	for (; s[n]; n++) {
		if (s[n] < '0' || s[n] > '9' || n >= 5)
			return -EINVAL;
		v = v * 10 + (uint32_t)(s[n] - '0');
	}
	if (n == 0 || v > 65535 || (v == 0 && !allow_zero))
		return -EINVAL;
	*out = (uint16_t)v;
	return 0;
}

/* "A.B.C.D:PORT" -> sockaddr. 0.0.0.0 is refused: replies can never come
 * from it, so such a channel could send but never receive. */
static int parse_remote(const char *s, struct sockaddr_in *sa)
{
	const char *colon = strrchr(s, ':');
	char host[INET_ADDRSTRLEN];
	uint16_t port;
	size_t hl;

	if (!colon)
		return -EINVAL;
	hl = (size_t)(colon - s);
	if (hl == 0 || hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, hl);
	host[hl] = 0;
	memset(sa, 0, sizeof(*sa));
	sa->sin_family = AF_INET;
	if (inet_pton(AF_INET, host, &sa->sin_addr) != 1 || sa->sin_addr.s_addr == INADDR_ANY ||
	    parse_port(colon + 1, false, &port) < 0)
		return -EINVAL;
	sa->sin_port = htons(port);
	return 0;
}

/* ---- source address -> channel --------------------------------------------- */

static uint64_t hkey(const struct sockaddr_in *sa)
{
	return (uint64_t)ntohl(sa->sin_addr.s_addr) << 16 | ntohs(sa->sin_port);
}

static uint32_t hfirst(const struct udp_ep *ue, uint64_t key)
{
	return (uint32_t)((key * 0x9e3779b97f4a7c15ull) >> 32) & ue->hash_mask;
}

static int hash_find(const struct udp_ep *ue, uint64_t key)
{
	for (uint32_t i = hfirst(ue, key);; i = (i + 1) & ue->hash_mask) {
		if (ue->hash[i].key == key)
			return ue->hash[i].chan;
		if (ue->hash[i].key == 0)
			return -1;
	}
}

/* The table has at least twice as many slots as channels: never full. */
static void hash_add(struct udp_ep *ue, uint64_t key, uint16_t chan)
{
	uint32_t i = hfirst(ue, key);

	while (ue->hash[i].key != 0)
		i = (i + 1) & ue->hash_mask;
	ue->hash[i].key = key;
	ue->hash[i].chan = chan;
}

/* Linear probing with backward-shift deletion: no tombstones, so lookups
 * of absent keys stay short however often channels churn. */
static void hash_del(struct udp_ep *ue, uint64_t key)
{
	uint32_t i = hfirst(ue, key), j;

	while (ue->hash[i].key != key) {
		if (ue->hash[i].key == 0)
			return;
		i = (i + 1) & ue->hash_mask;
	}
	for (j = (i + 1) & ue->hash_mask; ue->hash[j].key != 0; j = (j + 1) & ue->hash_mask) {
		uint32_t h = hfirst(ue, ue->hash[j].key);
		/* Move j into the hole at i unless its home lies in (i, j]. */
		bool stays = i <= j ? (h > i && h <= j) : (h > i || h <= j);
		if (!stays) {
			ue->hash[i] = ue->hash[j];
			i = j;
		}
	}
	ue->hash[i].key = 0;
}

/* ---- NIC ------------------------------------------------------------------- */

static int udp_nic_open(struct unet_nic *nic, const char *args)
{
	struct udp_nic *un = calloc(1, sizeof(*un));

	if (!un)
		return -ENOMEM;
	un->bind_addr.s_addr = INADDR_ANY;
	if (*args && inet_pton(AF_INET, args, &un->bind_addr) != 1) {
		free(un);
		return -EINVAL;
	}
	nic->priv = un;
	return 0;
}

static void udp_nic_close(struct unet_nic *nic)
{
	free(nic->priv);
	nic->priv = NULL;
}

/* ---- endpoint -------------------------------------------------------------- */

static void ue_free(struct unet_ep *ep, struct udp_ep *ue)
{
	if (ue->fd >= 0)
		close(ue->fd);
	if (ue->map)
		munmap(ue->map, ue->map_size);
	free(ue->held);
	free(ue->fq_mem);
	free(ue->rq);
	free(ue->peer);
	free(ue->hash);
	free(ue);
	ep->priv = NULL;
}

static int udp_ep_create(struct unet_ep *ep, const char *name)
{
	struct udp_nic *un = ep->nic->priv;
	const struct unet_ep_attr *a = &ep->attr;
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr = un->bind_addr};
	socklen_t salen = sizeof(sa);
	struct udp_ep *ue;
	uint32_t fq_size, idx;
	size_t fq_bytes;
	uint16_t port;
	int rc, sockbuf = UDP_SOCKBUF;

	rc = parse_port(name, true, &port);
	if (rc < 0)
		return rc;
	ue = calloc(1, sizeof(*ue));
	if (!ue)
		return -ENOMEM;
	ue->fd = -1;
	ep->priv = ue;

	ue->nbufs = a->rx_bufs;
	ue->buf_size = a->rx_buf_size;
	ue->pool_off = align_up(a->seg_size, (uint64_t)sysconf(_SC_PAGESIZE));
	ue->map_size = ue->pool_off + (uint64_t)ue->nbufs * ue->buf_size;
	if (ue->map_size == 0)
		ue->map_size = 1;
	ue->map = mmap(NULL, ue->map_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
		       -1, 0);
	if (ue->map == MAP_FAILED) {
		ue->map = NULL;
		rc = -ENOMEM;
		goto fail;
	}

	rc = -ENOMEM;
	fq_size = pow2_ge(ue->nbufs);
	ue->held = calloc(ue->nbufs ? ue->nbufs : 1, 1);
	/* aligned_alloc wants a size that is a multiple of the alignment. */
	fq_bytes = align_up(unet_ring__bytes(fq_size, sizeof(uint64_t)), UNET_CACHELINE);
	ue->fq_mem = aligned_alloc(UNET_CACHELINE, fq_bytes);
	ue->rq = calloc(a->rq_depth, sizeof(*ue->rq));
	ue->peer = calloc(a->max_chans, sizeof(*ue->peer));
	ue->hash_mask = pow2_ge(2 * a->max_chans) - 1;
	ue->hash = calloc(ue->hash_mask + 1, sizeof(*ue->hash));
	if (!ue->held || !ue->fq_mem || !ue->rq || !ue->peer || !ue->hash)
		goto fail;
	ue->rq_mask = a->rq_depth - 1;
	unet_ring_attach(&ue->fq, ue->fq_mem, fq_size, sizeof(uint64_t), 1);
	unet_ring_attach(&ue->fq_nic, ue->fq_mem, fq_size, sizeof(uint64_t), 0);
	ue->fq.pub = ue->fq_nic.pub = 0;
	unet_ring_prod__reserve(&ue->fq, ue->nbufs, &idx);
	for (uint32_t b = 0; b < ue->nbufs; b++)
		*(uint64_t *)unet_ring__slot(&ue->fq, idx + b) =
			ue->pool_off + (uint64_t)b * ue->buf_size;
	unet_ring_prod__submit(&ue->fq, ue->nbufs);

	/* No SO_REUSEADDR: a port is one endpoint's, the kernel says EADDRINUSE. */
	ue->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (ue->fd < 0) {
		rc = -errno;
		goto fail;
	}
	setsockopt(ue->fd, SOL_SOCKET, SO_RCVBUF, &sockbuf, sizeof(sockbuf));
	setsockopt(ue->fd, SOL_SOCKET, SO_SNDBUF, &sockbuf, sizeof(sockbuf));
	sa.sin_port = htons(port);
	if (bind(ue->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    getsockname(ue->fd, (struct sockaddr *)&sa, &salen) < 0) {
		rc = -errno;
		goto fail;
	}
	snprintf(ep->name, sizeof(ep->name), "%u", (unsigned)ntohs(sa.sin_port));

	for (unsigned i = 0; i < UDP_BATCH; i++) {
		ue->tmsg[i].msg_hdr.msg_iov = &ue->tiov[i];
		ue->tmsg[i].msg_hdr.msg_iovlen = 1;
		ue->tmsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
		ue->rmsg[i].msg_hdr.msg_iov = &ue->riov[i];
		ue->rmsg[i].msg_hdr.msg_iovlen = 1;
		ue->rmsg[i].msg_hdr.msg_name = &ue->rsrc[i];
		ue->riov[i].iov_len = ue->buf_size;
	}
	ep->seg = ue->map;
	ep->seg_size = a->seg_size;
	ep->fd = ue->fd;
	return 0;
fail:
	ue_free(ep, ue);
	return rc;
}

static void udp_ep_destroy(struct unet_ep *ep)
{
	ue_free(ep, ep->priv);
}

static int udp_chan_open(struct unet_ep *ep, unsigned id, const char *remote, int timeout_ms)
{
	struct udp_ep *ue = ep->priv;
	struct sockaddr_in sa;
	char host[INET_ADDRSTRLEN];
	uint64_t key;

	if (parse_remote(remote, &sa) < 0)
		return -EINVAL;
	key = hkey(&sa);
	if (hash_find(ue, key) >= 0)
		return -EISCONN; /* a source can map to one channel only */
	ue->peer[id] = sa;
	hash_add(ue, key, (uint16_t)id);
	inet_ntop(AF_INET, &sa.sin_addr, host, sizeof(host));
	snprintf(ep->chans[id].remote, sizeof(ep->chans[id].remote), "%s:%u", host,
		 (unsigned)ntohs(sa.sin_port));
	ep->chans[id].mtu = UDP_MTU;
	return (int)id;
}

static void buf_recycle(struct udp_ep *ue, const uint64_t *offs, unsigned n)
{
	uint32_t idx;

	if (n == 0)
		return;
	/* Never short: the ring holds every buffer there is. */
	unet_ring_prod__reserve(&ue->fq, n, &idx);
	for (unsigned i = 0; i < n; i++) {
		ue->held[(offs[i] - ue->pool_off) / ue->buf_size] = BUF_NIC;
		*(uint64_t *)unet_ring__slot(&ue->fq, idx + i) = offs[i];
	}
	unet_ring_prod__submit(&ue->fq, n);
}

static void udp_chan_close(struct unet_ep *ep, unsigned id)
{
	struct udp_ep *ue = ep->priv;
	uint32_t keep = 0;

	hash_del(ue, hkey(&ue->peer[id]));
	memset(&ue->peer[id], 0, sizeof(ue->peer[id]));
	/* Received but not handed out: the slot id may be reused by the next
	 * channel, so these must not surface under it. */
	for (uint32_t i = 0; i < ue->rq_count; i++) {
		struct unet_desc *d = &ue->rq[(ue->rq_head + i) & ue->rq_mask];
		if (d->chan != id) {
			ue->rq[(ue->rq_head + keep++) & ue->rq_mask] = *d;
			continue;
		}
		if (!(d->flags & UNET_DF_INLINE))
			buf_recycle(ue, &d->off, 1);
		ep->st.rx_drop_nochan++;
	}
	ue->rq_count = keep;
	/* Still queued for sending (the kernel pushed back): complete them
	 * with -ENOTCONN rather than send them to a later channel in slot id. */
	for (uint32_t i = ep->sq_nic.cached_cons; i != ep->sq.pub; i++) {
		struct unet_desc *d = unet_ring__slot(&ep->sq_nic, i);
		if (d->chan == id)
			d->flags |= UDP_DF_DEAD;
	}
}

/* ---- send ------------------------------------------------------------------ */

static void udp_tx(struct unet_ep *ep)
{
	struct udp_ep *ue = ep->priv;

	ue->tx_blocked = false;
	for (;;) {
		uint32_t idx, n, i, k = 0, room, sent = 0, done;
		bool blocked = false;

		n = unet_ring_cons__peek(&ep->sq_nic, UDP_BATCH, &idx);
		if (n == 0)
			return;
		room = unet_ring_prod__nb_free(&ep->cq, n);
		for (i = 0; i < n; i++) {
			struct unet_desc *d = unet_ring__slot(&ep->sq_nic, idx + i);
			bool inl = d->flags & UNET_DF_INLINE;
			uint8_t state = d->chan < ep->attr.max_chans ? ep->chans[d->chan].state
								   : CHAN_FREE;

			if (!inl) {
				if (room == 0)
					break; /* the application must reap completions */
				room--;
			}
			if ((d->flags & UDP_DF_DEAD) || state != CHAN_OPEN) {
				ue->tst[i] = state == CHAN_DOWN ? -ECONNRESET : -ENOTCONN;
				continue;
			}
			ue->tst[i] = 1; /* in the vector */
			ue->tiov[k].iov_base = inl ? (void *)d->data : ep->seg + d->off;
			ue->tiov[k].iov_len = d->len;
			ue->tmsg[k].msg_hdr.msg_name = &ue->peer[d->chan];
			ue->tmap[k] = (uint8_t)i;
			k++;
		}
		done = i;
		while (sent < k) {
			int r = sendmmsg(ue->fd, ue->tmsg + sent, k - sent, MSG_DONTWAIT);
			if (r > 0) {
				for (int j = 0; j < r; j++)
					ue->tst[ue->tmap[sent + (uint32_t)j]] = 0;
				sent += (uint32_t)r;
				continue;
			}
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
				blocked = true;
				done = ue->tmap[sent]; /* it and everything after stay queued */
				break;
			}
			ue->tst[ue->tmap[sent]] = (int16_t)-errno; /* refused: skip it */
			sent++;
		}
		for (i = 0; i < done; i++) {
			const struct unet_desc *d = unet_ring__slot(&ep->sq_nic, idx + i);
			bool inl = d->flags & UNET_DF_INLINE;
			if (ue->tst[i] == 0) {
				ep->st.tx_msgs++;
				ep->st.tx_bytes += d->len;
				ep->st.tx_inline += inl;
			} else {
				ep->st.tx_dropped++;
			}
			if (!inl)
				unet__complete(ep, d, ue->tst[i]);
		}
		if (done < n)
			unet_ring_cons__cancel(&ep->sq_nic, n - done);
		if (done)
			unet_ring_cons__release(&ep->sq_nic, done);
		if (blocked) {
			ue->tx_blocked = true;
			return;
		}
		if (done < n)
			return; /* completion queue full */
	}
}

static inline bool tx_queued(const struct unet_ep *ep)
{
	return ep->sq.pub != ep->sq_nic.pub;
}

/* ---- receive --------------------------------------------------------------- */

/* One recvmmsg into free buffers. Descriptors go to out[] while *got < max,
 * then to the local receive queue. Returns the number of datagrams the
 * kernel handed over (0: nothing there, or no buffer or queue room). */
static unsigned rx_batch(struct unet_ep *ep, struct unet_desc *out, unsigned *got,
			 unsigned max)
{
	struct udp_ep *ue = ep->priv;
	uint32_t want = (max - *got) + (ue->rq_mask + 1 - ue->rq_count);
	uint32_t idx, nb, nrec = 0;
	int r;

	if (want > UDP_BATCH)
		want = UDP_BATCH;
	nb = unet_ring_cons__peek(&ue->fq_nic, want, &idx);
	if (nb == 0)
		return 0;
	for (uint32_t i = 0; i < nb; i++) {
		uint64_t off = *(uint64_t *)unet_ring__slot(&ue->fq_nic, idx + i);
		ue->roff[i] = off;
		ue->riov[i].iov_base = ep->seg + off;
		ue->rmsg[i].msg_hdr.msg_namelen = sizeof(struct sockaddr_in);
		ue->rmsg[i].msg_hdr.msg_flags = 0;
	}
	do
		r = recvmmsg(ue->fd, ue->rmsg, nb, MSG_DONTWAIT, NULL);
	while (r < 0 && errno == EINTR);
	if (r <= 0) {
		unet_ring_cons__cancel(&ue->fq_nic, nb);
		return 0;
	}
	unet_ring_cons__release(&ue->fq_nic, nb);
	for (uint32_t i = 0; i < (uint32_t)r; i++) {
		const struct msghdr *h = &ue->rmsg[i].msg_hdr;
		uint32_t len = ue->rmsg[i].msg_len;
		struct unet_desc *d;
		bool to_app;
		int chan;

		if (h->msg_flags & MSG_TRUNC) {
			ep->st.rx_drop_toobig++;
			ue->recycle[nrec++] = ue->roff[i];
			continue;
		}
		if (h->msg_namelen != sizeof(struct sockaddr_in) ||
		    (chan = hash_find(ue, hkey(&ue->rsrc[i]))) < 0) {
			ep->st.rx_drop_nochan++;
			ue->recycle[nrec++] = ue->roff[i];
			continue;
		}
		to_app = *got < max;
		d = to_app ? &out[(*got)++] : &ue->rq[(ue->rq_head + ue->rq_count++) & ue->rq_mask];
		d->len = len;
		d->chan = (uint16_t)chan;
		if (len <= UNET_INLINE_MAX) {
			d->off = 0;
			d->flags = UNET_DF_INLINE;
			memcpy(d->data, ep->seg + ue->roff[i], len);
			ue->recycle[nrec++] = ue->roff[i];
		} else {
			d->off = ue->roff[i];
			d->flags = 0;
			ue->held[(d->off - ue->pool_off) / ue->buf_size] =
				to_app ? BUF_APP : BUF_QUEUED;
		}
	}
	for (uint32_t i = (uint32_t)r; i < nb; i++)
		ue->recycle[nrec++] = ue->roff[i];
	buf_recycle(ue, ue->recycle, nrec);
	return (unsigned)r;
}

static int udp_rx(struct unet_ep *ep, struct unet_desc *d, unsigned max)
{
	struct udp_ep *ue = ep->priv;
	unsigned got = 0;

	if (tx_queued(ep))
		udp_tx(ep);
	while (got < max && ue->rq_count) {
		struct unet_desc *q = &ue->rq[ue->rq_head];
		if (!(q->flags & UNET_DF_INLINE))
			ue->held[(q->off - ue->pool_off) / ue->buf_size] = BUF_APP;
		d[got++] = *q;
		ue->rq_head = (ue->rq_head + 1) & ue->rq_mask;
		ue->rq_count--;
	}
	/* A short batch means the socket is empty; a full one, maybe not. */
	while (got < max) {
		uint32_t before = got;
		unsigned r = rx_batch(ep, d, &got, max);
		if (r < UDP_BATCH || got == before)
			break;
	}
	return (int)got;
}

static int udp_release(struct unet_ep *ep, const struct unet_desc *d, unsigned n)
{
	struct udp_ep *ue = ep->priv;
	uint64_t pool_end = ue->pool_off + (uint64_t)ue->nbufs * ue->buf_size;

	for (unsigned i = 0; i < n; i++) {
		uint64_t off = d[i].off, b;

		if (d[i].flags & (UNET_DF_INLINE | UNET_DF_CHAN_DOWN))
			continue;
		if (off < ue->pool_off || off >= pool_end || (off - ue->pool_off) % ue->buf_size)
			return -ERANGE;
		b = (off - ue->pool_off) / ue->buf_size;
		if (ue->held[b] != BUF_APP)
			return -EALREADY;
		buf_recycle(ue, &off, 1);
	}
	return 0;
}

/* Pull whatever the socket holds into the local queue; with no buffer to
 * pull into, just look. Never loses data. */
static int rx_poll(struct unet_ep *ep)
{
	struct udp_ep *ue = ep->priv;
	unsigned got = 0;
	char c;

	if (ue->rq_count)
		return 1;
	if (unet_ring_cons__nb_avail(&ue->fq_nic, 1) == 0)
		return recv(ue->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) >= 0;
	rx_batch(ep, NULL, &got, 0);
	return ue->rq_count != 0;
}

/* Called over and over by unet_wait's spin. The peer of a udp endpoint is
 * often a process on this host, and the kernel may wake it onto our core,
 * where a spinner that never lets go keeps it from answering until the spin
 * ends: measured here, a 20 us spin turned a 9 us round trip into 70 us.
 * So yield, then look. Measured with two processes pinned to one core:
 * 4.7 us median round trip with the yield, 31 us (and ms tails) without;
 * pinned to two cores the yield costs about 0.2 us of median and some tail
 * (it hands the core to whatever else is runnable). Yielding before the
 * look rather than after saves a fruitless receive call when the peer
 * shares our core (the caller has just tried one): about 0.4 us. */
static int udp_pending(struct unet_ep *ep)
{
	struct udp_ep *ue = ep->priv;

	if (ue->rq_count)
		return 1;
	sched_yield();
	return rx_poll(ep);
}

static int udp_arm(struct unet_ep *ep)
{
	struct udp_ep *ue = ep->priv;

	if (tx_queued(ep)) {
		udp_tx(ep);
		/* Do not sleep on unsent messages: the kernel frees send
		 * buffer space within microseconds, keep the caller driving. */
		if (ue->tx_blocked)
			return 1;
	}
	return rx_poll(ep);
}

static int udp_event(struct unet_ep *ep)
{
	if (tx_queued(ep))
		udp_tx(ep);
	return 0;
}

/* Datagrams the kernel dropped at this socket (its queue was full: we had
 * no free buffer, or the application did not receive fast enough). */
static void udp_stats(const struct unet_ep *ep, struct unet_stats *st)
{
	const struct udp_ep *ue = ep->priv;
	uint32_t mi[SK_MEMINFO_VARS];
	socklen_t len = sizeof(mi);

	if (getsockopt(ue->fd, SOL_SOCKET, SO_MEMINFO, mi, &len) == 0 &&
	    len > SK_MEMINFO_DROPS * sizeof(uint32_t))
		st->rx_drop_full += mi[SK_MEMINFO_DROPS];
}

const struct unet_nic_ops unet_nic_udp_ops = {
	.kind = "udp",
	.nic_open = udp_nic_open,
	.nic_close = udp_nic_close,
	.ep_create = udp_ep_create,
	.ep_destroy = udp_ep_destroy,
	.chan_open = udp_chan_open,
	.chan_close = udp_chan_close,
	.tx = udp_tx,
	.rx = udp_rx,
	.release = udp_release,
	.pending = udp_pending,
	.arm = udp_arm,
	.event = udp_event,
	.stats = udp_stats,
};
