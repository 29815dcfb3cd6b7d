/*
 * kb_faults.c - disk faults for integration tests, preloaded into ketenbusd
 * (LD_PRELOAD) when a test sets kb_chain_t.faults (tests/support/kb_test.h).
 *
 * Each fault is switched on by a file in the directory named by $KB_FAULTS
 * and touches only the LevelDB log files (`*.log`) of a `data` directory.
 * A write fault whose file holds text fails only a write that contains that
 * text (audit records are stored as plain protobuf, so a reason names the
 * write it is in), or that completes it when LevelDB's buffered writer cut
 * it between two write()s; an empty file fails the next write.
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
 *   fdatasync-stall   the same, 8 s longer: a disk that stalls while the
 *                     loop goes on reading what adapters send
 *
 * Built without sanitizers as build[/san]/tests/libkbfaults.so; not part of
 * anything users run.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
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

#define S_NEEDLE_MAX 256 /* longest text of a write fault */
#define S_TAILS 16       /* log files whose last bytes are kept */

/* The last bytes written to a few log fds, so that a text cut between two
 * write()s is still found. */
static struct {
    int fd;                              /* 0: free */
    size_t len;                          /* bytes kept */
    unsigned char b[S_NEEDLE_MAX - 1];   /* the last ones written */
} s_tails[S_TAILS];
static pthread_mutex_t s_tails_lock = PTHREAD_MUTEX_INITIALIZER;

/* Whether needle is in buf or starts in what fd got last and ends in buf. */
static int s_holds(int fd, const void *buf, size_t len, const char *needle, size_t nl)
{
    if (memmem(buf, len, needle, nl))
        return 1;
    unsigned char join[2 * S_NEEDLE_MAX];
    size_t jl = 0;
    pthread_mutex_lock(&s_tails_lock);
    for (int i = 0; i < S_TAILS; i++)
        if (s_tails[i].fd == fd) {
            size_t keep = s_tails[i].len < nl - 1 ? s_tails[i].len : nl - 1;
            memcpy(join, s_tails[i].b + s_tails[i].len - keep, keep);
            jl = keep;
        }
    pthread_mutex_unlock(&s_tails_lock);
    size_t head = len < nl - 1 ? len : nl - 1;
    memcpy(join + jl, buf, head);
    return memmem(join, jl + head, needle, nl) != NULL;
}

/* Keep the last bytes of what was written to fd (buf). */
static void s_remember(int fd, const void *buf, size_t len)
{
    pthread_mutex_lock(&s_tails_lock);
    int at = -1;
    for (int i = 0; i < S_TAILS && at < 0; i++)
        if (s_tails[i].fd == fd)
            at = i;
    for (int i = 0; i < S_TAILS && at < 0; i++)
        if (s_tails[i].fd == 0)
            at = i;
    if (at < 0)
        at = fd % S_TAILS;
    const size_t cap = sizeof s_tails[at].b;
    unsigned char join[2 * sizeof s_tails[at].b];
    size_t have = s_tails[at].fd == fd ? s_tails[at].len : 0, take = len < cap ? len : cap;
    memcpy(join, s_tails[at].b, have);
    memcpy(join + have, (const unsigned char *)buf + len - take, take);
    size_t keep = have + take < cap ? have + take : cap;
    memcpy(s_tails[at].b, join + have + take - keep, keep);
    s_tails[at].fd = fd;
    s_tails[at].len = keep;
    pthread_mutex_unlock(&s_tails_lock);
}

/* 1 if the write fault `name` is on and fd is getting its text (if any);
 * the file is then removed, so the fault happens once. */
static int s_write_fault(const char *name, int fd, const void *buf, size_t len)
{
    const char *dir = getenv("KB_FAULTS");
    char path[PATH_MAX], needle[S_NEEDLE_MAX];
    if (!dir || snprintf(path, sizeof path, "%s/%s", dir, name) >= (int)sizeof path)
        return 0;
    int ffd = open(path, O_RDONLY | O_CLOEXEC);
    if (ffd < 0)
        return 0;
    ssize_t n = read(ffd, needle, sizeof needle);
    close(ffd);
    if (n < 0 || (n > 0 && !s_holds(fd, buf, len, needle, (size_t)n)))
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
    if (!s_is_log(fd))
        return real(fd, buf, len);
    if (s_write_fault(s_main_thread() ? "log-write-enospc" : "commit-write-enospc", fd, buf, len)) {
        errno = ENOSPC;
        return -1;
    }
    ssize_t n = real(fd, buf, len);
    if (n > 0)
        s_remember(fd, buf, (size_t)n);
    return n;
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
    if (!s_main_thread() && s_is_log(fd) && s_fault("fdatasync-stall")) {
        struct timespec ts = {8, 0};
        nanosleep(&ts, NULL);
    }
    return real(fd);
}
