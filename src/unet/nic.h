/*
 * nic.h - what a NIC implements, and the endpoint state it shares with the
 * generic layer (endpoint.c). A new transport is one file that fills in a
 * struct unet_nic_ops and adds itself to the table in endpoint.c.
 *
 * Division of labour: endpoint.c validates what the application hands in
 * (descriptor ranges, channel ids, inline sizes), owns the send queue and
 * the completion queue, and keeps the counters. The NIC owns the segment
 * (its layout depends on the transport: a UMEM for xdp, per-channel receive
 * areas for shm), the receive and free queues, and moves the bytes.
 */
#ifndef UNET_NIC_H
#define UNET_NIC_H

#include <stdbool.h>
#include <stdint.h>

#include "unet/ring.h"
#include "unet/unet.h"

enum unet_chan_state {
	CHAN_FREE = 0,
	CHAN_PENDING, /* NIC-level set-up in progress, not visible to the app */
	CHAN_OPEN,
	CHAN_DOWN, /* peer died or closed; the app must close it */
};

struct unet_chan {
	uint8_t state;
	uint32_t mtu; /* largest message the peer accepts */
	char remote[UNET_REMOTE_MAX];
	void *priv; /* NIC's per-channel state */
};

struct unet_ep;

/* Memory a NIC lets peers reach one-sidedly (shm): the RDMA pool and the
 * key table that guards it (layout owned by rdma.c). */
#define UNET_KEYTAB_BYTES (64u << 10)
struct unet_pool_view {
	uint8_t *base;
	size_t size;
	uint8_t *keytab; /* UNET_KEYTAB_BYTES; read-only when it is a peer's */
};

struct unet_nic_ops {
	const char *kind;
	int (*nic_open)(struct unet_nic *nic, const char *args);
	void (*nic_close)(struct unet_nic *nic);
	/* Set ep->seg/seg_size/fd and anything else the NIC needs. */
	int (*ep_create)(struct unet_ep *ep, const char *name);
	void (*ep_destroy)(struct unet_ep *ep);
	/* Set up channel `id` (slot already reserved by the caller) to `remote`;
	 * fill ch->mtu. May return a different id than asked when the
	 * transport merges with an already pending channel (shm). */
	int (*chan_open)(struct unet_ep *ep, unsigned id, const char *remote, int timeout_ms);
	void (*chan_close)(struct unet_ep *ep, unsigned id);
	/* Drain ep->sq: deliver, and post a completion for each segment send. */
	void (*tx)(struct unet_ep *ep);
	int (*rx)(struct unet_ep *ep, struct unet_desc *d, unsigned max);
	int (*release)(struct unet_ep *ep, const struct unet_desc *d, unsigned n);
	/* Cheap check, no syscall: 1 if unet_recv would return something. */
	int (*pending)(struct unet_ep *ep);
	/* Prepare to block: 1 if work is pending, 0 when armed. */
	int (*arm)(struct unet_ep *ep);
	/* Handle whatever made the endpoint fd readable; never blocks. */
	int (*event)(struct unet_ep *ep);
	/* Add NIC-side counters (e.g. drops counted by the sending peer). */
	void (*stats)(const struct unet_ep *ep, struct unet_stats *st);
	/* Optional: describe how the NIC runs this endpoint (snprintf-like). */
	int (*info)(const struct unet_ep *ep, char *buf, size_t len);
	/* One-sided access, optional: chan < 0 = our own pool, else the peer's
	 * on that channel. -EOPNOTSUPP when the NIC has none. */
	int (*pool)(struct unet_ep *ep, int chan, struct unet_pool_view *v);
};

struct unet_nic {
	const struct unet_nic_ops *ops;
	char uri[256];
	void *priv;
};

struct unet_ep {
	struct unet_nic *nic;
	char name[UNET_NAME_MAX];
	struct unet_ep_attr attr;

	uint8_t *seg;    /* application part of the segment */
	size_t seg_size;
	int fd;          /* what unet_fd() returns, owned by the NIC */

	/* Local queues, each seen through a producer and a consumer view. */
	struct unet_ring sq;     /* send queue, app's (producer) view */
	struct unet_ring sq_nic; /* send queue, NIC's (consumer) view */
	struct unet_ring cq;     /* completion queue, NIC's (producer) view */
	struct unet_ring cq_app; /* completion queue, app's (consumer) view */
	void *sq_mem, *cq_mem;

	struct unet_chan *chans;
	struct unet_stats st;
	void *priv; /* NIC's per-endpoint state */
};

/* Post a completion; the NIC calls this from tx. Returns false when the
 * completion queue is full (the NIC must stop draining the send queue). */
static inline bool unet__comp_room(struct unet_ep *ep)
{
	return unet_ring_prod__nb_free(&ep->cq, 1) > 0;
}

static inline void unet__complete(struct unet_ep *ep, const struct unet_desc *d, int status)
{
	uint32_t idx;

	if (unet_ring_prod__reserve(&ep->cq, 1, &idx) == 1) {
		struct unet_comp *c = unet_ring__slot(&ep->cq, idx);
		c->off = d->off;
		c->len = d->len;
		c->chan = d->chan;
		c->status = (int16_t)status;
		unet_ring_prod__submit(&ep->cq, 1);
	}
}

/* Monotonic nanoseconds. */
uint64_t unet__now_ns(void);

extern const struct unet_nic_ops unet_nic_shm_ops;
extern const struct unet_nic_ops unet_nic_udp_ops;
extern const struct unet_nic_ops unet_nic_xdp_ops;

#endif /* UNET_NIC_H */
