// Elementwise kernels of the encoder in C, with runtime CPU dispatch.
//
// Each kernel comes in two variants of the same formulas (erf's approximation differs; the two agree
// to ~2e-7): `_portable` (plain C, for any CPU)
// and `_avx2` (AVX2 + FMA intrinsics, 8 lanes). The unsuffixed entry point picks one once per
// process: AVX2 + FMA when the CPU has both and ADAPTERMIX_NO_SIMD_DISPATCH is unset (or "0"),
// else portable. The `_avx2` variants must only be called when `ck_cpu_has_avx2_fma()` is true
// (on other architectures they are the portable code).
//
// Layout: row-major (rows, cols); outputs first, then inputs, then sizes (as the Swift wrappers).
// Thread-safety: all kernels are reentrant; the dispatch choice is a benign, idempotent cache.
#ifndef ADAPTERMIX_CKERNELS_H
#define ADAPTERMIX_CKERNELS_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when this CPU can run the `_avx2` variants (AVX2 and FMA), else 0.
int ck_cpu_has_avx2_fma(void);
/// The variant the dispatching entry points use: "avx2+fma" or "portable".
const char *ck_kernel_name(void);

/// out[i] = exp(x[i]); Cephes-style, relative error ~1e-7, exp(x < -87.336) = 0. `out` may alias `x`.
void ck_exp(float *out, const float *x, ptrdiff_t n);
/// out[i] = erf(x[i]); piecewise minimax polynomials, absolute error ~1e-7. `out` may alias `x`.
void ck_erf(float *out, const float *x, ptrdiff_t n);
/// x = x · ½ · (1 + erf(x / √2)) in place (GELU, exact erf form).
void ck_gelu(float *x, ptrdiff_t n);
/// GELU of (x + bias) in place over `rows` rows of `cols`.
void ck_bias_gelu(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols);
/// out = x + bias + residual over `rows` rows of `cols`; `out` may alias `x` or `residual`.
void ck_bias_residual(float *out, const float *x, const float *bias, const float *residual,
                      ptrdiff_t rows, ptrdiff_t cols);
/// x = x < 0 ? 0 : x in place (NaN and −0 kept, as the comparison leaves them).
void ck_relu(float *x, ptrdiff_t n);
/// out = a + b; `out` may alias `a` or `b`.
void ck_add(float *out, const float *a, const float *b, ptrdiff_t n);
/// x *= s.
void ck_scale(float *x, float s, ptrdiff_t n);
/// torch.nn.LayerNorm forward (biased variance, eps inside the sqrt); `mean`, `rstd` may be NULL;
/// `out` may alias `input`.
void ck_layernorm(float *out, float *mean, float *rstd, const float *input, const float *weight,
                  const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps);
/// Residual add and LayerNorm, a row at a time (the sum stays in cache): per row s = a + b (s = a
/// when `b` is NULL), out = LayerNorm(s) as ck_layernorm, and — when `sum` is not NULL — sum =
/// s + sum_bias (s when `sum_bias` is NULL). The same arithmetic, bit for bit, as ck_add, then
/// ck_layernorm, then ck_add of the bias row. `out` may alias `a` or `b` when `sum` is NULL; `sum`
/// may alias `a` or `b`, never `out`.
void ck_add_layernorm(float *out, float *sum, const float *a, const float *b, const float *sum_bias,
                      const float *weight, const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps);
/// exp(x − rowmax) in place over the first `n` of each row (rows `stride` apart); row sums out.
void ck_softmax_unnormalized(float *x, float *row_sums, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride);
/// Row softmax in place over the first `n` of each row (rows `stride` apart).
void ck_softmax(float *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride);

// The variants, for tests and benchmarks.
void ck_exp_portable(float *out, const float *x, ptrdiff_t n);
void ck_erf_portable(float *out, const float *x, ptrdiff_t n);
void ck_gelu_portable(float *x, ptrdiff_t n);
void ck_bias_gelu_portable(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols);
void ck_bias_residual_portable(float *out, const float *x, const float *bias, const float *residual,
                               ptrdiff_t rows, ptrdiff_t cols);
void ck_add_portable(float *out, const float *a, const float *b, ptrdiff_t n);
void ck_relu_portable(float *x, ptrdiff_t n);
void ck_scale_portable(float *x, float s, ptrdiff_t n);
void ck_layernorm_portable(float *out, float *mean, float *rstd, const float *input, const float *weight,
                           const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps);
void ck_softmax_unnormalized_portable(float *x, float *row_sums, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride);
void ck_softmax_portable(float *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride);
void ck_add_layernorm_portable(float *out, float *sum, const float *a, const float *b, const float *sum_bias,
                               const float *weight, const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps);

void ck_exp_avx2(float *out, const float *x, ptrdiff_t n);
void ck_erf_avx2(float *out, const float *x, ptrdiff_t n);
void ck_gelu_avx2(float *x, ptrdiff_t n);
void ck_bias_gelu_avx2(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols);
void ck_bias_residual_avx2(float *out, const float *x, const float *bias, const float *residual,
                           ptrdiff_t rows, ptrdiff_t cols);
void ck_add_avx2(float *out, const float *a, const float *b, ptrdiff_t n);
void ck_relu_avx2(float *x, ptrdiff_t n);
void ck_scale_avx2(float *x, float s, ptrdiff_t n);
void ck_layernorm_avx2(float *out, float *mean, float *rstd, const float *input, const float *weight,
                       const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps);
void ck_softmax_unnormalized_avx2(float *x, float *row_sums, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride);
void ck_softmax_avx2(float *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride);
void ck_add_layernorm_avx2(float *out, float *sum, const float *a, const float *b, const float *sum_bias,
                           const float *weight, const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps);

#ifdef __cplusplus
}
#endif

#endif
