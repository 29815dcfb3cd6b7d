/*
 * kb_fake.h - a scripted broker for SDK tests.
 *
 * A kb_fake_t is a CURVE ROUTER with the broker key of a kb_chain_t, bound
 * to an ephemeral loopback port, that a test drives frame by frame to make
 * the SDK meet answers the real broker rarely gives (redeliveries, transient
 * refusals) and to see what the SDK puts on the wire (its routing id). The
 * socket belongs to one thread: the test's, or one the test starts for it.
 */
#ifndef KB_FAKE_H
#define KB_FAKE_H

#include <stddef.h>
#include <stdint.h>

#include "kb_test.h"
#include "ketenbus.h"
#include "ketenbus.pb-c.h"

#define KB_FAKE_RID_MAX 256 /* ZeroMQ routing ids are at most 255 bytes */

typedef struct {
    void *ctx;                     /* ZeroMQ context */
    void *router;                  /* the broker's socket */
    uint8_t rid[KB_FAKE_RID_MAX];  /* routing id of the last frame's sender */
    size_t rid_len;                /* its length */
} kb_fake_t;

/* Bind a ROUTER with the broker key of chain (kb_chain_init made the keys;
 * no ketenbusd runs) and point chain->endpoint at it, so kb_chain_client()
 * connects here. Aborts the test on failure. */
void kb_fake_start(kb_fake_t *f, kb_chain_t *chain);

/* Close the socket and the context. */
void kb_fake_stop(kb_fake_t *f);

/* The next frame from any client within timeout_ms, or NULL; polls cl (may be
 * NULL) meanwhile, so a client in the same thread does its network work.
 * Sets f->rid to the sender's routing id. Free with
 * ketenbus__frame__free_unpacked(). Never asserts (safe in any thread). */
Ketenbus__Frame *kb_fake_recv(kb_fake_t *f, ketenbus_client_t *cl, int timeout_ms);

/* The next frame of body_case within timeout_ms (others, like PING, are
 * skipped), or NULL. */
Ketenbus__Frame *kb_fake_expect(kb_fake_t *f, ketenbus_client_t *cl, int body_case, int timeout_ms);

/* Send fr to the client with routing id f->rid; KB_OK or KB_ENET. */
int kb_fake_send(kb_fake_t *f, Ketenbus__Frame *fr);

/* Send one DELIVER frame with envs[i] under tags[i], i < n; KB_OK, or
 * KB_ENOMEM or KB_ENET. */
int kb_fake_deliver(kb_fake_t *f, Ketenbus__Envelope *const *envs, const uint64_t *tags, size_t n);

/* Tell f->rid that it has no session (ERROR NO_SESSION), as a broker
 * does after its restart; KB_OK or KB_ENET. */
int kb_fake_no_session(kb_fake_t *f);

/* Answer a HELLO from f->rid (its request id echoed, as the SDK checks)
 * with a WELCOME for agency. */
int kb_fake_welcome(kb_fake_t *f, const char *agency, uint64_t request_id);

/* Answer the PING frame ping (from f->rid) with a PONG, as a broker does
 * (one that does not makes the client give its session up); KB_OK or
 * KB_ENET. */
int kb_fake_pong(kb_fake_t *f, const Ketenbus__Frame *ping);

/* Answer cl's HELLOs with a WELCOME for agency, polling cl, until it is
 * welcomed; aborts the test if that takes over 5 s. */
void kb_fake_open_session(kb_fake_t *f, ketenbus_client_t *cl, const char *agency);

/* Send one RECEIPT with an entry per envelope of sub: outcome (and reject
 * code, REJECT_NONE unless outcome is REJECTED) the same for all. */
int kb_fake_receipt(kb_fake_t *f, const Ketenbus__Submit *sub, Ketenbus__Outcome outcome, Ketenbus__RejectCode code,
                    const char *reason);

#endif
