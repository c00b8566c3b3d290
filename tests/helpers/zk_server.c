/*
 * zk_server.c - a standalone ZooKeeper for a test (see zk_server.h).
 *
 * A free port is found by binding port 0 on 127.0.0.1 and closing: another
 * process could take it in between, which shows as a start-up timeout
 * (the server exits), and start() then tries another port, up to 3 times.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "zk.h"
#include "zk_server.h"

#define ZK_JAR	 "/usr/share/java/zookeeper.jar"
#define ZK_SLF4J "/usr/share/java/slf4j-simple.jar"

static struct zk_server *live[8];
static pid_t creator;

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static const char *find_java(void)
{
	static const char *const cands[] = {"/usr/bin/java", "/usr/lib/jvm/default-java/bin/java"};

	for (size_t i = 0; i < sizeof(cands) / sizeof(cands[0]); i++)
		if (access(cands[i], X_OK) == 0)
			return cands[i];
	return NULL;
}

const char *zk_server_unavailable(void)
{
	if (!find_java())
		return "no java (apt-get install zookeeper)";
	if (access(ZK_JAR, R_OK) || access(ZK_SLF4J, R_OK))
		return "no " ZK_JAR " / " ZK_SLF4J " (apt-get install zookeeper)";
	return NULL;
}

static int free_port(const char *addr)
{
	struct sockaddr_in a = {.sin_family = AF_INET};
	socklen_t al = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port;

	if (fd < 0)
		return -errno;
	inet_pton(AF_INET, addr, &a.sin_addr);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) ||
	    getsockname(fd, (struct sockaddr *)&a, &al)) {
		port = -errno;
		close(fd);
		return port;
	}
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

int zk_server_ruok(int port, int timeout_ms)
{
	return zk_server_ruok_at("127.0.0.1", port, timeout_ms);
}

int zk_server_ruok_at(const char *addr, int port, int timeout_ms)
{
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
	uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
	char buf[8];
	size_t got = 0;
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), rc = -ETIMEDOUT;

	if (fd < 0)
		return -errno;
	if (inet_pton(AF_INET, addr, &a.sin_addr) != 1) {
		close(fd);
		return -EINVAL;
	}
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) && errno != EINPROGRESS) {
		rc = -errno;
		goto out;
	}
	struct pollfd p = {.fd = fd, .events = POLLOUT};
	if (poll(&p, 1, timeout_ms) != 1 || (p.revents & (POLLERR | POLLHUP))) {
		rc = -ECONNREFUSED;
		goto out;
	}
	if (send(fd, "ruok", 4, MSG_NOSIGNAL) != 4) {
		rc = -EIO;
		goto out;
	}
	while (got < 4) {
		uint64_t now = now_ms();
		if (now >= deadline)
			goto out;
		p.events = POLLIN;
		if (poll(&p, 1, (int)(deadline - now)) != 1)
			goto out;
		ssize_t n = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (n <= 0) {
			rc = -ECONNRESET;
			goto out;
		}
		got += (size_t)n;
	}
	rc = memcmp(buf, "imok", 4) ? -EPROTO : 0;
out:
	close(fd);
	return rc;
}

static int write_cfg(const struct zk_server *s)
{
	char path[192];
	FILE *f;

	snprintf(path, sizeof(path), "%s/zoo.cfg", s->dir);
	f = fopen(path, "w");
	if (!f)
		return -errno;
	/* Sessions may be 2..20 ticks: clients ask for what they want. */
	fprintf(f,
		"tickTime=%d\ndataDir=%s/data\nclientPort=%d\nclientPortAddress=%s\n"
		"admin.enableServer=false\n4lw.commands.whitelist=ruok,srvr,mntr,stat\n"
		"minSessionTimeout=%d\nmaxSessionTimeout=%d\nmaxClientCnxns=0\n"
		"snapCount=100000\npreAllocSize=1024\n",
		s->tick_ms, s->dir, s->port, s->addr, 2 * s->tick_ms, 20 * s->tick_ms);
	return fclose(f) ? -errno : 0;
}

static void cleanup_at_exit(void)
{
	if (getpid() != creator)
		return;
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i])
			zk_server_destroy(live[i]);
}

static int spawn(struct zk_server *s, int timeout_ms)
{
	const char *java = find_java();
	char cfg[192], logp[192];
	uint64_t deadline;
	pid_t pid;

	if (!java)
		return -ENOENT;
	snprintf(cfg, sizeof(cfg), "%s/zoo.cfg", s->dir);
	snprintf(logp, sizeof(logp), "%s/server.log", s->dir);
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid == 0) {
		int fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0644);
		int nul = open("/dev/null", O_RDONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		if (nul >= 0)
			dup2(nul, 0);
		signal(SIGINT, SIG_DFL);
		signal(SIGTERM, SIG_DFL);
		execl(java, "java", "-Xmx256m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1",
		      "-Xshare:auto", "-cp", ZK_JAR ":" ZK_SLF4J,
		      "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
		      "org.apache.zookeeper.server.ZooKeeperServerMain", cfg, (char *)NULL);
		_exit(127);
	}
	s->pid = pid;
	deadline = now_ms() + (uint64_t)timeout_ms;
	for (;;) {
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			s->pid = 0;
			return -ECHILD; /* exited: port taken, bad config */
		}
		if (zk_server_ruok_at(s->addr, s->port, 500) == 0)
			return 0;
		if (now_ms() >= deadline)
			break;
		usleep(50000);
	}
	zk_server_stop(s);
	return -ETIMEDOUT;
}

int zk_server_start(struct zk_server *s, int tick_ms, int timeout_ms)
{
	return zk_server_start_at(s, "127.0.0.1", tick_ms, timeout_ms);
}

int zk_server_start_at(struct zk_server *s, const char *addr, int tick_ms, int timeout_ms)
{
	int rc = -EIO;

	memset(s, 0, sizeof(*s));
	if (!addr || strlen(addr) >= sizeof(s->addr))
		return -EINVAL;
	strcpy(s->addr, addr);
	s->tick_ms = tick_ms > 0 ? tick_ms : 200;
	snprintf(s->dir, sizeof(s->dir), "/tmp/farm-zk-test-XXXXXX");
	if (!mkdtemp(s->dir))
		return -errno;
	{
		char d[192];
		snprintf(d, sizeof(d), "%s/data", s->dir);
		if (mkdir(d, 0700))
			return -errno;
	}
	if (!creator) {
		creator = getpid();
		atexit(cleanup_at_exit);
	}
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (!live[i]) {
			live[i] = s;
			break;
		}
	for (int attempt = 0; attempt < 3; attempt++) {
		s->port = free_port(s->addr);
		if (s->port < 0)
			return s->port;
		snprintf(s->hosts, sizeof(s->hosts), "%s:%d", s->addr, s->port);
		if ((rc = write_cfg(s)))
			return rc;
		rc = spawn(s, timeout_ms);
		if (rc == 0)
			return 0;
	}
	return rc;
}

void zk_server_stop(struct zk_server *s)
{
	int st;

	if (!s || s->pid <= 0)
		return;
	kill(s->pid, SIGKILL);
	waitpid(s->pid, &st, 0);
	s->pid = 0;
}

int zk_server_restart(struct zk_server *s, int timeout_ms)
{
	zk_server_stop(s);
	return spawn(s, timeout_ms);
}

void zk_server_destroy(struct zk_server *s)
{
	char cmd[256];

	if (!s)
		return;
	zk_server_stop(s);
	for (size_t i = 0; i < sizeof(live) / sizeof(live[0]); i++)
		if (live[i] == s)
			live[i] = NULL;
	if (!strncmp(s->dir, "/tmp/farm-zk-test-", 18) && !strchr(s->dir, '\'')) {
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", s->dir);
		if (system(cmd) != 0) {
			/* nothing more to do: a leftover temp dir */
		}
	}
	s->dir[0] = 0;
}

int zk_server_setup(struct zk_server *s, const char **skip)
{
	int rc;

	*skip = NULL;
	if (!farm_zk_available()) {
		*skip = "libfarm built without libzookeeper-mt";
		return 0;
	}
	if ((*skip = zk_server_unavailable()))
		return 0;
	if ((rc = zk_server_start(s, 200, 30000))) {
		fprintf(stderr, "zk server start: %s\n", strerror(-rc));
		return -1;
	}
	printf("# zookeeper on %s (pid %d, dir %s)\n", s->hosts, (int)s->pid, s->dir);
	return 0;
}
