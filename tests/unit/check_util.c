/*
 * check_util.c - tests of lib/kb_util.c's file reader, kb_file_read().
 *
 * A regular file is read whole, up to and including its limit; one larger
 * is refused before it is read. A pipe (a configuration given as
 * `<(cat chain.yaml)` or on /dev/stdin) is read until its writer closes it,
 * however much its writer sends, and refused past the limit, never cut. A
 * regular file that grows while it is read is refused, never cut either.
 * Each pipe has a forked writer that the test reaps.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>

#include "kb_error.h"
#include "kb_util.h"
#include "kb_test.h"

#define ROWS(a)   (int)(sizeof(a) / sizeof((a)[0]))
#define S_GROW_MS 10000 /* how long the grown-file test tries to read while a writer appends */

static char s_dir[PATH_MAX]; /* scratch directory */

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/kbtest-util.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
}

static void s_teardown(void)
{
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", s_dir);
    ck_assert_int_eq(system(cmd), 0);
}

/* len bytes of a pattern a cut or a mix would show. */
static char *s_pattern(size_t len)
{
    char *p = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (char)('a' + (i * 7 + i / 251) % 26);
    return p;
}

static void s_write_file(const char *path, const char *bytes, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, bytes, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

/* A pipe whose forked writer sends len bytes of the pattern and exits;
 * *path names its read end as /dev/fd/N, as bash's <(...) does. */
static pid_t s_pipe_writer(size_t len, int *read_fd, char *path, size_t path_len)
{
    int fds[2];
    ck_assert_int_eq(pipe(fds), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        close(fds[0]);
        signal(SIGPIPE, SIG_DFL); /* a reader that stops early ends the writer */
        char *p = s_pattern(len);
        size_t done = 0;
        while (done < len) {
            ssize_t n = write(fds[1], p + done, len - done);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                _exit(1);
            done += (size_t)n;
        }
        _exit(0);
    }
    close(fds[1]); /* else the pipe never ends */
    *read_fd = fds[0];
    snprintf(path, path_len, "/dev/fd/%d", fds[0]);
    return pid;
}

/* ------------------------------------------------------- regular files */

typedef struct {
    size_t len;     /* bytes in the file */
    size_t max_len; /* limit given */
    int rc;         /* expected return */
} s_file_row_t;

static const s_file_row_t s_files[] = {
    {0, 16, KB_OK},
    {1, 16, KB_OK},
    {16, 16, KB_OK},      /* exactly the limit */
    {17, 16, KB_ETOOBIG}, /* one byte over */
    {1, 0, KB_ETOOBIG},
    {0, 0, KB_OK},
    {100000, 100000, KB_OK},
    {100001, 100000, KB_ETOOBIG},
};

START_TEST(test_regular_file)
{
    const s_file_row_t *row = &s_files[_i];
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/file-%d", s_dir, _i);
    char *bytes = s_pattern(row->len);
    s_write_file(path, bytes, row->len);
    char *got = NULL;
    size_t got_len = 12345;
    int rc = kb_file_read(path, row->max_len, &got, &got_len);
    ck_assert_msg(rc == row->rc, "row %d: %d (%s)", _i, rc, kb_last_error());
    if (rc == KB_OK) {
        ck_assert_uint_eq(got_len, row->len);
        ck_assert_int_eq(memcmp(got, bytes, row->len), 0);
        ck_assert_int_eq(got[got_len], '\0');
        free(got);
    } else {
        ck_assert_ptr_nonnull(strstr(kb_last_error(), path));
        ck_assert_ptr_nonnull(strstr(kb_last_error(), "limit"));
    }
    free(bytes);
}
END_TEST

START_TEST(test_missing_file)
{
    char path[PATH_MAX + 32], *got = NULL;
    snprintf(path, sizeof path, "%s/absent", s_dir);
    ck_assert_int_eq(kb_file_read(path, 16, &got, NULL), KB_ENOTFOUND);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "No such file"));
    ck_assert_int_eq(kb_file_read(s_dir, 16, &got, NULL), KB_EIO); /* a directory */
}
END_TEST

/* ---------------------------------------------------------------- pipes */

typedef struct {
    size_t len;     /* bytes the writer sends */
    size_t max_len; /* limit given */
    int rc;         /* expected return */
} s_pipe_row_t;

static const s_pipe_row_t s_pipes[] = {
    {0, 4096, KB_OK},                       /* an empty pipe is empty, not an error */
    {300, 4096, KB_OK},
    {KB_FILE_READ_CHUNK, KB_FILE_READ_CHUNK, KB_OK},
    {KB_FILE_READ_CHUNK + 1, KB_FILE_READ_CHUNK, KB_ETOOBIG},
    {1000000, 1000000, KB_OK},              /* many times the first chunk and the pipe's buffer */
    {1000001, 1000000, KB_ETOOBIG},
    {4000000, 100000, KB_ETOOBIG},          /* refused at the limit, not read to its end */
};

START_TEST(test_pipe)
{
    const s_pipe_row_t *row = &s_pipes[_i];
    int fd;
    char path[64], *got = NULL;
    size_t got_len = 0;
    pid_t pid = s_pipe_writer(row->len, &fd, path, sizeof path);
    int rc = kb_file_read(path, row->max_len, &got, &got_len);
    char error[KB_ERROR_MAX];
    snprintf(error, sizeof error, "%s", kb_last_error());
    close(fd);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    ck_assert_msg(rc == row->rc, "row %d: %d (%s)", _i, rc, error);
    if (rc == KB_OK) {
        ck_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        ck_assert_uint_eq(got_len, row->len);
        char *bytes = s_pattern(row->len);
        ck_assert_int_eq(memcmp(got, bytes, row->len), 0);
        ck_assert_int_eq(got[got_len], '\0');
        free(bytes);
        free(got);
    } else {
        char want[128];
        snprintf(want, sizeof want, "%s: more than %zu bytes, the limit", path, row->max_len);
        ck_assert_msg(strstr(error, want) != NULL, "row %d: want \"%s\" in \"%s\"", _i, want, error);
    }
}
END_TEST

/* ------------------------------------------------------ a file that grows */

/* A regular file appended to while it is read: each read returns the file
 * as it was, whole, or is refused as changed; it is never cut at the size
 * it had when it was opened. */
START_TEST(test_file_growing_while_read)
{
    char path[PATH_MAX + 32];
    snprintf(path, sizeof path, "%s/growing", s_dir);
    size_t start = 1u << 20;
    char *bytes = s_pattern(start);
    s_write_file(path, bytes, start);
    int64_t deadline = kb_mono_ms() + S_GROW_MS;
    pid_t parent = getpid();
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        /* bounded, should the test be stopped before it kills the writer */
        int fd = open(path, O_WRONLY | O_APPEND);
        while (fd >= 0 && getppid() == parent && kb_mono_ms() < deadline + 1000)
            if (write(fd, "x", 1) != 1)
                _exit(1);
        _exit(0);
    }
    /* no assertion until the writer is reaped */
    int refused = 0, read_ok = 0, cut = 0;
    char error[KB_ERROR_MAX] = "";
    while (!refused && !error[0] && kb_mono_ms() < deadline) {
        char *got = NULL;
        size_t got_len = 0;
        int rc = kb_file_read(path, 64u << 20, &got, &got_len);
        if (rc == KB_OK) {
            /* a read let through is the file as it was at some moment:
             * the pattern, then what was appended, nothing cut or mixed */
            read_ok++;
            cut += got_len < start || memcmp(got, bytes, start) != 0 ||
                   strspn(got + start, "x") != got_len - start;
            free(got);
        } else if (rc == KB_EIO && strstr(kb_last_error(), " changed while it was read; try again")) {
            snprintf(error, sizeof error, "%s", kb_last_error());
            refused = 1;
        } else {
            snprintf(error, sizeof error, "unexpected %d: %s", rc, kb_last_error());
        }
    }
    kill(pid, SIGKILL);
    int status;
    ck_assert_int_eq(waitpid(pid, &status, 0), pid);
    free(bytes);
    ck_assert_msg(cut == 0, "%d of %d reads let through were not the file", cut, read_ok);
    ck_assert_msg(refused, "never refused in %d ms (%d reads passed): %s", S_GROW_MS, read_ok, error);
    ck_assert_msg(strncmp(error, path, strlen(path)) == 0, "%s", error);
    ck_assert_str_eq(error + strlen(path), " changed while it was read; try again");
}
END_TEST

/* A file of /proc says its size is 0 and has content: it is read to its
 * end, not refused as a file that changed. */
START_TEST(test_pseudo_file)
{
    char *got = NULL;
    size_t len = 0;
    ck_assert_msg(kb_file_read("/proc/self/status", 1u << 20, &got, &len) == KB_OK, "%s", kb_last_error());
    ck_assert_uint_gt(len, 0);
    ck_assert_uint_eq(strlen(got), len);
    ck_assert_ptr_nonnull(strstr(got, "\nPid:"));
    free(got);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("util");
    TCase *tc = tcase_create("file_read");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_regular_file, 0, ROWS(s_files));
    tcase_add_test(tc, test_missing_file);
    tcase_add_loop_test(tc, test_pipe, 0, ROWS(s_pipes));
    tcase_add_test(tc, test_file_growing_while_read);
    tcase_add_test(tc, test_pseudo_file);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
