/*
 * tty.c - text that agencies wrote, made safe to print on a terminal.
 *
 * Agencies write officer ids, legal bases, reasons, and a refused
 * delivery may hold anything at all: none of it may move the cursor,
 * retitle or clear the window, start a line that looks like the tool's
 * own, or reorder what is shown. Control characters (C0 including tab and
 * newline, DEL, C1), invalid UTF-8 and bidirectional overrides and
 * isolates become U+FFFD, as in the HTML report (report_html.c).
 * cli_json_safe() does the same for a JSON text without changing what it
 * says: such characters are written as \u escapes.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "cli.h"
#include "kb_codec.h"
#include "kb_error.h"

/* The length of the character at p (left bytes remain) in *n, and 1 if
 * it may not reach a terminal as it is: invalid UTF-8 (*n is then 1), a
 * control character, or a bidirectional override or isolate. */
static int s_unsafe(const unsigned char *p, size_t left, size_t *n)
{
    *n = p[0] < 0x80 ? 1 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
    if (*n > left || !kb_utf8_valid((const char *)p, *n)) {
        *n = 1;
        return 1;
    }
    if (*n == 1)
        return p[0] < 0x20 || p[0] == 0x7f;
    if (*n == 2)
        return p[0] == 0xc2 && p[1] < 0xa0; /* U+0080-009F */
    if (*n == 3)
        return p[0] == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
                                (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9));
    return 0;
}

const char *cli_tty(const char *in, char *out, size_t len)
{
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    size_t left = strlen((const char *)p), at = 0;
    while (left > 0) {
        size_t n;
        int bad = s_unsafe(p, left, &n);
        const char *put = bad ? "\xef\xbf\xbd" : (const char *)p;
        size_t put_len = bad ? 3 : n;
        if (at + put_len >= len)
            break;
        memcpy(out + at, put, put_len);
        at += put_len;
        p += n;
        left -= n;
    }
    if (len)
        out[at] = '\0';
    return out;
}

char *cli_json_safe(const char *json)
{
    const unsigned char *p = (const unsigned char *)json;
    size_t left = strlen(json), at = 0;
    char *out = left < SIZE_MAX / 6 ? malloc(left * 6 + 1) : NULL; /* "\\u00xx" for each byte at most */
    if (!out)
        return NULL;
    while (left > 0) {
        size_t n;
        if (!s_unsafe(p, left, &n) || (n == 1 && p[0] < 0x20)) {
            /* json-c escapes C0 itself: one seen here is JSON's own (none) */
            memcpy(out + at, p, n);
            at += n;
        } else {
            unsigned cp = n == 1 ? (p[0] == 0x7f ? 0x7fu : 0xfffdu)
                        : n == 2 ? ((p[0] & 0x1fu) << 6 | (p[1] & 0x3fu))
                                 : ((p[0] & 0x0fu) << 12 | (p[1] & 0x3fu) << 6 | (p[2] & 0x3fu));
            at += (size_t)snprintf(out + at, 7, "\\u%04x", cp);
        }
        p += n;
        left -= n;
    }
    out[at] = '\0';
    return out;
}

int cli_json_line(FILE *out, json_object *j, int flags)
{
    const char *text = j ? json_object_to_json_string_ext(j, flags) : NULL;
    char *safe = text ? cli_json_safe(text) : NULL;
    if (!safe)
        return kb_error_set(KB_ENOMEM, "out of memory");
    fprintf(out, "%s\n", safe);
    free(safe);
    return KB_OK;
}
