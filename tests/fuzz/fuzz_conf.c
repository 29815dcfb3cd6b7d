/*
 * fuzz_conf.c - libFuzzer target for the chain file parser (broker/conf.c
 * and the rules' lint in broker/policy.c).
 *
 * Treats the input as a chain.yaml, as `ketenbus policy check` and a
 * reload read one: kb_conf_load_ex() without the key files. The file is
 * an in-memory file (memfd) opened by its /proc/self/fd path, so that the
 * parser reads it as it reads any file. Beyond the sanitizers it checks
 * the loader's promises and aborts when one breaks:
 * - a refused file gives NULL and a non-empty message that starts with
 *   the file's path (file:line:col, or the path and what was wrong);
 * - the SHA-256 it reports is 64 hex digits, loaded or not (the file is
 *   read whole here), and a loaded file's configuration carries the same;
 * - a loaded file loads again to the same SHA-256 and the same counts.
 *
 * Built and run by `make fuzz` (clang only; the unit tests do not need it).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "conf.h"
#include "kb_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int s_fd = -1;
static char s_path[64];

static int s_hex64(const char *s)
{
    return strlen(s) == 64 && strspn(s, "0123456789abcdef") == 64;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (s_fd < 0) {
        s_fd = memfd_create("chain.yaml", MFD_CLOEXEC);
        if (s_fd < 0)
            abort();
        snprintf(s_path, sizeof s_path, "/proc/self/fd/%d", s_fd);
    }
    if (ftruncate(s_fd, 0) != 0 || pwrite(s_fd, data, size, 0) != (ssize_t)size)
        abort();
    char sha[65] = "unset";
    kb_conf_t *c = kb_conf_load_ex(s_path, KB_CONF_SKIP_KEYS, sha);
    if (!s_hex64(sha))
        abort();
    if (!c) {
        const char *why = kb_last_error();
        if (!why[0] || strncmp(why, s_path, strlen(s_path)) != 0)
            abort();
        return 0;
    }
    if (strcmp(c->sha256, sha) != 0)
        abort();
    char again[65] = "";
    kb_conf_t *d = kb_conf_load_ex(s_path, KB_CONF_SKIP_KEYS, again);
    if (!d || strcmp(again, sha) != 0 || d->n_agencies != c->n_agencies || d->n_rules != c->n_rules ||
        d->n_groups != c->n_groups)
        abort();
    kb_conf_destroy(&d);
    kb_conf_destroy(&c);
    return 0;
}
