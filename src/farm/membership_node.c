/*
 * membership_node.c - the node runtime's side of membership (see
 * membership_node.h for what it does and what it leaves to recovery).
 *
 * Adoption is computed into fresh tables first (region map, peers,
 * channel map) and only then swapped in, so a failure leaves the node as
 * it was. The replica array is compacted so that replicas still held come
 * first (HELLO lists f->reps[0 .. nreps)); memory of replicas no longer
 * held stays registered until the node stops.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "membership_node.h"
#include "node.h"
#include "placement.h"
#include "recovery.h"
#include "rerep.h"

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

void farm__lease_fence(struct farm *f, bool serving)
{
	if (!f || !f->page)
		return;
	/* A reader trusts our memory only when our page shows its
	 * configuration; 0 is nobody's. */
	__atomic_store_n(&f->page->config_id,
			 serving ? __atomic_load_n(&f->config_id, __ATOMIC_ACQUIRE) : 0,
			 __ATOMIC_RELEASE);
}

void farm__membership_attach(struct farm *f, const int *flag, const uint64_t *until)
{
	if (!f || !flag)
		return;
	f->serving = flag;
	f->lease_until = until;
	if (!__atomic_load_n(flag, __ATOMIC_ACQUIRE))
		farm__lease_fence(f, false);
}

void farm__membership_attach_changes(struct farm *f, const struct farm_membership *m)
{
	if (f)
		f->mem = m;
}

/* Publish the new id in our page, unless the lease lapsed meanwhile (the
 * lease thread may store 0 at any moment: re-check after our store). */
static void publish_id(struct farm *f, uint64_t id)
{
	__atomic_store_n(&f->config_id, id, __ATOMIC_RELEASE);
	f->cfg.config_id = id;
	if (!f->page)
		return;
	if (farm__serving(f))
		__atomic_store_n(&f->page->config_id, id, __ATOMIC_RELEASE);
	if (!farm__serving(f))
		__atomic_store_n(&f->page->config_id, 0, __ATOMIC_RELEASE);
}

int farm__adopt_config(struct farm *f, const struct farm_config *next_in, char *err, size_t errlen)
{
	static __thread struct farm_config next;
	struct farm_peer peers[FARM_MAX_MEMBERS];
	int8_t chan_peer[sizeof(f->chan_peer)];
	int remap[FARM_MAX_MEMBERS];
	struct farm_rmap map;
	int self_idx, rc;

	if (!f || !next_in)
		return -EINVAL;
	next = *next_in;
	if ((rc = farm__config_finish(&next, err, errlen)))
		return rc;
	if (next.config_id <= f->config_id)
		return say(err, errlen, -ESTALE, "configuration %llu is not newer than ours (%llu)",
			   (unsigned long long)next.config_id, (unsigned long long)f->config_id);
	if (next.regions != f->cfg.regions || next.region_size != f->cfg.region_size ||
	    next.replicas != f->cfg.replicas || next.vnodes != f->cfg.vnodes)
		return say(err, errlen, -EINVAL,
			   "configuration %llu has other region parameters than ours",
			   (unsigned long long)next.config_id);
	self_idx = farm__config_member(&next, f->self);
	if (self_idx < 0)
		return say(err, errlen, -ENOENT, "member %u is not in configuration %llu", f->self,
			   (unsigned long long)next.config_id);
	if ((rc = farm_rmap_build(&map, &next)))
		return say(err, errlen, rc, "region map of configuration %llu: %s",
			   (unsigned long long)next.config_id, farm_strerror(rc));

	/* Peers, by their new index; channels follow the members that stay. */
	memset(chan_peer, -1, sizeof(chan_peer));
	for (uint32_t i = 0; i < FARM_MAX_MEMBERS; i++)
		remap[i] = -1;
	memset(peers, 0, sizeof(peers));
	bool dial = false;
	/* Channels of members that left go (a udp endpoint maps an address
	 * to one channel: the member's next incarnation needs a fresh one). */
	for (uint32_t i = 0; i < f->cfg.nmembers; i++)
		if ((int)i != f->self_idx && farm__config_member(&next, f->cfg.members[i].id) < 0)
			farm__peer_close(f, i);
	for (uint32_t i = 0; i < next.nmembers; i++) {
		int old = farm__config_member(&f->cfg, next.members[i].id);
		/* A member that enters joining is a new process (a new id, or a
		 * restarted one: a new incarnation); so is a joiner whose
		 * channel failed. It dials us from its start, on a fresh
		 * channel that farm_poll answers (farm__dial_poll). */
		bool fresh = old < 0 || (next.members[i].joining &&
					 (!f->cfg.members[old].joining ||
					  (f->peers[old].chan >= 0 &&
					   unet_chan_status(f->ep, (unsigned)f->peers[old].chan))));
		if (old >= 0 && fresh && (int)i != self_idx) {
			farm__peer_close(f, (uint32_t)old);
			/* Its old incarnation's transactions are recovery's. */
			farm__rcv_renewed(f, next.members[i].id);
		}
		if (old >= 0 && !fresh) {
			peers[i] = f->peers[old];
			remap[old] = (int)i;
		} else {
			peers[i].id = next.members[i].id;
			peers[i].chan = -1;
			dial |= (int)i != self_idx;
		}
		peers[i].hello_acked = peers[i].hello_sent = false;
		peers[i].hello_err = 0;
		if (peers[i].chan >= 0 && (size_t)peers[i].chan < sizeof(chan_peer))
			chan_peer[peers[i].chan] = (int8_t)i;
	}
	/* HELLOs in flight name a peer by index: follow the new indices, and
	 * forget those to removed members. */
	for (uint32_t i = 0; i < f->nops; i++) {
		struct farm_op *o = &f->ops[i];
		if (o->kind != FARM_OPK_HELLO ||
		    (o->state != FARM_OP_WAIT && o->state != FARM_OP_ABANDONED))
			continue;
		if (o->arg < FARM_MAX_MEMBERS && remap[o->arg] >= 0) {
			o->arg = (uint32_t)remap[o->arg];
			peers[o->arg].hello_sent = false; /* its answer no longer counts */
		}
		o->state = FARM_OP_ABANDONED; /* released when it completes */
	}

	/* Our roles before (recovery: which regions we newly lead). */
	static __thread int8_t old_role[FARM_MAX_REGIONS];
	for (uint32_t r = 0; r < map.nregions && r < FARM_MAX_REGIONS; r++)
		old_role[r] = f->regions[r].mine ? (int8_t)f->regions[r].mine->role : -1;

	/* Regions we are promoted to lead: their predecessor's last changes
	 * go to the backups again (replica.c). */
	farm__resync_adopt(f, &map);

	/* Roles of the replicas we hold; held ones first. */
	uint32_t held = 0;
	for (uint32_t i = 0; i < f->nreps; i++) {
		struct farm_replica *x = &f->reps[i];
		int role = farm_rmap_role(&map, x->region, f->self);
		if (role == 0 && x->role != 0) {
			/* Promoted: the allocator state is in the region bytes. */
			farm_slab_recover(&x->slab, x->base, f->cfg.region_size, x->region);
		}
		x->role = role;
		if (role >= 0) {
			if (i != held) {
				struct farm_replica t = f->reps[held];
				f->reps[held] = *x;
				*x = t;
			}
			held++;
		}
	}
	for (uint32_t r = 0; r < map.nregions; r++)
		f->regions[r].mine = NULL;
	for (uint32_t i = 0; i < f->nreps; i++)
		if (f->reps[i].role >= 0)
			f->regions[f->reps[i].region].mine = &f->reps[i];
	f->nreps = held;

	/* Regions: who leads each now, and whether we know its key. */
	for (uint32_t r = 0; r < map.nregions; r++) {
		struct farm_region *reg = &f->regions[r];
		uint32_t prim = farm_rmap_replicas(&map, r)[0];
		uint32_t old_prim = farm_rmap_replicas(&f->map, r)[0];
		int pi = farm__config_member(&next, prim);

		reg->peer = pi;
		if (prim == f->self) {
			reg->local = reg->mine ? reg->mine->base : NULL;
			reg->chan = -1;
			/* No replica here: recovery must re-create it first. */
			reg->known = reg->mine != NULL;
		} else {
			reg->local = NULL;
			if (prim == old_prim && reg->known) {
				reg->chan = peers[pi].chan;
			} else {
				reg->known = false; /* its HELLO tells the key */
				reg->key = 0;
				reg->chan = -1;
			}
		}
	}

	farm_rmap_free(&f->map);
	f->map = map;
	{
		char run_dir[sizeof(f->cfg.run_dir)];
		memcpy(run_dir, f->cfg.run_dir, sizeof(run_dir));
		f->cfg = next;
		memcpy(f->cfg.run_dir, run_dir, sizeof(run_dir)); /* ours, not the CM's */
	}
	memcpy(f->peers, peers, sizeof(peers));
	memcpy(f->chan_peer, chan_peer, sizeof(chan_peer));
	f->self_idx = self_idx;
	f->cfg_hash = farm__config_hash(&f->cfg);
	publish_id(f, next.config_id);
	if (dial)
		f->dial_at = farm__now_ns();
	/* Before any HELLO: readers learn new primaries from it, and a new
	 * primary's undecided objects must be locked first. */
	farm__rcv_adopted(f, old_role);
	/* New backups get their memory (copied in the background) before
	 * the HELLOs that list them. */
	farm__rerep_adopt(f);
	farm__rehello_poll(f);
	return 0;
}

int farm__rehello_poll(struct farm *f)
{
	int sent = 0;

	if (!f)
		return 0;
	for (uint32_t i = 0; i < f->cfg.nmembers; i++) {
		struct farm_peer *p = &f->peers[i];
		if ((int)i == f->self_idx || p->chan < 0 || p->hello_acked || p->hello_sent)
			continue;
		if (farm__hello_send(f, i) == 0)
			sent++;
	}
	return sent;
}
