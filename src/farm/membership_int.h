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
};

/* "ID INC LEASE ADDR [NETNS]": the length written, or -ENOSPC. */
int farm__mreg_format(const struct farm_mreg *r, char *buf, size_t len);
/* 0 or -EINVAL. */
int farm__mreg_parse(const char *text, struct farm_mreg *r);

#endif /* FARM_MEMBERSHIP_INT_H */
