/*
 * farm_cluster.c - see farm_cluster.h.
 */
#include "helpers/farm_cluster.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <unistd.h>
#include <sys/wait.h>

#include "helpers/netns.h"
#include "helpers/proc.h"

void fc_config(struct farm_config *cfg, int n, const char *tag, uint64_t region_size,
	       uint32_t regions, uint32_t replicas)
{
	farm_config_defaults(cfg);
	snprintf(cfg->cluster, sizeof(cfg->cluster), "%s", tag);
	cfg->region_size = region_size;
	cfg->regions = regions;
	cfg->replicas = replicas;
	cfg->nmembers = (uint32_t)n;
	for (int i = 0; i < n; i++) {
		cfg->members[i].id = (uint32_t)(i + 1);
		proc_name(cfg->members[i].addr, sizeof(cfg->members[i].addr), tag);
	}
	snprintf(cfg->run_dir, sizeof(cfg->run_dir), "/tmp/%s", tag);
}

void fc_serve(struct farm *f, int ms, const uint32_t *stop)
{
	uint64_t end = proc_now_ms() + (uint64_t)ms;

	while (proc_now_ms() < end && !(stop && __atomic_load_n(stop, __ATOMIC_ACQUIRE)))
		if (farm_poll(f) == 0)
			farm_idle(f, 5);
}

int fc_barrier(struct farm *f, struct fc_shared *sh, int id, int n, int timeout_ms)
{
	uint64_t end = proc_now_ms() + (uint64_t)timeout_ms;

	__atomic_add_fetch(&sh->barrier[id], 1, __ATOMIC_ACQ_REL);
	while (__atomic_load_n(&sh->barrier[id], __ATOMIC_ACQUIRE) < (uint32_t)n) {
		if (proc_now_ms() >= end)
			return -ETIMEDOUT;
		if (farm_poll(f) == 0)
			farm_idle(f, 2);
	}
	return 0;
}

struct child {
	const struct farm_config *cfg;
	fc_node_fn fn;
	void *arg;
	struct fc_shared *sh;
	int idx, start_ms, run_ms;
};

static int child_main(void *p)
{
	struct child *c = p;
	struct fc_shared *sh = c->sh;
	struct farm *f;
	uint64_t t0 = proc_now_ms();
	int rc;

	/* cmocka's handlers (inherited from the parent) would turn a crash in
	 * a node into a confusing "test failed" from the child: crash plainly
	 * (exit code 128+signal, a core file when enabled). */
	for (int sig = 1; sig < 32; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			signal(sig, SIG_DFL);
	if (c->cfg->members[c->idx].netns[0] &&
	    (rc = netns_enter(c->cfg->members[c->idx].netns)) < 0) {
		snprintf(sh->err[c->idx], sizeof(sh->err[c->idx]), "entering netns %s: %s",
			 c->cfg->members[c->idx].netns, strerror(-rc));
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		return 101;
	}
	rc = farm_node_start_err(c->cfg, c->cfg->members[c->idx].id, c->start_ms, &f,
				 sh->err[c->idx], sizeof(sh->err[c->idx]));
	sh->start_ms[c->idx] = proc_now_ms() - t0;
	sh->start_rc[c->idx] = rc;
	if (rc) {
		__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
		return 100;
	}
	rc = c->fn ? c->fn(f, c->idx, sh, c->arg) : 0;
	sh->result[c->idx] = rc;
	/* Serve the others until every node is through its function. */
	__atomic_add_fetch(&sh->done, 1, __ATOMIC_ACQ_REL);
	uint64_t end = proc_now_ms() + (uint64_t)c->run_ms;
	while (__atomic_load_n(&sh->done, __ATOMIC_ACQUIRE) < c->cfg->nmembers &&
	       proc_now_ms() < end)
		if (farm_poll(f) == 0)
			farm_idle(f, 2);
	farm_node_stop(f);
	return rc;
}

int fc_run(const struct farm_config *cfg, fc_node_fn fn, void *arg, struct fc_shared *sh,
	   int start_ms, int run_ms)
{
	struct fc_shared *mine = NULL;
	struct child c[FC_MAX];
	pid_t pid[FC_MAX];
	int n = (int)cfg->nmembers, first = 0;

	if (n > FC_MAX)
		return -EINVAL;
	if (!sh)
		sh = mine = proc_shared(sizeof(*sh));
	for (int i = 0; i < n; i++) {
		c[i] = (struct child){cfg, fn, arg, sh, i, start_ms, run_ms};
		pid[i] = proc_fork(child_main, &c[i]);
	}
	uint64_t deadline = proc_now_ms() + (uint64_t)(start_ms + run_ms + 5000);
	for (int i = 0; i < n; i++) {
		uint64_t now = proc_now_ms();
		int rc = proc_wait(pid[i], now < deadline ? (int)(deadline - now) : 1);
		if (rc != 0) {
			fprintf(stderr, "node %u: exit %d: %s\n", cfg->members[i].id, rc,
				sh->err[i][0] ? sh->err[i] : "(no message)");
			if (!first)
				first = rc;
		}
	}
	if (mine)
		proc_unshare(mine, sizeof(*mine));
	return first;
}
