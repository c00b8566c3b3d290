/*
 * test_shm_protect.c - what a peer can and cannot reach on the shm NIC.
 *
 * By construction: a peer maps only its channel's receive area. The test
 * plants secret pages in the receiver's application segment and in the
 * receive area of another channel, then has the peer scan every readable
 * mapping it has for them (none found), while positive controls show that
 * the same scan does find pages in mappings shared with the receiver.
 * By permission: a process of another uid is refused at the hand-shake and
 * cannot reach the endpoint's memory through /proc either (needs root to
 * set up; skipped otherwise).
 * Against a hostile peer: a process that speaks the hand-shake itself (the
 * wire format is mirrored below) and hands over a zero buffer size, an
 * unsealed or short area, a blocking pipe for a doorbell, lying rings, or
 * writes garbage descriptors into our receive ring: the endpoint refuses,
 * drops and counts, never crashes or hangs. The victim runs in a child so
 * a crash or hang shows as an exit status or a timeout.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <cmocka.h>

#include "helpers/proc.h"
#include "helpers/shm_peer.h"
#include "unet/ring.h"

#define TMO 10000
#define PAGE 4096

/* ---- scanning our own address space --------------------------------------- */

static uint8_t scratch[PAGE] __attribute__((aligned(PAGE)));

/* Pages anywhere in our readable memory that hold exactly pattern(key).
 * Reads through /proc/self/mem so an odd mapping gives an error, not a
 * signal; the pattern itself is never materialised (pattern_check computes
 * it byte by byte), and the scratch page is left out. */
static int scan_for(uint64_t key)
{
	static char maps[1 << 20];
	int fd = open("/proc/self/maps", O_RDONLY);
	size_t len = 0;
	ssize_t r;
	int found = 0;

	if (fd < 0)
		return -1;
	while ((r = read(fd, maps + len, sizeof(maps) - 1 - len)) > 0)
		len += (size_t)r;
	close(fd);
	maps[len] = 0;
	int mem = open("/proc/self/mem", O_RDONLY);
	if (mem < 0)
		return -1;
	for (char *line = maps; line && *line;) {
		char *next = strchr(line, '\n');
		unsigned long long a, b;
		char perm[8];
		if (next)
			*next++ = 0;
		if (sscanf(line, "%llx-%llx %7s", &a, &b, perm) == 3 && perm[0] == 'r' &&
		    !strstr(line, "[vvar") && !strstr(line, "[vsyscall]") &&
		    b - a <= (256ull << 20) /* not ASan's shadow */) {
			for (unsigned long long p = a; p < b; p += PAGE) {
				if (p == (unsigned long long)(uintptr_t)scratch)
					continue;
				if (pread(mem, scratch, PAGE, (off_t)p) == PAGE &&
				    pattern_check(scratch, PAGE, key) == 0)
					found++;
			}
		}
		line = next;
	}
	memset(scratch, 0, sizeof(scratch));
	close(mem);
	return found;
}

/* ---- a peer sees only its channel's receive area ------------------------- */

enum { K_APP = 0x5ec4e7, K_OTHER = 0x07e4, K_TO_PEER = 0x10, K_FROM_PEER = 0x20 };

struct board {
	char a[UNET_NAME_MAX], b[UNET_NAME_MAX], c[UNET_NAME_MAX];
	uint32_t step, other_done;
	int32_t found_app, found_other, found_to_peer, found_from_peer;
};

static const struct unet_ep_attr page_bufs = {.rx_buf_size = PAGE, .rx_bufs = 8};

/* The scanning peer, on channel 1 of A. */
static int child_scanner(void *arg)
{
	struct board *w = arg;
	struct peer p;
	struct unet_desc d;

	if (peer_open(&p, w->b, &page_bufs))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	/* A's message to us (control: in our own receive area). */
	if (peer_recv(&p, &d, 1, TMO) != 1 || d.len != PAGE)
		return 12;
	/* Ours to A, lands in A's receive area for this channel, which we
	 * map (control: found twice, our source and A's area). */
	pattern_fill(p.seg + PAGE, PAGE, K_FROM_PEER);
	struct unet_desc s = {.chan = (uint16_t)ch, .off = PAGE, .len = PAGE};
	if (unet_send(p.ep, &s, 1) != 1)
		return 13;
	if (proc_wait_u32(&w->step, 1, TMO)) /* A has planted its secrets */
		return 14;
	w->found_app = scan_for(K_APP);
	w->found_other = scan_for(K_OTHER);
	w->found_to_peer = scan_for(K_TO_PEER);
	w->found_from_peer = scan_for(K_FROM_PEER);
	proc_set_u32(&w->step, 2);
	proc_wait_u32(&w->step, 3, TMO);
	peer_close(&p);
	return 0;
}

/* Another peer, on channel 2 of A: sends a secret page into A's area. */
static int child_other(void *arg)
{
	struct board *w = arg;
	struct peer p;

	if (peer_open(&p, w->c, &page_bufs))
		return 10;
	int ch = unet_chan_open(p.ep, w->a, TMO);
	if (ch < 0)
		return 11;
	pattern_fill(p.seg, PAGE, K_OTHER);
	struct unet_desc s = {.chan = (uint16_t)ch, .off = 0, .len = PAGE};
	if (unet_send(p.ep, &s, 1) != 1)
		return 12;
	proc_set_u32(&w->other_done, 1);
	proc_wait_u32(&w->step, 3, TMO);
	peer_close(&p);
	return 0;
}

static void test_peer_sees_only_its_area(void **state)
{
	struct board *w = proc_shared(sizeof(*w));
	struct peer p;
	struct unet_desc d;

	assert_non_null(w);
	proc_name(w->a, sizeof(w->a), "pa");
	proc_name(w->b, sizeof(w->b), "pb");
	proc_name(w->c, sizeof(w->c), "pc");
	/* Both children exist before A has any secret: their copy of our
	 * memory (fork) holds none. */
	pid_t scanner = proc_fork(child_scanner, w);
	pid_t other = proc_fork(child_other, w);
	assert_int_equal(peer_open(&p, w->a, &page_bufs), 0);
	int ch_b = unet_chan_open(p.ep, w->b, TMO);
	int ch_c = unet_chan_open(p.ep, w->c, TMO);
	assert_true(ch_b >= 0 && ch_c >= 0);
	/* Control: a page we send lands in the scanner's own area. */
	pattern_fill(p.seg + 8 * PAGE, PAGE, K_TO_PEER);
	struct unet_desc s = {.chan = (uint16_t)ch_b, .off = 8 * PAGE, .len = PAGE};
	assert_int_equal(unet_send(p.ep, &s, 1), 1);
	memset(p.seg + 8 * PAGE, 0, PAGE); /* so the copy is only in B's area */
	/* Secrets: pages of our application segment, and a message from C in
	 * C's receive area (received, held, in our address space). */
	for (int i = 0; i < 4; i++)
		pattern_fill(p.seg + (size_t)(16 + i) * PAGE, PAGE, K_APP);
	assert_int_equal(proc_wait_u32(&w->other_done, 1, TMO), 0);
	int got_c = 0, got_b = 0;
	while (!got_c || !got_b) {
		assert_int_equal(peer_recv(&p, &d, 1, TMO), 1);
		assert_int_equal(d.len, PAGE);
		if (d.chan == ch_c) {
			assert_int_equal(pattern_check(unet_ptr(p.ep, d.off), PAGE, K_OTHER), 0);
			got_c = 1;
		} else {
			assert_int_equal(d.chan, ch_b);
			got_b = 1;
		}
	}
	proc_set_u32(&w->step, 1);
	assert_int_equal(proc_wait_u32(&w->step, 2, 60000), 0);
	print_message("scanner found: app secret %d, other channel's secret %d, "
		      "controls %d and %d\n",
		      w->found_app, w->found_other, w->found_to_peer, w->found_from_peer);
	assert_int_equal(w->found_app, 0);
	assert_int_equal(w->found_other, 0);
	assert_true(w->found_to_peer >= 1);   /* its own receive area */
	assert_true(w->found_from_peer >= 2); /* its source and our area */
	/* And in A itself the scan does see its secrets (the method works). */
	assert_true(scan_for(K_APP) >= 4);
	assert_true(scan_for(K_OTHER) >= 1);
	proc_set_u32(&w->step, 3);
	assert_int_equal(proc_wait(scanner, TMO), 0);
	assert_int_equal(proc_wait(other, TMO), 0);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- another uid --------------------------------------------------------- */

struct uid_board {
	char a[UNET_NAME_MAX], b[UNET_NAME_MAX];
	pid_t victim;
	int32_t open_rc, proc_fds_opened, mem_opened, vm_read;
	uint32_t ready, done;
};

static int child_other_uid(void *arg)
{
	struct uid_board *w = arg;
	struct peer p;
	char path[64];

	if (setgroups(0, NULL) || setgid(65534) || setuid(65534))
		return 10;
	if (proc_wait_u32(&w->ready, 1, TMO))
		return 12;
	if (peer_open(&p, w->b, NULL))
		return 11;
	w->open_rc = unet_chan_open(p.ep, w->a, TMO);
	/* Nor around the hand-shake, through the victim's fds or memory. */
	for (int fd = 0; fd < 256; fd++) {
		snprintf(path, sizeof(path), "/proc/%d/fd/%d", (int)w->victim, fd);
		int f = open(path, O_RDONLY);
		if (f >= 0) {
			w->proc_fds_opened++;
			close(f);
		}
	}
	snprintf(path, sizeof(path), "/proc/%d/mem", (int)w->victim);
	int m = open(path, O_RDONLY);
	w->mem_opened = m >= 0;
	if (m >= 0)
		close(m);
	char buf[8];
	struct iovec l = {buf, 8}, r = {(void *)w, 8};
	w->vm_read = process_vm_readv(w->victim, &l, 1, &r, 1, 0) >= 0;
	proc_set_u32(&w->done, 1);
	peer_close(&p);
	return 0;
}

static void test_other_uid_refused(void **state)
{
	if (geteuid() != 0) {
		print_message("not root: cannot make a process of another uid; skipped\n");
		skip();
	}
	struct uid_board *w = proc_shared(sizeof(*w));
	struct peer p;

	assert_non_null(w);
	proc_name(w->a, sizeof(w->a), "ua");
	proc_name(w->b, sizeof(w->b), "ub");
	w->victim = getpid();
	/* Forked first: it inherits nothing of the endpoint. */
	pid_t pid = proc_fork(child_other_uid, w);
	assert_int_equal(peer_open(&p, w->a, NULL), 0);
	int fds = proc_count_fds();
	proc_set_u32(&w->ready, 1);
	uint64_t t0 = proc_now_ms();
	while (!proc_get_u32(&w->done) && proc_now_ms() - t0 < TMO)
		unet_wait(p.ep, 10); /* service the endpoint: the hand-shake */
	assert_int_equal(proc_wait(pid, TMO), 0);
	assert_int_equal(w->open_rc, -EPERM);
	assert_int_equal(w->proc_fds_opened, 0);
	assert_int_equal(w->mem_opened, 0);
	assert_int_equal(w->vm_read, 0);
	for (unsigned i = 0; i < 64; i++)
		assert_int_equal(unet_chan_status(p.ep, i), -ENOTCONN);
	unet_progress(p.ep);
	assert_int_equal(proc_count_fds(), fds);
	peer_close(&p);
	proc_unshare(w, sizeof(*w));
}

/* ---- a hostile peer -------------------------------------------------------- */

/* Mirror of nic_shm.c's hand-shake and area layout (a test of the wire
 * format as much as of the endpoint: change both together). */
#define W_MAGIC 0x554e4554u
#define W_VERSION 1u
enum { W_HELLO = 1, W_WELCOME = 2, W_REFUSE = 3 };
struct w_msg {
	uint32_t magic, version, type;
	int32_t code;
	char name[UNET_NAME_MAX];
	int32_t pid;
};
struct w_area {
	uint32_t magic, version;
	uint32_t rq_depth, fq_size, nbufs, buf_size;
	uint64_t rq_off, fq_off, buf_off, size;
	_Alignas(UNET_CACHELINE) uint64_t drop_nobuf, drop_full, drop_bad;
};

static uint64_t up(uint64_t v, uint64_t a)
{
	return (v + a - 1) / a * a;
}

struct fake {
	char name[UNET_NAME_MAX];
	int sock, area_fd, bell[2];
	uint8_t *area;
	struct w_area g;
	struct unet_ring rq, fq; /* views of our own (fake) area */
	uint8_t *peer_area;       /* the victim's area, from its WELCOME */
	size_t peer_size;
};

/* Build a receive area as nic_shm.c would, then let `how` spoil it. */
enum { F_GOOD, F_ZERO_BUF, F_ODD_BUF, F_UNSEALED, F_SHORT, F_PIPE_BELL, F_LYING_FQ };

static void fake_area(struct fake *f, int how)
{
	struct w_area *g = &f->g;
	uint32_t nbufs = 8, bs = how == F_ZERO_BUF ? 0 : how == F_ODD_BUF ? 100 : 1024;

	memset(g, 0, sizeof(*g));
	g->magic = W_MAGIC;
	g->version = W_VERSION;
	g->rq_depth = 64;
	g->nbufs = nbufs;
	g->fq_size = 8;
	g->buf_size = bs;
	g->rq_off = up(sizeof(*g), UNET_CACHELINE);
	g->fq_off = up(g->rq_off + unet_ring__bytes(g->rq_depth, sizeof(struct unet_desc)),
		       UNET_CACHELINE);
	g->buf_off = up(g->fq_off + unet_ring__bytes(g->fq_size, 8), PAGE);
	g->size = up(g->buf_off + (uint64_t)nbufs * bs, PAGE);
	f->area_fd = memfd_create("fake", MFD_ALLOW_SEALING);
	assert_true(f->area_fd >= 0);
	assert_int_equal(ftruncate(f->area_fd, (off_t)(how == F_SHORT ? PAGE : g->size)), 0);
	if (how != F_UNSEALED)
		assert_int_equal(fcntl(f->area_fd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW), 0);
	f->area = mmap(NULL, g->size, PROT_READ | PROT_WRITE, MAP_SHARED, f->area_fd, 0);
	assert_true(f->area != MAP_FAILED);
	if (how != F_SHORT) {
		memcpy(f->area, g, sizeof(*g));
		unet_ring_attach(&f->rq, f->area + g->rq_off, g->rq_depth, sizeof(struct unet_desc),
				 1);
		unet_ring_attach(&f->fq, f->area + g->fq_off, g->fq_size, 8, 1);
		f->fq.pub = 0;
		uint32_t idx;
		unet_ring_prod__reserve(&f->fq, nbufs, &idx);
		for (uint32_t b = 0; b < nbufs; b++) {
			uint64_t off = (uint64_t)b * bs;
			if (how == F_LYING_FQ) /* unaligned, past the end, huge */
				off = b % 3 == 0 ? 7 : b % 3 == 1 ? (uint64_t)nbufs * bs : ~0ull - b;
			*(uint64_t *)unet_ring__slot(&f->fq, idx + b) = off;
		}
		unet_ring_prod__submit(&f->fq, nbufs);
		if (how == F_LYING_FQ) /* and a producer index from nowhere */
			__atomic_store_n(&f->fq.hdr->prod, 0x80000000u, __ATOMIC_RELEASE);
	}
	if (how == F_PIPE_BELL) {
		/* A full, blocking pipe as the doorbell, and ask to be rung. */
		assert_int_equal(pipe(f->bell), 0);
		fcntl(f->bell[1], F_SETFL, O_NONBLOCK);
		char junk[4096] = {0};
		while (write(f->bell[1], junk, sizeof(junk)) > 0)
			;
		fcntl(f->bell[1], F_SETFL, 0);
		__atomic_store_n(&f->rq.hdr->flags, UNET_RING_NEED_WAKEUP, __ATOMIC_RELEASE);
	} else {
		f->bell[0] = -1;
		f->bell[1] = eventfd(0, EFD_NONBLOCK);
	}
}

static void fake_hello(struct fake *f, const char *victim)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	int n = snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "unet.shm.%s", victim);
	struct w_msg m = {.magic = W_MAGIC, .version = W_VERSION, .type = W_HELLO,
			  .pid = (int32_t)getpid()};
	int fds[2] = {f->area_fd, f->bell[1]};
	union {
		char buf[CMSG_SPACE(sizeof(fds))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {&m, sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};

	strcpy(m.name, f->name);
	f->sock = socket(AF_UNIX, SOCK_SEQPACKET, 0);
	assert_true(f->sock >= 0);
	assert_int_equal(connect(f->sock, (struct sockaddr *)&sa,
				 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + (size_t)n)),
			 0);
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	c->cmsg_level = SOL_SOCKET;
	c->cmsg_type = SCM_RIGHTS;
	c->cmsg_len = CMSG_LEN(sizeof(fds));
	memcpy(CMSG_DATA(c), fds, sizeof(fds));
	assert_int_equal(sendmsg(f->sock, &mh, 0), (ssize_t)sizeof(m));
}

/* The victim's answer: WELCOME (mapping its area) or REFUSE; returns the
 * message type and puts a REFUSE's code in *code. */
static int fake_answer(struct fake *f, int32_t *code)
{
	struct w_msg m;
	union {
		char buf[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} u;
	struct iovec iov = {&m, sizeof(m)};
	struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = u.buf,
			    .msg_controllen = sizeof(u.buf)};
	struct timeval tv = {10, 0};

	setsockopt(f->sock, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	ssize_t n = recvmsg(f->sock, &mh, 0);
	if (n != (ssize_t)sizeof(m))
		return -1;
	*code = m.code;
	struct cmsghdr *c = CMSG_FIRSTHDR(&mh);
	if (m.type == W_WELCOME && c && c->cmsg_type == SCM_RIGHTS) {
		int fds[4];
		int k = (int)((c->cmsg_len - CMSG_LEN(0)) / sizeof(int));
		memcpy(fds, CMSG_DATA(c), (size_t)k * sizeof(int));
		struct stat st;
		fstat(fds[0], &st);
		f->peer_size = (size_t)st.st_size;
		f->peer_area = mmap(NULL, f->peer_size, PROT_READ | PROT_WRITE, MAP_SHARED, fds[0], 0);
		for (int i = 0; i < k; i++)
			close(fds[i]);
	}
	return (int)m.type;
}

static void fake_free(struct fake *f)
{
	if (f->peer_area && f->peer_area != MAP_FAILED)
		munmap(f->peer_area, f->peer_size);
	munmap(f->area, f->g.size);
	close(f->area_fd);
	close(f->sock);
	for (int i = 0; i < 2; i++)
		if (f->bell[i] >= 0)
			close(f->bell[i]);
}

/* The victim: an endpoint that opens a channel to the fake and uses it as
 * told. Exits 0 when everything it saw matched. */
struct victim_board {
	char name[UNET_NAME_MAX], fake[UNET_NAME_MAX];
	int32_t how, open_rc, ch;
	uint32_t ready, go, done;
	int32_t comp_status[8];
	uint32_t ncomp, nrecv, recv_len[8];
	struct unet_stats st;
};

static int child_victim(void *arg)
{
	struct victim_board *w = arg;
	struct peer p;
	struct unet_desc d[16];

	if (peer_open(&p, w->name, NULL))
		return 10;
	proc_set_u32(&w->ready, 1);
	if (proc_wait_u32(&w->go, 1, TMO)) /* the fake's HELLO is queued */
		return 11;
	w->open_rc = w->ch = unet_chan_open(p.ep, w->fake, 300);
	if (w->ch >= 0) {
		/* Use it: inline and segment sends, len 0 and more. */
		for (uint32_t i = 0; i < 6; i++) {
			struct unet_desc s = {.chan = (uint16_t)w->ch, .off = 0,
					      .len = i % 2 ? 0 : 16,
					      .flags = i < 2 ? UNET_DF_INLINE : 0};
			unet_send(p.ep, &s, 1);
		}
		struct unet_comp c[8];
		w->ncomp = (uint32_t)unet_poll_comp(p.ep, c, 8);
		for (uint32_t i = 0; i < w->ncomp; i++)
			w->comp_status[i] = c[i].status;
		proc_set_u32(&w->done, 1);
		/* Then take whatever the fake put in our receive ring. */
		proc_wait_u32(&w->go, 2, TMO);
		int n;
		while ((n = peer_recv(&p, d, 16, 200)) > 0)
			for (int i = 0; i < n && w->nrecv < 8; i++) {
				if (d[i].flags & UNET_DF_CHAN_DOWN)
					continue;
				w->recv_len[w->nrecv++] = d[i].len;
				unet_release(p.ep, &d[i], 1);
			}
	}
	unet_get_stats(p.ep, &w->st);
	proc_set_u32(&w->done, 2);
	peer_close(&p);
	return 0;
}

static struct victim_board *victim_start(int how, struct fake *f, pid_t *pid)
{
	struct victim_board *w = proc_shared(sizeof(*w));

	assert_non_null(w);
	memset(f, 0, sizeof(*f));
	proc_name(w->name, sizeof(w->name), "victim");
	proc_name(f->name, sizeof(f->name), "fake");
	strcpy(w->fake, f->name);
	w->how = how;
	*pid = proc_fork(child_victim, w);
	assert_int_equal(proc_wait_u32(&w->ready, 1, TMO), 0);
	fake_area(f, how);
	fake_hello(f, w->name);
	proc_set_u32(&w->go, 1);
	return w;
}

static void run_refused(int how)
{
	struct fake f;
	pid_t pid;
	int32_t code = 0;
	struct victim_board *w = victim_start(how, &f, &pid);

	assert_int_equal(fake_answer(&f, &code), W_REFUSE);
	assert_int_equal(code, -EBADMSG);
	proc_set_u32(&w->go, 2);
	assert_int_equal(proc_wait(pid, TMO), 0); /* no crash */
	assert_true(w->open_rc < 0);             /* our name has no listener: */
	assert_int_equal(w->open_rc, -ENOENT);   /* the dial found nobody */
	fake_free(&f);
	proc_unshare(w, sizeof(*w));
}

static void test_hostile_zero_buffer_size(void **state)
{
	run_refused(F_ZERO_BUF);
}

static void test_hostile_odd_buffer_size(void **state)
{
	run_refused(F_ODD_BUF);
}

static void test_hostile_unsealed_area(void **state)
{
	run_refused(F_UNSEALED);
}

static void test_hostile_short_area(void **state)
{
	run_refused(F_SHORT);
}

/* A doorbell that would block: the victim must not hang ringing it. */
static void test_hostile_blocking_doorbell(void **state)
{
	struct fake f;
	pid_t pid;
	int32_t code = 0;
	struct victim_board *w = victim_start(F_PIPE_BELL, &f, &pid);

	assert_int_equal(fake_answer(&f, &code), W_WELCOME);
	assert_int_equal(proc_wait_u32(&w->done, 1, 5000), 0); /* not stuck in write() */
	proc_set_u32(&w->go, 2);
	assert_int_equal(proc_wait(pid, TMO), 0);
	assert_true(w->ch >= 0);
	/* Everything arrived in the fake's ring, and the sends completed. */
	assert_int_equal(w->ncomp, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(w->comp_status[i], 0);
	uint32_t idx;
	assert_int_equal(unet_ring_cons__peek(&f.rq, 64, &idx), 6);
	fake_free(&f);
	proc_unshare(w, sizeof(*w));
}

/* A free queue full of lies: every segment send is refused and counted,
 * inline ones (no buffer) get through. */
static void test_hostile_free_queue(void **state)
{
	struct fake f;
	pid_t pid;
	int32_t code = 0;
	struct victim_board *w = victim_start(F_LYING_FQ, &f, &pid);

	assert_int_equal(fake_answer(&f, &code), W_WELCOME);
	assert_int_equal(proc_wait_u32(&w->done, 1, 5000), 0);
	proc_set_u32(&w->go, 2);
	assert_int_equal(proc_wait(pid, TMO), 0);
	assert_int_equal(w->ncomp, 4);
	for (int i = 0; i < 4; i++)
		assert_int_equal(w->comp_status[i], -EBADMSG);
	assert_int_equal(w->st.tx_msgs, 2);
	assert_int_equal(w->st.tx_dropped, 4);
	assert_int_equal(((struct w_area *)f.area)->drop_bad, 4);
	fake_free(&f);
	proc_unshare(w, sizeof(*w));
}

/* A sender writing garbage into our receive ring: only the well-formed
 * descriptors come out, the rest are dropped and counted. */
static void test_hostile_descriptors(void **state)
{
	struct fake f;
	pid_t pid;
	int32_t code = 0;
	struct victim_board *w = victim_start(F_GOOD, &f, &pid);

	assert_int_equal(fake_answer(&f, &code), W_WELCOME);
	assert_non_null(f.peer_area);
	assert_true(f.peer_area != MAP_FAILED);
	assert_int_equal(proc_wait_u32(&w->done, 1, 5000), 0);
	/* The victim's area, read as its sender would. */
	const struct w_area *g = (const struct w_area *)f.peer_area;
	struct unet_ring rq;
	assert_int_equal(unet_ring_attach(&rq, f.peer_area + g->rq_off, g->rq_depth,
					  sizeof(struct unet_desc), 0),
			 0);
	uint32_t shift = (uint32_t)__builtin_ctz(g->rq_depth), bs = g->buf_size;
	struct unet_desc bad[] = {
		{.off = 7, .len = 10},		      /* not a buffer boundary */
		{.off = (uint64_t)g->nbufs * bs, .len = 1}, /* past the last buffer */
		{.off = ~0ull - bs + 1, .len = 1},	      /* wraps */
		{.off = 0, .len = bs + 1},		      /* longer than the buffer */
		{.off = 0, .len = 5, .flags = 0x40},	      /* unknown flag */
		{.len = UNET_INLINE_MAX + 1, .flags = UNET_DF_INLINE},
		{.off = bs, .len = 100},		      /* good */
		{.off = bs, .len = 100},		      /* the same buffer again */
		{.len = 12, .flags = UNET_DF_INLINE},	      /* good */
		{.off = 0, .len = 0, .flags = UNET_DF_CHAN_DOWN}, /* forged event */
	};
	const unsigned nbad = sizeof(bad) / sizeof(bad[0]);
	for (uint32_t i = 0; i < nbad; i++) {
		struct unet_desc *s = unet_ring__slot(&rq, i);
		uint16_t tag = (uint16_t)((i >> shift) + 1);
		s->off = bad[i].off;
		s->len = bad[i].len;
		s->flags = bad[i].flags;
		__atomic_store_n(&s->chan, tag, __ATOMIC_RELEASE);
	}
	__atomic_store_n(&rq.hdr->prod, 0xdeadbeef, __ATOMIC_RELEASE); /* and lie */
	proc_set_u32(&w->go, 2);
	assert_int_equal(proc_wait(pid, TMO), 0);
	assert_int_equal(w->nrecv, 2);
	assert_int_equal(w->recv_len[0], 100);
	assert_int_equal(w->recv_len[1], 12);
	assert_int_equal(w->st.rx_msgs, 2);
	assert_int_equal(w->st.rx_drop_bad, nbad - 2);
	fake_free(&f);
	proc_unshare(w, sizeof(*w));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_teardown(test_peer_sees_only_its_area, proc_teardown),
		cmocka_unit_test_teardown(test_other_uid_refused, proc_teardown),
		cmocka_unit_test_teardown(test_hostile_zero_buffer_size, proc_teardown),
		cmocka_unit_test_teardown(test_hostile_odd_buffer_size, proc_teardown),
		cmocka_unit_test_teardown(test_hostile_unsealed_area, proc_teardown),
		cmocka_unit_test_teardown(test_hostile_short_area, proc_teardown),
		cmocka_unit_test_teardown(test_hostile_blocking_doorbell, proc_teardown),
		cmocka_unit_test_teardown(test_hostile_free_queue, proc_teardown),
		cmocka_unit_test_teardown(test_hostile_descriptors, proc_teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
