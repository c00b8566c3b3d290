/*
 * farm.h - FaRM: the memory of all nodes as one shared address space.
 *
 * After Dragojevic et al., "FaRM: Fast Remote Memory" (NSDI'14) and
 * "No compromises: distributed transactions with consistency, availability,
 * and performance" (SOSP'15).
 *
 * A cluster is a set of members (nodes). The address space is a set of
 * fixed-size regions; a consistent-hashing ring places each region on a
 * primary and f backups (src/farm/placement.h). A *configuration* (id,
 * members, region map) is the unit of change: every message and one-sided
 * operation carries the configuration id it was issued under, and a node
 * refuses work from an older configuration (-ESTALE).
 *
 * A global address is (region id, offset), packed in 64 bits. Objects live
 * at cache-line-aligned offsets and carry a header word (lock bit, allocated
 * bit, version); objects longer than one cache line carry the version in
 * every line too, so a lock-free one-sided read detects a torn copy and
 * retries. Reads of remote objects are one-sided READs of the primary;
 * reads of local objects touch memory directly.
 *
 * The application runs inside a node process (as in FaRM): it opens the
 * node with farm_node_start(), calls the functions below on the thread that
 * drives the node, and calls farm_poll() or farm_idle() to make progress
 * when it has nothing else to do. All functions return 0 or a negative
 * errno-style code; farm_strerror() explains it.
 */
#ifndef FARM_FARM_H
#define FARM_FARM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t farm_addr_t;
#define FARM_ADDR(region, off) (((uint64_t)(region) << 32) | (uint32_t)(off))
#define FARM_REGION(a) ((uint32_t)((a) >> 32))
#define FARM_OFFSET(a) ((uint32_t)(a))
#define FARM_NULL ((farm_addr_t)0) /* region 0 offset 0 is never an object */

#define FARM_MAX_MEMBERS 64
#define FARM_OBJ_MAX (60u << 10) /* largest object payload */

struct farm_member {
	uint32_t id;        /* unique, > 0 */
	char addr[128];     /* shm: endpoint name; udp/xdp: "IPV4:PORT" */
	char netns[64];     /* network namespace the node runs in, "" = none */
	uint8_t joining;    /* joined a running cluster and still being filled:
			       holds only extra backup replicas (docs/recovery.md) */
};

/* A cluster's static configuration: the embedded default (no service
 * needed). Loaded from a file (farm_config_load) or built by the CLI. */
struct farm_config {
	char cluster[64];
	char nic[128];          /* "shm", "udp", "udp:ADDR", "xdp:IF" */
	uint64_t region_size;   /* bytes, power of two, >= 64 KiB (default 64 MiB) */
	uint32_t regions;       /* regions in the address space (default 4 per member) */
	uint32_t replicas;      /* f + 1 (default 3, capped at members) */
	uint32_t vnodes;        /* ring points per member (default 64) */
	uint32_t nmembers;
	struct farm_member members[FARM_MAX_MEMBERS];
	uint64_t config_id;     /* starts at 1 */
	char run_dir[256];      /* admin sockets, pid files (default /run/farm/CLUSTER) */
	uint32_t log_size;      /* bytes of each transaction log ring: one per
				   coordinator at every node (power of two in
				   [4K, 1G], default 1M; docs/tx.md) */
};

/* Parse a config file. Format: `key = value` lines, `#` comments:
 *   cluster = demo
 *   nic = shm
 *   region_size = 4M          (K/M/G suffixes)
 *   regions = 12
 *   replicas = 3
 *   vnodes = 64
 *   log_size = 1M             (transaction log ring per coordinator)
 *   member = 1 farm-demo-1    (id, address[, netns])
 *   member = 2 farm-demo-2
 *   joining = 3               (members still being filled: ids, comma-separated)
 * Unknown keys, bad numbers, duplicate member ids or addresses: -EINVAL,
 * with a message naming the line in `err` (may be NULL). */
int farm_config_load(const char *path, struct farm_config *cfg, char *err, size_t errlen);
int farm_config_parse(const char *text, struct farm_config *cfg, char *err, size_t errlen);
void farm_config_defaults(struct farm_config *cfg);
/* Writes the config back in the file format (the CLI uses it). Returns the
 * length written (without the NUL), or -ENOSPC when `len` is too small. */
int farm_config_format(const struct farm_config *cfg, char *buf, size_t len);

struct farm;

/* Start node `self` of the cluster: create its endpoint, connect to every
 * other member (waiting up to timeout_ms for them, <= 0: 10 s; a member
 * that does not come is -ETIMEDOUT, never a hang), allocate and register
 * the replicas the ring gives it, and exchange region keys. Returns when
 * the cluster is ready. -EADDRINUSE: this member already runs on the host;
 * -ESTALE: the peers run a newer configuration; -EINVAL: a bad config, or
 * peers with a different one. */
int farm_node_start(const struct farm_config *cfg, uint32_t self, int timeout_ms,
		    struct farm **out);
/* The same, and on failure a sentence a person can act on in `err` (may be
 * NULL): which member did not answer, which field of the config is wrong,
 * that the endpoint name is taken by a live node. */
int farm_node_start_err(const struct farm_config *cfg, uint32_t self, int timeout_ms,
			struct farm **out, char *err, size_t errlen);
void farm_node_stop(struct farm *f);

/* Progress: serve peers, move messages. Returns work done (0 = idle). */
int farm_poll(struct farm *f);
/* Block until there is work or timeout_ms passes (spins, then sleeps). */
int farm_idle(struct farm *f, int timeout_ms);
/* The descriptor farm_idle sleeps on, for a process that also waits on
 * descriptors of its own (farmd's memcached gateway keeps it in its epoll
 * set): readable when the node may have work. Sleep on it only after
 * farm_idle(f, 0) returned 0 (that sends owed acks, takes pending wake-ups
 * and arms it), and a few milliseconds at most: retransmission timers do
 * not make it readable. */
int farm_wait_fd(const struct farm *f);

uint32_t farm_self(const struct farm *f);
uint64_t farm_config_id(const struct farm *f);
const struct farm_config *farm_get_config(const struct farm *f);

/* Where region `r` lives under the current configuration: out[0] is the
 * primary, then the backups. Returns the replica count, or -ENOENT. */
int farm_region_replicas(const struct farm *f, uint32_t region, uint32_t *out, uint32_t max);

/* Allocate an object with `size` payload bytes (1..FARM_OBJ_MAX; the
 * object is zeroed). With `near` != FARM_NULL, place it in near's region
 * when there is room (FaRM's locality hint; only the region of `near` is
 * used), else in a region this node leads, else anywhere (-ENOSPC: full).
 * Allocation runs at the region's primary and is replicated to its
 * backups before it returns. */
int farm_alloc(struct farm *f, uint32_t size, farm_addr_t near, farm_addr_t *out);
int farm_free(struct farm *f, farm_addr_t addr);

/* The root object: FARM_ROOT_SIZE bytes at a well-known address, created
 * zeroed with the address space, through which layers above find their
 * named structures (word FARM_ROOT_KV: the kv catalog, kv.h). Change it
 * only in transactions. */
#define FARM_ROOT_SIZE 56u
#define FARM_ROOT_ADDR FARM_ADDR(0, 128) /* region 0, after its slab header */
#define FARM_ROOT_KV 0                   /* word index */
farm_addr_t farm_root(const struct farm *f);

/* Lock-free consistent read of the object at `addr` (`len` <= its size):
 * one-sided READs of the primary, retried while the object is locked or
 * its line versions disagree; never returns a torn object. Errors:
 * -ENOENT unknown region, -ERANGE offset outside the region, -EINVAL not
 * an object start / freed object, -EFBIG len beyond the object,
 * -EAGAIN still locked/torn after many retries. *version (may be NULL)
 * gets the version read. */
int farm_read(struct farm *f, farm_addr_t addr, void *buf, uint32_t len, uint64_t *version);

/* Write one object outside a transaction: the primary locks it, installs
 * the bytes with a new version, replicates to the backups, unlocks. Writes
 * payload bytes [0, len) (the rest keeps its bytes); errors as farm_read.
 * When a backup fails or refuses (-ETIMEDOUT, -ECONNRESET, -ESTALE) the
 * primary keeps the write and the error is returned: replicas are made
 * whole again by recovery. */
int farm_write(struct farm *f, farm_addr_t addr, const void *buf, uint32_t len);

/* Object payload size, from its header (a one-sided read). */
int farm_obj_size(struct farm *f, farm_addr_t addr, uint32_t *size);

struct farm_stats {
	uint64_t reads_local, reads_remote, read_retries;
	uint64_t writes, allocs, frees;
	uint64_t msgs_in, msgs_out, stale_refused;
	uint64_t tx_committed, tx_aborted, tx_ro_committed;
	uint64_t resyncs; /* objects a promoted primary pushed to its backups again */
	/* Replies that found msg's staging full: sent later by farm_poll, or
	 * lost when 256 were waiting already (their requesters time out). */
	uint64_t replies_deferred, replies_lost;
	uint64_t polls; /* farm_poll calls (a caller can tell whether it made progress) */
};
void farm_get_stats(const struct farm *f, struct farm_stats *st);

/* ---- transactions (FaRM SOSP'15 section 4) ------------------------------
 *
 * Strictly serializable, optimistic. Reads are one-sided during execution
 * and their versions recorded; writes are buffered in the transaction.
 * farm_tx_commit runs FaRM's protocol:
 *   LOCK           lock records to the primary of every written object; the
 *                  primary CASes each header's lock bit, checking the
 *                  version is still the one the transaction read
 *   VALIDATE       one-sided re-read of the read set's header versions
 *   COMMIT-BACKUP  log records with the new values to every backup of every
 *                  written region; wait for all to acknowledge
 *   COMMIT-PRIMARY primaries install the values, bump versions, unlock
 *   TRUNCATE       lazily, piggybacked on later messages: backups apply
 *                  the records to their replicas and free the log space
 * Log space at every participant is reserved before LOCK starts (no
 * transaction can run out of log mid-commit). A transaction with no writes
 * only validates (and with a single read, not even that).
 *
 * A transaction belongs to the thread that drives its node and must end in
 * exactly one farm_tx_commit or farm_tx_abort. Transactions come from a
 * pool preallocated at node start: no allocation per transaction. */

#define FARM_TX_MAX_READS 256
#define FARM_TX_MAX_WRITES 64
#define FARM_TX_MAX_BYTES (256u << 10) /* buffered write bytes */

enum farm_abort_reason {
	FARM_ABORT_NONE = 0,
	FARM_ABORT_LOCKED,      /* a written object was locked by another tx */
	FARM_ABORT_CHANGED,     /* a written object changed since it was read */
	FARM_ABORT_VALIDATE,    /* a read object changed or is locked */
	FARM_ABORT_READ,        /* a read found the object locked/torn too long */
	FARM_ABORT_LOG_FULL,    /* no log space at a participant (back-pressure) */
	FARM_ABORT_FAILURE,     /* a participant failed or the configuration changed */
	FARM_ABORT_USER,        /* farm_tx_abort */
};

struct farm_tx;

struct farm_tx_result {
	enum farm_abort_reason reason; /* FARM_ABORT_NONE when committed */
	uint64_t commit_ns;            /* time spent in farm_tx_commit */
};

/* Begin a transaction. -EBUSY when the pool is empty. */
int farm_tx_begin(struct farm *f, struct farm_tx **tx);
/* Consistent read of (a prefix of) an object: from the write set if this tx
 * wrote it, else a one-sided read whose version joins the read set. An
 * object read twice must show the same version, else -EAGAIN (the tx will
 * abort). -EINVAL for a freed object, -EFBIG past its end. */
int farm_tx_read(struct farm_tx *tx, farm_addr_t a, void *buf, uint32_t len);
/* Buffer a write of `len` bytes at the start of the object (len <= size;
 * -EFBIG past its end; -ENOSPC when the write set is full). */
int farm_tx_write(struct farm_tx *tx, farm_addr_t a, const void *buf, uint32_t len);
/* Allocate inside the transaction: the object exists (zeroed) for this
 * tx at once and for everyone once the tx commits; freed again on abort. */
int farm_tx_alloc(struct farm_tx *tx, uint32_t size, farm_addr_t near, farm_addr_t *out);
/* Free when the transaction commits. */
int farm_tx_free(struct farm_tx *tx, farm_addr_t a);
/* Commit. 0 when committed; -EAGAIN when aborted (res->reason says why;
 * retrying may succeed); -EIO when the outcome is unknown: the commit
 * failed after its COMMIT-BACKUP records were written and a backup that is
 * still a member could not be told to drop them (this node was cut off:
 * recovery decides, from the survivors' logs, and may commit it; read the
 * objects to find out); another negative code for misuse (-EINVAL: the tx
 * was already ended). The tx is finished either way. */
int farm_tx_commit(struct farm_tx *tx, struct farm_tx_result *res);
void farm_tx_abort(struct farm_tx *tx);
const char *farm_abort_str(enum farm_abort_reason r);

const char *farm_strerror(int err);

#ifdef __cplusplus
}
#endif
#endif /* FARM_FARM_H */
