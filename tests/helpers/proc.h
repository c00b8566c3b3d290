/*
 * proc.h - process plumbing shared by the multi-process tests.
 *
 * The shm NIC is about processes, so most tests fork: a child runs one
 * function and reports through its exit code (never through cmocka, whose
 * jump buffers belong to the parent), shared state lives in MAP_SHARED pages,
 * and every wait has a deadline so a hung peer fails a test instead of
 * hanging the suite. Linked into every test program: no main(), no cmocka.
 */
#ifndef TESTS_HELPERS_PROC_H
#define TESTS_HELPERS_PROC_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Fork a child that runs fn(arg) and _exit()s with its return value. */
pid_t proc_fork(int (*fn)(void *), void *arg);

/* Reap `pid` within timeout_ms. Returns its exit code (0..255), 128+signal
 * when it was killed, or -ETIMEDOUT (the child is then killed and reaped). */
int proc_wait(pid_t pid, int timeout_ms);

/* SIGKILL one child by pid and reap it. */
void proc_kill(pid_t pid);

/* Kill and reap every child of proc_fork() not yet reaped (a failed
 * assertion leaves them behind). Shaped as a cmocka teardown, returns 0. */
int proc_teardown(void **state);

/* Zeroed memory shared with children forked afterwards. */
void *proc_shared(size_t size);
void proc_unshare(void *p, size_t size);

/* Spin briefly, then sleep in short steps, until *p >= want (returns 0) or
 * timeout_ms passes (-ETIMEDOUT). */
int proc_wait_u32(const uint32_t *p, uint32_t want, int timeout_ms);
void proc_set_u32(uint32_t *p, uint32_t v);
uint32_t proc_get_u32(const uint32_t *p);

/* Open file descriptors / memory mappings of this process right now. */
int proc_count_fds(void);
int proc_count_maps(void);
/* Mappings whose path contains `what` ("memfd:"), and mapped bytes in all. */
int proc_count_maps_of(const char *what);
uint64_t proc_mapped_bytes(void);

/* A host-wide unique endpoint name: "<tag>-<pid>-<counter>". */
void proc_name(char *out, size_t n, const char *tag);

/* Milliseconds on the monotonic clock. */
uint64_t proc_now_ms(void);

#endif /* TESTS_HELPERS_PROC_H */
