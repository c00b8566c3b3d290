/*
 * alloc.c - farm_alloc and farm_free: the caller's side. The work happens at
 * the region's primary (replica.c), through a request when that is another
 * node and directly when it is this one.
 *
 * Which region: the locality hint first (`near`'s region, FaRM's way of
 * putting objects that are used together on one machine), then regions
 * this node leads (no network hop to read them later), then any region. A
 * node keeps allocating in the region that last worked until it is full,
 * so objects allocated together stay together and few pages are touched.
 */
#include <errno.h>
#include <string.h>

#include "node.h"

/* Retry a primary-side call while it says -EBUSY (object locked by a
 * writer, or too many changes in flight), making progress meanwhile. */
static int local_call(struct farm *f, int kind, uint32_t region, uint32_t size, farm_addr_t addr,
		      uint64_t *value)
{
	uint64_t deadline = farm__now_ns() + (uint64_t)f->op_timeout_ms * 1000000ull;
	int rc;

	for (;;) {
		int op = farm__op_new(f, FARM_OPK_CLIENT, 0);
		if (op < 0) {
			rc = op;
		} else {
			rc = kind == FARM_PEND_ALLOC
				     ? farm__primary_alloc(f, region, size, true, (uint32_t)op, NULL)
				     : farm__primary_free(f, addr, true, (uint32_t)op, NULL);
			if (rc == 0) {
				rc = farm__wait_op(f, (uint32_t)op, deadline);
				if (rc == -ETIMEDOUT && f->ops[op].state == FARM_OP_ABANDONED)
					return rc;
				*value = f->ops[op].reply.value;
				farm__op_release(f, (uint32_t)op);
				return rc;
			}
			farm__op_release(f, (uint32_t)op);
		}
		if (rc != -EBUSY)
			return rc;
		if (farm__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (farm_poll(f) == 0)
			unet_msg_idle(f->mep, 1);
	}
}

static int remote_call(struct farm *f, int peer, uint8_t type, void *req, uint32_t len,
		       uint64_t *value)
{
	uint64_t deadline = farm__now_ns() + (uint64_t)f->op_timeout_ms * 1000000ull;
	struct farm_wire_reply rep;
	int rc;

	for (;;) {
		rc = farm__call(f, peer, type, req, len, &rep);
		if (rc != -EBUSY || farm__now_ns() >= deadline)
			break;
		farm_poll(f);
	}
	if (rc == 0)
		*value = rep.value;
	return rc;
}

static int alloc_in(struct farm *f, uint32_t region, uint32_t size, farm_addr_t *out)
{
	const struct farm_region *r = &f->regions[region];
	struct farm_wire_alloc a;
	uint64_t v = 0;
	int rc;

	if (r->local) {
		rc = local_call(f, FARM_PEND_ALLOC, region, size, 0, &v);
	} else {
		memset(&a, 0, sizeof(a));
		a.region = region;
		a.size = size;
		rc = remote_call(f, r->peer, FARM_MSG_ALLOC, &a, sizeof(a), &v);
	}
	if (rc == 0)
		*out = v;
	return rc;
}

int farm_alloc(struct farm *f, uint32_t size, farm_addr_t near, farm_addr_t *out)
{
	uint32_t n;
	int rc;

	if (!f || !out)
		return -EINVAL;
	if (!farm__serving(f))
		return -ESTALE; /* lease lapsed */
	if (size == 0 || size > FARM_OBJ_MAX)
		return -EINVAL;
	n = f->map.nregions;
	if (near != FARM_NULL) {
		if (FARM_REGION(near) >= n)
			return -ENOENT;
		rc = alloc_in(f, FARM_REGION(near), size, out);
		if (rc != -ENOSPC)
			goto done;
	}
	/* Pass 0: regions we lead; pass 1: the others. */
	for (int pass = 0; pass < 2; pass++)
		for (uint32_t i = 0; i < n; i++) {
			uint32_t r = (f->alloc_rr + i) % n;
			if ((f->regions[r].local != NULL) != (pass == 0))
				continue;
			rc = alloc_in(f, r, size, out);
			if (rc == -ENOSPC)
				continue;
			if (rc == 0)
				f->alloc_rr = r;
			goto done;
		}
	return -ENOSPC;
done:
	if (rc == 0)
		f->st.allocs++;
	return rc;
}

int farm_free(struct farm *f, farm_addr_t addr)
{
	struct farm_wire_free a;
	uint64_t v = 0;
	int rc;

	if (!f)
		return -EINVAL;
	if ((rc = farm__check_addr(f, addr, 0)))
		return rc;
	if (f->regions[FARM_REGION(addr)].local) {
		rc = local_call(f, FARM_PEND_FREE, 0, 0, addr, &v);
	} else {
		memset(&a, 0, sizeof(a));
		a.addr = addr;
		rc = remote_call(f, f->regions[FARM_REGION(addr)].peer, FARM_MSG_FREE, &a,
				 sizeof(a), &v);
	}
	if (rc == 0)
		f->st.frees++;
	return rc;
}
