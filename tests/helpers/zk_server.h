/*
 * zk_server.h - a standalone ZooKeeper server for one test, on a free
 * 127.0.0.1 port in a temporary directory, started and stopped by pid.
 *
 * Debian's `zookeeper` package has the server jar but does not start it;
 * we run ZooKeeperServerMain under java ourselves (PLATFORM-NOTES: about
 * 0.5 s to `imok`, a `ruok` sent during start-up can hang, so every probe
 * has its own timeout). stop() is SIGKILL of our own child by pid (a crash,
 * as far as clients can tell); restart() brings a new server up on the same
 * port and data directory, so sessions survive if it is back before they
 * time out. The directory is removed by destroy(), and at exit if a test
 * failed in between (atexit, registered by the creating process only).
 */
#ifndef TESTS_HELPERS_ZK_SERVER_H
#define TESTS_HELPERS_ZK_SERVER_H

#include <stddef.h>
#include <sys/types.h>

struct zk_server {
	pid_t pid; /* 0 while stopped */
	int port;
	char dir[128];	/* temp dir: zoo.cfg, data/, log */
	char hosts[64]; /* "ADDR:PORT": what clients connect to */
	char addr[32];	/* listening address, 127.0.0.1 by default */
	int tick_ms;
};

/* NULL when a server can be run here (java and the jars present), else
 * the reason, for a "skipped: ..." line. */
const char *zk_server_unavailable(void);

/* A cmocka group setup's work: start a server for the suite (tick 200 ms,
 * 30 s to come up) and print where it runs; or, when ZooKeeper cannot run
 * here (no java or jars, libfarm without the client), set *skip to the
 * reason and start nothing. 0, or -1 when the server failed to start. */
int zk_server_setup(struct zk_server *s, const char **skip);

/* Start on a free port; wait up to timeout_ms for `imok`. tick_ms 0: 200
 * (sessions may then be 400 ms .. 4 s). 0 or -errno (-ETIMEDOUT: the
 * server was killed again). */
int zk_server_start(struct zk_server *s, int tick_ms, int timeout_ms);
/* The same on another local IPv4 address (one of a network namespace the
 * caller has entered: the server runs, and is probed, where we are). */
int zk_server_start_at(struct zk_server *s, const char *addr, int tick_ms, int timeout_ms);
/* SIGKILL the server and reap it. */
void zk_server_stop(struct zk_server *s);
/* A new server on the same port and data directory. */
int zk_server_restart(struct zk_server *s, int timeout_ms);
/* Stop if running and remove the directory. */
void zk_server_destroy(struct zk_server *s);

/* One `ruok` probe with its own timeout: 0 when the answer is imok. */
int zk_server_ruok(int port, int timeout_ms);
int zk_server_ruok_at(const char *addr, int port, int timeout_ms);

#endif /* TESTS_HELPERS_ZK_SERVER_H */
