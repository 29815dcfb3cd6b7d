/*
 * quarantine.c - deliveries the SDK refused as not genuine, kept in the
 * state directory.
 *
 * A delivery that cannot be genuine whatever keys are installed (a notice
 * not from the broker, a message in the broker's name that is not a
 * notice, a sender called "broker" that is not the broker) can never be
 * handed to the adapter; left unacknowledged it would
 * come again in every session and hold a credit each time, until
 * deliveries behind it stopped. So it is written here, synced, and only
 * then acknowledged: it leaves the broker's queue, not the record. For
 * each one,
 *   STATE/quarantine/SENDER-ID-HASH.pb   the envelope as received (protobuf,
 *                                        encoded again after decoding)
 *   STATE/quarantine/SENDER-ID-HASH.txt  when and why it was refused (the
 *                                        last time, if it came more than once)
 * where HASH is the start of the SHA-256 of the envelope's bytes, so a copy
 * delivered again lands on its own file and a different envelope under the
 * same id does not replace it. The names use only what is safe in a path.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/sha.h>

#include "kb_error.h"
#include "kb_util.h"
#include "sdk_internal.h"

const char *kb_quarantine_safe_id(const char *s)
{
    return kb_agency_id_valid(s) ? s : "unknown";
}

int kb_quarantine_put(const char *state_dir, const Ketenbus__Envelope *e, const char *why, char *path,
                      size_t path_len)
{
    char dir[PATH_MAX], base[PATH_MAX], file[PATH_MAX];
    if (kb_fmt(dir, sizeof dir, "%s/quarantine", state_dir) != KB_OK)
        return kb_error_set(KB_ETOOBIG, "quarantine: state directory path too long");
    int rc = kb_mkdirs(dir, 0700);
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
