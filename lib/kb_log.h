/*
 * kb_log.h - one line per event, key=value fields.
 *
 * The daemons log to stderr (journald under systemd); the SDK forwards lines
 * to the application's callback instead. Values with spaces, quotes or '='
 * are quoted by kb_log() itself when passed through kb_log_kv(); free text is
 * the caller's to keep on one line.
 */
#ifndef KB_LOG_H
#define KB_LOG_H

enum { KB_LOG_ERROR = 0, KB_LOG_WARN = 1, KB_LOG_INFO = 2, KB_LOG_DEBUG = 3 };

/* Where lines go; NULL fn restores the default (stderr, with a timestamp). */
typedef void (kb_log_sink_fn)(int level, const char *line, void *arg);
void kb_log_set_sink(kb_log_sink_fn *fn, void *arg);

/* Lines above this level are dropped (default KB_LOG_INFO). */
void kb_log_set_level(int level);

/* 1 if lines of this level are written: lets a caller skip building the
 * fields of a line nobody reads. */
int kb_log_enabled(int level);

/* Log "level=<lvl> event=<event> " followed by the formatted fields. */
void kb_log(int level, const char *event, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Quote a value for a key=value line into buf (always NUL-terminated). */
const char *kb_log_quote(const char *value, char *buf, unsigned long buf_len);

#endif
