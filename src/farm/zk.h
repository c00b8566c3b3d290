/*
 * zk.h - a small wrapper around ZooKeeper's multi-threaded C client, in the
 * shape the rest of libfarm wants: negative errno codes instead of ZOK/Z*,
 * bounded waits, no printing (the client's log lines go to a hook or
 * nowhere), and watches delivered to one callback per handle.
 *
 * Only what membership needs: connect (waiting for the session with a
 * bound), create (persistent, ephemeral, sequential), get/set with the
 * znode version (set conditional on it: the compare-and-swap that carries
 * FaRM's configurations), delete, exists, children.
 *
 * Watches fire on the client's completion thread. The callback must not
 * call back into ZooKeeper synchronously from there (the completion thread
 * is the one that would deliver the answer); it should note the event and
 * wake its own thread.
 *
 * Error mapping (farm_zk_strerror says it in words):
 *   ZNONODE -ENOENT, ZNODEEXISTS -EEXIST, ZBADVERSION -ESTALE (someone
 *   else changed the znode since we read it), ZNOTEMPTY -ENOTEMPTY,
 *   ZCONNECTIONLOSS -ECONNRESET, ZOPERATIONTIMEOUT -ETIMEDOUT,
 *   ZSESSIONEXPIRED / ZINVALIDSTATE -ENOTCONN (the session is gone: open a
 *   new handle), ZCLOSING -ESHUTDOWN, bad arguments -EINVAL, anything else
 *   -EIO. Built without the client (FARM_HAVE_ZK unset): every call but
 *   farm_zk_available is -ENOTSUP.
 */
#ifndef FARM_ZK_H
#define FARM_ZK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define FARM_ZK_EPHEMERAL 1u
#define FARM_ZK_SEQUENCE  2u

#define FARM_ZK_PATH_MAX     256
#define FARM_ZK_MAX_CHILDREN 256

enum farm_zk_event {
	FARM_ZK_EV_CONNECTED = 1, /* session (re)established */
	FARM_ZK_EV_DISCONNECTED,  /* connection lost, the client reconnects */
	FARM_ZK_EV_EXPIRED,	  /* session expired: ephemerals are gone */
	FARM_ZK_EV_CREATED,	  /* watched path: created */
	FARM_ZK_EV_DELETED,	  /*               deleted */
	FARM_ZK_EV_CHANGED,	  /*               data changed */
	FARM_ZK_EV_CHILD,	  /*               children changed */
};

struct farm_zk;

/* Called on the client's thread: note the event, do not block. `path` is
 * "" for session events. */
typedef void (*farm_zk_event_fn)(void *arg, enum farm_zk_event ev, const char *path);
/* The client's own log lines (one per call); NULL drops them. */
typedef void (*farm_zk_log_fn)(void *arg, const char *line);

struct farm_zk_attr {
	int session_ms; /* session timeout asked of the server (default 4000) */
	int connect_ms; /* wait this long for the session (default 5000) */
	farm_zk_event_fn on_event;
	farm_zk_log_fn on_log;
	void *arg;
};

/* True when libfarm was built with the ZooKeeper client. */
bool farm_zk_available(void);

/* Connect to `hosts` ("host:port,host:port"), waiting for the session.
 * -ETIMEDOUT when no server answered within connect_ms (the handle is
 * closed), -EINVAL for a bad host string. */
int farm_zk_open(const char *hosts, const struct farm_zk_attr *attr, struct farm_zk **out);
void farm_zk_close(struct farm_zk *z);
/* Connected right now (the client reconnects by itself after a loss). */
bool farm_zk_connected(const struct farm_zk *z);
/* The session was expired by the server: only a new handle helps. */
bool farm_zk_expired(const struct farm_zk *z);
/* The session timeout the server granted, in ms. */
int farm_zk_session_ms(const struct farm_zk *z);

/* Create `path` holding `len` bytes. With FARM_ZK_SEQUENCE the server
 * appends a counter; the name made is copied to `made` (may be NULL). */
int farm_zk_create(struct farm_zk *z, const char *path, const void *data, size_t len,
		   unsigned flags, char *made, size_t made_len);
/* Create every missing persistent component of `path` (like mkdir -p). */
int farm_zk_mkdirs(struct farm_zk *z, const char *path);
/* Read up to *len bytes; *len gets the znode's length (-EMSGSIZE when it
 * did not fit), *version (may be NULL) its data version. With `watch`, a
 * CHANGED/DELETED event follows the next change. */
int farm_zk_get(struct farm_zk *z, const char *path, bool watch, void *buf, size_t *len,
		int32_t *version);
/* Conditional set: only when the znode is still at `version` (-1: any).
 * -ESTALE when it moved on; *new_version (may be NULL) on success. */
int farm_zk_set(struct farm_zk *z, const char *path, const void *data, size_t len, int32_t version,
		int32_t *new_version);
int farm_zk_delete(struct farm_zk *z, const char *path, int32_t version);
/* 0 when it exists, -ENOENT when not; with `watch` either way a
 * CREATED/DELETED/CHANGED event follows. */
int farm_zk_exists(struct farm_zk *z, const char *path, bool watch);
/* Child names of `path`, sorted (byte order: sequence suffixes are zero
 * padded, so this is creation order among one prefix). Returns how many
 * (at most `max`, -E2BIG when there were more). */
int farm_zk_children(struct farm_zk *z, const char *path, bool watch,
		     char (*names)[FARM_ZK_PATH_MAX], int max);

const char *farm_zk_strerror(int err);

#endif /* FARM_ZK_H */
