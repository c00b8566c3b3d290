/*
 * wire.h - what farm nodes say to each other: the msg-layer message types
 * and their layouts, the node page peers read one-sidedly, and the
 * configuration fence every message passes.
 *
 * All farm messages are requests (unet_msg_request) answered by one
 * struct farm_wire_reply, so every exchange has an outcome the sender can
 * wait for with a bound, including "refused: stale configuration". Every
 * request starts with struct farm_wire_hdr. Layouts are host order: all
 * nodes of a cluster run on one host or on one kind of machine.
 */
#ifndef FARM_WIRE_H
#define FARM_WIRE_H

#include <errno.h>
#include <stdint.h>

enum farm_msg_type {
	FARM_MSG_HELLO = 16, /* region info: who I am, what I hold, keys */
	FARM_MSG_ALLOC,      /* to a region's primary: allocate an object */
	FARM_MSG_FREE,       /* to a region's primary: free an object */
	FARM_MSG_WRITE,      /* to a region's primary: write an object */
	FARM_MSG_REPL,       /* primary to backup: store these bytes */
	/* Transactions (layouts in log.h): */
	FARM_MSG_TX_LOG,     /* coordinator to participant: act on a log record */
	FARM_MSG_TX_ALLOC,   /* to a region's primary: reserve an object for a tx */
	FARM_MSG_TX_RELEASE, /* to a region's primary: free an aborted tx's reservations */
	/* Recovery (recovery.h): */
	FARM_MSG_RCV_VOTE = 32, /* to every member: what my logs hold of dead coordinators' txs */
	/* Re-replication (rerep.h): */
	FARM_MSG_REREP = 40, /* new backup to a region's primary: bytes of the region */
};

struct farm_wire_hdr {
	uint64_t config_id; /* the sender's configuration */
	uint32_t from;      /* the sender's member id */
	uint32_t pad;
};

struct farm_wire_reply {
	uint64_t config_id; /* the replier's configuration */
	int32_t status;     /* 0 or a negative errno */
	uint32_t pad;
	uint64_t value;     /* ALLOC: the address; WRITE: the new version */
};

struct farm_wire_region {
	uint32_t region;
	uint32_t role; /* 0 primary, 1.. backup */
	uint64_t key;  /* rdma key of this node's replica */
};

struct farm_wire_hello {
	struct farm_wire_hdr h;
	uint64_t cfg_hash;  /* placement inputs: members, regions, sizes */
	uint64_t page_key;  /* key of the sender's node page */
	uint32_t nregions;  /* entries that follow */
	uint32_t pad;
	struct farm_wire_region r[];
};

struct farm_wire_alloc {
	struct farm_wire_hdr h;
	uint32_t region;
	uint32_t size;
};

struct farm_wire_free {
	struct farm_wire_hdr h;
	uint64_t addr;
};

struct farm_wire_write {
	struct farm_wire_hdr h;
	uint64_t addr;
	uint32_t len;
	uint32_t pad;
	uint8_t data[];
};

/* A REPL message: header, then nrec records, each followed by its bytes
 * (padded to 8). The first 8 bytes of a record at an object start are the
 * object's header word; the backup stores it last (farm_obj_put_image). */
struct farm_wire_repl {
	struct farm_wire_hdr h;
	uint32_t region;
	uint32_t nrec;
};

struct farm_wire_rec {
	uint64_t off;
	uint32_t len;
	uint32_t pad;
};

/* The first registered memory of every node: its *node page*. Peers read
 * config_id with the same batch of one-sided READs that fetches an object,
 * so a reader learns that the target moved to another configuration even
 * when the target cannot answer. */
#define FARM_PAGE_MAGIC 0x46524d50414745ull /* "FRMPAGE" */
#define FARM_PAGE_SIZE 4096u
struct farm_node_page {
	uint64_t magic;
	uint64_t config_id;
	uint32_t member;
	uint32_t pad;
	/* Transaction logs (log.h): key, data bytes per ring, rings. */
	uint64_t log_key;
	uint64_t log_cap;
	uint64_t log_nrings;
	/* Which member writes each ring (0: none, or not usable now): a
	 * coordinator finds its ring here, since members that joined later
	 * get spare or recycled rings (tx.h). */
	uint32_t log_ids[FARM_MAX_MEMBERS];
};
#define FARM_PAGE_CONFIG_OFF 8u
#define FARM_PAGE_LOG_OFF 24u
#define FARM_PAGE_LOG_INFO 280u /* key, cap, nrings and log_ids */
_Static_assert(sizeof(struct farm_node_page) == FARM_PAGE_LOG_OFF + FARM_PAGE_LOG_INFO,
	       "node page layout");

/* The fence: work issued under configuration `theirs` is refused by a node
 * in configuration `mine` when it is older. Newer is accepted: the sender
 * knows something we are about to learn (configuration changes reach every
 * member through the configuration manager, a later issue). */
static inline int farm_fence(uint64_t mine, uint64_t theirs)
{
	return theirs < mine ? -ESTALE : 0;
}

/* The one-sided fence: a reader trusts a target's memory only when both
 * are in the same configuration. */
static inline int farm_fence_read(uint64_t mine, uint64_t target)
{
	return target == mine ? 0 : -ESTALE;
}

#endif /* FARM_WIRE_H */
