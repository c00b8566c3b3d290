/*
 * netns.h - network namespaces for tests that need a real (virtual) wire.
 *
 * netns_pair_create() makes two fresh namespaces joined by a veth pair,
 * with 10.77.X.1/24 on the first end and 10.77.X.2/24 on the second
 * (X differs per pair within a process), both links and both loopbacks up.
 * The veth is created directly inside the namespaces: nothing ever appears
 * in the host's namespace, and 10.77.x.y addresses exist only inside these
 * namespaces.
 *
 * Clean-up is never optional: each pair is removed by netns_pair_destroy(),
 * and anything still registered is removed at exit and on SIGTERM, SIGINT,
 * SIGHUP, SIGALRM and SIGABRT (a ctest timeout or a failed assert). Only the
 * creating process cleans up -- forked children inherit the registry but
 * never act on it. Namespaces left by an earlier run that was killed -9
 * (their creator's pid is dead) are removed at the next create.
 *
 * To run code inside a namespace, fork: netns_fork() / netns_run() start a
 * child that setns()es into the namespace and _exit()s with fn(arg). Unlike
 * `ip netns exec` this does not remount /sys, so bpffs and the host's sysfs
 * stay as they were (AF_XDP/libbpf code is happy). netns_sh() is for shell
 * commands (ethtool, ip) that want `ip netns exec` semantics.
 *
 * Needs root; netns_unavailable() says why not, for a "skipped: ..." line.
 */
#ifndef TESTS_HELPERS_NETNS_H
#define TESTS_HELPERS_NETNS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

struct netns_opts {
	unsigned mtu;    /* 0: the veth default (1500) */
	unsigned queues; /* rx and tx queues per veth end; 0: one */
};

struct netns_pair {
	char ns[2][32];  /* namespace names */
	char dev[2][16]; /* dev[i] is the veth end inside ns[i] */
	char ip[2][16];  /* ip[i] is the address of dev[i], "10.77.X.{1,2}" */
	unsigned subnet; /* X */
};

/* NULL when namespaces (and veth) can be used here, else the reason. */
const char *netns_unavailable(void);

/* Returns 0, or -errno (the pair is then already torn down). o may be NULL. */
int netns_pair_create(struct netns_pair *p, const struct netns_opts *o);
/* Kills any process still inside either namespace (they can only be this
 * test's children), then deletes both namespaces and with them the veth. */
void netns_pair_destroy(struct netns_pair *p);

/* setns() the calling process into `ns`. Returns 0 or -errno. */
int netns_enter(const char *ns);

/* Fork a child that enters `ns` and _exit()s with fn(arg) (127 when it
 * could not enter). Returns the pid or -errno. */
pid_t netns_fork(const char *ns, int (*fn)(void *), void *arg);
/* netns_fork, then wait up to timeout_ms: fn's exit code, 128+signal, or
 * -ETIMEDOUT (the child is then killed). */
int netns_run(const char *ns, int (*fn)(void *), void *arg, int timeout_ms);

/* Run a shell command with `ip netns exec ns sh -c CMD` (ns NULL: in the
 * current namespace); its stdout goes to out (NUL-terminated, may be NULL),
 * stderr is discarded. Returns the command's exit status or -errno. */
int netns_sh(const char *ns, char *out, size_t outlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#endif /* TESTS_HELPERS_NETNS_H */
