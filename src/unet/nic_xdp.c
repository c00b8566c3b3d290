/*
 * nic_xdp.c - the AF_XDP NIC: the modern U-Net. The kernel's AF_XDP rings are
 * the endpoint's queues and its UMEM is the communication segment.
 *
 *   URI       "xdp:IFNAME[?queue=Q&mode=auto|native|generic&ip=A.B.C.D]"
 *   endpoint  named by the UDP port it owns on the interface's IPv4 address
 *             (or ?ip=); "0" picks a free port. A kernel UDP socket bound to
 *             that address and port reserves it, so no kernel application
 *             and no second endpoint can take it.
 *   channel   a remote "IPV4:PORT"; frames are demultiplexed by their source
 *             address and port. Anything else is dropped and counted.
 *
 *   segment = UMEM: [ application part | rx frames | tx frames ]
 *   free queue = fill ring, receive queue = RX ring, completion ring
 *   recycles tx frames.
 *
 * Receive is zero copy: a message's descriptor points at the UDP payload
 * inside its UMEM frame, and unet_release() gives the frame back to the fill
 * ring (payloads up to UNET_INLINE_MAX are copied into the descriptor and the
 * frame goes back at once). Every frame is validated (xdp_frame.h) before it
 * is delivered; the kernel never hands us a frame for another port, because
 * our own XDP program (xdp_prog.c, bpf/unet_xdp.bpf.c) steers only the ports
 * endpoints own and passes ARP, ICMP, TCP and other ports to the kernel.
 *
 * Send copies. A frame needs 42 bytes of headers right before the payload,
 * and the API does not make the application leave room for them in its
 * buffers; the UDP checksum must read every payload byte anyway, and on veth
 * (copy mode) the kernel copies again regardless. So unet_send builds each
 * frame in a NIC-owned tx frame of the UMEM (headers from a per-channel
 * template, payload, checksums), posts the send completion as soon as the
 * copy is done -- the application's buffer is free again, as on shm -- and
 * kicks the kernel once per batch when the TX ring asks for it.
 *
 * Several endpoints on one interface: one AF_XDP socket per RX queue (the
 * kernel allows one UMEM per queue), so each endpoint takes its own queue
 * (?queue=Q; -EBUSY when taken). They share the interface's one XDP program.
 * A frame reaches an endpoint only if it arrives on that endpoint's queue: on
 * veth in generic mode everything arrives on queue 0, in native mode the
 * peer's tx queue k lands on rx queue k (`ethtool -L DEV rx N tx N`).
 */
#include <errno.h>
#include <sched.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <xdp/xsk.h>

#include "nic.h"
#include "xdp_frame.h"
#include "xdp_net.h"
#include "xdp_prog.h"

#define XDP_HEADROOM 256 /* XDP_PACKET_HEADROOM: where the kernel puts a frame */
#define KICK_MAX 64      /* sendto calls per tx batch at most (copy mode: 32 frames each, or the budget) */
#ifndef XDP_MAX_TX_SKB_BUDGET
#define XDP_MAX_TX_SKB_BUDGET 9 /* linux 6.17 uapi; older headers lack it */
#endif

enum { FR_KERNEL = 0, FR_APP = 1 };

struct xdp_nic {
	char ifname[IFNAMSIZ];
	uint32_t queue;
	enum unet_xdp_mode mode;
	uint32_t ip; /* ?ip=, network order; 0 = the interface's */
};

struct xdp_chan {
	struct xf_tmpl t;
	uint64_t key;
};

struct xdp_ep {
	struct xdp_ifinfo ifi;
	uint32_t ip;    /* network order */
	uint16_t port;  /* network order */
	int resv_fd;    /* kernel UDP socket that reserves (ip, port) */
	bool zerocopy;

	uint8_t *umem_area;
	size_t umem_size;
	uint32_t fsize, fshift; /* frame size and its log2 */
	uint32_t rx_first, nrx; /* rx frames: indices [rx_first, rx_first + nrx) */
	uint32_t tx_first, ntx;
	uint8_t *rx_state;      /* FR_KERNEL or FR_APP per rx frame */
	uint32_t *rx_off;       /* payload offset handed out, per rx frame */
	uint32_t *tx_free;      /* free tx frame indices, oldest first (see comp_reap) */
	uint32_t tx_head, ntx_free; /* index of the oldest; how many */
	uint8_t *tx_busy;       /* 1 while a tx frame is with the kernel */

	struct xsk_umem *umem;
	struct xsk_socket *xsk;
	struct xsk_ring_prod fill, tx;
	struct xsk_ring_cons comp, rx;
	int xfd;

	struct xdp_prog prog;

	/* (source address, source port) -> channel, open addressing */
	uint64_t *dm_key;
	uint16_t *dm_chan;
	uint32_t dm_mask;

	uint64_t rx_bad, rx_nochan, tx_bad_comp;
};

#define DM_EMPTY UINT64_MAX

static uint64_t dm_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

static uint64_t dm_make(uint32_t ip, uint16_t port)
{
	return ((uint64_t)ip << 16) | port;
}

static int dm_find(const struct xdp_ep *xe, uint64_t k)
{
	for (uint32_t i = (uint32_t)dm_hash(k) & xe->dm_mask;; i = (i + 1) & xe->dm_mask) {
		if (xe->dm_key[i] == k)
			return xe->dm_chan[i];
		if (xe->dm_key[i] == DM_EMPTY)
			return -1;
	}
}

static void dm_insert(struct xdp_ep *xe, uint64_t k, uint16_t chan)
{
	uint32_t i = (uint32_t)dm_hash(k) & xe->dm_mask;

	while (xe->dm_key[i] != DM_EMPTY)
		i = (i + 1) & xe->dm_mask;
	xe->dm_key[i] = k;
	xe->dm_chan[i] = chan;
}

/* Linear-probing delete with backward shift: no tombstones to age. */
static void dm_remove(struct xdp_ep *xe, uint64_t k)
{
	uint32_t i = (uint32_t)dm_hash(k) & xe->dm_mask, j;

	while (xe->dm_key[i] != k) {
		if (xe->dm_key[i] == DM_EMPTY)
			return;
		i = (i + 1) & xe->dm_mask;
	}
	for (j = i;;) {
		xe->dm_key[i] = DM_EMPTY;
		for (;;) {
			j = (j + 1) & xe->dm_mask;
			if (xe->dm_key[j] == DM_EMPTY)
				return;
			uint32_t h = (uint32_t)dm_hash(xe->dm_key[j]) & xe->dm_mask;
			/* move j back to i unless its home lies cyclically in (i, j] */
			if (i <= j ? (i < h && h <= j) : (i < h || h <= j))
				continue;
			break;
		}
		xe->dm_key[i] = xe->dm_key[j];
		xe->dm_chan[i] = xe->dm_chan[j];
		i = j;
	}
}

static uint32_t pow2_ge(uint32_t v)
{
	return v <= 1 ? 1 : 1u << (32 - __builtin_clz(v - 1));
}

/* ---- NIC ------------------------------------------------------------------ */

static int parse_u32(const char *s, size_t n, uint32_t max, uint32_t *out)
{
	char buf[16];
	char *end;
	unsigned long v;

	if (n == 0 || n >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, s, n);
	buf[n] = 0;
	if (buf[0] < '0' || buf[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(buf, &end, 10);
	if (*end || errno || v > max)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

static int xdp_nic_open(struct unet_nic *nic, const char *args)
{
	struct xdp_nic *xn;
	const char *q = strchr(args, '?');
	size_t n = q ? (size_t)(q - args) : strlen(args);

	if (n == 0)
		return -EINVAL;
	if (n >= IFNAMSIZ)
		return -ENAMETOOLONG;
	xn = calloc(1, sizeof(*xn));
	if (!xn)
		return -ENOMEM;
	memcpy(xn->ifname, args, n);
	while (q && *q) {
		const char *k = q + 1, *eq = strchr(k, '='), *amp = strchr(k, '&');
		const char *end = amp ? amp : k + strlen(k);
		int rc = -EINVAL;
		if (!eq || eq > end)
			goto bad;
		const char *v = eq + 1;
		size_t kl = (size_t)(eq - k), vl = (size_t)(end - v);
		if (kl == 5 && memcmp(k, "queue", 5) == 0) {
			rc = parse_u32(v, vl, UNET_XDP_MAX_QUEUES - 1, &xn->queue);
		} else if (kl == 4 && memcmp(k, "mode", 4) == 0) {
			rc = 0;
			if (vl == 4 && memcmp(v, "auto", 4) == 0)
				xn->mode = UNET_XDP_AUTO;
			else if (vl == 6 && memcmp(v, "native", 6) == 0)
				xn->mode = UNET_XDP_NATIVE;
			else if (vl == 7 && memcmp(v, "generic", 7) == 0)
				xn->mode = UNET_XDP_GENERIC;
			else
				rc = -EINVAL;
		} else if (kl == 2 && memcmp(k, "ip", 2) == 0) {
			char buf[INET_ADDRSTRLEN];
			if (vl < sizeof(buf)) {
				memcpy(buf, v, vl);
				buf[vl] = 0;
				rc = inet_pton(AF_INET, buf, &xn->ip) == 1 && xn->ip ? 0 : -EINVAL;
			}
		}
		if (rc < 0) {
		bad:
			free(xn);
			return rc;
		}
		q = amp;
	}
	if (if_nametoindex(xn->ifname) == 0) {
		free(xn);
		return -ENODEV;
	}
	nic->priv = xn;
	return 0;
}

static void xdp_nic_close(struct unet_nic *nic)
{
	free(nic->priv);
}

/* ---- endpoint ------------------------------------------------------------- */

static void ep_free(struct unet_ep *ep)
{
	struct xdp_ep *xe = ep->priv;
	struct xdp_quiet qt;

	if (!xe)
		return;
	xdp_quiet_begin(&qt);
	xdp_prog_close(&xe->prog);
	if (xe->xsk)
		xsk_socket__delete(xe->xsk);
	if (xe->umem)
		xsk_umem__delete(xe->umem);
	xdp_quiet_end(&qt);
	if (xe->umem_area)
		munmap(xe->umem_area, xe->umem_size);
	if (xe->resv_fd >= 0)
		close(xe->resv_fd);
	free(xe->rx_state);
	free(xe->rx_off);
	free(xe->tx_free);
	free(xe->tx_busy);
	free(xe->dm_key);
	free(xe->dm_chan);
	free(xe);
	ep->priv = NULL;
}

/* Reserve (ip, port) with a kernel socket; learn the port when it was 0. */
static int port_reserve(struct xdp_ep *xe, uint32_t port)
{
	struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
				  .sin_addr.s_addr = xe->ip};
	socklen_t len = sizeof(sin);
	int one = 1, small = 1;

	xe->resv_fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (xe->resv_fd < 0)
		return -errno;
	setsockopt(xe->resv_fd, IPPROTO_IP, IP_FREEBIND, &one, sizeof(one));
	setsockopt(xe->resv_fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof(small));
	if (bind(xe->resv_fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    getsockname(xe->resv_fd, (struct sockaddr *)&sin, &len) < 0)
		return -errno;
	xe->port = sin.sin_port;
	return 0;
}

static int sockets_create(struct unet_ep *ep, struct xdp_ep *xe, const char *ifname,
			  uint32_t queue, bool try_zc)
{
	struct xsk_umem_config uc = {
		.fill_size = pow2_ge(xe->nrx),
		.comp_size = pow2_ge(xe->ntx),
		.frame_size = xe->fsize,
		.frame_headroom = 0,
	};
	struct xsk_socket_config sc = {
		.rx_size = ep->attr.rq_depth,
		.tx_size = ep->attr.sq_depth,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.bind_flags = XDP_USE_NEED_WAKEUP | (try_zc ? XDP_ZEROCOPY : XDP_COPY),
	};
	int rc;

	rc = xsk_umem__create(&xe->umem, xe->umem_area, xe->umem_size, &xe->fill, &xe->comp, &uc);
	if (rc < 0) {
		xe->umem = NULL;
		return rc == -ENOBUFS ? -ENOMEM : rc; /* ENOBUFS: over the memlock limit */
	}
	rc = xsk_socket__create(&xe->xsk, ifname, queue, xe->umem, &xe->rx, &xe->tx, &sc);
	if (rc < 0) {
		xe->xsk = NULL;
		xsk_umem__delete(xe->umem);
		xe->umem = NULL;
		return rc;
	}
	xe->zerocopy = try_zc;
	/* Copy mode transmits at most 32 frames per kick unless told more
	 * (kernels >= 6.17): a whole send queue per sendto then. Older
	 * kernels refuse the option and keep 32. */
	if (!try_zc) {
		int budget = (int)ep->attr.sq_depth;
		setsockopt(xsk_socket__fd(xe->xsk), SOL_XDP, XDP_MAX_TX_SKB_BUDGET, &budget,
			   sizeof(budget));
	}
	return 0;
}

static int xdp_ep_create(struct unet_ep *ep, const char *name)
{
	struct xdp_nic *xn = ep->nic->priv;
	struct xdp_ep *xe;
	struct xdp_quiet qt;
	uint32_t port, idx = 0;
	int rc;

	rc = parse_u32(name, strlen(name), 65535, &port);
	if (rc < 0)
		return rc;
	if (ep->attr.rx_buf_size > 4096 || ep->attr.rx_bufs == 0)
		return -EINVAL;
	xe = calloc(1, sizeof(*xe));
	if (!xe)
		return -ENOMEM;
	ep->priv = xe;
	xe->resv_fd = -1;
	xe->xfd = -1;
	xe->prog.prog_fd = xe->prog.ports_fd = xe->prog.xsks_fd = -1;
	xe->prog.lock_fd = xe->prog.queue_fd = -1;

	rc = xdp_if_info(xn->ifname, &xe->ifi);
	if (rc < 0)
		goto fail;
	xe->ip = xn->ip ? xn->ip : xe->ifi.addr;
	rc = -EADDRNOTAVAIL;
	if (!xe->ip)
		goto fail;
	rc = port_reserve(xe, port);
	if (rc < 0)
		goto fail;
	snprintf(ep->name, sizeof(ep->name), "%u", ntohs(xe->port));

	/* Frames: 2048 bytes unless the buffers asked for, or the MTU needs,
	 * more; at most a page (aligned UMEM chunks). */
	xe->fsize = ep->attr.rx_buf_size > 2048 ||
				    xe->ifi.mtu + XF_ETH_LEN + XDP_HEADROOM > 2048
			    ? 4096
			    : 2048;
	xe->fshift = xe->fsize == 4096 ? 12 : 11;
	xe->nrx = ep->attr.rx_bufs;
	xe->ntx = ep->attr.sq_depth;
	xe->rx_first = (uint32_t)((ep->attr.seg_size + xe->fsize - 1) >> xe->fshift);
	xe->tx_first = xe->rx_first + xe->nrx;
	xe->umem_size = ((size_t)xe->tx_first + xe->ntx) << xe->fshift;
	rc = -ENOMEM;
	xe->rx_state = calloc(xe->nrx, 1);
	xe->rx_off = calloc(xe->nrx, sizeof(*xe->rx_off));
	xe->tx_free = calloc(xe->ntx, sizeof(*xe->tx_free));
	xe->tx_busy = calloc(xe->ntx, 1);
	xe->dm_mask = pow2_ge(ep->attr.max_chans * 2) - 1;
	xe->dm_key = malloc(((size_t)xe->dm_mask + 1) * sizeof(*xe->dm_key));
	xe->dm_chan = calloc((size_t)xe->dm_mask + 1, sizeof(*xe->dm_chan));
	if (!xe->rx_state || !xe->rx_off || !xe->tx_free || !xe->tx_busy || !xe->dm_key ||
	    !xe->dm_chan)
		goto fail;
	memset(xe->dm_key, 0xff, ((size_t)xe->dm_mask + 1) * sizeof(*xe->dm_key));
	xe->umem_area = mmap(NULL, xe->umem_size, PROT_READ | PROT_WRITE,
			     MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (xe->umem_area == MAP_FAILED) {
		xe->umem_area = NULL;
		goto fail;
	}

	xdp_quiet_begin(&qt);
	rc = xdp_prog_open(&xe->prog, xe->ifi.ifindex, xn->queue, xn->mode);
	for (int tries = 0; rc == 0; tries++) {
		/* Zero copy needs the driver's own XDP; veth and generic mode
		 * refuse it (EOPNOTSUPP), so copy mode is the fallback. */
		rc = -EOPNOTSUPP;
		if (xe->prog.native)
			rc = sockets_create(ep, xe, xn->ifname, xn->queue, true);
		if (rc < 0)
			rc = sockets_create(ep, xe, xn->ifname, xn->queue, false);
		/* The queue is ours (xdp_prog_open claimed it), but the kernel
		 * frees a closed socket's buffer pool from a work queue: right
		 * after its previous owner died, bind says EBUSY for a moment. */
		if (rc != -EBUSY || tries >= 400)
			break;
		usleep(5000);
		rc = 0;
	}
	if (rc == 0) {
		xe->xfd = xsk_socket__fd(xe->xsk);
		rc = xdp_prog_publish(&xe->prog, xe->ip, xe->port,
				      xe->fsize - XDP_HEADROOM, xe->xfd);
	}
	xdp_quiet_end(&qt);
	if (rc < 0)
		goto fail;

	/* Every rx frame starts with the kernel, every tx frame free. */
	if (xsk_ring_prod__reserve(&xe->fill, xe->nrx, &idx) != xe->nrx) {
		rc = -EIO;
		goto fail;
	}
	for (uint32_t i = 0; i < xe->nrx; i++)
		*xsk_ring_prod__fill_addr(&xe->fill, idx + i) = (uint64_t)(xe->rx_first + i)
								<< xe->fshift;
	xsk_ring_prod__submit(&xe->fill, xe->nrx);
	for (uint32_t i = 0; i < xe->ntx; i++)
		xe->tx_free[i] = i;
	xe->tx_head = 0;
	xe->ntx_free = xe->ntx;

	ep->seg = xe->umem_area;
	ep->seg_size = (size_t)xe->rx_first << xe->fshift;
	ep->fd = xe->xfd;
	return 0;
fail:
	ep_free(ep);
	return rc;
}

static void xdp_ep_destroy(struct unet_ep *ep)
{
	ep_free(ep);
}

/* ---- channels ----------------------------------------------------------- */

static int parse_remote(const char *remote, uint32_t *ip, uint16_t *port)
{
	const char *colon = strrchr(remote, ':');
	char buf[INET_ADDRSTRLEN];
	uint32_t p;

	if (!colon || (size_t)(colon - remote) >= sizeof(buf))
		return -EINVAL;
	memcpy(buf, remote, (size_t)(colon - remote));
	buf[colon - remote] = 0;
	if (inet_pton(AF_INET, buf, ip) != 1 || *ip == 0 || *ip == INADDR_BROADCAST)
		return -EINVAL;
	if (parse_u32(colon + 1, strlen(colon + 1), 65535, &p) < 0 || p == 0)
		return -EINVAL;
	*port = htons((uint16_t)p);
	return 0;
}

static int xdp_chan_open(struct unet_ep *ep, unsigned id, const char *remote, int timeout_ms)
{
	struct xdp_nic *xn = ep->nic->priv;
	struct xdp_ep *xe = ep->priv;
	struct xdp_chan *c;
	uint8_t mac[6];
	uint32_t ip;
	uint16_t port;
	int rc;

	rc = parse_remote(remote, &ip, &port);
	if (rc < 0)
		return rc;
	if (dm_find(xe, dm_make(ip, port)) >= 0)
		return -EEXIST;
	/* Resolving the next hop may take an ARP round trip: allow at least
	 * a second however short the caller's timeout. */
	rc = xdp_resolve(xe->ifi.ifindex, xn->ifname, ip,
			 timeout_ms < 0 ? 3000 : timeout_ms < 1000 ? 1000 : timeout_ms, mac);
	if (rc < 0)
		return rc;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	xf_tmpl_init(&c->t, xe->ifi.mac, mac, xe->ip, ip, xe->port, port);
	c->key = dm_make(ip, port);
	dm_insert(xe, c->key, (uint16_t)id);
	ep->chans[id].priv = c;
	strcpy(ep->chans[id].remote, remote);
	/* What a datagram may carry without fragmenting, and what fits a
	 * receive frame of an endpoint configured like us. */
	uint32_t by_mtu = xe->ifi.mtu - XF_IP_LEN - XF_UDP_LEN;
	uint32_t by_frame = xe->fsize - XDP_HEADROOM - XF_HDR_LEN;
	ep->chans[id].mtu = by_mtu < by_frame ? by_mtu : by_frame;
	return (int)id;
}

static void xdp_chan_close(struct unet_ep *ep, unsigned id)
{
	struct xdp_ep *xe = ep->priv;
	struct xdp_chan *c = ep->chans[id].priv;

	if (!c)
		return;
	dm_remove(xe, c->key);
	free(c);
	ep->chans[id].priv = NULL;
}

/* ---- data path -------------------------------------------------------- */

/* Take back tx frames the kernel says it has finished with. They queue up
 * behind every other free frame (a FIFO, not a stack) because on veth in
 * copy mode (kernel 6.18), under flat-out sending, the completion ring now
 * and then returns a frame the kernel has yet to read: a frame scribbled
 * over the moment its completion arrived went out scribbled. Refilled at
 * once (a stack), such a frame went out carrying the next message -- a
 * duplicate, and the original lost (unet-perf compare-net, BENCHMARKS.md);
 * reused only after every other free frame, it is long done with. */
static void comp_reap(struct xdp_ep *xe)
{
	uint32_t idx = 0, n = xsk_ring_cons__peek(&xe->comp, xe->ntx, &idx);

	for (uint32_t i = 0; i < n; i++) {
		uint64_t f = *xsk_ring_cons__comp_addr(&xe->comp, idx + i) >> xe->fshift;
		if (f < xe->tx_first || f - xe->tx_first >= xe->ntx ||
		    !xe->tx_busy[f - xe->tx_first]) {
			xe->tx_bad_comp++;
			continue;
		}
		xe->tx_busy[f - xe->tx_first] = 0;
		xe->tx_free[(xe->tx_head + xe->ntx_free++) & (xe->ntx - 1)] =
		    (uint32_t)(f - xe->tx_first);
	}
	if (n)
		xsk_ring_cons__release(&xe->comp, n);
}

/* Make the kernel transmit what sits in the TX ring. Copy mode sends at
 * most 32 frames per call and says EAGAIN when more remain. */
static bool tx_waiting(const struct xdp_ep *xe)
{
	return __atomic_load_n(xe->tx.consumer, __ATOMIC_ACQUIRE) != *xe->tx.producer;
}

static void tx_kick(struct xdp_ep *xe)
{
	for (int i = 0; i < KICK_MAX; i++) {
		if (!tx_waiting(xe) || !xsk_ring_prod__needs_wakeup(&xe->tx))
			return;
		if (sendto(xe->xfd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
			continue;
		if (errno != EAGAIN && errno != EBUSY && errno != EINTR)
			return; /* ENOBUFS, ENETDOWN: the frames wait for the next kick */
	}
}

static void xdp_tx(struct unet_ep *ep)
{
	struct xdp_ep *xe = ep->priv;
	uint32_t idx, n, done, queued = 0;

	comp_reap(xe);
	n = unet_ring_cons__peek(&ep->sq_nic, ep->attr.sq_depth, &idx);
	for (done = 0; done < n; done++) {
		const struct unet_desc *d = unet_ring__slot(&ep->sq_nic, idx + done);
		bool inl = d->flags & UNET_DF_INLINE;
		struct unet_chan *ch = &ep->chans[d->chan];
		int st = 0;

		if (!inl && !unet__comp_room(ep))
			break; /* stall until the application reaps completions */
		if (ch->state != CHAN_OPEN) {
			st = ch->state == CHAN_DOWN ? -ECONNRESET : -ENOTCONN;
		} else {
			if (xe->ntx_free == 0) {
				if (queued) {
					xsk_ring_prod__submit(&xe->tx, queued);
					queued = 0;
				}
				tx_kick(xe);
				comp_reap(xe);
				if (xe->ntx_free == 0)
					break; /* every frame in flight: retry later */
			}
			uint32_t ti = 0, f = xe->tx_free[xe->tx_head];
			uint64_t addr = (uint64_t)(xe->tx_first + f) << xe->fshift;
			const struct xdp_chan *c = ch->priv;
			/* ntx frames and ntx TX slots: a free frame means a free
			 * slot, unless the kernel broke the ring protocol */
			if (xsk_ring_prod__reserve(&xe->tx, 1, &ti) != 1)
				break;
			xe->ntx_free--;
			xe->tx_head = (xe->tx_head + 1) & (xe->ntx - 1);
			struct xdp_desc *td = xsk_ring_prod__tx_desc(&xe->tx, ti);
			td->addr = addr;
			td->len = xf_build(xe->umem_area + addr, &c->t,
					   inl ? (const void *)d->data : ep->seg + d->off, d->len);
			td->options = 0;
			xe->tx_busy[f] = 1;
			queued++;
		}
		if (st == 0) {
			ep->st.tx_msgs++;
			ep->st.tx_bytes += d->len;
			ep->st.tx_inline += inl;
		} else {
			ep->st.tx_dropped++;
		}
		if (!inl)
			unet__complete(ep, d, st);
	}
	if (done < n)
		unet_ring_cons__cancel(&ep->sq_nic, n - done);
	if (done)
		unet_ring_cons__release(&ep->sq_nic, done);
	if (queued)
		xsk_ring_prod__submit(&xe->tx, queued);
	tx_kick(xe);
}

static int xdp_rx(struct unet_ep *ep, struct unet_desc *d, unsigned max)
{
	struct xdp_ep *xe = ep->priv;
	uint64_t back[64];
	uint32_t idx = 0, n, nback = 0, got = 0;

	/* Frames still waiting in the TX ring (the kernel was busy at the last
	 * kick) must not wait for the application's next send. */
	if (tx_waiting(xe))
		tx_kick(xe);
	if (xsk_ring_prod__needs_wakeup(&xe->fill))
		recvfrom(xe->xfd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	if (max > 64)
		max = 64; /* bounded by back[]: the rest stays in the ring */
	n = xsk_ring_cons__peek(&xe->rx, max, &idx);
	for (uint32_t i = 0; i < n; i++) {
		const struct xdp_desc *rd = xsk_ring_cons__rx_desc(&xe->rx, idx + i);
		uint64_t addr = rd->addr, f = addr >> xe->fshift, r = f - xe->rx_first;
		uint32_t len = rd->len, saddr, plen;
		uint16_t sport;
		int ch;

		if (f < xe->rx_first || r >= xe->nrx || xe->rx_state[r] != FR_KERNEL ||
		    (addr & (xe->fsize - 1)) + len > xe->fsize) {
			xe->rx_bad++; /* not a frame we gave the kernel: leave it */
			continue;
		}
		if (xf_parse(xe->umem_area + addr, len, xe->ip, &saddr, &sport, &plen) < 0) {
			xe->rx_bad++;
			back[nback++] = f << xe->fshift;
			continue;
		}
		ch = dm_find(xe, dm_make(saddr, sport));
		if (ch < 0) {
			xe->rx_nochan++;
			back[nback++] = f << xe->fshift;
			continue;
		}
		struct unet_desc *o = &d[got++];
		o->len = plen;
		o->chan = (uint16_t)ch;
		if (plen <= UNET_INLINE_MAX) {
			o->off = 0;
			o->flags = UNET_DF_INLINE;
			memcpy(o->data, xe->umem_area + addr + XF_HDR_LEN, plen);
			back[nback++] = f << xe->fshift;
		} else {
			o->off = addr + XF_HDR_LEN;
			o->flags = 0;
			xe->rx_state[r] = FR_APP;
			xe->rx_off[r] = (uint32_t)(addr + XF_HDR_LEN - (f << xe->fshift));
		}
	}
	if (n)
		xsk_ring_cons__release(&xe->rx, n);
	if (nback) {
		/* fill ring size >= rx frames: never full */
		xsk_ring_prod__reserve(&xe->fill, nback, &idx);
		for (uint32_t i = 0; i < nback; i++)
			*xsk_ring_prod__fill_addr(&xe->fill, idx + i) = back[i];
		xsk_ring_prod__submit(&xe->fill, nback);
	}
	return (int)got;
}

/* Frames go back to the fill ring in one submit per call, not one per
 * frame: the kernel re-reads the fill ring's producer index (a cache line
 * this thread just wrote) whenever its cached view runs dry, so per-frame
 * submits cost it a cross-CPU cache miss per received frame. A bad
 * descriptor stops the call; those before it are given back. */
static int xdp_release(struct unet_ep *ep, const struct unet_desc *d, unsigned n)
{
	struct xdp_ep *xe = ep->priv;
	uint32_t idx = 0, good = 0;
	unsigned i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		uint64_t off = d[i].off, f = off >> xe->fshift, r = f - xe->rx_first;

		if (d[i].flags & (UNET_DF_INLINE | UNET_DF_CHAN_DOWN))
			continue;
		if (f < xe->rx_first || r >= xe->nrx) {
			rc = -ERANGE;
			break;
		}
		if (xe->rx_state[r] != FR_APP) {
			rc = -EALREADY;
			break;
		}
		if (off - (f << xe->fshift) != xe->rx_off[r]) {
			rc = -ERANGE;
			break;
		}
		xe->rx_state[r] = FR_KERNEL;
		good++;
	}
	if (good == 0)
		return rc;
	/* fill ring size >= rx frames: never full */
	xsk_ring_prod__reserve(&xe->fill, good, &idx);
	for (unsigned j = 0; j < i; j++) {
		if (d[j].flags & (UNET_DF_INLINE | UNET_DF_CHAN_DOWN))
			continue;
		*xsk_ring_prod__fill_addr(&xe->fill, idx++) = d[j].off >> xe->fshift << xe->fshift;
	}
	xsk_ring_prod__submit(&xe->fill, good);
	return rc;
}

static int rx_waiting(const struct xdp_ep *xe)
{
	return __atomic_load_n(xe->rx.producer, __ATOMIC_ACQUIRE) != *xe->rx.consumer;
}

/* unet_wait spins on this before it blocks. The peer is often a process on
 * this host, and when the other core is busy the kernel wakes it onto our
 * core, where a spinner that never lets go keeps it from answering until the
 * spin ends (measured: a 2.5 us round trip became 45 us). So when there is
 * nothing yet, yield: one cheap system call when nobody else wants the core,
 * and the core for the peer when it does. */
static int xdp_pending(struct unet_ep *ep)
{
	if (rx_waiting(ep->priv))
		return 1;
	sched_yield();
	return 0;
}

/* The socket itself polls readable when the RX ring is not empty, so there
 * is nothing to arm: just say whether blocking would be wrong. */
static int xdp_arm(struct unet_ep *ep)
{
	struct xdp_ep *xe = ep->priv;

	if (tx_waiting(xe))
		tx_kick(xe);
	return rx_waiting(xe);
}

static int xdp_event(struct unet_ep *ep)
{
	return rx_waiting(ep->priv);
}

static void xdp_stats(const struct unet_ep *ep, struct unet_stats *st)
{
	const struct xdp_ep *xe = ep->priv;
	struct xdp_statistics ks;
	socklen_t len = sizeof(ks);
	uint64_t toobig, wrongq;

	st->rx_drop_bad += xe->rx_bad;
	st->rx_drop_nochan += xe->rx_nochan;
	if (getsockopt(xe->xfd, SOL_XDP, XDP_STATISTICS, &ks, &len) == 0) {
		st->rx_drop_nobuf += ks.rx_dropped; /* no frame on the fill ring */
		st->rx_drop_full += ks.rx_ring_full;
		st->rx_drop_bad += ks.rx_invalid_descs;
		st->tx_dropped += ks.tx_invalid_descs;
	}
	if (xdp_prog_counters(&xe->prog, &toobig, &wrongq) == 0) {
		st->rx_drop_toobig += toobig;
		/* It arrived where the endpoint has no receive buffers. */
		st->rx_drop_nobuf += wrongq;
	}
}

static int xdp_info(const struct unet_ep *ep, char *buf, size_t len)
{
	const struct xdp_nic *xn = ep->nic->priv;
	const struct xdp_ep *xe = ep->priv;
	char ip[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &xe->ip, ip, sizeof(ip));
	return snprintf(buf, len,
			"xdp dev=%s queue=%u mode=%s bind=%s frame=%u rx_frames=%u tx_frames=%u "
			"addr=%s:%u",
			xn->ifname, xn->queue, xe->prog.native ? "native" : "generic",
			xe->zerocopy ? "zerocopy" : "copy", xe->fsize, xe->nrx, xe->ntx, ip,
			ntohs(xe->port));
}

const struct unet_nic_ops unet_nic_xdp_ops = {
	.kind = "xdp",
	.nic_open = xdp_nic_open,
	.nic_close = xdp_nic_close,
	.ep_create = xdp_ep_create,
	.ep_destroy = xdp_ep_destroy,
	.chan_open = xdp_chan_open,
	.chan_close = xdp_chan_close,
	.tx = xdp_tx,
	.rx = xdp_rx,
	.release = xdp_release,
	.pending = xdp_pending,
	.arm = xdp_arm,
	.event = xdp_event,
	.stats = xdp_stats,
	.info = xdp_info,
};
