/*
 * recovery.h - transaction recovery after a member leaves (FaRM SOSP'15
 * section 5.3, as built here; docs/recovery.md says why it is shaped so).
 *
 * When a node adopts a configuration (membership_node.c):
 *   1. rings written by coordinators that are no longer members are frozen
 *      at what they hold now (the coordinator is gone, and one that is
 *      merely cut off stopped writing when its lease ended);
 *   2. lock recovery: objects of regions this node now leads (a promoted
 *      backup) that undecided COMMIT-BACKUP records wrote are locked, so
 *      nobody reads or locks them before their transaction is decided;
 *   3. the node sends every member its votes: for each transaction in its
 *      frozen rings, what it holds (LOCK locked / committed / aborted, CB,
 *      CP, VOID), plus the regions it holds and how far each frozen ring
 *      was truncated.
 * Once a node holds the votes of every member of the configuration, it
 * decides each transaction of a dead coordinator (every node reaches the
 * same decision from the same votes) and applies its part: a primary
 * installs or unlocks, a backup applies or drops, recovery locks go. A
 * transaction commits when some replica saw COMMIT-PRIMARY, or when no
 * replica aborted it, some replica holds COMMIT-BACKUP and every member
 * holding a region it wrote has its record (or truncated it); else it
 * aborts -- it was never reported, and nothing it wrote was visible.
 * Transactions of live coordinators are theirs to finish; their records
 * reach a promoted primary at truncation (log.c), under the recovery lock.
 */
#ifndef FARM_RECOVERY_H
#define FARM_RECOVERY_H

#include <stdbool.h>
#include <stdint.h>

struct farm;

/* Adopted a configuration: old_role[r] is this node's role in region r
 * before (-1 none, 0 primary, 1.. backup). Node thread. */
void farm__rcv_adopted(struct farm *f, const int8_t *old_role);
/* Member `id` was removed and is back as a new incarnation within one
 * configuration change (farm_mchange lists it as removed and it is in the
 * new configuration): call before farm__adopt_config, so that its old
 * incarnation's transactions are recovered and its ring starts afresh. */
void farm__rcv_renewed(struct farm *f, uint32_t id);
/* Send votes, decide when they are all in. Returns work done. */
int farm__rcv_poll(struct farm *f);
/* A round is open: votes of some member are missing. */
bool farm__rcv_pending(const struct farm *f);
void farm__rcv_register(struct farm *f);
void farm__rcv_fini(struct farm *f);

#endif /* FARM_RECOVERY_H */
