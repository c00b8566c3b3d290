/*
 * memcache.c - the memcached text-protocol parser (mc_parse), memcached's
 * number parsing, and the item header the gateway stores with each value.
 *
 * The parser follows memcached 1.6's proto_text.c step by step rather than
 * a grammar, because clients depend on its exact answers to bad input: a
 * line ends at '\n' and loses one '\r' only when it is longer than one
 * byte; it is cut at its first NUL (memcached runs strlen on it); tokens
 * are split on ' ' only, at most 23 of them before the rest of the line is
 * left unsplit; the token count is checked per command before any field;
 * "noreply" is looked for in the last token before the fields are checked,
 * so it silences the error replies too; numbers are strtoul & co. with
 * their leading white space, signs and silent 64-to-32-bit truncation. It
 * reads only buf[0, len) and keeps no state.
 */
#include <errno.h>
#include <limits.h>
#include <string.h>

#include "memcache.h"

#define MAX_TOKENS 24 /* memcached's MAX_TOKENS, the terminal token included */

static const char ERR_ERROR[] = "ERROR";
static const char ERR_FORMAT[] = "CLIENT_ERROR bad command line format";
static const char ERR_CHUNK[] = "CLIENT_ERROR bad data chunk";
static const char ERR_TOO_LARGE[] = "SERVER_ERROR object too large for cache";
static const char ERR_DELTA[] = "CLIENT_ERROR invalid numeric delta argument";
static const char ERR_EXPTIME[] = "CLIENT_ERROR invalid exptime argument";
static const char ERR_DELETE[] =
    "CLIENT_ERROR bad command line format.  Usage: delete <key> [noreply]";

struct tok {
	const char *s;
	size_t n;
};

static bool c_isspace(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r';
}

/* ---- numbers: strtoul/strtol/strtoull as memcached's safe_strto* call them */

/* The strto* core on s[0, n): white space, sign, decimal digits. *end is
 * the index where the conversion stopped (0 when there were no digits). */
static void strto(const char *s, size_t n, bool *neg, uint64_t *mag, bool *ovf, size_t *end)
{
	size_t i = 0, d0;

	*neg = false;
	*mag = 0;
	*ovf = false;
	while (i < n && c_isspace(s[i]))
		i++;
	if (i < n && (s[i] == '+' || s[i] == '-'))
		*neg = s[i++] == '-';
	d0 = i;
	while (i < n && s[i] >= '0' && s[i] <= '9') {
		uint64_t v = *mag * 10 + (uint64_t)(s[i] - '0');
		if (*mag > UINT64_MAX / 10 || v < *mag * 10)
			*ovf = true;
		*mag = v;
		i++;
	}
	*end = i == d0 ? 0 : i;
}

/* The end of a number must be the token's end or white space. */
static bool ends_well(const char *s, size_t n, size_t end)
{
	return end > 0 && (end == n || c_isspace(s[end]));
}

static bool strtou64(const char *s, size_t n, uint64_t *out)
{
	bool neg, ovf;
	uint64_t mag;
	size_t end;

	*out = 0;
	strto(s, n, &neg, &mag, &ovf, &end);
	if (ovf || !ends_well(s, n, end))
		return false;
	mag = neg ? (uint64_t)0 - mag : mag;
	/* "only check for negative signs in the uncommon case when the
	 * unsigned number is so big that it's negative as a signed number" */
	if ((int64_t)mag < 0 && memchr(s, '-', n))
		return false;
	*out = mag;
	return true;
}

bool mc_strtoul32(const char *s, size_t n, uint32_t *out)
{
	uint64_t v;
	bool ok = strtou64(s, n, &v);

	*out = (uint32_t)v; /* memcached stores an unsigned long in a uint32_t */
	return ok;
}

bool mc_strtoull(const char *s, size_t n, uint64_t *out)
{
	return strtou64(s, n, out);
}

bool mc_strtol32(const char *s, size_t n, int32_t *out)
{
	bool neg, ovf;
	uint64_t mag;
	size_t end;

	*out = 0;
	strto(s, n, &neg, &mag, &ovf, &end);
	/* strtol's ERANGE: beyond LONG_MAX, or below LONG_MIN */
	if (ovf || mag > (uint64_t)INT64_MAX + (neg ? 1u : 0u) || !ends_well(s, n, end))
		return false;
	/* memcached stores the long in an int32_t: two's complement truncation */
	*out = (int32_t)(uint32_t)(neg ? (uint64_t)0 - mag : mag);
	return true;
}

/* ---- the tokenizer ------------------------------------------------------ */

/* memcached's tokenize_command on line[0, n) (n already cut at a NUL):
 * returns the token count including the terminal token, whose `s` is the
 * unsplit rest of the line (NULL when everything was split). */
static size_t tokenize(const char *line, size_t n, struct tok *t)
{
	size_t nt = 0, s = 0, e = 0;

	for (; e < n; e++) {
		if (line[e] != ' ')
			continue;
		if (s != e) {
			t[nt++] = (struct tok){line + s, e - s};
			if (nt == MAX_TOKENS - 1) {
				e++;
				s = e;
				break;
			}
		}
		s = e + 1;
	}
	if (s != e && e <= n)
		t[nt++] = (struct tok){line + s, e - s};
	t[nt++] = (struct tok){e < n ? line + e : NULL, 0};
	return nt;
}

static bool tok_is(const struct tok *t, const char *word)
{
	size_t n = strlen(word);
	return t->s && t->n == n && memcmp(t->s, word, n) == 0;
}

/* set_noreply_maybe: the last real token is "noreply". */
static bool noreply_maybe(const struct tok *t, size_t nt)
{
	return tok_is(&t[nt - 2], "noreply");
}

static void reply(struct mc_cmd *c, const char *line)
{
	c->op = MC_OP_NONE;
	c->reply = c->noreply ? NULL : line;
}

/* ---- commands ----------------------------------------------------------- */

static ssize_t parse_update(const char *buf, size_t len, size_t line_len, size_t max_value,
			    const struct tok *t, size_t nt, enum mc_op op, struct mc_cmd *c)
{
	int32_t vlen;

	c->noreply = noreply_maybe(t, nt);
	if (t[1].n > MC_KEY_MAX) {
		reply(c, ERR_FORMAT);
		return (ssize_t)line_len;
	}
	c->key = t[1].s;
	c->klen = t[1].n;
	if (!(mc_strtoul32(t[2].s, t[2].n, &c->flags) && mc_strtol32(t[3].s, t[3].n, &c->exptime) &&
	      mc_strtol32(t[4].s, t[4].n, &vlen))) {
		reply(c, ERR_FORMAT);
		return (ssize_t)line_len;
	}
	if (op == MC_OP_CAS && !mc_strtoull(t[5].s, t[5].n, &c->num)) {
		reply(c, ERR_FORMAT);
		return (ssize_t)line_len;
	}
	if (vlen < 0 || vlen > INT_MAX - 2) {
		reply(c, ERR_FORMAT);
		return (ssize_t)line_len;
	}
	c->op = op;
	if ((size_t)vlen > max_value) {
		/* memcached answers at once and swallows the data block */
		c->too_large = true;
		c->reply = c->noreply ? NULL : ERR_TOO_LARGE;
		c->swallow = (uint64_t)vlen + 2;
		return (ssize_t)line_len;
	}
	if (len - line_len < (size_t)vlen + 2) {
		c->need = line_len + (size_t)vlen + 2;
		return 0;
	}
	c->data = buf + line_len;
	c->dlen = (size_t)vlen;
	if (memcmp(c->data + vlen, "\r\n", 2) != 0)
		reply(c, ERR_CHUNK); /* the block is consumed all the same */
	return (ssize_t)(line_len + (size_t)vlen + 2);
}

static void parse_get(const struct tok *t, size_t nt, const char *line_end, enum mc_op op,
		      struct mc_cmd *c)
{
	const struct tok *k = &t[1];
	const char *p, *key;
	size_t klen;

	if (op == MC_OP_GAT || op == MC_OP_GATS) {
		if (!mc_strtol32(t[1].s, t[1].n, &c->exptime)) {
			reply(c, ERR_EXPTIME);
			return;
		}
		k = &t[2];
	}
	c->op = op;
	c->keys = k->s ? k->s : line_end;
	c->keys_len = (size_t)(line_end - c->keys);
	/* memcached stops at a key that is too long and drops every reply it
	 * has not sent yet, the earlier keys' values included */
	p = c->keys;
	while (mc_next_key(&p, line_end, &key, &klen)) {
		if (klen > MC_KEY_MAX) {
			c->cull = true;
			c->keys = NULL;
			c->keys_len = 0;
			reply(c, ERR_FORMAT);
			return;
		}
	}
	(void)nt;
}

static void parse_delete(const struct tok *t, size_t nt, struct mc_cmd *c)
{
	if (nt > 3) {
		bool hold_is_zero = tok_is(&t[2], "0");
		bool sets_noreply = c->noreply = noreply_maybe(t, nt);
		bool valid = (nt == 4 && (hold_is_zero || sets_noreply)) ||
			     (nt == 5 && hold_is_zero && sets_noreply);
		if (!valid) {
			reply(c, ERR_DELETE);
			return;
		}
	}
	if (t[1].n > MC_KEY_MAX) {
		reply(c, ERR_FORMAT);
		return;
	}
	c->op = MC_OP_DELETE;
	c->key = t[1].s;
	c->klen = t[1].n;
}

static void parse_arith(const struct tok *t, size_t nt, enum mc_op op, struct mc_cmd *c)
{
	c->noreply = noreply_maybe(t, nt);
	if (t[1].n > MC_KEY_MAX) {
		reply(c, ERR_FORMAT);
		return;
	}
	if (!mc_strtoull(t[2].s, t[2].n, &c->num)) {
		reply(c, ERR_DELTA);
		return;
	}
	c->op = op;
	c->key = t[1].s;
	c->klen = t[1].n;
}

static void parse_touch(const struct tok *t, size_t nt, struct mc_cmd *c)
{
	c->noreply = noreply_maybe(t, nt);
	if (t[1].n > MC_KEY_MAX) {
		reply(c, ERR_FORMAT);
		return;
	}
	if (!mc_strtol32(t[2].s, t[2].n, &c->exptime)) {
		reply(c, ERR_EXPTIME);
		return;
	}
	c->op = MC_OP_TOUCH;
	c->key = t[1].s;
	c->klen = t[1].n;
}

static void parse_stats(const struct tok *t, size_t nt, const char *line_end, struct mc_cmd *c)
{
	c->op = MC_OP_STATS;
	if (nt == 2) {
		c->arg = "";
		c->arg_len = 0;
		return;
	}
	c->arg = t[1].s;
	c->arg_len = (size_t)(line_end - t[1].s);
	if (tok_is(&t[1], "detail")) {
		if (nt < 4)
			reply(c, "CLIENT_ERROR usage: stats detail on|off|dump");
		else if (tok_is(&t[2], "on") || tok_is(&t[2], "off"))
			reply(c, "OK");
		else if (!tok_is(&t[2], "dump"))
			reply(c, "CLIENT_ERROR usage: stats detail on|off|dump");
	}
}

static void parse_flush_all(const struct tok *t, size_t nt, struct mc_cmd *c)
{
	c->noreply = noreply_maybe(t, nt);
	if (nt != (c->noreply ? 3u : 2u)) {
		if (!mc_strtol32(t[1].s, t[1].n, &c->exptime)) {
			reply(c, ERR_EXPTIME);
			return;
		}
		c->has_exptime = true;
	}
	c->op = MC_OP_FLUSH_ALL;
}

static void parse_verbosity(const struct tok *t, size_t nt, struct mc_cmd *c)
{
	uint32_t level;

	c->noreply = noreply_maybe(t, nt);
	if (!mc_strtoul32(t[1].s, t[1].n, &level)) {
		reply(c, ERR_FORMAT);
		return;
	}
	c->op = MC_OP_VERBOSITY;
	c->num = level;
}

/* process_command_ascii's dispatch. Returns the bytes consumed. */
static ssize_t dispatch(const char *buf, size_t len, size_t line_len, const char *line, size_t n,
			size_t max_value, struct mc_cmd *c)
{
	struct tok t[MAX_TOKENS];
	size_t nt = tokenize(line, n, t);
	const struct tok *cmd = &t[0];
	const char *end = line + n;

#define WANT(cond)                                                                                 \
	do {                                                                                       \
		if (!(cond)) {                                                                     \
			reply(c, ERR_ERROR);                                                       \
			return (ssize_t)line_len;                                                  \
		}                                                                                  \
	} while (0)

	if (nt < 2 || cmd->n < 2) {
		reply(c, ERR_ERROR);
		return (ssize_t)line_len;
	}
	switch (cmd->s[0]) {
	case 'g':
		WANT(nt >= 3);
		if (tok_is(cmd, "get"))
			parse_get(t, nt, end, MC_OP_GET, c);
		else if (tok_is(cmd, "gets"))
			parse_get(t, nt, end, MC_OP_GETS, c);
		else if (tok_is(cmd, "gat"))
			parse_get(t, nt, end, MC_OP_GAT, c);
		else if (tok_is(cmd, "gats"))
			parse_get(t, nt, end, MC_OP_GATS, c);
		else
			reply(c, ERR_ERROR);
		return (ssize_t)line_len;
	case 's':
		if (tok_is(cmd, "set")) {
			WANT(nt == 6 || nt == 7);
			return parse_update(buf, len, line_len, max_value, t, nt, MC_OP_SET, c);
		}
		if (tok_is(cmd, "stats"))
			parse_stats(t, nt, end, c);
		else if (tok_is(cmd, "shutdown"))
			reply(c, "ERROR: shutdown not enabled");
		else
			reply(c, ERR_ERROR);
		return (ssize_t)line_len;
	case 'a':
		if (tok_is(cmd, "add") || tok_is(cmd, "append")) {
			WANT(nt == 6 || nt == 7);
			return parse_update(buf, len, line_len, max_value, t, nt,
					    cmd->n == 3 ? MC_OP_ADD : MC_OP_APPEND, c);
		}
		reply(c, ERR_ERROR);
		return (ssize_t)line_len;
	case 'c':
		if (tok_is(cmd, "cas")) {
			WANT(nt == 7 || nt == 8);
			return parse_update(buf, len, line_len, max_value, t, nt, MC_OP_CAS, c);
		}
		reply(c, ERR_ERROR);
		return (ssize_t)line_len;
	case 'i':
		if (tok_is(cmd, "incr")) {
			WANT(nt == 4 || nt == 5);
			parse_arith(t, nt, MC_OP_INCR, c);
		} else {
			reply(c, ERR_ERROR);
		}
		return (ssize_t)line_len;
	case 'd':
		if (tok_is(cmd, "delete")) {
			WANT(nt >= 3 && nt <= 5);
			parse_delete(t, nt, c);
		} else if (tok_is(cmd, "decr")) {
			WANT(nt == 4 || nt == 5);
			parse_arith(t, nt, MC_OP_DECR, c);
		} else {
			reply(c, ERR_ERROR);
		}
		return (ssize_t)line_len;
	case 't':
		if (tok_is(cmd, "touch")) {
			WANT(nt == 4 || nt == 5);
			parse_touch(t, nt, c);
		} else {
			reply(c, ERR_ERROR);
		}
		return (ssize_t)line_len;
	default:
		break;
	}
	if (tok_is(cmd, "replace") || tok_is(cmd, "prepend")) {
		WANT(nt == 6 || nt == 7);
		return parse_update(buf, len, line_len, max_value, t, nt,
				    cmd->s[0] == 'r' ? MC_OP_REPLACE : MC_OP_PREPEND, c);
	}
	if (tok_is(cmd, "bget")) {
		WANT(nt >= 3);
		parse_get(t, nt, end, MC_OP_GET, c);
	} else if (tok_is(cmd, "flush_all")) {
		WANT(nt >= 2 && nt <= 4);
		parse_flush_all(t, nt, c);
	} else if (tok_is(cmd, "version")) {
		c->op = MC_OP_VERSION;
	} else if (tok_is(cmd, "quit")) {
		c->op = MC_OP_QUIT;
	} else if (tok_is(cmd, "verbosity")) {
		WANT(nt == 3 || nt == 4);
		parse_verbosity(t, nt, c);
	} else {
		reply(c, ERR_ERROR);
	}
	return (ssize_t)line_len;
#undef WANT
}

ssize_t mc_parse(const char *buf, size_t len, size_t max_value, struct mc_cmd *out)
{
	const char *nl;
	size_t line_len, n;

	memset(out, 0, sizeof(*out));
	if (!buf || len == 0)
		return 0;
	nl = memchr(buf, '\n', len);
	if (!nl) {
		size_t sp = 0;
		if (len <= MC_LINE_MAX)
			return 0;
		/* try_read_command_ascii: no newline in the first 2 KiB is only
		 * allowed to a large multi-get; anything else is junk */
		while (sp < len && buf[sp] == ' ')
			sp++;
		if (sp > 100 || !((len - sp >= 4 && memcmp(buf + sp, "get ", 4) == 0) ||
				  (len - sp >= 5 && memcmp(buf + sp, "gets ", 5) == 0)))
			return MC_PARSE_CLOSE;
		return len >= MC_GET_LINE_MAX ? MC_PARSE_CLOSE : 0;
	}
	line_len = (size_t)(nl - buf) + 1;
	n = (size_t)(nl - buf);
	if (n > 1 && buf[n - 1] == '\r')
		n--;
	n = strnlen(buf, n); /* memcached runs strlen on the line */
	return dispatch(buf, len, line_len, buf, n, max_value, out);
}

bool mc_next_key(const char **p, const char *end, const char **key, size_t *klen)
{
	const char *s = *p, *e;

	while (s < end && *s == ' ')
		s++;
	if (s >= end) {
		*p = end;
		return false;
	}
	e = s;
	while (e < end && *e != ' ')
		e++;
	*key = s;
	*klen = (size_t)(e - s);
	*p = e;
	return true;
}

/* ---- items -------------------------------------------------------------- */

static void put_le(uint8_t *p, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int n)
{
	uint64_t v = 0;
	for (int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

size_t mc_item_hdr(uint32_t flags, int64_t expires, uint32_t gen, uint8_t *hdr)
{
	size_t n = 1;

	hdr[0] = 0xA0;
	if (flags) {
		hdr[0] |= 1;
		put_le(hdr + n, flags, 4);
		n += 4;
	}
	if (expires) {
		hdr[0] |= 2;
		put_le(hdr + n, (uint64_t)expires, 8);
		n += 8;
	}
	if (gen) {
		hdr[0] |= 4;
		put_le(hdr + n, gen, 4);
		n += 4;
	}
	return n;
}

void mc_item_decode(const void *val, size_t vlen, struct mc_item *it)
{
	const uint8_t *v = val;
	size_t need = 1;

	memset(it, 0, sizeof(*it));
	it->data = val;
	it->dlen = vlen;
	if (vlen == 0 || (v[0] & 0xF8) != 0xA0)
		return; /* not ours: plain data */
	need += (v[0] & 1 ? 4u : 0u) + (v[0] & 2 ? 8u : 0u) + (v[0] & 4 ? 4u : 0u);
	if (vlen < need)
		return;
	need = 1;
	if (v[0] & 1) {
		it->flags = (uint32_t)get_le(v + need, 4);
		need += 4;
	}
	if (v[0] & 2) {
		it->expires = (int64_t)get_le(v + need, 8);
		need += 8;
	}
	if (v[0] & 4) {
		it->gen = (uint32_t)get_le(v + need, 4);
		need += 4;
	}
	it->data = (const char *)v + need;
	it->dlen = vlen - need;
}

int64_t mc_expiry(int32_t exptime, int64_t now)
{
	if (exptime == 0)
		return 0;
	if (exptime < 0) /* EXPTIME_TO_POSITIVE_TIME: long ago */
		return 1;
	if (exptime > MC_REALTIME_MAXDELTA)
		return exptime; /* absolute; at or before now means expired */
	return now + exptime;
}
