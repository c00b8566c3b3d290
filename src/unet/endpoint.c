/*
 * endpoint.c - the NIC-independent half of a U-Net endpoint.
 *
 * Validates everything the application hands in before a NIC sees it, owns
 * the send and completion queues, routes calls to the NIC's ops table and
 * keeps the counters. Transports live in nic_<kind>.c.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/epoll.h>

#include "nic.h"

/* Transports that are not built in are weak and resolve to NULL. */
extern const struct unet_nic_ops unet_nic_udp_ops __attribute__((weak));
extern const struct unet_nic_ops unet_nic_xdp_ops __attribute__((weak));

static const struct unet_nic_ops *nic_lookup(const char *kind, size_t n)
{
	const struct unet_nic_ops *all[] = {&unet_nic_shm_ops, &unet_nic_udp_ops,
					    &unet_nic_xdp_ops};
	const char *names[] = {"shm", "udp", "xdp"};

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++)
		if (strlen(names[i]) == n && memcmp(names[i], kind, n) == 0)
			return all[i];
	return NULL;
}

uint64_t unet__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

int unet_ring_attach(struct unet_ring *r, void *mem, uint32_t size, uint32_t esize, int init)
{
	if (size == 0 || (size & (size - 1)) != 0 || esize == 0)
		return -EINVAL;
	r->hdr = mem;
	r->slots = (char *)mem + sizeof(struct unet_ring_hdr);
	r->size = size;
	r->mask = size - 1;
	r->esize = esize;
	if (init)
		memset(r->hdr, 0, sizeof(*r->hdr));
	r->cached_prod = __atomic_load_n(&r->hdr->prod, __ATOMIC_ACQUIRE);
	r->cached_cons = __atomic_load_n(&r->hdr->cons, __ATOMIC_ACQUIRE);
	return 0;
}

/* Attach as producer (pub tracks prod) or consumer (pub tracks cons). */
static void ring_role(struct unet_ring *r, int producer)
{
	r->pub = producer ? r->cached_prod : r->cached_cons;
}

int unet_nic_open(const char *uri, struct unet_nic **out)
{
	const struct unet_nic_ops *ops;
	struct unet_nic *nic;
	const char *colon;
	size_t klen;
	int rc;

	if (!uri || !out)
		return -EINVAL;
	colon = strchr(uri, ':');
	klen = colon ? (size_t)(colon - uri) : strlen(uri);
	ops = nic_lookup(uri, klen);
	if (!ops)
		return -EPROTONOSUPPORT;
	if (strlen(uri) >= sizeof(nic->uri))
		return -ENAMETOOLONG;
	nic = calloc(1, sizeof(*nic));
	if (!nic)
		return -ENOMEM;
	nic->ops = ops;
	strcpy(nic->uri, uri);
	rc = ops->nic_open ? ops->nic_open(nic, colon ? colon + 1 : "") : 0;
	if (rc < 0) {
		free(nic);
		return rc;
	}
	*out = nic;
	return 0;
}

void unet_nic_close(struct unet_nic *nic)
{
	if (!nic)
		return;
	if (nic->ops->nic_close)
		nic->ops->nic_close(nic);
	free(nic);
}

const char *unet_nic_kind(const struct unet_nic *nic)
{
	return nic->ops->kind;
}

static size_t ring_bytes(uint32_t size, uint32_t esize)
{
	size_t b = unet_ring__bytes(size, esize);

	return (b + UNET_CACHELINE - 1) / UNET_CACHELINE * UNET_CACHELINE;
}

static int pow2(uint32_t v)
{
	return v && (v & (v - 1)) == 0;
}

static int attr_fill(struct unet_ep_attr *a, const struct unet_ep_attr *in)
{
	if (in)
		*a = *in;
	else
		memset(a, 0, sizeof(*a));
	if (!a->seg_size)
		a->seg_size = 1u << 20;
	if (!a->sq_depth)
		a->sq_depth = 256;
	if (!a->rq_depth)
		a->rq_depth = 256;
	if (!a->rx_bufs)
		a->rx_bufs = 64;
	if (!a->rx_buf_size)
		a->rx_buf_size = 2048;
	if (!a->max_chans)
		a->max_chans = 64;
	if (!pow2(a->sq_depth) || !pow2(a->rq_depth) || a->sq_depth > (1u << 20) ||
	    a->rq_depth > (1u << 20) || a->rx_bufs > (1u << 20) || a->max_chans > 4096 ||
	    a->rx_buf_size > (64u << 20) || a->rx_buf_size % 64 != 0 ||
	    a->seg_size > (1ull << 40))
		return -EINVAL;
	return 0;
}

int unet_ep_create(struct unet_nic *nic, const char *name, const struct unet_ep_attr *attr,
		   struct unet_ep **out)
{
	struct unet_ep *ep;
	int rc;

	if (!nic || !name || !out || !*name)
		return -EINVAL;
	if (strlen(name) >= UNET_NAME_MAX)
		return -ENAMETOOLONG;
	ep = calloc(1, sizeof(*ep));
	if (!ep)
		return -ENOMEM;
	ep->nic = nic;
	ep->fd = -1;
	strcpy(ep->name, name);
	rc = attr_fill(&ep->attr, attr);
	if (rc < 0)
		goto fail;
	rc = -ENOMEM;
	ep->chans = calloc(ep->attr.max_chans, sizeof(*ep->chans));
	/* aligned_alloc wants a multiple of the alignment (16-byte completions
	 * times a depth of 1 or 2 is not). */
	ep->sq_mem = aligned_alloc(UNET_CACHELINE,
				   ring_bytes(ep->attr.sq_depth, sizeof(struct unet_desc)));
	ep->cq_mem = aligned_alloc(UNET_CACHELINE,
				   ring_bytes(ep->attr.sq_depth, sizeof(struct unet_comp)));
	if (!ep->chans || !ep->sq_mem || !ep->cq_mem)
		goto fail;
	unet_ring_attach(&ep->sq, ep->sq_mem, ep->attr.sq_depth, sizeof(struct unet_desc), 1);
	unet_ring_attach(&ep->sq_nic, ep->sq_mem, ep->attr.sq_depth, sizeof(struct unet_desc), 0);
	unet_ring_attach(&ep->cq, ep->cq_mem, ep->attr.sq_depth, sizeof(struct unet_comp), 1);
	unet_ring_attach(&ep->cq_app, ep->cq_mem, ep->attr.sq_depth, sizeof(struct unet_comp), 0);
	ring_role(&ep->sq, 1);
	ring_role(&ep->sq_nic, 0);
	ring_role(&ep->cq, 1);
	ring_role(&ep->cq_app, 0);
	rc = nic->ops->ep_create(ep, name);
	if (rc < 0)
		goto fail;
	*out = ep;
	return 0;
fail:
	free(ep->chans);
	free(ep->sq_mem);
	free(ep->cq_mem);
	free(ep);
	return rc;
}

void unet_ep_destroy(struct unet_ep *ep)
{
	if (!ep)
		return;
	for (unsigned i = 0; i < ep->attr.max_chans; i++)
		if (ep->chans[i].state != CHAN_FREE && ep->nic->ops->chan_close)
			ep->nic->ops->chan_close(ep, i);
	ep->nic->ops->ep_destroy(ep);
	free(ep->chans);
	free(ep->sq_mem);
	free(ep->cq_mem);
	free(ep);
}

void *unet_ep_segment(struct unet_ep *ep, size_t *size)
{
	if (size)
		*size = ep->seg_size;
	return ep->seg;
}

void *unet_ptr(struct unet_ep *ep, uint64_t off)
{
	return ep->seg + off;
}

const char *unet_ep_name(const struct unet_ep *ep)
{
	return ep->name;
}

const struct unet_ep_attr *unet_ep_attr(const struct unet_ep *ep)
{
	return &ep->attr;
}

int unet_chan_open(struct unet_ep *ep, const char *remote, int timeout_ms)
{
	unsigned id;
	int rc;

	if (!ep || !remote || !*remote)
		return -EINVAL;
	if (strlen(remote) >= UNET_REMOTE_MAX)
		return -ENAMETOOLONG;
	for (id = 0; id < ep->attr.max_chans; id++)
		if (ep->chans[id].state == CHAN_FREE)
			break;
	/* A slot may be held by a peer's hand-shake waiting for this very
	 * open (shm): let the NIC answer it; it says -EMFILE otherwise. */
	for (unsigned j = 0; id == ep->attr.max_chans && j < ep->attr.max_chans; j++)
		if (ep->chans[j].state == CHAN_PENDING)
			id = j;
	if (id == ep->attr.max_chans)
		return -EMFILE;
	rc = ep->nic->ops->chan_open(ep, id, remote, timeout_ms);
	if (rc < 0)
		return rc;
	ep->chans[rc].state = CHAN_OPEN;
	return rc;
}

int unet_chan_close(struct unet_ep *ep, unsigned chan)
{
	if (!ep || chan >= ep->attr.max_chans || ep->chans[chan].state == CHAN_FREE ||
	    ep->chans[chan].state == CHAN_PENDING)
		return -ENOTCONN;
	/* Deliver what is already queued for this channel first. */
	ep->nic->ops->tx(ep);
	ep->nic->ops->chan_close(ep, chan);
	memset(&ep->chans[chan], 0, sizeof(ep->chans[chan]));
	return 0;
}

int unet_chan_status(struct unet_ep *ep, unsigned chan)
{
	if (!ep || chan >= ep->attr.max_chans)
		return -ENOTCONN;
	switch (ep->chans[chan].state) {
	case CHAN_OPEN:
		return 0;
	case CHAN_DOWN:
		return -ECONNRESET;
	default:
		return -ENOTCONN;
	}
}

int unet_chan_mtu(struct unet_ep *ep, unsigned chan)
{
	int rc = unet_chan_status(ep, chan);

	return rc < 0 ? rc : (int)ep->chans[chan].mtu;
}

static int desc_check(struct unet_ep *ep, const struct unet_desc *d)
{
	const struct unet_chan *ch;

	if (d->chan >= ep->attr.max_chans)
		return -ENOTCONN;
	ch = &ep->chans[d->chan];
	if (ch->state != CHAN_OPEN)
		return ch->state == CHAN_DOWN ? -ECONNRESET : -ENOTCONN;
	if (d->flags & ~UNET_DF_INLINE)
		return -EINVAL;
	if (d->flags & UNET_DF_INLINE)
		return d->len <= UNET_INLINE_MAX && d->len <= ch->mtu ? 0 : -EMSGSIZE;
	if (d->off > ep->seg_size || d->len > ep->seg_size - d->off)
		return -ERANGE;
	return d->len <= ch->mtu ? 0 : -EMSGSIZE;
}

int unet_send(struct unet_ep *ep, const struct unet_desc *d, unsigned n)
{
	uint32_t idx, got;
	unsigned i;
	int rc = 0;

	for (i = 0; i < n; i++) {
		rc = desc_check(ep, &d[i]);
		if (rc < 0)
			break;
	}
	n = i;
	if (n == 0)
		return rc;
	got = unet_ring_prod__reserve(&ep->sq, n, &idx);
	if (got == 0) {
		ep->nic->ops->tx(ep); /* the NIC may have stalled on completions */
		got = unet_ring_prod__reserve(&ep->sq, n, &idx);
		if (got == 0)
			return -EAGAIN;
	}
	for (i = 0; i < got; i++)
		memcpy(unet_ring__slot(&ep->sq, idx + i), &d[i], sizeof(*d));
	unet_ring_prod__submit(&ep->sq, got);
	ep->nic->ops->tx(ep);
	return (int)got;
}

int unet_send_inline(struct unet_ep *ep, unsigned chan, const void *buf, uint32_t len)
{
	struct unet_desc d;

	if (len > UNET_INLINE_MAX)
		return -EMSGSIZE;
	if (chan > UINT16_MAX)
		return -ENOTCONN;
	d.off = 0;
	d.len = len;
	d.chan = (uint16_t)chan;
	d.flags = UNET_DF_INLINE;
	if (len) /* an empty message may come with no buffer at all */
		memcpy(d.data, buf, len);
	int rc = unet_send(ep, &d, 1);
	return rc == 1 ? 0 : rc;
}

int unet_poll_comp(struct unet_ep *ep, struct unet_comp *c, unsigned max)
{
	uint32_t idx, n;

	n = unet_ring_cons__peek(&ep->cq_app, max, &idx);
	for (uint32_t i = 0; i < n; i++)
		c[i] = *(struct unet_comp *)unet_ring__slot(&ep->cq_app, idx + i);
	if (n)
		unet_ring_cons__release(&ep->cq_app, n);
	/* The NIC may be holding sends back for lack of completion space. */
	if (n && ep->sq.pub != ep->sq_nic.pub)
		ep->nic->ops->tx(ep);
	return (int)n;
}

int unet_recv(struct unet_ep *ep, struct unet_desc *d, unsigned max)
{
	int n = ep->nic->ops->rx(ep, d, max);

	if (n > 0) {
		for (int i = 0; i < n; i++) {
			if (d[i].flags & UNET_DF_CHAN_DOWN)
				continue;
			ep->st.rx_msgs++;
			ep->st.rx_bytes += d[i].len;
			ep->st.rx_inline += (d[i].flags & UNET_DF_INLINE) != 0;
		}
	}
	return n;
}

int unet_release(struct unet_ep *ep, const struct unet_desc *d, unsigned n)
{
	return n ? ep->nic->ops->release(ep, d, n) : 0;
}

int unet_fd(struct unet_ep *ep)
{
	return ep->fd;
}

int unet_arm(struct unet_ep *ep)
{
	return ep->nic->ops->arm(ep);
}

int unet_progress(struct unet_ep *ep)
{
	return ep->nic->ops->event(ep);
}

int unet_wait(struct unet_ep *ep, int timeout_ms)
{
	uint64_t deadline = timeout_ms < 0 ? UINT64_MAX
					   : unet__now_ns() + (uint64_t)timeout_ms * 1000000ull;

	/* A zero timeout is a check, not a wait: no spin (a caller that also
	 * waits on descriptors of its own must get back to them), take the
	 * wake-ups the fd holds (else it stays readable for a poll of the
	 * caller's own), and arm. */
	if (timeout_ms == 0) {
		int rc;
		ep->nic->ops->event(ep);
		rc = ep->nic->ops->arm(ep);
		return rc < 0 ? rc : rc != 0;
	}
	/* Spin about 20 us first: a reply often arrives in less than the cost
	 * of sleeping and being woken. Then arm and block, so that a cluster
	 * of pollers on two cores still makes progress. */
	uint64_t until = unet__now_ns() + 20000;
	unsigned spins = 0;
	do {
		if (ep->nic->ops->pending(ep))
			return 1;
		__builtin_ia32_pause();
		/* With more pollers than cores, the peer that must answer may be
		 * runnable on our core: let it in now and then. */
		if ((++spins & 63) == 0)
			sched_yield();
	} while (unet__now_ns() < until);
	for (;;) {
		int rc = ep->nic->ops->arm(ep);
		if (rc != 0)
			return rc < 0 ? rc : 1;
		uint64_t now = unet__now_ns();
		if (now >= deadline)
			return 0;
		uint64_t left_ms = (deadline - now + 999999) / 1000000;
		struct pollfd pfd = {.fd = ep->fd, .events = POLLIN};
		ep->st.wakeups++;
		rc = poll(&pfd, 1, left_ms > 1000000 ? -1 : (int)left_ms);
		if (rc < 0 && errno != EINTR)
			return -errno;
		ep->nic->ops->event(ep);
	}
}

void unet_get_stats(const struct unet_ep *ep, struct unet_stats *st)
{
	*st = ep->st;
	if (ep->nic->ops->stats)
		ep->nic->ops->stats(ep, st);
}

int unet_ep_info(const struct unet_ep *ep, char *buf, size_t len)
{
	if (!ep || (!buf && len))
		return -EINVAL;
	if (ep->nic->ops->info)
		return ep->nic->ops->info(ep, buf, len);
	return snprintf(buf, len, "%s name=%s", ep->nic->ops->kind, ep->name);
}

const char *unet_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -EINVAL:
		return "invalid argument (bad attribute, flag or descriptor)";
	case -ERANGE:
		return "descriptor offset/length outside the communication segment";
	case -EMSGSIZE:
		return "message larger than the peer's receive buffer (or inline limit)";
	case -ENOTCONN:
		return "channel is not open (closed or unknown channel id)";
	case -ECONNRESET:
		return "peer endpoint died or closed the channel";
	case -EAGAIN:
		return "send queue full: reap completions (unet_poll_comp) and retry";
	case -ENOBUFS:
		return "no free receive buffer at the receiver (free queue empty)";
	case -ENOSPC:
		return "receive queue full at the receiver";
	case -EADDRINUSE:
		return "endpoint name already in use by a live process";
	case -ENOENT:
		return "no endpoint of that name";
	case -ETIMEDOUT:
		return "timed out waiting for the peer";
	case -EALREADY:
		return "receive buffer already released";
	case -EMFILE:
		return "no free channel slot on this endpoint (max_chans)";
	case -EPROTONOSUPPORT:
		return "unknown NIC kind, or NIC not built in (shm, udp, xdp)";
	case -ENAMETOOLONG:
		return "name or address too long";
	case -ENOMEM:
		return "out of memory";
	case -EPERM:
		return "operation not permitted (peer of another user, or needs root)";
	case -EACCES:
		return "access denied";
	case -EHOSTUNREACH:
		return "no route or neighbour entry for the remote address";
	case -EBADMSG:
		return "malformed message from peer";
	default:
		return err < 0 ? strerror(-err) : "unknown error";
	}
}
