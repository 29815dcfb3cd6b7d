/*
 * check_keys.c - tests of lib/kb_keys.c: generating a key set, file modes,
 * loading every file back, an Ed25519 sign/verify round trip, refusal to
 * overwrite, a table of bad key files each loader must refuse with the
 * right code and a useful detail, and one of key files no one should
 * trust (a mode that lets others write or read a secret, not a regular
 * file, another owner), which every loader refuses, public ones too.
 *
 * Every test works in its own directory under one mkdtemp directory that
 * the tcase's unchecked fixture removes at the end.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <check.h>
#include <czmq.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <zmq.h>

#include "kb_error.h"
#include "kb_keys.h"
#include "kb_test.h"

/* A valid Z85 public key (ZeroMQ RFC 26 test vector). */
#define S_Z85_A "Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hID"

static char s_root[PATH_MAX]; /* the mkdtemp directory of the running tcase */

static int s_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void s_root_setup(void)
{
    snprintf(s_root, sizeof s_root, "%s/kbtest-keys.XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
    ck_assert_ptr_nonnull(mkdtemp(s_root));
}

static void s_root_teardown(void)
{
    nftw(s_root, s_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* root/name into buf. */
static const char *s_path(char *buf, size_t len, const char *name)
{
    int n = snprintf(buf, len, "%s/%s", s_root, name);
    ck_assert_int_lt(n, (int)len);
    return buf;
}

/* dir/file into buf (PATH_MAX bytes). */
static const char *s_in(char *buf, const char *dir, const char *file)
{
    int n = snprintf(buf, PATH_MAX, "%s/%s", dir, file);
    ck_assert_int_lt(n, PATH_MAX);
    return buf;
}

/* Write a file of mode 0600 (what the secret loaders accept). */
static void s_write(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
    ck_assert_int_eq(close(fd), 0);
}

static mode_t s_mode(const char *path)
{
    struct stat st;
    ck_assert_msg(stat(path, &st) == 0, "stat %s: %s", path, strerror(errno));
    return st.st_mode & 07777;
}

static int s_exists(const char *path)
{
    struct stat st;
    return lstat(path, &st) == 0;
}

START_TEST(test_generate_modes)
{
    char dir[PATH_MAX], p[PATH_MAX];
    s_path(dir, sizeof dir, "new/keys");
    ck_assert_int_eq(kb_keys_generate(dir, "broker", 1), KB_OK);
    ck_assert_uint_eq(s_mode(dir), 0700);

    static const struct {
        const char *suffix; /* file name after "broker" */
        mode_t mode;        /* expected mode */
    } files[] = {
        {".curve", 0644},     {".curve_secret", 0600},  {".sign.pem", 0600},
        {".sign.pub.pem", 0644}, {".storage.key", 0600},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char file[64];
        snprintf(file, sizeof file, "broker%s", files[i].suffix);
        s_in(p, dir, file);
        ck_assert_msg(s_mode(p) == files[i].mode, "%s: mode %o, expected %o", p, (unsigned)s_mode(p),
                      (unsigned)files[i].mode);
    }
    uint8_t key[32], zero[32] = {0};
    s_in(p, dir, "broker.storage.key");
    ck_assert_int_eq(kb_keys_load_storage(p, key), KB_OK);
    ck_assert_mem_ne(key, zero, sizeof key);
}
END_TEST

START_TEST(test_generate_existing_dir_keeps_mode)
{
    char dir[PATH_MAX], p[PATH_MAX];
    s_path(dir, sizeof dir, "shared");
    ck_assert_int_eq(mkdir(dir, 0755), 0);
    ck_assert_int_eq(chmod(dir, 0755), 0);
    ck_assert_int_eq(kb_keys_generate(dir, "om", 0), KB_OK);
    ck_assert_uint_eq(s_mode(dir), 0755);
    s_in(p, dir, "om.storage.key");
    ck_assert_int_eq(s_exists(p), 0);
    s_in(p, dir, "om.curve_secret");
    ck_assert_uint_eq(s_mode(p), 0600);
}
END_TEST

START_TEST(test_load_round_trip)
{
    char dir[PATH_MAX], pub_cert[PATH_MAX], sec_cert[PATH_MAX], priv_pem[PATH_MAX], pub_pem[PATH_MAX];
    s_path(dir, sizeof dir, "rt");
    ck_assert_int_eq(kb_keys_generate(dir, "politie", 0), KB_OK);
    s_in(pub_cert, dir, "politie.curve");
    s_in(sec_cert, dir, "politie.curve_secret");
    s_in(priv_pem, dir, "politie.sign.pem");
    s_in(pub_pem, dir, "politie.sign.pub.pem");

    char pub1[KB_Z85_KEY_LEN + 1], pub2[KB_Z85_KEY_LEN + 1], pub3[KB_Z85_KEY_LEN + 1];
    char sec[KB_Z85_KEY_LEN + 1], derived[KB_Z85_KEY_LEN + 1];
    ck_assert_int_eq(kb_keys_load_curve_public(pub_cert, pub1), KB_OK);
    ck_assert_int_eq(kb_keys_load_curve_public(sec_cert, pub2), KB_OK);
    ck_assert_int_eq(kb_keys_load_curve_secret(sec_cert, pub3, sec), KB_OK);
    ck_assert_uint_eq(strlen(pub1), KB_Z85_KEY_LEN);
    ck_assert_uint_eq(strlen(sec), KB_Z85_KEY_LEN);
    ck_assert_str_eq(pub1, pub2);
    ck_assert_str_eq(pub1, pub3);
    ck_assert_str_ne(pub1, sec);
    ck_assert_int_eq(zmq_curve_public(derived, sec), 0);
    ck_assert_str_eq(derived, pub1);

    /* CZMQ reads the certificates we write. */
    zcert_t *zc = zcert_load(pub_cert);
    ck_assert_ptr_nonnull(zc);
    ck_assert_str_eq(zcert_public_txt(zc), pub1);
    zcert_destroy(&zc);

    EVP_PKEY *priv = kb_keys_load_sign_private(priv_pem);
    EVP_PKEY *pub = kb_keys_load_sign_public(pub_pem);
    ck_assert_msg(priv != NULL, "%s", kb_last_error());
    ck_assert_msg(pub != NULL, "%s", kb_last_error());
    ck_assert_int_eq(EVP_PKEY_get_id(priv), EVP_PKEY_ED25519);
    ck_assert_int_eq(EVP_PKEY_get_id(pub), EVP_PKEY_ED25519);

    static const unsigned char msg[] = "signal about a minor, Utrecht";
    unsigned char sig[64];
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestSignInit(ctx, NULL, NULL, NULL, priv), 1);
    ck_assert_int_eq(EVP_DigestSign(ctx, sig, &sig_len, msg, sizeof msg - 1), 1);
    ck_assert_uint_eq(sig_len, 64);
    EVP_MD_CTX_free(ctx);

    ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub), 1);
    ck_assert_int_eq(EVP_DigestVerify(ctx, sig, sig_len, msg, sizeof msg - 1), 1);
    EVP_MD_CTX_free(ctx);

    unsigned char altered[sizeof msg];
    memcpy(altered, msg, sizeof msg);
    altered[0] ^= 1;
    ctx = EVP_MD_CTX_new();
    ck_assert_ptr_nonnull(ctx);
    ck_assert_int_eq(EVP_DigestVerifyInit(ctx, NULL, NULL, NULL, pub), 1);
    ck_assert_int_ne(EVP_DigestVerify(ctx, sig, sig_len, altered, sizeof altered - 1), 1);
    EVP_MD_CTX_free(ctx);

    EVP_PKEY_free(priv);
    EVP_PKEY_free(pub);
}
END_TEST

START_TEST(test_two_sets_differ)
{
    char dir[PATH_MAX], p[PATH_MAX];
    s_path(dir, sizeof dir, "two");
    ck_assert_int_eq(kb_keys_generate(dir, "fier", 1), KB_OK);
    ck_assert_int_eq(kb_keys_generate(dir, "comensha", 1), KB_OK);
    char a[KB_Z85_KEY_LEN + 1], b[KB_Z85_KEY_LEN + 1];
    uint8_t ka[32], kb[32];
    s_in(p, dir, "fier.curve");
    ck_assert_int_eq(kb_keys_load_curve_public(p, a), KB_OK);
    s_in(p, dir, "comensha.curve");
    ck_assert_int_eq(kb_keys_load_curve_public(p, b), KB_OK);
    ck_assert_str_ne(a, b);
    s_in(p, dir, "fier.storage.key");
    ck_assert_int_eq(kb_keys_load_storage(p, ka), KB_OK);
    s_in(p, dir, "comensha.storage.key");
    ck_assert_int_eq(kb_keys_load_storage(p, kb), KB_OK);
    ck_assert_mem_ne(ka, kb, sizeof ka);
}
END_TEST

START_TEST(test_refuse_overwrite)
{
    char dir[PATH_MAX], p[PATH_MAX];
    s_path(dir, sizeof dir, "ow");
    ck_assert_int_eq(kb_keys_generate(dir, "ldh", 1), KB_OK);
    char before[KB_Z85_KEY_LEN + 1], after[KB_Z85_KEY_LEN + 1];
    s_in(p, dir, "ldh.curve");
    ck_assert_int_eq(kb_keys_load_curve_public(p, before), KB_OK);
    ck_assert_int_eq(kb_keys_generate(dir, "ldh", 1), KB_EIO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "ldh.curve"));
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "refusing to overwrite"));
    ck_assert_int_eq(kb_keys_load_curve_public(p, after), KB_OK);
    ck_assert_str_eq(before, after);

    /* One file of the set present: nothing else may be written. */
    s_in(p, dir, "dci.sign.pub.pem");
    s_write(p, "keep", 4);
    ck_assert_int_eq(kb_keys_generate(dir, "dci", 0), KB_EIO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "dci.sign.pub.pem"));
    s_in(p, dir, "dci.curve");
    ck_assert_int_eq(s_exists(p), 0);
    s_in(p, dir, "dci.curve_secret");
    ck_assert_int_eq(s_exists(p), 0);
    s_in(p, dir, "dci.sign.pem");
    ck_assert_int_eq(s_exists(p), 0);

    /* The storage key alone also blocks a set that asks for one. */
    s_in(p, dir, "emm.storage.key");
    s_write(p, "0123456789abcdef0123456789abcdef", 32);
    ck_assert_int_eq(kb_keys_generate(dir, "emm", 1), KB_EIO);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "emm.storage.key"));
    s_in(p, dir, "emm.curve");
    ck_assert_int_eq(s_exists(p), 0);
}
END_TEST

/* A secret key file that group or others may read is refused, naming the
 * file and its mode; its public counterpart is not a secret. */
START_TEST(test_secret_readable_by_others_refused)
{
    char dir[PATH_MAX], p[PATH_MAX];
    s_path(dir, sizeof dir, "loose");
    ck_assert_int_eq(kb_keys_generate(dir, "broker", 1), KB_OK);
    char pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1];
    uint8_t storage[32];
    static const mode_t modes[] = {0640, 0604, 0660};
    for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++) {
        ck_assert_int_eq(chmod(s_in(p, dir, "broker.curve_secret"), modes[i]), 0);
        ck_assert_int_eq(kb_keys_load_curve_secret(p, pub, sec), KB_EIO);
        ck_assert_ptr_nonnull(strstr(kb_last_error(), "broker.curve_secret"));
        ck_assert_ptr_nonnull(strstr(kb_last_error(), "chmod 600"));
        ck_assert_int_eq(chmod(s_in(p, dir, "broker.sign.pem"), modes[i]), 0);
        ck_assert_ptr_null(kb_keys_load_sign_private(p));
        ck_assert_ptr_nonnull(strstr(kb_last_error(), "broker.sign.pem"));
        ck_assert_int_eq(chmod(s_in(p, dir, "broker.storage.key"), modes[i]), 0);
        ck_assert_int_eq(kb_keys_load_storage(p, storage), KB_EIO);
    }
    ck_assert_int_eq(kb_keys_load_curve_public(s_in(p, dir, "broker.curve"), pub), KB_OK);
    EVP_PKEY *k = kb_keys_load_sign_public(s_in(p, dir, "broker.sign.pub.pem"));
    ck_assert_ptr_nonnull(k);
    EVP_PKEY_free(k);
    ck_assert_int_eq(chmod(s_in(p, dir, "broker.curve_secret"), 0600), 0);
    ck_assert_int_eq(kb_keys_load_curve_secret(p, pub, sec), KB_OK);
    ck_assert_int_eq(chmod(s_in(p, dir, "broker.sign.pem"), 0400), 0);
    k = kb_keys_load_sign_private(p);
    ck_assert_ptr_nonnull(k);
    EVP_PKEY_free(k);
}
END_TEST

/* A write that fails midway (here: a file size limit of 300 bytes, which
 * the first certificate passes and the PEM files do not) leaves no file of
 * the set behind, the one being written included, so generating again
 * works once the cause is gone. Run in a child: the limit is the process's. */
START_TEST(test_failed_write_leaves_nothing)
{
    char dir[PATH_MAX], p[PATH_MAX];
    s_path(dir, sizeof dir, "fsize");
    ck_assert_int_eq(mkdir(dir, 0700), 0);
    pid_t pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        signal(SIGXFSZ, SIG_IGN); /* a write past the limit fails with EFBIG instead */
        struct rlimit lim = {300, 300};
        if (setrlimit(RLIMIT_FSIZE, &lim) != 0)
            _exit(2);
        _exit(kb_keys_generate(dir, "fier", 0) == KB_EIO ? 0 : 1);
    }
    int st = 0;
    ck_assert_int_eq(waitpid(pid, &st, 0), pid);
    ck_assert_msg(WIFEXITED(st) && WEXITSTATUS(st) == 0, "the write did not fail as planned (status %d)", st);
    static const char *const files[] = {"fier.curve", "fier.curve_secret", "fier.sign.pem", "fier.sign.pub.pem"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        ck_assert_msg(!s_exists(s_in(p, dir, files[i])), "%s was left behind", files[i]);
    ck_assert_int_eq(kb_keys_generate(dir, "fier", 0), KB_OK);
}
END_TEST

static const char *const s_bad_names[] = {
    "", "../x", "a/b", "a b", ".hidden", "kmar\n",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", /* 65 */
};

START_TEST(test_bad_name)
{
    char dir[PATH_MAX];
    s_path(dir, sizeof dir, "badname");
    ck_assert_int_eq(kb_keys_generate(dir, s_bad_names[_i], 1), KB_EINVAL);
    ck_assert_ptr_nonnull(strstr(kb_last_error(), "bad name"));
    ck_assert_int_eq(s_exists(dir), 0);
}
END_TEST

START_TEST(test_name_limits)
{
    char dir[PATH_MAX];
    s_path(dir, sizeof dir, "names");
    /* 64 characters is the longest name. */
    ck_assert_int_eq(kb_keys_generate(dir, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", 0), KB_OK);
    ck_assert_int_eq(kb_keys_generate(dir, "gem-utrecht_2", 0), KB_OK);
    ck_assert_int_eq(kb_keys_generate(NULL, "x", 0), KB_EINVAL);
    ck_assert_int_eq(kb_keys_generate(dir, NULL, 0), KB_EINVAL);
    ck_assert_int_eq(kb_keys_generate("", "x", 0), KB_EINVAL);
}
END_TEST

/* ------------------------------------------------------- bad key files */

typedef enum { L_SIGN_PRIV, L_SIGN_PUB, L_STORAGE, L_CURVE_PUB, L_CURVE_SEC } s_loader_t;

/* Load path with loader: its code (the PEM loaders' NULL is KB_EIO here,
 * their detail is in kb_last_error() as for the others). */
static int s_load(s_loader_t loader, const char *path)
{
    char pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1];
    uint8_t key[32];
    switch (loader) {
    case L_SIGN_PRIV:
    case L_SIGN_PUB: {
        EVP_PKEY *pkey = loader == L_SIGN_PRIV ? kb_keys_load_sign_private(path) : kb_keys_load_sign_public(path);
        EVP_PKEY_free(pkey);
        return pkey ? KB_OK : KB_EIO;
    }
    case L_STORAGE: return kb_keys_load_storage(path, key);
    case L_CURVE_PUB: return kb_keys_load_curve_public(path, pub);
    case L_CURVE_SEC: return kb_keys_load_curve_secret(path, pub, sec);
    }
    ck_abort_msg("bad loader");
    return KB_EINVAL;
}

/* How a key file of a good set is spoilt. */
typedef enum {
    F_MODE,   /* chmod to the row's mode */
    F_LINK,   /* chmod, then loaded through a symlink: the target counts */
    F_DIR,    /* a directory in its place */
    F_FIFO,   /* a FIFO in its place: refused without waiting for a writer */
    F_DEVICE, /* a symlink to /dev/zero in its place */
    F_OWNER,  /* owned by another user (root only can make one): rows last */
} s_form_t;

typedef struct {
    const char *file;   /* the file of a "broker" key set */
    s_loader_t loader;  /* which function reads it */
    s_form_t form;      /* how it is spoilt */
    mode_t mode;        /* for F_MODE, F_LINK and F_OWNER */
    const char *detail; /* expected part of kb_last_error() (the code is KB_EIO) */
} s_unsafe_t;

static const s_unsafe_t s_unsafe[] = {
    {"broker.curve", L_CURVE_PUB, F_MODE, 0664, "(mode 0664); chmod go-w"},
    {"broker.curve", L_CURVE_PUB, F_MODE, 0646, "group or others may write this key file"},
    {"broker.sign.pub.pem", L_SIGN_PUB, F_MODE, 0666, "(mode 0666); chmod go-w"},
    {"broker.sign.pub.pem", L_SIGN_PUB, F_LINK, 0624, "(mode 0624); chmod go-w"},
    {"broker.sign.pem", L_SIGN_PRIV, F_MODE, 0620, "(mode 0620); chmod 600"},
    {"broker.curve_secret", L_CURVE_SEC, F_LINK, 0644, "(mode 0644); chmod 600"},
    {"broker.curve", L_CURVE_PUB, F_DIR, 0, "not a regular file"},
    {"broker.curve_secret", L_CURVE_SEC, F_FIFO, 0, "not a regular file"},
    {"broker.storage.key", L_STORAGE, F_DEVICE, 0, "not a regular file"},
    {"broker.sign.pem", L_SIGN_PRIV, F_DEVICE, 0, "not a regular file"},
    {"broker.sign.pub.pem", L_SIGN_PUB, F_OWNER, 0644, "owned by uid 4242, not by this user"},
    {"broker.storage.key", L_STORAGE, F_OWNER, 0600, "; chown it"},
};

/* Key files that are not safe to trust are refused with KB_EIO, naming
 * the file and what to do, public ones too: whoever may write a public
 * key file can pose as its holder. What is checked is the file opened,
 * through any symlink, so the stat of one file cannot pass another. */
START_TEST(test_unsafe_key_file_refused)
{
    const s_unsafe_t *row = &s_unsafe[_i];
    ck_assert(row->form != F_OWNER || geteuid() == 0); /* registered only for root */
    char name[64], dir[PATH_MAX], p[PATH_MAX], used[PATH_MAX];
    snprintf(name, sizeof name, "unsafe-%d", _i);
    s_path(dir, sizeof dir, name);
    ck_assert_int_eq(kb_keys_generate(dir, "broker", 1), KB_OK);
    s_in(p, dir, row->file);
    snprintf(used, sizeof used, "%s", p);
    switch (row->form) {
    case F_MODE:
        ck_assert_int_eq(chmod(p, row->mode), 0);
        break;
    case F_LINK:
        ck_assert_int_eq(chmod(p, row->mode), 0);
        s_in(used, dir, "linked");
        ck_assert_int_eq(symlink(row->file, used), 0);
        break;
    case F_DIR:
        ck_assert_int_eq(unlink(p), 0);
        ck_assert_int_eq(mkdir(p, 0700), 0);
        break;
    case F_FIFO:
        ck_assert_int_eq(unlink(p), 0);
        ck_assert_int_eq(mkfifo(p, 0600), 0);
        break;
    case F_DEVICE:
        ck_assert_int_eq(unlink(p), 0);
        ck_assert_int_eq(symlink("/dev/zero", p), 0);
        break;
    case F_OWNER:
        ck_assert_int_eq(chmod(p, row->mode), 0);
        ck_assert_int_eq(chown(p, 4242, (gid_t)-1), 0);
        break;
    }
    kb_error_clear();
    ck_assert_int_eq(s_load(row->loader, used), KB_EIO);
    ck_assert_msg(strstr(kb_last_error(), row->detail) != NULL, "row %d: error \"%s\" lacks \"%s\"", _i,
                  kb_last_error(), row->detail);
    ck_assert_msg(strstr(kb_last_error(), used) != NULL, "row %d: error \"%s\" does not name the file", _i,
                  kb_last_error());
}
END_TEST

/* Key files as operators keep them load: public ones read-only or
 * readable by the group, secret ones 0400, any of them through a symlink
 * (keys are linked from configuration management), owned by root when this
 * is root; and every file keygen writes, whatever the umask. */
START_TEST(test_safe_key_files_load)
{
    char dir[PATH_MAX], other[PATH_MAX], p[PATH_MAX], link[PATH_MAX];
    s_path(dir, sizeof dir, "safe");
    umask(0);
    ck_assert_int_eq(kb_keys_generate(dir, "broker", 1), KB_OK);
    umask(0777);
    ck_assert_int_eq(kb_keys_generate(dir, "fier", 0), KB_OK);
    umask(022);
    static const struct {
        const char *file;  /* in dir */
        s_loader_t loader; /* which function reads it */
    } files[] = {
        {"broker.curve", L_CURVE_PUB}, {"broker.curve_secret", L_CURVE_SEC}, {"broker.sign.pem", L_SIGN_PRIV},
        {"broker.sign.pub.pem", L_SIGN_PUB}, {"broker.storage.key", L_STORAGE}, {"fier.curve", L_CURVE_PUB},
        {"fier.curve_secret", L_CURVE_SEC}, {"fier.sign.pem", L_SIGN_PRIV}, {"fier.sign.pub.pem", L_SIGN_PUB},
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        ck_assert_msg(s_load(files[i].loader, s_in(p, dir, files[i].file)) == KB_OK, "%s: %s", files[i].file,
                      kb_last_error());
    ck_assert_int_eq(chmod(s_in(p, dir, "broker.curve"), 0444), 0);
    ck_assert_int_eq(s_load(L_CURVE_PUB, p), KB_OK);
    ck_assert_int_eq(chmod(s_in(p, dir, "broker.sign.pub.pem"), 0640), 0);
    ck_assert_int_eq(s_load(L_SIGN_PUB, p), KB_OK);
    ck_assert_int_eq(chmod(s_in(p, dir, "broker.storage.key"), 0400), 0);
    ck_assert_int_eq(s_load(L_STORAGE, p), KB_OK);
    s_path(other, sizeof other, "linked-keys");
    ck_assert_int_eq(mkdir(other, 0700), 0);
    static const char *const linked[] = {"broker.curve", "broker.sign.pem", "broker.curve_secret"};
    for (size_t i = 0; i < sizeof linked / sizeof linked[0]; i++) {
        s_in(p, dir, linked[i]);
        ck_assert_int_eq(symlink(p, s_in(link, other, linked[i])), 0);
    }
    ck_assert_int_eq(s_load(L_CURVE_PUB, s_in(link, other, "broker.curve")), KB_OK);
    ck_assert_int_eq(s_load(L_SIGN_PRIV, s_in(link, other, "broker.sign.pem")), KB_OK);
    ck_assert_int_eq(s_load(L_CURVE_SEC, s_in(link, other, "broker.curve_secret")), KB_OK);
}
END_TEST

typedef enum {
    G_TEXT,          /* the row's text */
    G_MISSING,       /* no file at all */
    G_BYTES,         /* len bytes of 0x41 */
    G_RSA_PRIV,      /* RSA private key, PKCS#8 PEM */
    G_RSA_PUB,       /* RSA public key PEM */
    G_X25519_PRIV,   /* X25519 private key PEM */
    G_X25519_PUB,    /* X25519 public key PEM */
    G_ED_PUB,        /* Ed25519 public key PEM */
    G_ED_ENCRYPTED,  /* Ed25519 private key, encrypted PKCS#8 PEM */
    G_CERT_MISMATCH, /* secret certificate whose public key is another pair's */
} s_gen_t;

typedef struct {
    s_loader_t loader;  /* which function reads the file */
    s_gen_t gen;        /* how the file is made */
    const char *text;   /* contents for G_TEXT */
    size_t len;         /* length for G_BYTES */
    int rc;             /* expected code (KB_ECRYPTO/KB_EPROTO stand for NULL of the PEM loaders) */
    const char *detail; /* expected part of kb_last_error() */
} s_bad_file_t;

static const s_bad_file_t s_bad_files[] = {
    {L_SIGN_PRIV, G_TEXT, "not a key\n", 0, KB_EPROTO, "no private key in PEM"},
    {L_SIGN_PRIV, G_TEXT, "", 0, KB_EPROTO, "no private key in PEM"},
    {L_SIGN_PRIV, G_RSA_PRIV, NULL, 0, KB_ECRYPTO, "not an Ed25519 key (RSA)"},
    {L_SIGN_PRIV, G_X25519_PRIV, NULL, 0, KB_ECRYPTO, "not an Ed25519 key (X25519)"},
    {L_SIGN_PRIV, G_ED_PUB, NULL, 0, KB_EPROTO, "no private key in PEM"},
    {L_SIGN_PRIV, G_ED_ENCRYPTED, NULL, 0, KB_EPROTO, "no private key in PEM"},
    {L_SIGN_PRIV, G_MISSING, NULL, 0, KB_ENOTFOUND, "No such file"},
    {L_SIGN_PUB, G_RSA_PUB, NULL, 0, KB_ECRYPTO, "not an Ed25519 key (RSA)"},
    {L_SIGN_PUB, G_X25519_PUB, NULL, 0, KB_ECRYPTO, "not an Ed25519 key (X25519)"},
    {L_SIGN_PUB, G_TEXT, "-----BEGIN PUBLIC KEY-----\nMCow\n-----END PUBLIC KEY-----\n", 0, KB_EPROTO,
     "no public key in PEM"},
    {L_SIGN_PUB, G_MISSING, NULL, 0, KB_ENOTFOUND, "No such file"},
    {L_STORAGE, G_BYTES, NULL, 31, KB_EPROTO, "31 bytes; a storage key is exactly 32 raw bytes"},
    {L_STORAGE, G_BYTES, NULL, 33, KB_EPROTO, "33 bytes; a storage key is exactly 32 raw bytes"},
    {L_STORAGE, G_BYTES, NULL, 0, KB_EPROTO, "0 bytes; a storage key is exactly 32 raw bytes"},
    {L_STORAGE, G_BYTES, NULL, 70000, KB_ETOOBIG, "limit"},
    {L_STORAGE, G_MISSING, NULL, 0, KB_ENOTFOUND, "No such file"},
    {L_CURVE_PUB, G_TEXT, "metadata\ncurve\n    public-key = \"short\"\n", 0, KB_EPROTO,
     ":3: public-key has 5 characters, expected 40"},
    {L_CURVE_PUB, G_TEXT, "metadata\n    name = \"x\"\n", 0, KB_EPROTO, "no curve public-key"},
    {L_CURVE_PUB, G_TEXT, "metadata\n    public-key = \"" S_Z85_A "\"\n", 0, KB_EPROTO, "no curve public-key"},
    {L_CURVE_PUB, G_TEXT, "curve\n  public-key = \"" S_Z85_A "\"\n", 0, KB_EPROTO, ":2: indentation"},
    {L_CURVE_PUB, G_TEXT, "curve\n\tpublic-key = \"" S_Z85_A "\"\n", 0, KB_EPROTO, ":2: tab in indentation"},
    {L_CURVE_PUB, G_TEXT, "curve\n    public-key = \"" S_Z85_A "\n", 0, KB_EPROTO, ":2: unterminated"},
    {L_CURVE_PUB, G_TEXT, "curve\n    public-key = \"Yne@$w-vo<fVvi]a<NY6T1ed:M$fCG*[IaLV{hI~\"\n", 0,
     KB_EPROTO, ":2: public-key is not a Z85 key"},
    {L_CURVE_PUB, G_TEXT, "curve\n    public-key = \"" S_Z85_A "\" junk\n", 0, KB_EPROTO,
     ":2: unexpected text"},
    {L_CURVE_PUB, G_TEXT, "curve\n    public-key = \"" S_Z85_A "\"\n    public-key = \"" S_Z85_A "\"\n", 0,
     KB_EPROTO, ":3: duplicate public-key"},
    {L_CURVE_PUB, G_MISSING, NULL, 0, KB_ENOTFOUND, "No such file"},
    {L_CURVE_SEC, G_TEXT, "curve\n    public-key = \"" S_Z85_A "\"\n", 0, KB_EPROTO, "no curve secret-key"},
    {L_CURVE_SEC, G_CERT_MISMATCH, NULL, 0, KB_ECRYPTO, "public-key does not belong to secret-key"},
};

static void s_write_pkey(const char *path, const char *type, int public_only, int encrypted)
{
    EVP_PKEY *pkey = strcmp(type, "RSA") == 0 ? EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024)
                                               : EVP_PKEY_Q_keygen(NULL, NULL, type);
    ck_assert_ptr_nonnull(pkey);
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    int ok;
    if (public_only)
        ok = PEM_write_PUBKEY(f, pkey);
    else if (encrypted)
        ok = PEM_write_PKCS8PrivateKey(f, pkey, EVP_aes_256_cbc(), "secret", 6, NULL, NULL);
    else
        ok = PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL, NULL);
    ck_assert_int_eq(ok, 1);
    ck_assert_int_eq(fclose(f), 0);
    ck_assert_int_eq(chmod(path, 0600), 0); /* as a secret key file is */
    EVP_PKEY_free(pkey);
}

static void s_make_bad_file(const s_bad_file_t *row, const char *path)
{
    switch (row->gen) {
    case G_TEXT:
        s_write(path, row->text, strlen(row->text));
        break;
    case G_MISSING:
        break;
    case G_BYTES: {
        char *buf = malloc(row->len + 1);
        ck_assert_ptr_nonnull(buf);
        memset(buf, 0x41, row->len);
        s_write(path, buf, row->len);
        free(buf);
        break;
    }
    case G_RSA_PRIV: s_write_pkey(path, "RSA", 0, 0); break;
    case G_RSA_PUB: s_write_pkey(path, "RSA", 1, 0); break;
    case G_X25519_PRIV: s_write_pkey(path, "X25519", 0, 0); break;
    case G_X25519_PUB: s_write_pkey(path, "X25519", 1, 0); break;
    case G_ED_PUB: s_write_pkey(path, "ED25519", 1, 0); break;
    case G_ED_ENCRYPTED: s_write_pkey(path, "ED25519", 0, 1); break;
    case G_CERT_MISMATCH: {
        char pub_a[41], sec_a[41], pub_b[41], sec_b[41], text[512];
        ck_assert_int_eq(zmq_curve_keypair(pub_a, sec_a), 0);
        ck_assert_int_eq(zmq_curve_keypair(pub_b, sec_b), 0);
        int n = snprintf(text, sizeof text, "curve\n    public-key = \"%s\"\n    secret-key = \"%s\"\n", pub_b,
                         sec_a);
        ck_assert_int_lt(n, (int)sizeof text);
        s_write(path, text, (size_t)n);
        break;
    }
    }
}

START_TEST(test_bad_file)
{
    const s_bad_file_t *row = &s_bad_files[_i];
    char name[64], path[PATH_MAX];
    snprintf(name, sizeof name, "bad-%d", _i);
    s_path(path, sizeof path, name);
    s_make_bad_file(row, path);
    kb_error_clear();

    int rc;
    char pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1];
    uint8_t key[32];
    switch (row->loader) {
    case L_SIGN_PRIV:
    case L_SIGN_PUB: {
        EVP_PKEY *pkey = row->loader == L_SIGN_PRIV ? kb_keys_load_sign_private(path)
                                                    : kb_keys_load_sign_public(path);
        ck_assert_ptr_null(pkey);
        rc = row->rc; /* the PEM loaders report only through kb_last_error() */
        break;
    }
    case L_STORAGE: rc = kb_keys_load_storage(path, key); break;
    case L_CURVE_PUB: rc = kb_keys_load_curve_public(path, pub); break;
    case L_CURVE_SEC: rc = kb_keys_load_curve_secret(path, pub, sec); break;
    default: ck_abort_msg("bad loader"); return;
    }
    ck_assert_int_eq(rc, row->rc);
    ck_assert_msg(strstr(kb_last_error(), row->detail) != NULL, "row %d: error \"%s\" lacks \"%s\"", _i,
                  kb_last_error(), row->detail);
    if (row->gen != G_MISSING)
        ck_assert_msg(strstr(kb_last_error(), name) != NULL, "row %d: error \"%s\" does not name the file",
                      _i, kb_last_error());
}
END_TEST

/* Certificates written by hand or by other tools: bare values, comments,
 * CRLF line ends, other sections and entries. */
static const char *const s_good_certs[] = {
    "curve\n    public-key = \"" S_Z85_A "\"\n",
    "#   comment\n\nmetadata\n    name = \"x\"\ncurve\n    public-key = " S_Z85_A "   # bare\n",
    "curve\r\n    public-key = \"" S_Z85_A "\"\r\n",
    "curve\n    public-key = '" S_Z85_A "'\nother\n    public-key = \"junk\"\n",
    "curve\n    public-key = \"" S_Z85_A "\"\n        deeper = 1\n",
    "metadata\n    a-rather-long-entry-name-from-another-tool = \"x\"\ncurve\n    public-key = \"" S_Z85_A "\"\n",
    "curve-and-a-rather-long-section-name-from-another-tool\n    public-key = \"junk\"\n"
    "curve\n    public-key = \"" S_Z85_A "\"\n",
};

START_TEST(test_good_cert_forms)
{
    char name[64], path[PATH_MAX], pub[KB_Z85_KEY_LEN + 1];
    snprintf(name, sizeof name, "good-%d", _i);
    s_path(path, sizeof path, name);
    s_write(path, s_good_certs[_i], strlen(s_good_certs[_i]));
    ck_assert_msg(kb_keys_load_curve_public(path, pub) == KB_OK, "row %d: %s", _i, kb_last_error());
    ck_assert_str_eq(pub, S_Z85_A);
}
END_TEST

static Suite *s_suite(void)
{
    Suite *s = suite_create("keys");
    TCase *tc = tcase_create("generate");
    tcase_add_unchecked_fixture(tc, s_root_setup, s_root_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_test(tc, test_generate_modes);
    tcase_add_test(tc, test_generate_existing_dir_keeps_mode);
    tcase_add_test(tc, test_load_round_trip);
    tcase_add_test(tc, test_two_sets_differ);
    tcase_add_test(tc, test_refuse_overwrite);
    tcase_add_test(tc, test_failed_write_leaves_nothing);
    tcase_add_test(tc, test_secret_readable_by_others_refused);
    tcase_add_loop_test(tc, test_bad_name, 0, (int)(sizeof s_bad_names / sizeof s_bad_names[0]));
    tcase_add_test(tc, test_name_limits);
    suite_add_tcase(s, tc);

    tc = tcase_create("load");
    tcase_add_unchecked_fixture(tc, s_root_setup, s_root_teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_bad_file, 0, (int)(sizeof s_bad_files / sizeof s_bad_files[0]));
    tcase_add_loop_test(tc, test_good_cert_forms, 0, (int)(sizeof s_good_certs / sizeof s_good_certs[0]));
    /* only root can give a file away: the rows of F_OWNER, last in the
     * table, are not run (nor counted) otherwise */
    int unsafe_rows = (int)(sizeof s_unsafe / sizeof s_unsafe[0]);
    if (geteuid() != 0) {
        while (unsafe_rows > 0 && s_unsafe[unsafe_rows - 1].form == F_OWNER)
            unsafe_rows--;
        fprintf(stderr, "check_keys: not run without root: %d rows of key files owned by another user\n",
                (int)(sizeof s_unsafe / sizeof s_unsafe[0]) - unsafe_rows);
    }
    tcase_add_loop_test(tc, test_unsafe_key_file_refused, 0, unsafe_rows);
    tcase_add_test(tc, test_safe_key_files_load);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    return kb_test_run(s_suite());
}
