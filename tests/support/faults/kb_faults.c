/*
 * kb_faults.c - disk faults for integration tests, preloaded into ketenbusd
 * (LD_PRELOAD) when a test sets kb_chain_t.faults (tests/support/kb_test.h).
 *
 * Each fault is switched on by a file in the directory named by $KB_FAULTS
 * and touches only the LevelDB log files (`*.log`) of a `data` directory:
 *
 *   log-write-enospc  the next write() to such a log from the broker's main
 *                     thread (the loop: admin commands, checkpoints, the
 *                     start) fails with ENOSPC, as on a full disk; the file
 *                     is removed, so it happens once
 *   commit-write-enospc  the same, for the next write() from another thread
 *                     (the committer, which writes what adapters submit)
 *   fdatasync-slow    while the file exists, every fdatasync() of such a
 *                     log from another thread (the committer) takes 400 ms
 *                     longer, so that work piles up behind a write
 *
 * Built without sanitizers as build[/san]/tests/libkbfaults.so; not part of
 * anything users run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* 1 if the fault file `name` exists in $KB_FAULTS; with take, remove it. */
static int s_fault(const char *name, int take)
{
    const char *dir = getenv("KB_FAULTS");
    char path[PATH_MAX];
    if (!dir || snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return 0;
    if (access(path, F_OK) != 0)
        return 0;
    return take ? unlink(path) == 0 : 1;
}

/* 1 if fd is a LevelDB log in a data directory. */
static int s_is_log(int fd)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 5)
        return 0;
    target[n] = '\0';
    return strstr(target, "/data/") != NULL && strcmp(target + n - 4, ".log") == 0;
}

static int s_main_thread(void)
{
    return (pid_t)syscall(SYS_gettid) == getpid();
}

ssize_t write(int fd, const void *buf, size_t len)
{
    static ssize_t (*real)(int, const void *, size_t);
    if (!real)
        real = (ssize_t(*)(int, const void *, size_t))dlsym(RTLD_NEXT, "write");
    if (s_is_log(fd) && s_fault(s_main_thread() ? "log-write-enospc" : "commit-write-enospc", 1)) {
        errno = ENOSPC;
        return -1;
    }
    return real(fd, buf, len);
}

int fdatasync(int fd)
{
    static int (*real)(int);
    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (!s_main_thread() && s_is_log(fd) && s_fault("fdatasync-slow", 0)) {
        struct timespec ts = {0, 400 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return real(fd);
}
