/*
 * netns.c - test namespaces joined by veth; see netns.h. Shells out to ip(8)
 * for configuration (one line each, easy to read and to replay by hand) and
 * uses setns() for running code inside.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "netns.h"

#define NS_PREFIX "unt-"
#define MAX_REG 16

/* Namespaces this process created and has not deleted yet. Written only
 * outside signal handlers; the handler reads it. */
static char reg[MAX_REG][32];
static volatile sig_atomic_t reg_n;
static pid_t creator;
static unsigned next_subnet;
static char ip_path[64];

static const char *ip_bin(void)
{
	static const char *cands[] = {"/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"};

	if (!ip_path[0])
		for (unsigned i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
			if (access(cands[i], X_OK) == 0) {
				strcpy(ip_path, cands[i]);
				break;
			}
	return ip_path[0] ? ip_path : NULL;
}

/* fork + execv with output to /dev/null: async-signal-safe enough for the
 * clean-up path. Returns the exit status or -1. */
static int run_argv(char *const argv[])
{
	pid_t pid = fork();
	int st;

	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void ns_delete(const char *name)
{
	char *argv[] = {(char *)ip_path, "netns", "del", (char *)name, NULL};

	if (ip_path[0])
		run_argv(argv);
}

static void reg_cleanup(void)
{
	if (getpid() != creator)
		return;
	while (reg_n > 0) {
		ns_delete(reg[reg_n - 1]);
		reg_n = reg_n - 1;
	}
}

static void on_signal(int sig)
{
	reg_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

static void reg_add(const char *name)
{
	if (!creator) {
		creator = getpid();
		atexit(reg_cleanup);
		int sigs[] = {SIGTERM, SIGINT, SIGHUP, SIGALRM, SIGABRT};
		for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], on_signal);
	}
	if (reg_n < MAX_REG) {
		strcpy(reg[reg_n], name);
		reg_n = reg_n + 1;
	}
}

static void reg_del(const char *name)
{
	for (int i = 0; i < reg_n; i++)
		if (strcmp(reg[i], name) == 0) {
			if (i != reg_n - 1)
				memcpy(reg[i], reg[reg_n - 1], sizeof(reg[i]));
			reg_n = reg_n - 1;
			return;
		}
}

static int pid_alive(long pid)
{
	char path[64], buf[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
	f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *rp = strrchr(buf, ')');
	return rp && rp[1] == ' ' && rp[2] != 'Z' && rp[2] != 'X';
}

/* Remove "unt-PID-..." namespaces whose creator is dead (a run killed -9). */
static void sweep_stale(void)
{
	DIR *d = opendir("/var/run/netns");
	struct dirent *e;

	if (!d)
		return;
	while ((e = readdir(d)) != NULL) {
		long pid;
		if (strncmp(e->d_name, NS_PREFIX, strlen(NS_PREFIX)) != 0)
			continue;
		pid = strtol(e->d_name + strlen(NS_PREFIX), NULL, 10);
		if (pid > 0 && pid != getpid() && !pid_alive(pid))
			ns_delete(e->d_name);
	}
	closedir(d);
}

int netns_sh(const char *ns, char *out, size_t outlen, const char *fmt, ...)
{
	char cmd[1024], full[1200];
	va_list ap;
	int pfd[2], st;
	size_t got = 0;
	pid_t pid;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	if (ns)
		snprintf(full, sizeof(full), "exec %s netns exec %s sh -c '%s'", ip_bin() ? ip_bin() : "ip",
			 ns, cmd);
	else
		snprintf(full, sizeof(full), "%s", cmd);
	if (pipe(pfd) < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open("/dev/null", O_RDWR);
		dup2(pfd[1], 1);
		if (fd >= 0) {
			dup2(fd, 0);
			dup2(fd, 2);
		}
		close(pfd[0]);
		execl("/bin/sh", "sh", "-c", full, (char *)NULL);
		_exit(127);
	}
	close(pfd[1]);
	for (;;) {
		char sink[512];
		char *dst = out && got + 1 < outlen ? out + got : sink;
		size_t room = out && got + 1 < outlen ? outlen - 1 - got : sizeof(sink);
		ssize_t n = read(pfd[0], dst, room);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (dst != sink)
			got += (size_t)n;
	}
	close(pfd[0]);
	if (out && outlen)
		out[got] = 0;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

const char *netns_unavailable(void)
{
	static char why[160];
	static int checked;

	if (checked)
		return why[0] ? why : NULL;
	checked = 1;
	if (geteuid() != 0)
		snprintf(why, sizeof(why), "needs root (network namespaces, veth)");
	else if (!ip_bin())
		snprintf(why, sizeof(why), "ip(8) not found (install iproute2)");
	else if (access("/proc/self/ns/net", R_OK) != 0)
		snprintf(why, sizeof(why), "no network namespace support in this kernel");
	else {
		char name[32];
		snprintf(name, sizeof(name), NS_PREFIX "%d-probe", (int)getpid());
		reg_add(name);
		int rc = netns_sh(NULL, NULL, 0, "%s netns add %s", ip_bin(), name);
		if (rc == 0)
			rc = netns_sh(NULL, NULL, 0,
				      "%s -n %s link add p0 type veth peer name p1", ip_bin(), name);
		else
			snprintf(why, sizeof(why), "cannot create a network namespace");
		if (rc != 0 && !why[0])
			snprintf(why, sizeof(why), "cannot create a veth pair");
		ns_delete(name);
		reg_del(name);
	}
	return why[0] ? why : NULL;
}

int netns_pair_create(struct netns_pair *p, const struct netns_opts *o)
{
	static unsigned serial;
	char q[64] = "";
	const char *ip = ip_bin();
	int rc;

	memset(p, 0, sizeof(*p));
	if (!ip)
		return -ENOENT;
	sweep_stale();
	serial++;
	p->subnet = ++next_subnet % 250 + 1;
	for (int i = 0; i < 2; i++) {
		snprintf(p->ns[i], sizeof(p->ns[i]), NS_PREFIX "%d-%u%c", (int)getpid(), serial,
			 'a' + i);
		snprintf(p->dev[i], sizeof(p->dev[i]), "ut%dx%u%c", (int)getpid() % 1000000, serial,
			 'a' + i);
		snprintf(p->ip[i], sizeof(p->ip[i]), "10.77.%u.%d", p->subnet, i + 1);
	}
	if (o && o->queues > 1)
		snprintf(q, sizeof(q), "numtxqueues %u numrxqueues %u", o->queues, o->queues);
	for (int i = 0; i < 2; i++) {
		reg_add(p->ns[i]);
		rc = netns_sh(NULL, NULL, 0, "%s netns add %s", ip, p->ns[i]);
		if (rc != 0)
			goto fail;
	}
	rc = netns_sh(NULL, NULL, 0, "%s link add %s netns %s %s type veth peer name %s netns %s %s",
		      ip, p->dev[0], p->ns[0], q, p->dev[1], p->ns[1], q);
	if (rc != 0)
		goto fail;
	for (int i = 0; i < 2; i++) {
		rc = netns_sh(NULL, NULL, 0, "%s -n %s addr add %s/24 dev %s", ip, p->ns[i], p->ip[i],
			      p->dev[i]);
		if (rc == 0 && o && o->mtu)
			rc = netns_sh(NULL, NULL, 0, "%s -n %s link set dev %s mtu %u", ip,
				      p->ns[i], p->dev[i], o->mtu);
		if (rc == 0)
			rc = netns_sh(NULL, NULL, 0, "%s -n %s link set dev %s up", ip, p->ns[i],
				      p->dev[i]);
		if (rc == 0)
			rc = netns_sh(NULL, NULL, 0, "%s -n %s link set dev lo up", ip, p->ns[i]);
		if (rc != 0)
			goto fail;
	}
	return 0;
fail:
	netns_pair_destroy(p);
	return rc < 0 ? rc : -EIO;
}

/* Kill what still runs inside `ns`: only this test's children can be there. */
static void ns_kill_pids(const char *ns)
{
	char out[512];

	if (netns_sh(NULL, out, sizeof(out), "%s netns pids %s", ip_bin(), ns) != 0)
		return;
	for (char *s = out, *t; (t = strtok(s, " \n")) != NULL; s = NULL) {
		long pid = strtol(t, NULL, 10);
		if (pid > 1 && pid != getpid())
			kill((pid_t)pid, SIGKILL);
	}
}

void netns_pair_destroy(struct netns_pair *p)
{
	for (int i = 0; i < 2; i++) {
		if (!p->ns[i][0])
			continue;
		ns_kill_pids(p->ns[i]);
		ns_delete(p->ns[i]);
		reg_del(p->ns[i]);
		p->ns[i][0] = 0;
	}
}

int netns_enter(const char *ns)
{
	char path[128];
	int fd, rc = 0;

	snprintf(path, sizeof(path), "/var/run/netns/%s", ns);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (setns(fd, CLONE_NEWNET) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

pid_t netns_fork(const char *ns, int (*fn)(void *), void *arg)
{
	pid_t pid = fork();

	if (pid < 0)
		return -errno;
	if (pid == 0) {
		if (netns_enter(ns) < 0)
			_exit(127);
		_exit(fn(arg) & 0xff);
	}
	return pid;
}

int netns_run(const char *ns, int (*fn)(void *), void *arg, int timeout_ms)
{
	pid_t pid = netns_fork(ns, fn, arg);
	struct timespec start, now;
	int st;

	if (pid < 0)
		return pid;
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0 && errno != EINTR)
			return -errno;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000 >
		    timeout_ms) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			return -ETIMEDOUT;
		}
		poll(NULL, 0, 2);
	}
}
