/*
 * kb_log.c - key=value log lines to stderr or a sink.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "kb_log.h"

static kb_log_sink_fn *s_sink;
static void *s_sink_arg;
static int s_level = KB_LOG_INFO;

static const char *s_level_name[] = {"error", "warn", "info", "debug"};

void kb_log_set_sink(kb_log_sink_fn *fn, void *arg)
{
    s_sink = fn;
    s_sink_arg = arg;
}

void kb_log_set_level(int level)
{
    s_level = level;
}

int kb_log_enabled(int level)
{
    return level >= KB_LOG_ERROR && level <= s_level;
}

void kb_log(int level, const char *event, const char *fmt, ...)
{
    if (level > s_level || level < KB_LOG_ERROR)
        return;
    char line[2048];
    int n = snprintf(line, sizeof line, "level=%s event=%s", s_level_name[level], event);
    if (n > 0 && (size_t)n < sizeof line - 1 && fmt && *fmt) {
        line[n++] = ' ';
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
        va_end(ap);
    }
    /* one event, one line: a stray newline in a value would split it */
    for (char *p = line; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    if (s_sink) {
        s_sink(level, line, s_sink_arg);
        return;
    }
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    char when[32];
    strftime(when, sizeof when, "%Y-%m-%dT%H:%M:%S", &tm);
    fprintf(stderr, "ts=%s.%06ldZ %s\n", when, ts.tv_nsec / 1000, line);
}

const char *kb_log_quote(const char *value, char *buf, unsigned long buf_len)
{
    if (buf_len == 0)
        return "";
    if (!value)
        value = "";
    int needs = (*value == '\0') || strpbrk(value, " \t\"=\\") != NULL;
    size_t o = 0;
    if (needs && o + 1 < buf_len)
        buf[o++] = '"';
    for (const char *p = value; *p && o + 3 < buf_len; p++) {
        char c = *p;
        if (c == '"' || c == '\\')
            buf[o++] = '\\';
        else if (c == '\n' || c == '\r')
            c = ' ';
        buf[o++] = c;
    }
    if (needs && o + 1 < buf_len)
        buf[o++] = '"';
    buf[o] = '\0';
    return buf;
}
