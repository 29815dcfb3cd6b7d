/*
 * bench_ceiling.c - the baselines every ketenbus figure is compared with.
 *
 * (a) A minimal ZeroMQ hop: a forked process with one ROUTER socket and one
 *     thread that forwards [S][body] to R (and R's credit back to S), over
 *     tcp on 127.0.0.1, plain and with CURVE. The sender and receiver are
 *     DEALERs in this process, in one thread, as in the wire benchmark. No
 *     broker hop on this machine can forward more than this.
 * (b) The disk: 4 KiB append + fdatasync (what a log commit costs), and
 *     LevelDB synced WriteBatches of 1, 16 and 256 entries, in the directory
 *     the brokers of this run keep their data in.
 * (c) Ed25519 sign and verify with OpenSSL's EVP API (what kb_seal uses),
 *     one thread, and kb_seal_verify on a real envelope.
 * Ceilings are the best of several runs or rounds: the machine is shared,
 * and a ceiling is what it does when nothing else takes a core away.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <leveldb/c.h>
#include <openssl/evp.h>
#include <zmq.h>

#include "bench.h"
#include "kb_codec.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_seal.h"

#define FWD_WINDOW   4000   /* messages in flight from S */
#define FWD_CREDIT   256    /* R returns credit every this many */
#define BENCH_ROUND_S 0.25  /* one crypto measuring round; the best round counts */

/* ------------------------------------------------------------ forwarder */

static void s_forwarder_main(int curve, const char *server_secret, int pipe_fd)
{
    void *ctx = zmq_ctx_new();
    void *r = zmq_socket(ctx, ZMQ_ROUTER);
    int one = 1, zero = 0, hwm = 1000000;
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(r, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r, ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(r, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    if (curve) {
        zmq_setsockopt(r, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(r, ZMQ_CURVE_SECRETKEY, server_secret, KB_Z85_KEY_LEN);
    }
    char ep[256] = "";
    size_t len = sizeof ep;
    if (zmq_bind(r, "tcp://127.0.0.1:*") != 0 || zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, ep, &len) != 0)
        _exit(1);
    if (write(pipe_fd, ep, strlen(ep) + 1) < 0)
        _exit(1);
    close(pipe_fd);
    for (;;) {
        zmq_msg_t id, body;
        zmq_msg_init(&id);
        zmq_msg_init(&body);
        if (zmq_msg_recv(&id, r, 0) < 0 || zmq_msg_recv(&body, r, 0) < 0)
            _exit(2);
        const char *to = *(const char *)zmq_msg_data(&id) == 'S' ? "R" : "S";
        if (zmq_send(r, to, 1, ZMQ_SNDMORE) < 0 || zmq_msg_send(&body, r, 0) < 0)
            zmq_msg_close(&body); /* the peer is not there yet: drop, as a broker would not */
        zmq_msg_close(&id);
    }
}

static void *s_fwd_dealer(void *ctx, const char *id, const char *ep, int curve, const char *srv_pub)
{
    void *s = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0, hwm = 1000000;
    zmq_setsockopt(s, ZMQ_ROUTING_ID, id, 1);
    zmq_setsockopt(s, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
    if (curve) {
        char pub[KB_Z85_KEY_LEN + 1], sec[KB_Z85_KEY_LEN + 1];
        zmq_curve_keypair(pub, sec);
        zmq_setsockopt(s, ZMQ_CURVE_SERVERKEY, srv_pub, KB_Z85_KEY_LEN);
        zmq_setsockopt(s, ZMQ_CURVE_PUBLICKEY, pub, KB_Z85_KEY_LEN);
        zmq_setsockopt(s, ZMQ_CURVE_SECRETKEY, sec, KB_Z85_KEY_LEN);
    }
    zmq_connect(s, ep);
    return s;
}

static int s_forward_run(int curve, size_t msg_len, size_t n, double time_limit_s, double *rate)
{
    char srv_pub[KB_Z85_KEY_LEN + 1], srv_sec[KB_Z85_KEY_LEN + 1];
    if (zmq_curve_keypair(srv_pub, srv_sec) != 0) {
        bench_log("zmq_curve_keypair: %s (libzmq without CURVE?)", zmq_strerror(zmq_errno()));
        return -1;
    }
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        close(fds[0]);
        s_forwarder_main(curve, srv_sec, fds[1]);
        _exit(0);
    }
    close(fds[1]);
    char ep[256];
    ssize_t got = read(fds[0], ep, sizeof ep - 1);
    close(fds[0]);
    int rc = -1;
    void *ctx = NULL, *snd = NULL, *rcv = NULL;
    uint8_t *buf = calloc(1, msg_len);
    if (got <= 0 || !buf)
        goto done;
    ep[got] = '\0';
    ctx = zmq_ctx_new();
    snd = s_fwd_dealer(ctx, "S", ep, curve, srv_pub);
    rcv = s_fwd_dealer(ctx, "R", ep, curve, srv_pub);
    /* R announces itself through the forwarder; S starts once it hears it */
    int64_t deadline = bench_ns() + 10LL * 1000000000;
    int ready = 0;
    while (!ready && bench_ns() < deadline) {
        zmq_send(rcv, "hi", 2, ZMQ_DONTWAIT);
        zmq_pollitem_t it = {snd, 0, ZMQ_POLLIN, 0};
        if (zmq_poll(&it, 1, 100) > 0) {
            char tmp[16];
            while (zmq_recv(snd, tmp, sizeof tmp, ZMQ_DONTWAIT) >= 0)
                ready = 1;
        }
    }
    if (!ready) {
        bench_log("forwarder did not answer");
        goto done;
    }
    size_t sent = 0, received = 0, credited = 0, pending_credit = 0;
    int64_t t0 = bench_ns(), limit = t0 + (int64_t)(time_limit_s * 1e9);
    zmq_msg_t m;
    while (received < n && bench_ns() < limit) {
        while (sent < n && sent - credited < FWD_WINDOW) {
            if (zmq_send(snd, buf, msg_len, ZMQ_DONTWAIT) < 0)
                break;
            sent++;
        }
        zmq_pollitem_t items[2] = {{snd, 0, ZMQ_POLLIN, 0}, {rcv, 0, ZMQ_POLLIN, 0}};
        if (zmq_poll(items, 2, 5) < 0)
            break;
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, rcv, ZMQ_DONTWAIT) >= 0) {
            if (zmq_msg_size(&m) == msg_len) {
                received++;
                if (++pending_credit == FWD_CREDIT) {
                    uint32_t c = FWD_CREDIT;
                    zmq_send(rcv, &c, sizeof c, ZMQ_DONTWAIT);
                    pending_credit = 0;
                }
            }
        }
        zmq_msg_close(&m);
        zmq_msg_init(&m);
        while (zmq_msg_recv(&m, snd, ZMQ_DONTWAIT) >= 0)
            if (zmq_msg_size(&m) == sizeof(uint32_t))
                credited += FWD_CREDIT;
        zmq_msg_close(&m);
    }
    int64_t dt = bench_ns() - t0;
    *rate = (double)received / ((double)dt / 1e9);
    rc = 0;
done:
    if (snd)
        zmq_close(snd);
    if (rcv)
        zmq_close(rcv);
    if (ctx)
        zmq_ctx_term(ctx);
    free(buf);
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
    return rc;
}

int bench_forwarder(size_t msg_len, size_t n, double time_limit_s, bench_fwd_t *out)
{
    memset(out, 0, sizeof *out);
    /* best of two runs each, for the same reason as the crypto rounds */
    for (int i = 0; i < 2; i++) {
        double plain = 0, curve = 0;
        if (s_forward_run(0, msg_len, n, time_limit_s, &plain) != 0 ||
            s_forward_run(1, msg_len, n, time_limit_s, &curve) != 0)
            return -1;
        if (plain > out->plain_rate)
            out->plain_rate = plain;
        if (curve > out->curve_rate)
            out->curve_rate = curve;
    }
    return 0;
}

/* ------------------------------------------------------------ disk */

int bench_disk(const char *dir, size_t n, double time_limit_s, bench_disk_t *out)
{
    memset(out, 0, sizeof *out);
    char path[512];
    snprintf(path, sizeof path, "%s/fdatasync.bench", dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0) {
        bench_log("open %s: %s", path, strerror(errno));
        return -1;
    }
    int64_t *lat = malloc(n * sizeof *lat);
    char block[4096];
    memset(block, 'k', sizeof block);
    size_t done = 0;
    int64_t t0 = bench_ns(), limit = t0 + (int64_t)(time_limit_s * 1e9);
    while (lat && done < n && bench_ns() < limit) {
        int64_t a = bench_ns();
        if (write(fd, block, sizeof block) != (ssize_t)sizeof block || fdatasync(fd) != 0) {
            bench_log("write/fdatasync %s: %s", path, strerror(errno));
            break;
        }
        lat[done++] = bench_ns() - a;
    }
    int64_t dt = bench_ns() - t0;
    close(fd);
    unlink(path);
    if (!lat || done == 0) {
        free(lat);
        return -1;
    }
    out->ops = (double)done / ((double)dt / 1e9);
    out->p50 = bench_pct(lat, done, 0.50);
    out->p99 = bench_pct(lat, done, 0.99);
    free(lat);
    return 0;
}

int bench_leveldb(const char *dir, size_t batch, size_t value_len, double time_limit_s, double *batches_per_s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/leveldb-%zu.bench", dir, batch);
    bench_rmrf(path);
    leveldb_options_t *o = leveldb_options_create();
    leveldb_options_set_create_if_missing(o, 1);
    leveldb_options_set_write_buffer_size(o, 16u << 20); /* as the broker's store */
    leveldb_writeoptions_t *w = leveldb_writeoptions_create();
    leveldb_writeoptions_set_sync(w, 1);
    char *err = NULL;
    leveldb_t *db = leveldb_open(o, path, &err);
    int rc = -1;
    if (err) {
        bench_log("leveldb open %s: %s", path, err);
        leveldb_free(err);
        goto done;
    }
    char *value = malloc(value_len);
    if (!value)
        goto done;
    memset(value, 'v', value_len);
    leveldb_writebatch_t *wb = leveldb_writebatch_create();
    uint64_t seq = 0;
    size_t batches = 0;
    int64_t t0 = bench_ns(), limit = t0 + (int64_t)(time_limit_s * 1e9);
    while (bench_ns() < limit && batches < 1000000) {
        leveldb_writebatch_clear(wb);
        for (size_t i = 0; i < batch; i++, seq++) {
            char key[9];
            key[0] = 'q';
            for (int b = 0; b < 8; b++)
                key[1 + b] = (char)(seq >> (56 - 8 * b));
            leveldb_writebatch_put(wb, key, sizeof key, value, value_len);
        }
        leveldb_write(db, w, wb, &err);
        if (err) {
            bench_log("leveldb write: %s", err);
            leveldb_free(err);
            break;
        }
        batches++;
    }
    *batches_per_s = (double)batches / ((double)(bench_ns() - t0) / 1e9);
    leveldb_writebatch_destroy(wb);
    free(value);
    rc = batches > 0 ? 0 : -1;
done:
    if (db)
        leveldb_close(db);
    leveldb_writeoptions_destroy(w);
    leveldb_options_destroy(o);
    bench_rmrf(path);
    return rc;
}

/* ------------------------------------------------------------ Ed25519 */

int bench_ed25519(double time_limit_s, double *verify_per_s, double *sign_per_s)
{
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!kc || EVP_PKEY_keygen_init(kc) <= 0 || EVP_PKEY_keygen(kc, &key) <= 0) {
        EVP_PKEY_CTX_free(kc);
        return -1;
    }
    EVP_PKEY_CTX_free(kc);
    uint8_t msg[256], sig[64];
    memset(msg, 's', sizeof msg);
    size_t sig_len = sizeof sig;
    /* best of short rounds: a ceiling is what one core does when nothing
     * else on this shared machine takes it away */
    int rounds = (int)(time_limit_s / (2 * BENCH_ROUND_S));
    if (rounds < 2)
        rounds = 2;
    *sign_per_s = *verify_per_s = 0;
    for (int round = 0; round < 2 * rounds; round++) {
        int verifying = round % 2;
        size_t n = 0;
        int64_t t0 = bench_ns(), len = (int64_t)(BENCH_ROUND_S * 1e9);
        while (bench_ns() - t0 < len) {
            EVP_MD_CTX *m = EVP_MD_CTX_new();
            int ok;
            if (verifying) {
                ok = m && EVP_DigestVerifyInit(m, NULL, NULL, NULL, key) == 1 &&
                     EVP_DigestVerify(m, sig, sig_len, msg, sizeof msg) == 1;
            } else {
                sig_len = sizeof sig;
                ok = m && EVP_DigestSignInit(m, NULL, NULL, NULL, key) == 1 &&
                     EVP_DigestSign(m, sig, &sig_len, msg, sizeof msg) == 1;
            }
            EVP_MD_CTX_free(m);
            if (!ok) {
                EVP_PKEY_free(key);
                return -1;
            }
            n++;
        }
        double rate = (double)n / ((double)(bench_ns() - t0) / 1e9);
        double *best = verifying ? verify_per_s : sign_per_s;
        if (rate > *best)
            *best = rate;
    }
    EVP_PKEY_free(key);
    return 0;
}

int bench_seal_verify(const bench_keys_t *k, const bench_pool_t *pool, double time_limit_s, double *per_s)
{
    char path[512];
    snprintf(path, sizeof path, "%s/s0.sign.pub.pem", k->keys);
    EVP_PKEY *pub = kb_keys_load_sign_public(path);
    Ketenbus__Envelope *e = ketenbus__envelope__unpack(NULL, pool->env_len, pool->envelope);
    int rc = -1;
    if (!pub || !e)
        goto done;
    *per_s = 0;
    int rounds = (int)(time_limit_s / BENCH_ROUND_S);
    for (int round = 0; round < (rounds < 2 ? 2 : rounds); round++) {
        size_t n = 0;
        int64_t t0 = bench_ns(), limit = t0 + (int64_t)(BENCH_ROUND_S * 1e9);
        while (bench_ns() < limit) {
            if (kb_seal_verify(e, pub) != KB_OK) {
                bench_log("kb_seal_verify: %s", kb_last_error());
                goto done;
            }
            n++;
        }
        double rate = (double)n / ((double)(bench_ns() - t0) / 1e9);
        if (rate > *per_s)
            *per_s = rate;
    }
    rc = 0;
done:
    if (e)
        ketenbus__envelope__free_unpacked(e, NULL);
    EVP_PKEY_free(pub);
    return rc;
}

/* ------------------------------------------------------------ Ed25519 on every core */

typedef struct {
    EVP_PKEY *key;        /* shared public/private key (read only) */
    const uint8_t *sig;   /* signature of msg */
    size_t sig_len;       /* its length */
    const uint8_t *msg;   /* signed bytes */
    size_t msg_len;       /* their length */
    int64_t until;        /* stop time */
    size_t n;             /* verifications done */
    int rc;               /* 0 or -1 */
} s_vjob_t;

static void *s_verify_thread(void *arg)
{
    s_vjob_t *j = arg;
    while (bench_ns() < j->until) {
        EVP_MD_CTX *m = EVP_MD_CTX_new();
        int ok = m && EVP_DigestVerifyInit(m, NULL, NULL, NULL, j->key) == 1 &&
                 EVP_DigestVerify(m, j->sig, j->sig_len, j->msg, j->msg_len) == 1;
        EVP_MD_CTX_free(m);
        if (!ok) {
            j->rc = -1;
            break;
        }
        j->n++;
    }
    return NULL;
}

int bench_ed25519_cores(unsigned threads, double time_limit_s, double *verify_per_s)
{
    if (threads == 0 || threads > 64)
        return -1;
    EVP_PKEY *key = NULL;
    EVP_PKEY_CTX *kc = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!kc || EVP_PKEY_keygen_init(kc) <= 0 || EVP_PKEY_keygen(kc, &key) <= 0) {
        EVP_PKEY_CTX_free(kc);
        return -1;
    }
    EVP_PKEY_CTX_free(kc);
    uint8_t msg[256], sig[64];
    memset(msg, 's', sizeof msg);
    size_t sig_len = sizeof sig;
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = m && EVP_DigestSignInit(m, NULL, NULL, NULL, key) == 1 &&
             EVP_DigestSign(m, sig, &sig_len, msg, sizeof msg) == 1;
    EVP_MD_CTX_free(m);
    int rounds = (int)(time_limit_s / BENCH_ROUND_S);
    *verify_per_s = 0;
    for (int round = 0; ok && round < (rounds < 2 ? 2 : rounds); round++) {
        s_vjob_t jobs[64];
        pthread_t th[64];
        int64_t t0 = bench_ns();
        for (unsigned t = 0; t < threads; t++) {
            jobs[t] = (s_vjob_t){key, sig, sig_len, msg, sizeof msg, t0 + (int64_t)(BENCH_ROUND_S * 1e9), 0, 0};
            if (pthread_create(&th[t], NULL, s_verify_thread, &jobs[t]) != 0)
                jobs[t].rc = -2;
        }
        size_t n = 0;
        for (unsigned t = 0; t < threads; t++) {
            if (jobs[t].rc != -2)
                pthread_join(th[t], NULL);
            if (jobs[t].rc != 0)
                ok = 0;
            n += jobs[t].n;
        }
        double rate = (double)n / ((double)(bench_ns() - t0) / 1e9);
        if (rate > *verify_per_s)
            *verify_per_s = rate;
    }
    EVP_PKEY_free(key);
    return ok ? 0 : -1;
}
