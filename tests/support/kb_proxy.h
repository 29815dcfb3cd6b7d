/*
 * kb_proxy.h - a TCP relay between adapters and the broker, for tests of
 * what a lost connection does.
 *
 * The relay listens on an ephemeral loopback port and joins each
 * connection it accepts to a new connection to the target, passing bytes
 * both ways from a thread of the test process. A test can hold what the
 * target sends (it stays unread, as on a link that went silent) and cut
 * every joined connection at once, which drops what was held: the frames
 * the broker sent into that connection never arrive.
 */
#ifndef KB_PROXY_H
#define KB_PROXY_H

typedef struct kb_proxy kb_proxy_t;

/* Start relaying to target ("tcp://127.0.0.1:PORT"); NULL on failure. */
kb_proxy_t *kb_proxy_start(const char *target);

/* The endpoint adapters connect to instead of the target. */
const char *kb_proxy_endpoint(const kb_proxy_t *p);

/* on: stop reading from the target's side (bytes pile up unread);
 * off: pass them on again. */
void kb_proxy_hold(kb_proxy_t *p, int on);

/* Close every joined connection now, both sides, dropping what was held;
 * holding ends. Returns once it is done. New connections are accepted. */
void kb_proxy_cut(kb_proxy_t *p);

/* Close everything and end the thread. */
void kb_proxy_stop(kb_proxy_t **p);

#endif
