/*
 * check_subject_cli.c - `ketenbus keygen --chain-key` and `ketenbus
 * subject-key`, the built binary run through /bin/sh as an agency's script
 * would run it ($KB_BUILD is the build directory).
 *
 * No broker is involved: the chain key and subject keys are the agencies'
 * business. Each test works in its own mkdtemp directory, removed at the
 * end unless KB_KEEP_TMP is set.
 */
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>

#include "kb_util.h"
#include "kb_test.h"

#define S_OUT_MAX 8192 /* output of one command kept for the checks */

static char s_dir[PATH_MAX];  /* scratch directory of the running test */
static char s_out[S_OUT_MAX]; /* stdout and stderr of the last command */

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "%s/kbtest-subject-cli.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s_dir));
    ck_assert_msg(strchr(s_dir, '\'') == NULL, "TMPDIR must not contain a quote");
}

static void s_teardown(void)
{
    if (!getenv("KB_KEEP_TMP"))
        nftw(s_dir, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* Run `ENV ketenbus ARGS` in the scratch directory (env: variable
 * assignments or "env -u NAME", may be ""); stdout and stderr go to s_out
 * (trailing newlines removed); returns the exit status. */
static int s_run_env(const char *env, const char *args)
{
    const char *build = getenv("KB_BUILD");
    char cmd[PATH_MAX * 2 + 1024], outfile[PATH_MAX + 16];
    ck_assert_int_eq(kb_fmt(outfile, sizeof outfile, "%s/cli.out", s_dir), 0);
    ck_assert_int_eq(kb_fmt(cmd, sizeof cmd, "cd '%s' && %s '%s/ketenbus' %s > cli.out 2>&1", s_dir, env,
                            build ? build : "build", args),
                     0);
    int st = system(cmd);
    char *text = NULL;
    size_t len = 0;
    s_out[0] = '\0';
    if (kb_file_read(outfile, sizeof s_out - 1, &text, &len) == 0) {
        while (len > 0 && text[len - 1] == '\n')
            text[--len] = '\0';
        memcpy(s_out, text, len + 1);
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int s_run(const char *args)
{
    return s_run_env("", args);
}

static void s_file(const char *name, const char *text)
{
    char path[PATH_MAX + 64];
    ck_assert_int_eq(kb_fmt(path, sizeof path, "%s/%s", s_dir, name), 0);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    ck_assert_int_eq(fclose(f), 0);
}

/* The key printed for (type, value) under chain.key, into key (65 bytes). */
static void s_key(const char *type, const char *value, char key[65])
{
    char args[512];
    ck_assert_int_eq(kb_fmt(args, sizeof args, "subject-key --chain-key chain.key --type %s '%s'", type, value), 0);
    ck_assert_msg(s_run(args) == 0, "%s: %s", args, s_out);
    ck_assert_msg(strlen(s_out) == 64 && strspn(s_out, "0123456789abcdef") == 64, "not a key: '%s'", s_out);
    memcpy(key, s_out, 65);
}

START_TEST(test_keygen_chain_key)
{
    ck_assert_int_eq(s_run("keygen --chain-key --out chain.key"), 0);
    ck_assert_msg(strstr(s_out, "chain.key") && strstr(s_out, "never to the broker operator"), "%s", s_out);
    char path[PATH_MAX + 16];
    struct stat st;
    ck_assert_int_eq(kb_fmt(path, sizeof path, "%s/chain.key", s_dir), 0);
    ck_assert_int_eq(stat(path, &st), 0);
    ck_assert_int_eq(st.st_mode & 0777, 0600);
    ck_assert_int_eq(st.st_size, 32);

    /* never overwrites: the key and its mode stay as they were */
    char *before = NULL, *after = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(path, 64, &before, &len), 0);
    ck_assert_int_eq(s_run("keygen --chain-key --out chain.key"), 1);
    ck_assert_msg(strstr(s_out, "already exists") != NULL, "%s", s_out);
    ck_assert_int_eq(kb_file_read(path, 64, &after, &len), 0);
    ck_assert_mem_eq(before, after, 32);
    free(before);
    free(after);

    /* a second chain key is another key */
    ck_assert_int_eq(s_run("keygen --chain-key --out other.key"), 0);
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn 123456782"), 0);
    char first[65];
    memcpy(first, s_out, sizeof first);
    ck_assert_int_eq(s_run("subject-key --chain-key other.key --type bsn 123456782"), 0);
    ck_assert_str_ne(first, s_out);

    /* usage: --chain-key with --agency is one too many */
    ck_assert_int_eq(s_run("keygen --chain-key --agency fier --out x"), 2);
    ck_assert_int_eq(s_run("keygen --help"), 0);
    ck_assert_msg(strstr(s_out, "--chain-key") != NULL, "%s", s_out);
}
END_TEST

START_TEST(test_subject_key)
{
    ck_assert_int_eq(s_run("keygen --chain-key --out chain.key"), 0);
    char a[65], b[65], c[65];
    s_key("bsn", "123456782", a);
    s_key("bsn", "1234.56.782", b);
    ck_assert_str_eq(a, b);
    s_key("bsn", "111222333", c);
    ck_assert_str_ne(a, c);

    /* a bad BSN is refused, saying why, without the number */
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn 123456789"), 1);
    ck_assert_msg(strstr(s_out, "elfproef") != NULL && strstr(s_out, "123456789") == NULL, "%s", s_out);
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn 12345678"), 1);
    ck_assert_msg(strstr(s_out, "8 digits, expected 9") != NULL, "%s", s_out);

    /* a symbol is no letter of a name, whatever its block */
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type name_birth --normalised "
                           "'Jansen\xe2\x82\xac|Jan|1990-01-01'"),
                     1);
    ck_assert_msg(strstr(s_out, "family name contains U+20AC, which is not a letter") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, "Jansen") == NULL && strstr(s_out, "jansen") == NULL, "%s", s_out);

    /* --normalised shows what was hashed */
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type phone --normalised '06-12 34 56 78'"), 0);
    ck_assert_msg(strstr(s_out, "\t+31612345678") != NULL, "%s", s_out);

    /* one key per line from stdin, the same as one by one */
    s_file("bsns.txt", "123456782\n111222333\r\n");
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn - < bsns.txt"), 0);
    char want[200];
    ck_assert_int_eq(kb_fmt(want, sizeof want, "%s\n%s", a, c), 0);
    ck_assert_str_eq(s_out, want);
    s_file("bsns.txt", "123456782\n123456789\n111222333\n");
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn - < bsns.txt"), 1);
    ck_assert_msg(strstr(s_out, "stdin line 2") != NULL, "%s", s_out);
    /* a line with a NUL byte is refused, not hashed up to the NUL */
    char nul_path[PATH_MAX + 16];
    static const char nul_lines[] = "111222333\n123456782\0" "99\n";
    ck_assert_int_eq(kb_fmt(nul_path, sizeof nul_path, "%s/nul.txt", s_dir), 0);
    ck_assert_int_eq(kb_file_write(nul_path, nul_lines, sizeof nul_lines - 1, 0600), 0);
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn - < nul.txt"), 1);
    ck_assert_msg(strstr(s_out, c) != NULL, "%s", s_out); /* line 1 */
    ck_assert_msg(strstr(s_out, "stdin line 2 contains a NUL byte") != NULL, "%s", s_out);
    ck_assert_msg(strstr(s_out, a) == NULL && strstr(s_out, "123456782") == NULL, "%s", s_out);

    /* the chain key from the environment */
    ck_assert_int_eq(s_run_env("KETENBUS_CHAIN_KEY=chain.key", "subject-key --type bsn 123456782"), 0);
    ck_assert_str_eq(s_out, a);
    ck_assert_int_eq(s_run_env("env -u KETENBUS_CHAIN_KEY", "subject-key --type bsn 123456782"), 2);
    ck_assert_msg(strstr(s_out, "--chain-key is required") != NULL, "%s", s_out);

    /* usage errors and unusable keys */
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type passport X123"), 2);
    ck_assert_msg(strstr(s_out, "unknown type 'passport'") != NULL, "%s", s_out);
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn"), 2);
    ck_assert_int_eq(s_run("subject-key --chain-key missing.key --type bsn 123456782"), 1);
    ck_assert_msg(strstr(s_out, "missing.key") != NULL, "%s", s_out);
    char path[PATH_MAX + 16];
    ck_assert_int_eq(kb_fmt(path, sizeof path, "%s/chain.key", s_dir), 0);
    ck_assert_int_eq(chmod(path, 0644), 0);
    ck_assert_int_eq(s_run("subject-key --chain-key chain.key --type bsn 123456782"), 1);
    ck_assert_msg(strstr(s_out, "chmod 600") != NULL, "%s", s_out);
    ck_assert_int_eq(s_run("subject-key --help"), 0);
    ck_assert_msg(strstr(s_out, "name_birth") != NULL, "%s", s_out);
}
END_TEST

/* The test vector of docs/SUBJECT_KEYS.md, from a key written as hex. */
START_TEST(test_doc_vector)
{
    char cmd[PATH_MAX + 256];
    ck_assert_int_eq(kb_fmt(cmd, sizeof cmd,
                            "cd '%s' && (umask 077; printf %%s ketenbus-test-vectors-not-secret > test.key)", s_dir),
                     0);
    ck_assert_int_eq(system(cmd), 0);
    ck_assert_int_eq(s_run("subject-key --chain-key test.key --type name_birth --normalised "
                           "'Jansen|Jan|1990-01-01'"),
                     0);
    ck_assert_str_eq(s_out, "cae45abf5db0ad6f9c7c45309d54d92552935782e21ef67ac6b1dd86e5ceba52\tjansen|jan|1990-01-01");
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("subject-cli");
    TCase *tc = tcase_create("subject-cli");
    tcase_add_checked_fixture(tc, s_setup, s_teardown);
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_keygen_chain_key);
    tcase_add_test(tc, test_subject_key);
    tcase_add_test(tc, test_doc_vector);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
