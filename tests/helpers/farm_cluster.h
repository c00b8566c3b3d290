/*
 * farm_cluster.h - an in-process FaRM cluster for tests: fork one child per
 * member, each starts its node (farm_node_start_err), runs the test's node
 * function, waits for its peers to finish theirs (serving them meanwhile:
 * a node that stops early would strand its peers' requests), then stops.
 *
 * A member with a netns runs in that namespace (the child enters it before
 * starting its node), so the same helper drives udp clusters across veths.
 * Children report through a MAP_SHARED page (struct fc_shared): a result
 * and a message per node, barriers, and slots to pass addresses around.
 * Every wait is bounded. Linked into every test program; no cmocka here.
 */
#ifndef TESTS_HELPERS_FARM_CLUSTER_H
#define TESTS_HELPERS_FARM_CLUSTER_H

#include <stdint.h>
#include <stdio.h>

#include "farm/farm.h"

#define FC_MAX 8
#define FC_SLOTS 4096

struct fc_shared {
	uint32_t barrier[32];
	uint32_t done;               /* nodes finished with their function */
	uint32_t flag[16];
	int32_t start_rc[FC_MAX];
	int32_t result[FC_MAX];
	uint64_t start_ms[FC_MAX];   /* how long farm_node_start took */
	char err[FC_MAX][256];
	uint64_t addr[FC_SLOTS];
	uint64_t val[FC_SLOTS];
	uint64_t count[FC_MAX][16];
};

typedef int (*fc_node_fn)(struct farm *f, int idx, struct fc_shared *sh, void *arg);

/* A config of n members on shm with unique names ("<tag>-<pid>-<k>"). */
void fc_config(struct farm_config *cfg, int n, const char *tag, uint64_t region_size,
	       uint32_t regions, uint32_t replicas);

/* Run fn on every member of cfg (member i in child i). start_ms bounds each
 * start, run_ms the whole run. Returns 0 when every child exited 0;
 * otherwise prints what each failing child said and returns the first
 * failing child's code (or -ETIMEDOUT). `sh` may be NULL (one is made). */
int fc_run(const struct farm_config *cfg, fc_node_fn fn, void *arg, struct fc_shared *sh,
	   int start_ms, int run_ms);

/* Barrier `id` among n nodes, serving the node while waiting. 0 or
 * -ETIMEDOUT after timeout_ms. */
int fc_barrier(struct farm *f, struct fc_shared *sh, int id, int n, int timeout_ms);

/* Serve the node for ms milliseconds (or until *stop becomes nonzero). */
void fc_serve(struct farm *f, int ms, const uint32_t *stop);

/* In a node function: fail with file:line and the condition's text. */
#define FC_CHECK(sh, idx, cond)                                                             \
	do {                                                                                \
		if (!(cond)) {                                                              \
			snprintf((sh)->err[idx], sizeof((sh)->err[idx]), "%s:%d: %s",       \
				 __FILE__, __LINE__, #cond);                                \
			return 1;                                                           \
		}                                                                           \
	} while (0)

/* Same, with the return code of a farm call in the message. */
#define FC_CHECK_RC(sh, idx, call, want)                                                   \
	do {                                                                                \
		int fc_rc_ = (call);                                                        \
		if (fc_rc_ != (want)) {                                                     \
			snprintf((sh)->err[idx], sizeof((sh)->err[idx]),                     \
				 "%s:%d: %s = %d (%s), want %d", __FILE__, __LINE__, #call,  \
				 fc_rc_, farm_strerror(fc_rc_), (want));                     \
			return 1;                                                           \
		}                                                                           \
	} while (0)

#endif /* TESTS_HELPERS_FARM_CLUSTER_H */
