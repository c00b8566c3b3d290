/*
 * memcache_conn.c - one memcached client connection as a byte stream:
 * input buffering, commands run in order, replies queued, the few
 * connection-level behaviours of memcached 1.6 (a too-large value
 * swallowed, a bad multi-get key dropping the replies not yet flushed,
 * quit, junk lines closing the connection), and the memory bounds.
 *
 * No sockets here: farmd moves the bytes (tools/farmd/memcache_gw.c), the
 * unit test and the fuzzer feed them directly, so the same code runs in
 * all three.
 *
 * memcached writes its replies out after every get and whenever its read
 * buffer is drained; a bad key in a multi-get drops the replies queued
 * since then. cull_mark is our "written out" point: the end of the last
 * get's reply, and everything queued before the caller's last send.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "memcache.h"

#define IN_MIN 16384u

char *mc_conn_rbuf(struct mc_conn *c, size_t max_value, size_t *room)
{
	size_t limit = max_value + MC_LINE_MAX + 2 > MC_GET_LINE_MAX ? max_value + MC_LINE_MAX + 2
								     : MC_GET_LINE_MAX;

	*room = 0;
	if (c->close_now || c->quit)
		return NULL;
	/* slide the unparsed bytes to the front, unless a get reads them */
	if (c->in_start && !c->in_get) {
		memmove(c->in, c->in + c->in_start, c->in_len - c->in_start);
		c->in_len -= c->in_start;
		c->in_start = 0;
	}
	if (c->in_cap - c->in_len < IN_MIN / 4 && c->in_cap < limit + IN_MIN) {
		size_t cap = c->in_cap ? c->in_cap * 2 : IN_MIN;
		char *p;
		if (cap > limit + IN_MIN)
			cap = limit + IN_MIN;
		p = realloc(c->in, cap);
		if (!p)
			return c->in_cap > c->in_len
				   ? (*room = c->in_cap - c->in_len, c->in + c->in_len)
				   : NULL;
		if (c->in_get) /* the get's key pointers move with the buffer */
			c->get.keys = p + (c->get.keys - c->in);
		c->in = p;
		c->in_cap = cap;
	}
	*room = c->in_cap - c->in_len;
	return *room ? c->in + c->in_len : NULL;
}

void mc_conn_rdone(struct mc_exec *ex, struct mc_conn *c, size_t n)
{
	ex->st.bytes_read += n;
	c->in_len += n;
	if (c->swallow && c->in_len > c->in_start) {
		size_t have = c->in_len - c->in_start;
		size_t eat = c->swallow < have ? (size_t)c->swallow : have;
		/* only the tail of the buffer can be swallowed bytes */
		memmove(c->in + c->in_start, c->in + c->in_start + eat, have - eat);
		c->in_len -= eat;
		c->swallow -= eat;
	}
}

static void consume(struct mc_conn *c, size_t n)
{
	c->in_start += n;
	if (c->in_start == c->in_len)
		c->in_start = c->in_len = 0;
}

int mc_conn_run(struct mc_exec *ex, struct mc_conn *c, size_t high)
{
	int ran = 0;

	while (!c->quit && !c->close_now && !c->swallow) {
		struct mc_cmd cmd;
		ssize_t n;

		if (c->out.len - c->out_off > high)
			break; /* let the client read first */
		if (c->in_get) {
			if (mc_exec_get(ex, &c->get, &c->get_pos, &c->out, c->out_off + high) != 0)
				break;
			c->in_get = false;
			consume(c, c->get_len);
			c->cull_mark = c->out.len; /* memcached writes after a get */
			ran++;
			continue;
		}
		n = mc_parse(c->in + c->in_start, c->in_len - c->in_start, ex->max_value, &cmd);
		if (n == 0)
			break;
		if (n < 0) {
			c->close_now = true;
			break;
		}
		ran++;
		switch (cmd.op) {
		case MC_OP_GET:
		case MC_OP_GETS:
		case MC_OP_GAT:
		case MC_OP_GATS:
			c->get = cmd;
			c->get_len = (size_t)n;
			c->get_pos = 0;
			c->in_get = true;
			continue; /* runs at the top of the loop, resumable */
		case MC_OP_QUIT:
			c->quit = true;
			break;
		default:
			if (cmd.cull && c->out.len > c->cull_mark)
				c->out.len = c->cull_mark;
			mc_exec_cmd(ex, &cmd, &c->out);
			if (cmd.op == MC_OP_STATS && !cmd.reply)
				c->cull_mark = c->out.len; /* written at once too */
			break;
		}
		consume(c, (size_t)n);
		if (cmd.too_large) {
			/* drop the value: what is buffered now, the rest as it comes */
			size_t have = c->in_len - c->in_start;
			size_t eat = cmd.swallow < have ? (size_t)cmd.swallow : have;
			consume(c, eat);
			c->swallow = cmd.swallow - eat;
		}
	}
	if (c->out.oom) {
		/* cannot build the reply: the stream would lie, so close */
		c->close_now = true;
	}
	return ran;
}

void mc_conn_sent(struct mc_exec *ex, struct mc_conn *c, size_t n)
{
	if (ex)
		ex->st.bytes_written += n;
	c->out_off += n;
	if (c->out_off == c->out.len) {
		c->out.len = c->out_off = 0;
	} else if (c->out_off > c->out.cap / 2) {
		memmove(c->out.p, c->out.p + c->out_off, c->out.len - c->out_off);
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	c->cull_mark = c->out.len; /* all of it is on its way */
}

void mc_conn_free(struct mc_conn *c)
{
	free(c->in);
	mc_out_free(&c->out);
	memset(c, 0, sizeof(*c));
}
