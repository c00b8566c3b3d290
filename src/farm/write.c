/*
 * write.c - farm_write: one object, outside a transaction. The region's
 * primary locks the object, installs the bytes under a new version,
 * replicates to the backups and unlocks once they acked (replica.c). A
 * write that finds the object locked by another writer retries until the
 * call's deadline.
 */
#include <errno.h>
#include <string.h>

#include "node.h"

int farm_write(struct farm *f, farm_addr_t addr, const void *buf, uint32_t len)
{
	uint64_t deadline;
	int rc;

	if (!f || (!buf && len))
		return -EINVAL;
	if ((rc = farm__check_addr(f, addr, len)))
		return rc;
	deadline = farm__now_ns() + (uint64_t)f->op_timeout_ms * 1000000ull;
	const struct farm_region *r = &f->regions[FARM_REGION(addr)];
	for (;;) {
		if (r->local) {
			int op = farm__op_new(f, FARM_OPK_CLIENT, 0);
			rc = op;
			if (op >= 0) {
				rc = farm__primary_write(f, addr, buf, len, true, (uint32_t)op, NULL);
				if (rc == 0) {
					rc = farm__wait_op(f, (uint32_t)op, deadline);
					if (rc == -ETIMEDOUT &&
					    f->ops[op].state == FARM_OP_ABANDONED)
						return rc;
				}
				farm__op_release(f, (uint32_t)op);
			}
		} else {
			struct farm_wire_write *w = (struct farm_wire_write *)f->reqbuf;
			memset(w, 0, sizeof(*w));
			w->addr = addr;
			w->len = len;
			if (len)
				memcpy(w->data, buf, len);
			rc = farm__call(f, r->peer, FARM_MSG_WRITE, w, sizeof(*w) + len, NULL);
		}
		if (rc != -EBUSY)
			break;
		if (farm__now_ns() >= deadline)
			return -ETIMEDOUT;
		if (farm_poll(f) == 0)
			unet_msg_idle(f->mep, 1);
	}
	if (rc == 0)
		f->st.writes++;
	return rc;
}
