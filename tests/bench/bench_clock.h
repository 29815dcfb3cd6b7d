/*
 * bench_clock.h - seconds on one of the POSIX clocks, for the stand-alone
 * benchmarks (bench_merkle, bench_audit) that do not link bench.c.
 */
#ifndef KB_BENCH_CLOCK_H
#define KB_BENCH_CLOCK_H

#include <time.h>

/* CLOCK_MONOTONIC: wall time; CLOCK_PROCESS_CPUTIME_ID: CPU of the whole
 * process (LevelDB's compaction thread included); CLOCK_THREAD_CPUTIME_ID:
 * CPU of the calling thread only. */
static inline double bench_clock_s(clockid_t id)
{
    struct timespec t;
    clock_gettime(id, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

#endif
