/*
 * spawn.c - start one farmd, detached: its own session (a ^C to the CLI or
 * the CLI's exit does not reach it), stdin from /dev/null, stdout and
 * stderr appended to RUN_DIR/node-N.log, no inherited descriptors, and
 * inside its network namespace when it has one (setns in the child, before
 * exec, so farmd itself needs no privilege to get there).
 *
 * farmd is looked for next to this executable first (the build puts both
 * in one directory), then $FARMD, then $PATH. A failed setns or exec is
 * reported back through a close-on-exec pipe, so the caller gets the reason
 * instead of a child that merely vanished.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "farm_cli.h"

static void farmd_path(char *out, size_t len)
{
	char self[PATH_MAX - 16];
	const char *env = getenv("FARMD");
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (env && env[0]) {
		snprintf(out, len, "%s", env);
		return;
	}
	if (n > 0) {
		self[n] = '\0';
		char *slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			snprintf(out, len, "%s/farmd", self);
			if (access(out, X_OK) == 0)
				return;
		}
	}
	snprintf(out, len, "farmd");
}

struct child_err {
	int err;
	char what[8]; /* "setns" or "exec" */
};

pid_t spawn_farmd(const struct spawn *s, char *err, size_t errlen)
{
	char bin[PATH_MAX], id[16], timeout[16];
	char *argv[] = {"farmd",
			"--config",
			(char *)s->conf,
			"--id",
			id,
			"--timeout",
			timeout,
			"--log-level",
			(char *)(s->log_level ? s->log_level : "info"),
			NULL, NULL, NULL, NULL, NULL};
	struct child_err ce;
	int pfd[2], status;
	ssize_t n;
	pid_t pid;

	{
		int k = 9; /* after the fixed arguments */
		if (s->zk) {
			argv[k++] = "--zk";
			argv[k++] = (char *)s->zk;
		}
		if (s->lease_ms) {
			argv[k++] = "--lease-ms";
			argv[k++] = (char *)s->lease_ms;
		}
	}
	farmd_path(bin, sizeof(bin));
	snprintf(id, sizeof(id), "%u", s->id);
	snprintf(timeout, sizeof(timeout), "%d", s->timeout_ms);
	if (pipe2(pfd, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	fflush(NULL);
	pid = fork();
	if (pid < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(pfd[0]);
		close(pfd[1]);
		return -1;
	}
	if (pid == 0) {
		int null = open("/dev/null", O_RDONLY);
		int log =
		    open(s->log, O_WRONLY | O_CREAT | O_APPEND | (s->keep_log ? 0 : O_TRUNC), 0644);
		ce = (struct child_err){.what = "log"};
		if (null < 0 || log < 0)
			goto child_fail;
		setsid();
		strcpy(ce.what, "setns");
		if (s->netns && s->netns[0] && (ce.err = -netns_enter(s->netns)) != 0)
			goto child_fail_err;
		dup2(null, STDIN_FILENO);
		dup2(log, STDOUT_FILENO);
		dup2(log, STDERR_FILENO);
		if (pfd[1] <= STDERR_FILENO)
			_exit(127); /* cannot happen: 0..2 are open in the CLI */
		close_range(3, ~0u, CLOSE_RANGE_CLOEXEC); /* keep pfd[1] until exec */
		strcpy(ce.what, "exec");
		if (strchr(bin, '/'))
			execv(bin, argv);
		else
			execvp(bin, argv);
	child_fail:
		ce.err = errno;
	child_fail_err:
		if (write(pfd[1], &ce, sizeof(ce)) < 0) {
			/* the parent sees the exit */
		}
		_exit(127);
	}
	close(pfd[1]);
	do
		n = read(pfd[0], &ce, sizeof(ce));
	while (n < 0 && errno == EINTR);
	close(pfd[0]);
	if (n == (ssize_t)sizeof(ce)) {
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (strcmp(ce.what, "exec") == 0)
			snprintf(err, errlen,
				 "cannot run %s: %s (build it, or set FARMD=/path/to/farmd)", bin,
				 strerror(ce.err));
		else if (strcmp(ce.what, "setns") == 0)
			snprintf(err, errlen, "cannot enter network namespace %s: %s", s->netns,
				 strerror(ce.err));
		else
			snprintf(err, errlen, "cannot open %s: %s", s->log, strerror(ce.err));
		return -1;
	}
	return pid;
}
