/*
 * cmd_keygen.c - `ketenbus keygen`: the key files a chain needs.
 *
 * Agency and broker key sets come from lib/kb_keys.c. The chain key (the
 * secret behind subject keys, see lib/kb_subject.h) is a single file of 32
 * random bytes written here, with the same care: created with O_EXCL and
 * mode 0600 from the start, never over an existing file.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "cli.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_subject.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbus keygen --agency ID --out DIR\n"
            "       ketenbus keygen --broker --out DIR\n"
            "       ketenbus keygen --chain-key --out FILE\n"
            "\n"
            "Writes a CURVE key pair (transport identity, ZeroMQ certificate files) and an\n"
            "Ed25519 key pair (signing identity, PEM) into DIR, created with mode 0700:\n"
            "  ID.curve          public CURVE certificate: give it to the broker operator\n"
            "  ID.curve_secret   secret CURVE certificate (mode 0600)\n"
            "  ID.sign.pem       Ed25519 private key (mode 0600)\n"
            "  ID.sign.pub.pem   Ed25519 public key: give it to the broker operator\n"
            "With --broker the name is 'broker' and DIR also gets broker.storage.key\n"
            "(mode 0600), the AES-256-GCM key for messages queued on disk; adapters need\n"
            "broker.curve to connect.\n"
            "With --chain-key it writes FILE (mode 0600): 32 random bytes, the chain key\n"
            "under which every agency computes subject keys (ketenbus subject-key,\n"
            "docs/SUBJECT_KEYS.md). Make it once for the whole chain and give a copy to\n"
            "each agency over a secure channel; never to the broker operator.\n"
            "Existing files are never overwritten.\n"
            "\n"
            "  --agency ID   agency id: lowercase letters, digits and '-', at most 32\n"
            "  --broker      make the broker's keys\n"
            "  --chain-key   make the chain key shared by the agencies\n"
            "  --out PATH    directory to write to (file with --chain-key)\n");
}

/* Write a new chain key to path: 32 random bytes, mode 0600, never over an
 * existing file; a half-written file is removed. */
static int s_write_chain_key(const char *path)
{
    uint8_t key[KB_CHAIN_KEY_LEN];
    if (RAND_priv_bytes(key, sizeof key) != 1)
        return kb_error_ssl(KB_ECRYPTO, "RAND_priv_bytes for the chain key");
    int rc = KB_OK;
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
        rc = errno == EEXIST ? kb_error_set(KB_EIO, "%s already exists; refusing to overwrite it", path)
                             : kb_error_set(KB_EIO, "create %s: %s", path, strerror(errno));
        OPENSSL_cleanse(key, sizeof key);
        return rc;
    }
    size_t done = 0;
    while (rc == KB_OK && done < sizeof key) {
        ssize_t n = write(fd, key + done, sizeof key - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            rc = kb_error_set(KB_EIO, "write %s: %s", path, strerror(errno));
        else
            done += (size_t)n;
    }
    OPENSSL_cleanse(key, sizeof key);
    /* The umask cannot widen 0600, but a narrower umask could leave 0400 or
     * less: set exactly what the loader expects. */
    if (rc == KB_OK && (fchmod(fd, 0600) != 0 || fsync(fd) != 0))
        rc = kb_error_set(KB_EIO, "sync %s: %s", path, strerror(errno));
    if (close(fd) != 0 && rc == KB_OK)
        rc = kb_error_set(KB_EIO, "close %s: %s", path, strerror(errno));
    if (rc != KB_OK)
        unlink(path); /* ours: O_EXCL made it */
    return rc;
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {{"agency", required_argument, NULL, 'a'},
                                         {"broker", no_argument, NULL, 'b'},
                                         {"chain-key", no_argument, NULL, 'c'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *agency = NULL, *out = NULL;
    int broker = 0, chain_key = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:bco:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': agency = optarg; break;
        case 'b': broker = 1; break;
        case 'c': chain_key = 1; break;
        case 'o': out = optarg; break;
        case 'h': s_usage(stdout); return KB_EXIT_OK;
        default: s_usage(stderr); return KB_EXIT_USAGE;
        }
    }
    if (!out || (agency != NULL) + broker + chain_key != 1 || optind != argc) {
        s_usage(stderr);
        return KB_EXIT_USAGE;
    }
    if (chain_key) {
        if (s_write_chain_key(out) != KB_OK) {
            fprintf(stderr, "ketenbus keygen: %s\n", kb_last_error());
            return KB_EXIT_FAIL;
        }
        printf("wrote chain key %s (32 bytes, mode 0600): copy it to each agency of the chain over a secure "
               "channel, never to the broker operator\n", out);
        return KB_EXIT_OK;
    }
    if (agency && !kb_agency_id_valid(agency)) {
        fprintf(stderr, "ketenbus keygen: '%s' is not a valid agency id (a-z, 0-9, '-', 1..32 characters)\n",
                agency);
        return KB_EXIT_USAGE;
    }
    if (agency && strcmp(agency, "broker") == 0) {
        fprintf(stderr, "ketenbus keygen: 'broker' is the name of the broker's own key files (keygen --broker); "
                        "an agency needs another id\n");
        return KB_EXIT_USAGE;
    }
    const char *name = broker ? "broker" : agency;
    if (kb_keys_generate(out, name, broker) != KB_OK) {
        fprintf(stderr, "ketenbus keygen: %s\n", kb_last_error());
        return KB_EXIT_FAIL;
    }
    char path[4096], pub[KB_Z85_KEY_LEN + 1];
    snprintf(path, sizeof path, "%s/%s.curve", out, name);
    if (kb_keys_load_curve_public(path, pub) != KB_OK) {
        fprintf(stderr, "ketenbus keygen: %s\n", kb_last_error());
        return KB_EXIT_FAIL;
    }
    printf("wrote keys for %s in %s (CURVE public key %s)\n", name, out, pub);
    return KB_EXIT_OK;
}
