/*
 * netns.c - a cluster's private network: each node in its own network
 * namespace farm-CLUSTER-N, joined by a veth pair to a bridge that lives in
 * a namespace of the cluster's own, farm-CLUSTER-br. Addresses 10.99.0.N/24
 * exist only inside those namespaces, and no link is ever created in the
 * host's namespace (veths are created directly in the bridge namespace with
 * their peer in the node's), so nothing the cluster does is visible to, or
 * can collide with, the host's network. Removing the namespaces removes
 * every veth and the bridge with them.
 *
 * The plumbing runs iproute2's `ip`, one command at a time, rather than
 * netlink by hand: it is set-up, not a data path, and a failing command
 * prints exactly what was refused.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "farm_cli.h"

#define NETNS_DIR "/run/netns"
#define MAX_ARGS  24

void netns_name(char *out, size_t len, const char *cluster, uint32_t id)
{
	if (id == 0)
		snprintf(out, len, "farm-%s-br", cluster);
	else
		snprintf(out, len, "farm-%s-%u", cluster, id);
}

/* Run `ip ARGS` (ARGS space-separated, no quoting needed: every name here
 * is [A-Za-z0-9_-]); on failure, the command and its stderr go to err. */
static int ip(char *err, size_t errlen, const char *fmt, ...)
{
	char cmd[512], out[512];
	char *argv[MAX_ARGS];
	int argc = 0, pfd[2], status;
	ssize_t n = 0, k;
	va_list ap;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char copy[sizeof(cmd)];
	strcpy(copy, cmd);
	argv[argc++] = "ip";
	for (char *s = strtok(copy, " "); s && argc < MAX_ARGS - 1; s = strtok(NULL, " "))
		argv[argc++] = s;
	argv[argc] = NULL;
	if (pipe2(pfd, O_CLOEXEC) < 0)
		return -errno;
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		close(pfd[0]);
		close(pfd[1]);
		return -errno;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, STDIN_FILENO);
		dup2(null, STDOUT_FILENO);
		dup2(pfd[1], STDERR_FILENO);
		execvp("ip", argv);
		fprintf(stderr, "cannot run ip (iproute2): %s", strerror(errno));
		_exit(127);
	}
	close(pfd[1]);
	while (n < (ssize_t)sizeof(out) - 1 &&
	       (k = read(pfd[0], out + n, sizeof(out) - 1 - (size_t)n)) > 0)
		n += k;
	close(pfd[0]);
	out[n] = '\0';
	while (n > 0 && out[n - 1] == '\n')
		out[--n] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	snprintf(err, errlen, "`ip %s` failed: %s", cmd, out[0] ? out : "no message");
	return -EIO;
}

int netns_up(const struct cli *c, const char *cluster, uint32_t n, char *err, size_t errlen)
{
	char br[96], ns[96];
	int rc;

	netns_name(br, sizeof(br), cluster, 0);
	if (netns_down(cluster) > 0)
		progress(c, "removed stale namespaces of cluster %s", cluster);
	progress(c, "creating namespace %s with bridge br0", br);
	rc = ip(err, errlen, "netns add %s", br);
	if (rc == 0)
		rc = ip(err, errlen, "-n %s link add br0 type bridge", br);
	if (rc == 0)
		rc = ip(err, errlen, "-n %s link set br0 up", br);
	for (uint32_t i = 1; i <= n && rc == 0; i++) {
		netns_name(ns, sizeof(ns), cluster, i);
		progress(c, "creating namespace %s: eth0 10.99.0.%u/24, veth v%u on the bridge", ns,
			 i, i);
		rc = ip(err, errlen, "netns add %s", ns);
		if (rc == 0)
			rc = ip(err, errlen, "-n %s link add v%u type veth peer name eth0 netns %s",
				br, i, ns);
		if (rc == 0)
			rc = ip(err, errlen, "-n %s link set v%u master br0 up", br, i);
		if (rc == 0)
			rc = ip(err, errlen, "-n %s addr add 10.99.0.%u/24 dev eth0", ns, i);
		if (rc == 0)
			rc = ip(err, errlen, "-n %s link set eth0 up", ns);
		if (rc == 0)
			rc = ip(err, errlen, "-n %s link set lo up", ns);
	}
	if (rc < 0)
		netns_down(cluster);
	return rc;
}

/* farm-CLUSTER-<digits> or farm-CLUSTER-br */
static bool ours(const char *name, const char *cluster)
{
	size_t n = strlen(cluster);
	const char *s;

	if (strncmp(name, "farm-", 5) != 0 || strncmp(name + 5, cluster, n) != 0 ||
	    name[5 + n] != '-')
		return false;
	s = name + 6 + n;
	if (strcmp(s, "br") == 0)
		return true;
	return *s && strspn(s, "0123456789") == strlen(s);
}

int netns_down(const char *cluster)
{
	char err[256];
	DIR *d = opendir(NETNS_DIR);
	struct dirent *e;
	char names[FARM_MAX_MEMBERS + 8][256];
	int n = 0, removed = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) && n < (int)(sizeof(names) / sizeof(names[0])))
		if (ours(e->d_name, cluster))
			snprintf(names[n++], sizeof(names[0]), "%s", e->d_name);
	closedir(d);
	for (int i = 0; i < n; i++) {
		if (ip(err, sizeof(err), "netns del %s", names[i]) == 0)
			removed++;
		else
			fprintf(stderr, "farm: %s\n", err);
	}
	return removed;
}

int netns_enter(const char *name)
{
	char path[256];
	int fd, rc = 0;

	snprintf(path, sizeof(path), NETNS_DIR "/%s", name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		rc = -errno;
	close(fd);
	return rc;
}
