/*
 * fuzz_rdma.c - libFuzzer harness for the served rdma path: the request
 * parser and executor a target runs on every byte an initiator sends
 * (unet__rdma_parse_req, unet__rdma_exec), and the reply parser an
 * initiator runs on what comes back (unet__rdma_parse_rep, _rep_match), all
 * in src/unet/rdma_wire.c.
 *
 * Beyond "no crash, no out-of-bounds access" (ASan on exact-size regions
 * and buffers), it checks the protection promise byte for byte: a request
 * the executor refuses leaves the region and the output buffer exactly as
 * they were; one it runs touches only [off + coff, off + coff + clen) (or
 * the 8-byte word of an atomic); statuses come from the documented set; and
 * what parses re-encodes to the same bytes (the format has one spelling).
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -Isrc/unet -Iinclude \
 *         tests/fuzz/fuzz_rdma.c src/unet/rdma_wire.c -o fuzz_rdma
 *   ./fuzz_rdma -max_total_time=15 -dict=tests/fuzz/fuzz_rdma.dict
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rdma_wire.h"
#include "unet/rdma.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define SENTINEL 0x5c

/* The target's registrations, picked by the key's low two bits; slot 3 is
 * empty (a wrong key). Lengths are odd on purpose. */
static const struct {
	uint32_t len;
	unsigned perms;
} regions[3] = {
    {4104, UNET_MR_READ | UNET_MR_WRITE | UNET_MR_ATOMIC},
    {24, UNET_MR_READ},
    {9, UNET_MR_WRITE | UNET_MR_ATOMIC},
};

static void *dup_exact(const void *p, size_t n)
{
	void *q = malloc(n ? n : 1);

	if (q && n)
		memcpy(q, p, n);
	return q;
}

static void check_req(const uint8_t *in, size_t size)
{
	struct unet__rdma_req q;

	if (unet__rdma_parse_req(in, size, &q) != 0)
		return;
	/* What the parser promises. */
	if (q.op < UNET_RDMA_READ || q.op > UNET_RDMA_FADD || q.coff > q.total ||
	    q.clen > q.total - q.coff || q.clen > RDMA_CHUNK || q.total > UINT32_MAX)
		abort();
	if (q.op >= UNET_RDMA_CAS && (q.total != 8 || q.clen || q.coff))
		abort();
	if (q.op == UNET_RDMA_WRITE) {
		if (q.payload != in + RDMA_REQ_HDR || size != RDMA_REQ_HDR + q.clen)
			abort();
	} else if (q.payload || size != RDMA_REQ_HDR) {
		abort();
	}
	uint8_t hdr[RDMA_REQ_HDR];
	unet__rdma_enc_req(hdr, &q);
	if (memcmp(hdr, in, RDMA_REQ_HDR))
		abort();

	/* Run it against a region, as a target would. */
	unsigned slot = (unsigned)(q.key & 3);
	if (slot == 3)
		return; /* no such key: the target answers -EACCES without a region */
	uint32_t rlen = regions[slot].len;
	uint8_t *reg = malloc(rlen), *before = malloc(rlen);
	uint8_t *out = malloc(q.clen ? q.clen : 1);
	uint64_t value = 0xfeedull;
	if (!reg || !before || !out)
		abort();
	for (uint32_t i = 0; i < rlen; i++)
		reg[i] = (uint8_t)(i * 131 + slot);
	memcpy(before, reg, rlen);
	memset(out, SENTINEL, q.clen ? q.clen : 1);
	int rc = unet__rdma_exec(reg, rlen, regions[slot].perms, &q, out, &value);
	if (rc != 0) {
		if (rc != -EACCES && rc != -ERANGE && rc != -EINVAL)
			abort();
		if (memcmp(reg, before, rlen) || value != 0xfeedull)
			abort();
		for (uint32_t i = 0; i < (q.clen ? q.clen : 1); i++)
			if (out[i] != SENTINEL)
				abort();
	} else {
		uint64_t lo = q.off + q.coff, hi = lo + q.clen;
		if (q.op >= UNET_RDMA_CAS) {
			lo = q.off;
			hi = lo + 8;
			uint64_t old;
			memcpy(&old, before + lo, 8);
			if (old != value || lo % 8)
				abort();
		}
		if (hi > rlen)
			abort();
		for (uint64_t i = 0; i < rlen; i++)
			if ((i < lo || i >= hi || q.op == UNET_RDMA_READ) && reg[i] != before[i])
				abort();
		if (q.op == UNET_RDMA_READ && q.clen && memcmp(out, before + lo, q.clen))
			abort();
		if (q.op == UNET_RDMA_WRITE && q.clen && memcmp(reg + lo, q.payload, q.clen))
			abort();
	}
	free(reg);
	free(before);
	free(out);
}

static void check_rep(const uint8_t *in, size_t size)
{
	struct unet__rdma_rep r;

	if (unet__rdma_parse_rep(in, size, &r) != 0)
		return;
	if (size != RDMA_REP_HDR + (size_t)r.len || r.data != in + RDMA_REP_HDR)
		abort();
	if (r.status != 0 && r.status != -EACCES && r.status != -ERANGE && r.status != -EINVAL)
		abort();
	if (r.status && (r.len || r.value))
		abort();
	if (r.len && r.op != UNET_RDMA_READ)
		abort();
	uint8_t hdr[RDMA_REP_HDR];
	unet__rdma_enc_rep(hdr, &r);
	if (memcmp(hdr, in, RDMA_REP_HDR))
		abort();
	/* Matching against the chunk an initiator would have asked for. */
	if (unet__rdma_rep_match(&r, r.op, r.coff, r.len) != 0 && r.status == 0)
		abort();
	if (r.status == 0 && r.op == UNET_RDMA_READ &&
	    unet__rdma_rep_match(&r, r.op, r.coff, r.len + 1) == 0)
		abort();
	volatile uint8_t sink = 0;
	for (uint32_t i = 0; i < r.len; i++)
		sink ^= r.data[i];
	(void)sink;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size > RDMA_REQ_HDR + RDMA_CHUNK + 64)
		return 0;
	/* Exact-size heap copy so ASan sees any read past the end. */
	uint8_t *in = dup_exact(data, size);
	if (!in)
		return 0;
	check_req(in, size);
	check_rep(in, size);
	free(in);
	return 0;
}
