/*
 * kb_test.h - helpers for tests that run the real broker.
 *
 * A kb_chain_t is a scratch directory with keys for the broker and some
 * agencies, a chain configuration and a running ketenbusd (the binary of
 * this build, found through $KB_BUILD) on an ephemeral loopback port. Tests
 * start and stop it by pid; nothing is left running when a test ends.
 */
#ifndef KB_TEST_H
#define KB_TEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

#include "ketenbus.h"

#define KB_TEST_MAX_AGENCIES 1024 /* more than KB_MAX_RECIPIENTS: fan-outs past it */
#define KB_TEST_READY_MS     10000 /* how long a broker may take to start */

typedef struct {
    char dir[256];                       /* scratch directory */
    char config[320];                    /* chain.yaml path */
    char endpoint[256];                  /* bound endpoint once started */
    char log[320];                       /* broker stderr */
    char keys[320];                      /* key directory (all keys) */
    char broker_cert[384];               /* keys/broker.curve */
    const char *agencies[KB_TEST_MAX_AGENCIES]; /* agency ids */
    size_t n_agencies;                   /* count */
    pid_t pid;                           /* running broker, 0 if none */
    int valgrind;                        /* 1: run the broker under valgrind's leak check */
    int faults;                          /* 1: preload the disk faults of tests/support/faults/
                                          * (switched by kb_chain_fault) */
    ketenbus_log_fn *client_log;         /* if set: the log callback of the clients made next */
    void *client_log_arg;                /* its argument */
} kb_chain_t;

/* Switch a fault of tests/support/faults/kb_faults.c on (a file in the
 * chain's fault directory) or off. */
void kb_chain_fault(const kb_chain_t *c, const char *name, int on);
/* Switch a write fault on that fails only a write holding text. */
void kb_chain_fault_text(const kb_chain_t *c, const char *name, const char *text);

/* Make a scratch dir, keys for the broker and each agency, and a config with
 * the given rules text (YAML list items under `rules:`, may be "") and extra
 * broker keys (YAML lines under `broker:`, may be ""). Aborts the test on
 * failure. The listen port is "*" until kb_chain_pin_port(). */
void kb_chain_init(kb_chain_t *c, const char **agencies, size_t n, const char *rules, const char *broker_extra);

/* Start ketenbusd and wait until it is serving; fills c->endpoint. */
void kb_chain_start(kb_chain_t *c);

/* The same, for a broker that may refuse to start: 0 once it serves, or
 * its exit status (255 for a clean exit 0, 128 + signal if killed) if it
 * exited during start. */
int kb_chain_try_start(kb_chain_t *c);

/* Rewrite the config to listen on the port the broker got, so a restart
 * keeps the endpoint the clients know. */
void kb_chain_pin_port(kb_chain_t *c);

/* Rewrite the config with other rules (keeping the bound port once started). */
void kb_chain_set_rules(kb_chain_t *c, const char *rules);

/* Write text as the config file (to test broken files). */
void kb_chain_write_config(kb_chain_t *c, const char *text);

/* Replace the first `from` in the config file by `to` (fails the test
 * when the file does not hold `from`). */
void kb_chain_config_replace(kb_chain_t *c, const char *from, const char *to);

/* SIGTERM and wait (SIGKILL after a timeout); returns the exit status
 * (under valgrind: 9 when it found errors or leaks). */
int kb_chain_stop(kb_chain_t *c);

/* SIGKILL and reap. */
void kb_chain_kill(kb_chain_t *c);

/* Wait up to timeout_ms for the broker to exit by itself: its exit status
 * (128 + signal if killed), or -1 if it still runs. */
int kb_chain_wait_exit(kb_chain_t *c, int timeout_ms);

/* Stop anything running and remove the scratch directory. */
void kb_chain_cleanup(kb_chain_t *c);

/* A client for agency (state in dir/state-<agency><suffix>). */
ketenbus_client_t *kb_chain_client(kb_chain_t *c, const char *agency, const char *suffix);

/* The same with the given delivery credit (0: a send-only client). */
ketenbus_client_t *kb_chain_client_credit(kb_chain_t *c, const char *agency, const char *suffix, unsigned credit);

/* Poll the client until fn(arg) is true or timeout_ms passes; returns fn's last value. */
int kb_wait_until(ketenbus_client_t *cl, int (*fn)(void *), void *arg, int timeout_ms);

/* Count lines of the broker log containing needle. */
int kb_chain_log_count(const kb_chain_t *c, const char *needle);

/* Count audit records with the given event (and, if not NULL, reason
 * substring) in the stopped broker's store. */
int kb_chain_audit_count(const kb_chain_t *c, int event, const char *reason_part);

/* The nth (from 0) audit record with the given event in the stopped
 * broker's store, or NULL when there are fewer; *index (if not NULL) is its
 * index in the log. Free it with ketenbus__audit_record__free_unpacked(). */
struct Ketenbus__AuditRecord *kb_chain_audit_record(const kb_chain_t *c, int event, size_t nth, uint64_t *index);

/* The latest signed checkpoint of the stopped broker's audit log, verified
 * with the broker's public key: fills *size (tree size) and *audit_size
 * (records in the log). Fails the test if there is none or it does not
 * verify against the tree rebuilt from the records. */
void kb_chain_checkpoint(const kb_chain_t *c, uint64_t *size, uint64_t *audit_size);

/* Run `ketenbus ARGS` (args from fmt) in the chain's directory without
 * connection settings; its stdout and stderr go to out (out_len bytes,
 * NUL-terminated, cut if longer). Returns its exit status, -1 if it did not
 * exit. */
int kb_chain_cli(const kb_chain_t *c, char *out, size_t out_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* A referral to recipient (child protection, youth care, urgent) ready to submit. */
ketenbus_msg_t *kb_test_referral(const char *recipient);

/* Add the subject key of person ("type=value", e.g. "bsn=123456782") under
 * the chain key in chain_key_file, as an adapter does. */
void kb_test_add_person(ketenbus_msg_t *m, const char *chain_key_file, const char *person);

/* As agency, receive and acknowledge n messages (each within 5 s). */
void kb_chain_drain(kb_chain_t *c, const char *agency, int n);

/* A signal message ready to submit (kind, purpose, handling, legal basis, payload). */
ketenbus_msg_t *kb_test_signal(const char *recipient, const char *narrative);

/* Make m what agency sender would have submitted, for a scripted broker to
 * deliver: sender, the message id id (a UUIDv7), created now, sealed and
 * signed with the sender's key from c->keys. The fields are m's own. Aborts
 * the test if the result does not pass kb_envelope_validate(). */
void kb_test_sign_as(const kb_chain_t *c, ketenbus_msg_t *m, const char *sender, const uint8_t id[16]);

/* As kb_test_sign_as, signed with the key of key_name instead ("broker":
 * the broker's signing key, as for its notices; another agency's: a
 * forgery). */
void kb_test_sign_with(const kb_chain_t *c, ketenbus_msg_t *m, const char *sender, const char *key_name,
                       const uint8_t id[16]);

/* Start this test program again (execv) with the disk faults of
 * tests/support/faults/ preloaded into it, unless they are already, so
 * that its tests can fail the SDK's writes: a client's state directory
 * must then have "/data/" in its path (kb_chain_client(c, agency, "/data")
 * after making CHAIN_DIR/state-AGENCY), and a test sets KB_FAULTS to
 * CHAIN_DIR/faults, where kb_chain_fault() puts the switches. Processes
 * the tests start do not inherit the preload. Call first in main(). */
void kb_test_preload_faults(char **argv);

/* Run every test of suite s (taking it) and return the exit status for
 * main(): 0 when all passed, 1 otherwise. */
int kb_test_run(Suite *s);

#endif
