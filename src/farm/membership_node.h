/*
 * membership_node.h - where membership (membership.h) meets the node
 * runtime (node.h): the lease flag the node checks, the node page fence
 * while the lease is lapsed, and adopting a new configuration.
 *
 * The node thread calls farm__membership_attach once after
 * farm_node_start, then, whenever farm_membership_changed() says so,
 * farm_membership_take() and farm__adopt_config(); and farm__rehello_poll
 * now and then. The lease thread calls farm__lease_fence on every change of
 * the lease (through the membership's on_serving callback).
 *
 * Adopting a configuration changes the config id (the -ESTALE fence),
 * the member list and the region map: a backup whose primary was removed
 * becomes the primary of its replica (its slab allocator rebuilt from the
 * region bytes), and every node sends its HELLO again so that readers learn
 * the keys of new primaries (a region whose primary's key is not known yet
 * reads -EAGAIN). What this does NOT do is recovery (FaRM SOSP'15 5.3):
 * in-flight transactions, re-replication of lost replicas, and memory for
 * regions a node newly backs: those come with the recovery work. A member
 * added by a configuration (a node joining a running cluster, listed as
 * joining) gets a fresh channel: it dials us from its start and farm_poll
 * answers without blocking (node.h: farm__dial_poll); until its HELLO
 * arrives it gets no REPLs (farm__joiner_unready).
 */
#ifndef FARM_MEMBERSHIP_NODE_H
#define FARM_MEMBERSHIP_NODE_H

#include <stdbool.h>
#include <stddef.h>

#include "farm/farm.h"

/* Make the node check `flag` (never NULL; 0 = lease lapsed) on every read,
 * write, allocation and transaction access, and on every request the flag
 * and `until` (may be NULL): the lease's end against the clock, exact even
 * when the lease thread is late to lower the flag. Fences the node page now
 * if the flag is 0. */
void farm__membership_attach(struct farm *f, const int *flag, const uint64_t *until);

/* Let waits inside reads and commits give up when `m` has a configuration
 * the node has not taken yet (node.h: farm__change_pending). */
struct farm_membership;
void farm__membership_attach_changes(struct farm *f, const struct farm_membership *m);

/* The lease started (true) or stopped (false) being valid: while it is not,
 * the node page shows configuration 0, so peers' one-sided reads of our
 * memory fail with -ESTALE. Any thread. */
void farm__lease_fence(struct farm *f, bool serving);

/* Move the node to configuration `next` (id above the current one, same
 * region parameters, this node a member). 0; -ESTALE not newer; -ENOENT
 * this node is not in it; -EINVAL other region parameters; -ENOMEM. On
 * error nothing changed. Node thread only. */
int farm__adopt_config(struct farm *f, const struct farm_config *next, char *err, size_t errlen);

/* Re-send HELLOs a peer refused because it had not adopted the
 * configuration yet. Returns how many were sent. Node thread only. */
int farm__rehello_poll(struct farm *f);

#endif /* FARM_MEMBERSHIP_NODE_H */
