/*
 * kb_keys.c - write and read the key files of a chain (see kb_keys.h).
 *
 * Generation first checks that none of the files exists, then creates each
 * with open(O_CREAT | O_EXCL) and its final mode, so a secret is never
 * readable by others, not even between create and chmod, and an existing key
 * is never replaced. If writing fails halfway, the files made by this call
 * are removed again so that a retry starts clean.
 *
 * The CURVE certificates are ZPL text in the layout CZMQ's zcert writes, so
 * zcert_load() reads them too. They are parsed here rather than with zconfig
 * because zconfig keeps copies of the secret key it never wipes; every buffer
 * that held secret text is wiped with OPENSSL_cleanse before it is freed.
 *
 * Every loader opens the file once and checks what it opened (s_read_key):
 * a regular file that neither group nor others may write and that this
 * user or root owns, since a public key is a trust anchor as much as a
 * secret is a secret; a secret that group or others may not even read.
 *
 * Used by the `ketenbus keygen` command, the broker (its own keys and the
 * agencies' public keys from the chain configuration) and the adapter SDK
 * (its own keys, the broker's certificate and the senders' public keys).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <zmq.h>

#include "kb_error.h"
#include "kb_keys.h"
#include "kb_util.h"

/* Largest key or certificate file we read; real ones are under 1 KiB. */
#define KB_KEYS_MAX_FILE_BYTES (64u * 1024u)

/* Longest key set name (agency id or "broker"). */
#define KB_KEYS_MAX_NAME 64u

/* Length of the raw storage key. */
#define KB_KEYS_STORAGE_LEN 32u

/* Length of a raw CURVE key. */
#define KB_KEYS_CURVE_RAW_LEN 32u

/* Longest certificate text we write. */
#define KB_KEYS_CERT_TEXT_MAX 1024u

/* The files of one key set, in the order they are written. */
enum { S_CURVE_PUB, S_CURVE_SEC, S_SIGN_PRIV, S_SIGN_PUB, S_STORAGE, S_N_FILES };

static const char *const s_suffix[S_N_FILES] = {
    ".curve", ".curve_secret", ".sign.pem", ".sign.pub.pem", ".storage.key",
};

/* Z85 alphabet (ZeroMQ RFC 32). */
static const char s_z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/* The two keys a certificate may hold, as found by s_cert_parse(). */
typedef struct {
    char public_z85[KB_Z85_KEY_LEN + 1]; /* "public-key" of section "curve" */
    char secret_z85[KB_Z85_KEY_LEN + 1]; /* "secret-key" of section "curve" */
    int has_public;                      /* public_z85 was found */
    int has_secret;                      /* secret_z85 was found */
} s_cert_t;

/* ASCII only, whatever the locale. */
static int s_is_alnum(int ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
}

static int s_name_is_valid(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > KB_KEYS_MAX_NAME)
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char ch = (unsigned char)name[i];
        if (!s_is_alnum(ch) && ch != '-' && ch != '_')
            return 0;
    }
    return 1;
}

/* Create path (which must not exist) with mode and write len bytes. */
static int s_write_new(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, mode);
    if (fd < 0) {
        if (errno == EEXIST)
            return kb_error_set(KB_EIO, "%s already exists; refusing to overwrite it", path);
        return kb_error_set(KB_EIO, "create %s: %s", path, strerror(errno));
    }
    int rc = KB_OK;
    const char *p = data;
    size_t left = len;
    while (left > 0 && rc == KB_OK) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = kb_error_set(KB_EIO, "write %s: %s", path, strerror(errno));
            break;
        }
        p += n;
        left -= (size_t)n;
    }
    /* The umask may have taken bits off a public file; set the exact mode. */
    if (rc == KB_OK && (fchmod(fd, mode) != 0 || fsync(fd) != 0))
        rc = kb_error_set(KB_EIO, "sync %s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == KB_OK)
        rc = kb_error_set(KB_EIO, "close %s: %s", path, strerror(errno));
    /* a partial file would block every later attempt ("already exists"):
     * it is ours (O_EXCL), so it goes */
    if (rc != KB_OK)
        unlink(path);
    return rc;
}

/* Create dir with mode 0700 unless it exists as a directory. */
static int s_ensure_dir(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) == 0) {
        if (!S_ISDIR(st.st_mode))
            return kb_error_set(KB_EIO, "%s is not a directory", dir);
        return KB_OK;
    }
    if (errno != ENOENT)
        return kb_error_set(KB_EIO, "stat %s: %s", dir, strerror(errno));
    int rc = kb_mkdirs(dir, 0700);
    if (rc != KB_OK)
        return rc;
    /* mkdir's mode passes through the umask; the key directory is 0700. */
    if (chmod(dir, 0700) != 0)
        return kb_error_set(KB_EIO, "chmod %s: %s", dir, strerror(errno));
    return KB_OK;
}

static int s_cert_text(char *buf, size_t buf_len, const char *name, const char *public_z85,
                       const char *secret_z85)
{
    char now[32];
    kb_time_format(kb_now_us(), now);
    int rc;
    if (secret_z85)
        rc = kb_fmt(buf, buf_len,
                    "#   ****  Generated on %s by ketenbus keygen  ****\n"
                    "#   ZeroMQ CURVE **Secret** Certificate\n"
                    "#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.\n"
                    "\n"
                    "metadata\n"
                    "    name = \"%s\"\n"
                    "curve\n"
                    "    public-key = \"%s\"\n"
                    "    secret-key = \"%s\"\n",
                    now, name, public_z85, secret_z85);
    else
        rc = kb_fmt(buf, buf_len,
                    "#   ****  Generated on %s by ketenbus keygen  ****\n"
                    "#   ZeroMQ CURVE Public Certificate\n"
                    "#   Exchange securely, or use a secure mechanism to verify the contents\n"
                    "#   of this file after exchange.\n"
                    "\n"
                    "metadata\n"
                    "    name = \"%s\"\n"
                    "curve\n"
                    "    public-key = \"%s\"\n",
                    now, name, public_z85);
    if (rc != KB_OK)
        return kb_error_set(KB_ETOOBIG, "certificate text for %s too long", name);
    return KB_OK;
}

/* PEM text of the key (private or public) into a new memory BIO. The private
 * one uses secure memory, which OpenSSL clears when the BIO is freed. */
static int s_pem_bio(EVP_PKEY *pkey, int private_key, BIO **out)
{
    BIO *bio = BIO_new(private_key ? BIO_s_secmem() : BIO_s_mem());
    if (!bio)
        return kb_error_ssl(KB_ENOMEM, "keygen: BIO_new");
    int ok = private_key ? PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL)
                         : PEM_write_bio_PUBKEY(bio, pkey);
    if (ok != 1) {
        BIO_free(bio);
        return kb_error_ssl(KB_ECRYPTO, "keygen: PEM encoding of the Ed25519 key");
    }
    *out = bio;
    return KB_OK;
}

int kb_keys_generate(const char *dir, const char *name, int with_storage)
{
    if (!dir || !*dir || !name)
        return kb_error_set(KB_EINVAL, "keygen: directory and name are required");
    if (!s_name_is_valid(name))
        return kb_error_set(KB_EINVAL, "keygen: bad name '%.80s' (1..%u of A-Z a-z 0-9 - _)", name,
                            KB_KEYS_MAX_NAME);

    size_t n_files = with_storage ? S_N_FILES : S_STORAGE;
    char paths[S_N_FILES][PATH_MAX];
    for (size_t i = 0; i < n_files; i++)
        if (kb_fmt(paths[i], sizeof paths[i], "%s/%s%s", dir, name, s_suffix[i]) != KB_OK)
            return kb_error_set(KB_EINVAL, "keygen: path too long in %.80s", dir);

    /* Refuse before writing anything, so a refused run leaves no half set. */
    for (size_t i = 0; i < n_files; i++) {
        struct stat st;
        if (lstat(paths[i], &st) == 0)
            return kb_error_set(KB_EIO, "%s already exists; refusing to overwrite it", paths[i]);
        if (errno != ENOENT && errno != ENOTDIR)
            return kb_error_set(KB_EIO, "stat %s: %s", paths[i], strerror(errno));
    }
    int rc = s_ensure_dir(dir);
    if (rc != KB_OK)
        return rc;

    char curve_pub[KB_Z85_KEY_LEN + 1];
    char curve_sec[KB_Z85_KEY_LEN + 1];
    char cert_pub[KB_KEYS_CERT_TEXT_MAX];
    char cert_sec[KB_KEYS_CERT_TEXT_MAX];
    uint8_t storage[KB_KEYS_STORAGE_LEN];
    EVP_PKEY *pkey = NULL;
    BIO *pem_priv = NULL, *pem_pub = NULL;
    size_t written = 0;

    if (zmq_curve_keypair(curve_pub, curve_sec) != 0) {
        rc = kb_error_set(KB_ECRYPTO, "keygen: zmq_curve_keypair: %s", zmq_strerror(zmq_errno()));
        goto done;
    }
    if ((rc = s_cert_text(cert_pub, sizeof cert_pub, name, curve_pub, NULL)) != KB_OK ||
        (rc = s_cert_text(cert_sec, sizeof cert_sec, name, curve_pub, curve_sec)) != KB_OK)
        goto done;
    pkey = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    if (!pkey) {
        rc = kb_error_ssl(KB_ECRYPTO, "keygen: Ed25519 key generation");
        goto done;
    }
    if ((rc = s_pem_bio(pkey, 1, &pem_priv)) != KB_OK || (rc = s_pem_bio(pkey, 0, &pem_pub)) != KB_OK)
        goto done;
    if (with_storage && RAND_bytes(storage, sizeof storage) != 1) {
        rc = kb_error_ssl(KB_ECRYPTO, "keygen: RAND_bytes for the storage key");
        goto done;
    }

    char *priv_data = NULL, *pub_data = NULL;
    long priv_len = BIO_get_mem_data(pem_priv, &priv_data);
    long pub_len = BIO_get_mem_data(pem_pub, &pub_data);
    if (priv_len <= 0 || pub_len <= 0) {
        rc = kb_error_set(KB_ECRYPTO, "keygen: empty PEM output");
        goto done;
    }
    struct {
        const void *data; /* file contents */
        size_t len;       /* bytes of data */
        mode_t mode;      /* final file mode */
    } files[S_N_FILES] = {
        [S_CURVE_PUB] = {cert_pub, strlen(cert_pub), 0644},
        [S_CURVE_SEC] = {cert_sec, strlen(cert_sec), 0600},
        [S_SIGN_PRIV] = {priv_data, (size_t)priv_len, 0600},
        [S_SIGN_PUB] = {pub_data, (size_t)pub_len, 0644},
        [S_STORAGE] = {storage, sizeof storage, 0600},
    };
    for (written = 0; written < n_files; written++) {
        rc = s_write_new(paths[written], files[written].data, files[written].len, files[written].mode);
        if (rc != KB_OK)
            break;
    }
    if (rc != KB_OK) {
        /* Take back what this call wrote; the files were ours (O_EXCL). */
        for (size_t i = 0; i < written; i++)
            unlink(paths[i]);
    } else {
        (void)kb_dir_sync(dir); /* best effort: the files themselves are synced already */
    }

done:
    OPENSSL_cleanse(curve_sec, sizeof curve_sec);
    OPENSSL_cleanse(cert_sec, sizeof cert_sec);
    OPENSSL_cleanse(storage, sizeof storage);
    BIO_free(pem_priv);
    BIO_free(pem_pub);
    EVP_PKEY_free(pkey);
    return rc;
}

/* The checks of s_read_key() on the opened file's st. */
static int s_key_file_ok(const char *path, const struct stat *st, int secret)
{
    unsigned mode = (unsigned)(st->st_mode & 07777);
    if (!S_ISREG(st->st_mode))
        return kb_error_set(KB_EIO, "%s: not a regular file", path);
    if (secret && (st->st_mode & 077) != 0)
        return kb_error_set(KB_EIO, "%s: group or others may access this secret key (mode %04o); chmod 600 it", path,
                            mode);
    if ((st->st_mode & 022) != 0)
        return kb_error_set(KB_EIO, "%s: group or others may write this key file (mode %04o); chmod go-w it", path,
                            mode);
    if (st->st_uid != geteuid() && st->st_uid != 0)
        return kb_error_set(KB_EIO, "%s: owned by uid %u, not by this user (uid %u) or root, and its owner could "
                            "change it; chown it", path, (unsigned)st->st_uid, (unsigned)geteuid());
    if ((uint64_t)st->st_size > KB_KEYS_MAX_FILE_BYTES)
        return kb_error_set(KB_ETOOBIG, "%s: %lld bytes, limit %u", path, (long long)st->st_size,
                            KB_KEYS_MAX_FILE_BYTES);
    return KB_OK;
}

/* Read a key file (following symlinks: operators link keys from their
 * configuration management) into a new buffer; wipe-free it later with
 * s_free_secret(). What is checked is the file that was opened (fstat),
 * so it cannot be swapped between the check and the read, and it must be
 * a regular file. Every key file is a trust anchor or a secret: refused
 * when group or others may write it (they could put their own key there),
 * or when it is owned by anyone but this user or root (an owner may always
 * change it); a secret also when group or others may read it, since a key
 * anyone on the machine can read is no longer the agency's alone (as the
 * chain key is, and as ssh does). */
static int s_read_key(const char *path, int secret, char **buf, size_t *len)
{
    if (!path || !*path)
        return kb_error_set(KB_EINVAL, "key file path is empty");
    /* O_NONBLOCK: opening a FIFO put in a key's place does not wait for a
     * writer; it is refused below, and reads of a regular file ignore it */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0)
        return kb_error_set(errno == ENOENT ? KB_ENOTFOUND : KB_EIO, "open %s: %s", path, strerror(errno));
    struct stat st;
    int rc = fstat(fd, &st) == 0 ? s_key_file_ok(path, &st, secret)
                                 : kb_error_set(KB_EIO, "stat %s: %s", path, strerror(errno));
    char *b = NULL;
    size_t got = 0, cap = rc == KB_OK ? (size_t)st.st_size + 1 : 0;
    if (rc == KB_OK && !(b = malloc(cap)))
        rc = kb_error_set(KB_ENOMEM, "read %s: out of memory", path);
    /* up to the size fstat gave */
    while (rc == KB_OK && got < cap - 1) {
        ssize_t n = read(fd, b + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = kb_error_set(KB_EIO, "read %s: %s", path, strerror(errno));
        else if (n == 0)
            break;
        else
            got += (size_t)n;
    }
    close(fd);
    if (rc != KB_OK) {
        if (b) {
            OPENSSL_cleanse(b, cap);
            free(b);
        }
        return rc;
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    return KB_OK;
}

static void s_free_secret(char *buf, size_t len)
{
    if (buf) {
        OPENSSL_cleanse(buf, len);
        free(buf);
    }
}

static int s_is_name_char(int ch)
{
    return s_is_alnum(ch) || (ch && strchr("$-_@.&+/", ch) != NULL);
}

/* Validate a Z85 key: 40 characters of the alphabet that decode. */
static int s_z85_check(const char *z85)
{
    if (strlen(z85) != KB_Z85_KEY_LEN)
        return 0;
    for (size_t i = 0; i < KB_Z85_KEY_LEN; i++)
        if (!strchr(s_z85_chars, z85[i]))
            return 0;
    uint8_t raw[KB_KEYS_CURVE_RAW_LEN];
    int ok = zmq_z85_decode(raw, z85) != NULL;
    OPENSSL_cleanse(raw, sizeof raw);
    return ok;
}

/* Store the value of one "name = value" line of section curve. */
static int s_cert_take(const char *path, int line_no, const char *key, const char *value, size_t value_len,
                       s_cert_t *cert)
{
    char *dest;
    int *has;
    if (strcmp(key, "public-key") == 0) {
        dest = cert->public_z85;
        has = &cert->has_public;
    } else if (strcmp(key, "secret-key") == 0) {
        dest = cert->secret_z85;
        has = &cert->has_secret;
    } else {
        return KB_OK; /* other entries are not ours to judge */
    }
    if (*has)
        return kb_error_set(KB_EPROTO, "%s:%d: duplicate %s", path, line_no, key);
    if (value_len != KB_Z85_KEY_LEN)
        return kb_error_set(KB_EPROTO, "%s:%d: %s has %zu characters, expected %u", path, line_no, key,
                            value_len, KB_Z85_KEY_LEN);
    memcpy(dest, value, KB_Z85_KEY_LEN);
    dest[KB_Z85_KEY_LEN] = '\0';
    if (!s_z85_check(dest))
        return kb_error_set(KB_EPROTO, "%s:%d: %s is not a Z85 key", path, line_no, key);
    *has = 1;
    return KB_OK;
}

/* Parse the ZPL text of a certificate (ZeroMQ RFC 4): sections by four
 * spaces of indentation, "name = value" with the value quoted or bare. Only
 * curve/public-key and curve/secret-key are kept. */
static int s_cert_parse(const char *path, const char *buf, size_t len, s_cert_t *cert)
{
    memset(cert, 0, sizeof *cert);
    int in_curve = 0, line_no = 0;
    size_t pos = 0;
    while (pos < len) {
        line_no++;
        size_t end = pos;
        while (end < len && buf[end] != '\n')
            end++;
        size_t stop = end;
        if (stop > pos && buf[stop - 1] == '\r')
            stop--;
        size_t p = pos;
        pos = end < len ? end + 1 : end;

        size_t indent = 0;
        while (p < stop && buf[p] == ' ') {
            p++;
            indent++;
        }
        if (p == stop || buf[p] == '#')
            continue;
        if (buf[p] == '\t')
            return kb_error_set(KB_EPROTO, "%s:%d: tab in indentation", path, line_no);
        if (indent % 4 != 0)
            return kb_error_set(KB_EPROTO, "%s:%d: indentation is not a multiple of 4", path, line_no);
        size_t name_start = p;
        while (p < stop && s_is_name_char((unsigned char)buf[p]))
            p++;
        size_t name_len = p - name_start;
        if (name_len == 0)
            return kb_error_set(KB_EPROTO, "%s:%d: expected a name", path, line_no);
        /* Names longer than ours are kept only as their start, for messages. */
        char key[32];
        size_t keep = name_len < sizeof key ? name_len : sizeof key - 1;
        memcpy(key, buf + name_start, keep);
        key[keep] = '\0';
        while (p < stop && buf[p] == ' ')
            p++;
        const char *value = NULL;
        size_t value_len = 0;
        if (p < stop && buf[p] == '=') {
            p++;
            while (p < stop && buf[p] == ' ')
                p++;
            if (p < stop && (buf[p] == '"' || buf[p] == '\'')) {
                char quote = buf[p++];
                value = buf + p;
                while (p < stop && buf[p] != quote)
                    p++;
                if (p == stop)
                    return kb_error_set(KB_EPROTO, "%s:%d: unterminated quoted value", path, line_no);
                value_len = (size_t)(buf + p - value);
                p++;
            } else {
                value = buf + p;
                while (p < stop && buf[p] != ' ')
                    p++;
                value_len = (size_t)(buf + p - value);
            }
            while (p < stop && buf[p] == ' ')
                p++;
        }
        if (p < stop && buf[p] != '#')
            return kb_error_set(KB_EPROTO, "%s:%d: unexpected text after '%s'", path, line_no, key);

        if (indent == 0) {
            in_curve = name_len == keep && strcmp(key, "curve") == 0;
        } else if (indent == 4 && in_curve && value && name_len == keep) {
            int rc = s_cert_take(path, line_no, key, value, value_len, cert);
            if (rc != KB_OK)
                return rc;
        }
    }
    return KB_OK;
}

int kb_keys_load_curve_public(const char *cert_path, char public_z85[KB_Z85_KEY_LEN + 1])
{
    char *buf = NULL;
    size_t len = 0;
    int rc = s_read_key(cert_path, 0, &buf, &len);
    if (rc != KB_OK)
        return rc;
    s_cert_t cert;
    rc = s_cert_parse(cert_path, buf, len, &cert);
    if (rc == KB_OK && !cert.has_public)
        rc = kb_error_set(KB_EPROTO, "%s: no curve public-key", cert_path);
    if (rc == KB_OK)
        memcpy(public_z85, cert.public_z85, KB_Z85_KEY_LEN + 1);
    /* The file may be a secret certificate. */
    OPENSSL_cleanse(&cert, sizeof cert);
    s_free_secret(buf, len);
    return rc;
}

int kb_keys_load_curve_secret(const char *cert_path, char public_z85[KB_Z85_KEY_LEN + 1],
                              char secret_z85[KB_Z85_KEY_LEN + 1])
{
    char *buf = NULL;
    size_t len = 0;
    int rc = s_read_key(cert_path, 1, &buf, &len);
    if (rc != KB_OK)
        return rc;
    s_cert_t cert;
    char derived[KB_Z85_KEY_LEN + 1];
    rc = s_cert_parse(cert_path, buf, len, &cert);
    if (rc == KB_OK && !cert.has_secret)
        rc = kb_error_set(KB_EPROTO, "%s: no curve secret-key (not a secret certificate)", cert_path);
    if (rc == KB_OK && !cert.has_public)
        rc = kb_error_set(KB_EPROTO, "%s: no curve public-key", cert_path);
    if (rc == KB_OK && zmq_curve_public(derived, cert.secret_z85) != 0)
        rc = kb_error_set(KB_ECRYPTO, "%s: zmq_curve_public: %s", cert_path, zmq_strerror(zmq_errno()));
    if (rc == KB_OK && CRYPTO_memcmp(derived, cert.public_z85, KB_Z85_KEY_LEN) != 0)
        rc = kb_error_set(KB_ECRYPTO, "%s: public-key does not belong to secret-key", cert_path);
    if (rc == KB_OK) {
        memcpy(public_z85, cert.public_z85, KB_Z85_KEY_LEN + 1);
        memcpy(secret_z85, cert.secret_z85, KB_Z85_KEY_LEN + 1);
    }
    OPENSSL_cleanse(&cert, sizeof cert);
    OPENSSL_cleanse(derived, sizeof derived);
    s_free_secret(buf, len);
    return rc;
}

/* A library never prompts: an encrypted private key simply fails to load. */
static int s_no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf;
    (void)size;
    (void)rwflag;
    (void)arg;
    return 0;
}

static EVP_PKEY *s_load_pem(const char *pem_path, int private_key)
{
    char *buf = NULL;
    size_t len = 0;
    if (s_read_key(pem_path, private_key, &buf, &len) != KB_OK)
        return NULL;
    EVP_PKEY *pkey = NULL;
    BIO *bio = BIO_new_mem_buf(buf, (int)len); /* len <= KB_KEYS_MAX_FILE_BYTES */
    if (!bio) {
        kb_error_ssl(KB_ENOMEM, "%s: BIO_new_mem_buf", pem_path);
        goto done;
    }
    pkey = private_key ? PEM_read_bio_PrivateKey(bio, NULL, s_no_passphrase, NULL)
                       : PEM_read_bio_PUBKEY(bio, NULL, s_no_passphrase, NULL);
    BIO_free(bio);
    if (!pkey) {
        kb_error_ssl(KB_EPROTO, "%s: no %s key in PEM", pem_path, private_key ? "private" : "public");
        goto done;
    }
    if (EVP_PKEY_get_id(pkey) != EVP_PKEY_ED25519) {
        const char *type = EVP_PKEY_get0_type_name(pkey);
        kb_error_set(KB_ECRYPTO, "%s: not an Ed25519 key (%s)", pem_path, type ? type : "unknown type");
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
done:
    if (private_key)
        s_free_secret(buf, len);
    else
        free(buf);
    return pkey;
}

EVP_PKEY *kb_keys_load_sign_private(const char *pem_path)
{
    return s_load_pem(pem_path, 1);
}

EVP_PKEY *kb_keys_load_sign_public(const char *pem_path)
{
    return s_load_pem(pem_path, 0);
}

int kb_keys_load_raw_secret(const char *path, uint8_t *out, size_t want, const char *what)
{
    char *buf = NULL;
    size_t len = 0;
    int rc = s_read_key(path, 1, &buf, &len);
    if (rc != KB_OK)
        return rc;
    if (len != want)
        rc = kb_error_set(KB_EPROTO, "%s: %zu bytes; %s is exactly %zu raw bytes", path, len, what, want);
    else
        memcpy(out, buf, want);
    s_free_secret(buf, len);
    return rc;
}

int kb_keys_load_storage(const char *path, uint8_t key[32])
{
    return kb_keys_load_raw_secret(path, key, KB_KEYS_STORAGE_LEN, "a storage key");
}
