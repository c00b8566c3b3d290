/*
 * rdma_wire.h - what two rdma layers agree on without talking: the layout
 * of keys, of the key table and initiator slots a shm peer maps, and the
 * request/reply format of served operations. Internal to libunet; the
 * parsers are non-static so the libFuzzer harness (tests/fuzz) can call them.
 *
 * Keys. 64 bits: [63:24] a random tag (never 0, drawn from getrandom() per
 * registration, so a key cannot be guessed from others), [23] ONESIDED (the
 * region is in the owner's shm RDMA pool and listed in its key table), and
 * [22:0] the owner's registration slot. The slot lets the owner find a key
 * with one index, the tag makes a stale or forged key miss.
 *
 * Key table (UNET_KEYTAB_BYTES, the owner writes it, peers map it read-only):
 * 64-byte entries; entry 0 is a header, entry i describes the ONESIDED
 * region of slot i. An entry is published seqlock-style: the owner writes
 * key = 0, then the fields, then the key with release; a reader loads the
 * key with acquire, the fields, and the key again, and trusts the fields only
 * when both loads return the key it holds. Tags are never reused by a slot,
 * so a reader can never pair one key with another registration's fields.
 *
 * Initiator slots live at the start of the pool (peers can write there):
 * one cache line per initiator, holding who claimed it and a sequence
 * number that is odd while that initiator is between checking a key and
 * finishing the access. Revocation uses them; see the top of rdma.c.
 *
 * Wire format of served operations (little-endian, no padding). Both
 * travel as one-way msg messages (reliable, in order per channel): a request
 * of type UNET__RDMA_MSG_REQ, answered by a reply of type UNET__RDMA_MSG_REP
 * carrying the request's cookie. (Not msg's own request/reply: its
 * completions go to the application's unet_msg_poll_comp, and a READ's
 * reply must reach the caller's buffer only when the operation succeeded.)
 *
 *   request  0 u8 magic   1 u8 op   2 u16 zero   4 u32 clen
 *            8 u64 key   16 u64 off   24 u64 total   32 u64 coff
 *           40 u64 arg0  48 u64 arg1   56 u64 cookie
 *           64 WRITE: clen payload bytes
 *   reply    0 u8 magic   1 u8 op   2 u16 zero   4 i32 status
 *            8 u32 len   12 u32 zero   16 u64 value   24 u64 cookie
 *           32 u64 coff   40 READ: len bytes
 *
 * (off, total) is the whole operation, (coff, clen) the chunk this request
 * carries: large READs and WRITEs travel as several requests, and every one
 * is checked against the whole range so that they all fail or all succeed
 * (not one byte is moved for an operation that is out of range).
 */
#ifndef UNET_RDMA_WIRE_H
#define UNET_RDMA_WIRE_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "nic.h"

/* ---- keys ------------------------------------------------------------- */

#define RDMA_KEY_SLOT_MASK ((1u << 23) - 1)
#define RDMA_KEY_ONESIDED  (1ull << 23)
#define RDMA_KEY_TAG_SHIFT 24
#define RDMA_MAX_MRS	   (RDMA_KEY_SLOT_MASK - 1)

/* ---- key table and initiator slots ------------------------------------ */

#define RDMA_KT_ENTRIES (UNET_KEYTAB_BYTES / 64) /* entry 0 is the header */
#define RDMA_KT_MAGIC	0x3154424b414d4452ull	 /* "RDMAKBT1" */
#define RDMA_KT_FENCE	0x1u			 /* the owner cannot membarrier: initiators fence */

struct unet__rdma_kt_hdr {
	uint64_t magic;	    /* RDMA_KT_MAGIC while an rdma layer owns the pool */
	uint64_t inst;	    /* random, per unet_rdma instance; never 0 */
	uint64_t slots_off; /* initiator slots: pool offset ... */
	uint32_t nslots;    /* ... and count */
	uint32_t flags;	    /* RDMA_KT_FENCE */
	uint64_t heap_off;  /* regions live in [heap_off, heap_off + heap_len) */
	uint64_t heap_len;
	uint64_t rsv[2];
};

struct unet__rdma_kent {
	uint64_t key; /* 0: no region */
	uint64_t off; /* pool offset of the region */
	uint64_t len;
	uint32_t perms;
	uint32_t rsv0;
	uint64_t rsv[4];
};

struct unet__rdma_islot {
	uint64_t owner; /* 0: free; else (pid << 32) | per-instance nonce */
	uint64_t seq;	/* odd: an access is between its key check and its end */
	uint64_t rsv[6];
};

#define RDMA_NSLOTS	 256u
#define RDMA_SLOTS_BYTES (RDMA_NSLOTS * sizeof(struct unet__rdma_islot))

_Static_assert(sizeof(struct unet__rdma_kt_hdr) == 64, "key table header is one line");
_Static_assert(sizeof(struct unet__rdma_kent) == 64, "key table entry is one line");
_Static_assert(sizeof(struct unet__rdma_islot) == 64, "initiator slot is one line");

/* ---- served operations ------------------------------------------------ */

#define UNET__RDMA_MSG_REQ 250
#define UNET__RDMA_MSG_REP 251
#define RDMA_WIRE_MAGIC	   0xd5
#define RDMA_REQ_HDR	   64u
#define RDMA_REP_HDR	   40u
#define RDMA_CHUNK	   (32u << 10) /* largest READ/WRITE payload per request */

struct unet__rdma_req {
	uint8_t op;
	uint32_t clen;
	uint64_t key, off, total, coff, arg0, arg1, cookie;
	const uint8_t *payload; /* WRITE: clen bytes, inside the parsed buffer */
};

struct unet__rdma_rep {
	uint8_t op;
	int32_t status;
	uint32_t len;
	uint64_t value, cookie, coff;
	const uint8_t *data; /* READ: len bytes, inside the parsed buffer */
};

/* Parse a request of `len` bytes. 0, or -EBADMSG for anything malformed:
 * short or long, bad magic, unknown op, chunk outside the operation, chunk
 * larger than RDMA_CHUNK, atomics not exactly 8 bytes. */
int unet__rdma_parse_req(const void *buf, size_t len, struct unet__rdma_req *q);
/* Encode a request header (RDMA_REQ_HDR bytes); a WRITE's payload follows. */
void unet__rdma_enc_req(void *buf, const struct unet__rdma_req *q);

/* Parse a reply of `len` bytes on its own: -EPROTO for anything no correct
 * peer sends (bad magic or op, unknown status, length that disagrees with
 * the buffer, data or value on an error). */
int unet__rdma_parse_rep(const void *buf, size_t len, struct unet__rdma_rep *r);
/* Does parsed reply `r` answer the chunk (op, coff, clen) we sent? 0 or
 * -EPROTO. */
int unet__rdma_rep_match(const struct unet__rdma_rep *r, uint8_t op, uint64_t coff, uint32_t clen);
/* Encode a reply header (RDMA_REP_HDR bytes); a READ's data follows. */
void unet__rdma_enc_rep(void *buf, const struct unet__rdma_rep *r);

/* May operation `op` touch [off, off + total) of a region of `rlen` bytes
 * at `base` with `perms`? 0, -EACCES (permission), -ERANGE (outside, with
 * overflow caught), -EINVAL (atomic not on an 8-aligned word). Inline: it
 * is on the one-sided hot path. */
static inline int unet__rdma_check(const uint8_t *base, uint64_t rlen, unsigned perms, uint8_t op,
				   uint64_t off, uint64_t total)
{
	unsigned need = op == 1 ? 0x1u : op == 2 ? 0x2u : 0x4u; /* UNET_MR_* of the op */

	if (op < 1 || op > 4 || !(perms & need))
		return -EACCES;
	if (off > rlen || total > rlen - off)
		return -ERANGE;
	if (op >= 3 && (total != 8 || ((uintptr_t)base + off) % 8))
		return -EINVAL;
	return 0;
}

/* Check, then do the chunk `q` describes on a region: READ copies clen
 * bytes to `out`, WRITE copies the payload in, CAS/FADD set *value to the
 * old word. Returns the check's status; on error nothing is touched. */
int unet__rdma_exec(uint8_t *base, uint64_t rlen, unsigned perms, const struct unet__rdma_req *q,
		    void *out, uint64_t *value);

/* ---- the pool allocator (rdma_alloc.c) -------------------------------- */

/* First-fit over a sorted array of free extents: alloc and free are O(n)
 * in the number of extents, which is bounded by the registrations. */
struct unet__rdma_heap {
	struct {
		uint64_t off, len;
	} * ext;
	uint32_t n, cap;
	uint64_t base, size, used;
};

int unet__rdma_heap_init(struct unet__rdma_heap *h, uint64_t base, uint64_t size, uint32_t cap);
void unet__rdma_heap_fini(struct unet__rdma_heap *h);
/* 64-byte aligned; `len` is rounded up to 64. -ENOMEM when nothing fits. */
int unet__rdma_heap_alloc(struct unet__rdma_heap *h, uint64_t len, uint64_t *off);
/* Give back [off, off + len) as allocated. -EINVAL for a range that is not
 * inside the heap or overlaps a free extent (a double free). */
int unet__rdma_heap_free(struct unet__rdma_heap *h, uint64_t off, uint64_t len);

#endif /* UNET_RDMA_WIRE_H */
