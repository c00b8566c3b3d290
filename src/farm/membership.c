/*
 * membership.c - the membership engine (membership.h has the ZooKeeper
 * layout and the contract).
 *
 * One thread does all ZooKeeper work, in steps: woken by a ZooKeeper watch,
 * by the lease thread (a member's lease expired, the CM went quiet, someone
 * spoke of a newer configuration) or every STEP_MS. A step:
 *   1. (re)opens the session when there is none or it expired, and
 *      registers: member znode, election znode;
 *   2. reads the configuration (watching it) and adopts a newer one: the
 *      lease thread gets the new view, the change is announced;
 *   3. looks at the election: lowest znode = CM; the others watch their
 *      predecessor;
 *   4. as CM: creates the first configuration once every seed member has
 *      registered, and afterwards publishes the next one whenever it
 *      differs from what it should be (members whose lease expired or
 *      whose znode is gone are removed, the CM it took over from is
 *      removed, registered nodes not in it are added) with one conditional
 *      set; a lost race re-reads and starts over;
 *   5. as the CM's successor in the election, when the CM's lease lapsed:
 *      asks the others (lease probe) and, with a majority of the members
 *      other than the CM agreeing, deletes the CM's election znode, which
 *      makes it the CM at the next step (ZooKeeper's own session timeout
 *      would take seconds; the lease takes milliseconds).
 * While ZooKeeper is unreachable nothing here changes: leases go on, the
 * cluster serves, and no configuration can change (none needs to).
 *
 * Incarnations: a process draws a random 64-bit incarnation. A member
 * removed for a lapsed lease is never taken back with the same
 * incarnation: its znode may outlive it by a session timeout, and a
 * process that lost its lease may hold stale state. A live process removed
 * that way registers again with a new one (attr.rejoin).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "membership.h"
#include "membership_int.h"
#include "zk.h"

#define STEP_MS	   50
#define REFRESH_MS 1000 /* re-read everything this often, watches or not */

enum { D_CONFIG = 1, D_ELECT = 2, D_MEMBERS = 4, D_ALL = 7 };
#define TEXT_MAX   (32u << 10)
#define BANNED_MAX 256

struct banned {
	uint32_t id;
	uint64_t inc;
};

struct farm_membership {
	struct farm_membership_attr a;
	char zk_hosts[1024];
	struct farm_config seed;
	uint32_t self;
	uint64_t inc;
	uint64_t tag; /* lease datagrams' cluster tag: hash of the name */
	struct farm_mreg reg;
	char p_base[FARM_ZK_PATH_MAX], p_members[FARM_ZK_PATH_MAX], p_elect[FARM_ZK_PATH_MAX],
	    p_config[FARM_ZK_PATH_MAX], p_me[FARM_ZK_PATH_MAX], my_elect[FARM_ZK_PATH_MAX];
	char *text;

	struct farm_zk *zk;
	struct farm_lease *lease;
	bool registered;

	pthread_t thr;
	bool thr_started;
	pthread_mutex_t lock; /* everything below */
	pthread_cond_t cond;
	bool stop, kick;
	uint32_t dirty;	       /* D_*: what a watch says changed */
	uint64_t last_refresh; /* ns */
	bool members_stale;    /* regs[] must be read again */
	bool cm_quiet;	       /* lease: the CM went quiet */
	struct {
		uint32_t id;
		uint64_t cfg, t_ns;
	} expired[FARM_MAX_MEMBERS];
	uint32_t nexpired;

	struct farm_mconfig cur;
	int32_t cur_version;
	bool have_cur;
	struct farm_mconfig taken;
	bool have_taken;
	uint64_t changes; /* atomic: configurations adopted */
	uint64_t taken_changes;

	bool elected;
	bool removed_alive; /* a configuration dropped our incarnation */
	bool lease_blocked; /* tests: the lease channel is cut */
	uint64_t ready;	    /* farm_membership_ready, under the lock */
	int elect_pos;	    /* our place in the election, -1 unknown */
	uint32_t lowest_id; /* member id of the lowest election znode */
	char lowest_path[FARM_ZK_PATH_MAX];
	struct banned banned[BANNED_MAX];
	uint32_t nbanned;

	struct farm_mreg regs[FARM_MAX_MEMBERS]; /* registered members (CM) */
	int nregs;				 /* -1: unknown */

	int serving;	      /* atomic: mirrors the lease */
	uint64_t lease_until; /* atomic: the lease's exact end (lease.h until_out) */
	struct farm_membership_stats st;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int say(char *err, size_t errlen, int rc, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return rc;
}

/* a/b into out: -ENAMETOOLONG when it does not fit (cluster names are
 * short, so this is a check, not a limit anyone meets). */
static int path_join(char *out, size_t n, const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);

	if (la + 1 + lb >= n) {
		out[0] = 0;
		return -ENAMETOOLONG;
	}
	memmove(out, a, la);
	out[la] = '/';
	memcpy(out + la + 1, b, lb + 1);
	return 0;
}

static uint64_t new_inc(void)
{
	uint64_t v = 0;

	if (getrandom(&v, sizeof(v), 0) != sizeof(v))
		v = now_ns() ^ ((uint64_t)getpid() << 32);
	return v ? v : 1;
}

static void kick(struct farm_membership *m)
{
	pthread_mutex_lock(&m->lock);
	m->kick = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- callbacks from the ZooKeeper and lease threads: note and wake -------- */

/* A watch fired: note what to read again (the step reads only that). */
static void on_zk(void *arg, enum farm_zk_event ev, const char *path)
{
	struct farm_membership *m = arg;
	uint32_t d = 0;

	if (ev == FARM_ZK_EV_CONNECTED || ev == FARM_ZK_EV_DISCONNECTED || ev == FARM_ZK_EV_EXPIRED)
		d = D_ALL;
	else if (!strcmp(path, m->p_config))
		d = D_CONFIG;
	else if (!strncmp(path, m->p_elect, strlen(m->p_elect)))
		d = D_ELECT;
	else if (!strncmp(path, m->p_members, strlen(m->p_members)))
		d = D_MEMBERS;
	pthread_mutex_lock(&m->lock);
	m->dirty |= d;
	m->kick = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_member_expired(void *arg, uint32_t id, uint64_t cfg)
{
	struct farm_membership *m = arg;

	pthread_mutex_lock(&m->lock);
	if (m->nexpired < FARM_MAX_MEMBERS) {
		m->expired[m->nexpired].id = id;
		m->expired[m->nexpired].cfg = cfg;
		m->expired[m->nexpired].t_ns = now_ns();
		m->nexpired++;
	}
	m->kick = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_cm_expired(void *arg, uint32_t cm, uint64_t cfg)
{
	struct farm_membership *m = arg;

	(void)cm;
	(void)cfg;
	pthread_mutex_lock(&m->lock);
	m->cm_quiet = true;
	m->kick = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void on_serving(void *arg, bool on)
{
	struct farm_membership *m = arg;

	__atomic_store_n(&m->serving, on, __ATOMIC_RELEASE);
	if (m->a.on_serving)
		m->a.on_serving(m->a.arg, on);
}

static void on_newer(void *arg, uint64_t cfg)
{
	struct farm_membership *m = arg;

	(void)cfg;
	pthread_mutex_lock(&m->lock);
	m->dirty |= D_CONFIG;
	m->kick = true;
	pthread_cond_signal(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

/* ---- helpers over configurations ---------------------------------------- */

static int mindex(const struct farm_mconfig *c, uint32_t id)
{
	return farm__config_member(&c->cfg, id);
}

static bool is_banned(const struct farm_membership *m, uint32_t id, uint64_t inc)
{
	for (uint32_t i = 0; i < m->nbanned; i++)
		if (m->banned[i].id == id && m->banned[i].inc == inc)
			return true;
	return false;
}

static void ban(struct farm_membership *m, uint32_t id, uint64_t inc)
{
	if (is_banned(m, id, inc))
		return;
	m->banned[m->nbanned % BANNED_MAX] = (struct banned){id, inc};
	if (m->nbanned < BANNED_MAX)
		m->nbanned++;
}

/* What changed from `prev` to `next`: removed = gone or another
 * incarnation; added = new or another incarnation. */
static void diff(const struct farm_mconfig *prev, const struct farm_mconfig *next, uint32_t self,
		 uint64_t inc, struct farm_mchange *ch)
{
	ch->next = *next;
	ch->nremoved = ch->nadded = 0;
	for (uint32_t i = 0; prev && i < prev->cfg.nmembers; i++) {
		int j = mindex(next, prev->cfg.members[i].id);
		if (j < 0 || next->lease[j].inc != prev->lease[i].inc)
			ch->removed[ch->nremoved++] = prev->cfg.members[i].id;
	}
	for (uint32_t j = 0; j < next->cfg.nmembers; j++) {
		int i = prev ? mindex(prev, next->cfg.members[j].id) : -1;
		if (i < 0 || next->lease[j].inc != prev->lease[i].inc)
			ch->added[ch->nadded++] = next->cfg.members[j].id;
	}
	int me = mindex(next, self);
	ch->self_removed = me < 0 || next->lease[me].inc != inc;
}

static void lease_view(const struct farm_mconfig *c, struct farm_lease_view *v)
{
	memset(v, 0, sizeof(*v));
	v->config_id = c->id;
	v->cm = c->cm;
	v->n = c->cfg.nmembers;
	for (uint32_t i = 0; i < c->cfg.nmembers; i++) {
		v->m[i] = c->lease[i];
		v->m[i].id = c->cfg.members[i].id;
	}
}

/* Adopt `next` (newer than what we hold): the lease thread and the node
 * hear of it. Called on the membership thread, lock not held. */
static void adopt(struct farm_membership *m, const struct farm_mconfig *next, int32_t version)
{
	struct farm_lease_view v;
	static __thread struct farm_mchange ch; /* big: not on the stack */
	bool had;

	pthread_mutex_lock(&m->lock);
	had = m->have_cur;
	diff(had ? &m->cur : NULL, next, m->self, m->inc, &ch);
	if (had && ch.self_removed) {
		int me = mindex(&m->cur, m->self);
		if (me >= 0 && m->cur.lease[me].inc == m->inc)
			m->removed_alive = true; /* we were in, and are out */
	}
	m->cur = *next;
	m->cur_version = version;
	m->have_cur = true;
	m->st.config_id = next->id;
	m->st.cm = next->cm;
	/* Expiries reported for older views are answered by this one. */
	m->nexpired = 0;
	m->cm_quiet = false;
	__atomic_add_fetch(&m->changes, 1, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&m->lock);
	lease_view(next, &v);
	farm_lease_set_view(m->lease, &v);
	if (m->a.on_change)
		m->a.on_change(m->a.arg, &ch);
}

/* ---- ZooKeeper session and registration ---------------------------------- */

static int put_election(struct farm_membership *m)
{
	char data[64], path[FARM_ZK_PATH_MAX];
	int n = snprintf(data, sizeof(data), "%u %" PRIu64, m->self, m->inc);

	path_join(path, sizeof(path), m->p_elect, "n_");
	return farm_zk_create(m->zk, path, data, (size_t)n, FARM_ZK_EPHEMERAL | FARM_ZK_SEQUENCE,
			      m->my_elect, sizeof(m->my_elect));
}

/* Our member znode. One left by an earlier process of ours (another
 * incarnation) is removed only once the configuration no longer holds that
 * incarnation: until then it may be alive (-EEXIST). */
static int put_member(struct farm_membership *m)
{
	char data[512], old[512];
	size_t len;
	int n = farm__mreg_format(&m->reg, data, sizeof(data)), rc;
	struct farm_mreg r;

	if (n < 0)
		return n;
	for (int tries = 0; tries < 3; tries++) {
		rc = farm_zk_create(m->zk, m->p_me, data, (size_t)n, FARM_ZK_EPHEMERAL, NULL, 0);
		if (rc != -EEXIST)
			return rc;
		len = sizeof(old) - 1;
		int32_t ver;
		rc = farm_zk_get(m->zk, m->p_me, false, old, &len, &ver);
		if (rc == -ENOENT)
			continue;
		if (rc)
			return rc;
		old[len] = 0;
		if (farm__mreg_parse(old, &r))
			return -EEXIST;
		if (r.inc != m->inc) {
			/* Another incarnation's: still in the configuration? */
			char *t = m->text;
			size_t tl = TEXT_MAX - 1;
			struct farm_mconfig *c = malloc(sizeof(*c));
			int j;
			if (!c)
				return -ENOMEM;
			rc = farm_zk_get(m->zk, m->p_config, false, t, &tl, NULL);
			if (rc == 0) {
				t[tl] = 0;
				rc = farm_mconfig_parse(t, c, NULL, 0);
			}
			j = rc == 0 ? mindex(c, m->self) : -1;
			bool live = j >= 0 && c->lease[j].inc == r.inc;
			free(c);
			if (rc && rc != -ENOENT)
				return rc;
			if (live)
				return -EEXIST;
		}
		rc = farm_zk_delete(m->zk, m->p_me, ver);
		if (rc && rc != -ENOENT && rc != -ESTALE)
			return rc;
	}
	return -EEXIST;
}

static int open_session(struct farm_membership *m)
{
	struct farm_zk_attr za = {
	    .session_ms = m->a.zk_session_ms, .connect_ms = 2000, .on_event = on_zk, .arg = m};
	int rc;

	if (m->zk) {
		farm_zk_close(m->zk);
		m->zk = NULL;
	}
	m->registered = false;
	m->my_elect[0] = 0;
	if ((rc = farm_zk_open(m->zk_hosts, &za, &m->zk)))
		return rc;
	m->st.zk_sessions++;
	if ((rc = farm_zk_mkdirs(m->zk, m->p_members)) || (rc = farm_zk_mkdirs(m->zk, m->p_elect)))
		return rc;
	return 0;
}

static int do_register(struct farm_membership *m)
{
	int rc;

	if ((rc = put_member(m)))
		return rc;
	if ((rc = put_election(m)))
		return rc;
	farm_zk_children(m->zk, m->p_members, true, NULL, 0); /* arm the watch */
	m->registered = true;
	return 0;
}

/* ---- steps ------------------------------------------------------------- */

/* Read the configuration (and watch it); adopt it when newer. -ENOENT
 * when there is none yet. */
static int read_config(struct farm_membership *m)
{
	static __thread struct farm_mconfig c;
	size_t len = TEXT_MAX - 1;
	int32_t ver;
	int rc = farm_zk_get(m->zk, m->p_config, true, m->text, &len, &ver);

	if (rc == -ENOENT)
		farm_zk_exists(m->zk, m->p_config, true); /* watch for its creation */
	if (rc)
		return rc;
	m->text[len] = 0;
	if ((rc = farm_mconfig_parse(m->text, &c, NULL, 0)))
		return rc; /* not ours to fix: wait for a CM to write a good one */
	if (!m->have_cur || c.id > m->cur.id)
		adopt(m, &c, ver);
	else if (c.id == m->cur.id)
		m->cur_version = ver;
	return 0;
}

static int read_election(struct farm_membership *m)
{
	static __thread char kids[FARM_MAX_MEMBERS * 2][FARM_ZK_PATH_MAX];
	const char *mine = strrchr(m->my_elect, '/');
	char data[64], path[FARM_ZK_PATH_MAX];
	size_t len;
	int n, pos = -1;

	if (!mine)
		return -ENOENT;
	mine++;
	n = farm_zk_children(m->zk, m->p_elect, false, kids, FARM_MAX_MEMBERS * 2);
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++)
		if (!strcmp(kids[i], mine))
			pos = i;
	if (pos < 0)
		return -ENOENT; /* ours is gone (deleted by a successor): stand again */
	if (path_join(m->lowest_path, sizeof(m->lowest_path), m->p_elect, kids[0]))
		return -ENAMETOOLONG;
	len = sizeof(data) - 1;
	m->lowest_id = 0;
	if (farm_zk_get(m->zk, m->lowest_path, false, data, &len, NULL) == 0) {
		data[len] = 0;
		unsigned id;
		if (sscanf(data, "%u", &id) == 1)
			m->lowest_id = id;
	}
	m->elect_pos = pos;
	if (pos > 0) {
		/* Watch only the predecessor: no herd when the CM goes. */
		path_join(path, sizeof(path), m->p_elect, kids[pos - 1]);
		if (farm_zk_exists(m->zk, path, true) == -ENOENT)
			kick(m);
	}
	pthread_mutex_lock(&m->lock);
	m->elected = pos == 0;
	m->st.is_cm = m->elected && m->have_cur && m->cur.cm == m->self;
	pthread_mutex_unlock(&m->lock);
	return 0;
}

static int read_members(struct farm_membership *m)
{
	static __thread char kids[FARM_MAX_MEMBERS * 2][FARM_ZK_PATH_MAX];
	char path[FARM_ZK_PATH_MAX + 16], data[512];
	int n = farm_zk_children(m->zk, m->p_members, true, kids, FARM_MAX_MEMBERS * 2), k = 0;

	if (n < 0)
		return n;
	for (int i = 0; i < n && k < FARM_MAX_MEMBERS; i++) {
		size_t len = sizeof(data) - 1;
		if (path_join(path, sizeof(path), m->p_members, kids[i]))
			continue;
		/* Watched: a joiner reports ready by rewriting its znode. */
		if (farm_zk_get(m->zk, path, true, data, &len, NULL))
			continue;
		data[len] = 0;
		if (farm__mreg_parse(data, &m->regs[k]) == 0)
			k++;
	}
	m->nregs = k;
	return 0;
}

static const struct farm_mreg *registered(const struct farm_membership *m, uint32_t id)
{
	for (int i = 0; i < m->nregs; i++)
		if (m->regs[i].id == id)
			return &m->regs[i];
	return NULL;
}

static void remove_member(struct farm_mconfig *c, int i)
{
	for (uint32_t j = (uint32_t)i; j + 1 < c->cfg.nmembers; j++) {
		c->cfg.members[j] = c->cfg.members[j + 1];
		c->lease[j] = c->lease[j + 1];
	}
	c->cfg.nmembers--;
}

static void add_member(struct farm_mconfig *c, const struct farm_mreg *r, bool joining)
{
	uint32_t i = c->cfg.nmembers++;

	memset(&c->cfg.members[i], 0, sizeof(c->cfg.members[i]));
	c->cfg.members[i].id = r->id;
	c->cfg.members[i].joining = joining;
	snprintf(c->cfg.members[i].addr, sizeof(c->cfg.members[i].addr), "%s", r->addr);
	snprintf(c->cfg.members[i].netns, sizeof(c->cfg.members[i].netns), "%s", r->netns);
	memset(&c->lease[i], 0, sizeof(c->lease[i]));
	c->lease[i].id = r->id;
	c->lease[i].inc = r->inc;
	snprintf(c->lease[i].addr, sizeof(c->lease[i].addr), "%s", r->lease);
}

static int publish(struct farm_membership *m, struct farm_mconfig *next, bool create)
{
	int n, rc;
	int32_t ver = 0;

	next->cfg.config_id = next->id;
	if ((rc = farm__config_finish(&next->cfg, NULL, 0)))
		return rc;
	n = farm_mconfig_format(next, m->text, TEXT_MAX);
	if (n < 0)
		return n;
	if (create)
		rc = farm_zk_create(m->zk, m->p_config, m->text, (size_t)n, 0, NULL, 0);
	else
		rc = farm_zk_set(m->zk, m->p_config, m->text, (size_t)n, m->cur_version, &ver);
	if (rc == -ESTALE || rc == -EEXIST) {
		m->st.races_lost++;
		return -ESTALE; /* someone else moved first: re-read, start over */
	}
	if (rc)
		return rc;
	m->st.configs_published++;
	adopt(m, next, ver);
	farm_lease_notify(m->lease, next->id);
	return 0;
}

/* The first configuration: the seed's members, once all have registered.
 * Also a new generation over a configuration whose members are all gone
 * (a cluster stopped and started again): the next id, conditional set. */
static int bootstrap(struct farm_membership *m, bool again)
{
	static __thread struct farm_mconfig c;
	int rc;

	if ((m->members_stale || m->nregs < 0) && (rc = read_members(m)))
		return rc;
	m->members_stale = false;
	memset(&c, 0, sizeof(c));
	c.cfg = m->seed;
	c.cfg.nmembers = 0;
	for (uint32_t i = 0; i < m->seed.nmembers; i++) {
		const struct farm_mreg *r = registered(m, m->seed.members[i].id);
		if (!r)
			return -EAGAIN; /* wait for everyone of the seed */
		add_member(&c, r, false);
	}
	c.id = again ? m->cur.id + 1 : m->seed.config_id;
	c.boot = c.id;
	c.cm = m->self;
	return publish(m, &c, !again);
}

/* Is any member of the current configuration (that incarnation) still
 * registered? None: the cluster died whole; start a new generation. */
static bool generation_alive(const struct farm_membership *m)
{
	for (uint32_t i = 0; i < m->cur.cfg.nmembers; i++) {
		const struct farm_mreg *r = registered(m, m->cur.cfg.members[i].id);
		if (r && r->inc == m->cur.lease[i].inc)
			return true;
	}
	return false;
}

/* Joiners (farm_member.joining) hold extra backups of exactly the regions
 * the ring of all members of the current configuration gives them. Once
 * every one of them reports (its member znode: ready=ID) that it holds all
 * of them in this configuration, they all join at once: the next map is
 * the plain ring of those members, whose replicas every member holds. Not
 * together with a removal (the ring would be another one, with replicas
 * a joiner may lack): such a change goes first, and the joiners report
 * again for it. Returns whether `next` changed. */
static bool end_joining(const struct farm_membership *m, struct farm_mconfig *next)
{
	uint32_t joining = 0;

	for (uint32_t i = 0; i < m->cur.cfg.nmembers; i++) {
		const struct farm_mreg *r;
		if (!m->cur.cfg.members[i].joining)
			continue;
		r = registered(m, m->cur.cfg.members[i].id);
		if (!r || r->inc != m->cur.lease[i].inc || r->ready != m->cur.id)
			return false;
		joining++;
	}
	for (uint32_t i = 0; i < m->cur.cfg.nmembers; i++) {
		if (!m->cur.cfg.members[i].joining)
			continue; /* only the joiners are checked here */
		int j = mindex(next, m->cur.cfg.members[i].id);
		if (j < 0 || next->lease[j].inc != m->cur.lease[i].inc)
			return false; /* removed in this step after all */
	}
	for (uint32_t i = 0; i < m->cur.cfg.nmembers; i++)
		if (m->cur.cfg.members[i].joining)
			next->cfg.members[mindex(next, m->cur.cfg.members[i].id)].joining = 0;
	return joining > 0;
}

/* As CM: publish the configuration the cluster should have, if it differs
 * from the current one. */
static int cm_step(struct farm_membership *m)
{
	static __thread struct farm_mconfig next;
	uint64_t first_expiry = 0;
	bool changed = false, takeover = false;
	uint32_t added = 0;
	int rc;

	if ((m->members_stale || m->nregs < 0) && (rc = read_members(m)))
		return rc;
	m->members_stale = false;
	if (!generation_alive(m))
		return bootstrap(m, true);
	next = m->cur;
	if (next.cm != m->self) {
		takeover = true;
		/* Taking over: the CM we replace is out (failed or left). */
		int i = mindex(&next, next.cm);
		if (i >= 0) {
			ban(m, next.cm, next.lease[i].inc);
			remove_member(&next, i);
		}
		next.cm = m->self;
		changed = true;
	}
	pthread_mutex_lock(&m->lock);
	for (uint32_t k = 0; k < m->nexpired; k++) {
		int i;
		if (m->expired[k].cfg != m->cur.id || (i = mindex(&next, m->expired[k].id)) < 0)
			continue;
		ban(m, next.cfg.members[i].id, next.lease[i].inc);
		if (!first_expiry || m->expired[k].t_ns < first_expiry)
			first_expiry = m->expired[k].t_ns;
		remove_member(&next, i);
		changed = true;
	}
	pthread_mutex_unlock(&m->lock);
	for (uint32_t i = 0; i < next.cfg.nmembers;) {
		const struct farm_mreg *r = registered(m, next.cfg.members[i].id);
		if (next.cfg.members[i].id != m->self && (!r || r->inc != next.lease[i].inc)) {
			ban(m, next.cfg.members[i].id, next.lease[i].inc);
			remove_member(&next, (int)i); /* gone, or restarted */
			changed = true;
			continue;
		}
		i++;
	}
	for (int k = 0; k < m->nregs; k++) {
		const struct farm_mreg *r = &m->regs[k];
		if (mindex(&next, r->id) >= 0 || is_banned(m, r->id, r->inc) ||
		    next.cfg.nmembers >= FARM_MAX_MEMBERS)
			continue;
		add_member(&next, r, true); /* a new or recovered node joins */
		changed = true;
		added++;
	}
	if (next.cfg.nmembers == m->cur.cfg.nmembers + added)
		changed |= end_joining(m, &next); /* nothing removed */
	if (!changed)
		return 0;
	/* Removing needs our own lease (a majority still hears us), except in
	 * a cluster of two, where the survivor has nobody else to ask, and
	 * when taking over (the majority agreed through the probe, or the old
	 * CM's session ended). */
	if (!takeover && next.cfg.nmembers < m->cur.cfg.nmembers && m->cur.cfg.nmembers > 2 &&
	    !farm_lease_serving(m->lease))
		return -EAGAIN;
	if (next.cfg.nmembers == 0)
		return -EAGAIN;
	next.id = m->cur.id + 1;
	rc = publish(m, &next, false);
	if (rc == 0 && first_expiry)
		m->st.last_detect_ns = now_ns() - first_expiry;
	return rc;
}

/* As the CM's successor, when the CM's lease lapsed: take over if enough
 * members agree the CM is gone. */
static void maybe_take_over(struct farm_membership *m)
{
	bool quiet;

	pthread_mutex_lock(&m->lock);
	quiet = m->cm_quiet;
	pthread_mutex_unlock(&m->lock);
	if (!quiet || !m->have_cur || m->cur.cm == m->self || m->elect_pos != 1 ||
	    m->lowest_id != m->cur.cm || !farm_lease_cm_lost(m->lease))
		return;
	int others = (int)m->cur.cfg.nmembers - 1;
	int need = others / 2 + 1;
	int agree = farm_lease_probe(m->lease, (int)(2 * m->a.lease_ms) + 5);
	if (agree < need)
		return;
	if (farm_zk_delete(m->zk, m->lowest_path, -1) == 0) {
		m->st.takeovers++;
		kick(m);
	}
}

/* Rejoin only once the CM's lease socket answers: a node cut off from it
 * would be added, expire and be removed again, over and over. */
static bool rejoin_ready(struct farm_membership *m)
{
	int cm = m->have_cur ? mindex(&m->cur, m->cur.cm) : -1;

	if (cm < 0)
		return false;
	return farm_lease_ping(m->lease, m->cur.cm, m->cur.lease[cm].addr,
			       (int)m->a.lease_ms * 2) == 0;
}

/* Removed from the configuration while alive: stand again, as someone new. */
static int rejoin(struct farm_membership *m)
{
	struct farm_lease_attr la;
	struct farm_lease *old = m->lease, *nl;
	int rc;

	m->inc = new_inc();
	memset(&la, 0, sizeof(la));
	la.self = m->self;
	la.inc = m->inc;
	la.cluster = m->tag;
	la.until_out = &m->lease_until;
	la.lease_ms = m->a.lease_ms;
	la.renew_ms = m->a.renew_ms;
	la.bind = m->a.lease_bind;
	la.realtime = m->a.realtime;
	la.on_member_expired = on_member_expired;
	la.on_cm_expired = on_cm_expired;
	la.on_serving = on_serving;
	la.on_newer = on_newer;
	la.arg = m;
	if ((rc = farm_lease_start(&la, &nl)))
		return rc;
	farm_lease_stop(old);
	m->lease = nl;
	if (m->lease_blocked)
		farm_lease_block(nl, true);
	m->reg.inc = m->inc;
	m->reg.ready = 0; /* a new incarnation joins afresh */
	pthread_mutex_lock(&m->lock);
	m->ready = 0;
	pthread_mutex_unlock(&m->lock);
	farm_lease_addr(nl, m->reg.lease, sizeof(m->reg.lease));
	if (m->my_elect[0])
		farm_zk_delete(m->zk, m->my_elect, -1);
	farm_zk_delete(m->zk, m->p_me, -1);
	m->registered = false;
	return do_register(m);
}

/* Read again what changed (or everything, every REFRESH_MS). Returns
 * nonzero when ZooKeeper failed us: everything is read at the next step. */
static int step_io(struct farm_membership *m, uint32_t d)
{
	int rc;

	if (!m->zk || farm_zk_expired(m->zk)) {
		if ((rc = open_session(m)))
			return rc;
		d = D_ALL;
	}
	if (!farm_zk_connected(m->zk))
		return -ECONNRESET;
	if (!m->registered) {
		if ((rc = do_register(m)))
			return rc;
		d = D_ALL;
	}
	if (d & D_MEMBERS)
		m->members_stale = true;
	pthread_mutex_lock(&m->lock);
	uint64_t ready = m->ready;
	pthread_mutex_unlock(&m->lock);
	if (ready != m->reg.ready) {
		/* A joiner's report: our znode says so (the CM watches it). */
		char data[512];
		uint64_t was = m->reg.ready;
		m->reg.ready = ready;
		int n = farm__mreg_format(&m->reg, data, sizeof(data));
		if (n < 0 || (rc = farm_zk_set(m->zk, m->p_me, data, (size_t)n, -1, NULL))) {
			m->reg.ready = was;
			return n < 0 ? n : rc;
		}
	}
	if ((d & D_CONFIG) || !m->have_cur) {
		rc = read_config(m);
		if (rc && rc != -ENOENT)
			return rc;
	}
	if (m->removed_alive && m->a.rejoin && rejoin_ready(m)) {
		m->removed_alive = false;
		if ((rc = rejoin(m)))
			return rc;
		d |= D_ELECT;
	}
	if ((d & D_ELECT) || m->elect_pos < 0) {
		if ((rc = read_election(m)) == -ENOENT) {
			if ((rc = put_election(m)) || (rc = read_election(m)))
				return rc;
		} else if (rc) {
			return rc;
		}
	}
	return 0;
}

static void step(struct farm_membership *m)
{
	uint64_t now = now_ns();
	uint32_t d;
	int rc;

	pthread_mutex_lock(&m->lock);
	d = m->dirty;
	m->dirty = 0;
	pthread_mutex_unlock(&m->lock);
	if (now - m->last_refresh >= (uint64_t)REFRESH_MS * 1000000ull) {
		d = D_ALL;
		m->last_refresh = now;
	}
	if (step_io(m, d)) {
		pthread_mutex_lock(&m->lock);
		m->dirty = D_ALL; /* try it all again next step */
		pthread_mutex_unlock(&m->lock);
		return;
	}
	if (m->elected) {
		if (!m->have_cur)
			rc = bootstrap(m, false);
		else
			rc = cm_step(m);
		if (rc == -ESTALE) {
			/* Lost a race: read again and look at once. */
			pthread_mutex_lock(&m->lock);
			m->dirty |= D_CONFIG | D_MEMBERS;
			m->kick = true;
			pthread_mutex_unlock(&m->lock);
		}
	} else {
		maybe_take_over(m);
	}
}

static void *membership_thread(void *arg)
{
	struct farm_membership *m = arg;

	for (;;) {
		struct timespec dl;

		pthread_mutex_lock(&m->lock);
		clock_gettime(CLOCK_MONOTONIC, &dl);
		dl.tv_nsec += STEP_MS * 1000000L;
		if (dl.tv_nsec >= 1000000000L) {
			dl.tv_sec++;
			dl.tv_nsec -= 1000000000L;
		}
		if (m->cm_quiet) {
			/* A takeover is pending: the others lose the CM within a
			 * renewal or so of us; ask again soon. */
			dl.tv_nsec -= (STEP_MS - 2) * 1000000L;
			if (dl.tv_nsec < 0) {
				dl.tv_sec--;
				dl.tv_nsec += 1000000000L;
			}
		}
		while (!m->kick && !m->stop)
			if (pthread_cond_timedwait(&m->cond, &m->lock, &dl) == ETIMEDOUT)
				break;
		m->kick = false;
		bool stop = m->stop;
		pthread_mutex_unlock(&m->lock);
		if (stop)
			break;
		step(m);
		m->st.zk_connected = farm_zk_connected(m->zk);
	}
	return NULL;
}

/* ---- public ------------------------------------------------------------- */

int farm_membership_start(const struct farm_config *seed, uint32_t self,
			  const struct farm_membership_attr *attr, struct farm_membership **out,
			  char *err, size_t errlen)
{
	struct farm_membership *m;
	struct farm_lease_attr la;
	uint64_t deadline;
	int rc, me;

	if (err && errlen)
		err[0] = 0;
	if (!seed || !attr || !out)
		return say(err, errlen, -EINVAL, "no seed config, attributes or output handle");
	*out = NULL;
	if (!farm_zk_available())
		return say(err, errlen, -ENOTSUP,
			   "this libfarm was built without ZooKeeper support "
			   "(install libzookeeper-mt-dev and rebuild)");
	if (!attr->zk || !*attr->zk || strlen(attr->zk) >= sizeof(m->zk_hosts))
		return say(err, errlen, -EINVAL, "no ZooKeeper connect string");
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	m->text = malloc(TEXT_MAX);
	if (!m->text) {
		free(m);
		return -ENOMEM;
	}
	m->a = *attr;
	if (m->a.zk_session_ms <= 0)
		m->a.zk_session_ms = 4000;
	if (!m->a.lease_ms)
		m->a.lease_ms = FARM_LEASE_DEFAULT_MS;
	if (m->a.start_timeout_ms <= 0)
		m->a.start_timeout_ms = 10000;
	strcpy(m->zk_hosts, attr->zk);
	m->seed = *seed;
	m->self = self;
	m->nregs = -1;
	m->elect_pos = -1;
	{
		/* The lease thread (SCHED_FIFO) takes this lock in its
		 * callbacks: inherit its priority rather than wait behind a
		 * preempted holder. */
		pthread_mutexattr_t ma;
		pthread_mutexattr_init(&ma);
		pthread_mutexattr_setprotocol(&ma, PTHREAD_PRIO_INHERIT);
		pthread_mutex_init(&m->lock, &ma);
		pthread_mutexattr_destroy(&ma);
	}
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&m->cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	if ((rc = farm__config_finish(&m->seed, err, errlen)))
		goto fail;
	me = farm__config_member(&m->seed, self);
	if (me < 0) {
		rc = say(err, errlen, -EINVAL, "member %u is not in the seed configuration", self);
		goto fail;
	}
	snprintf(m->p_base, sizeof(m->p_base), "/farm/%s", m->seed.cluster);
	{
		char id[16];
		snprintf(id, sizeof(id), "%u", self);
		path_join(m->p_members, sizeof(m->p_members), m->p_base, "members");
		path_join(m->p_elect, sizeof(m->p_elect), m->p_base, "election");
		path_join(m->p_config, sizeof(m->p_config), m->p_base, "config");
		path_join(m->p_me, sizeof(m->p_me), m->p_members, id);
	}

	m->tag = 14695981039346656037ull; /* FNV-1a of the cluster name */
	for (const char *c = m->seed.cluster; *c; c++)
		m->tag = (m->tag ^ (unsigned char)*c) * 1099511628211ull;
	m->inc = new_inc();
	memset(&la, 0, sizeof(la));
	la.self = self;
	la.inc = m->inc;
	la.cluster = m->tag;
	la.until_out = &m->lease_until;
	la.lease_ms = m->a.lease_ms;
	la.renew_ms = m->a.renew_ms;
	la.bind = m->a.lease_bind;
	la.realtime = m->a.realtime;
	la.on_member_expired = on_member_expired;
	la.on_cm_expired = on_cm_expired;
	la.on_serving = on_serving;
	la.on_newer = on_newer;
	la.arg = m;
	if ((rc = farm_lease_start(&la, &m->lease))) {
		say(err, errlen, rc, "lease socket on %s: %s",
		    m->a.lease_bind ? m->a.lease_bind : "127.0.0.1", strerror(-rc));
		goto fail;
	}
	m->reg.id = self;
	m->reg.inc = m->inc;
	farm_lease_addr(m->lease, m->reg.lease, sizeof(m->reg.lease));
	snprintf(m->reg.addr, sizeof(m->reg.addr), "%s", m->seed.members[me].addr);
	snprintf(m->reg.netns, sizeof(m->reg.netns), "%s", m->seed.members[me].netns);

	deadline = now_ns() + (uint64_t)m->a.start_timeout_ms * 1000000ull;
	/* A server that is slow to give its first session (a cold JVM on a
	 * busy machine) gets until the start deadline. */
	while ((rc = open_session(m)) && rc != -EINVAL && now_ns() < deadline)
		usleep(50000);
	if (rc) {
		say(err, errlen, rc, "ZooKeeper at %s: %s", m->zk_hosts, farm_zk_strerror(rc));
		goto fail;
	}
	for (;;) {
		rc = do_register(m);
		if (rc != -EEXIST || now_ns() >= deadline)
			break;
		usleep(50000);
	}
	if (rc) {
		if (rc == -EEXIST)
			say(err, errlen, rc,
			    "member %u of cluster '%s' is registered by a live process "
			    "(%s exists and the configuration holds it)",
			    self, m->seed.cluster, m->p_me);
		else
			say(err, errlen, rc, "registering in ZooKeeper: %s", farm_zk_strerror(rc));
		goto fail;
	}
	if ((rc = pthread_create(&m->thr, NULL, membership_thread, m))) {
		rc = -rc;
		goto fail;
	}
	m->thr_started = true;
	kick(m);
	/* Wait for a configuration that holds us. */
	for (;;) {
		bool in;
		pthread_mutex_lock(&m->lock);
		int i = m->have_cur ? mindex(&m->cur, self) : -1;
		in = i >= 0 && m->cur.lease[i].inc == m->inc;
		pthread_mutex_unlock(&m->lock);
		if (in)
			break;
		if (now_ns() >= deadline) {
			rc = say(err, errlen, -ETIMEDOUT,
				 "no configuration holding member %u within %d ms "
				 "(are all members of the seed running? is a CM elected?)",
				 self, m->a.start_timeout_ms);
			goto fail;
		}
		usleep(2000);
	}
	*out = m;
	return 0;
fail:
	farm_membership_stop(m);
	return rc;
}

void farm_membership_stop(struct farm_membership *m)
{
	if (!m)
		return;
	if (m->thr_started) {
		pthread_mutex_lock(&m->lock);
		m->stop = true;
		pthread_cond_signal(&m->cond);
		pthread_mutex_unlock(&m->lock);
		pthread_join(m->thr, NULL);
	}
	/* Leave at once: ephemerals go with the session. */
	if (m->zk)
		farm_zk_close(m->zk);
	farm_lease_stop(m->lease);
	pthread_cond_destroy(&m->cond);
	pthread_mutex_destroy(&m->lock);
	free(m->text);
	free(m);
}

int farm_membership_config(struct farm_membership *m, struct farm_mconfig *out)
{
	if (!m || !out)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (m->have_cur)
		*out = m->cur;
	pthread_mutex_unlock(&m->lock);
	return m->have_cur ? 0 : -ENOENT;
}

bool farm_membership_changed(const struct farm_membership *m)
{
	return m && __atomic_load_n(&m->changes, __ATOMIC_ACQUIRE) != m->taken_changes;
}

int farm_membership_take(struct farm_membership *m, struct farm_mchange *out)
{
	int rc = 0;

	if (!m || !out)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (m->have_cur && (!m->have_taken || m->taken.id != m->cur.id)) {
		diff(m->have_taken ? &m->taken : NULL, &m->cur, m->self, m->inc, out);
		m->taken = m->cur;
		m->have_taken = true;
		rc = 1;
	}
	m->taken_changes = __atomic_load_n(&m->changes, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&m->lock);
	return rc;
}

bool farm_membership_serving(const struct farm_membership *m)
{
	return m && __atomic_load_n(&m->serving, __ATOMIC_ACQUIRE);
}

const int *farm_membership_serving_flag(const struct farm_membership *m)
{
	return &m->serving;
}

const uint64_t *farm_membership_lease_until(const struct farm_membership *m)
{
	return &m->lease_until;
}

void farm_membership_get_stats(struct farm_membership *m, struct farm_membership_stats *st)
{
	if (!m || !st)
		return;
	pthread_mutex_lock(&m->lock);
	*st = m->st;
	st->serving = farm_membership_serving(m);
	st->is_cm = m->elected && m->have_cur && m->cur.cm == m->self;
	pthread_mutex_unlock(&m->lock);
	farm_lease_get_stats(m->lease, &st->lease);
}

int farm_membership_ready(struct farm_membership *m, uint64_t config_id)
{
	if (!m || !config_id)
		return -EINVAL;
	pthread_mutex_lock(&m->lock);
	if (config_id > m->ready) {
		m->ready = config_id;
		m->kick = true;
		pthread_cond_signal(&m->cond);
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}

void farm_membership_block_lease(struct farm_membership *m, bool block)
{
	if (!m)
		return;
	m->lease_blocked = block;
	farm_lease_block(m->lease, block);
}
