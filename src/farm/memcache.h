/*
 * memcache.h - the memcached text protocol, as memcached 1.6 speaks it:
 * a pure parser (mc_parse), the item format the gateway keeps in a FaRM
 * key-value table, and the executor that runs a parsed command against a
 * store and writes memcached's exact reply bytes (mc_exec_*).
 *
 * Why it is shaped so: existing clients must work unchanged, so every
 * reply, including every error and the odd ones (a decr that pads with
 * spaces, a bad multi-get key that drops the replies not yet sent, a
 * "noreply" that also silences errors), follows what memcached 1.6.18 does
 * (tests/memcache_conformance.sh compares the two byte for byte). The
 * parser is a pure function of its input bytes so that a fuzzer can drive
 * it (tests/fuzz/fuzz_memcache.c) and so that a connection needs no parser
 * state: a command that is not complete yet is parsed again from its first
 * byte when more bytes arrive. The executor reaches the store only through
 * struct mc_store_ops (farmd binds it to farm_kv_*; the unit test to a
 * small reference map), and never allocates: its scratch buffer and the
 * output buffer belong to the caller.
 *
 * Not provided (a memcached feature the gateway does not have): the meta
 * commands (mg, ms, ...), the binary protocol (like memcached -B ascii),
 * slabs/lru/watch/extstore/cache_memlimit admin commands (they answer
 * ERROR), LRU eviction (a full store answers SERVER_ERROR out of memory).
 */
#ifndef FARM_MEMCACHE_H
#define FARM_MEMCACHE_H

#include <errno.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define MC_KEY_MAX	     250u	/* memcached's KEY_MAX_LENGTH */
#define MC_LINE_MAX	     2048u	/* a longer line without '\n' closes the connection... */
#define MC_GET_LINE_MAX	     (1u << 20) /* ...unless it is a get; ours stops there */
#define MC_REALTIME_MAXDELTA 2592000	/* 30 days: larger exptimes are unix times */

enum mc_op {
	MC_OP_NONE = 0, /* nothing to run: send `reply` (if any) */
	MC_OP_GET,
	MC_OP_GETS,
	MC_OP_GAT,
	MC_OP_GATS,
	MC_OP_SET,
	MC_OP_ADD,
	MC_OP_REPLACE,
	MC_OP_APPEND,
	MC_OP_PREPEND,
	MC_OP_CAS,
	MC_OP_DELETE,
	MC_OP_INCR,
	MC_OP_DECR,
	MC_OP_TOUCH,
	MC_OP_STATS,
	MC_OP_FLUSH_ALL,
	MC_OP_VERSION,
	MC_OP_VERBOSITY,
	MC_OP_QUIT,
};

/* mc_parse's return value when the connection must be closed (what
 * memcached does with a line longer than MC_LINE_MAX that is not a get). */
#define MC_PARSE_CLOSE (-EPROTO)

struct mc_cmd {
	enum mc_op op;
	bool noreply;	   /* the command ended in "noreply": no reply, errors included */
	bool cull;	   /* drop the replies not yet flushed, then send `reply` */
	bool too_large;	   /* storage command whose value exceeds max_value */
	const char *reply; /* MC_OP_NONE or too_large: the reply line (no CRLF), NULL for none */
	const char *key;   /* storage, delete, incr/decr, touch: the key (not NUL-terminated) */
	size_t klen;
	const char *keys; /* get family: the keys, separated by spaces */
	size_t keys_len;
	uint32_t flags;
	int32_t exptime;  /* as given: relative, absolute (> 30 days) or negative */
	bool has_exptime; /* flush_all: a delay was given */
	uint64_t num;	  /* cas unique, incr/decr delta */
	const char *data; /* storage: the data block (without its CRLF) */
	size_t dlen;
	uint64_t swallow; /* bytes after the consumed ones to discard (too_large) */
	size_t need;	  /* when mc_parse returns 0: bytes the command needs, 0 = unknown */
	const char *arg;  /* stats: the subcommand tokens, "" for plain stats */
	size_t arg_len;
};

/* Parse one command at the start of buf[0, len). Returns the bytes it
 * consumed (> 0) with *out filled; 0 when the command is not complete yet
 * (out->need says how many bytes it needs in all when the line is known);
 * MC_PARSE_CLOSE when memcached would close the connection. Storage
 * commands are returned with their data block; a value longer than
 * max_value is out->too_large (the data block is then out->swallow bytes
 * the caller must discard, without holding them). Reads only buf[0, len),
 * never writes it, keeps no state. Pointers in *out point into buf. */
ssize_t mc_parse(const char *buf, size_t len, size_t max_value, struct mc_cmd *out);

/* Next key of a get-family command: skips spaces, returns false at the end. */
bool mc_next_key(const char **p, const char *end, const char **key, size_t *klen);

/* memcached's safe_strto* (strtoul & co. on a token): leading white space
 * and a sign are accepted, the number must end at the token's end or at
 * white space; out-of-range values are truncated exactly as memcached does
 * (a 32-bit flag of 4294967296 is 0). s[0, n) is the token. */
bool mc_strtoul32(const char *s, size_t n, uint32_t *out);
bool mc_strtol32(const char *s, size_t n, int32_t *out);
bool mc_strtoull(const char *s, size_t n, uint64_t *out);

/* ---- items in the store ------------------------------------------------
 *
 * A store value is a small header and the data. Header byte 0 is
 * 0xA0 | 1 (flags follow) | 2 (expiry follows) | 4 (flush generation
 * follows), then those fields little-endian: flags (4 bytes), expiry (8,
 * absolute unix seconds), generation (4): an item with flags 0, no expiry,
 * stored before any flush_all costs one byte. A value whose first byte is
 * not 0xA0..0xA7 was not written by the gateway (`farm kv put`): it reads
 * as that data with flags 0 and no expiry.
 *
 * flush_all: the gateway keeps a flush generation in the table under a key
 * no memcached client can send (it starts with a NUL byte); an item stored
 * under an older generation is gone. A gateway re-reads the generation at
 * most once a second, so a flush_all given to another gateway takes effect
 * here within a second. */
#define MC_ITEM_HDR_MAX 17u
#define MC_FLUSH_KEY	"\0farm-memcached-flush"
#define MC_FLUSH_KEYLEN (sizeof(MC_FLUSH_KEY) - 1)

struct mc_item {
	uint32_t flags;
	int64_t expires; /* absolute unix seconds, 0 = never */
	uint32_t gen;	 /* flush generation it was stored under */
	const char *data;
	size_t dlen;
};

/* Encode the header into hdr[MC_ITEM_HDR_MAX]; returns its length. */
size_t mc_item_hdr(uint32_t flags, int64_t expires, uint32_t gen, uint8_t *hdr);
/* Decode a store value. */
void mc_item_decode(const void *val, size_t vlen, struct mc_item *it);
/* memcached's realtime(): the absolute expiry of exptime at time `now`
 * (0 = never; a time in the past for a negative or past exptime). */
int64_t mc_expiry(int32_t exptime, int64_t now);

/* ---- executor ---------------------------------------------------------- */

/* The store, with farm_kv_*'s contract (include/farm/kv.h): versions are
 * nonzero and change with every put; errors are negative errno codes
 * (-ENOENT absent, -EEXIST add of a present key, -ECANCELED version
 * mismatch, -ENOBUFS cap too small with *vlen set, -ENOSPC full). */
enum mc_put_mode { MC_PUT_SET = 0, MC_PUT_ADD, MC_PUT_REPLACE };

struct mc_store_ops {
	int (*get)(void *store, const void *key, size_t klen, void *val, size_t cap, size_t *vlen,
		   uint64_t *ver);
	int (*put)(void *store, const void *key, size_t klen, const void *val, size_t vlen,
		   enum mc_put_mode mode, uint64_t *ver);
	int (*cas)(void *store, const void *key, size_t klen, uint64_t expect, const void *val,
		   size_t vlen, uint64_t *ver);
	int (*del)(void *store, const void *key, size_t klen, uint64_t expect);
};

struct mc_stats {
	uint64_t cmd_get, cmd_set, cmd_touch, cmd_flush;
	uint64_t get_hits, get_misses, get_expired, get_flushed;
	uint64_t delete_hits, delete_misses, incr_hits, incr_misses, decr_hits, decr_misses;
	uint64_t cas_hits, cas_misses, cas_badval, touch_hits, touch_misses;
	uint64_t store_too_large, store_no_memory, store_errors;
	uint64_t curr_connections, total_connections, rejected_connections;
	uint64_t bytes_read, bytes_written;
};

/* A growable output buffer owned by the caller. mc_out_reserve is the only
 * allocation, and it happens only while a connection's backlog grows. */
struct mc_out {
	char *p;
	size_t len, cap;
	bool oom;
};
bool mc_out_reserve(struct mc_out *o, size_t more);
void mc_out_put(struct mc_out *o, const void *s, size_t n);
void mc_out_line(struct mc_out *o, const char *line); /* line + CRLF */
void mc_out_free(struct mc_out *o);

struct mc_exec {
	const struct mc_store_ops *ops;
	void *store;
	size_t max_value;    /* data bytes (what mc_parse gets) */
	uint8_t *scratch;    /* max_value + MC_ITEM_HDR_MAX bytes, the caller's */
	int64_t now;	     /* unix seconds: mc_exec_tick sets it */
	int64_t started;     /* unix seconds, for stats uptime */
	uint32_t gen;	     /* flush generation in force */
	int64_t flush_at;    /* a delayed flush_all: the time the generation moves on */
	int64_t gen_read_at; /* when the generation was last read from the store */
	const char *version; /* "VERSION x" */
	unsigned threads;    /* worker threads, for stats (0 counts as 1) */
	struct mc_stats st;
};

/* Set the clock (unix seconds) before running a batch of commands; once a
 * second it re-reads the flush generation from the store. */
void mc_exec_tick(struct mc_exec *ex, int64_t now);

/* Run `cmd` (not a get-family command, not MC_OP_QUIT) and append its reply.
 * Returns 0, or a negative code only for a store failure already turned
 * into a SERVER_ERROR reply (the caller may log it). */
int mc_exec_cmd(struct mc_exec *ex, const struct mc_cmd *cmd, struct mc_out *out);

/* Run a get-family command from key position *pos (start at 0) until the
 * keys are done (returns 0, END appended) or out->len passes `high`
 * (returns 1: call again with the same cmd once the output drained). */
int mc_exec_get(struct mc_exec *ex, const struct mc_cmd *cmd, size_t *pos, struct mc_out *out,
		size_t high);

/* The reply to `stats` and its subcommands, appended to out. */
void mc_exec_stats(struct mc_exec *ex, const struct mc_cmd *cmd, struct mc_out *out);

/* ---- one client connection ----------------------------------------------
 *
 * The byte stream of one client: bytes read go in (mc_conn_rbuf,
 * mc_conn_rdone), mc_conn_run parses and runs every complete command, and
 * the replies wait in `out` from out_off for the caller to send. Memory is
 * bounded: the input holds at most one command (a get line up to
 * MC_GET_LINE_MAX, or a storage line with its data block), a value too large
 * is discarded as it arrives, and the commands stop (a multi-get in the
 * middle of its keys) while more than `high` reply bytes wait unsent. */
struct mc_conn {
	char *in;
	size_t in_start, in_len, in_cap; /* unparsed bytes: in[in_start, in_len) */
	uint64_t swallow;		 /* bytes of a too-large value still to drop */
	struct mc_cmd get;		 /* a multi-get in progress (keys in `in`) */
	size_t get_len, get_pos;
	bool in_get;
	struct mc_out out;
	size_t out_off;	  /* out[0, out_off) was sent */
	size_t cull_mark; /* replies before it cannot be taken back */
	bool quit;	  /* close once `out` is sent */
	bool close_now;	  /* junk input: close without a reply */
};

/* Room to read into (at least 1 byte unless the connection must close). */
char *mc_conn_rbuf(struct mc_conn *c, size_t max_value, size_t *room);
/* n bytes were read into the room: count them, drop what a swallow eats. */
void mc_conn_rdone(struct mc_exec *ex, struct mc_conn *c, size_t n);
/* Run the complete commands buffered. Returns how many ran. */
int mc_conn_run(struct mc_exec *ex, struct mc_conn *c, size_t high);
/* n bytes of out were sent (counted in ex->st unless ex is NULL: a caller
 * that sends without holding ex counts them itself). */
void mc_conn_sent(struct mc_exec *ex, struct mc_conn *c, size_t n);
void mc_conn_free(struct mc_conn *c);

#endif /* FARM_MEMCACHE_H */
