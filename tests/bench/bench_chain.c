/*
 * bench_chain.c - scratch chains for the benchmark: keys, configuration,
 * and ketenbusd started and stopped by pid.
 *
 * Keys are made once per run for every agency any configuration names
 * (s0..s7 send, r0..r7 receive, a0016... only fill the configuration), so
 * that envelopes signed once can be replayed against fresh brokers: each
 * broker instance gets its own data directory and never saw those ids.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench.h"
#include "kb_error.h"
#include "kb_keys.h"
#include "kb_util.h"

int g_rule_style;

void bench_agency_name(size_t i, char out[16])
{
    if (i < BENCH_MAX_PAIRS)
        snprintf(out, 16, "s%zu", i);
    else if (i < 2 * BENCH_MAX_PAIRS)
        snprintf(out, 16, "r%zu", i - BENCH_MAX_PAIRS);
    else
        snprintf(out, 16, "a%04u", (unsigned)(i % 10000));
}

int bench_keys_make(bench_keys_t *k, const char *root, size_t n_agencies)
{
    memset(k, 0, sizeof *k);
    snprintf(k->dir, sizeof k->dir, "%s", root);
    snprintf(k->keys, sizeof k->keys, "%s/keys", root);
    snprintf(k->broker_cert, sizeof k->broker_cert, "%s/broker.curve", k->keys);
    if (kb_keys_generate(k->keys, "broker", 1) != KB_OK) {
        bench_log("keygen broker: %s", kb_last_error());
        return -1;
    }
    for (size_t i = 0; i < n_agencies; i++) {
        char name[16];
        bench_agency_name(i, name);
        if (kb_keys_generate(k->keys, name, 0) != KB_OK) {
            bench_log("keygen %s: %s", name, kb_last_error());
            return -1;
        }
    }
    k->n_keys = n_agencies;
    return 0;
}

int bench_broker_init(bench_broker_t *b, const bench_keys_t *k, const char *name, unsigned n_pairs,
                      size_t n_agencies, const char *extra)
{
    memset(b, 0, sizeof *b);
    size_t n_fill = n_agencies > 2u * n_pairs ? n_agencies - 2u * n_pairs : 0;
    if (n_pairs == 0 || n_pairs > BENCH_MAX_PAIRS || 2 * BENCH_MAX_PAIRS + n_fill > k->n_keys) {
        bench_log("broker %s: %u pairs and %zu agencies, keys for %zu", name, n_pairs, n_agencies, k->n_keys);
        return -1;
    }
    snprintf(b->dir, sizeof b->dir, "%s/%s", k->dir, name);
    snprintf(b->config, sizeof b->config, "%s/chain.yaml", b->dir);
    snprintf(b->data, sizeof b->data, "%s/data", b->dir);
    snprintf(b->log, sizeof b->log, "%s/broker.log", b->dir);
    bench_rmrf(b->dir);
    if (kb_mkdirs(b->dir, 0700) != KB_OK) {
        bench_log("mkdir %s: %s", b->dir, kb_last_error());
        return -1;
    }
    FILE *f = fopen(b->config, "w");
    if (!f) {
        bench_log("write %s: %s", b->config, strerror(errno));
        return -1;
    }
    fprintf(f,
            "broker:\n  id: bench-broker\n  listen: tcp://127.0.0.1:*\n  data_dir: data\n  key_dir: %s\n"
            "  max_message_bytes: 1048576\n  message_ttl: 14d\n  session_timeout: 60s\n%s"
            "agencies:\n",
            k->keys, extra ? extra : "");
    /* s0.. and r0.. of the pairs in use, then fillers a0016, a0017, ... */
    for (size_t j = 0; j < 2u * n_pairs + n_fill; j++) {
        size_t i = j < n_pairs ? j : j < 2u * n_pairs ? BENCH_MAX_PAIRS + j - n_pairs : 2 * BENCH_MAX_PAIRS + j - 2u * n_pairs;
        char a[16];
        bench_agency_name(i, a);
        fprintf(f, "  - id: %s\n    name: Agency %s\n    curve_cert: %s/%s.curve\n    signing_key: %s/%s.sign.pub.pem\n",
                a, a, k->keys, a, k->keys, a);
    }
    /* the full rule form names purposes, highest handling code and legal
     * basis; a broker that knows only from/to/kinds gets the short form */
    const char *more = g_rule_style == 2 ? ""
                                         : "    purposes: [victim_care, criminal_investigation]\n"
                                           "    max_handling: h2\n    legal_basis: \"benchmark\"\n";
    fprintf(f, "rules:\n");
    for (unsigned i = 0; i < n_pairs; i++)
        fprintf(f, "  - id: pair-%u\n    from: [s%u]\n    to: [r%u]\n    kinds: [signal]\n%s", i, i, i, more);
    /* one rule per filler agency, so the rule table grows with the chain */
    for (size_t j = 0; j < n_fill; j++) {
        char a[16], c[16];
        bench_agency_name(2 * BENCH_MAX_PAIRS + j, a);
        bench_agency_name(2 * BENCH_MAX_PAIRS + (j + 1) % n_fill, c);
        fprintf(f, "  - id: filler-%zu\n    from: [%s]\n    to: [%s]\n    kinds: [signal, referral]\n%s", j, a, c,
                more);
    }
    if (fclose(f) != 0) {
        bench_log("write %s: %s", b->config, strerror(errno));
        return -1;
    }
    return 0;
}

int bench_broker_start(bench_broker_t *b)
{
    char bin[512], ready[520];
    snprintf(bin, sizeof bin, "%s/ketenbusd", g_opt.build);
    snprintf(ready, sizeof ready, "%s/ready", b->dir);
    unlink(ready);
    const char *level = g_opt.log_level_warn ? "warn" : "info";
    int64_t t0 = bench_ns();
    pid_t pid = fork();
    if (pid < 0) {
        bench_log("fork: %s", strerror(errno));
        return -1;
    }
    if (pid == 0) {
        int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 2);
            close(fd);
        }
        /* KB_BENCH_BROKER_WRAP="valgrind --tool=callgrind ..." runs the
         * broker under a profiler (words split on spaces, at most 16) */
        char *argv[32], wrap[1024];
        int n = 0;
        const char *w = getenv("KB_BENCH_BROKER_WRAP");
        if (w && *w) {
            snprintf(wrap, sizeof wrap, "%s", w);
            for (char *save = NULL, *t = strtok_r(wrap, " ", &save); t && n < 16; t = strtok_r(NULL, " ", &save))
                argv[n++] = t;
        }
        const char *rest[] = {bin, "--config", b->config, "--ready-file", ready, "--log-level", level};
        for (size_t i = 0; i < sizeof rest / sizeof rest[0]; i++)
            argv[n++] = (char *)rest[i];
        argv[n] = NULL;
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", bin, strerror(errno));
        _exit(127);
    }
    b->pid = pid;
    int64_t deadline = t0 + (int64_t)BENCH_READY_MS * 1000000;
    while (bench_ns() < deadline) {
        char *text = NULL;
        size_t len = 0;
        if (kb_file_read(ready, 1024, &text, &len) == KB_OK && len > 0 && text[len - 1] == '\n') {
            b->ready_ms = (double)(bench_ns() - t0) / 1e6;
            text[len - 1] = '\0';
            snprintf(b->endpoint, sizeof b->endpoint, "%s", text);
            free(text);
            return 0;
        }
        free(text);
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            b->pid = 0;
            bench_log("ketenbusd exited during start (status %d); see %s", status, b->log);
            return -1;
        }
        bench_sleep_us(500);
    }
    bench_log("ketenbusd not ready within %d ms; see %s", BENCH_READY_MS, b->log);
    bench_broker_stop(b);
    return -1;
}

int bench_broker_stop(bench_broker_t *b)
{
    if (b->pid <= 0)
        return -1;
    kill(b->pid, SIGTERM);
    int64_t deadline = bench_ns() + 20LL * 1000000000;
    int status = 0;
    while (bench_ns() < deadline) {
        if (waitpid(b->pid, &status, WNOHANG) == b->pid) {
            b->pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        bench_sleep_us(2000);
    }
    kill(b->pid, SIGKILL);
    waitpid(b->pid, NULL, 0);
    b->pid = 0;
    return -1;
}

int bench_broker_rss(const bench_broker_t *b, long *rss_kib, long *hwm_kib)
{
    long anon, file;
    return bench_broker_mem(b, rss_kib, hwm_kib, &anon, &file);
}

int bench_broker_mem(const bench_broker_t *b, long *rss_kib, long *hwm_kib, long *anon_kib, long *file_kib)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)b->pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    *rss_kib = *hwm_kib = *anon_kib = *file_kib = -1;
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, "VmRSS:", 6) == 0)
            *rss_kib = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "VmHWM:", 6) == 0)
            *hwm_kib = strtol(line + 6, NULL, 10);
        else if (strncmp(line, "RssAnon:", 8) == 0)
            *anon_kib = strtol(line + 8, NULL, 10);
        else if (strncmp(line, "RssFile:", 8) == 0)
            *file_kib = strtol(line + 8, NULL, 10);
    }
    fclose(f);
    return *rss_kib >= 0 ? 0 : -1;
}

uint64_t bench_dir_bytes(const char *path)
{
    DIR *d = opendir(path);
    if (!d)
        return 0;
    uint64_t total = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (lstat(p, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode))
            total += bench_dir_bytes(p);
        else if (S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

void bench_rmrf(const char *path)
{
    DIR *d = opendir(path);
    if (!d) {
        unlink(path);
        return;
    }
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        char p[1024];
        struct stat st;
        snprintf(p, sizeof p, "%s/%s", path, e->d_name);
        if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode))
            bench_rmrf(p);
        else
            unlink(p);
    }
    closedir(d);
    rmdir(path);
}
