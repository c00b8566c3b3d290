/*
 * zk.c - the ZooKeeper client wrapper (zk.h says what and why).
 *
 * One zhandle per struct farm_zk, one global watcher per handle: session
 * state changes are recorded here (connected, expired) and every event is
 * passed on to the owner's callback. Synchronous calls only: membership
 * runs them on its own thread, never on a data path, and the client's
 * completion thread answers them.
 *
 * The client logs through zookeeper_init2's per-handle callback, so
 * nothing reaches stderr unless the owner asks for it.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "zk.h"

const char *farm_zk_strerror(int err)
{
	switch (err) {
	case 0:
		return "success";
	case -ENOENT:
		return "no such znode";
	case -EEXIST:
		return "znode exists already";
	case -ESTALE:
		return "znode version changed since it was read (lost a race)";
	case -ENOTEMPTY:
		return "znode has children";
	case -ECONNRESET:
		return "connection to ZooKeeper lost (the client reconnects)";
	case -ETIMEDOUT:
		return "ZooKeeper did not answer in time";
	case -ENOTCONN:
		return "ZooKeeper session expired or closed";
	case -ESHUTDOWN:
		return "ZooKeeper handle closing";
	case -EMSGSIZE:
		return "znode data larger than the buffer";
	case -E2BIG:
		return "more children than the buffer holds";
	case -ENOTSUP:
		return "libfarm was built without ZooKeeper (install libzookeeper-mt-dev)";
	case -EINVAL:
		return "invalid argument";
	}
	return "ZooKeeper error";
}

#ifndef FARM_HAVE_ZK

bool farm_zk_available(void)
{
	return false;
}

int farm_zk_open(const char *hosts, const struct farm_zk_attr *attr, struct farm_zk **out)
{
	(void)hosts;
	(void)attr;
	if (out)
		*out = NULL;
	return -ENOTSUP;
}

void farm_zk_close(struct farm_zk *z)
{
	(void)z;
}

bool farm_zk_connected(const struct farm_zk *z)
{
	(void)z;
	return false;
}

bool farm_zk_expired(const struct farm_zk *z)
{
	(void)z;
	return true;
}

int farm_zk_session_ms(const struct farm_zk *z)
{
	(void)z;
	return 0;
}

int farm_zk_create(struct farm_zk *z, const char *path, const void *data, size_t len,
		   unsigned flags, char *made, size_t made_len)
{
	return -ENOTSUP;
}

int farm_zk_mkdirs(struct farm_zk *z, const char *path)
{
	return -ENOTSUP;
}

int farm_zk_get(struct farm_zk *z, const char *path, bool watch, void *buf, size_t *len,
		int32_t *version)
{
	return -ENOTSUP;
}

int farm_zk_set(struct farm_zk *z, const char *path, const void *data, size_t len, int32_t version,
		int32_t *new_version)
{
	return -ENOTSUP;
}

int farm_zk_delete(struct farm_zk *z, const char *path, int32_t version)
{
	return -ENOTSUP;
}

int farm_zk_exists(struct farm_zk *z, const char *path, bool watch)
{
	return -ENOTSUP;
}

int farm_zk_children(struct farm_zk *z, const char *path, bool watch,
		     char (*names)[FARM_ZK_PATH_MAX], int max)
{
	return -ENOTSUP;
}

#else /* FARM_HAVE_ZK */

#include <zookeeper/zookeeper.h>

struct farm_zk {
	zhandle_t *zh;
	struct farm_zk_attr attr;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int connected; /* atomic: 1 while the session is connected */
	int expired;   /* atomic: the server expired the session */
};

bool farm_zk_available(void)
{
	return true;
}

static int map_err(int rc)
{
	if (rc == ZOK)
		return 0;
	if (rc == ZNONODE)
		return -ENOENT;
	if (rc == ZNODEEXISTS)
		return -EEXIST;
	if (rc == ZBADVERSION)
		return -ESTALE;
	if (rc == ZNOTEMPTY)
		return -ENOTEMPTY;
	if (rc == ZCONNECTIONLOSS)
		return -ECONNRESET;
	if (rc == ZOPERATIONTIMEOUT)
		return -ETIMEDOUT;
	if (rc == ZSESSIONEXPIRED || rc == ZINVALIDSTATE)
		return -ENOTCONN;
	if (rc == ZCLOSING)
		return -ESHUTDOWN;
	if (rc == ZBADARGUMENTS)
		return -EINVAL;
	return -EIO;
}

/* zookeeper_init2's log hook carries no context, so the owner's hook is
 * kept process-wide: the one global of this file, and the only way to keep
 * the client's lines off stderr. The latest owner that set a hook gets the
 * lines of every handle (they are diagnostics only); none: dropped. */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static farm_zk_log_fn log_fn;
static void *log_arg;

static void on_log(const char *msg)
{
	pthread_mutex_lock(&log_lock);
	if (log_fn)
		log_fn(log_arg, msg);
	pthread_mutex_unlock(&log_lock);
}

static void watcher(zhandle_t *zh, int type, int state, const char *path, void *ctx)
{
	struct farm_zk *z = ctx;
	enum farm_zk_event ev = 0;

	(void)zh;
	if (!z)
		return;
	if (type == ZOO_SESSION_EVENT) {
		pthread_mutex_lock(&z->lock);
		if (state == ZOO_CONNECTED_STATE) {
			__atomic_store_n(&z->connected, 1, __ATOMIC_RELEASE);
			ev = FARM_ZK_EV_CONNECTED;
		} else if (state == ZOO_EXPIRED_SESSION_STATE || state == ZOO_AUTH_FAILED_STATE) {
			__atomic_store_n(&z->connected, 0, __ATOMIC_RELEASE);
			__atomic_store_n(&z->expired, 1, __ATOMIC_RELEASE);
			ev = FARM_ZK_EV_EXPIRED;
		} else {
			__atomic_store_n(&z->connected, 0, __ATOMIC_RELEASE);
			ev = FARM_ZK_EV_DISCONNECTED;
		}
		pthread_cond_broadcast(&z->cond);
		pthread_mutex_unlock(&z->lock);
		path = "";
	} else if (type == ZOO_CREATED_EVENT) {
		ev = FARM_ZK_EV_CREATED;
	} else if (type == ZOO_DELETED_EVENT) {
		ev = FARM_ZK_EV_DELETED;
	} else if (type == ZOO_CHANGED_EVENT) {
		ev = FARM_ZK_EV_CHANGED;
	} else if (type == ZOO_CHILD_EVENT) {
		ev = FARM_ZK_EV_CHILD;
	}
	if (ev && z->attr.on_event)
		z->attr.on_event(z->attr.arg, ev, path ? path : "");
}

int farm_zk_open(const char *hosts, const struct farm_zk_attr *attr, struct farm_zk **out)
{
	struct farm_zk *z;
	struct timespec dl;
	int rc = 0;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!hosts || !*hosts || strlen(hosts) > 4096)
		return -EINVAL;
	z = calloc(1, sizeof(*z));
	if (!z)
		return -ENOMEM;
	if (attr)
		z->attr = *attr;
	if (z->attr.session_ms <= 0)
		z->attr.session_ms = 4000;
	if (z->attr.connect_ms <= 0)
		z->attr.connect_ms = 5000;
	pthread_mutex_init(&z->lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&z->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if (z->attr.on_log) {
		pthread_mutex_lock(&log_lock);
		log_fn = z->attr.on_log;
		log_arg = z->attr.arg;
		pthread_mutex_unlock(&log_lock);
	}
	/* Hold the lock across init so the first session event cannot be
	 * broadcast before we wait for it. */
	pthread_mutex_lock(&z->lock);
	z->zh = zookeeper_init2(hosts, watcher, z->attr.session_ms, NULL, z, 0, on_log);
	if (!z->zh) {
		rc = errno == EINVAL ? -EINVAL : (errno ? -errno : -EIO);
		pthread_mutex_unlock(&z->lock);
		goto fail;
	}
	clock_gettime(CLOCK_MONOTONIC, &dl);
	dl.tv_sec += z->attr.connect_ms / 1000;
	dl.tv_nsec += (long)(z->attr.connect_ms % 1000) * 1000000L;
	if (dl.tv_nsec >= 1000000000L) {
		dl.tv_sec++;
		dl.tv_nsec -= 1000000000L;
	}
	while (!__atomic_load_n(&z->connected, __ATOMIC_ACQUIRE) &&
	       !__atomic_load_n(&z->expired, __ATOMIC_ACQUIRE)) {
		if (pthread_cond_timedwait(&z->cond, &z->lock, &dl) == ETIMEDOUT) {
			rc = -ETIMEDOUT;
			break;
		}
	}
	if (!rc && !__atomic_load_n(&z->connected, __ATOMIC_ACQUIRE))
		rc = -ENOTCONN;
	pthread_mutex_unlock(&z->lock);
	if (rc)
		goto fail;
	*out = z;
	return 0;
fail:
	farm_zk_close(z);
	return rc;
}

void farm_zk_close(struct farm_zk *z)
{
	if (!z)
		return;
	if (z->zh) {
		/* Events after close must not reach a freed handle. */
		zoo_set_context(z->zh, NULL);
		zookeeper_close(z->zh);
	}
	if (z->attr.on_log) {
		pthread_mutex_lock(&log_lock);
		if (log_fn == z->attr.on_log && log_arg == z->attr.arg)
			log_fn = NULL;
		pthread_mutex_unlock(&log_lock);
	}
	pthread_cond_destroy(&z->cond);
	pthread_mutex_destroy(&z->lock);
	free(z);
}

bool farm_zk_connected(const struct farm_zk *z)
{
	return z && __atomic_load_n(&z->connected, __ATOMIC_ACQUIRE);
}

bool farm_zk_expired(const struct farm_zk *z)
{
	return !z || __atomic_load_n(&z->expired, __ATOMIC_ACQUIRE);
}

int farm_zk_session_ms(const struct farm_zk *z)
{
	return z && z->zh ? zoo_recv_timeout(z->zh) : 0;
}

static bool path_ok(const char *p)
{
	size_t n;

	if (!p || p[0] != '/')
		return false;
	n = strlen(p);
	return n < FARM_ZK_PATH_MAX && (n == 1 || p[n - 1] != '/');
}

int farm_zk_create(struct farm_zk *z, const char *path, const void *data, size_t len,
		   unsigned flags, char *made, size_t made_len)
{
	char buf[FARM_ZK_PATH_MAX];
	int mode = 0, rc;

	if (!z || !path_ok(path) || len > (1u << 20) || (len && !data) ||
	    (flags & ~(FARM_ZK_EPHEMERAL | FARM_ZK_SEQUENCE)))
		return -EINVAL;
	if (flags & FARM_ZK_EPHEMERAL)
		mode = flags & FARM_ZK_SEQUENCE ? ZOO_EPHEMERAL_SEQUENTIAL : ZOO_EPHEMERAL;
	else if (flags & FARM_ZK_SEQUENCE)
		mode = ZOO_PERSISTENT_SEQUENTIAL;
	else
		mode = ZOO_PERSISTENT;
	rc = zoo_create(z->zh, path, data, data ? (int)len : -1, &ZOO_OPEN_ACL_UNSAFE, mode, buf,
			sizeof(buf));
	if (rc != ZOK)
		return map_err(rc);
	if (made && made_len) {
		if (strlen(buf) >= made_len)
			return -ENAMETOOLONG;
		strcpy(made, buf);
	}
	return 0;
}

int farm_zk_mkdirs(struct farm_zk *z, const char *path)
{
	char p[FARM_ZK_PATH_MAX];
	int rc;

	if (!z || !path_ok(path))
		return -EINVAL;
	strcpy(p, path);
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = 0;
		rc = farm_zk_create(z, p, NULL, 0, 0, NULL, 0);
		if (rc && rc != -EEXIST)
			return rc;
		if (!c)
			return 0;
		*s = c;
	}
}

int farm_zk_get(struct farm_zk *z, const char *path, bool watch, void *buf, size_t *len,
		int32_t *version)
{
	struct Stat st;
	int n, rc;

	if (!z || !path_ok(path) || !len || *len > INT32_MAX || (*len && !buf))
		return -EINVAL;
	n = (int)*len;
	rc = zoo_get(z->zh, path, watch, buf, &n, &st);
	if (rc != ZOK)
		return map_err(rc);
	if (version)
		*version = st.version;
	*len = (size_t)st.dataLength;
	if (st.dataLength > n)
		return -EMSGSIZE;
	return 0;
}

int farm_zk_set(struct farm_zk *z, const char *path, const void *data, size_t len, int32_t version,
		int32_t *new_version)
{
	struct Stat st;
	int rc;

	if (!z || !path_ok(path) || len > (1u << 20) || (len && !data))
		return -EINVAL;
	rc = zoo_set2(z->zh, path, data, (int)len, version, &st);
	if (rc != ZOK)
		return map_err(rc);
	if (new_version)
		*new_version = st.version;
	return 0;
}

int farm_zk_delete(struct farm_zk *z, const char *path, int32_t version)
{
	if (!z || !path_ok(path))
		return -EINVAL;
	return map_err(zoo_delete(z->zh, path, version));
}

int farm_zk_exists(struct farm_zk *z, const char *path, bool watch)
{
	struct Stat st;

	if (!z || !path_ok(path))
		return -EINVAL;
	return map_err(zoo_exists(z->zh, path, watch, &st));
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(a, b);
}

int farm_zk_children(struct farm_zk *z, const char *path, bool watch,
		     char (*names)[FARM_ZK_PATH_MAX], int max)
{
	struct String_vector v = {0, NULL};
	int rc, n;

	if (!z || !path_ok(path) || max < 0 || (max && !names))
		return -EINVAL;
	rc = zoo_get_children(z->zh, path, watch, &v);
	if (rc != ZOK)
		return map_err(rc);
	n = v.count < max ? v.count : max;
	for (int i = 0; i < n; i++) {
		snprintf(names[i], FARM_ZK_PATH_MAX, "%s", v.data[i]);
	}
	rc = v.count > max ? -E2BIG : n;
	deallocate_String_vector(&v);
	if (rc > 0)
		qsort(names, (size_t)rc, sizeof(names[0]), cmp_name);
	return rc;
}

#endif /* FARM_HAVE_ZK */
