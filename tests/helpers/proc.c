/*
 * proc.c - see proc.h. Plain POSIX; the waits poll with growing sleeps
 * because the machine has two cores shared by several engineers' builds.
 */
#include "helpers/proc.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/wait.h>

/* Children not yet reaped, so a failed test can kill them by pid. */
static pid_t kids[256];

static void kid_track(pid_t pid, int add)
{
	for (unsigned i = 0; i < sizeof(kids) / sizeof(kids[0]); i++)
		if (kids[i] == (add ? 0 : pid)) {
			kids[i] = add ? pid : 0;
			return;
		}
}

uint64_t proc_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

pid_t proc_fork(int (*fn)(void *), void *arg)
{
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid == 0) {
		/* A crash must end the child and show in its exit status, not
		 * run the parent's test harness handlers in the child. */
		const int sigs[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT};
		for (unsigned i = 0; i < sizeof(sigs) / sizeof(sigs[0]); i++)
			signal(sigs[i], SIG_DFL);
		memset(kids, 0, sizeof(kids)); /* not ours to kill */
		_exit(fn(arg));
	}
	if (pid > 0)
		kid_track(pid, 1);
	return pid;
}

static int decode(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return 255;
}

int proc_wait(pid_t pid, int timeout_ms)
{
	uint64_t deadline = proc_now_ms() + (uint64_t)timeout_ms;
	unsigned sleep_us = 100;
	int status;

	for (;;) {
		pid_t r = waitpid(pid, &status, WNOHANG);
		if (r == pid) {
			kid_track(pid, 0);
			return decode(status);
		}
		if (r < 0)
			return -errno;
		if (proc_now_ms() >= deadline) {
			fprintf(stderr, "proc_wait: child %d still running after %d ms, killing it\n",
				(int)pid, timeout_ms);
			proc_kill(pid);
			return -ETIMEDOUT;
		}
		usleep(sleep_us);
		if (sleep_us < 20000)
			sleep_us *= 2;
	}
}

void proc_kill(pid_t pid)
{
	int status;

	if (pid <= 0)
		return;
	kill(pid, SIGKILL);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	kid_track(pid, 0);
}

int proc_teardown(void **state)
{
	(void)state;
	for (unsigned i = 0; i < sizeof(kids) / sizeof(kids[0]); i++)
		if (kids[i] > 0)
			proc_kill(kids[i]);
	return 0;
}

void *proc_shared(size_t size)
{
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	return p == MAP_FAILED ? NULL : p;
}

void proc_unshare(void *p, size_t size)
{
	if (p)
		munmap(p, size);
}

uint32_t proc_get_u32(const uint32_t *p)
{
	return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}

void proc_set_u32(uint32_t *p, uint32_t v)
{
	__atomic_store_n(p, v, __ATOMIC_RELEASE);
}

int proc_wait_u32(const uint32_t *p, uint32_t want, int timeout_ms)
{
	uint64_t deadline = proc_now_ms() + (uint64_t)timeout_ms;
	unsigned spins = 0, sleep_us = 50;

	while (proc_get_u32(p) < want) {
		if (++spins < 1000) {
			__builtin_ia32_pause();
			continue;
		}
		if (proc_now_ms() >= deadline)
			return -ETIMEDOUT;
		usleep(sleep_us);
		if (sleep_us < 5000)
			sleep_us *= 2;
	}
	return 0;
}

static int count_dir(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -errno;
	while ((e = readdir(d)) != NULL)
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n - 1; /* the directory stream's own fd */
}

int proc_count_fds(void)
{
	return count_dir("/proc/self/fd");
}

int proc_count_maps(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int n = 0, ch;

	if (!f)
		return -errno;
	while ((ch = fgetc(f)) != EOF)
		n += ch == '\n';
	fclose(f);
	return n;
}

int proc_count_maps_of(const char *what)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	int n = 0;

	if (!f)
		return -errno;
	while (fgets(line, sizeof(line), f))
		n += strstr(line, what) != NULL;
	fclose(f);
	return n;
}

uint64_t proc_mapped_bytes(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	char line[512];
	uint64_t total = 0;

	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		unsigned long long a, b;
		if (sscanf(line, "%llx-%llx", &a, &b) == 2)
			total += b - a;
	}
	fclose(f);
	return total;
}

void proc_name(char *out, size_t n, const char *tag)
{
	static unsigned counter;

	snprintf(out, n, "%s-%d-%u", tag, (int)getpid(), counter++);
}
