/*
 * rundir.c - where a cluster lives on this host: RUN_DIR holds farm.conf,
 * and per node the admin socket, the pid file and the log.
 *
 * RUN_DIR is --dir when given, else derived from --name (default
 * "default"): /run/farm/NAME for root, $XDG_RUNTIME_DIR/farm/NAME or
 * /tmp/farm-UID/NAME otherwise. Paths are made absolute because they are
 * written into farm.conf and into farmd's command line, which `down`
 * matches to tell our processes from others.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "../farmd/proto.h"
#include "farm_cli.h"

int mkdir_p(const char *dir, mode_t mode)
{
	char p[PATH_MAX];

	if (strlen(dir) >= sizeof(p))
		return -ENAMETOOLONG;
	strcpy(p, dir);
	for (char *s = p + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(p, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(p, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int rundir_resolve(struct cli *c)
{
	const char *name = c->name ? c->name : "default";
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char cwd[PATH_MAX];
	int n;

	if (c->dir && c->dir[0] == '/') {
		n = snprintf(c->run_dir, sizeof(c->run_dir), "%s", c->dir);
	} else if (c->dir) {
		if (!getcwd(cwd, sizeof(cwd)))
			return -errno;
		n = snprintf(c->run_dir, sizeof(c->run_dir), "%s/%s", cwd, c->dir);
	} else if (geteuid() == 0) {
		n = snprintf(c->run_dir, sizeof(c->run_dir), "/run/farm/%s", name);
	} else if (xdg && xdg[0] == '/') {
		n = snprintf(c->run_dir, sizeof(c->run_dir), "%s/farm/%s", xdg, name);
	} else {
		n = snprintf(c->run_dir, sizeof(c->run_dir), "/tmp/farm-%u/%s", (unsigned)getuid(),
			     name);
	}
	if (n < 0 || (size_t)n >= sizeof(c->run_dir) - 32)
		return -ENAMETOOLONG;
	while (n > 1 && c->run_dir[n - 1] == '/')
		c->run_dir[--n] = '\0';
	snprintf(c->conf_path, sizeof(c->conf_path), "%s/farm.conf", c->run_dir);
	return 0;
}

int cluster_load(const struct cli *c, struct farm_config *cfg)
{
	char err[512] = "";
	int rc;

	if (access(c->conf_path, F_OK) < 0)
		return fail(c, "no cluster in %s (no farm.conf; start one with: farm cluster up)",
			    c->run_dir);
	rc = farm_config_load(c->conf_path, cfg, err, sizeof(err));
	if (rc < 0)
		return fail(c, "%s", err[0] ? err : farm_strerror(rc)); /* err names the file */
	return 0;
}

pid_t node_pid(const struct cli *c, uint32_t id)
{
	char path[PATH_MAX];
	pid_t pid;

	if (farm_path_pid(path, sizeof(path), c->run_dir, id) < 0)
		return 0;
	pid = farm_pid_read(path);
	return pid && farm_pid_is_node(pid, c->conf_path) ? pid : 0;
}

int write_file(const char *path, const char *text, mode_t mode)
{
	char tmp[PATH_MAX + 16];
	size_t len = strlen(text);
	int fd;

	snprintf(tmp, sizeof(tmp), "%s.tmp%d", path, (int)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -errno;
	if (write(fd, text, len) != (ssize_t)len || close(fd) < 0 || rename(tmp, path) < 0) {
		int rc = errno ? -errno : -EIO;
		unlink(tmp);
		return rc;
	}
	return 0;
}

void print_tail(const char *path, int lines)
{
	char buf[8192], *start;
	FILE *f = fopen(path, "re");
	long size;
	size_t n;
	int seen = 0;

	if (!f) {
		fprintf(stderr, "  (no log at %s)\n", path);
		return;
	}
	fseek(f, 0, SEEK_END);
	size = ftell(f);
	fseek(f, size > (long)sizeof(buf) - 1 ? size - (long)sizeof(buf) + 1 : 0, SEEK_SET);
	n = fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n] = '\0';
	if (n && buf[n - 1] == '\n')
		buf[--n] = '\0';
	start = buf + n;
	while (start > buf && seen < lines) {
		start--;
		if (*start == '\n' && ++seen == lines) {
			start++;
			break;
		}
	}
	fprintf(stderr, "  --- last lines of %s ---\n", path);
	for (char *l = strtok(start, "\n"); l; l = strtok(NULL, "\n"))
		fprintf(stderr, "  | %s\n", l);
}

/* RUN_DIR/farmd.opts: the farmd options `up` gave every node beyond
 * --config and --id, one key=value a line, so that `restart` starts a node
 * again exactly so. The ZooKeeper address is not in it: RUN_DIR/zk.hosts
 * names the server that runs now. */
int node_opts_write(const char *run_dir, const struct node_opts *o)
{
	char path[PATH_MAX], text[256];

	if (snprintf(path, sizeof(path), "%s/farmd.opts", run_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	snprintf(text, sizeof(text),
		 "# farmd options of every node (farm cluster up; farm cluster restart reads "
		 "them)\ntimeout=%d\nlog-level=%s\nzk=%s\nlease-ms=%s\n",
		 o->timeout_ms, o->log_level[0] ? o->log_level : "info", o->zk ? "yes" : "no",
		 o->lease_ms);
	return write_file(path, text, 0644);
}

int node_opts_read(const char *run_dir, struct node_opts *o)
{
	char path[PATH_MAX], line[128];
	FILE *f;

	memset(o, 0, sizeof(*o));
	if (snprintf(path, sizeof(path), "%s/farmd.opts", run_dir) >= (int)sizeof(path))
		return -ENAMETOOLONG;
	f = fopen(path, "re");
	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f)) {
		char *v = strchr(line, '=');
		if (line[0] == '#' || !v)
			continue;
		*v++ = '\0';
		v[strcspn(v, "\n")] = '\0';
		if (strcmp(line, "timeout") == 0)
			o->timeout_ms = atoi(v);
		else if (strcmp(line, "log-level") == 0)
			snprintf(o->log_level, sizeof(o->log_level), "%s", v);
		else if (strcmp(line, "zk") == 0)
			o->zk = strcmp(v, "yes") == 0;
		else if (strcmp(line, "lease-ms") == 0)
			snprintf(o->lease_ms, sizeof(o->lease_ms), "%s", v);
	}
	fclose(f);
	return o->timeout_ms > 0 ? 0 : -EINVAL;
}
