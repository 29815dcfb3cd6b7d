/*
 * kb_error.h - return codes and the thread-local last error.
 *
 * Every internal function that can fail returns KB_OK or a negative KB_E*
 * code (the public KETENBUS_E* codes of ketenbus.h). The failure site records
 * a one-line detail with kb_error_set() ("open keys/x.pem: No such file");
 * callers read it with kb_last_error(). A constructor returning NULL sets it
 * too. Used by every module.
 */
#ifndef KB_ERROR_H
#define KB_ERROR_H

#include "ketenbus.h"

#define KB_OK       KETENBUS_OK
#define KB_EINVAL   KETENBUS_EINVAL
#define KB_ENOMEM   KETENBUS_ENOMEM
#define KB_EIO      KETENBUS_EIO
#define KB_EPROTO   KETENBUS_EPROTO
#define KB_ECRYPTO  KETENBUS_ECRYPTO
#define KB_ETIMEDOUT KETENBUS_ETIMEDOUT
#define KB_EREJECTED KETENBUS_EREJECTED
#define KB_ENOTFOUND KETENBUS_ENOTFOUND
#define KB_ECONFIG  KETENBUS_ECONFIG
#define KB_ENET     KETENBUS_ENET
#define KB_ETOOBIG  KETENBUS_ETOOBIG
#define KB_EVERSION KETENBUS_EVERSION
#define KB_EPENDING KETENBUS_EPENDING

/* Longest detail kept; longer ones are cut with "...". */
#define KB_ERROR_MAX 512

/* Record the detail of a failure and return rc, so that a failure site reads
 * `return kb_error_set(KB_EIO, "open %s: %s", path, strerror(errno));`. */
int kb_error_set(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* As kb_error_set, then append OpenSSL's queued errors (and clear them). */
int kb_error_ssl(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prefix the current detail with more context: "loading rules: <old>". */
int kb_error_wrap(int rc, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The detail of the last failure on this thread ("" if none). */
const char *kb_last_error(void);

void kb_error_clear(void);

#endif
