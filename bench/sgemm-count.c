// How much of a run is GEMM: an LD_PRELOAD wrapper around cblas_sgemm that counts the calls, the
// floating-point operations (2·m·n·k) and the thread CPU time inside OpenBLAS, and prints them at
// exit. Never built by CI. Usage (docs/benchmarks.md, "Sweep speed"):
//
//   gcc -O2 -shared -fPIC bench/sgemm-count.c -o /tmp/sgemm-count.so -ldl
//   LD_PRELOAD=/tmp/sgemm-count.so .build/release/adaptermix bench sweep --mixtures 64 --test 200
//
// The clock read around each call costs a few hundred nanoseconds, which inflates the time of the
// many small attention GEMMs (about a million per run) by a few tenths of a second in all.
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <time.h>

typedef void (*sgemm_fn)(int, int, int, int, int, int, float, const float *, int, const float *, int, float,
                         float *, int);

static _Atomic long long flops, calls, nanoseconds;

static long long thread_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (long long)t.tv_sec * 1000000000LL + t.tv_nsec;
}

void cblas_sgemm(int order, int ta, int tb, int m, int n, int k, float alpha, const float *a, int lda,
                 const float *b, int ldb, float beta, float *c, int ldc) {
    static sgemm_fn real;
    if (!real) real = (sgemm_fn)dlsym(RTLD_NEXT, "cblas_sgemm");
    long long start = thread_ns();
    real(order, ta, tb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    nanoseconds += thread_ns() - start;
    flops += 2LL * m * n * k;
    calls += 1;
}

__attribute__((destructor)) static void report(void) {
    if (calls == 0) return;
    fprintf(stderr, "sgemm: %.1f GFLOP in %lld calls, %.2f thread-CPU seconds, %.1f GFLOP/s per thread\n",
            (double)flops / 1e9, (long long)calls, (double)nanoseconds / 1e9, (double)flops / (double)nanoseconds);
}
