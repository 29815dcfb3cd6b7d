/*
 * tty.c - text that agencies wrote, made safe to print on a terminal.
 *
 * Agencies write officer ids, legal bases, reasons, and a refused
 * delivery may hold anything at all: none of it may move the cursor,
 * retitle or clear the window, start a line that looks like the tool's
 * own, or reorder what is shown. Control characters (C0 including tab and
 * newline, DEL, C1), invalid UTF-8 and bidirectional overrides and
 * isolates become U+FFFD, as in the HTML report (report_html.c).
 */
#include <string.h>

#include "cli.h"
#include "kb_codec.h"

const char *cli_tty(const char *in, char *out, size_t len)
{
    const unsigned char *p = (const unsigned char *)(in ? in : "");
    size_t left = strlen((const char *)p), at = 0;
    while (left > 0) {
        size_t n = p[0] < 0x80 ? 1 : p[0] >= 0xf0 ? 4 : p[0] >= 0xe0 ? 3 : 2;
        int bad = n > left || !kb_utf8_valid((const char *)p, n);
        if (bad)
            n = 1;
        else if (n == 1)
            bad = p[0] < 0x20 || p[0] == 0x7f;
        else if (n == 2)
            bad = p[0] == 0xc2 && p[1] < 0xa0; /* U+0080-009F */
        else if (n == 3)
            bad = p[0] == 0xe2 && ((p[1] == 0x80 && p[2] >= 0xaa && p[2] <= 0xae) ||
                                   (p[1] == 0x81 && p[2] >= 0xa6 && p[2] <= 0xa9));
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

