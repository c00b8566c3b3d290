/*
 * admin.c - the admin socket: RUN_DIR/node-ID.sock, a line protocol with
 * one JSON reply per line (see proto.h).
 *
 * It runs on the node's own thread, because farm.h functions belong to the
 * thread that drives the node; so nothing here may block. admin_poll() is
 * one poll(2) with a zero timeout over the signalfd, the listening socket
 * and the clients, called by the progress loop about once a millisecond and
 * after every idle wait that timed out: the node never stalls for the CLI,
 * and the CLI waits at most a few milliseconds for an answer. Replies that do not fit the
 * socket buffer wait in the client's output buffer for POLLOUT.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include "farmd.h"
#include "proto.h"

static int sock_addr(const char *path, struct sockaddr_un *sa)
{
	memset(sa, 0, sizeof(*sa));
	sa->sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sa->sun_path))
		return -ENAMETOOLONG;
	strcpy(sa->sun_path, path);
	return 0;
}

/* Somebody answers on `path` right now. */
static bool sock_live(const struct sockaddr_un *sa)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	bool live;

	if (fd < 0)
		return false;
	live = connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0;
	close(fd);
	return live;
}

int admin_open(struct farmd *d)
{
	struct sockaddr_un sa;
	mode_t old;
	int fd, rc;

	rc = sock_addr(d->sock_path, &sa);
	if (rc < 0)
		return rc;
	if (sock_live(&sa))
		return -EADDRINUSE;
	unlink(d->sock_path); /* left by a node that died */
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	old = umask(077); /* the admin socket can write any object: owner only */
	rc = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old);
	if (rc < 0 || listen(fd, FARMD_MAX_CLIENTS) < 0) {
		rc = -errno;
		close(fd);
		return rc;
	}
	d->listen_fd = fd;
	for (int i = 0; i < FARMD_MAX_CLIENTS; i++)
		d->clients[i].fd = -1;
	return 0;
}

static void client_close(struct admin_client *c)
{
	if (c->fd < 0)
		return;
	close(c->fd);
	free(c->in);
	sb_free(&c->out);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

static void client_accept(struct farmd *d)
{
	int fd;

	while ((fd = accept4(d->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
		struct admin_client *c = NULL;
		for (int i = 0; i < FARMD_MAX_CLIENTS && !c; i++)
			if (d->clients[i].fd < 0)
				c = &d->clients[i];
		if (!c || !(c->in = malloc(FARM_ADMIN_LINE_MAX))) {
			static const char busy[] =
			    "{\"ok\":false,\"code\":-16,\"error\":\"too many admin clients\"}\n";
			if (send(fd, busy, sizeof(busy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
				/* it will see the close */
			}
			close(fd);
			farmd_log(FARMD_WARN, "admin: refused a client (too many clients)");
			continue;
		}
		c->fd = fd;
		farmd_log(FARMD_DEBUG, "admin: client connected");
	}
}

/* Write what we can of the pending reply; false when the client is gone. */
static bool client_flush(struct admin_client *c)
{
	while (c->out_off < c->out.len) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, c->out.len - c->out_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		c->out_off += (size_t)n;
	}
	c->out.len = c->out_off = 0;
	return true;
}

/* Run every complete line in the input buffer. */
static void client_lines(struct farmd *d, struct admin_client *c)
{
	char *start = c->in, *nl;

	while ((nl = memchr(start, '\n', c->in_len - (size_t)(start - c->in)))) {
		*nl = '\0';
		if (nl > start && nl[-1] == '\r')
			nl[-1] = '\0';
		if (c->in_overflow) {
			c->in_overflow = false; /* the end of the over-long line */
		} else if (*start) {
			farmd_log(FARMD_DEBUG, "admin: %.80s", start);
			cmd_run(d, start, &c->out);
		}
		start = nl + 1;
	}
	c->in_len -= (size_t)(start - c->in);
	memmove(c->in, start, c->in_len);
	if (c->in_len == FARM_ADMIN_LINE_MAX) {
		if (!c->in_overflow)
			cmd_error(&c->out, -E2BIG, "command line longer than %u bytes",
				  FARM_ADMIN_LINE_MAX);
		c->in_overflow = true;
		c->in_len = 0;
	}
}

static void client_io(struct farmd *d, struct admin_client *c, short revents)
{
	bool eof = false;

	if (revents & POLLIN) {
		ssize_t n =
		    recv(c->fd, c->in + c->in_len, FARM_ADMIN_LINE_MAX - c->in_len, MSG_DONTWAIT);
		if (n > 0) {
			c->in_len += (size_t)n;
			client_lines(d, c);
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
			eof = true;
		}
	} else if (revents & (POLLHUP | POLLERR)) {
		eof = true;
	}
	if (c->out.oom) {
		farmd_log(FARMD_ERROR, "admin: out of memory building a reply");
		c->out.len = c->out_off = 0;
		c->out.oom = false;
		cmd_error(&c->out, -ENOMEM, "out of memory building the reply");
	}
	if (eof)
		c->close_after = true; /* but answer a half-closed client first */
	if (!client_flush(c) || (c->close_after && c->out.len == 0)) {
		client_close(c);
		farmd_log(FARMD_DEBUG, "admin: client closed");
	}
}

static void read_signals(struct farmd *d)
{
	struct signalfd_siginfo si;

	while (read(d->sig_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo == SIGTERM || si.ssi_signo == SIGINT || si.ssi_signo == SIGHUP) {
			d->stop = true;
			d->stop_reason = strsignal((int)si.ssi_signo);
			farmd_log(FARMD_INFO, "received %s from pid %u",
				  strsignal((int)si.ssi_signo), si.ssi_pid);
		}
	}
}

void admin_poll(struct farmd *d)
{
	struct pollfd p[2 + FARMD_MAX_CLIENTS];
	struct admin_client *who[2 + FARMD_MAX_CLIENTS];
	nfds_t n = 0;

	p[n++] = (struct pollfd){.fd = d->sig_fd, .events = POLLIN};
	if (d->listen_fd >= 0)
		p[n++] = (struct pollfd){.fd = d->listen_fd, .events = POLLIN};
	for (int i = 0; i < FARMD_MAX_CLIENTS; i++) {
		struct admin_client *c = &d->clients[i];
		if (d->listen_fd < 0 || c->fd < 0)
			continue;
		who[n] = c;
		p[n++] = (struct pollfd){
		    .fd = c->fd,
		    .events = (short)((c->close_after ? 0 : POLLIN) | (c->out.len ? POLLOUT : 0))};
	}
	if (poll(p, n, 0) <= 0)
		return;
	if (p[0].revents)
		read_signals(d);
	for (nfds_t i = 1; i < n; i++) {
		if (!p[i].revents)
			continue;
		if (p[i].fd == d->listen_fd)
			client_accept(d);
		else
			client_io(d, who[i], p[i].revents);
	}
}

void admin_close(struct farmd *d)
{
	if (d->listen_fd < 0)
		return;
	for (int i = 0; i < FARMD_MAX_CLIENTS; i++) {
		client_flush(&d->clients[i]); /* the reply to `stop`, typically */
		client_close(&d->clients[i]);
	}
	close(d->listen_fd);
	d->listen_fd = -1;
	unlink(d->sock_path);
}
