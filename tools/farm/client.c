/*
 * client.c - the CLI side of the admin socket: connect, send one line,
 * read one reply line, all under one deadline (a node that is busy or
 * wedged must make the CLI fail, not hang).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

static int wait_fd(int fd, short ev, long deadline)
{
	struct pollfd p = {.fd = fd, .events = ev};
	long left;
	int n;

	for (;;) {
		left = deadline - now_ms();
		if (left <= 0)
			return -ETIMEDOUT;
		n = poll(&p, 1, (int)left);
		if (n > 0)
			return 0;
		if (n == 0)
			return -ETIMEDOUT;
		if (errno != EINTR)
			return -errno;
	}
}

int admin_call(const char *run_dir, uint32_t id, const char *line, int timeout_ms, char **reply)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	long deadline = now_ms() + timeout_ms;
	size_t len = strlen(line), off = 0, cap = 4096, got = 0;
	char *buf = NULL, *nl;
	int fd, rc;

	*reply = NULL;
	if (farm_path_sock(sa.sun_path, sizeof(sa.sun_path), run_dir, id) < 0)
		return -ENAMETOOLONG;
	if (access(sa.sun_path, F_OK) < 0)
		return -ENOENT;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		rc = -errno;
		if (rc != -EAGAIN && rc != -EINPROGRESS)
			goto out;
		if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0)
			goto out;
	}
	while (off <= len) {
		/* the line, then its newline */
		const char *p = off < len ? line + off : "\n";
		size_t n = off < len ? len - off : 1;
		ssize_t k = send(fd, p, n, MSG_NOSIGNAL);
		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((rc = wait_fd(fd, POLLOUT, deadline)) < 0)
				goto out;
			continue;
		}
		if (k < 0) {
			rc = -errno;
			goto out;
		}
		off += (size_t)k;
	}
	buf = malloc(cap);
	for (;;) {
		ssize_t k;
		if (!buf) {
			rc = -ENOMEM;
			goto out;
		}
		if (got + 1 == cap) {
			char *q = realloc(buf, cap *= 2);
			if (!q) {
				rc = -ENOMEM;
				goto out;
			}
			buf = q;
		}
		k = recv(fd, buf + got, cap - got - 1, 0);
		if (k < 0 && (errno == EAGAIN || errno == EINTR)) {
			if ((rc = wait_fd(fd, POLLIN, deadline)) < 0)
				goto out;
			continue;
		}
		if (k <= 0) {
			rc = k == 0 ? -ECONNRESET : -errno;
			goto out;
		}
		got += (size_t)k;
		buf[got] = '\0';
		if ((nl = strchr(buf + got - (size_t)k, '\n'))) {
			*nl = '\0';
			*reply = buf;
			buf = NULL;
			rc = 0;
			goto out;
		}
	}
out:
	free(buf);
	close(fd);
	return rc;
}

int admin_query(const char *run_dir, uint32_t id, const char *line, int timeout_ms, char **raw,
		struct json **j, char *err, size_t errlen)
{
	char *reply;
	int rc = admin_call(run_dir, id, line, timeout_ms, &reply);

	*j = NULL;
	if (raw)
		*raw = NULL;
	if (rc == -ENOENT || rc == -ECONNREFUSED) {
		snprintf(err, errlen, "node %u is not running (no one answers on %s/node-%u.sock)",
			 id, run_dir, id);
		return rc;
	}
	if (rc == -ETIMEDOUT) {
		snprintf(err, errlen, "node %u did not answer within %d ms", id, timeout_ms);
		return rc;
	}
	if (rc < 0) {
		snprintf(err, errlen, "node %u: %s", id, strerror(-rc));
		return rc;
	}
	*j = json_parse(reply);
	if (!*j || (*j)->type != JSON_OBJECT) {
		snprintf(err, errlen, "node %u sent a reply that is not JSON: %.100s", id, reply);
		json_free(*j);
		*j = NULL;
		free(reply);
		return -EPROTO;
	}
	if (raw)
		*raw = reply;
	else
		free(reply);
	if (!json_true(*j, "ok")) {
		const char *e = json_str(*j, "error");
		snprintf(err, errlen, "%s", e ? e : "failed");
		rc = (int)json_num(*j, "code");
		return rc < 0 ? rc : -EIO;
	}
	return 0;
}
