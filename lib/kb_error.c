/*
 * kb_error.c - thread-local last error and ketenbus_strerror().
 *
 * The detail is a fixed buffer per thread: recording an error never
 * allocates, so it works when memory is short.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>

#include "kb_error.h"

static _Thread_local char s_last[KB_ERROR_MAX];

__attribute__((format(printf, 1, 0))) static void s_vset(const char *fmt, va_list ap)
{
    int n = vsnprintf(s_last, sizeof s_last, fmt, ap);
    if (n >= (int)sizeof s_last)
        memcpy(s_last + sizeof s_last - 4, "...", 4);
}

int kb_error_set(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vset(fmt, ap);
    va_end(ap);
    return rc;
}

int kb_error_ssl(int rc, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    s_vset(fmt, ap);
    va_end(ap);
    unsigned long e;
    while ((e = ERR_get_error()) != 0) {
        size_t used = strlen(s_last);
        if (used + 4 >= sizeof s_last)
            continue; /* keep draining the queue */
        char buf[256];
        ERR_error_string_n(e, buf, sizeof buf);
        snprintf(s_last + used, sizeof s_last - used, ": %s", buf);
    }
    return rc;
}

int kb_error_wrap(int rc, const char *fmt, ...)
{
    char old[KB_ERROR_MAX];
    memcpy(old, s_last, sizeof old);
    char prefix[KB_ERROR_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    return kb_error_set(rc, "%s: %s", prefix, old);
}

const char *kb_last_error(void)
{
    return s_last;
}

void kb_error_clear(void)
{
    s_last[0] = '\0';
}

const char *ketenbus_last_error(void)
{
    return s_last;
}

const char *ketenbus_strerror(int rc)
{
    switch (rc) {
    case KETENBUS_OK: return "success";
    case KETENBUS_EINVAL: return "invalid argument";
    case KETENBUS_ENOMEM: return "out of memory";
    case KETENBUS_EIO: return "input/output error";
    case KETENBUS_EPROTO: return "malformed data";
    case KETENBUS_ECRYPTO: return "cryptographic failure";
    case KETENBUS_ETIMEDOUT: return "timed out";
    case KETENBUS_EREJECTED: return "rejected by the broker";
    case KETENBUS_ENOTFOUND: return "not found";
    case KETENBUS_ECONFIG: return "invalid configuration";
    case KETENBUS_ENET: return "transport failure";
    case KETENBUS_ETOOBIG: return "too large";
    case KETENBUS_EVERSION: return "unsupported protocol version";
    case KETENBUS_EPENDING: return "pending in the outbox";
    default: return "unknown error";
    }
}
