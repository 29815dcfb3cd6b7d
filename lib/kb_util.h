/*
 * kb_util.h - small shared helpers: clock, UUIDv7 ids, hex, files.
 */
#ifndef KB_UTIL_H
#define KB_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* UTC microseconds since the epoch. */
int64_t kb_now_us(void);

/* Monotonic milliseconds, for timeouts. */
int64_t kb_mono_ms(void);

/* A new time-ordered UUIDv7 (RFC 9562) from the clock and OpenSSL's RNG. */
int kb_uuid7(uint8_t out[16]);

/* Bytes of the routing id a connection to the broker sets (ZMQ_ROUTING_ID):
 * the broker refuses HELLO from shorter ids, which could be guessed. */
#define KB_ROUTING_ID_LEN 16u

/* A new random routing id from OpenSSL's RNG whose first byte is not 0
 * (libzmq keeps ids starting with 0 for the ones it makes up). */
int kb_routing_id_new(uint8_t out[KB_ROUTING_ID_LEN]);

/* Canonical text form, 36 chars plus NUL. */
void kb_uuid_format(const uint8_t id[16], char out[37]);

/* Parse canonical text (case-insensitive); KB_EPROTO if malformed. */
int kb_uuid_parse(const char *text, uint8_t out[16]);

/* Big-endian 64-bit integers, as used in storage keys (they sort numerically). */
void kb_be64_put(uint8_t out[8], uint64_t v);
uint64_t kb_be64_get(const uint8_t in[8]);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void kb_hex(const uint8_t *in, size_t len, char *out);

/* Parse exactly out_len bytes of hex; KB_EPROTO if malformed. */
int kb_unhex(const char *text, uint8_t *out, size_t out_len);

/* RFC 3339 UTC text with microseconds ("2026-11-23T10:00:00.000000Z"). */
void kb_time_format(int64_t us, char out[32]);

/* Parse RFC 3339 ("...Z" or with offset, optional fraction); KB_EPROTO,
 * also for a day the month does not have (2026-02-29, 2028-11-31). */
int kb_time_parse(const char *text, int64_t *us);

/* Days in month (1-12) of year in the Gregorian calendar (leap years
 * included); 0 for a month out of range. */
int kb_days_in_month(int year, int month);

/* Bytes a read of something not a regular file (a pipe) starts with. */
#define KB_FILE_READ_CHUNK 4096u

/* Read a whole file until its end (at most max_len bytes, else KB_ETOOBIG
 * naming path and limit); a pipe or /dev/stdin too. *buf is NUL-terminated
 * and the caller's. KB_ENOTFOUND if it does not exist, KB_EIO if it cannot
 * be read, and also if a regular file changed while it was read (its size
 * or modification time moved, or it did not hold as many bytes as its size
 * said, unless that size is 0, as of a file in /proc): "PATH changed
 * while it was read; try again". */
int kb_file_read(const char *path, size_t max_len, char **buf, size_t *len);

/* Write a file atomically (temp file, fsync, rename) with the given mode. */
int kb_file_write(const char *path, const void *buf, size_t len, unsigned mode);

/* fsync a directory, so that the entries made in it last; KB_OK or KB_EIO. */
int kb_dir_sync(const char *dir);

/* mkdir -p with the given mode for created directories. */
int kb_mkdirs(const char *path, unsigned mode);

/* snprintf that reports truncation as KB_ETOOBIG. */
int kb_fmt(char *buf, size_t len, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
