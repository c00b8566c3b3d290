/*
 * membership_config.c - the text of the configuration znode and of member
 * znodes.
 *
 * The configuration is farm.h's config file format (farm_config_format /
 * farm_config_parse: one parser, one set of checks for files and for
 * ZooKeeper), preceded by comment lines the file parser skips:
 *
 *   # farm-config id=5 cm=2 boot=1
 *   # lease 1 INC 127.0.0.1:40001
 *   # lease 2 INC 127.0.0.1:40002
 *   cluster = demo
 *   ...
 *   config_id = 5
 *   member = 1 farm-demo-1
 *   member = 2 farm-demo-2
 *
 * so `get /farm/demo/config` in zkCli shows something a person can read,
 * and a configuration can be pasted into a file. Every member must have a
 * lease line and the ids must agree, else -EINVAL.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "membership.h"
#include "membership_int.h"

static int say(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -EINVAL;
}

int farm_mconfig_format(const struct farm_mconfig *c, char *buf, size_t len)
{
	struct farm_config cfg;
	size_t at = 0;
	int n;

	if (!c || !buf || c->cfg.nmembers > FARM_MAX_MEMBERS)
		return -EINVAL;
	n = snprintf(buf, len, "# farm-config id=%" PRIu64 " cm=%u boot=%" PRIu64 "\n", c->id,
		     c->cm, c->boot ? c->boot : 1);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	at = (size_t)n;
	for (uint32_t i = 0; i < c->cfg.nmembers; i++) {
		n = snprintf(buf + at, len - at, "# lease %u %" PRIu64 " %s\n",
			     c->cfg.members[i].id, c->lease[i].inc, c->lease[i].addr);
		if (n < 0 || (size_t)n >= len - at)
			return -ENOSPC;
		at += (size_t)n;
	}
	cfg = c->cfg;
	cfg.config_id = c->id;
	n = farm_config_format(&cfg, buf + at, len - at);
	if (n < 0)
		return n;
	return (int)(at + (size_t)n);
}

int farm_mconfig_parse(const char *text, struct farm_mconfig *c, char *err, size_t errlen)
{
	bool have_head = false, seen[FARM_MAX_MEMBERS] = {false};
	const char *s = text;
	int rc;

	if (!text || !c)
		return -EINVAL;
	memset(c, 0, sizeof(*c));
	if ((rc = farm_config_parse(text, &c->cfg, err, errlen)))
		return rc;
	if ((rc = farm__config_finish(&c->cfg, err, errlen)))
		return rc;
	while (*s) {
		const char *nl = strchr(s, '\n');
		size_t l = nl ? (size_t)(nl - s) : strlen(s);
		char line[256];
		if (l < sizeof(line)) {
			memcpy(line, s, l);
			line[l] = 0;
			uint64_t id, inc, boot = 1;
			unsigned cm, mid;
			char addr[FARM_LEASE_ADDR_MAX + 1];
			int k = sscanf(line, "# farm-config id=%" SCNu64 " cm=%u boot=%" SCNu64,
				       &id, &cm, &boot);
			if (k >= 2) {
				c->id = id;
				c->cm = cm;
				c->boot = boot;
				have_head = true;
			} else if (sscanf(line, "# lease %u %" SCNu64 " %48s", &mid, &inc, addr) ==
				   3) {
				int i = farm__config_member(&c->cfg, mid);
				if (i < 0 || strlen(addr) >= FARM_LEASE_ADDR_MAX)
					return say(err, errlen, "lease line for unknown member %u",
						   mid);
				c->lease[i].id = mid;
				c->lease[i].inc = inc;
				strcpy(c->lease[i].addr, addr);
				seen[i] = true;
			}
		}
		s += l + (nl ? 1 : 0);
	}
	if (!have_head)
		return say(err, errlen, "no '# farm-config id=N cm=M' line");
	if (c->id != c->cfg.config_id)
		return say(err, errlen, "id %" PRIu64 " but config_id %" PRIu64, c->id,
			   c->cfg.config_id);
	if (c->boot == 0 || c->boot > c->id)
		return say(err, errlen, "boot %" PRIu64 " must be in [1, id]", c->boot);
	if (farm__config_member(&c->cfg, c->cm) < 0)
		return say(err, errlen, "CM %u is not a member", c->cm);
	for (uint32_t i = 0; i < c->cfg.nmembers; i++)
		if (!seen[i])
			return say(err, errlen, "member %u has no lease line",
				   c->cfg.members[i].id);
	return 0;
}

int farm__mreg_format(const struct farm_mreg *r, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%u %" PRIu64 " %s %s%s%s", r->id, r->inc, r->lease, r->addr,
			 r->netns[0] ? " " : "", r->netns);

	if (n >= 0 && (size_t)n < len && r->ready)
		n += snprintf(buf + n, len - (size_t)n, " ready=%" PRIu64, r->ready);
	return n < 0 || (size_t)n >= len ? -ENOSPC : n;
}

int farm__mreg_parse(const char *text, struct farm_mreg *r)
{
	char lease[FARM_LEASE_ADDR_MAX + 1], addr[129], netns[65] = "", more[65] = "";
	unsigned id;
	uint64_t inc, ready = 0;
	int n;

	memset(r, 0, sizeof(*r));
	n = sscanf(text, "%u %" SCNu64 " %48s %128s %64s %64s", &id, &inc, lease, addr, netns,
		   more);
	if (n < 4 || id == 0 || strlen(lease) >= sizeof(r->lease) ||
	    strlen(addr) >= sizeof(r->addr) || strlen(netns) >= sizeof(r->netns))
		return -EINVAL;
	/* The ready flag is the last word, after the optional netns. */
	char *flag = more[0] ? more : netns;
	if (!strncmp(flag, "ready=", 6)) {
		char *end;
		ready = strtoull(flag + 6, &end, 10);
		if (*end || !ready)
			return -EINVAL;
		flag[0] = 0;
	} else if (more[0]) {
		return -EINVAL;
	}
	r->ready = ready;
	r->id = id;
	r->inc = inc;
	strcpy(r->lease, lease);
	strcpy(r->addr, addr);
	strcpy(r->netns, netns);
	return 0;
}
