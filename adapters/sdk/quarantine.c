/*
 * quarantine.c - deliveries the SDK refused as not genuine, kept in the
 * state directory.
 *
 * A delivery that cannot be genuine whatever keys are installed (a notice
 * not from the broker, a message in the broker's name that is not a
 * notice, a sender called "broker" that is not the broker) can never be
 * handed to the adapter; left unacknowledged it would come again in every
 * session until it expired. So it is written here, synced, and only then
 * acknowledged: it leaves the broker's queue, not the record. For
 * each one,
 *   STATE/quarantine/SENDER-ID-HASH.pb   the envelope as received (protobuf,
 *                                        encoded again after decoding)
 *   STATE/quarantine/SENDER-ID-HASH.txt  when and why it was refused (the
 *                                        last time, if it came more than once)
 * where HASH is the start of the SHA-256 of the envelope's bytes, so a copy
 * delivered again lands on its own file and a different envelope under the
 * same id does not replace it. The names use only what is safe in a path.
 * kb_quarantine_list() reads them back for `ketenbus quarantine`.
 * The client bounds what it keeps here (KB_QUARANTINE_MAX_ENTRIES and
 * _BYTES): it counts the directory once at start (kb_quarantine_usage)
 * and adds what it writes, so a copy written again counts twice.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "kb_error.h"
#include "kb_util.h"
#include "sdk_internal.h"

/* Largest envelope file read back: the largest frame a broker may be
 * configured to pass (max_message_bytes, 64 MiB). */
#define KB_QUARANTINE_READ_MAX (64u << 20)

const char *kb_quarantine_safe_id(const char *s)
{
    return kb_agency_id_valid(s) ? s : "unknown";
}

/* STATE/quarantine into dir (PATH_MAX bytes). */
static int s_dir(char *dir, const char *state_dir)
{
    if (kb_fmt(dir, PATH_MAX, "%s/quarantine", state_dir) != KB_OK)
        return kb_error_set(KB_ETOOBIG, "quarantine: state directory path too long");
    return KB_OK;
}

/* 1 if name is that of an entry's envelope file (*.pb, not hidden). */
static int s_is_entry(const char *name)
{
    size_t n = strlen(name);
    return n > 3 && name[0] != '.' && strcmp(name + n - 3, ".pb") == 0;
}

int kb_quarantine_put(const char *state_dir, const Ketenbus__Envelope *e, const char *why, char *path,
                      size_t path_len)
{
    char dir[PATH_MAX], base[PATH_MAX], file[PATH_MAX];
    int rc = s_dir(dir, state_dir);
    if (rc == KB_OK)
        rc = kb_mkdirs(dir, 0700);
    if (rc == KB_OK)
        rc = kb_dir_sync(state_dir); /* the directory's own entry, made the first time */
    if (rc != KB_OK)
        return rc;
    size_t len = ketenbus__envelope__get_packed_size(e);
    uint8_t *bytes = malloc(len ? len : 1);
    if (!bytes)
        return kb_error_set(KB_ENOMEM, "quarantine: out of memory");
    ketenbus__envelope__pack(e, bytes);
    uint8_t digest[SHA256_DIGEST_LENGTH];
    SHA256(bytes, len, digest);
    char id[37] = "no-id", hash[17];
    if (e->message_id.len == 16)
        kb_uuid_format(e->message_id.data, id);
    kb_hex(digest, 8, hash);
    rc = kb_fmt(base, sizeof base, "%s/%s-%s-%s", dir, kb_quarantine_safe_id(e->sender), id, hash);
    if (rc != KB_OK)
        rc = kb_error_set(KB_ETOOBIG, "quarantine: path too long");
    char note[KB_ERROR_MAX + 128], when[40];
    kb_time_format(kb_now_us(), when);
    int n = snprintf(note, sizeof note, "refused %s: %s\n", when, why);
    if (rc == KB_OK && (rc = kb_fmt(file, sizeof file, "%s.pb", base)) == KB_OK)
        rc = kb_file_write(file, bytes, len, 0600);
    char txt[PATH_MAX];
    if (rc == KB_OK && (rc = kb_fmt(txt, sizeof txt, "%s.txt", base)) == KB_OK)
        rc = kb_file_write(txt, note, n > 0 && (size_t)n < sizeof note ? (size_t)n : strlen(note), 0600);
    free(bytes);
    if (rc == KB_OK)
        rc = kb_dir_sync(dir);
    if (rc == KB_OK && path)
        snprintf(path, path_len, "%s", file);
    return rc;
}

uint64_t kb_quarantine_entry_bytes(const Ketenbus__Envelope *e, const char *why)
{
    /* the envelope, and its note: a time and the reason */
    return (uint64_t)ketenbus__envelope__get_packed_size(e) + strlen(why) + 64;
}

int kb_quarantine_usage(const char *state_dir, size_t *entries, uint64_t *bytes)
{
    *entries = 0;
    *bytes = 0;
    char dir[PATH_MAX];
    if (s_dir(dir, state_dir) != KB_OK)
        return KB_ETOOBIG;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? KB_OK : kb_error_set(KB_EIO, "quarantine: %s: %s", dir, strerror(errno));
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        struct stat st;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISREG(st.st_mode))
            continue;
        if (s_is_entry(de->d_name))
            (*entries)++;
        *bytes += (uint64_t)st.st_size;
    }
    closedir(d);
    return KB_OK;
}

/* The whole of path, a regular file of at most max bytes, into *buf
 * (malloc'd, NUL-terminated) and *len. A link is not followed and a FIFO
 * or device not waited on: the quarantine may hold anything. */
static int s_read_regular(const char *path, size_t max, char **buf, size_t *len)
{
    *buf = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0)
        return kb_error_set(KB_EIO, "cannot open it: %s", strerror(errno));
    struct stat st;
    int rc = KB_OK;
    if (fstat(fd, &st) != 0)
        rc = kb_error_set(KB_EIO, "cannot look at it: %s", strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = kb_error_set(KB_EIO, "not a regular file");
    else if ((uint64_t)st.st_size > max)
        rc = kb_error_set(KB_EIO, "larger than %zu bytes", max);
    char *b = rc == KB_OK ? malloc((size_t)st.st_size + 1) : NULL;
    if (rc == KB_OK && !b)
        rc = kb_error_set(KB_ENOMEM, "out of memory");
    size_t got = 0;
    while (rc == KB_OK && got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            rc = kb_error_set(KB_EIO, "cannot read it: %s", r < 0 ? strerror(errno) : "it shrank");
            break;
        }
        got += (size_t)r;
    }
    close(fd);
    if (rc != KB_OK) {
        free(b);
        return rc;
    }
    b[got] = '\0';
    *buf = b;
    *len = got;
    return KB_OK;
}

/* 1 if s is a time as kb_time_format() writes it (digits and -:T.Z). */
static int s_time_text(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!strchr("0123456789-:T.Z", s[i]) || s[i] == '\0')
            return 0;
    return 1;
}

/* Fill q's time and reason from its .txt: "refused TIME: WHY\n". */
static void s_read_note(kb_quarantined_t *q, const char *txt)
{
    char *note = NULL;
    size_t len = 0;
    if (s_read_regular(txt, sizeof q->reason + 64, &note, &len) != KB_OK) {
        snprintf(q->problem, sizeof q->problem, "its reason file: %s", kb_last_error());
        return;
    }
    const char *colon = strstr(note, ": ");
    size_t tlen = colon ? (size_t)(colon - note) - 8 : 0;
    if (strncmp(note, "refused ", 8) != 0 || !colon || tlen >= sizeof q->refused || !s_time_text(note + 8, tlen)) {
        snprintf(q->problem, sizeof q->problem, "its reason file is not in the SDK's form");
        snprintf(q->reason, sizeof q->reason, "%s", note);
    } else {
        snprintf(q->refused, sizeof q->refused, "%.*s", (int)tlen, note + 8);
        snprintf(q->reason, sizeof q->reason, "%s", colon + 2);
    }
    size_t l = strlen(q->reason);
    if (l > 0 && q->reason[l - 1] == '\n')
        q->reason[l - 1] = '\0';
    free(note);
}

int kb_quarantine_read(const char *file, Ketenbus__Envelope **env)
{
    *env = NULL;
    char *bytes = NULL;
    size_t len = 0;
    int rc = s_read_regular(file, KB_QUARANTINE_READ_MAX, &bytes, &len);
    if (rc != KB_OK)
        return rc;
    *env = ketenbus__envelope__unpack(NULL, len, (const uint8_t *)bytes);
    free(bytes);
    return *env ? KB_OK : kb_error_set(KB_EPROTO, "not a ketenbus envelope (%zu bytes)", len);
}

/* Read the entry whose envelope file is dir/name (a *.pb). */
static void s_read_entry(kb_quarantined_t *q, const char *dir, const char *name)
{
    memset(q, 0, sizeof *q);
    char txt[PATH_MAX];
    size_t stem = strlen(name) - 3;
    if (kb_fmt(q->file, sizeof q->file, "%s/%s", dir, name) != KB_OK ||
        kb_fmt(txt, sizeof txt, "%s/%.*s.txt", dir, (int)stem, name) != KB_OK) {
        snprintf(q->problem, sizeof q->problem, "path too long");
        return;
    }
    s_read_note(q, txt);
    Ketenbus__Envelope *e = NULL;
    if (kb_quarantine_read(q->file, &e) != KB_OK) {
        snprintf(q->problem, sizeof q->problem, "%s", kb_last_error());
        return;
    }
    q->readable = 1;
    snprintf(q->sender, sizeof q->sender, "%s", e->sender ? e->sender : "");
    if (e->message_id.len == 16)
        kb_uuid_format(e->message_id.data, q->id);
    q->kind = (int)e->kind;
    ketenbus__envelope__free_unpacked(e, NULL);
}

static int s_older(const void *a, const void *b)
{
    const kb_quarantined_t *x = a, *y = b;
    int c = strcmp(x->refused, y->refused); /* UTC times of one width sort as text */
    return c != 0 ? c : strcmp(x->file, y->file);
}

int kb_quarantine_list(const char *state_dir, kb_quarantined_t **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    char dir[PATH_MAX];
    if (s_dir(dir, state_dir) != KB_OK)
        return KB_ETOOBIG;
    DIR *d = opendir(dir);
    if (!d && errno == ENOENT)
        return KB_OK;
    if (!d)
        return kb_error_set(KB_EIO, "quarantine: %s: %s", dir, strerror(errno));
    kb_quarantined_t *list = NULL;
    size_t cap = 0, count = 0;
    int rc = KB_OK;
    struct dirent *de;
    while (rc == KB_OK && (de = readdir(d)) != NULL) {
        if (!s_is_entry(de->d_name))
            continue;
        if (count == cap) {
            size_t grown = cap ? cap * 2 : 16;
            kb_quarantined_t *p = realloc(list, grown * sizeof *p);
            if (!p) {
                rc = kb_error_set(KB_ENOMEM, "quarantine: out of memory");
                break;
            }
            list = p;
            cap = grown;
        }
        s_read_entry(&list[count++], dir, de->d_name);
    }
    closedir(d);
    if (rc != KB_OK) {
        free(list);
        return rc;
    }
    if (count > 1)
        qsort(list, count, sizeof *list, s_older);
    *out = list;
    *n = count;
    return KB_OK;
}
