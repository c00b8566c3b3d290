/*
 * zkserver.c - `farm cluster up --zk`: a standalone ZooKeeper for a local
 * cluster, in RUN_DIR/zk (config, data, log), on a free 127.0.0.1 port,
 * started detached and stopped by the pid in RUN_DIR/zk.pid at `down`.
 *
 * Debian's `zookeeper` package ships the server jar without starting it;
 * we run ZooKeeperServerMain under java (PLATFORM-NOTES: ready in about
 * 0.5 s, a `ruok` during start-up can hang: every probe has its own
 * timeout). The data directory is wiped at every start: a local cluster's
 * configurations begin again at 1 with its nodes. Only a process whose
 * command line is ZooKeeperServerMain with *this* RUN_DIR's zoo.cfg is ever
 * signalled.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

#define ZK_JAR	 "/usr/share/java/zookeeper.jar"
#define ZK_SLF4J "/usr/share/java/slf4j-simple.jar"

static long ms_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static int zk_path(char *out, size_t n, const char *run_dir, const char *leaf)
{
	int k = snprintf(out, n, "%s/%s", run_dir, leaf);

	return k < 0 || (size_t)k >= n ? -ENAMETOOLONG : 0;
}

static int free_port(void)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -EIO;

	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 &&
	    getsockname(fd, (struct sockaddr *)&a, &al) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

/* One `ruok` with its own timeout: 0 when the answer is imok. */
static int ruok(int port, int timeout_ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET,
				.sin_port = htons((uint16_t)port),
				.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc = -1;
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	char buf[8];
	size_t got = 0;
	long end = ms_now() + timeout_ms;

	if (fd < 0)
		return -1;
	if ((connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) ||
	    poll(&p, 1, timeout_ms) != 1 || (p.revents & (POLLERR | POLLHUP)) ||
	    send(fd, "ruok", 4, MSG_NOSIGNAL) != 4)
		goto out;
	p.events = POLLIN;
	while (got < 4) {
		long left = end - ms_now();
		if (left <= 0 || poll(&p, 1, (int)left) != 1)
			goto out;
		ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (n <= 0)
			goto out;
		got += (size_t)n;
	}
	rc = memcmp(buf, "imok", 4) ? -1 : 0;
out:
	close(fd);
	return rc;
}

const char *zk_local_unavailable(void)
{
	if (access("/usr/bin/java", X_OK))
		return "no java: install Debian's zookeeper package (scripts/setup.sh does)";
	if (access(ZK_JAR, R_OK) || access(ZK_SLF4J, R_OK))
		return "no " ZK_JAR ": install Debian's zookeeper package (scripts/setup.sh does)";
	return NULL;
}

/* Is pid the ZooKeeper server of this run dir? */
static bool is_our_server(pid_t pid, const char *cfg_path)
{
	char path[64], cmd[4096];
	bool main_class = false, ours = false;
	ssize_t n;
	int fd;

	if (!farm_pid_alive(pid))
		return false;
	snprintf(path, sizeof(path), "/proc/%d/cmdline", (int)pid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = read(fd, cmd, sizeof(cmd) - 1);
	close(fd);
	if (n <= 0)
		return false;
	cmd[n] = 0;
	for (char *s = cmd; s < cmd + n; s += strlen(s) + 1) {
		main_class |= strcmp(s, "org.apache.zookeeper.server.ZooKeeperServerMain") == 0;
		ours |= strcmp(s, cfg_path) == 0;
	}
	return main_class && ours;
}

int zk_local_start(const char *run_dir, char *hosts, size_t hlen, char *err, size_t errlen)
{
	char dir[PATH_MAX], data[PATH_MAX], cfg[PATH_MAX], logp[PATH_MAX], pidp[PATH_MAX],
	    hostp[PATH_MAX], text[PATH_MAX + 512], cmd[PATH_MAX + 32];
	const char *why = zk_local_unavailable();
	int port;
	pid_t pid;

	if (why) {
		snprintf(err, errlen, "%s", why);
		return -ENOENT;
	}
	if (zk_path(dir, sizeof(dir), run_dir, "zk") || zk_path(data, sizeof(data), dir, "data") ||
	    zk_path(cfg, sizeof(cfg), dir, "zoo.cfg") ||
	    zk_path(logp, sizeof(logp), dir, "server.log") ||
	    zk_path(pidp, sizeof(pidp), run_dir, "zk.pid") ||
	    zk_path(hostp, sizeof(hostp), run_dir, "zk.hosts")) {
		snprintf(err, errlen, "run directory path too long");
		return -ENAMETOOLONG;
	}
	pid = farm_pid_read(pidp);
	if (pid && is_our_server(pid, cfg)) {
		snprintf(err, errlen, "a ZooKeeper of this run directory is running (pid %d)",
			 (int)pid);
		return -EEXIST;
	}
	/* A fresh data directory: configurations start again at 1. */
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", data);
	if (strchr(data, '\'') || system(cmd) != 0 || mkdir_p(data, 0700) < 0) {
		snprintf(err, errlen, "cannot prepare %s", data);
		return -EIO;
	}
	for (int attempt = 0; attempt < 3; attempt++) {
		if ((port = free_port()) < 0) {
			snprintf(err, errlen, "no free port: %s", strerror(-port));
			return port;
		}
		snprintf(text, sizeof(text),
			 "tickTime=200\ndataDir=%s\nclientPort=%d\nclientPortAddress=127.0.0.1\n"
			 "admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,mntr,stat\n"
			 "minSessionTimeout=400\nmaxSessionTimeout=4000\nmaxClientCnxns=0\n",
			 data, port);
		if (write_file(cfg, text, 0644) < 0) {
			snprintf(err, errlen, "cannot write %s", cfg);
			return -EIO;
		}
		fflush(NULL);
		pid = fork();
		if (pid < 0) {
			snprintf(err, errlen, "fork: %s", strerror(errno));
			return -errno;
		}
		if (pid == 0) {
			int lf = open(logp, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
			int nul = open("/dev/null", O_RDONLY | O_CLOEXEC);
			setsid();
			if (lf >= 0) {
				dup2(lf, 1);
				dup2(lf, 2);
			}
			if (nul >= 0)
				dup2(nul, 0);
			signal(SIGINT, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			signal(SIGHUP, SIG_DFL);
			execl("/usr/bin/java", "java", "-Xmx256m", "-XX:+UseSerialGC",
			      "-XX:TieredStopAtLevel=1", "-cp", ZK_JAR ":" ZK_SLF4J,
			      "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
			      "org.apache.zookeeper.server.ZooKeeperServerMain", cfg, (char *)NULL);
			_exit(127);
		}
		snprintf(text, sizeof(text), "%d\n", (int)pid);
		write_file(pidp, text, 0644);
		long end = ms_now() + 30000;
		for (;;) {
			int st;
			if (waitpid(pid, &st, WNOHANG) == pid)
				break; /* exited: port taken meanwhile? try another */
			if (ruok(port, 500) == 0) {
				snprintf(hosts, hlen, "127.0.0.1:%d", port);
				snprintf(text, sizeof(text), "%s\n", hosts);
				write_file(hostp, text, 0644);
				return 0;
			}
			if (ms_now() > end) {
				kill(pid, SIGKILL);
				waitpid(pid, &st, 0);
				unlink(pidp);
				snprintf(err, errlen,
					 "ZooKeeper did not answer within 30 s (see %s)", logp);
				return -ETIMEDOUT;
			}
			usleep(50000);
		}
	}
	unlink(pidp);
	snprintf(err, errlen, "ZooKeeper exited at start-up three times (see %s)", logp);
	return -EIO;
}

int zk_local_hosts(const char *run_dir, char *hosts, size_t hlen)
{
	char path[PATH_MAX];
	FILE *f;

	if (zk_path(path, sizeof(path), run_dir, "zk.hosts"))
		return -ENAMETOOLONG;
	f = fopen(path, "r");
	if (!f)
		return -errno;
	if (!fgets(hosts, (int)hlen, f)) {
		fclose(f);
		return -EIO;
	}
	fclose(f);
	hosts[strcspn(hosts, "\n")] = 0;
	return 0;
}

int zk_local_stop(const char *run_dir, int timeout_ms)
{
	char pidp[PATH_MAX], cfg[PATH_MAX], hostp[PATH_MAX], dir[PATH_MAX];
	pid_t pid;
	int killed = 0;

	if (zk_path(pidp, sizeof(pidp), run_dir, "zk.pid") ||
	    zk_path(dir, sizeof(dir), run_dir, "zk") || zk_path(cfg, sizeof(cfg), dir, "zoo.cfg") ||
	    zk_path(hostp, sizeof(hostp), run_dir, "zk.hosts"))
		return -ENAMETOOLONG;
	pid = farm_pid_read(pidp);
	if (!pid)
		return 0;
	if (is_our_server(pid, cfg)) {
		long end = ms_now() + timeout_ms;
		kill(pid, SIGTERM);
		while (is_our_server(pid, cfg) && ms_now() < end)
			usleep(20000);
		if (is_our_server(pid, cfg)) {
			kill(pid, SIGKILL);
			killed = 1;
		}
		waitpid(pid, NULL, WNOHANG); /* ours only if we started it */
	}
	unlink(pidp);
	unlink(hostp);
	return killed;
}
