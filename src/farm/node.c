/*
 * node.c - a FaRM node: start-up, the transport, progress, shutdown.
 *
 * One U-Net endpoint, a channel to every other member, a msg endpoint on it
 * (reliable request/reply: every farm message) and an rdma endpoint (the
 * replicas this node holds, registered so that peers READ them one-sidedly;
 * on shm they come from the endpoint's RDMA pool, which peers map). The
 * transport calls live here and in read.c (the hot path); replica.c and the
 * calls of farm.h only use farm__call / farm__request / farm__reply.
 *
 * Start-up (bounded by timeout_ms):
 *   1. check the config, compute the region map (a pure function of it);
 *   2. endpoint (on shm its name is the member address, so a second node
 *      with the same id fails with -EADDRINUSE), msg and rdma endpoints;
 *   3. register the node page (config id, read by peers) and one region of
 *      memory per replica the map gives us;
 *   4. open channels in ascending member-id order: every node follows the
 *      same global order of pairs, so the blocking shm hand-shakes cannot
 *      wait on each other in a cycle; attach msg to all of them;
 *   5. send every peer a HELLO (config fingerprint, node page key, our
 *      regions with roles and keys) and wait until every peer's HELLO has
 *      arrived and every peer has answered ours. A peer that answers
 *      -ESTALE runs a newer configuration; a different fingerprint means a
 *      different config file: both are clear errors, not hangs.
 *
 * Requests are tracked in a fixed table of ops (index + generation in the
 * msg ctx) so that a call that gives up at its deadline never has a late
 * completion land in a slot that was reused.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "membership_node.h"
#include "node.h"
#include "placement.h"
#include "recovery.h"
#include "rerep.h"

#define FARM_STAGE_SIZE (512u << 10) /* msg staging per channel */
#define FARM_NOPS 1024u
#define FARM_NPENDS 256u
#define FARM_OP_TIMEOUT_MS 8000 /* above msg's dead_ms: transport errors come first */
#define FARM_DEFAULT_START_MS 10000

uint64_t farm__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int say(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

void farm__hdr(const struct farm *f, struct farm_wire_hdr *h)
{
	h->config_id = f->config_id;
	h->from = f->self;
	h->pad = 0;
}

void farm__set_config_id(struct farm *f, uint64_t id)
{
	f->config_id = id;
	f->cfg.config_id = id;
	if (f->page)
		__atomic_store_n(&f->page->config_id, id, __ATOMIC_RELEASE);
}

/* ---- ops: our outstanding requests --------------------------------------- */

int farm__op_new(struct farm *f, uint8_t kind, uint32_t arg)
{
	uint32_t i = f->op_free;
	struct farm_op *o;

	if (i == UINT32_MAX)
		return -EBUSY;
	o = &f->ops[i];
	f->op_free = o->next_free;
	o->state = FARM_OP_WAIT;
	o->kind = kind;
	o->arg = arg;
	o->status = 0;
	memset(&o->reply, 0, sizeof(o->reply));
	return (int)i;
}

void farm__op_release(struct farm *f, uint32_t i)
{
	struct farm_op *o = &f->ops[i];

	o->state = FARM_OP_FREE;
	o->gen++;
	o->next_free = f->op_free;
	f->op_free = i;
}

static void *op_ctx(const struct farm *f, uint32_t i)
{
	return (void *)(uintptr_t)((uint64_t)f->ops[i].gen << 32 | i);
}

int64_t farm__request(struct farm *f, int peer, uint8_t type, const void *req, uint32_t len,
		      uint32_t op)
{
	int chan = f->peers[peer].chan;
	int64_t id;

	if (chan < 0)
		return -ENOTCONN;
	id = unet_msg_request(f->mep, (unsigned)chan, type, req, len, &f->ops[op].reply,
			      sizeof(f->ops[op].reply), op_ctx(f, op));
	if (id > 0)
		f->st.msgs_out++;
	return id;
}

static void hello_done(struct farm *f, uint32_t peer, int status);

static int reply_defer_poll(struct farm *f);

static void reap(struct farm *f, const struct unet_msg_comp *c)
{
	uint64_t ctx = (uint64_t)(uintptr_t)c->ctx;
	uint32_t i = (uint32_t)ctx;
	struct farm_op *o;
	int status;

	if (ctx & FARM_TX_CTX_TAG) {
		farm__tx_reap(f, c);
		return;
	}
	if (ctx & FARM_REREP_CTX_TAG) {
		farm__rerep_reap(f, c);
		return;
	}
	if (i >= f->nops || f->ops[i].gen != (uint16_t)(ctx >> 32))
		return;
	o = &f->ops[i];
	status = c->status;
	if (status == 0 && c->len < sizeof(o->reply))
		status = -EPROTO;
	if (status == 0)
		status = o->reply.status;
	o->status = status;
	if (o->state == FARM_OP_ABANDONED) {
		farm__op_release(f, i);
		return;
	}
	switch (o->kind) {
	case FARM_OPK_CLIENT:
		o->state = FARM_OP_DONE;
		break;
	case FARM_OPK_HELLO:
		farm__op_release(f, i);
		hello_done(f, o->arg, status);
		break;
	case FARM_OPK_REPL: {
		uint32_t p = o->arg;
		farm__op_release(f, i);
		farm__repl_done(f, p, status);
		break;
	}
	}
}

int farm_poll(struct farm *f)
{
	struct unet_msg_comp c[32];
	uint64_t before;
	int n, work = 0;

	if (!f)
		return -EINVAL;
	f->st.polls++;
	before = f->st.msgs_in;
	/* rdma's progress runs the msg poll (our handlers) and serves the
	 * peers' one-sided operations on NICs where they are not one-sided. */
	unet_rdma_progress(f->rdma);
	work += (int)(f->st.msgs_in - before);
	while ((n = unet_msg_poll_comp(f->mep, c, 32)) > 0) {
		for (int i = 0; i < n; i++)
			reap(f, &c[i]);
		work += n;
	}
	if (f->nrdefer)
		work += reply_defer_poll(f);
	if (f->pend_unsent)
		work += farm__pend_poll(f);
	if (f->nrsq)
		work += farm__resync_poll(f);
	if (f->tx)
		work += farm__tx_poll(f);
	if (f->rerep)
		work += farm__rerep_poll(f);
	if (f->rehello_at && farm__now_ns() >= f->rehello_at) {
		f->rehello_at = 0;
		work += farm__rehello_poll(f);
	}
	if (f->dial_at && farm__now_ns() >= f->dial_at)
		work += farm__dial_poll(f);
	return work;
}

int farm_idle(struct farm *f, int timeout_ms)
{
	if (!f)
		return -EINVAL;
	if (f->tx)
		farm__tx_idle(f);
	return unet_msg_idle(f->mep, timeout_ms);
}

int farm_wait_fd(const struct farm *f)
{
	return f ? unet_fd(f->ep) : -EINVAL;
}

int farm__wait_op(struct farm *f, uint32_t op, uint64_t deadline_ns)
{
	struct farm_op *o = &f->ops[op];

	while (o->state == FARM_OP_WAIT) {
		uint64_t now = farm__now_ns();
		if (now >= deadline_ns) {
			o->state = FARM_OP_ABANDONED; /* released when it completes */
			return -ETIMEDOUT;
		}
		if (farm_poll(f) == 0 && o->state == FARM_OP_WAIT) {
			uint64_t left = (deadline_ns - now) / 1000000 + 1;
			unet_msg_idle(f->mep, left > 50 ? 50 : (int)left);
		}
	}
	return o->status;
}

int farm__call(struct farm *f, int peer, uint8_t type, void *req, uint32_t len,
	       struct farm_wire_reply *rep)
{
	uint64_t deadline = farm__now_ns() + (uint64_t)f->op_timeout_ms * 1000000ull;
	int64_t id;
	int op, rc;

	farm__hdr(f, req);
	for (;;) {
		op = farm__op_new(f, FARM_OPK_CLIENT, 0);
		if (op >= 0) {
			id = farm__request(f, peer, type, req, len, (uint32_t)op);
			if (id > 0)
				break;
			farm__op_release(f, (uint32_t)op);
			if (id != -EAGAIN && id != -EBUSY)
				return (int)id;
		}
		if (farm__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (farm_poll(f) == 0)
			unet_msg_idle(f->mep, 1);
	}
	rc = farm__wait_op(f, (uint32_t)op, deadline);
	if (rc == -ETIMEDOUT && f->ops[op].state == FARM_OP_ABANDONED)
		return rc;
	if (rep)
		*rep = f->ops[op].reply;
	farm__op_release(f, (uint32_t)op);
	return rc;
}

void farm__reply(struct farm *f, const struct unet_msg *m, int status, uint64_t value)
{
	struct farm_wire_reply r = {.config_id = f->config_id, .status = status, .value = value};

	/* A reply that cannot be queued because the channel failed is lost
	 * with the channel (the requester's msg layer fails the request);
	 * one that finds the staging full waits for farm_poll. */
	int rc = unet_msg_reply(f->mep, m, &r, sizeof(r));
	if (rc == 0) {
		f->st.msgs_out++;
	} else if (rc == -EAGAIN) {
		if (!f->rdefer && !(f->rdefer = calloc(FARM_RDEFER, sizeof(*f->rdefer)))) {
			f->st.replies_lost++;
			return;
		}
		if (f->nrdefer == FARM_RDEFER) {
			f->st.replies_lost++; /* the requester times out */
			return;
		}
		f->rdefer[f->nrdefer].m = *m;
		f->rdefer[f->nrdefer].m.data = NULL;
		f->rdefer[f->nrdefer].r = r;
		f->nrdefer++;
		f->st.replies_deferred++;
	}
}

/* Send the deferred replies that fit now, oldest first. */
static int reply_defer_poll(struct farm *f)
{
	uint32_t i, kept = 0;

	for (i = 0; i < f->nrdefer; i++) {
		struct farm_reply_defer *d = &f->rdefer[i];
		int rc = kept ? -EAGAIN /* keep their order per channel */
			      : unet_msg_reply(f->mep, &d->m, &d->r, sizeof(d->r));
		if (rc == -EAGAIN)
			f->rdefer[kept++] = *d;
		else if (rc == 0)
			f->st.msgs_out++;
	}
	f->nrdefer = kept;
	return (int)(i - kept);
}

int farm__admit(struct farm *f, const struct unet_msg *m, uint32_t min_len)
{
	struct farm_wire_hdr h;

	f->st.msgs_in++;
	if (m->len < sizeof(h) || m->len < min_len) {
		if (m->req_id)
			farm__reply(f, m, -EPROTO, 0);
		return -EPROTO;
	}
	memcpy(&h, m->data, sizeof(h));
	if (farm_fence(f->config_id, h.config_id) || !farm__serving_now(f)) {
		/* Older configuration, or our lease lapsed (membership.h): a
		 * node that may have been removed serves nothing. */
		f->st.stale_refused++;
		if (m->req_id)
			farm__reply(f, m, -ESTALE, 0);
		return -ESTALE;
	}
	return 0;
}

/* ---- HELLO: region info ---------------------------------------------------- */

static uint64_t config_hash(const struct farm_config *c)
{
	uint64_t h = farm_hash64(c->regions);

	h = farm_hash64(h ^ c->region_size);
	h = farm_hash64(h ^ c->replicas);
	h = farm_hash64(h ^ c->vnodes);
	h = farm_hash64(h ^ c->nmembers);
	for (uint32_t i = 0; i < c->nmembers; i++)
		h = farm_hash64(h ^ c->members[i].id ^ (uint64_t)c->members[i].joining << 32);
	return h;
}

static uint32_t hello_build(struct farm *f, struct farm_wire_hello *m)
{
	farm__hdr(f, &m->h);
	m->cfg_hash = f->cfg_hash;
	m->page_key = unet_mr_key(f->page_mr);
	m->nregions = f->nreps;
	m->pad = 0;
	for (uint32_t i = 0; i < f->nreps; i++) {
		m->r[i].region = f->reps[i].region;
		m->r[i].role = (uint32_t)f->reps[i].role;
		m->r[i].key = unet_mr_key(f->reps[i].mr);
	}
	return (uint32_t)(sizeof(*m) + f->nreps * sizeof(m->r[0]));
}

static int hello_send(struct farm *f, uint32_t peer)
{
	struct farm_wire_hello *m = (struct farm_wire_hello *)f->msgbuf;
	uint32_t len = hello_build(f, m);
	int op = farm__op_new(f, FARM_OPK_HELLO, peer);
	int64_t id;

	if (op < 0)
		return op;
	id = farm__request(f, (int)peer, FARM_MSG_HELLO, m, len, (uint32_t)op);
	if (id < 0) {
		farm__op_release(f, (uint32_t)op);
		return (int)id;
	}
	f->peers[peer].hello_sent = true;
	f->peers[peer].hello_err = 0;
	return 0;
}

static void hello_done(struct farm *f, uint32_t peer, int status)
{
	struct farm_peer *p = &f->peers[peer];

	p->hello_sent = false;
	if (status == 0) {
		p->hello_acked = true;
	} else {
		/* Typically a peer that has not adopted our configuration yet:
		 * farm_poll asks again a little later. */
		p->hello_err = status;
		f->rehello_at = farm__now_ns() + 1000000ull;
	}
}

/* For membership_node.c: HELLOs again after a configuration change, and
 * the fingerprint they carry. */
int farm__hello_send(struct farm *f, uint32_t peer)
{
	return hello_send(f, peer);
}

uint64_t farm__config_hash(const struct farm_config *c)
{
	return config_hash(c);
}

/* ---- channels to members that join a running cluster ------------------------ */

int farm__dial_poll(struct farm *f)
{
	uint32_t missing = 0;
	int opened = 0;

	f->dial_at = 0;
	for (uint32_t i = 0; i < f->cfg.nmembers; i++) {
		struct farm_peer *p = &f->peers[i];
		int rc;

		if ((int)i == f->self_idx || p->chan >= 0)
			continue;
		/* Zero timeout: answers the member's pending dial (shm) or
		 * opens at once (udp/xdp); never waits on the node thread. */
		rc = unet_chan_open(f->ep, f->cfg.members[i].addr, 0);
		if (rc >= 0 && (size_t)rc >= sizeof(f->chan_peer)) {
			unet_chan_close(f->ep, (unsigned)rc);
			rc = -EMFILE;
		}
		if (rc < 0) {
			missing++;
			continue;
		}
		p->chan = rc;
		f->chan_peer[rc] = (int8_t)i;
		p->hello_in = p->hello_acked = p->hello_sent = false;
		p->hello_err = 0;
		if (unet_msg_attach(f->mep, (unsigned)rc) == 0)
			hello_send(f, i);
		opened++;
	}
	if (missing)
		f->dial_at = farm__now_ns() + 1000000ull;
	return opened;
}

void farm__peer_close(struct farm *f, uint32_t i)
{
	struct farm_peer *p = &f->peers[i];

	if (p->chan < 0)
		return;
	unet_msg_detach(f->mep, (unsigned)p->chan);
	unet_chan_close(f->ep, (unsigned)p->chan);
	if ((size_t)p->chan < sizeof(f->chan_peer))
		f->chan_peer[p->chan] = -1;
	p->chan = -1;
}

static void on_hello(struct unet_msg_ep *mep, const struct unet_msg *m, void *arg)
{
	struct farm *f = arg;
	struct farm_wire_hello h;
	const struct farm_wire_region *ent;
	int peer = m->chan < sizeof(f->chan_peer) ? f->chan_peer[m->chan] : -1;

	(void)mep;
	if (farm__admit(f, m, sizeof(h)))
		return;
	memcpy(&h, m->data, sizeof(h));
	if (h.h.config_id > f->config_id) {
		/* A configuration we have not adopted yet (a node joining in
		 * it, or a survivor that adopted first): not a different
		 * config file; ask again once we are there. */
		farm__reply(f, m, -EAGAIN, 0);
		return;
	}
	if (peer < 0 || f->peers[peer].id != h.h.from ||
	    m->len != sizeof(h) + (uint64_t)h.nregions * sizeof(*ent)) {
		farm__reply(f, m, -EPROTO, 0);
		return;
	}
	if (h.cfg_hash != f->cfg_hash) {
		farm__reply(f, m, -EINVAL, 0); /* another config file */
		return;
	}
	ent = (const struct farm_wire_region *)((const uint8_t *)m->data + sizeof(h));
	for (uint32_t i = 0; i < h.nregions; i++) {
		struct farm_wire_region e;
		memcpy(&e, &ent[i], sizeof(e));
		if (e.region >= f->map.nregions ||
		    farm_rmap_role(&f->map, e.region, h.h.from) != (int)e.role) {
			farm__reply(f, m, -EINVAL, 0);
			return;
		}
	}
	for (uint32_t i = 0; i < h.nregions; i++) {
		struct farm_wire_region e;
		memcpy(&e, &ent[i], sizeof(e));
		if (e.role != 0)
			continue;
		struct farm_region *r = &f->regions[e.region];
		r->key = e.key;
		r->page_key = h.page_key;
		r->chan = m->chan;
		r->known = true;
	}
	f->peers[peer].page_key = h.page_key;
	f->peers[peer].hello_in = true;
	farm__reply(f, m, 0, 0);
}

/* ---- start ----------------------------------------------------------------- */

static int sorted_peers(const struct farm *f, uint32_t *idx)
{
	uint32_t n = 0;

	for (uint32_t i = 0; i < f->cfg.nmembers; i++)
		if ((int)i != f->self_idx)
			idx[n++] = i;
	for (uint32_t i = 1; i < n; i++) /* insertion sort by member id */
		for (uint32_t j = i; j > 0 && f->cfg.members[idx[j - 1]].id >
						      f->cfg.members[idx[j]].id; j--) {
			uint32_t t = idx[j];
			idx[j] = idx[j - 1];
			idx[j - 1] = t;
		}
	return (int)n;
}

/* NIC URI and endpoint name for this node. On shm the name is the member
 * address; on udp/xdp the address is IPV4:PORT and the name is the port. */
static int transport_names(const struct farm *f, char *uri, size_t urilen, char *name,
			   size_t namelen, char *err, size_t errlen)
{
	const char *addr = f->cfg.members[f->self_idx].addr;
	const char *colon;

	if (!strcmp(f->cfg.nic, "shm")) {
		snprintf(uri, urilen, "shm");
		if (strlen(addr) >= namelen)
			return say(err, errlen, -ENAMETOOLONG, "member %u: address '%s' too long",
				   f->self, addr);
		snprintf(name, namelen, "%s", addr);
		return 0;
	}
	colon = strrchr(addr, ':');
	if (!colon || !colon[1] || colon == addr)
		return say(err, errlen, -EINVAL, "member %u: address '%s' is not IPV4:PORT",
			   f->self, addr);
	if (!strcmp(f->cfg.nic, "udp"))
		snprintf(uri, urilen, "udp:%.*s", (int)(colon - addr), addr);
	else
		snprintf(uri, urilen, "%s", f->cfg.nic);
	snprintf(name, namelen, "%s", colon + 1);
	return 0;
}

/* The root object (farm_root): the first allocation of region 0, made the
 * same way on every replica before the region serves anyone, so that its
 * address is a constant every node knows without asking. */
static int make_root(struct farm_replica *x)
{
	struct farm_slab_change ch;
	uint64_t off;
	int rc = farm_slab_alloc(&x->slab, FARM_ROOT_SIZE, &off, &ch);

	if (rc)
		return rc;
	return FARM_ADDR(0, off) == FARM_ROOT_ADDR ? 0 : -EINVAL;
}

static int setup_memory(struct farm *f, char *err, size_t errlen)
{
	uint32_t n = 0;
	int rc;

	rc = unet_mr_alloc(f->rdma, FARM_PAGE_SIZE, UNET_MR_READ, &f->page_mr);
	if (rc < 0)
		return say(err, errlen, rc, "registering the node page: %s", unet_strerror(rc));
	f->page = unet_mr_addr(f->page_mr);
	f->page->magic = FARM_PAGE_MAGIC;
	f->page->member = f->self;
	__atomic_store_n(&f->page->config_id, f->config_id, __ATOMIC_RELEASE);

	f->regions = calloc(f->map.nregions, sizeof(*f->regions));
	/* Room for every region: re-replication adds replicas (rerep.h). */
	f->reps = calloc(f->map.nregions, sizeof(*f->reps));
	if (!f->regions || !f->reps)
		return -ENOMEM;
	for (uint32_t r = 0; r < f->map.nregions; r++) {
		struct farm_region *reg = &f->regions[r];
		const uint32_t *rep = farm_rmap_replicas(&f->map, r);
		int role = farm_rmap_role(&f->map, r, f->self);

		reg->peer = farm__config_member(&f->cfg, rep[0]);
		reg->chan = -1;
		/* A joining node's replicas (all extra backups) are created
		 * copying by farm__rerep_adopt, filled from their primaries. */
		if (role < 0 || f->cfg.members[f->self_idx].joining)
			continue;
		struct farm_replica *x = &f->reps[n++];
		x->region = r;
		x->role = role;
		rc = unet_mr_alloc(f->rdma, f->cfg.region_size,
				   UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC, &x->mr);
		if (rc < 0)
			return say(err, errlen, rc, "registering region %u (%llu bytes): %s", r,
				   (unsigned long long)f->cfg.region_size, unet_strerror(rc));
		x->base = unet_mr_addr(x->mr);
		/* Every replica starts with the same region header; only the
		 * primary allocates. */
		farm_slab_init(&x->slab, x->base, f->cfg.region_size, r);
		if (r == 0 && (rc = make_root(x)))
			return rc;
		reg->mine = x;
		if (role == 0) {
			reg->local = x->base;
			reg->known = true;
		}
	}
	f->nreps = n;
	return 0;
}

static int setup_tables(struct farm *f)
{
	f->nops = FARM_NOPS;
	f->ops = calloc(f->nops, sizeof(*f->ops));
	f->npends = FARM_NPENDS;
	f->pends = calloc(f->npends, sizeof(*f->pends));
	f->msgbuf_len = sizeof(struct farm_wire_hello) +
			(size_t)f->map.nregions * sizeof(struct farm_wire_region);
	if (f->msgbuf_len < FARM_MSGBUF_SIZE)
		f->msgbuf_len = FARM_MSGBUF_SIZE;
	f->msgbuf = malloc(f->msgbuf_len);
	f->reqbuf = malloc(FARM_MSGBUF_SIZE);
	f->rimg = aligned_alloc(FARM_LINE, FARM_OBJ_MAX_LINES * FARM_LINE);
	if (!f->ops || !f->pends || !f->msgbuf || !f->reqbuf || !f->rimg)
		return -ENOMEM;
	for (uint32_t i = 0; i < f->nops; i++) {
		f->ops[i].gen = 1;
		f->ops[i].next_free = i + 1 < f->nops ? i + 1 : UINT32_MAX;
	}
	f->op_free = 0;
	for (uint32_t i = 0; i < f->npends; i++)
		f->pends[i].next_free = i + 1 < f->npends ? i + 1 : UINT32_MAX;
	f->pend_free = 0;
	return 0;
}

static int open_channels(struct farm *f, uint64_t deadline, int timeout_ms, char *err,
			 size_t errlen)
{
	uint32_t idx[FARM_MAX_MEMBERS];
	int n = sorted_peers(f, idx), rc;

	for (int k = 0; k < n; k++) {
		const struct farm_member *m = &f->cfg.members[idx[k]];
		uint64_t now = farm__now_ns();
		int left = now >= deadline ? 0 : (int)((deadline - now) / 1000000) + 1;
		if (left <= 0 || (rc = unet_chan_open(f->ep, m->addr, left)) == -ETIMEDOUT ||
		    rc == -ENOENT || rc == -ECONNREFUSED)
			return say(err, errlen, -ETIMEDOUT,
				   "member %u (%s) did not answer within %d ms", m->id, m->addr,
				   timeout_ms);
		if (rc < 0)
			return say(err, errlen, rc, "channel to member %u (%s): %s", m->id, m->addr,
				   unet_strerror(rc));
		if ((size_t)rc >= sizeof(f->chan_peer))
			return say(err, errlen, -EMFILE, "channel id %d out of range", rc);
		f->peers[idx[k]].chan = rc;
		f->chan_peer[rc] = (int8_t)idx[k];
	}
	for (int k = 0; k < n; k++) {
		rc = unet_msg_attach(f->mep, (unsigned)f->peers[idx[k]].chan);
		if (rc < 0)
			return say(err, errlen, rc, "msg on the channel to member %u: %s",
				   f->cfg.members[idx[k]].id, unet_strerror(rc));
	}
	return 0;
}

/* Exchange HELLOs until every peer has sent its own and answered ours. A
 * HELLO lost to a channel that failed meanwhile (a peer slow to start
 * makes the msg layer give up on it) is sent again on a fresh attach. */
static int exchange_hellos(struct farm *f, uint64_t deadline, int timeout_ms, char *err,
			   size_t errlen)
{
	for (;;) {
		bool ready = true;

		for (uint32_t i = 0; i < f->cfg.nmembers; i++) {
			struct farm_peer *p = &f->peers[i];
			const struct farm_member *m = &f->cfg.members[i];
			int rc;

			if ((int)i == f->self_idx)
				continue;
			if (p->hello_err == -ESTALE)
				return say(err, errlen, -ESTALE,
					   "member %u (%s) refused us: it runs a newer configuration "
					   "than ours (%llu)",
					   m->id, m->addr, (unsigned long long)f->config_id);
			if (p->hello_err == -EINVAL || p->hello_err == -EPROTO)
				return say(err, errlen, -EINVAL,
					   "member %u (%s) runs a different configuration "
					   "(members, regions or sizes differ)",
					   m->id, m->addr);
			if (p->hello_err == -EAGAIN) {
				/* Not in our configuration yet (we join, it has
				 * not adopted): farm_poll asks again (rehello_at). */
				ready = false;
				continue;
			}
			if (p->hello_err) {
				/* Transport failure: attach again and resend. */
				unet_msg_attach(f->mep, (unsigned)p->chan);
				p->hello_err = 0;
			}
			if (!p->hello_acked && !p->hello_sent &&
			    (rc = hello_send(f, i)) < 0 && rc != -EAGAIN && rc != -EBUSY &&
			    rc != -EINPROGRESS) {
				if (rc == -ENOTCONN || rc == -ECONNRESET) {
					unet_msg_attach(f->mep, (unsigned)p->chan);
				} else {
					return say(err, errlen, rc, "HELLO to member %u: %s", m->id,
						   unet_strerror(rc));
				}
			}
			ready &= p->hello_in && p->hello_acked;
		}
		if (ready)
			return 0;
		uint64_t now = farm__now_ns();
		if (now >= deadline) {
			char who[512] = "";
			size_t at = 0;
			for (uint32_t i = 0; i < f->cfg.nmembers && at < sizeof(who) - 40; i++) {
				const struct farm_peer *p = &f->peers[i];
				if ((int)i == f->self_idx || (p->hello_in && p->hello_acked))
					continue;
				at += (size_t)snprintf(who + at, sizeof(who) - at, "%s%u (%s)",
						       at ? ", " : "", p->id,
						       f->cfg.members[i].addr);
			}
			return say(err, errlen, -ETIMEDOUT,
				   "no region info within %d ms from member(s) %s", timeout_ms,
				   who);
		}
		if (farm_poll(f) == 0) {
			uint64_t left = (deadline - now) / 1000000 + 1;
			unet_msg_idle(f->mep, left > 20 ? 20 : (int)left);
		}
	}
}

int farm_node_start_err(const struct farm_config *cfg, uint32_t self, int timeout_ms,
			struct farm **out, char *err, size_t errlen)
{
	char uri[160], name[UNET_NAME_MAX];
	struct unet_ep_attr ea;
	struct unet_msg_attr ma;
	struct unet_rdma_attr ra;
	struct farm *f;
	uint64_t deadline, pool;
	int rc;

	if (err && errlen)
		err[0] = 0;
	if (!cfg || !out)
		return say(err, errlen, -EINVAL, "no config or no output handle");
	*out = NULL;
	if (timeout_ms <= 0)
		timeout_ms = FARM_DEFAULT_START_MS;
	deadline = farm__now_ns() + (uint64_t)timeout_ms * 1000000ull;
	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->cfg = *cfg;
	if ((rc = farm__config_finish(&f->cfg, err, errlen)))
		goto fail;
	f->self = self;
	f->self_idx = farm__config_member(&f->cfg, self);
	if (f->self_idx < 0) {
		rc = say(err, errlen, -ENOENT, "member %u is not in the configuration", self);
		goto fail;
	}
	f->config_id = f->cfg.config_id;
	f->cfg_hash = config_hash(&f->cfg);
	f->op_timeout_ms = FARM_OP_TIMEOUT_MS;
	memset(f->chan_peer, -1, sizeof(f->chan_peer));
	for (uint32_t i = 0; i < f->cfg.nmembers; i++) {
		f->peers[i].id = f->cfg.members[i].id;
		f->peers[i].chan = -1;
	}
	if ((rc = farm_rmap_build(&f->map, &f->cfg))) {
		say(err, errlen, rc, "region map: %s", farm_strerror(rc));
		goto fail;
	}
	if ((rc = setup_tables(f)))
		goto fail;

	if ((rc = transport_names(f, uri, sizeof(uri), name, sizeof(name), err, errlen)))
		goto fail;
	if ((rc = unet_nic_open(uri, &f->nic))) {
		say(err, errlen, rc, "opening NIC '%s': %s", uri, unet_strerror(rc));
		goto fail;
	}
	/* Room for a replica of every region (re-replication adds backups
	 * later); on shm the pool is a sparse memfd: untouched room is free. */
	pool = FARM_PAGE_SIZE + (uint64_t)f->map.nregions * f->cfg.region_size +
	       farm__tx_log_bytes(&f->cfg) + (1u << 20);
	memset(&ea, 0, sizeof(ea));
	ea.max_chans = FARM_MAX_MEMBERS;
	ea.seg_size = (size_t)f->cfg.nmembers * FARM_STAGE_SIZE;
	ea.rdma_pool = pool;
	if ((rc = unet_ep_create(f->nic, name, &ea, &f->ep))) {
		if (rc == -EADDRINUSE)
			say(err, errlen, rc,
			    "endpoint '%s' is in use: member %u is already running on this host",
			    name, self);
		else
			say(err, errlen, rc, "creating endpoint '%s': %s", name,
			    unet_strerror(rc));
		goto fail;
	}
	memset(&ma, 0, sizeof(ma));
	ma.stage_size = FARM_STAGE_SIZE;
	ma.max_reqs = FARM_NOPS;
	if ((rc = unet_msg_create(f->ep, &ma, &f->mep))) {
		say(err, errlen, rc, "msg endpoint: %s", unet_strerror(rc));
		goto fail;
	}
	memset(&ra, 0, sizeof(ra));
	ra.pool_size = pool;
	ra.max_mrs = f->map.nregions + 8 < 256 ? 256 : f->map.nregions + 8;
	if ((rc = unet_rdma_create(f->mep, &ra, &f->rdma))) {
		say(err, errlen, rc, "rdma endpoint: %s", unet_strerror(rc));
		goto fail;
	}
	if ((rc = setup_memory(f, err, errlen)))
		goto fail;
	if ((rc = farm__tx_init(f, err, errlen)))
		goto fail;
	unet_msg_handle(f->mep, FARM_MSG_HELLO, on_hello, f);
	farm__serve_register(f);
	if ((rc = farm__rerep_init(f)))
		goto fail;
	if (f->cfg.members[f->self_idx].joining) {
		/* Recovery counts every member's vote in each configuration;
		 * ours, in the one we start in, holds nothing to decide. */
		int8_t *none = malloc(f->map.nregions);
		if (!none) {
			rc = -ENOMEM;
			goto fail;
		}
		memset(none, -1, f->map.nregions);
		farm__rcv_adopted(f, none);
		free(none);
		farm__rerep_adopt(f); /* before the HELLOs that list them */
		for (uint32_t r = 0; r < f->map.nregions; r++)
			if (farm_rmap_role(&f->map, r, self) >= 0 && !f->regions[r].mine) {
				rc = say(err, errlen, -ENOMEM,
					 "no memory for a replica of region %u (%llu bytes)", r,
					 (unsigned long long)f->cfg.region_size);
				goto fail;
			}
	}
	if ((rc = open_channels(f, deadline, timeout_ms, err, errlen)))
		goto fail;
	if ((rc = exchange_hellos(f, deadline, timeout_ms, err, errlen)))
		goto fail;
	for (uint32_t r = 0; r < f->map.nregions; r++)
		if (!f->regions[r].known) {
			rc = say(err, errlen, -EPROTO, "no key for region %u from its primary %u", r,
				 farm_rmap_replicas(&f->map, r)[0]);
			goto fail;
		}
	f->started = true;
	*out = f;
	return 0;
fail:
	if (err && errlen && !err[0])
		say(err, errlen, rc, "%s", farm_strerror(rc));
	farm_node_stop(f);
	return rc;
}

int farm_node_start(const struct farm_config *cfg, uint32_t self, int timeout_ms,
		    struct farm **out)
{
	return farm_node_start_err(cfg, self, timeout_ms, out, NULL, 0);
}

void farm_node_stop(struct farm *f)
{
	if (!f)
		return;
	farm__tx_fini(f);
	farm__rerep_fini(f);
	if (f->rdma)
		unet_rdma_destroy(f->rdma); /* releases the registered memory */
	if (f->mep)
		unet_msg_destroy(f->mep);
	if (f->ep)
		unet_ep_destroy(f->ep);
	if (f->nic)
		unet_nic_close(f->nic);
	farm_rmap_free(&f->map);
	free(f->regions);
	free(f->reps);
	free(f->ops);
	free(f->pends);
	free(f->rdefer);
	farm__resync_fini(f);
	free(f->msgbuf);
	free(f->reqbuf);
	free(f->rimg);
	free(f);
}

/* ---- small getters --------------------------------------------------------- */

farm_addr_t farm_root(const struct farm *f)
{
	return f ? FARM_ROOT_ADDR : FARM_NULL;
}

uint32_t farm_self(const struct farm *f)
{
	return f ? f->self : 0;
}

uint64_t farm_config_id(const struct farm *f)
{
	return f ? f->config_id : 0;
}

const struct farm_config *farm_get_config(const struct farm *f)
{
	return f ? &f->cfg : NULL;
}

int farm_region_replicas(const struct farm *f, uint32_t region, uint32_t *out, uint32_t max)
{
	const uint32_t *rep;

	if (!f)
		return -EINVAL;
	if (region >= f->map.nregions)
		return -ENOENT;
	rep = farm_rmap_replicas(&f->map, region);
	uint32_t n = 0;
	for (uint32_t i = 0; i < f->map.k; i++) {
		if (!rep[i])
			continue; /* a slot no joiner fills */
		if (out && n < max)
			out[n] = rep[i];
		n++;
	}
	return (int)n;
}

void farm_get_stats(const struct farm *f, struct farm_stats *st)
{
	if (f && st)
		*st = f->st;
}

const char *farm_strerror(int err)
{
	switch (err) {
	case 0: return "success";
	case -ENOENT: return "no such region (or member)";
	case -ERANGE: return "offset outside the region";
	case -EINVAL: return "invalid argument, or not an allocated object at that address";
	case -EFBIG: return "beyond the object's size";
	case -EAGAIN: return "object kept changing or locked; try again";
	case -ESTALE: return "stale configuration: the peer runs another configuration";
	case -ETIMEDOUT: return "a member did not answer in time";
	case -EADDRINUSE: return "endpoint name in use: is this node already running?";
	case -ENOSPC: return "no room left in the region(s)";
	case -EBUSY: return "busy: object locked by a writer or too many requests in flight";
	case -ENXIO: return "this node is not the primary of that region";
	case -EPROTO: return "malformed message from a peer";
	case -ECONNRESET: return "a member's channel failed";
	}
	return unet_strerror(err);
}
