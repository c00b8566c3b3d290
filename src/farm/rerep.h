/*
 * rerep.h - re-replication: after a configuration change, every region this
 * node newly backs up gets fresh memory and is filled, in the background,
 * from the region's primary, until the region has its f+1 copies again
 * (FaRM SOSP'15 5.3, "re-replication").
 *
 * The protocol (docs/farm.md, "Re-replication"):
 *   - farm__rerep_adopt (end of farm__adopt_config) gives every region the
 *     new map makes us a backup of, and that we do not hold, a replica
 *     marked `copying` (node.h); log.c holds the region's CB records back
 *     while the flag is set; REPL messages (farm_write / alloc / free) are
 *     applied as they come (why that is safe: rerep.c);
 *   - farm__rerep_poll (farm_poll) asks the primary for the region's bytes,
 *     one FARM_MSG_REREP request at a time, in chunks, up to the primary's
 *     allocation high-water mark (the reply says where it is); every slot
 *     is installed only when newer than ours; a slot seen locked is stored
 *     unlocked and remembered, and fetched again alone until it is seen
 *     unlocked;
 *   - once the scan is done and nothing is remembered, `copying` is cleared
 *     (held CB records apply on the next farm_poll, newer wins), counted
 *     and logged.
 * The primary serves on its own thread (its handler), where every install
 * of that region happens, so a chunk holds no torn object.
 */
#ifndef FARM_REREP_H
#define FARM_REREP_H

#include <stdint.h>

#include "unet/msg.h"
#include "wire.h"

struct farm;

#define FARM_REREP_CHUNK (256u << 10) /* largest reply payload (msg staging: 512 KiB) */
#define FARM_REREP_CTX_TAG (1ull << 62) /* msg ctx of our requests (node.c reap) */

/* FARM_MSG_REREP: "region `region`, bytes [off, off + len)". off and len
 * are multiples of a line, 0 < len <= FARM_REREP_CHUNK. The reply is a
 * struct farm_wire_reply (value: the region's high-water mark at the
 * primary, in bytes: nothing at or beyond it was ever allocated) followed
 * by the bytes [off, off + n), n <= len, cut at the high-water mark (and
 * shorter when the primary's msg staging is short of room). Refused:
 * -ESTALE the sender's configuration is older, -EAGAIN newer (the primary
 * has not adopted it yet), -ENOENT no such region, -ENXIO not its primary,
 * -EPERM the sender is not a backup of it, -EINVAL misaligned or len out of
 * (0, FARM_REREP_CHUNK], -ERANGE beyond the region, -EPROTO malformed. */
struct farm_wire_rerep {
	struct farm_wire_hdr h;
	uint32_t region;
	uint32_t len;
	uint64_t off;
};

struct farm_rerep_stats {
	uint64_t started;    /* replicas created to be filled */
	uint64_t done;       /* filled: copying cleared */
	uint64_t lost;       /* copying when the map made us the primary (no full copy) */
	uint64_t restarts;   /* copies restarted (new primary, overflow of the locked list) */
	uint64_t chunks;     /* replies installed */
	uint64_t bytes;      /* bytes received */
	uint64_t refetches;  /* single slots fetched again because they were locked */
	uint64_t errors;     /* refused or failed requests (retried) */
	uint64_t served;     /* requests answered with bytes (as a primary) */
	uint64_t served_bytes;
	uint64_t refused;    /* requests refused (as a primary) */
	uint64_t no_memory;  /* replicas that could not be registered */
};

/* The logging hook: one line per event (copy started, done, lost). */
typedef void (*farm_rerep_log_fn)(void *arg, const char *line);

/* node.c: state and the FARM_MSG_REREP handler (start), teardown (stop),
 * progress (farm_poll), our requests' completions (reap). */
int farm__rerep_init(struct farm *f);
void farm__rerep_fini(struct farm *f);
int farm__rerep_poll(struct farm *f);
void farm__rerep_reap(struct farm *f, const struct unet_msg_comp *c);

/* membership_node.c, after a configuration was swapped in: create the
 * replicas the new map gives us, restart copies whose primary changed,
 * drop those of regions no longer ours. Node thread only. */
void farm__rerep_adopt(struct farm *f);

/* Regions this node is still filling (0 when every replica it holds is
 * complete). */
int farm__rerep_pending(const struct farm *f);
void farm__rerep_get_stats(const struct farm *f, struct farm_rerep_stats *st);
void farm__rerep_set_log(struct farm *f, farm_rerep_log_fn fn, void *arg);
/* Bytes per request (tests use small chunks to stretch a copy out);
 * clamped to [4 KiB, FARM_REREP_CHUNK]. */
void farm__rerep_set_chunk(struct farm *f, uint32_t bytes);

/* At least `us` microseconds (at most 1 s) between two requests of a copy:
 * a background copy that leaves the primary's CPU to its clients (default
 * 0: as fast as the primary answers). */
void farm__rerep_set_pace(struct farm *f, uint32_t us);

/* One FARM_MSG_REREP request to member `member`, waited for (bounded by
 * timeout_ms): the reply's status; *got bytes into buf (cap bytes), *hwm
 * the high-water mark. For tests and tools; node thread only. */
int farm__rerep_fetch(struct farm *f, uint32_t member, uint32_t region, uint64_t off,
		      uint32_t len, void *buf, uint32_t cap, uint32_t *got, uint64_t *hwm,
		      int timeout_ms);

#endif /* FARM_REREP_H */
