/*
 * kv_ver.c - item versions: nonzero, and never the same twice for one
 * table, so that a version names one put of one item (memcached's CAS
 * unique, and the check that a pointer to an item object still means the
 * item the slot holds).
 *
 * A handle reserves blocks of 2^16 versions with a small transaction on the
 * table header's line 0 (vnext) and hands them out one per put, so the
 * shared counter is touched once per 65536 puts. A handle that closes or
 * dies wastes the rest of its block; 47 bits leave 2^31 blocks.
 */
#include <errno.h>

#include "kv_int.h"

static int reserve(struct farm_kv *kv)
{
	for (int attempt = 0; attempt < 256; attempt++) {
		struct farm_tx *tx;
		struct farm_tx_result res;
		struct kv_hdr0 h0;
		uint64_t b;
		int rc;

		if ((rc = farm_tx_begin(kv->f, &tx)))
			return rc;
		if ((rc = farm_tx_read(tx, kv->hdr, &h0, sizeof(h0)))) {
			farm_tx_abort(tx);
			if (rc == -EAGAIN)
				continue;
			return rc;
		}
		b = h0.vnext ? h0.vnext : 1;
		if (b >= (1ull << (KV_VER_BITS - KV_VBLOCK_SHIFT))) {
			farm_tx_abort(tx);
			return -EOVERFLOW;
		}
		h0.vnext = b + 1;
		if ((rc = farm_tx_write(tx, kv->hdr, &h0, sizeof(h0)))) {
			farm_tx_abort(tx);
			return rc;
		}
		rc = farm_tx_commit(tx, &res);
		if (rc == 0) {
			kv->st.tx_commits++;
			kv->vblock = b;
			kv->vused = 0;
			return 0;
		}
		kv->st.tx_aborts++;
		if (rc != -EAGAIN)
			return rc;
		farm_poll(kv->f);
	}
	return -EAGAIN;
}

int kv__next_version(struct farm_kv *kv, uint64_t *ver)
{
	int rc;

	if (!kv->vblock || kv->vused >= (1ull << KV_VBLOCK_SHIFT)) {
		if ((rc = reserve(kv)))
			return rc;
	}
	*ver = (kv->vblock << KV_VBLOCK_SHIFT) | kv->vused++;
	return 0;
}
