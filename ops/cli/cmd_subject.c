/*
 * cmd_subject.c - `ketenbus subject-key`: the subject key of an identifier.
 *
 * For agency IT staff and scripts: compute the pseudonym an adapter would
 * put in subject_keys, check that two agencies hold the same chain key (the
 * same test identifier must give the same key), or turn a file of
 * identifiers into keys (VALUE "-": one per line on stdin, which keeps them
 * out of the process list and the shell history). The rules live in
 * lib/kb_subject.c; this file only reads arguments and prints.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cli.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_subject.h"
#include "kb_util.h"

static void s_usage(FILE *out)
{
    fprintf(out,
            "usage: ketenbus subject-key --chain-key FILE --type TYPE [--normalised] VALUE\n"
            "       ketenbus subject-key --chain-key FILE --type TYPE [--normalised] - < values\n"
            "\n"
            "Prints the subject key of VALUE: HMAC-SHA256 under the chain key of\n"
            "\"TYPE:\" and the normalised value, as 64 hex digits, the form messages carry\n"
            "in subject_keys. With VALUE '-' it reads one value per line from stdin and\n"
            "prints one key per line (stopping at the first invalid value); prefer this\n"
            "for real identifiers, which would otherwise show in the process list and the\n"
            "shell history. Rules and test vectors: docs/SUBJECT_KEYS.md.\n"
            "\n"
            "  --chain-key FILE  the chain key (32 bytes, mode 0600; ketenbus keygen\n"
            "                    --chain-key); default $KETENBUS_CHAIN_KEY\n"
            "  --type TYPE       bsn          9 digits passing the elfproef (123456782)\n"
            "                    vnummer      10 digits\n"
            "                    document     passport or ID number, letters and digits\n"
            "                    name_birth   \"family name|given names|YYYY-MM-DD\"\n"
            "                    phone        +31 6 12345678, 06-12345678, 0031 ...\n"
            "  --normalised      print the normalised value after the key, tab-separated\n"
            "\n"
            "Exit status: 0 done, 1 invalid value or unreadable key, 2 bad usage.\n");
}

/* Print the key of one value; KB_OK or the library's code (detail set). */
static int s_one(const uint8_t chain_key[KB_CHAIN_KEY_LEN], const char *type, const char *value, int normalised)
{
    char norm[KB_SUBJECT_NORMALISED_MAX];
    uint8_t key[KB_SUBJECT_KEY_LEN];
    char hex[2 * KB_SUBJECT_KEY_LEN + 1];
    int rc = kb_subject_key(chain_key, type, value, key);
    if (rc == KB_OK && normalised)
        rc = kb_subject_normalise(type, value, norm, sizeof norm);
    if (rc == KB_OK) {
        kb_hex(key, sizeof key, hex);
        if (normalised)
            printf("%s\t%s\n", hex, norm);
        else
            printf("%s\n", hex);
    }
    OPENSSL_cleanse(norm, sizeof norm);
    return rc;
}

/* One key per line of stdin; stops at the first invalid value. */
static int s_stdin(const uint8_t chain_key[KB_CHAIN_KEY_LEN], const char *type, int normalised)
{
    char *line = NULL;
    size_t cap = 0, line_no = 0;
    ssize_t n;
    int status = KB_EXIT_OK;
    while ((n = getline(&line, &cap, stdin)) >= 0) {
        line_no++;
        /* the value would end at the NUL and the rest of the line be lost */
        if (memchr(line, '\0', (size_t)n)) {
            fprintf(stderr, "ketenbus subject-key: stdin line %zu contains a NUL byte\n", line_no);
            status = KB_EXIT_FAIL;
            break;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (s_one(chain_key, type, line, normalised) != KB_OK) {
            fprintf(stderr, "ketenbus subject-key: stdin line %zu: %s\n", line_no, kb_last_error());
            status = KB_EXIT_FAIL;
            break;
        }
    }
    if (line) {
        OPENSSL_cleanse(line, cap);
        free(line);
    }
    if (status == KB_EXIT_OK && ferror(stdin)) {
        fprintf(stderr, "ketenbus subject-key: reading stdin failed\n");
        status = KB_EXIT_FAIL;
    }
    return status;
}

int cmd_subject(int argc, char **argv)
{
    static const struct option opts[] = {{"chain-key", required_argument, NULL, 'k'},
                                         {"type", required_argument, NULL, 't'},
                                         {"normalised", no_argument, NULL, 'n'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *key_file = NULL, *type = NULL;
    int normalised = 0, c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "k:t:nh", opts, NULL)) != -1) {
        switch (c) {
        case 'k': key_file = optarg; break;
        case 't': type = optarg; break;
        case 'n': normalised = 1; break;
        case 'h': s_usage(stdout); return KB_EXIT_OK;
        default: s_usage(stderr); return KB_EXIT_USAGE;
        }
    }
    if (!key_file)
        key_file = getenv("KETENBUS_CHAIN_KEY");
    if (!key_file || !*key_file) {
        fprintf(stderr, "ketenbus subject-key: --chain-key is required (or KETENBUS_CHAIN_KEY)\n");
        return KB_EXIT_USAGE;
    }
    if (!type || optind != argc - 1) {
        s_usage(stderr);
        return KB_EXIT_USAGE;
    }
    /* An unknown type is a usage error, told before the key file is read. */
    char probe[KB_SUBJECT_NORMALISED_MAX];
    if (kb_subject_normalise(type, "", probe, sizeof probe) == KB_EINVAL) {
        fprintf(stderr, "ketenbus subject-key: %s\n", kb_last_error());
        return KB_EXIT_USAGE;
    }
    uint8_t chain_key[KB_CHAIN_KEY_LEN];
    if (kb_subject_load_chain_key(key_file, chain_key) != KB_OK) {
        fprintf(stderr, "ketenbus subject-key: %s\n", kb_last_error());
        return KB_EXIT_FAIL;
    }
    const char *value = argv[optind];
    int status;
    if (strcmp(value, "-") == 0) {
        status = s_stdin(chain_key, type, normalised);
    } else if (s_one(chain_key, type, value, normalised) != KB_OK) {
        fprintf(stderr, "ketenbus subject-key: %s\n", kb_last_error());
        status = KB_EXIT_FAIL;
    } else {
        status = KB_EXIT_OK;
    }
    OPENSSL_cleanse(chain_key, sizeof chain_key);
    if (fflush(stdout) != 0 && status == KB_EXIT_OK) {
        fprintf(stderr, "ketenbus subject-key: writing the output failed\n");
        status = KB_EXIT_FAIL;
    }
    return status;
}
