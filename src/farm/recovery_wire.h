/*
 * recovery_wire.h - a recovery vote as it travels (FARM_MSG_RCV_VOTE), for
 * recovery.c and its tests. docs/recovery.md, "Votes and the decision".
 */
#ifndef FARM_RECOVERY_WIRE_H
#define FARM_RECOVERY_WIRE_H

#include <stdint.h>

#include <farm/farm.h>

#include "wire.h"

#define VOTE_P 1u /* COMMIT-PRIMARY seen, or the LOCK record installed */
#define VOTE_L 2u /* LOCK record locked */
#define VOTE_B 4u /* COMMIT-BACKUP record */
#define VOTE_A 8u /* refused, aborted, never locked, or voided */

#define VOTE_MAX_BYTES (256u << 10) /* fits msg's staging on every NIC */

struct vote_hdr {
	struct farm_wire_hdr h;
	uint32_t nheld, ncoord, nent, pad;
	/* struct vote_held[nheld], struct vote_coord[ncoord], then nent
	 * entries: struct vote_ent + u32 regions[nregions] (padded to 8) */
};

/* A region the voter holds with data, and the configuration it got it in. */
struct vote_held {
	uint32_t region;
	uint32_t pad;
	uint64_t since;
};

struct vote_coord {
	uint32_t id;
	uint32_t pad;
	uint64_t trunc_cseq;
};

struct vote_ent {
	uint64_t tx_id;
	uint64_t cseq;
	uint64_t config; /* the configuration the coordinator ran it in */
	uint32_t coord;
	uint16_t votes;
	uint16_t nregions;
};

/* Test hook: the decision for tx_id from these n votes (wire buffers,
 * not kept): 1 commit, 0 abort, -EPROTO when a vote is malformed. */
int farm__rcv_decide_bufs(const uint8_t *const *bufs, const uint32_t *lens, uint32_t n,
			  uint64_t tx_id);

#endif /* FARM_RECOVERY_WIRE_H */
