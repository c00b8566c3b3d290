/*
 * config.h - internal helpers around struct farm_config (farm.h): the
 * checks every entry point shares, and the values a field means when it is
 * left at zero ("the default"), so the CLI can build a config field by field
 * and the node resolves it exactly as the file parser does.
 */
#ifndef FARM_CONFIG_H
#define FARM_CONFIG_H

#include <stddef.h>

#include "farm/farm.h"

#define FARM_DEFAULT_REGION_SIZE (64ull << 20)
#define FARM_DEFAULT_REGIONS_PER_MEMBER 4u
#define FARM_DEFAULT_REPLICAS 3u
#define FARM_DEFAULT_VNODES 64u
#define FARM_MIN_REGION_SIZE (64ull << 10)
#define FARM_MAX_REGION_SIZE (1ull << 31) /* offsets are 32 bits */
#define FARM_MAX_REGIONS (1u << 14) /* HELLO lists a node's regions in one message */
#define FARM_MAX_VNODES 4096u
#define FARM_DEFAULT_LOG_SIZE (1u << 20)
#define FARM_MIN_LOG_SIZE (4u << 10)
#define FARM_MAX_LOG_SIZE (1u << 30)

/* Fill the fields left at zero/empty with what they mean (regions = 4 per
 * member, run_dir = /run/farm/CLUSTER, ...), then check the whole config.
 * Returns 0 or -EINVAL with a message in err (may be NULL). */
int farm__config_finish(struct farm_config *cfg, char *err, size_t errlen);

/* Replica count actually used: replicas capped at the member count. */
unsigned farm__config_k(const struct farm_config *cfg);
/* Members that hold data: not joining. */
unsigned farm__config_ndata(const struct farm_config *cfg);

/* Index of member `id` in cfg->members, or -ENOENT. */
int farm__config_member(const struct farm_config *cfg, uint32_t id);

#endif /* FARM_CONFIG_H */
