/*
 * rdma_wire.c - the served-operation wire format and the one access check
 * both paths (one-sided and served) go through.
 *
 * Everything here is a pure function of its arguments so the libFuzzer
 * harness (tests/fuzz/fuzz_rdma.c) can drive it with arbitrary bytes. The
 * parser assumes nothing about the sender: every length is checked before
 * it is used, sums are checked for overflow by subtraction, and a request
 * that parses is by construction one the executor can run against any
 * region without leaving it (the executor checks the region itself).
 */
#include <errno.h>
#include <stdbool.h>
#include <string.h>

#include "rdma_wire.h"
#include "unet/rdma.h"

_Static_assert(UNET_RDMA_READ == 1 && UNET_RDMA_WRITE == 2 && UNET_RDMA_CAS == 3 &&
		   UNET_RDMA_FADD == 4 && UNET_MR_READ == 1 && UNET_MR_WRITE == 2 &&
		   UNET_MR_ATOMIC == 4,
	       "unet__rdma_check in rdma_wire.h spells these numbers out");

static uint64_t ld64(const uint8_t *p)
{
	uint64_t v = 0;

	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

static uint32_t ld32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void st64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

static void st32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++, v >>= 8)
		p[i] = (uint8_t)v;
}

int unet__rdma_parse_req(const void *buf, size_t len, struct unet__rdma_req *q)
{
	const uint8_t *p = buf;

	if (!buf || len < RDMA_REQ_HDR || p[0] != RDMA_WIRE_MAGIC || p[2] || p[3])
		return -EBADMSG;
	q->op = p[1];
	q->clen = ld32(p + 4);
	q->key = ld64(p + 8);
	q->off = ld64(p + 16);
	q->total = ld64(p + 24);
	q->coff = ld64(p + 32);
	q->arg0 = ld64(p + 40);
	q->arg1 = ld64(p + 48);
	q->cookie = ld64(p + 56);
	q->payload = NULL;
	switch (q->op) {
	case UNET_RDMA_READ:
	case UNET_RDMA_WRITE:
		/* Operations are at most 4 GiB - 1 (the API's uint32_t length). */
		if (q->total > UINT32_MAX || q->clen > RDMA_CHUNK || q->coff > q->total ||
		    q->clen > q->total - q->coff || (q->clen == 0 && q->total != 0) || q->arg0 ||
		    q->arg1)
			return -EBADMSG;
		if (q->op == UNET_RDMA_READ)
			return len == RDMA_REQ_HDR ? 0 : -EBADMSG;
		if (len - RDMA_REQ_HDR != q->clen)
			return -EBADMSG;
		q->payload = p + RDMA_REQ_HDR;
		return 0;
	case UNET_RDMA_CAS:
	case UNET_RDMA_FADD:
		if (q->total != 8 || q->coff || q->clen || len != RDMA_REQ_HDR ||
		    (q->op == UNET_RDMA_FADD && q->arg1))
			return -EBADMSG;
		return 0;
	default:
		return -EBADMSG;
	}
}

void unet__rdma_enc_req(void *buf, const struct unet__rdma_req *q)
{
	uint8_t *p = buf;

	p[0] = RDMA_WIRE_MAGIC;
	p[1] = q->op;
	p[2] = p[3] = 0;
	st32(p + 4, q->clen);
	st64(p + 8, q->key);
	st64(p + 16, q->off);
	st64(p + 24, q->total);
	st64(p + 32, q->coff);
	st64(p + 40, q->arg0);
	st64(p + 48, q->arg1);
	st64(p + 56, q->cookie);
}

int unet__rdma_parse_rep(const void *buf, size_t len, struct unet__rdma_rep *r)
{
	const uint8_t *p = buf;

	if (!buf || len < RDMA_REP_HDR || p[0] != RDMA_WIRE_MAGIC || p[2] || p[3] || ld32(p + 12))
		return -EPROTO;
	r->op = p[1];
	r->status = (int32_t)ld32(p + 4);
	r->len = ld32(p + 8);
	r->value = ld64(p + 16);
	r->cookie = ld64(p + 24);
	r->coff = ld64(p + 32);
	r->data = p + RDMA_REP_HDR;
	if (r->op < UNET_RDMA_READ || r->op > UNET_RDMA_FADD || len - RDMA_REP_HDR != r->len)
		return -EPROTO;
	switch (r->status) {
	case 0:
		break;
	case -EACCES:
	case -ERANGE:
	case -EINVAL:
		return r->len == 0 && r->value == 0 ? 0 : -EPROTO;
	default:
		return -EPROTO;
	}
	if (r->len && r->op != UNET_RDMA_READ)
		return -EPROTO;
	if (r->value && r->op <= UNET_RDMA_WRITE)
		return -EPROTO;
	return 0;
}

int unet__rdma_rep_match(const struct unet__rdma_rep *r, uint8_t op, uint64_t coff, uint32_t clen)
{
	if (r->op != op || r->coff != coff)
		return -EPROTO;
	if (r->status == 0 && op == UNET_RDMA_READ && r->len != clen)
		return -EPROTO;
	return 0;
}

void unet__rdma_enc_rep(void *buf, const struct unet__rdma_rep *r)
{
	uint8_t *p = buf;

	p[0] = RDMA_WIRE_MAGIC;
	p[1] = r->op;
	p[2] = p[3] = 0;
	st32(p + 4, (uint32_t)r->status);
	st32(p + 8, r->len);
	st32(p + 12, 0);
	st64(p + 16, r->value);
	st64(p + 24, r->cookie);
	st64(p + 32, r->coff);
}

int unet__rdma_exec(uint8_t *base, uint64_t rlen, unsigned perms, const struct unet__rdma_req *q,
		    void *out, uint64_t *value)
{
	int rc = unet__rdma_check(base, rlen, perms, q->op, q->off, q->total);
	uint64_t *w;

	if (rc < 0)
		return rc;
	switch (q->op) {
	case UNET_RDMA_READ:
		if (q->clen)
			memcpy(out, base + q->off + q->coff, q->clen);
		break;
	case UNET_RDMA_WRITE:
		if (q->clen)
			memcpy(base + q->off + q->coff, q->payload, q->clen);
		break;
	case UNET_RDMA_CAS:
		w = (uint64_t *)(void *)(base + q->off);
		*value = q->arg0;
		__atomic_compare_exchange_n(w, value, q->arg1, false, __ATOMIC_SEQ_CST,
					    __ATOMIC_SEQ_CST);
		break;
	case UNET_RDMA_FADD:
		w = (uint64_t *)(void *)(base + q->off);
		*value = __atomic_fetch_add(w, q->arg0, __ATOMIC_SEQ_CST);
		break;
	}
	return 0;
}
