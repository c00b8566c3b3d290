/*
 * test_rdma_util.h - what the rdma tests share: a node (NIC + endpoint +
 * msg endpoint + rdma layer) opened in one call, channels that are also
 * attached for msg, and synchronous wrappers that post one operation and
 * wait for its completion with a deadline.
 *
 * Header-only (static functions) so that each test_rdma*.c stays one
 * program under the tests/test_*.c glob; children use it too, so nothing
 * here calls cmocka: failures are return codes.
 */
#ifndef TEST_RDMA_UTIL_H
#define TEST_RDMA_UTIL_H

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "helpers/proc.h"
#include "unet/msg.h"
#include "unet/rdma.h"

struct rnode {
	struct unet_nic *nic;
	struct unet_ep *ep;
	struct unet_msg_ep *mep;
	struct unet_rdma *r;
	char name[UNET_NAME_MAX]; /* shm: endpoint name; udp: the bound port */
};

/* nic: "shm" or "udp:127.0.0.1"; name: the shm name ("0" on udp); pool:
 * the shm RDMA pool (0: none, so every region is served). */
static int rnode_open(struct rnode *n, const char *nic, const char *name, size_t pool,
		      const struct unet_rdma_attr *ra)
{
	struct unet_ep_attr ea = {.seg_size = 8u << 20, .rdma_pool = pool};
	struct unet_msg_attr ma = {.stage_size = 1u << 20};
	int rc;

	memset(n, 0, sizeof(*n));
	if ((rc = unet_nic_open(nic, &n->nic)) < 0)
		return rc;
	if ((rc = unet_ep_create(n->nic, name, &ea, &n->ep)) < 0)
		return rc;
	snprintf(n->name, sizeof(n->name), "%s", unet_ep_name(n->ep));
	if ((rc = unet_msg_create(n->ep, &ma, &n->mep)) < 0)
		return rc;
	return unet_rdma_create(n->mep, ra, &n->r);
}

static void rnode_close(struct rnode *n)
{
	if (n->r)
		unet_rdma_destroy(n->r);
	if (n->mep)
		unet_msg_destroy(n->mep);
	if (n->ep)
		unet_ep_destroy(n->ep);
	if (n->nic)
		unet_nic_close(n->nic);
	memset(n, 0, sizeof(*n));
}

/* Open a channel to `remote` (shm name, or "127.0.0.1:PORT") and attach
 * msg to it. Returns the channel id or a negative code. */
static int rnode_connect(struct rnode *n, const char *remote)
{
	int ch = unet_chan_open(n->ep, remote, 10000);

	if (ch < 0)
		return ch;
	int rc = unet_msg_attach(n->mep, (unsigned)ch);
	return rc < 0 ? rc : ch;
}

/* Poll until `want` completions are in c[] or timeout_ms passes. Returns
 * how many arrived. */
static int rwait(struct unet_rdma *r, struct unet_rdma_comp *c, int want, int timeout_ms)
{
	uint64_t deadline = proc_now_ms() + (uint64_t)timeout_ms;
	int got = 0;
	unsigned idle = 0;

	while (got < want) {
		int n = unet_rdma_poll(r, c + got, (unsigned)(want - got));
		if (n < 0)
			return n;
		got += n;
		if (n)
			idle = 0;
		else if (++idle > 1000)
			sched_yield();
		if (proc_now_ms() > deadline)
			break;
	}
	return got;
}

/* One operation, synchronously. Returns the completion status (or the
 * post's error, or -ETIME when no completion came); *value gets the
 * completion's value. */
static int rsync_comp(struct unet_rdma *r, int posted, uint64_t wr_id, uint64_t *value)
{
	struct unet_rdma_comp c;

	if (posted < 0)
		return posted;
	if (rwait(r, &c, 1, 15000) != 1)
		return -ETIME;
	if (c.wr_id != wr_id)
		return -EILSEQ;
	if (value)
		*value = c.value;
	return c.status;
}

static int rread(struct unet_rdma *r, unsigned ch, uint64_t key, uint64_t off, void *buf,
		 uint32_t len)
{
	return rsync_comp(r, unet_rdma_read(r, ch, key, off, buf, len, 0x5eadu), 0x5eadu, NULL);
}

static int rwrite(struct unet_rdma *r, unsigned ch, uint64_t key, uint64_t off, const void *buf,
		  uint32_t len)
{
	return rsync_comp(r, unet_rdma_write(r, ch, key, off, buf, len, 0x3717eu), 0x3717eu, NULL);
}

static int rcas(struct unet_rdma *r, unsigned ch, uint64_t key, uint64_t off, uint64_t expect,
		uint64_t desired, uint64_t *old)
{
	return rsync_comp(r, unet_rdma_cas(r, ch, key, off, expect, desired, 0xca5u), 0xca5u, old);
}

static int rfadd(struct unet_rdma *r, unsigned ch, uint64_t key, uint64_t off, uint64_t add,
		 uint64_t *old)
{
	return rsync_comp(r, unet_rdma_fadd(r, ch, key, off, add, 0xfaddu), 0xfaddu, old);
}

/* Byte i of pattern `seed`. */
static inline uint8_t rpat(uint32_t seed, uint64_t i)
{
	uint64_t x = (i + 1) * 0x9e3779b97f4a7c15ull ^ seed;

	return (uint8_t)(x >> 29);
}

static void rfill(void *p, uint64_t len, uint32_t seed, uint64_t base)
{
	for (uint64_t i = 0; i < len; i++)
		((uint8_t *)p)[i] = rpat(seed, base + i);
}

/* 0 when p[0..len) holds pattern `seed` from `base`, else 1 + the index. */
static uint64_t rcheck(const void *p, uint64_t len, uint32_t seed, uint64_t base)
{
	for (uint64_t i = 0; i < len; i++)
		if (((const uint8_t *)p)[i] != rpat(seed, base + i))
			return i + 1;
	return 0;
}

#endif /* TEST_RDMA_UTIL_H */
