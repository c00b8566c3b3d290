/*
 * membership_int.h - what membership.c and membership_config.c share: the
 * content of a member znode (one running node's registration).
 */
#ifndef FARM_MEMBERSHIP_INT_H
#define FARM_MEMBERSHIP_INT_H

#include <stdint.h>

#include "lease.h"

struct farm_mreg {
	uint32_t id;
	uint64_t inc;
	char lease[FARM_LEASE_ADDR_MAX];
	char addr[128];
	char netns[64];
	/* A joining member holds every replica the map of configuration
	 * `ready` gives it (0: not yet): the CM then ends its joining. */
	uint64_t ready;
};

/* "ID INC LEASE ADDR [NETNS] [ready=CFG]": the length written, or -ENOSPC. */
int farm__mreg_format(const struct farm_mreg *r, char *buf, size_t len);
/* 0 or -EINVAL. */
int farm__mreg_parse(const char *text, struct farm_mreg *r);

#endif /* FARM_MEMBERSHIP_INT_H */
