/*
 * kb_test.c - scratch chains with a real ketenbusd for integration tests.
 */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <check.h>

#include "kb_error.h"
#include "kb_keys.h"
#include "kb_merkle.h"
#include "kb_note.h"
#include "kb_seal.h"
#include "kb_test.h"
#include "kb_util.h"
#include "sdk_internal.h"
#include "store.h"

static void s_write(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_msg(f != NULL, "cannot write %s", path);
    fputs(text, f);
    fclose(f);
}

static void s_write_config(kb_chain_t *c, const char *listen, const char *rules, const char *extra)
{
    /* an agency's entry is four lines with its id four times */
    size_t cap = 1024 + strlen(listen) + strlen(extra) + strlen(rules) + c->n_agencies * (100 + 4 * KB_AGENCY_ID_MAX);
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t o = 0;
    o += (size_t)snprintf(buf + o, cap - o,
                          "broker:\n  id: test-broker\n  listen: %s\n  data_dir: data\n  key_dir: keys\n%s"
                          "agencies:\n",
                          listen, extra);
    for (size_t i = 0; i < c->n_agencies; i++)
        o += (size_t)snprintf(buf + o, cap - o,
                              "  - id: %s\n    name: Agency %s\n    curve_cert: keys/%s.curve\n"
                              "    signing_key: keys/%s.sign.pub.pem\n",
                              c->agencies[i], c->agencies[i], c->agencies[i], c->agencies[i]);
    ck_assert(o < cap);
    snprintf(buf + o, cap - o, "rules:%s\n%s", *rules ? "" : " []", rules);
    s_write(c->config, buf);
    free(buf);
}

static char s_rules[16384], s_extra[4096];

void kb_chain_init(kb_chain_t *c, const char **agencies, size_t n, const char *rules, const char *broker_extra)
{
    memset(c, 0, sizeof *c);
    ck_assert(n <= KB_TEST_MAX_AGENCIES);
    snprintf(c->dir, sizeof c->dir, "/tmp/kbtest.XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(c->dir));
    snprintf(c->config, sizeof c->config, "%s/chain.yaml", c->dir);
    snprintf(c->log, sizeof c->log, "%s/broker.log", c->dir);
    snprintf(c->keys, sizeof c->keys, "%s/keys", c->dir);
    snprintf(c->broker_cert, sizeof c->broker_cert, "%s/broker.curve", c->keys);
    ck_assert_msg(kb_keys_generate(c->keys, "broker", 1) == KB_OK, "keygen broker: %s", kb_last_error());
    for (size_t i = 0; i < n; i++) {
        c->agencies[i] = agencies[i];
        ck_assert_msg(kb_keys_generate(c->keys, agencies[i], 0) == KB_OK, "keygen: %s", kb_last_error());
    }
    c->n_agencies = n;
    snprintf(s_rules, sizeof s_rules, "%s", rules ? rules : "");
    snprintf(s_extra, sizeof s_extra, "%s", broker_extra ? broker_extra : "");
    s_write_config(c, "tcp://127.0.0.1:*", s_rules, s_extra);
}

void kb_chain_pin_port(kb_chain_t *c)
{
    ck_assert_msg(c->endpoint[0], "broker not started yet");
    s_write_config(c, c->endpoint, s_rules, s_extra);
}

void kb_chain_set_rules(kb_chain_t *c, const char *rules)
{
    snprintf(s_rules, sizeof s_rules, "%s", rules ? rules : "");
    s_write_config(c, c->endpoint[0] ? c->endpoint : "tcp://127.0.0.1:*", s_rules, s_extra);
}

void kb_chain_write_config(kb_chain_t *c, const char *text)
{
    s_write(c->config, text);
}

void kb_chain_config_replace(kb_chain_t *c, const char *from, const char *to)
{
    char *text = NULL;
    size_t len = 0;
    ck_assert_int_eq(kb_file_read(c->config, 1u << 20, &text, &len), KB_OK);
    const char *at = strstr(text, from);
    ck_assert_msg(at != NULL, "'%s' is not in %s", from, c->config);
    size_t n = len - strlen(from) + strlen(to) + 1;
    char *out = malloc(n);
    ck_assert_ptr_nonnull(out);
    snprintf(out, n, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from));
    free(text);
    s_write(c->config, out);
    free(out);
}

void kb_chain_fault(const kb_chain_t *c, const char *name, int on)
{
    char path[600];
    snprintf(path, sizeof path, "%s/faults", c->dir);
    ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/faults/%s", c->dir, name);
    if (on) {
        FILE *f = fopen(path, "w");
        ck_assert_msg(f != NULL, "%s: %s", path, strerror(errno));
        fclose(f);
    } else {
        ck_assert(unlink(path) == 0 || errno == ENOENT);
    }
}

void kb_chain_fault_text(const kb_chain_t *c, const char *name, const char *text)
{
    char path[600], tmp[640];
    snprintf(path, sizeof path, "%s/faults", c->dir);
    ck_assert(mkdir(path, 0700) == 0 || errno == EEXIST);
    snprintf(path, sizeof path, "%s/faults/%s", c->dir, name);
    snprintf(tmp, sizeof tmp, "%s/faults/.%s", c->dir, name);
    /* whole or not at all: the broker may look at any moment */
    ck_assert_int_eq(kb_file_write(tmp, text, strlen(text), 0600), KB_OK);
    ck_assert_msg(rename(tmp, path) == 0, "%s: %s", path, strerror(errno));
}

void kb_chain_start(kb_chain_t *c)
{
    int st = kb_chain_try_start(c);
    if (st != 0)
        ck_abort_msg("ketenbusd exited during start (status %d); see %s", st, c->log);
}

int kb_chain_try_start(kb_chain_t *c)
{
    const char *build = getenv("KB_BUILD");
    char bin[512], ready[400];
    snprintf(bin, sizeof bin, "%s/ketenbusd", build ? build : "build");
    snprintf(ready, sizeof ready, "%s/ready", c->dir);
    unlink(ready);
    pid_t pid = fork();
    ck_assert(pid >= 0);
    if (pid == 0) {
        int fd = open(c->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        if (c->faults) {
            /* the fault library comes after ASan's runtime, which would
             * refuse to start otherwise */
            char so[600], dir[400], asan[600];
            snprintf(so, sizeof so, "%s/tests/libkbfaults.so", build ? build : "build");
            snprintf(dir, sizeof dir, "%s/faults", c->dir);
            const char *prev = getenv("ASAN_OPTIONS");
            snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", prev ? prev : "", prev ? ":" : "");
            setenv("LD_PRELOAD", so, 1);
            setenv("KB_FAULTS", dir, 1);
            setenv("ASAN_OPTIONS", asan, 1);
        }
        if (c->valgrind)
            execlp("valgrind", "valgrind", "-q", "--leak-check=full", "--show-leak-kinds=definite,indirect",
                   "--errors-for-leak-kinds=definite,indirect", "--error-exitcode=9", bin, "--config", c->config,
                   "--ready-file", ready, "--log-level", "debug", (char *)NULL);
        else
            execl(bin, bin, "--config", c->config, "--ready-file", ready, "--log-level", "debug", (char *)NULL);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    c->pid = pid;
    int64_t deadline = kb_mono_ms() + KB_TEST_READY_MS * (c->valgrind ? 4 : 1);
    while (kb_mono_ms() < deadline) {
        char *text = NULL;
        size_t len = 0;
        if (kb_file_read(ready, 1024, &text, &len) == KB_OK && len > 0 && text[len - 1] == '\n') {
            text[len - 1] = '\0';
            snprintf(c->endpoint, sizeof c->endpoint, "%s", text);
            free(text);
            return 0;
        }
        free(text);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            c->pid = 0;
            return WIFEXITED(status) ? (WEXITSTATUS(status) ? WEXITSTATUS(status) : 255)
                                     : 128 + WTERMSIG(status);
        }
        struct timespec ts = {0, 20 * 1000000};
        nanosleep(&ts, NULL);
    }
    kb_chain_kill(c);
    ck_abort_msg("ketenbusd did not become ready within %d ms", KB_TEST_READY_MS);
    return -1;
}

int kb_chain_stop(kb_chain_t *c)
{
    if (c->pid <= 0)
        return -1;
    kill(c->pid, SIGTERM);
    int64_t deadline = kb_mono_ms() + (c->valgrind ? 60000 : 10000);
    int status = 0;
    while (kb_mono_ms() < deadline) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    kb_chain_kill(c);
    return -1;
}

int kb_chain_wait_exit(kb_chain_t *c, int timeout_ms)
{
    if (c->pid <= 0)
        return -1;
    int64_t deadline = kb_mono_ms() + timeout_ms;
    int status = 0;
    while (kb_mono_ms() < deadline) {
        if (waitpid(c->pid, &status, WNOHANG) == c->pid) {
            c->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        struct timespec ts = {0, 10 * 1000000};
        nanosleep(&ts, NULL);
    }
    return -1;
}

void kb_chain_kill(kb_chain_t *c)
{
    if (c->pid <= 0)
        return;
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    c->pid = 0;
}

void kb_chain_cleanup(kb_chain_t *c)
{
    kb_chain_kill(c);
    if (c->dir[0] && getenv("KB_KEEP_TMP") == NULL) {
        char cmd[400];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", c->dir);
        if (system(cmd) != 0)
            fprintf(stderr, "cleanup of %s failed\n", c->dir);
    }
}

#define KB_TEST_CREDIT_DEFAULT 0xffffffffu /* leave the SDK's default */

void kb_test_preload_faults(char **argv)
{
    if (getenv("KB_TEST_FAULTS_LOADED")) {
        /* loaded into this process; not into the broker or the CLI */
        unsetenv("LD_PRELOAD");
        unsetenv("KB_TEST_FAULTS_LOADED");
        return;
    }
    const char *build = getenv("KB_BUILD");
    char so[600], asan[600];
    snprintf(so, sizeof so, "%s/tests/libkbfaults.so", build ? build : "build");
    if (access(so, R_OK) != 0) {
        fprintf(stderr, "%s: %s (make %s)\n", so, strerror(errno), so);
        exit(1);
    }
    /* after ASan's runtime, which would refuse to start otherwise */
    const char *prev = getenv("ASAN_OPTIONS");
    snprintf(asan, sizeof asan, "%s%sverify_asan_link_order=0", prev ? prev : "", prev ? ":" : "");
    setenv("LD_PRELOAD", so, 1);
    setenv("ASAN_OPTIONS", asan, 1);
    setenv("KB_TEST_FAULTS_LOADED", "1", 1);
    execv("/proc/self/exe", argv);
    fprintf(stderr, "exec /proc/self/exe: %s\n", strerror(errno));
    exit(1);
}

ketenbus_client_t *kb_chain_client(kb_chain_t *c, const char *agency, const char *suffix)
{
    return kb_chain_client_credit(c, agency, suffix, KB_TEST_CREDIT_DEFAULT);
}

ketenbus_client_t *kb_chain_client_credit(kb_chain_t *c, const char *agency, const char *suffix, unsigned credit)
{
    char state[512];
    snprintf(state, sizeof state, "%s/state-%s%s", c->dir, agency, suffix ? suffix : "");
    ketenbus_client_opts_t *o = ketenbus_client_opts_new();
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(ketenbus_client_opts_set_agency(o, agency, c->keys), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_broker(o, c->endpoint, c->broker_cert), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_state_dir(o, state), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_client_opts_set_ping_interval(o, 200), KETENBUS_OK);
    if (credit != KB_TEST_CREDIT_DEFAULT)
        ck_assert_int_eq(ketenbus_client_opts_set_credit(o, credit), KETENBUS_OK);
    if (c->client_log)
        ck_assert_int_eq(ketenbus_client_opts_set_log(o, c->client_log, c->client_log_arg), KETENBUS_OK);
    ketenbus_client_t *cl = ketenbus_client_new(o);
    ketenbus_client_opts_destroy(&o);
    ck_assert_msg(cl != NULL, "client %s: %s", agency, ketenbus_last_error());
    return cl;
}

int kb_wait_until(ketenbus_client_t *cl, int (*fn)(void *), void *arg, int timeout_ms)
{
    int64_t deadline = kb_mono_ms() + timeout_ms;
    int v;
    while (!(v = fn(arg)) && kb_mono_ms() < deadline)
        ketenbus_client_poll(cl, 50);
    return v;
}

/* What a file holds up to now, at most max_len bytes (NULL if it cannot
 * be opened): the log of a running broker grows while it is read, which
 * kb_file_read() refuses, and counting lines needs only what was there. */
static char *s_read_growing(const char *path, size_t max_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    struct stat st;
    ck_assert_int_eq(fstat(fileno(f), &st), 0);
    size_t want = (uint64_t)st.st_size < max_len ? (size_t)st.st_size : max_len;
    char *text = malloc(want + 1);
    ck_assert_ptr_nonnull(text);
    size_t len = fread(text, 1, want, f);
    ck_assert_msg(!ferror(f), "read %s: %s", path, strerror(errno));
    fclose(f);
    text[len] = '\0';
    return text;
}

int kb_chain_log_count(const kb_chain_t *c, const char *needle)
{
    char *text = s_read_growing(c->log, 64u << 20);
    if (!text)
        return 0;
    int n = 0;
    for (char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    free(text);
    return n;
}

/* The stopped broker's store, opened with its storage key. */
static kb_store_t *s_chain_store(const kb_chain_t *c)
{
    ck_assert_msg(c->pid == 0, "stop the broker before reading its store");
    char path[512];
    uint8_t key[32];
    snprintf(path, sizeof path, "%s/broker.storage.key", c->keys);
    ck_assert_int_eq(kb_keys_load_storage(path, key), KB_OK);
    snprintf(path, sizeof path, "%s/data", c->dir);
    kb_store_t *s = kb_store_open(path, key);
    ck_assert_msg(s != NULL, "open store: %s", kb_last_error());
    return s;
}

int kb_chain_audit_count(const kb_chain_t *c, int event, const char *reason_part)
{
    kb_store_t *s = s_chain_store(c);
    int n = 0;
    for (uint64_t i = 0; i < kb_store_audit_size(s); i++) {
        Ketenbus__AuditRecord *r = NULL;
        ck_assert_int_eq(kb_store_audit_get(s, i, &r), KB_OK);
        if ((int)r->event == event && (!reason_part || (r->reason && strstr(r->reason, reason_part))))
            n++;
        ketenbus__audit_record__free_unpacked(r, NULL);
    }
    kb_store_destroy(&s);
    return n;
}

Ketenbus__AuditRecord *kb_chain_audit_record(const kb_chain_t *c, int event, size_t nth, uint64_t *index)
{
    kb_store_t *s = s_chain_store(c);
    Ketenbus__AuditRecord *found = NULL;
    for (uint64_t i = 0; !found && i < kb_store_audit_size(s); i++) {
        Ketenbus__AuditRecord *r = NULL;
        ck_assert_int_eq(kb_store_audit_get(s, i, &r), KB_OK);
        if ((int)r->event == event && nth-- == 0) {
            found = r;
            if (index)
                *index = i;
        } else {
            ketenbus__audit_record__free_unpacked(r, NULL);
        }
    }
    kb_store_destroy(&s);
    return found;
}

void kb_chain_checkpoint(const kb_chain_t *c, uint64_t *size, uint64_t *audit_size)
{
    kb_store_t *s = s_chain_store(c);
    char *note = NULL;
    size_t len = 0;
    ck_assert_msg(kb_store_checkpoint_latest(s, size, &note, &len) == KB_OK, "no checkpoint: %s", kb_last_error());
    char path[512];
    snprintf(path, sizeof path, "%s/broker.sign.pub.pem", c->keys);
    EVP_PKEY *pub = kb_keys_load_sign_public(path);
    ck_assert_ptr_nonnull(pub);
    kb_note_checkpoint_t cp;
    ck_assert_msg(kb_note_verify(note, len, "ketenbus/test-broker", pub, &cp) == KB_OK, "%s", kb_last_error());
    ck_assert_uint_eq(cp.size, *size);
    /* the root must be the one of the records as stored */
    kb_merkle_acc_t *acc = kb_merkle_acc_new();
    for (uint64_t i = 0; i < *size; i++) {
        Ketenbus__AuditRecord *r = NULL;
        ck_assert_int_eq(kb_store_audit_get(s, i, &r), KB_OK);
        uint8_t buf[4096];
        size_t n = ketenbus__audit_record__get_packed_size(r);
        ck_assert_uint_le(n, sizeof buf);
        ketenbus__audit_record__pack(r, buf);
        ck_assert_int_eq(kb_merkle_acc_add(acc, buf, n), KB_OK);
        ketenbus__audit_record__free_unpacked(r, NULL);
    }
    uint8_t root[KB_MERKLE_HASH_LEN];
    ck_assert_int_eq(kb_merkle_acc_root(acc, root), KB_OK);
    ck_assert_msg(memcmp(root, cp.root, sizeof root) == 0, "checkpoint root differs from the records' tree");
    *audit_size = kb_store_audit_size(s);
    kb_merkle_acc_destroy(&acc);
    EVP_PKEY_free(pub);
    free(note);
    kb_store_destroy(&s);
}

ketenbus_msg_t *kb_test_signal(const char *recipient, const char *narrative)
{
    ketenbus_msg_t *m = ketenbus_msg_new(KETENBUS_KIND_SIGNAL);
    ck_assert_ptr_nonnull(m);
    if (recipient)
        ck_assert_int_eq(ketenbus_msg_set(m, "recipients", recipient), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "purpose", "victim_care"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "handling", "h1"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "legal_basis.basis", "Wpg art. 19"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "legal_basis.consent", "not_required"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "officer", "officer-17"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "signal.exploitation", "criminal"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "signal.minor", "true"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "signal.age_band", "12_to_15"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "signal.observed.municipality", "GM0344"), KETENBUS_OK);
    if (narrative)
        ck_assert_int_eq(ketenbus_msg_set(m, "signal.narrative", narrative), KETENBUS_OK);
    return m;
}

void kb_test_sign_as(const kb_chain_t *c, ketenbus_msg_t *m, const char *sender, const uint8_t id[16])
{
    kb_test_sign_with(c, m, sender, sender, id);
}

void kb_test_sign_with(const kb_chain_t *c, ketenbus_msg_t *m, const char *sender, const char *key_name,
                       const uint8_t id[16])
{
    Ketenbus__Envelope *e = m->env;
    if (e->sender != protobuf_c_empty_string)
        free(e->sender);
    e->sender = strdup(sender);
    ck_assert_ptr_nonnull(e->sender);
    free(e->message_id.data);
    e->message_id.data = malloc(16);
    ck_assert_ptr_nonnull(e->message_id.data);
    memcpy(e->message_id.data, id, 16);
    e->message_id.len = 16;
    msg_sync_id(m);
    e->created_us = kb_now_us();
    char path[512];
    snprintf(path, sizeof path, "%s/%s.sign.pem", c->keys, key_name);
    EVP_PKEY *key = kb_keys_load_sign_private(path);
    ck_assert_msg(key != NULL, "%s: %s", path, kb_last_error());
    ck_assert_msg(kb_seal_sign(e, key) == KB_OK, "sign: %s", kb_last_error());
    EVP_PKEY_free(key);
    char why[256];
    ck_assert_msg(kb_envelope_validate(e, why, sizeof why) == KB_OK, "signed envelope: %s", why);
}

ketenbus_msg_t *kb_test_referral(const char *recipient)
{
    ketenbus_msg_t *m = ketenbus_msg_new(KETENBUS_KIND_REFERRAL);
    ck_assert_ptr_nonnull(m);
    ck_assert_int_eq(ketenbus_msg_set(m, "recipients", recipient), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "purpose", "child_protection"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "handling", "h2"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "legal_basis.basis", "Jeugdwet art. 7.4.0"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "legal_basis.consent", "not_required"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "referral.action", "youth_care"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "referral.urgency", "urgent"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "referral.deadline_us", "2030-01-01T12:00:00Z"), KETENBUS_OK);
    ck_assert_int_eq(ketenbus_msg_set(m, "referral.signal.exploitation", "criminal"), KETENBUS_OK);
    return m;
}

void kb_test_add_person(ketenbus_msg_t *m, const char *chain_key_file, const char *person)
{
    const char *eq = strchr(person, '=');
    ck_assert_ptr_nonnull(eq);
    char type[32];
    snprintf(type, sizeof type, "%.*s", (int)(eq - person), person);
    ck_assert_msg(ketenbus_msg_add_subject(m, chain_key_file, type, eq + 1) == KETENBUS_OK, "%s",
                  ketenbus_last_error());
}

void kb_chain_drain(kb_chain_t *c, const char *agency, int n)
{
    ketenbus_client_t *cl = kb_chain_client(c, agency, NULL);
    for (int i = 0; i < n; i++) {
        ketenbus_msg_t *m = NULL;
        ck_assert_msg(ketenbus_client_recv(cl, &m, 5000) == KETENBUS_OK, "%s recv %d: %s", agency, i,
                      ketenbus_last_error());
        ck_assert_int_eq(ketenbus_client_ack(cl, m), KETENBUS_OK);
        ketenbus_msg_destroy(&m);
    }
    ketenbus_client_destroy(&cl);
}

int kb_chain_cli(const kb_chain_t *c, char *out, size_t out_len, const char *fmt, ...)
{
    char args[4096], cmd[8192], path[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(args, sizeof args, fmt, ap);
    va_end(ap);
    const char *build = getenv("KB_BUILD");
    snprintf(cmd, sizeof cmd, "cd '%s' && '%s/ketenbus' %s > cli.out 2>&1", c->dir, build ? build : "build", args);
    int st = system(cmd);
    snprintf(path, sizeof path, "%s/cli.out", c->dir);
    char *text = NULL;
    size_t len = 0;
    out[0] = '\0';
    if (kb_file_read(path, out_len - 1, &text, &len) == KB_OK) {
        memcpy(out, text, len + 1);
        free(text);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

int kb_test_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? 0 : 1;
}
