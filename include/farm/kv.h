/*
 * kv.h - FaRM's key-value store: a hopscotch hashtable in the shared
 * address space (FaRM NSDI'14, section 5).
 *
 * A table is found by name: farm_kv_open() looks the name up in a catalog
 * reached from the cluster's well-known root object (farm_root), and
 * creates the table at first open when asked to. Any node (a farmd, an
 * application linked with libfarm, a gateway) can open the same table and
 * sees the same contents.
 *
 * Lookups are lock-free one-sided reads: a GET of a present small key is
 * one READ of the key's bucket neighbourhood (one consistent object), with
 * no allocation and no system call (on shm). Keys of up to 16 bytes with
 * values of up to 32 bytes live inline in their slot (FaRM's setting);
 * larger ones live in an object of their own that the slot points to, and
 * a lookup then needs a second READ. Puts, deletes and compare-and-puts are
 * FaRM transactions (farm_tx_*): strictly serializable, retried internally
 * on conflict. The table grows without stopping readers. docs/kv.md tells
 * how.
 *
 * Every item carries a version: nonzero, and different after every change
 * of the item, including a delete followed by a re-insert (it is unique
 * per put across the cluster), so it serves as memcached's CAS unique.
 *
 * A handle belongs to the thread that drives its node, like the calls of
 * farm.h, and must be closed before farm_node_stop. All functions return 0
 * or a negative errno-style code (farm_strerror explains it):
 *   -EINVAL        NULL handle/arguments, empty key, bad name or options
 *   -ENAMETOOLONG  key longer than FARM_KV_KEY_MAX
 *   -EFBIG         value longer than FARM_KV_VAL_MAX
 *   -ENOENT        no such key (or, for farm_kv_open, no such table)
 *   -EEXIST        FARM_KV_ADD of a present key
 *   -ECANCELED     compare failed (the item's version is not `expect`)
 *   -ENOBUFS       farm_kv_get: the value does not fit `cap` (*vlen says
 *                  how long it is; nothing is copied)
 *   -ENOSPC        the address space is full
 *   -EAGAIN        still conflicting after many transaction retries
 *   other farm errors (-ESTALE, -ETIMEDOUT, -ECONNRESET) from the layer below
 */
#ifndef FARM_KV_H
#define FARM_KV_H

#include <stddef.h>
#include <stdint.h>

#include "farm/farm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define FARM_KV_KEY_MAX	   250u	       /* memcached's limit */
#define FARM_KV_VAL_MAX	   (59u << 10) /* fits one object with the key */
#define FARM_KV_NAME_MAX   47u	       /* table names: 1..47 bytes, no NUL */
#define FARM_KV_INLINE_KEY 16u	       /* keys up to this long ... */
#define FARM_KV_INLINE_VAL 32u	       /* ... with values up to this long: inline */

struct farm_kv;

#define FARM_KV_CREATE 0x1u /* create the table when the name is unknown */

struct farm_kv_opts {
	uint32_t flags;	   /* FARM_KV_CREATE */
	uint64_t capacity; /* at creation: keys to hold before the first growth
			    * (0: a small default); ignored when the table exists */
};

/* Open table `name` on node `f` (opts may be NULL: open an existing table).
 * -ENOENT: unknown name without FARM_KV_CREATE. Two nodes creating one name
 * at once get the same table. The handle caches the table's directory and
 * refreshes it by itself when the table grows. */
int farm_kv_open(struct farm *f, const char *name, const struct farm_kv_opts *opts,
		 struct farm_kv **out);
void farm_kv_close(struct farm_kv *kv);

/* Look `key` up. On success copies the value into val[0, cap) and sets
 * *vlen (may be NULL) and *ver (may be NULL). -ENOENT when absent;
 * -ENOBUFS when cap is too small (*vlen set, nothing copied). */
int farm_kv_get(struct farm_kv *kv, const void *key, size_t klen, void *val, size_t cap,
		size_t *vlen, uint64_t *ver);

/* Put modes. */
enum farm_kv_mode {
	FARM_KV_SET = 0, /* insert or overwrite */
	FARM_KV_ADD,	 /* only if absent, else -EEXIST */
	FARM_KV_REPLACE, /* only if present, else -ENOENT */
};

/* Store val[0, vlen) under key (vlen 0 is a valid empty value). *ver (may
 * be NULL) gets the item's new version. */
int farm_kv_put(struct farm_kv *kv, const void *key, size_t klen, const void *val, size_t vlen,
		enum farm_kv_mode mode, uint64_t *ver);

/* Compare-and-put: store only if the item is present with version `expect`
 * (-ENOENT absent, -ECANCELED another version; expect 0 is -EINVAL). */
int farm_kv_cas(struct farm_kv *kv, const void *key, size_t klen, uint64_t expect, const void *val,
		size_t vlen, uint64_t *ver);

/* Delete `key`: -ENOENT when absent. With expect != 0, only if the item's
 * version is `expect` (else -ECANCELED). */
int farm_kv_del(struct farm_kv *kv, const void *key, size_t klen, uint64_t expect);

/* One lookup of a multi-get. */
struct farm_kv_item {
	const void *key; /* in */
	size_t klen;	 /* in */
	void *val;	 /* in: where the value goes */
	size_t cap;	 /* in */
	size_t vlen;	 /* out */
	uint64_t ver;	 /* out */
	int rc;		 /* out: as farm_kv_get */
};

/* Look up n keys, issuing the READs of all neighbourhoods before waiting
 * for any (the batch hides the round trip on served NICs). Each item gets
 * its own rc; the call returns how many were found (>= 0), or a negative
 * code when the call itself is wrong (NULL handle or items). */
int farm_kv_mget(struct farm_kv *kv, struct farm_kv_item *items, size_t n);

/* One item of a multi-put. */
struct farm_kv_put_item {
	const void *key; /* in */
	size_t klen;	 /* in */
	const void *val; /* in */
	size_t vlen;	 /* in */
	uint64_t ver;	 /* out: the item's new version */
	int rc;		 /* out: as farm_kv_put */
};

/* Store n items (FARM_KV_SET each), several per transaction, so that a
 * bulk load commits far fewer times than n puts would. The items of one
 * transaction appear together; the call as a whole is not atomic (a later
 * item of the same key wins). Returns how many were stored (>= 0); each
 * item has its own rc. -EINVAL for a NULL handle or items. */
int farm_kv_mput(struct farm_kv *kv, struct farm_kv_put_item *items, size_t n);

/* What this handle did (counters local to the handle, no communication). */
struct farm_kv_stats {
	uint64_t gets, get_hits, get_reads; /* reads: one-sided READs issued */
	uint64_t get_retries;		    /* torn/moved neighbourhoods re-read */
	uint64_t puts, dels, cas_fails;
	uint64_t tx_commits, tx_aborts; /* aborts are retried */
	uint64_t displacements;		/* hopscotch moves done by our puts */
	uint64_t splits;		/* segments this handle split */
	uint64_t dir_refreshes;		/* directory re-reads (growth seen) */
};
void farm_kv_get_stats(const struct farm_kv *kv, struct farm_kv_stats *st);

/* The table's shape, found by reading all of it (slow: for tools; under
 * concurrent changes the counts are approximate). */
struct farm_kv_scan {
	uint64_t keys, inline_keys, ool_keys;
	uint64_t slots, segments;
	uint32_t global_depth, max_local_depth, min_local_depth;
	uint32_t neighbourhood; /* H */
	uint64_t dist[16];	/* keys by distance from their home slot */
	uint64_t key_bytes, val_bytes;
	double load;	   /* keys / slots */
	uint64_t ovf_keys; /* keys in overflow objects (colliding hashes) */
};
int farm_kv_scan_stats(struct farm_kv *kv, struct farm_kv_scan *sc);

#ifdef __cplusplus
}
#endif
#endif /* FARM_KV_H */
