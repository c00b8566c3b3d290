/*
 * net_ns.c - the wire compare-net measures over: two network namespaces of
 * its own joined by one veth pair, 10.88.S.1/24 and 10.88.S.2/24 inside
 * them and nowhere else.
 *
 * Configuration shells out to ip(8), one command per step, because those
 * lines are what a person replays by hand when something is off; running
 * code inside a namespace is setns() (not `ip netns exec`, which remounts
 * /sys and hides bpffs from libbpf). Names carry our pid ("unp-PID-a"), so
 * parallel runs never collide and a run killed with -9 is recognised and
 * swept by the next one. Removal must work from a signal handler, so it
 * uses only fork, execv and waitpid, and a fixed-size state in struct
 * net_ns rather than anything allocated.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "net.h"

#define NS_PREFIX "unp-"

static char ip_path[32];

static const char *ip_bin(void)
{
	static const char *const cands[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};

	for (unsigned i = 0; !ip_path[0] && i < sizeof(cands) / sizeof(cands[0]); i++)
		if (access(cands[i], X_OK) == 0)
			snprintf(ip_path, sizeof(ip_path), "%s", cands[i]);
	return ip_path[0] ? ip_path : NULL;
}

/* Run argv (argv[0] a full path) with its output discarded, or into `out`.
 * Returns the exit status, or -1 when it could not run or was killed. */
static int run(char *const argv[], char *out, size_t outlen)
{
	int pfd[2] = {-1, -1}, st;
	size_t got = 0;
	pid_t pid;

	if (out && pipe(pfd) < 0)
		return -1;
	pid = fork();
	if (pid < 0) {
		if (out) {
			close(pfd[0]);
			close(pfd[1]);
		}
		return -1;
	}
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(out ? pfd[1] : fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (out) {
		close(pfd[1]);
		for (;;) {
			ssize_t r = read(pfd[0], out + got, outlen - 1 - got);
			if (r < 0 && errno == EINTR)
				continue;
			if (r <= 0)
				break;
			got += (size_t)r;
			if (got + 1 >= outlen)
				break;
		}
		out[got] = 0;
		close(pfd[0]);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define IP(...)                                                                                    \
	({                                                                                         \
		char *const argv_[] = {ip_path, __VA_ARGS__, NULL};                                \
		run(argv_, NULL, 0);                                                               \
	})

static void ns_delete(const char *name)
{
	if (ip_path[0])
		IP("netns", "del", (char *)name);
}

/* Everything inside one of our namespaces is one of our children. */
static void ns_kill_pids(const char *name)
{
	char out[512];
	char *const argv[] = {ip_path, "netns", "pids", (char *)name, NULL};

	if (!ip_path[0] || run(argv, out, sizeof(out)) != 0)
		return;
	for (char *s = out; *s;) {
		long pid = strtol(s, &s, 10);
		if (pid > 1 && pid != getpid())
			kill((pid_t)pid, SIGKILL);
		while (*s && (*s < '0' || *s > '9'))
			s++;
	}
}

static bool pid_alive(long pid)
{
	char path[64], buf[256];
	FILE *f;
	size_t n;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return false;
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	/* A zombie is dead, and PID 1 here reaps late (PLATFORM-NOTES). */
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Remove "unp-PID-*" namespaces whose creator is dead: a run killed -9. */
static void sweep_stale(void)
{
	DIR *d = opendir("/var/run/netns");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0)
			continue;
		long pid = strtol(e->d_name + strlen(NS_PREFIX), NULL, 10);
		if (pid > 0 && pid != getpid() && !pid_alive(pid)) {
			ns_kill_pids(e->d_name);
			ns_delete(e->d_name);
		}
	}
	closedir(d);
}

const char *net_ns_unavailable(void)
{
	if (geteuid() != 0)
		return "needs root (it creates network namespaces, a veth pair and XDP programs)";
	if (!ip_bin())
		return "ip(8) not found (install iproute2)";
	if (access("/proc/self/ns/net", R_OK) != 0)
		return "this kernel has no network namespaces";
	return NULL;
}

int net_ns_create(struct net_ns *n)
{
	int pid = (int)getpid(), s = pid % 250 + 1;
	char addr[24];

	memset(n, 0, sizeof(*n));
	if (!ip_bin())
		return -ENOENT;
	sweep_stale();
	for (int i = 0; i < 2; i++) {
		snprintf(n->ns[i], sizeof(n->ns[i]), NS_PREFIX "%d-%c", pid, 'a' + i);
		snprintf(n->dev[i], sizeof(n->dev[i]), "unp%d%c", pid, 'a' + i);
		snprintf(n->ip[i], sizeof(n->ip[i]), "10.88.%d.%d", s, i + 1);
	}
	for (int i = 0; i < 2; i++) {
		n->made[i] = true; /* before the command: a signal may land mid-way */
		if (IP("netns", "add", n->ns[i]) != 0)
			goto fail;
	}
	if (IP("link", "add", n->dev[0], "netns", n->ns[0], "type", "veth", "peer", "name",
	       n->dev[1], "netns", n->ns[1]) != 0)
		goto fail;
	for (int i = 0; i < 2; i++) {
		snprintf(addr, sizeof(addr), "%s/24", n->ip[i]);
		if (IP("-n", n->ns[i], "addr", "add", addr, "dev", n->dev[i]) != 0 ||
		    IP("-n", n->ns[i], "link", "set", "dev", n->dev[i], "up") != 0 ||
		    IP("-n", n->ns[i], "link", "set", "dev", "lo", "up") != 0)
			goto fail;
	}
	return 0;
fail:
	net_ns_destroy(n);
	return -EIO;
}

void net_ns_destroy(struct net_ns *n)
{
	for (int i = 0; i < 2; i++) {
		if (!n->made[i])
			continue;
		ns_kill_pids(n->ns[i]);
		ns_delete(n->ns[i]);
		n->made[i] = false;
	}
}

int net_ns_enter(const struct net_ns *n, int side)
{
	char path[96];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/var/run/netns/%s", n->ns[side]);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		rc = -errno;
	close(fd);
	return rc;
}
