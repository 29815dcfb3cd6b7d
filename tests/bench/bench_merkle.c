/*
 * bench_merkle.c - figures of the audit log's Merkle tree (`make bench-merkle`).
 *
 * Prints, on one thread:
 *   - appends per second to a tree on in-memory tiles;
 *   - audit records per second through kb_store_audit_log() into LevelDB
 *     (record + tree update, one synced batch per 256 records, as the
 *     broker's group commit does), next to kb_store_audit_append() alone,
 *     so the tree's share is visible, with LevelDB entries per record
 *     and CPU time per record (fsync waits make wall time noisy);
 *   - leaf hashes verified per second: the root recomputed from N leaf
 *     hashes (the budget is >= 1,000,000 per second per core), and whole
 *     records verified per second (leaf hash of each record, then root);
 *   - inclusion proofs made (from LevelDB tiles) and verified per second.
 *
 * Usage: bench_merkle [leaves] (default 1000000); the LevelDB runs use a
 * scratch directory under $TMPDIR (default /tmp), removed at the end.
 * Not a test: it checks only that the roots agree.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "bench_clock.h"
#include "kb_error.h"
#include "kb_merkle.h"
#include "store.h"

#define BENCH_BATCH      256u      /* records per synced commit */
#define BENCH_PROOFS     20000u    /* inclusion proofs made and verified */
#define BENCH_REASON_LEN 96u       /* bytes of free text per record, for a realistic record size */

static int s_fail(const char *what)
{
    fprintf(stderr, "bench_merkle: %s: %s\n", what, kb_last_error());
    return 1;
}

/* A record like the broker's "routed" events: ids, names, a subject key. */
static void s_record(Ketenbus__AuditRecord *r, uint64_t i, uint8_t id[16], uint8_t subject[32], uint8_t sha[32],
                     ProtobufCBinaryData *subj, char *reason)
{
    ketenbus__audit_record__init(r);
    r->time_us = 1795426800000000 + (int64_t)i;
    r->event = KETENBUS__AUDIT_EVENT__AUDIT_EVENT_RECEIVED;
    r->agency = "politie";
    r->officer = "officer-1234";
    r->counterpart = "rvdk";
    memcpy(id, &i, sizeof i);
    r->message_id.data = id;
    r->message_id.len = 16;
    r->kind = KETENBUS__KIND__KIND_SIGNAL;
    r->legal_basis = "Wet politiegegevens art. 19";
    r->rule_id = "politie-rvdk-minors";
    memcpy(subject, &i, sizeof i);
    subj->data = subject;
    subj->len = 32;
    r->n_subject_keys = 1;
    r->subject_keys = subj;
    memcpy(sha, &i, sizeof i);
    r->payload_sha256.data = sha;
    r->payload_sha256.len = 32;
    r->reason = reason;
}

/* Log n records into a fresh database in dir, with the tree (tree != 0)
 * or without. Prints the rate; *root gets the tree's root. */
static int s_leveldb_run(const char *dir, uint64_t n, int tree, uint8_t root[KB_MERKLE_HASH_LEN])
{
    static const uint8_t key[32] = {7};
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        return s_fail("rm");
    kb_store_t *s = kb_store_open(dir, key);
    kb_batch_t *b = kb_batch_new();
    if (!s || !b)
        return s_fail("open");
    kb_store_tiles_t tiles = {s, b};
    kb_merkle_io_t io = kb_store_tiles_io(&tiles);
    kb_merkle_t *t = tree ? kb_merkle_new(&io) : NULL;
    if (tree && !t)
        return s_fail("tree");
    char reason[BENCH_REASON_LEN + 1];
    memset(reason, 'r', BENCH_REASON_LEN);
    reason[BENCH_REASON_LEN] = '\0';
    uint8_t id[16] = {0}, subject[32] = {0}, sha[32] = {0};
    ProtobufCBinaryData subj;
    uint64_t entries = 0;
    size_t record_len = 0;
    double t0 = bench_clock_s(CLOCK_MONOTONIC), c0 = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID);
    for (uint64_t i = 0; i < n; i++) {
        Ketenbus__AuditRecord r;
        s_record(&r, i, id, subject, sha, &subj, reason);
        int rc = tree ? kb_store_audit_log(s, b, t, &r, NULL) : kb_store_audit_append(s, b, &r, NULL);
        if (rc != KB_OK)
            return s_fail("append");
        if (i == 0)
            record_len = ketenbus__audit_record__get_packed_size(&r);
        if ((i + 1) % BENCH_BATCH == 0 || i + 1 == n) {
            entries += kb_batch_size(b);
            if (kb_store_commit(s, b, 1) != KB_OK)
                return s_fail("commit");
        }
    }
    double dt = bench_clock_s(CLOCK_MONOTONIC) - t0, cpu = bench_clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    printf("  leveldb, %-22s %10.0f records/s  %6.2f us each (%.2f us CPU)  %.4f entries/record  (%zu-byte "
           "records)\n",
           tree ? "record + tree:" : "record only:", (double)n / dt, dt / (double)n * 1e6, cpu / (double)n * 1e6,
           (double)entries / (double)n, record_len);
    if (tree) {
        if (kb_merkle_root(t, root) != KB_OK)
            return s_fail("root");
        /* inclusion proofs from committed tiles, then their verification */
        uint8_t proof[KB_MERKLE_PROOF_BYTES], leaf[KB_MERKLE_HASH_LEN];
        size_t np = 0;
        uint64_t x = 88172645463325252ull; /* xorshift: leaves spread over the log */
        t0 = bench_clock_s(CLOCK_MONOTONIC);
        for (unsigned k = 0; k < BENCH_PROOFS; k++) {
            x ^= x << 13, x ^= x >> 7, x ^= x << 17;
            if (kb_merkle_inclusion_proof(t, x % n, n, proof, &np) != KB_OK)
                return s_fail("proof");
        }
        dt = bench_clock_s(CLOCK_MONOTONIC) - t0;
        printf("  inclusion proofs made:          %10.0f proofs/s   (%zu hashes each, tree of %" PRIu64 ")\n",
               BENCH_PROOFS / dt, np, n);
        uint64_t index = n / 3;
        if (kb_merkle_inclusion_proof(t, index, n, proof, &np) != KB_OK || kb_merkle_leaf(t, index, leaf) != KB_OK)
            return s_fail("proof");
        t0 = bench_clock_s(CLOCK_MONOTONIC);
        for (unsigned k = 0; k < BENCH_PROOFS; k++)
            if (kb_merkle_verify_inclusion(leaf, index, n, proof, np, root) != KB_OK)
                return s_fail("verify");
        dt = bench_clock_s(CLOCK_MONOTONIC) - t0;
        printf("  inclusion proofs verified:      %10.0f proofs/s\n", BENCH_PROOFS / dt);
    }
    kb_merkle_destroy(&t);
    kb_batch_destroy(&b);
    kb_store_destroy(&s);
    if (system(cmd) != 0)
        return s_fail("rm");
    return 0;
}

int main(int argc, char **argv)
{
    uint64_t n = 1000000;
    if (argc > 1) {
        char *end = NULL;
        n = strtoull(argv[1], &end, 10);
        if (!end || *end || n == 0 || n > 100000000) {
            fprintf(stderr, "usage: bench_merkle [leaves, 1..100000000]\n");
            return 2;
        }
    }
    const char *tmp = getenv("TMPDIR");
    char dir[256];
    snprintf(dir, sizeof dir, "%s/bench_merkle.%ld", tmp && *tmp ? tmp : "/tmp", (long)getpid());

    printf("Merkle tree, %" PRIu64 " leaves, one thread\n", n);
    uint8_t *hashes = malloc(n * KB_MERKLE_HASH_LEN);
    kb_merkle_mem_t *mem = kb_merkle_mem_new();
    if (!hashes || !mem)
        return s_fail("memory");
    uint8_t leaf[200];
    memset(leaf, 'x', sizeof leaf);

    /* appends on in-memory tiles (leaf bytes hashed by the tree) */
    kb_merkle_io_t io = kb_merkle_mem_io(mem);
    kb_merkle_t *t = kb_merkle_new(&io);
    if (!t)
        return s_fail("tree");
    double t0 = bench_clock_s(CLOCK_MONOTONIC);
    for (uint64_t i = 0; i < n; i++) {
        memcpy(leaf, &i, sizeof i);
        if (kb_merkle_append(t, leaf, sizeof leaf, NULL) != KB_OK)
            return s_fail("append");
    }
    double dt = bench_clock_s(CLOCK_MONOTONIC) - t0;
    printf("  memory, append(200 bytes):      %10.0f appends/s  %6.2f us each\n", (double)n / dt, dt / (double)n * 1e6);
    uint8_t root_mem[KB_MERKLE_HASH_LEN], root[KB_MERKLE_HASH_LEN];
    if (kb_merkle_root(t, root_mem) != KB_OK)
        return s_fail("root");
    for (uint64_t i = 0; i < n; i++)
        if (kb_merkle_leaf(t, i, hashes + i * KB_MERKLE_HASH_LEN) != KB_OK)
            return s_fail("leaf");
    kb_merkle_destroy(&t);
    kb_merkle_mem_destroy(&mem);

    /* leaf-hash verification: the root again from the leaf hashes alone */
    t0 = bench_clock_s(CLOCK_MONOTONIC);
    if (kb_merkle_root_from_hashes(hashes, n, root) != KB_OK)
        return s_fail("root");
    dt = bench_clock_s(CLOCK_MONOTONIC) - t0;
    printf("  verify, root from leaf hashes:  %10.0f leaves/s   (%.3f s for %" PRIu64 ")%s\n", (double)n / dt, dt, n,
           memcmp(root, root_mem, sizeof root) == 0 ? "" : "  ROOT MISMATCH");
    /* whole records: hash each 200-byte record, then the root */
    kb_merkle_acc_t *acc = kb_merkle_acc_new();
    if (!acc)
        return s_fail("acc");
    t0 = bench_clock_s(CLOCK_MONOTONIC);
    for (uint64_t i = 0; i < n; i++) {
        memcpy(leaf, &i, sizeof i);
        if (kb_merkle_acc_add(acc, leaf, sizeof leaf) != KB_OK)
            return s_fail("acc");
    }
    if (kb_merkle_acc_root(acc, root) != KB_OK)
        return s_fail("root");
    dt = bench_clock_s(CLOCK_MONOTONIC) - t0;
    kb_merkle_acc_destroy(&acc);
    printf("  verify, 200-byte records:       %10.0f records/s%s\n", (double)n / dt,
           memcmp(root, root_mem, sizeof root) == 0 ? "" : "  ROOT MISMATCH");
    free(hashes);

    /* LevelDB, as the broker writes: without and with the tree */
    uint8_t root_db[KB_MERKLE_HASH_LEN];
    if (s_leveldb_run(dir, n, 0, NULL) != 0 || s_leveldb_run(dir, n, 1, root_db) != 0)
        return 1;
    return 0;
}
