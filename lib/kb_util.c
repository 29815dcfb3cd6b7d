/*
 * kb_util.c - clock, UUIDv7, hex, RFC 3339 time and file helpers.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "kb_error.h"
#include "kb_util.h"

int64_t kb_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t kb_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int kb_routing_id_new(uint8_t out[KB_ROUTING_ID_LEN])
{
    /* drawn again while the first byte is 0 (1 in 256), so that the id
     * stays uniform over the ids allowed */
    for (int tries = 0; tries < 8; tries++) {
        if (RAND_bytes(out, KB_ROUTING_ID_LEN) != 1)
            return kb_error_ssl(KB_ECRYPTO, "RAND_bytes for a routing id");
        if (out[0] != 0)
            return KB_OK;
    }
    return kb_error_set(KB_ECRYPTO, "no routing id without a leading zero byte in 8 draws");
}

int kb_uuid7(uint8_t out[16])
{
    /* RFC 9562 section 5.7: 48-bit Unix milliseconds, version 7, 74 random
     * bits. Ids from one process stay ordered within a millisecond because
     * the random part after the timestamp is increased, not redrawn. */
    static _Thread_local uint64_t last_ms;
    static _Thread_local uint8_t last[16];
    uint64_t ms = (uint64_t)(kb_now_us() / 1000);
    if (ms <= last_ms && last_ms != 0) {
        memcpy(out, last, 16);
        for (int i = 15; i >= 9; i--)
            if (++out[i] != 0)
                break;
    } else {
        if (RAND_bytes(out, 16) != 1)
            return kb_error_ssl(KB_ECRYPTO, "RAND_bytes");
        for (int i = 0; i < 6; i++)
            out[i] = (uint8_t)(ms >> (40 - 8 * i));
        out[9] &= 0x7f; /* leave room to count upwards within the millisecond */
        last_ms = ms;
    }
    out[6] = (uint8_t)(0x70 | (out[6] & 0x0f));
    out[8] = (uint8_t)(0x80 | (out[8] & 0x3f));
    memcpy(last, out, 16);
    return KB_OK;
}

void kb_uuid_format(const uint8_t id[16], char out[37])
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10)
            out[o++] = '-';
        out[o++] = hex[id[i] >> 4];
        out[o++] = hex[id[i] & 15];
    }
    out[o] = '\0';
}

static int s_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int kb_uuid_parse(const char *text, uint8_t out[16])
{
    if (!text || strlen(text) != 36)
        return kb_error_set(KB_EPROTO, "not a UUID: expected 36 characters");
    size_t o = 0;
    for (size_t i = 0; i < 36;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (text[i] != '-')
                return kb_error_set(KB_EPROTO, "not a UUID: '-' expected at %zu", i);
            i++;
            continue;
        }
        int hi = s_hexval((unsigned char)text[i]), lo = s_hexval((unsigned char)text[i + 1]);
        if (hi < 0 || lo < 0)
            return kb_error_set(KB_EPROTO, "not a UUID: bad hex digit at %zu", i);
        out[o++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return KB_OK;
}

void kb_be64_put(uint8_t out[8], uint64_t v)
{
    for (int i = 7; i >= 0; i--) {
        out[i] = (uint8_t)v;
        v >>= 8;
    }
}

uint64_t kb_be64_get(const uint8_t in[8])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | in[i];
    return v;
}

void kb_hex(const uint8_t *in, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[in[i] >> 4];
        out[2 * i + 1] = hex[in[i] & 15];
    }
    out[2 * len] = '\0';
}

int kb_unhex(const char *text, uint8_t *out, size_t out_len)
{
    if (!text || strlen(text) != 2 * out_len)
        return kb_error_set(KB_EPROTO, "expected %zu hex digits", 2 * out_len);
    for (size_t i = 0; i < out_len; i++) {
        int hi = s_hexval((unsigned char)text[2 * i]), lo = s_hexval((unsigned char)text[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return kb_error_set(KB_EPROTO, "bad hex digit at %zu", 2 * i);
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return KB_OK;
}

void kb_time_format(int64_t us, char out[32])
{
    time_t s = (time_t)(us / 1000000);
    long frac = (long)(us % 1000000);
    if (frac < 0) {
        frac += 1000000;
        s -= 1;
    }
    struct tm tm;
    gmtime_r(&s, &tm);
    char base[24];
    strftime(base, sizeof base, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%.19s.%06ldZ", base, frac);
}

static int s_digits(const char **p, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
        (*p)++;
    }
    *out = v;
    return 0;
}

int kb_days_in_month(int year, int month)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (month < 1 || month > 12)
        return 0;
    int leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    return days[month - 1] + (month == 2 && leap);
}

int kb_time_parse(const char *text, int64_t *us)
{
    const char *p = text;
    int Y, M, D, h, m, s;
    if (!p || s_digits(&p, 4, &Y) || *p++ != '-' || s_digits(&p, 2, &M) || *p++ != '-' ||
        s_digits(&p, 2, &D) || (*p != 'T' && *p != 't' && *p != ' '))
        return kb_error_set(KB_EPROTO, "not an RFC 3339 time: \"%.40s\"", text ? text : "");
    p++;
    if (s_digits(&p, 2, &h) || *p++ != ':' || s_digits(&p, 2, &m) || *p++ != ':' || s_digits(&p, 2, &s))
        return kb_error_set(KB_EPROTO, "not an RFC 3339 time: \"%.40s\"", text);
    /* timegm() would move 2028-11-31 to December 1st without a word */
    if (D < 1 || D > kb_days_in_month(Y, M) || h > 23 || m > 59 || s > 60)
        return kb_error_set(KB_EPROTO, "time out of range: \"%.40s\"", text);
    int64_t frac = 0;
    if (*p == '.') {
        p++;
        int nd = 0;
        while (isdigit((unsigned char)*p)) {
            if (nd < 6) {
                frac = frac * 10 + (*p - '0');
                nd++;
            }
            p++;
        }
        if (nd == 0)
            return kb_error_set(KB_EPROTO, "not an RFC 3339 time: \"%.40s\"", text);
        while (nd++ < 6)
            frac *= 10;
    }
    int64_t offset_s = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int sign = *p == '-' ? -1 : 1, oh, om;
        p++;
        if (s_digits(&p, 2, &oh) || *p++ != ':' || s_digits(&p, 2, &om) || oh > 23 || om > 59)
            return kb_error_set(KB_EPROTO, "bad UTC offset in \"%.40s\"", text);
        offset_s = sign * (oh * 3600 + om * 60);
    } else {
        return kb_error_set(KB_EPROTO, "RFC 3339 time needs Z or an offset: \"%.40s\"", text);
    }
    if (*p != '\0')
        return kb_error_set(KB_EPROTO, "trailing text after time: \"%.40s\"", text);
    struct tm tm = {.tm_year = Y - 1900, .tm_mon = M - 1, .tm_mday = D, .tm_hour = h, .tm_min = m, .tm_sec = s};
    time_t t = timegm(&tm);
    *us = ((int64_t)t - offset_s) * 1000000 + frac;
    return KB_OK;
}

/* Grow b (cap bytes) for at most max_len bytes of data plus the NUL:
 * one byte more than max_len is room enough to tell a file too large. */
static int s_read_grow(const char *path, size_t max_len, char **b, size_t *cap)
{
    size_t most = max_len > SIZE_MAX - 2 ? SIZE_MAX : max_len + 2;
    size_t next = *cap > SIZE_MAX / 2 ? SIZE_MAX : *cap * 2;
    if (next > most)
        next = most;
    if (next <= *cap)
        return kb_error_set(KB_ENOMEM, "read %s: out of memory", path);
    char *p = realloc(*b, next);
    if (!p)
        return kb_error_set(KB_ENOMEM, "read %s: out of memory", path);
    *b = p;
    *cap = next;
    return KB_OK;
}

static int s_same_stat(const struct stat *a, const struct stat *b)
{
    return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
           a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int kb_file_read(const char *path, size_t max_len, char **buf, size_t *len)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return kb_error_set(errno == ENOENT ? KB_ENOTFOUND : KB_EIO, "open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return kb_error_set(KB_EIO, "stat %s: %s", path, strerror(e));
    }
    int regular = S_ISREG(st.st_mode);
    if (regular && (uint64_t)st.st_size > max_len) {
        close(fd);
        return kb_error_set(KB_ETOOBIG, "%s: %lld bytes, limit %zu", path, (long long)st.st_size, max_len);
    }
    /* A regular file's size says what to expect, and one byte more shows
     * its end without growing the buffer; anything else (a pipe, a
     * terminal, /dev/stdin) is read until its end, whatever it is. */
    size_t cap = regular ? (size_t)st.st_size + 2 : KB_FILE_READ_CHUNK;
    if (max_len <= SIZE_MAX - 2 && cap > max_len + 2)
        cap = max_len + 2;
    char *b = malloc(cap);
    if (!b) {
        close(fd);
        return kb_error_set(KB_ENOMEM, "read %s: out of memory", path);
    }
    size_t got = 0;
    int rc = KB_OK;
    for (;;) {
        if (got > max_len) {
            rc = kb_error_set(KB_ETOOBIG, "%s: more than %zu bytes, the limit", path, max_len);
            break;
        }
        if (got == cap - 1 && (rc = s_read_grow(path, max_len, &b, &cap)) != KB_OK)
            break;
        ssize_t n = read(fd, b + got, cap - 1 - got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = kb_error_set(KB_EIO, "read %s: %s", path, strerror(errno));
            break;
        }
        if (n == 0)
            break;
        got += (size_t)n;
    }
    /* A file written while it was read gives a mix of old and new bytes,
     * or only its start: refuse it rather than take either for the file.
     * A size of 0 that stays 0 is a file of /proc or /sys, whose content
     * is made as it is read: what was read is it. */
    struct stat after;
    if (rc == KB_OK && regular) {
        if (fstat(fd, &after) != 0)
            rc = kb_error_set(KB_EIO, "stat %s: %s", path, strerror(errno));
        else if (!s_same_stat(&st, &after) || (st.st_size != 0 && (uint64_t)got != (uint64_t)st.st_size))
            rc = kb_error_set(KB_EIO, "%s changed while it was read; try again", path);
    }
    close(fd);
    if (rc != KB_OK) {
        free(b);
        return rc;
    }
    b[got] = '\0';
    *buf = b;
    if (len)
        *len = got;
    return KB_OK;
}

int kb_file_write(const char *path, const void *buf, size_t len, unsigned mode)
{
    char tmp[PATH_MAX];
    if (kb_fmt(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) != KB_OK)
        return kb_error_set(KB_ETOOBIG, "path too long: %s", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
    if (fd < 0)
        return kb_error_set(KB_EIO, "create %s: %s", tmp, strerror(errno));
    const char *p = buf;
    size_t left = len;
    while (left > 0) {
        ssize_t n = write(fd, p, left);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            int e = errno;
            close(fd);
            unlink(tmp);
            return kb_error_set(KB_EIO, "write %s: %s", tmp, strerror(e));
        }
        p += n;
        left -= (size_t)n;
    }
    if (fchmod(fd, (mode_t)mode) != 0 || fsync(fd) != 0) {
        int e = errno;
        close(fd);
        unlink(tmp);
        return kb_error_set(KB_EIO, "sync %s: %s", tmp, strerror(e));
    }
    close(fd);
    if (rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        return kb_error_set(KB_EIO, "rename %s: %s", path, strerror(e));
    }
    return KB_OK;
}

int kb_dir_sync(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return kb_error_set(KB_EIO, "open %s: %s", dir, strerror(errno));
    int rc = fsync(fd) == 0 ? KB_OK : kb_error_set(KB_EIO, "sync %s: %s", dir, strerror(errno));
    close(fd);
    return rc;
}

int kb_mkdirs(const char *path, unsigned mode)
{
    char buf[PATH_MAX];
    if (kb_fmt(buf, sizeof buf, "%s", path) != KB_OK)
        return kb_error_set(KB_ETOOBIG, "path too long: %s", path);
    for (char *p = buf + 1;; p++) {
        if (*p == '/' || *p == '\0') {
            char c = *p;
            *p = '\0';
            if (mkdir(buf, (mode_t)mode) != 0 && errno != EEXIST)
                return kb_error_set(KB_EIO, "mkdir %s: %s", buf, strerror(errno));
            *p = c;
            if (c == '\0')
                break;
        }
    }
    return KB_OK;
}

int kb_fmt(char *buf, size_t len, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, len, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= len)
        return KB_ETOOBIG;
    return KB_OK;
}
