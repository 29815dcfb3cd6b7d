/*
 * cmd_keygen.c - `ketenbus keygen`: the key files a chain needs.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "kb_error.h"
#include "kb_keys.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbus keygen --agency ID --out DIR\n"
            "       ketenbus keygen --broker --out DIR\n"
            "\n"
            "Writes a CURVE key pair (transport identity, ZeroMQ certificate files) and an\n"
            "Ed25519 key pair (signing identity, PEM) into DIR, created with mode 0700:\n"
            "  ID.curve          public CURVE certificate: give it to the broker operator\n"
            "  ID.curve_secret   secret CURVE certificate (mode 0600)\n"
            "  ID.sign.pem       Ed25519 private key (mode 0600)\n"
            "  ID.sign.pub.pem   Ed25519 public key: give it to the broker operator\n"
            "With --broker the name is 'broker' and DIR also gets broker.storage.key\n"
            "(mode 0600), the AES-256-GCM key for messages queued on disk; adapters need\n"
            "broker.curve to connect. Existing files are never overwritten.\n"
            "\n"
            "  --agency ID   agency id: lowercase letters, digits and '-', at most 32\n"
            "  --broker      make the broker's keys\n"
            "  --out DIR     directory to write to\n");
}

static int s_valid_id(const char *id)
{
    size_t n = strlen(id);
    if (n == 0 || n > 32)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((id[i] >= 'a' && id[i] <= 'z') || (id[i] >= '0' && id[i] <= '9') || id[i] == '-'))
            return 0;
    return 1;
}

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {{"agency", required_argument, NULL, 'a'},
                                         {"broker", no_argument, NULL, 'b'},
                                         {"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *agency = NULL, *out = NULL;
    int broker = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "a:bo:h", opts, NULL)) != -1) {
        switch (c) {
        case 'a': agency = optarg; break;
        case 'b': broker = 1; break;
        case 'o': out = optarg; break;
        case 'h': s_usage(stdout); return KB_EXIT_OK;
        default: s_usage(stderr); return KB_EXIT_USAGE;
        }
    }
    if (!out || (!agency && !broker) || (agency && broker) || optind != argc) {
        s_usage(stderr);
        return KB_EXIT_USAGE;
    }
    if (agency && !s_valid_id(agency)) {
        fprintf(stderr, "ketenbus keygen: '%s' is not a valid agency id (a-z, 0-9, '-', 1..32 characters)\n",
                agency);
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
