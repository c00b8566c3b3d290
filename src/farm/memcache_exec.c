/*
 * memcache_exec.c - runs parsed memcached commands against a key-value
 * store (farm_kv_* in farmd) and writes memcached 1.6's replies.
 *
 * Every item lives in one store value (memcache.h: a 1-17 byte header,
 * then the data), and its store version is the CAS unique that gets and
 * cas show. memcached keeps an expired or flushed item until it is looked
 * at; so do we: such an item is absent to every command, and a command
 * that finds one removes it (a delete conditional on its version, so a
 * concurrent store is never lost). Read-modify-write commands (add over an
 * expired item, replace, append, prepend, incr, decr, touch) are a read and
 * a compare-and-put on the version read, retried when another writer got
 * in between: each is atomic, as in memcached.
 *
 * Hot path (get): one store get into the caller's scratch buffer, the
 * VALUE line and the data appended to the output; no allocation once the
 * output buffer has grown to its working size.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "memcache.h"

#define RMW_TRIES 64 /* compare-and-put retries before SERVER_ERROR */

/* ---- output ---------------------------------------------------------- */

bool mc_out_reserve(struct mc_out *o, size_t more)
{
	size_t cap;
	char *p;

	if (o->len + more <= o->cap)
		return true;
	cap = o->cap ? o->cap : 4096;
	while (cap < o->len + more)
		cap *= 2;
	p = realloc(o->p, cap);
	if (!p) {
		o->oom = true;
		return false;
	}
	o->p = p;
	o->cap = cap;
	return true;
}

void mc_out_put(struct mc_out *o, const void *s, size_t n)
{
	if (n == 0 || !mc_out_reserve(o, n))
		return;
	memcpy(o->p + o->len, s, n);
	o->len += n;
}

void mc_out_line(struct mc_out *o, const char *line)
{
	size_t n = strlen(line);

	if (!mc_out_reserve(o, n + 2))
		return;
	memcpy(o->p + o->len, line, n);
	memcpy(o->p + o->len + n, "\r\n", 2);
	o->len += n + 2;
}

void mc_out_free(struct mc_out *o)
{
	free(o->p);
	memset(o, 0, sizeof(*o));
}

static void out_reply(struct mc_out *o, const struct mc_cmd *c, const char *line)
{
	if (!c->noreply)
		mc_out_line(o, line);
}

/* ---- store access -------------------------------------------------------- */

/* The live item under key: 1 found, 0 absent (an expired or flushed item
 * is removed and reads as absent), negative a store failure. `it` points
 * into ex->scratch. */
static int load(struct mc_exec *ex, const char *key, size_t klen, struct mc_item *it, uint64_t *ver,
		bool *expired)
{
	size_t vlen = 0;
	int rc = ex->ops->get(ex->store, key, klen, ex->scratch, ex->max_value + MC_ITEM_HDR_MAX,
			      &vlen, ver);

	if (expired)
		*expired = false;
	if (rc == -ENOENT)
		return 0;
	if (rc < 0)
		return rc;
	mc_item_decode(ex->scratch, vlen, it);
	if ((it->expires && it->expires <= ex->now) || it->gen < ex->gen) {
		if (it->gen < ex->gen)
			ex->st.get_flushed++;
		else if (expired)
			*expired = true;
		ex->ops->del(ex->store, key, klen, *ver); /* lost a race: fine, it changed */
		return 0;
	}
	return 1;
}

/* Build header + data in ex->scratch (data may already live there). */
static size_t build(struct mc_exec *ex, uint32_t flags, int64_t expires, const void *d1, size_t n1,
		    const void *d2, size_t n2)
{
	uint8_t hdr[MC_ITEM_HDR_MAX];
	size_t h = mc_item_hdr(flags, expires, ex->gen, hdr);

	/* d1/d2 may overlap scratch: move them before the header lands */
	if (n2)
		memmove(ex->scratch + h + n1, d2, n2);
	if (n1)
		memmove(ex->scratch + h, d1, n1);
	memcpy(ex->scratch, hdr, h);
	return h + n1 + n2;
}

static void store_error(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o, int rc)
{
	if (rc == -ENOSPC) {
		ex->st.store_no_memory++;
		out_reply(o, c, "SERVER_ERROR out of memory storing object");
	} else if (rc == -EFBIG) {
		ex->st.store_too_large++;
		out_reply(o, c, "SERVER_ERROR object too large for cache");
	} else {
		char line[96];
		ex->st.store_errors++;
		snprintf(line, sizeof(line), "SERVER_ERROR %s", strerror(-rc));
		out_reply(o, c, line);
	}
}

/* ---- storage commands ----------------------------------------------------- */

static int do_store(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o)
{
	int64_t exp = mc_expiry(c->exptime, ex->now);
	struct mc_item it;
	uint64_t ver, nver;
	size_t n;
	int rc;

	ex->st.cmd_set++;
	if (c->too_large) {
		ex->st.store_too_large++;
		/* memcached drops the old value of a set that was too large */
		if (c->op == MC_OP_SET)
			ex->ops->del(ex->store, c->key, c->klen, 0);
		if (c->reply)
			mc_out_line(o, c->reply);
		return 0;
	}
	for (int tries = 0; tries < RMW_TRIES; tries++) {
		switch (c->op) {
		case MC_OP_SET:
			n = build(ex, c->flags, exp, c->data, c->dlen, NULL, 0);
			rc = ex->ops->put(ex->store, c->key, c->klen, ex->scratch, n, MC_PUT_SET,
					  &nver);
			break;
		case MC_OP_ADD:
			n = build(ex, c->flags, exp, c->data, c->dlen, NULL, 0);
			rc = ex->ops->put(ex->store, c->key, c->klen, ex->scratch, n, MC_PUT_ADD,
					  &nver);
			if (rc != -EEXIST)
				break;
			/* present, or an expired item that has just been removed */
			rc = load(ex, c->key, c->klen, &it, &ver, NULL);
			if (rc < 0)
				break;
			if (rc == 1) {
				out_reply(o, c, "NOT_STORED");
				return 0;
			}
			continue;
		case MC_OP_CAS:
			rc = load(ex, c->key, c->klen, &it, &ver, NULL);
			if (rc < 0)
				break;
			if (rc == 0) {
				ex->st.cas_misses++;
				out_reply(o, c, "NOT_FOUND");
				return 0;
			}
			if (ver != c->num) {
				ex->st.cas_badval++;
				out_reply(o, c, "EXISTS");
				return 0;
			}
			n = build(ex, c->flags, exp, c->data, c->dlen, NULL, 0);
			rc = ex->ops->cas(ex->store, c->key, c->klen, ver, ex->scratch, n, &nver);
			if (rc == -ECANCELED || rc == -ENOENT)
				continue; /* changed meanwhile: look again */
			if (rc == 0)
				ex->st.cas_hits++;
			break;
		default: /* replace, append, prepend */
			rc = load(ex, c->key, c->klen, &it, &ver, NULL);
			if (rc < 0)
				break;
			if (rc == 0) {
				out_reply(o, c, "NOT_STORED");
				return 0;
			}
			if (c->op == MC_OP_REPLACE) {
				n = build(ex, c->flags, exp, c->data, c->dlen, NULL, 0);
			} else {
				/* the old flags and expiry stay, as in memcached */
				if (it.dlen + c->dlen > ex->max_value) {
					store_error(ex, c, o, -EFBIG);
					return 0;
				}
				if (c->op == MC_OP_APPEND)
					n = build(ex, it.flags, it.expires, it.data, it.dlen,
						  c->data, c->dlen);
				else
					n = build(ex, it.flags, it.expires, c->data, c->dlen,
						  it.data, it.dlen);
			}
			rc = ex->ops->cas(ex->store, c->key, c->klen, ver, ex->scratch, n, &nver);
			if (rc == -ECANCELED || rc == -ENOENT)
				continue;
			break;
		}
		if (rc == 0) {
			out_reply(o, c, "STORED");
			return 0;
		}
		store_error(ex, c, o, rc);
		return rc;
	}
	store_error(ex, c, o, -EAGAIN);
	return -EAGAIN;
}

static int do_delete(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o)
{
	struct mc_item it;
	uint64_t ver;
	int rc = 0;

	for (int tries = 0; tries < RMW_TRIES; tries++) {
		rc = load(ex, c->key, c->klen, &it, &ver, NULL);
		if (rc == 0) {
			ex->st.delete_misses++;
			out_reply(o, c, "NOT_FOUND");
			return 0;
		}
		if (rc > 0)
			rc = ex->ops->del(ex->store, c->key, c->klen, ver);
		if (rc == -ECANCELED || rc == -ENOENT)
			continue;
		if (rc < 0)
			break;
		ex->st.delete_hits++;
		out_reply(o, c, "DELETED");
		return 0;
	}
	store_error(ex, c, o, rc < 0 ? rc : -EAGAIN);
	return rc;
}

/* memcached's add_delta: the value must parse as safe_strtoull does on
 * the item's data (which memcached keeps with its CRLF); the result
 * replaces the data in place, padded with spaces, when it is not longer. */
static int do_arith(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o)
{
	bool incr = c->op == MC_OP_INCR;
	char num[24];
	struct mc_item it;
	uint64_t ver, nver, v;
	int rc = 0;

	for (int tries = 0; tries < RMW_TRIES; tries++) {
		size_t n, len;
		rc = load(ex, c->key, c->klen, &it, &ver, NULL);
		if (rc < 0)
			break;
		if (rc == 0) {
			if (incr)
				ex->st.incr_misses++;
			else
				ex->st.decr_misses++;
			out_reply(o, c, "NOT_FOUND");
			return 0;
		}
		/* memcached parses the data with its CRLF behind it: the data's
		 * end is white space */
		if (it.dlen == 0 || !mc_strtoull(it.data, it.dlen, &v)) {
			out_reply(o, c,
				  "CLIENT_ERROR cannot increment or decrement non-numeric value");
			return 0;
		}
		if (incr)
			v += c->num;
		else
			v = c->num > v ? 0 : v - c->num;
		len = (size_t)snprintf(num, sizeof(num), "%" PRIu64, v);
		if (len <= it.dlen) {
			memcpy((char *)it.data, num, len);
			memset((char *)it.data + len, ' ', it.dlen - len);
			n = build(ex, it.flags, it.expires, it.data, it.dlen, NULL, 0);
		} else {
			n = build(ex, it.flags, it.expires, num, len, NULL, 0);
		}
		rc = ex->ops->cas(ex->store, c->key, c->klen, ver, ex->scratch, n, &nver);
		if (rc == -ECANCELED || rc == -ENOENT)
			continue;
		if (rc < 0)
			break;
		if (incr)
			ex->st.incr_hits++;
		else
			ex->st.decr_hits++;
		out_reply(o, c, num);
		return 0;
	}
	store_error(ex, c, o, rc < 0 ? rc : -EAGAIN);
	return rc < 0 ? rc : -EAGAIN;
}

/* Set a new expiry on a live item: 1 done, 0 absent, negative failure. */
static int touch_item(struct mc_exec *ex, const char *key, size_t klen, int32_t exptime,
		      struct mc_item *it, uint64_t *ver)
{
	int64_t exp = mc_expiry(exptime, ex->now);
	uint64_t nver;
	int rc = 0;

	for (int tries = 0; tries < RMW_TRIES; tries++) {
		size_t n;
		rc = load(ex, key, klen, it, ver, NULL);
		if (rc <= 0)
			return rc;
		n = build(ex, it->flags, exp, it->data, it->dlen, NULL, 0);
		rc = ex->ops->cas(ex->store, key, klen, *ver, ex->scratch, n, &nver);
		if (rc == 0) {
			/* the item now sits in scratch behind the new header */
			mc_item_decode(ex->scratch, n, it);
			*ver = nver;
			return 1;
		}
		if (rc != -ECANCELED && rc != -ENOENT)
			return rc;
	}
	return rc < 0 ? rc : -EAGAIN;
}

static int do_touch(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o)
{
	struct mc_item it;
	uint64_t ver;
	int rc = touch_item(ex, c->key, c->klen, c->exptime, &it, &ver);

	ex->st.cmd_touch++;
	if (rc < 0) {
		store_error(ex, c, o, rc);
		return rc;
	}
	if (rc == 0) {
		ex->st.touch_misses++;
		out_reply(o, c, "NOT_FOUND");
	} else {
		ex->st.touch_hits++;
		out_reply(o, c, "TOUCHED");
	}
	return 0;
}

/* ---- flush_all -------------------------------------------------------------
 * The generation and a pending delayed flush live in the store under
 * MC_FLUSH_KEY: 4 bytes generation, 8 bytes time the next one starts. */

static int flush_read(struct mc_exec *ex, uint32_t *gen, int64_t *at, uint64_t *ver)
{
	uint8_t b[12];
	size_t n = 0;
	int rc = ex->ops->get(ex->store, MC_FLUSH_KEY, MC_FLUSH_KEYLEN, b, sizeof(b), &n, ver);

	*gen = 0;
	*at = 0;
	if (rc == -ENOENT) {
		*ver = 0;
		return 0;
	}
	if (rc < 0)
		return rc;
	if (n == sizeof(b)) {
		memcpy(gen, b, 4);
		memcpy(at, b + 4, 8);
	}
	return 0;
}

static void flush_apply(struct mc_exec *ex, uint32_t gen, int64_t at)
{
	/* a delayed flush whose time has come is a generation already */
	ex->gen = at && at <= ex->now ? gen + 1 : gen;
	ex->flush_at = at && at > ex->now ? at : 0;
}

void mc_exec_tick(struct mc_exec *ex, int64_t now)
{
	uint32_t gen;
	int64_t at;
	uint64_t ver;

	ex->now = now;
	if (ex->flush_at && ex->flush_at <= now) {
		ex->gen++;
		ex->flush_at = 0;
	}
	if (now != ex->gen_read_at && flush_read(ex, &gen, &at, &ver) == 0) {
		ex->gen_read_at = now;
		flush_apply(ex, gen, at);
	}
}

static int do_flush(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o)
{
	int64_t at = 0;
	uint32_t gen;
	int64_t old_at;
	uint64_t ver, nver;
	uint8_t b[12];
	int rc = 0;

	ex->st.cmd_flush++;
	if (c->has_exptime && c->exptime > 0)
		at = mc_expiry(c->exptime, ex->now);
	for (int tries = 0; tries < RMW_TRIES; tries++) {
		rc = flush_read(ex, &gen, &old_at, &ver);
		if (rc < 0)
			break;
		if (old_at && old_at <= ex->now)
			gen++; /* that delayed flush happened */
		if (at > ex->now) {
			/* later: this generation ends at `at` */
		} else {
			gen++; /* now: everything stored so far is gone */
			at = 0;
		}
		memcpy(b, &gen, 4);
		memcpy(b + 4, &at, 8);
		rc = ver ? ex->ops->cas(ex->store, MC_FLUSH_KEY, MC_FLUSH_KEYLEN, ver, b, sizeof(b),
					&nver)
			 : ex->ops->put(ex->store, MC_FLUSH_KEY, MC_FLUSH_KEYLEN, b, sizeof(b),
					MC_PUT_ADD, &nver);
		if (rc == -ECANCELED || rc == -ENOENT || rc == -EEXIST)
			continue;
		if (rc < 0)
			break;
		ex->gen_read_at = ex->now;
		flush_apply(ex, gen, at);
		out_reply(o, c, "OK");
		return 0;
	}
	store_error(ex, c, o, rc < 0 ? rc : -EAGAIN);
	return rc < 0 ? rc : -EAGAIN;
}

/* ---- get ------------------------------------------------------------------ */

/* Decimal digits of v at p; returns the count. */
static size_t put_u64(char *p, uint64_t v)
{
	char tmp[20];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		p[i] = tmp[n - 1 - i];
	return n;
}

/* VALUE key flags bytes [cas]\r\ndata\r\n, formatted by hand: this is the
 * hot path, and snprintf was a visible share of it. */
static void value_line(struct mc_out *o, const char *key, size_t klen, const struct mc_item *it,
		       bool cas, uint64_t ver)
{
	char *p;

	if (!mc_out_reserve(o, 6 + klen + 3 * 21 + 2 + it->dlen + 2))
		return;
	p = o->p + o->len;
	memcpy(p, "VALUE ", 6);
	p += 6;
	memcpy(p, key, klen);
	p += klen;
	*p++ = ' ';
	p += put_u64(p, it->flags);
	*p++ = ' ';
	p += put_u64(p, it->dlen);
	if (cas) {
		*p++ = ' ';
		p += put_u64(p, ver);
	}
	memcpy(p, "\r\n", 2);
	p += 2;
	memcpy(p, it->data, it->dlen);
	memcpy(p + it->dlen, "\r\n", 2);
	o->len = (size_t)(p + it->dlen + 2 - o->p);
}

int mc_exec_get(struct mc_exec *ex, const struct mc_cmd *c, size_t *pos, struct mc_out *o,
		size_t high)
{
	bool touch = c->op == MC_OP_GAT || c->op == MC_OP_GATS;
	bool cas = c->op == MC_OP_GETS || c->op == MC_OP_GATS;
	const char *p = c->keys + *pos, *end = c->keys + c->keys_len, *key;
	size_t klen;

	while (mc_next_key(&p, end, &key, &klen)) {
		struct mc_item it;
		uint64_t ver = 0;
		bool expired = false;
		int rc = touch ? touch_item(ex, key, klen, c->exptime, &it, &ver)
			       : load(ex, key, klen, &it, &ver, &expired);
		if (touch)
			ex->st.cmd_touch++;
		else
			ex->st.cmd_get++;
		if (rc < 0) {
			/* memcached's way out of a get that cannot finish */
			char line[96];
			ex->st.store_errors++;
			snprintf(line, sizeof(line), "SERVER_ERROR %s", strerror(-rc));
			mc_out_line(o, line);
			*pos = c->keys_len;
			return 0;
		}
		if (rc == 0) {
			if (touch)
				ex->st.touch_misses++;
			else
				ex->st.get_misses++;
			if (expired)
				ex->st.get_expired++;
		} else {
			if (touch)
				ex->st.touch_hits++;
			else
				ex->st.get_hits++;
			value_line(o, key, klen, &it, cas, ver);
		}
		if (o->len > high && p < end) {
			*pos = (size_t)(p - c->keys);
			return 1;
		}
	}
	*pos = c->keys_len;
	mc_out_put(o, "END\r\n", 5);
	return 0;
}

/* ---- stats, the rest ---------------------------------------------------------- */

static void stat_u(struct mc_out *o, const char *name, uint64_t v)
{
	char line[128];

	snprintf(line, sizeof(line), "STAT %s %" PRIu64, name, v);
	mc_out_line(o, line);
}

static bool arg_is(const struct mc_cmd *c, const char *w)
{
	size_t n = strlen(w);
	return c->arg_len >= n && memcmp(c->arg, w, n) == 0 &&
	       (c->arg_len == n || c->arg[n] == ' ');
}

void mc_exec_stats(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o)
{
	const struct mc_stats *s = &ex->st;
	char line[160];

	if (c->arg_len == 0) {
		stat_u(o, "pid", (uint64_t)getpid());
		stat_u(o, "uptime", (uint64_t)(ex->now - ex->started));
		stat_u(o, "time", (uint64_t)ex->now);
		snprintf(line, sizeof(line), "STAT version %s", ex->version);
		mc_out_line(o, line);
		stat_u(o, "pointer_size", sizeof(void *) * 8);
		stat_u(o, "curr_connections", s->curr_connections);
		stat_u(o, "total_connections", s->total_connections);
		stat_u(o, "rejected_connections", s->rejected_connections);
		stat_u(o, "cmd_get", s->cmd_get);
		stat_u(o, "cmd_set", s->cmd_set);
		stat_u(o, "cmd_flush", s->cmd_flush);
		stat_u(o, "cmd_touch", s->cmd_touch);
		stat_u(o, "get_hits", s->get_hits);
		stat_u(o, "get_misses", s->get_misses);
		stat_u(o, "get_expired", s->get_expired);
		stat_u(o, "get_flushed", s->get_flushed);
		stat_u(o, "delete_misses", s->delete_misses);
		stat_u(o, "delete_hits", s->delete_hits);
		stat_u(o, "incr_misses", s->incr_misses);
		stat_u(o, "incr_hits", s->incr_hits);
		stat_u(o, "decr_misses", s->decr_misses);
		stat_u(o, "decr_hits", s->decr_hits);
		stat_u(o, "cas_misses", s->cas_misses);
		stat_u(o, "cas_hits", s->cas_hits);
		stat_u(o, "cas_badval", s->cas_badval);
		stat_u(o, "touch_hits", s->touch_hits);
		stat_u(o, "touch_misses", s->touch_misses);
		stat_u(o, "store_too_large", s->store_too_large);
		stat_u(o, "store_no_memory", s->store_no_memory);
		stat_u(o, "bytes_read", s->bytes_read);
		stat_u(o, "bytes_written", s->bytes_written);
		stat_u(o, "limit_maxbytes", 0);
		stat_u(o, "threads", ex->threads ? ex->threads : 1);
		mc_out_put(o, "END\r\n", 5);
	} else if (arg_is(c, "reset")) {
		uint64_t cur = ex->st.curr_connections, tot = ex->st.total_connections;
		memset(&ex->st, 0, sizeof(ex->st));
		ex->st.curr_connections = cur;
		ex->st.total_connections = tot;
		mc_out_line(o, "RESET");
	} else if (arg_is(c, "settings")) {
		stat_u(o, "item_size_max", ex->max_value);
		stat_u(o, "maxconns", 0);
		mc_out_line(o, "STAT evictions off");
		mc_out_line(o, "STAT cas_enabled yes");
		stat_u(o, "num_threads", ex->threads ? ex->threads : 1);
		mc_out_put(o, "END\r\n", 5);
	} else if (arg_is(c, "items") || arg_is(c, "slabs") || arg_is(c, "sizes") ||
		   arg_is(c, "conns") || arg_is(c, "detail")) {
		mc_out_put(o, "END\r\n", 5); /* nothing of the kind here */
	} else {
		mc_out_line(o, "ERROR");
	}
}

int mc_exec_cmd(struct mc_exec *ex, const struct mc_cmd *c, struct mc_out *o)
{
	char line[64];

	switch (c->op) {
	case MC_OP_NONE:
		if (c->reply)
			mc_out_line(o, c->reply);
		return 0;
	case MC_OP_SET:
	case MC_OP_ADD:
	case MC_OP_REPLACE:
	case MC_OP_APPEND:
	case MC_OP_PREPEND:
	case MC_OP_CAS:
		return do_store(ex, c, o);
	case MC_OP_DELETE:
		return do_delete(ex, c, o);
	case MC_OP_INCR:
	case MC_OP_DECR:
		return do_arith(ex, c, o);
	case MC_OP_TOUCH:
		return do_touch(ex, c, o);
	case MC_OP_FLUSH_ALL:
		return do_flush(ex, c, o);
	case MC_OP_STATS:
		if (c->reply)
			mc_out_line(o, c->reply);
		else
			mc_exec_stats(ex, c, o);
		return 0;
	case MC_OP_VERSION:
		snprintf(line, sizeof(line), "VERSION %s", ex->version);
		mc_out_line(o, line);
		return 0;
	case MC_OP_VERBOSITY:
		out_reply(o, c, "OK");
		return 0;
	default:
		return -EINVAL; /* get family and quit belong to the caller */
	}
}
