/*
 * xdp_prog.c - attach, share and detach the xdp NIC's XDP program.
 *
 * An interface runs at most one XDP program (this kernel refuses libxdp's
 * multi-program dispatcher), so every endpoint on an interface -- in any
 * process -- shares one: the first endpoint loads it with libbpf and attaches
 * it, later ones find it with bpf_xdp_query() and open its maps by id, the
 * last one out detaches it. Nothing is pinned, so bpffs is not needed (it is
 * hidden under `ip netns exec`).
 *
 * Coordination uses abstract unix socket names, which live in the network
 * namespace (like the interface) and vanish when their owner dies:
 *   "unet.xdp.IFINDEX.lock"  held while an endpoint joins or leaves;
 *   "unet.xdp.IFINDEX.qQ"    held by the endpoint bound to RX queue Q for
 *                            its whole life (one AF_XDP socket per queue).
 * An entry in the port map whose queue name can be bound by anybody belongs
 * to a dead process: it is swept, and when no live entry is left the program
 * itself is stale and is detached before a fresh one is attached. That is how
 * an endpoint killed with -9 stops blocking the next start (otherwise the
 * attach fails with EEXIST). A program that is not ours is never touched.
 */
#ifdef UNET_HAVE_XDP /* built with libbpf/libxdp only */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "nic.h"
#include "xdp_prog.h"

#ifdef UNET_HAVE_XDP_PROG
extern const unsigned char unet_xdp_obj[];
extern const unsigned long unet_xdp_obj_len;
#endif

#define LOCK_WAIT_NS (10ull * 1000000000ull)

static int quiet_bpf(enum libbpf_print_level l, const char *f, va_list ap)
{
	return 0;
}

static int quiet_xdp(enum libxdp_print_level l, const char *f, va_list ap)
{
	return 0;
}

void xdp_quiet_begin(struct xdp_quiet *q)
{
	q->bpf_fn = libbpf_set_print(quiet_bpf);
	q->xdp_fn = libxdp_set_print(quiet_xdp);
}

void xdp_quiet_end(const struct xdp_quiet *q)
{
	libbpf_set_print(q->bpf_fn);
	libxdp_set_print(q->xdp_fn);
}

/* Bind an abstract unix socket name: the fd while we hold it, -EADDRINUSE
 * while somebody else does, or -errno. */
static int name_hold(const char *name)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	size_t n = strlen(name);
	int fd;

	if (n + 1 > sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	memcpy(sa.sun_path + 1, name, n);
	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + n)) <
	    0) {
		int e = -errno;
		close(fd);
		return e;
	}
	return fd;
}

static int queue_hold(int ifindex, uint32_t queue)
{
	char name[64];

	snprintf(name, sizeof(name), "unet.xdp.%d.q%u", ifindex, queue);
	return name_hold(name);
}

static int lock_take(struct xdp_prog *p)
{
	char name[64];
	uint64_t start = unet__now_ns();

	snprintf(name, sizeof(name), "unet.xdp.%d.lock", p->ifindex);
	for (;;) {
		int fd = name_hold(name);
		if (fd >= 0) {
			p->lock_fd = fd;
			return 0;
		}
		if (fd != -EADDRINUSE)
			return fd;
		if (unet__now_ns() - start > LOCK_WAIT_NS)
			return -ETIMEDOUT;
		usleep(1000);
	}
}

static void lock_drop(struct xdp_prog *p)
{
	if (p->lock_fd >= 0)
		close(p->lock_fd);
	p->lock_fd = -1;
}

static void fds_close(struct xdp_prog *p)
{
	int *fds[] = {&p->prog_fd, &p->ports_fd, &p->xsks_fd};

	for (unsigned i = 0; i < 3; i++) {
		if (*fds[i] >= 0)
			close(*fds[i]);
		*fds[i] = -1;
	}
}

/* Look at what is attached. 0: nothing; 1: our program, fds and mode
 * filled in; -EBUSY: somebody else's program; -errno. */
static int find_attached(struct xdp_prog *p)
{
	LIBBPF_OPTS(bpf_xdp_query_opts, q);
	struct bpf_prog_info pi;
	uint32_t ids[8], len;
	int rc, fd;

	rc = bpf_xdp_query(p->ifindex, 0, &q);
	if (rc < 0)
		return rc;
	if (q.attach_mode == XDP_ATTACHED_NONE)
		return 0;
	if (q.attach_mode != XDP_ATTACHED_DRV && q.attach_mode != XDP_ATTACHED_SKB)
		return -EBUSY;
	fd = bpf_prog_get_fd_by_id(q.prog_id);
	if (fd < 0)
		return fd == -ENOENT ? 0 : fd; /* detached meanwhile */
	memset(&pi, 0, sizeof(pi));
	pi.nr_map_ids = 8;
	pi.map_ids = (uint64_t)(uintptr_t)ids;
	len = sizeof(pi);
	rc = bpf_obj_get_info_by_fd(fd, &pi, &len);
	if (rc < 0 || strcmp(pi.name, UNET_XDP_PROG_NAME) != 0 || pi.nr_map_ids > 8) {
		close(fd);
		return rc < 0 ? rc : -EBUSY;
	}
	p->prog_fd = fd;
	p->native = q.attach_mode == XDP_ATTACHED_DRV;
	p->mode_flags = p->native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
	for (uint32_t i = 0; i < pi.nr_map_ids; i++) {
		struct bpf_map_info mi;
		int mfd = bpf_map_get_fd_by_id(ids[i]);
		if (mfd < 0)
			continue;
		memset(&mi, 0, sizeof(mi));
		len = sizeof(mi);
		if (bpf_obj_get_info_by_fd(mfd, &mi, &len) == 0) {
			if (strcmp(mi.name, UNET_XDP_PORTS_MAP) == 0 && p->ports_fd < 0 &&
			    mi.key_size == sizeof(struct unet_port_key) &&
			    mi.value_size == sizeof(struct unet_port_val)) {
				p->ports_fd = mfd;
				continue;
			}
			if (strcmp(mi.name, UNET_XDP_XSKS_MAP) == 0 && p->xsks_fd < 0 &&
			    mi.type == BPF_MAP_TYPE_XSKMAP) {
				p->xsks_fd = mfd;
				continue;
			}
		}
		close(mfd);
	}
	if (p->ports_fd < 0 || p->xsks_fd < 0) {
		fds_close(p); /* same name, other layout: another version's */
		return -EBUSY;
	}
	return 1;
}

/* Delete port entries whose owner is gone. Returns how many live ones are
 * left, or -errno. */
static int sweep(struct xdp_prog *p)
{
	struct unet_port_key keys[UNET_XDP_MAX_PORTS], k;
	unsigned n = 0, live = 0;
	int rc;

	rc = bpf_map_get_next_key(p->ports_fd, NULL, &k);
	while (rc == 0 && n < UNET_XDP_MAX_PORTS) {
		keys[n++] = k;
		rc = bpf_map_get_next_key(p->ports_fd, &keys[n - 1], &k);
	}
	for (unsigned i = 0; i < n; i++) {
		struct unet_port_val v;
		if (bpf_map_lookup_elem(p->ports_fd, &keys[i], &v) < 0)
			continue;
		if (p->queue_fd >= 0 && v.queue == p->queue) {
			live++; /* the claim on it is ours */
			continue;
		}
		int fd = queue_hold(p->ifindex, v.queue);
		if (fd == -EADDRINUSE) {
			live++;
		} else if (fd >= 0) {
			close(fd);
			bpf_map_delete_elem(p->ports_fd, &keys[i]);
		} else {
			return fd;
		}
	}
	return (int)live;
}

static int detach(struct xdp_prog *p)
{
	LIBBPF_OPTS(bpf_xdp_attach_opts, o, .old_prog_fd = p->prog_fd);

	return bpf_xdp_detach(p->ifindex, p->mode_flags, &o);
}

static int load_and_attach(struct xdp_prog *p, enum unet_xdp_mode mode)
{
#ifdef UNET_HAVE_XDP_PROG
	LIBBPF_OPTS(bpf_object_open_opts, oo, .object_name = UNET_XDP_PROG_NAME);
	struct bpf_object *obj;
	struct bpf_program *prog;
	int rc;

	obj = bpf_object__open_mem(unet_xdp_obj, unet_xdp_obj_len, &oo);
	if (!obj)
		return -errno;
	rc = bpf_object__load(obj);
	if (rc < 0)
		goto out;
	prog = bpf_object__find_program_by_name(obj, UNET_XDP_PROG_NAME);
	rc = -ENOENT;
	if (!prog)
		goto out;
	p->prog_fd = dup(bpf_program__fd(prog));
	p->ports_fd = dup(bpf_object__find_map_fd_by_name(obj, UNET_XDP_PORTS_MAP));
	p->xsks_fd = dup(bpf_object__find_map_fd_by_name(obj, UNET_XDP_XSKS_MAP));
	if (p->prog_fd < 0 || p->ports_fd < 0 || p->xsks_fd < 0) {
		rc = -EBADF;
		goto out;
	}
	rc = -EINVAL;
	for (int native = 1; native >= 0; native--) {
		if ((native && mode == UNET_XDP_GENERIC) || (!native && mode == UNET_XDP_NATIVE))
			continue;
		uint32_t f = native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE;
		rc = bpf_xdp_attach(p->ifindex, p->prog_fd, XDP_FLAGS_UPDATE_IF_NOEXIST | f, NULL);
		if (rc == 0) {
			p->native = native;
			p->mode_flags = f;
			p->attached_here = true;
			break;
		}
		if (rc == -EEXIST || rc == -EBUSY)
			break; /* somebody attached meanwhile (not through us) */
	}
out:
	bpf_object__close(obj);
	if (rc < 0)
		fds_close(p);
	return rc;
#else
	return -EPROTONOSUPPORT;
#endif
}

int xdp_prog_open(struct xdp_prog *p, int ifindex, uint32_t queue, enum unet_xdp_mode mode)
{
	int rc;

	memset(p, 0, sizeof(*p));
	p->ifindex = ifindex;
	p->queue = queue;
	p->prog_fd = p->ports_fd = p->xsks_fd = p->lock_fd = p->queue_fd = -1;
	if (queue >= UNET_XDP_MAX_QUEUES)
		return -EINVAL;
	rc = lock_take(p);
	if (rc < 0)
		return rc;
	rc = find_attached(p);
	if (rc == 1) {
		rc = sweep(p);
		if (rc == 0) { /* every owner is dead: the program is stale */
			rc = detach(p);
			fds_close(p);
			if (rc < 0)
				return rc;
			rc = 0;
		} else if (rc > 0) {
			if ((mode == UNET_XDP_NATIVE && !p->native) ||
			    (mode == UNET_XDP_GENERIC && p->native))
				return -EBUSY;
			rc = 1;
		}
	}
	if (rc < 0)
		return rc;
	if (rc == 0) {
		rc = load_and_attach(p, mode);
		if (rc < 0)
			return rc;
	}
	rc = queue_hold(ifindex, queue);
	if (rc < 0)
		return rc == -EADDRINUSE ? -EBUSY : rc;
	p->queue_fd = rc;
	return 0;
}

int xdp_prog_publish(struct xdp_prog *p, uint32_t addr, uint16_t port, uint32_t max_frame,
		     int xsk_fd)
{
	struct unet_port_val v = {.queue = p->queue, .max_frame = max_frame};
	int rc;

	p->key = (struct unet_port_key){.addr = addr, .port = port};
	rc = bpf_map_update_elem(p->xsks_fd, &p->queue, &xsk_fd, BPF_ANY);
	if (rc < 0)
		return rc;
	rc = bpf_map_update_elem(p->ports_fd, &p->key, &v, BPF_NOEXIST);
	if (rc < 0)
		return rc == -EEXIST ? -EADDRINUSE : rc;
	p->published = true;
	lock_drop(p);
	return 0;
}

int xdp_prog_counters(const struct xdp_prog *p, uint64_t *toobig, uint64_t *wrongq)
{
	struct unet_port_val v;
	int rc;

	*toobig = *wrongq = 0;
	if (!p->published)
		return -ENOENT;
	rc = bpf_map_lookup_elem(p->ports_fd, &p->key, &v);
	if (rc < 0)
		return rc;
	*toobig = v.toobig;
	*wrongq = v.wrongq;
	return 0;
}

void xdp_prog_close(struct xdp_prog *p)
{
	if (p->lock_fd < 0 && p->prog_fd >= 0 && lock_take(p) < 0) {
		/* Cannot coordinate: leave the program attached. A later
		 * endpoint finds our entries dead and sweeps them. */
	}
	if (p->published)
		bpf_map_delete_elem(p->ports_fd, &p->key);
	p->published = false;
	if (p->xsks_fd >= 0 && p->queue_fd >= 0)
		bpf_map_delete_elem(p->xsks_fd, &p->queue);
	if (p->queue_fd >= 0)
		close(p->queue_fd);
	p->queue_fd = -1;
	if (p->ports_fd >= 0 && p->lock_fd >= 0 && sweep(p) == 0)
		detach(p);
	fds_close(p);
	lock_drop(p);
}
#endif /* UNET_HAVE_XDP */
