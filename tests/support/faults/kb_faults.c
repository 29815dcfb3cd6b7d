/*
 * kb_faults.c - disk faults for integration tests, preloaded into ketenbusd
 * (LD_PRELOAD) when a test sets kb_chain_t.faults (tests/support/kb_test.h).
 *
 * Each fault is switched on by a file in the directory named by $KB_FAULTS
 * and touches only the LevelDB log files (`*.log`) of a `data` directory.
 * A write fault whose file holds text fails only a write that contains that
 * text (audit records are stored as plain protobuf, so a reason names the
 * write it is in); an empty file fails the next write.
 *
 *   log-write-enospc  the next write() to such a log from the broker's main
 *                     thread (the loop: admin commands, checkpoints, the
 *                     start) fails with ENOSPC, as on a full disk; the file
 *                     is removed, so it happens once
 *   commit-write-enospc  the same, for the next write() from another thread
 *                     (the committer, which writes what adapters submit)
 *   disk-full         while the file exists, every write() to any file of
 *                     a data directory fails with ENOSPC, from any thread
 *                     (LevelDB cannot open the store again either)
 *   fdatasync-slow    while the file exists, every fdatasync() of such a
 *                     log from another thread (the committer) takes 400 ms
 *                     longer, so that work piles up behind a write
 *
 * Built without sanitizers as build[/san]/tests/libkbfaults.so; not part of
 * anything users run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

/* 1 if the fault file `name` exists in $KB_FAULTS. */
static int s_fault(const char *name)
{
    const char *dir = getenv("KB_FAULTS");
    char path[PATH_MAX];
    if (!dir || snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return 0;
    return access(path, F_OK) == 0;
}

/* 1 if fd is a file in a data directory; with log, a LevelDB log there. */
static int s_in_data(int fd, int log)
{
    char link[64], target[PATH_MAX];
    snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
    ssize_t n = readlink(link, target, sizeof target - 1);
    if (n < 5)
        return 0;
    target[n] = '\0';
    return strstr(target, "/data/") != NULL && (!log || strcmp(target + n - 4, ".log") == 0);
}

static int s_is_log(int fd)
{
    return s_in_data(fd, 1);
}

/* 1 if the write fault `name` is on and buf holds its text (if any); the
 * file is then removed, so the fault happens once. */
static int s_write_fault(const char *name, const void *buf, size_t len)
{
    const char *dir = getenv("KB_FAULTS");
    char path[PATH_MAX], needle[256];
    if (!dir || snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, needle, sizeof needle);
    close(fd);
    if (n < 0 || (n > 0 && !memmem(buf, len, needle, (size_t)n)))
        return 0;
    return unlink(path) == 0;
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
    if (s_fault("disk-full") && s_in_data(fd, 0)) {
        errno = ENOSPC;
        return -1;
    }
    if (s_is_log(fd) && s_write_fault(s_main_thread() ? "log-write-enospc" : "commit-write-enospc", buf, len)) {
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
    if (!s_main_thread() && s_is_log(fd) && s_fault("fdatasync-slow")) {
        struct timespec ts = {0, 400 * 1000000L};
        nanosleep(&ts, NULL);
    }
    return real(fd);
}
