/*
 * bench.h - shared parts of ketenbus-bench.
 *
 * ketenbus-bench measures the ceilings a broker hop on this machine cannot
 * pass (ZeroMQ forwarding with and without CURVE, fdatasync, LevelDB synced
 * batches, Ed25519 verification) and then ketenbusd itself, driven over the
 * real wire protocol, in the same run, so every figure can be printed with
 * its ratio to a baseline that was measured minutes before it.
 *
 * Modules:
 *   bench.c          options, the order of the runs, the table
 *   bench_ceiling.c  the baselines (forwarder, disk, LevelDB, Ed25519)
 *   bench_chain.c    scratch chains: keys, configuration, ketenbusd by pid
 *   bench_pool.c     pre-signed envelopes, so signing is not measured
 *   bench_wire.c     raw CURVE DEALERs speaking the protocol to ketenbusd
 *   bench_sdk.c      the same exchange through libketenbus
 *   bench_store.c    a million queued entries, bytes on disk per message
 * Every loop is bounded in count and in time; every process started is
 * stopped by pid; only 127.0.0.1 is used.
 */
#ifndef KB_BENCH_H
#define KB_BENCH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define BENCH_MAX_PAIRS    8u     /* sender/recipient pairs (s0->r0 ... s7->r7) */
#define BENCH_MAX_AGENCIES 1000u  /* agencies in the largest configuration */
#define BENCH_KEYS (2 * BENCH_MAX_PAIRS + BENCH_MAX_AGENCIES) /* key sets made per run */
#define BENCH_READY_MS     30000  /* longest a broker may take to become ready */

/* ------------------------------------------------------------ time */

/* Monotonic nanoseconds. */
int64_t bench_ns(void);
void bench_sleep_us(int64_t us);

/* Percentile q (0..1) of n values; sorts v in place. 0 when n == 0. */
int64_t bench_pct(int64_t *v, size_t n, double q);

/* ------------------------------------------------------------ the table */

/* One printed figure. */
typedef struct {
    char section[16];      /* "ceiling", "throughput", ... */
    char name[96];         /* what was measured */
    double value;          /* the figure */
    char unit[12];         /* msg/s, us, MiB, ... */
    char base[48];         /* baseline it is compared with ("" for a baseline itself) */
    double ratio;          /* value / baseline value (0: none) */
    char target[32];       /* the target, "" if none */
    int verdict;           /* 1 met, 0 missed, -1 no target */
    char note[240];        /* how it was measured, where it matters */
} bench_row_t;

/* Add a row; returns it so a caller can fill the note. */
bench_row_t *bench_row(const char *section, const char *name, double value, const char *unit);
/* Compare row with a baseline figure. */
void bench_vs(bench_row_t *r, const char *base_name, double base_value);
/* Record a target: met if (higher_is_better ? value >= goal : value <= goal). */
void bench_target(bench_row_t *r, const char *text, int met);
void bench_note(bench_row_t *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Print the table (and, with markdown, as a Markdown table). */
void bench_print(int markdown);

/* Progress and errors go to stderr, the table to stdout. */
void bench_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ------------------------------------------------------------ options */

typedef struct {
    int quick;             /* BENCH_QUICK: short runs, within two minutes */
    const char *build;     /* directory with ketenbusd */
    const char *tmp;       /* where scratch directories go */
    const char *only;      /* comma-separated sections to run, NULL: all */
    int keep;              /* keep the scratch directory */
    int markdown;          /* also print the table as Markdown */
    int log_level_warn;    /* run the broker at log level warn instead of info */
} bench_opts_t;

extern bench_opts_t g_opt;

/* ------------------------------------------------------------ chains */

/* Keys for the broker, s0..s7, r0..r7 and fillers, made once per run. */
typedef struct {
    char dir[256];         /* scratch root */
    char keys[320];        /* key directory */
    char broker_cert[400]; /* keys/broker.curve */
    size_t n_keys;         /* agencies with keys */
} bench_keys_t;

int bench_keys_make(bench_keys_t *k, const char *root, size_t n_agencies);
/* Agency name i: s0..s7 (0-7), r0..r7 (8-15), then a0016 ... */
void bench_agency_name(size_t i, char out[16]);

/* Rule form in the configurations: 0 or 1 full (purposes, max_handling,
 * legal_basis), 2 short (from, to, kinds) for a broker that refuses those. */
extern int g_rule_style;

/* A broker instance with its own data directory. */
typedef struct {
    char dir[400];         /* instance directory (config, data, log) */
    char config[480];      /* chain.yaml */
    char data[480];        /* data_dir */
    char log[480];         /* broker stderr */
    char endpoint[256];    /* bound endpoint once ready */
    pid_t pid;             /* running broker, 0 if none */
    double ready_ms;       /* exec to ready-file */
} bench_broker_t;

/* Write a configuration with n_agencies agencies: s0.., r0.. of n_pairs
 * pairs with a rule s_i -> r_i each, then filler agencies with one rule
 * each; extra is YAML under broker:. */
int bench_broker_init(bench_broker_t *b, const bench_keys_t *k, const char *name, unsigned n_pairs,
                      size_t n_agencies, const char *extra);
int bench_broker_start(bench_broker_t *b);
/* SIGTERM, wait; SIGKILL after a timeout. Returns the exit status. */
int bench_broker_stop(bench_broker_t *b);
/* Resident and peak resident memory of the running broker, in KiB. */
int bench_broker_rss(const bench_broker_t *b, long *rss_kib, long *hwm_kib);
/* The same, and how much of the RSS is anonymous memory and how much file
 * pages mapped in (LevelDB mmaps its table files for reading). */
int bench_broker_mem(const bench_broker_t *b, long *rss_kib, long *hwm_kib, long *anon_kib, long *file_kib);
/* Bytes of the data directory's files. */
uint64_t bench_dir_bytes(const char *path);
void bench_rmrf(const char *path);

/* ------------------------------------------------------------ envelopes */

/* Pre-signed SUBMIT frames of one sender to one recipient. */
typedef struct {
    size_t n;              /* frames */
    uint8_t **frame;       /* encoded Frame{request_id = i + 1, Submit{1 envelope}} */
    size_t *len;           /* their lengths */
    size_t env_len;        /* packed envelope size (the last one) */
    uint8_t *envelope;     /* one packed envelope (for filling a store) */
} bench_pool_t;

/* Sign n envelopes from pair p (s_p -> r_p) with a narrative of payload
 * bytes; ids carry (pair, index) so replies can be matched. Two threads. */
int bench_pool_make(bench_pool_t *pool, const bench_keys_t *k, unsigned pair, size_t n, size_t payload);
void bench_pool_free(bench_pool_t *pool);
/* Pair and index encoded in a message id by bench_pool_make. */
int bench_id_decode(const uint8_t *id, size_t len, unsigned *pair, uint64_t *index);

/* ------------------------------------------------------------ runs */

/* Outcome of one wire run. */
typedef struct {
    size_t sent;            /* SUBMITs sent */
    size_t accepted;        /* RECEIPT ACCEPTED */
    size_t rejected;        /* RECEIPT REJECTED or DUPLICATE */
    size_t delivered;       /* envelopes in DELIVER frames */
    double accept_rate;     /* accepted per second (first send to last receipt) */
    double deliver_rate;    /* delivered per second (first send to last delivery) */
    double ack_rate;        /* per second through the last ACK's commit (PONG queued 0) */
    double offered_rate;    /* what was sent per second */
    int64_t rcpt_p50, rcpt_p99, rcpt_p999;    /* SUBMIT -> RECEIPT, ns */
    int64_t dlv_p50, dlv_p99, dlv_p999;       /* SUBMIT -> DELIVER, ns */
    int complete;           /* 1 if every message was accepted, delivered and acked in time */
    char error[200];        /* why not */
} bench_wire_t;

/* Drive n_pairs pairs through the broker at b->endpoint with the pools:
 * rate 0 = closed loop with a window per sender, else the total offered
 * rate in messages per second (open loop, latency measured from the
 * scheduled send time). recipients_online 0: only submit (offline queue).
 * batch > 1 (closed loop only): the same envelopes, `batch` to a SUBMIT
 * frame, as ketenbus_client_submit_batch() sends them. */
int bench_wire_run(const bench_broker_t *b, const bench_keys_t *k, bench_pool_t *pools, unsigned n_pairs,
                   size_t per_pair, double rate, int recipients_online, unsigned batch, double time_limit_s,
                   bench_wire_t *out);

/* The same exchange through libketenbus: submit(..., 0) with a window
 * (batch 1), or submit_batch() of `batch` messages, poll; a handler on the
 * receiving client. */
typedef struct {
    size_t n;               /* messages */
    double accept_rate;     /* receipts per second */
    double deliver_rate;    /* deliveries per second */
    int complete;           /* all arrived in time */
    char error[200];        /* why not */
} bench_sdk_t;
int bench_sdk_run(const bench_broker_t *b, const bench_keys_t *k, size_t n, size_t payload, size_t batch,
                  double time_limit_s, bench_sdk_t *out);

/* Ceilings. */
typedef struct {
    double plain_rate;      /* forwarded msg/s, plain tcp */
    double curve_rate;      /* forwarded msg/s, CURVE */
} bench_fwd_t;
int bench_forwarder(size_t msg_len, size_t n, double time_limit_s, bench_fwd_t *out);

typedef struct {
    double ops;             /* 4 KiB append + fdatasync per second */
    int64_t p50, p99;       /* latency, ns */
} bench_disk_t;
int bench_disk(const char *dir, size_t n, double time_limit_s, bench_disk_t *out);

/* Synced WriteBatches of batch entries of value_len bytes: batches per second. */
int bench_leveldb(const char *dir, size_t batch, size_t value_len, double time_limit_s, double *batches_per_s);

/* Ed25519 verifications per second on one core (OpenSSL EVP). */
int bench_ed25519(double time_limit_s, double *verify_per_s, double *sign_per_s);
/* Ed25519 verifications per second on `threads` threads at once. */
int bench_ed25519_cores(unsigned threads, double time_limit_s, double *verify_per_s);
/* kb_seal_verify of a pool envelope per second on one core. */
int bench_seal_verify(const bench_keys_t *k, const bench_pool_t *pool, double time_limit_s, double *per_s);

/* Fill the store of b (stopped) with n queue entries for agency, the way
 * route.c writes them (queue entry, two audit records, accepted id). */
int bench_store_fill(const bench_broker_t *b, const bench_keys_t *k, const char *agency, const bench_pool_t *pool,
                     size_t n, double *seconds);

/* Logical bytes per key prefix in a stopped broker's store. */
typedef struct {
    uint64_t audit;         /* 'b' audit blocks: keys + values */
    uint64_t queue;         /* 'q' entries */
    uint64_t seen;          /* 'd' accepted ids */
    uint64_t tiles;         /* 't' Merkle tiles of the audit tree */
    uint64_t other;         /* counters and anything else */
    uint64_t n_audit;       /* number of audit records */
    uint64_t n_queue;       /* number of queue entries */
} bench_store_bytes_t;
int bench_store_bytes(const char *data_dir, bench_store_bytes_t *out);

#endif
