// Elementwise kernels of the encoder: a portable C variant and an AVX2 + FMA variant of the same
// formulas (erf excepted: each variant has the approximation that vectorises for it; they agree to
// ~2e-7), picked once at run time (see ckernels.h). Swift builds for baseline x86-64 (SSE2), so
// these are the only places the encoder's non-GEMM work uses 256-bit registers and FMA, while the
// binary still runs on any x86-64 (or other) CPU.
#include "ckernels.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#define CK_X86 1
#include <immintrin.h>
#else
#define CK_X86 0
#endif

// MARK: - Shared constants

// exp: Cephes expf (x = n·ln2 + r, ln2 split in two parts, degree-6 polynomial in r).
#define CK_EXP_HI 88.3762626647949f   // log(2^127.5): n ≤ 127 below it
#define CK_EXP_LO (-87.3365447505531f) // log(2^-126): exp(x) is a normal float at and above it
#define CK_LOG2E 1.44269504088896341f
#define CK_LN2_HI 0.693359375f         // ln2 = HI + LO, HI with few bits so n·HI is exact
#define CK_LN2_LO (-2.12194440e-4f)
#define CK_ROUND_MAGIC 12582912.0f     // 1.5·2²³: x + magic rounds x to an integer in the low bits
#define CK_EXP_P0 1.9875691500e-4f
#define CK_EXP_P1 1.3981999507e-3f
#define CK_EXP_P2 8.3334519073e-3f
#define CK_EXP_P3 4.1665795894e-2f
#define CK_EXP_P4 1.6666665459e-1f
#define CK_EXP_P5 5.0000001201e-1f

// erf on |x| < 4: interval k = floor(2|x|) (8 intervals of width ½), a degree-6 polynomial in
// u = |x| − centre_k, the interval's midpoint (|u| ≤ ¼) except for k = 0, expanded about 0 with no
// constant term so that erf(0) = 0 and erf(x) ≈ 2x/√π near 0; erf = 1 from |x| ≥ 3.92 (where
// erfc < 3e-8, half an ulp of 1). Coefficients: our minimax fit of erf on each interval (linear
// programming on 1,201 points per interval against mpmath's erf, coefficients rounded to float
// one at a time from the constant term, refitting the rest; the last interval needs only degree
// 3). Max abs error, float arithmetic included: 1.1e-7 (the A&S 7.1.26 form used before: 6.3e-7,
// from 1 − t·P(t)·e^−x² cancelling near 0). No division, no exp: a table lookup per coefficient.
#define CK_ERF_SATURATE 3.92f
#define CK_ERF_CLAMP 3.99f
#define CK_ERF_DEGREE 6
static const float ck_erf_coef[CK_ERF_DEGREE + 1][8] __attribute__((aligned(32))) = {
    {0.000000000e+00f, 7.111556530e-01f, 9.229001403e-01f, 9.866716862e-01f, 9.985373020e-01f, 9.998993874e-01f, 9.999957085e-01f, 9.999998808e-01f},
    {1.128379345e+00f, 6.429310441e-01f, 2.365213037e-01f, 5.277519301e-02f, 7.142576389e-03f, 5.861294339e-04f, 2.934585609e-05f, 8.814307080e-07f},
    {-1.825438994e-05f, -4.822004735e-01f, -2.956558764e-01f, -9.235862643e-02f, -1.607463323e-02f, -1.616568421e-03f, -9.938837320e-05f, -3.832793936e-06f},
    {-3.756025136e-01f, 2.674563043e-02f, 1.675188094e-01f, 9.016324580e-02f, 2.170697600e-02f, 2.765717451e-03f, 1.875102607e-04f, 8.895995052e-06f},
    {-4.831860308e-03f, 1.507105231e-01f, -6.002165377e-03f, -4.804381728e-02f, -1.892332360e-02f, -3.103226656e-03f, -2.338534250e-04f, 0.0f},
    {1.322155297e-01f, -5.141097307e-02f, -4.668825865e-02f, 6.090491544e-03f, 1.083341893e-02f, 2.742921235e-03f, 4.000188201e-04f, 0.0f},
    {-3.613859788e-02f, -2.656053193e-02f, 1.962729357e-02f, 8.648478426e-03f, -4.299573600e-03f, -3.059142968e-03f, 5.037779920e-05f, 0.0f},
};
static const float ck_erf_centre[8] __attribute__((aligned(32))) = {0.0f, 0.75f, 1.25f, 1.75f, 2.25f, 2.75f, 3.25f, 3.75f};

#define CK_INV_SQRT2 0.70710678118654752f

// MARK: - Portable variant (plain C; clang vectorises the loops with SSE2 / NEON)

static inline float ck_bits_to_float(int32_t i) { float f; memcpy(&f, &i, sizeof f); return f; }
static inline int32_t ck_float_to_bits(float f) { int32_t i; memcpy(&i, &f, sizeof i); return i; }

static inline float ck_exp1(float x) {
    float xc = x > CK_EXP_HI ? CK_EXP_HI : x;
    xc = xc < CK_EXP_LO ? CK_EXP_LO : xc;
    float shifted = xc * CK_LOG2E + CK_ROUND_MAGIC;
    float n = shifted - CK_ROUND_MAGIC;
    float r = xc - n * CK_LN2_HI;
    r = r - n * CK_LN2_LO;
    float z = r * r;
    float p = CK_EXP_P0;
    p = p * r + CK_EXP_P1;
    p = p * r + CK_EXP_P2;
    p = p * r + CK_EXP_P3;
    p = p * r + CK_EXP_P4;
    p = p * r + CK_EXP_P5;
    p = p * z + r + 1.0f;
    int32_t ni = ck_float_to_bits(shifted) - ck_float_to_bits(CK_ROUND_MAGIC);
    float y = p * ck_bits_to_float((ni + 127) << 23);
    return x < CK_EXP_LO ? 0.0f : y; // NaN passes through (every comparison above is false)
}

// The portable erf avoids the AVX2 variant's per-lane table lookup (which stays scalar without
// gathers): both halves are computed and one is selected, so clang vectorises the loops (SSE2,
// NEON). |x| < 1: erf = x·P(x²); 1 ≤ |x| < 3.92: erf = 1 − e^(−x²)·Q(|x| − 2.5), Q fitting
// erfc(x)·e^(x²); our least-squares fits (degrees 6 and 10, against Python's math.erf/erfc),
// max abs error 1.4e-7 in float arithmetic. The two variants agree to ~2e-7, not bit for bit.
static const float ck_erf_small[7] = {1.128379226e+00f, -3.761262894e-01f, 1.128363460e-01f, -2.685606293e-02f,
                                      5.192942452e-03f, -8.053592173e-04f, 8.006267308e-05f};
static const float ck_erfc_large[11] = {2.108063549e-01f, -7.434753329e-02f, 2.493815124e-02f, -7.999834605e-03f,
                                        2.466192935e-03f, -7.381128380e-04f, 2.126807958e-04f, -5.416817294e-05f,
                                        1.451589833e-05f, -6.260020655e-06f, 1.640509254e-06f};

static inline float ck_erf1(float x) {
    float ax = fabsf(x);
    float a = ax < CK_ERF_CLAMP ? ax : CK_ERF_CLAMP;
    float s = a * a;
    float p = ck_erf_small[6];
    for (int j = 5; j >= 0; j--) p = p * s + ck_erf_small[j];
    float small = a * p;
    float u = a - 2.5f;
    float q = ck_erfc_large[10];
    for (int j = 9; j >= 0; j--) q = q * u + ck_erfc_large[j];
    float large = 1.0f - ck_exp1(-s) * q;
    float y = a < 1.0f ? small : large;
    y = ax >= CK_ERF_SATURATE ? 1.0f : y;
    y = copysignf(y, x);
    return x != x ? x : y;
}

// x·½·(1 + erf(x/√2)) as h + h·erf with h = x/2: exactly x or 0 once erf saturates.
static inline float ck_gelu1(float x) {
    float h = 0.5f * x;
    return h + h * ck_erf1(x * CK_INV_SQRT2);
}

void ck_exp_portable(float *out, const float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) out[i] = ck_exp1(x[i]);
}

void ck_erf_portable(float *out, const float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) out[i] = ck_erf1(x[i]);
}

void ck_gelu_portable(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] = ck_gelu1(x[i]);
}

void ck_bias_gelu_portable(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        for (ptrdiff_t i = 0; i < cols; i++) row[i] = ck_gelu1(row[i] + bias[i]);
    }
}

void ck_bias_residual_portable(float *out, const float *x, const float *bias, const float *residual,
                               ptrdiff_t rows, ptrdiff_t cols) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *o = out + r * cols;
        const float *a = x + r * cols, *res = residual + r * cols;
        for (ptrdiff_t i = 0; i < cols; i++) o[i] = a[i] + bias[i] + res[i];
    }
}

void ck_add_portable(float *out, const float *a, const float *b, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}

void ck_relu_portable(float *x, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

void ck_scale_portable(float *x, float s, ptrdiff_t n) {
    for (ptrdiff_t i = 0; i < n; i++) x[i] *= s;
}

// Sums in 8 lanes (so clang vectorises them), then the lanes pairwise, as the AVX2 horizontal sum.
static inline float ck_sum8(const float acc[8]) {
    return ((acc[0] + acc[4]) + (acc[2] + acc[6])) + ((acc[1] + acc[5]) + (acc[3] + acc[7]));
}

void ck_layernorm_portable(float *out, float *mean, float *rstd, const float *input, const float *weight,
                           const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *x = input + r * cols;
        float *y = out + r * cols;
        float acc[8] = {0};
        ptrdiff_t i = 0;
        for (; i + 8 <= cols; i += 8)
            for (int j = 0; j < 8; j++) acc[j] += x[i + j];
        for (int j = 0; i + j < cols; j++) acc[j] += x[i + j];
        float m = ck_sum8(acc) / (float)cols;
        float vacc[8] = {0};
        for (i = 0; i + 8 <= cols; i += 8)
            for (int j = 0; j < 8; j++) { float d = x[i + j] - m; vacc[j] += d * d; }
        for (int j = 0; i + j < cols; j++) { float d = x[i + j] - m; vacc[j] += d * d; }
        float rs = 1.0f / sqrtf(ck_sum8(vacc) / (float)cols + eps);
        for (i = 0; i < cols; i++) y[i] = (x[i] - m) * rs * weight[i] + bias[i];
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

void ck_softmax_unnormalized_portable(float *x, float *row_sums, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * stride;
        float mx = -INFINITY;
        for (ptrdiff_t i = 0; i < n; i++) mx = row[i] > mx ? row[i] : mx;
        float acc[8] = {0};
        ptrdiff_t i = 0;
        for (; i + 8 <= n; i += 8)
            for (int j = 0; j < 8; j++) { float e = ck_exp1(row[i + j] - mx); row[i + j] = e; acc[j] += e; }
        for (int j = 0; i + j < n; j++) { float e = ck_exp1(row[i + j] - mx); row[i + j] = e; acc[j] += e; }
        row_sums[r] = ck_sum8(acc);
    }
}

void ck_softmax_portable(float *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float sum;
        ck_softmax_unnormalized_portable(x + r * stride, &sum, 1, n, stride);
        ck_scale_portable(x + r * stride, 1.0f / sum, n);
    }
}

// MARK: - AVX2 + FMA variant

#if CK_X86

#define CK_AVX2 __attribute__((target("avx2,fma")))
#define CK_AVX2_INLINE static inline __attribute__((target("avx2,fma"), always_inline))

// Lanes 0..<count (1...8) set: the mask for a row's tail, loaded from a sliding window.
static const int32_t ck_tail_window[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
CK_AVX2_INLINE __m256i ck_tail_mask(ptrdiff_t count) {
    return _mm256_loadu_si256((const __m256i *)(ck_tail_window + 8 - count));
}

CK_AVX2_INLINE float ck_hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1)); // lanes j + j+4
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));                                        // + j+2
    s = _mm_add_ss(s, _mm_movehdup_ps(s));                                         // + j+1
    return _mm_cvtss_f32(s);
}

CK_AVX2_INLINE float ck_hmax(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

CK_AVX2_INLINE __m256 ck_exp8(__m256 x) {
    const __m256 lo = _mm256_set1_ps(CK_EXP_LO), magic = _mm256_set1_ps(CK_ROUND_MAGIC);
    // min/max return their second operand when one is NaN: NaN passes through.
    __m256 xc = _mm256_max_ps(lo, _mm256_min_ps(_mm256_set1_ps(CK_EXP_HI), x));
    __m256 shifted = _mm256_fmadd_ps(xc, _mm256_set1_ps(CK_LOG2E), magic);
    __m256 n = _mm256_sub_ps(shifted, magic);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(CK_LN2_HI), xc);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(CK_LN2_LO), r);
    __m256 z = _mm256_mul_ps(r, r);
    __m256 p = _mm256_set1_ps(CK_EXP_P0);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_EXP_P1));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_EXP_P2));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_EXP_P3));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_EXP_P4));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(CK_EXP_P5));
    p = _mm256_add_ps(_mm256_fmadd_ps(p, z, r), _mm256_set1_ps(1.0f));
    __m256i ni = _mm256_sub_epi32(_mm256_castps_si256(shifted), _mm256_castps_si256(magic));
    __m256 scale = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(ni, _mm256_set1_epi32(127)), 23));
    __m256 y = _mm256_mul_ps(p, scale);
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
}

CK_AVX2_INLINE __m256 ck_erf8(__m256 x) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 ax = _mm256_andnot_ps(sign, x);
    __m256 a = _mm256_min_ps(_mm256_set1_ps(CK_ERF_CLAMP), ax); // NaN passes through
    __m256i k = _mm256_cvttps_epi32(_mm256_add_ps(a, a));       // NaN → 0x80000000: index 0
    __m256 u = _mm256_sub_ps(a, _mm256_permutevar8x32_ps(_mm256_load_ps(ck_erf_centre), k));
    __m256 p = _mm256_permutevar8x32_ps(_mm256_load_ps(ck_erf_coef[CK_ERF_DEGREE]), k);
    for (int j = CK_ERF_DEGREE - 1; j >= 0; j--)
        p = _mm256_fmadd_ps(p, u, _mm256_permutevar8x32_ps(_mm256_load_ps(ck_erf_coef[j]), k));
    __m256 saturated = _mm256_cmp_ps(ax, _mm256_set1_ps(CK_ERF_SATURATE), _CMP_GE_OQ);
    p = _mm256_blendv_ps(p, _mm256_set1_ps(1.0f), saturated);
    return _mm256_or_ps(p, _mm256_and_ps(sign, x));
}

CK_AVX2_INLINE __m256 ck_gelu8(__m256 x) {
    __m256 h = _mm256_mul_ps(x, _mm256_set1_ps(0.5f));
    return _mm256_fmadd_ps(h, ck_erf8(_mm256_mul_ps(x, _mm256_set1_ps(CK_INV_SQRT2))), h);
}

CK_AVX2 void ck_exp_avx2(float *out, const float *x, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, ck_exp8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = ck_tail_mask(n - i);
        _mm256_maskstore_ps(out + i, m, ck_exp8(_mm256_maskload_ps(x + i, m)));
    }
}

CK_AVX2 void ck_erf_avx2(float *out, const float *x, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, ck_erf8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = ck_tail_mask(n - i);
        _mm256_maskstore_ps(out + i, m, ck_erf8(_mm256_maskload_ps(x + i, m)));
    }
}

CK_AVX2 void ck_gelu_avx2(float *x, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, ck_gelu8(_mm256_loadu_ps(x + i)));
    if (i < n) {
        __m256i m = ck_tail_mask(n - i);
        _mm256_maskstore_ps(x + i, m, ck_gelu8(_mm256_maskload_ps(x + i, m)));
    }
}

CK_AVX2 void ck_bias_gelu_avx2(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * cols;
        ptrdiff_t i = 0;
        for (; i + 8 <= cols; i += 8)
            _mm256_storeu_ps(row + i, ck_gelu8(_mm256_add_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(bias + i))));
        if (i < cols) {
            __m256i m = ck_tail_mask(cols - i);
            __m256 v = _mm256_add_ps(_mm256_maskload_ps(row + i, m), _mm256_maskload_ps(bias + i, m));
            _mm256_maskstore_ps(row + i, m, ck_gelu8(v));
        }
    }
}

CK_AVX2 void ck_bias_residual_avx2(float *out, const float *x, const float *bias, const float *residual,
                                   ptrdiff_t rows, ptrdiff_t cols) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *o = out + r * cols;
        const float *a = x + r * cols, *res = residual + r * cols;
        ptrdiff_t i = 0;
        for (; i + 8 <= cols; i += 8) {
            __m256 v = _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(bias + i));
            _mm256_storeu_ps(o + i, _mm256_add_ps(v, _mm256_loadu_ps(res + i)));
        }
        if (i < cols) {
            __m256i m = ck_tail_mask(cols - i);
            __m256 v = _mm256_add_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(bias + i, m));
            _mm256_maskstore_ps(o + i, m, _mm256_add_ps(v, _mm256_maskload_ps(res + i, m)));
        }
    }
}

CK_AVX2 void ck_add_avx2(float *out, const float *a, const float *b, ptrdiff_t n) {
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, _mm256_add_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i)));
    if (i < n) {
        __m256i m = ck_tail_mask(n - i);
        _mm256_maskstore_ps(out + i, m, _mm256_add_ps(_mm256_maskload_ps(a + i, m), _mm256_maskload_ps(b + i, m)));
    }
}

CK_AVX2 void ck_relu_avx2(float *x, ptrdiff_t n) {
    // max_ps returns its second operand when the two compare equal or either is NaN: max(0, x)
    // is x < 0 ? 0 : x exactly, −0 and NaN included.
    const __m256 zero = _mm256_setzero_ps();
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_max_ps(zero, _mm256_loadu_ps(x + i)));
    for (; i < n; i++) x[i] = x[i] < 0.0f ? 0.0f : x[i];
}

CK_AVX2 void ck_scale_avx2(float *x, float s, ptrdiff_t n) {
    __m256 sv = _mm256_set1_ps(s);
    ptrdiff_t i = 0;
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), sv));
    if (i < n) {
        __m256i m = ck_tail_mask(n - i);
        _mm256_maskstore_ps(x + i, m, _mm256_mul_ps(_mm256_maskload_ps(x + i, m), sv));
    }
}

CK_AVX2 void ck_layernorm_avx2(float *out, float *mean, float *rstd, const float *input, const float *weight,
                               const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps) {
    ptrdiff_t body = cols & ~(ptrdiff_t)7;
    __m256i tail = ck_tail_mask(cols - body == 0 ? 8 : cols - body); // unused when cols == body
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *x = input + r * cols;
        float *y = out + r * cols;
        // Two accumulators each: one add chain would wait on the adder's latency (4 cycles).
        __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
        ptrdiff_t i = 0;
        for (; i + 16 <= body; i += 16) {
            acc0 = _mm256_add_ps(acc0, _mm256_loadu_ps(x + i));
            acc1 = _mm256_add_ps(acc1, _mm256_loadu_ps(x + i + 8));
        }
        if (i < body) acc0 = _mm256_add_ps(acc0, _mm256_loadu_ps(x + i));
        if (body < cols) acc1 = _mm256_add_ps(acc1, _mm256_maskload_ps(x + body, tail));
        float m = ck_hsum(_mm256_add_ps(acc0, acc1)) / (float)cols;
        __m256 mv = _mm256_set1_ps(m);
        __m256 v0 = _mm256_setzero_ps(), v1 = _mm256_setzero_ps();
        for (i = 0; i + 16 <= body; i += 16) {
            __m256 d0 = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv), d1 = _mm256_sub_ps(_mm256_loadu_ps(x + i + 8), mv);
            v0 = _mm256_fmadd_ps(d0, d0, v0);
            v1 = _mm256_fmadd_ps(d1, d1, v1);
        }
        if (i < body) {
            __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + i), mv);
            v0 = _mm256_fmadd_ps(d, d, v0);
        }
        if (body < cols) {
            __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + body, tail), mv), _mm256_castsi256_ps(tail));
            v1 = _mm256_fmadd_ps(d, d, v1);
        }
        float rs = 1.0f / sqrtf(ck_hsum(_mm256_add_ps(v0, v1)) / (float)cols + eps);
        __m256 rsv = _mm256_set1_ps(rs);
        for (i = 0; i < body; i += 8) {
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), mv), rsv);
            _mm256_storeu_ps(y + i, _mm256_fmadd_ps(xhat, _mm256_loadu_ps(weight + i), _mm256_loadu_ps(bias + i)));
        }
        if (body < cols) {
            __m256 xhat = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + body, tail), mv), rsv);
            __m256 v = _mm256_fmadd_ps(xhat, _mm256_maskload_ps(weight + body, tail), _mm256_maskload_ps(bias + body, tail));
            _mm256_maskstore_ps(y + body, tail, v);
        }
        if (mean) mean[r] = m;
        if (rstd) rstd[r] = rs;
    }
}

CK_AVX2 void ck_softmax_unnormalized_avx2(float *x, float *row_sums, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) {
    ptrdiff_t body = n & ~(ptrdiff_t)7;
    __m256i tail = ck_tail_mask(n - body == 0 ? 8 : n - body);
    const __m256 ninf = _mm256_set1_ps(-INFINITY);
    for (ptrdiff_t r = 0; r < rows; r++) {
        float *row = x + r * stride;
        __m256 mx = ninf;
        // max(v, mx) keeps mx where v is NaN, as the portable `v > mx ? v : mx`.
        for (ptrdiff_t i = 0; i < body; i += 8) mx = _mm256_max_ps(_mm256_loadu_ps(row + i), mx);
        if (body < n) mx = _mm256_max_ps(_mm256_blendv_ps(ninf, _mm256_maskload_ps(row + body, tail), _mm256_castsi256_ps(tail)), mx);
        __m256 mv = _mm256_set1_ps(ck_hmax(mx));
        __m256 acc = _mm256_setzero_ps();
        for (ptrdiff_t i = 0; i < body; i += 8) {
            __m256 e = ck_exp8(_mm256_sub_ps(_mm256_loadu_ps(row + i), mv));
            _mm256_storeu_ps(row + i, e);
            acc = _mm256_add_ps(acc, e);
        }
        if (body < n) {
            __m256 e = ck_exp8(_mm256_sub_ps(_mm256_maskload_ps(row + body, tail), mv));
            e = _mm256_and_ps(e, _mm256_castsi256_ps(tail));
            _mm256_maskstore_ps(row + body, tail, e);
            acc = _mm256_add_ps(acc, e);
        }
        row_sums[r] = ck_hsum(acc);
    }
}

CK_AVX2 void ck_softmax_avx2(float *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        float sum;
        ck_softmax_unnormalized_avx2(x + r * stride, &sum, 1, n, stride);
        ck_scale_avx2(x + r * stride, 1.0f / sum, n);
    }
}

#else // not x86: the "AVX2" entry points are the portable code (never chosen by dispatch)

void ck_exp_avx2(float *out, const float *x, ptrdiff_t n) { ck_exp_portable(out, x, n); }
void ck_erf_avx2(float *out, const float *x, ptrdiff_t n) { ck_erf_portable(out, x, n); }
void ck_gelu_avx2(float *x, ptrdiff_t n) { ck_gelu_portable(x, n); }
void ck_bias_gelu_avx2(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols) { ck_bias_gelu_portable(x, bias, rows, cols); }
void ck_bias_residual_avx2(float *out, const float *x, const float *bias, const float *residual, ptrdiff_t rows, ptrdiff_t cols) {
    ck_bias_residual_portable(out, x, bias, residual, rows, cols);
}
void ck_add_avx2(float *out, const float *a, const float *b, ptrdiff_t n) { ck_add_portable(out, a, b, n); }
void ck_scale_avx2(float *x, float s, ptrdiff_t n) { ck_scale_portable(x, s, n); }
void ck_relu_avx2(float *x, ptrdiff_t n) { ck_relu_portable(x, n); }
void ck_layernorm_avx2(float *out, float *mean, float *rstd, const float *input, const float *weight,
                       const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps) {
    ck_layernorm_portable(out, mean, rstd, input, weight, bias, rows, cols, eps);
}
void ck_softmax_unnormalized_avx2(float *x, float *row_sums, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) {
    ck_softmax_unnormalized_portable(x, row_sums, rows, n, stride);
}
void ck_softmax_avx2(float *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) { ck_softmax_portable(x, rows, n, stride); }

#endif

// MARK: - Fused residual add + LayerNorm (both variants)

typedef void (*ck_add_fn)(float *, const float *, const float *, ptrdiff_t);
typedef void (*ck_layernorm_fn)(float *, float *, float *, const float *, const float *, const float *,
                                ptrdiff_t, ptrdiff_t, float);

// The row loop of ck_add_layernorm over one variant's add and LayerNorm, so that each variant
// gives the bits of its own separate passes.
static inline void ck_add_layernorm_rows(ck_add_fn add, ck_layernorm_fn layernorm, float *out, float *sum,
                                         const float *a, const float *b, const float *sum_bias,
                                         const float *weight, const float *bias, ptrdiff_t rows, ptrdiff_t cols,
                                         float eps) {
    for (ptrdiff_t r = 0; r < rows; r++) {
        const float *ar = a + r * cols;
        float *o = out + r * cols, *sr = sum ? sum + r * cols : NULL;
        const float *s = ar;
        if (b) {
            float *t = sr ? sr : o;
            add(t, ar, b + r * cols, cols);
            s = t;
        }
        layernorm(o, NULL, NULL, s, weight, bias, 1, cols, eps);
        if (sr) {
            if (sum_bias) add(sr, s, sum_bias, cols);
            else if (s != sr) memcpy(sr, s, (size_t)cols * sizeof(float));
        }
    }
}

void ck_add_layernorm_portable(float *out, float *sum, const float *a, const float *b, const float *sum_bias,
                               const float *weight, const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps) {
    ck_add_layernorm_rows(ck_add_portable, ck_layernorm_portable, out, sum, a, b, sum_bias, weight, bias, rows, cols, eps);
}

void ck_add_layernorm_avx2(float *out, float *sum, const float *a, const float *b, const float *sum_bias,
                           const float *weight, const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps) {
    ck_add_layernorm_rows(ck_add_avx2, ck_layernorm_avx2, out, sum, a, b, sum_bias, weight, bias, rows, cols, eps);
}

// MARK: - Dispatch

int ck_cpu_has_avx2_fma(void) {
#if CK_X86
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return 0;
#endif
}

// 0: not chosen yet, 1: portable, 2: AVX2 + FMA. Racing first callers compute the same value.
static int ck_choice;

static inline int ck_use_avx2(void) {
    int c = __atomic_load_n(&ck_choice, __ATOMIC_RELAXED);
    if (__builtin_expect(c == 0, 0)) {
        const char *off = getenv("ADAPTERMIX_NO_SIMD_DISPATCH");
        int forced = off != NULL && off[0] != '\0' && strcmp(off, "0") != 0;
        c = (!forced && ck_cpu_has_avx2_fma()) ? 2 : 1;
        __atomic_store_n(&ck_choice, c, __ATOMIC_RELAXED);
    }
    return c == 2;
}

const char *ck_kernel_name(void) { return ck_use_avx2() ? "avx2+fma" : "portable"; }

void ck_exp(float *out, const float *x, ptrdiff_t n) {
    if (ck_use_avx2()) ck_exp_avx2(out, x, n); else ck_exp_portable(out, x, n);
}

void ck_erf(float *out, const float *x, ptrdiff_t n) {
    if (ck_use_avx2()) ck_erf_avx2(out, x, n); else ck_erf_portable(out, x, n);
}

void ck_gelu(float *x, ptrdiff_t n) {
    if (ck_use_avx2()) ck_gelu_avx2(x, n); else ck_gelu_portable(x, n);
}

void ck_bias_gelu(float *x, const float *bias, ptrdiff_t rows, ptrdiff_t cols) {
    if (ck_use_avx2()) ck_bias_gelu_avx2(x, bias, rows, cols); else ck_bias_gelu_portable(x, bias, rows, cols);
}

void ck_bias_residual(float *out, const float *x, const float *bias, const float *residual,
                      ptrdiff_t rows, ptrdiff_t cols) {
    if (ck_use_avx2()) ck_bias_residual_avx2(out, x, bias, residual, rows, cols);
    else ck_bias_residual_portable(out, x, bias, residual, rows, cols);
}

void ck_add(float *out, const float *a, const float *b, ptrdiff_t n) {
    if (ck_use_avx2()) ck_add_avx2(out, a, b, n); else ck_add_portable(out, a, b, n);
}

void ck_scale(float *x, float s, ptrdiff_t n) {
    if (ck_use_avx2()) ck_scale_avx2(x, s, n); else ck_scale_portable(x, s, n);
}

void ck_layernorm(float *out, float *mean, float *rstd, const float *input, const float *weight,
                  const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps) {
    if (ck_use_avx2()) ck_layernorm_avx2(out, mean, rstd, input, weight, bias, rows, cols, eps);
    else ck_layernorm_portable(out, mean, rstd, input, weight, bias, rows, cols, eps);
}

void ck_softmax_unnormalized(float *x, float *row_sums, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) {
    if (ck_use_avx2()) ck_softmax_unnormalized_avx2(x, row_sums, rows, n, stride);
    else ck_softmax_unnormalized_portable(x, row_sums, rows, n, stride);
}

void ck_softmax(float *x, ptrdiff_t rows, ptrdiff_t n, ptrdiff_t stride) {
    if (ck_use_avx2()) ck_softmax_avx2(x, rows, n, stride); else ck_softmax_portable(x, rows, n, stride);
}

void ck_add_layernorm(float *out, float *sum, const float *a, const float *b, const float *sum_bias,
                      const float *weight, const float *bias, ptrdiff_t rows, ptrdiff_t cols, float eps) {
    if (ck_use_avx2()) ck_add_layernorm_avx2(out, sum, a, b, sum_bias, weight, bias, rows, cols, eps);
    else ck_add_layernorm_portable(out, sum, a, b, sum_bias, weight, bias, rows, cols, eps);
}

void ck_relu(float *x, ptrdiff_t n) {
    if (ck_use_avx2()) ck_relu_avx2(x, n); else ck_relu_portable(x, n);
}
