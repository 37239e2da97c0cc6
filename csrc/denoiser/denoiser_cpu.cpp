// CPU (OpenMP) fused forward of the GCN-Attention denoiser; contract in denoiser.h, per-pose math in
// denoiser_math.h. The GEMMs use a register-blocked micro-kernel over pre-packed weight panels of 16 columns:
// 12 rows x 2 panels in AVX-512 where the build targets it, else 6 x 16 in AVX2/FMA, else scalar loops
// (MKL's sgemm reaches 22-29 GFLOP/s on AVX2 AMD cores for these shapes; see benchmarks/RESULTS.md).
#include "denoiser.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <memory>

#include "denoiser_math.h"

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>
#define DPF_DENOISER_AVX2 1
#endif
#if defined(__AVX512F__)
// Built with -march=native on an AVX-512 CPU (Intel Xeon since Skylake-SP, AMD Zen 4): 16-lane FMAs, 32 registers.
#include <immintrin.h>
#define DPF_DENOISER_AVX512 1
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace dpf {
namespace denoiser {
namespace {

#ifdef DPF_DENOISER_AVX2
// Accumulators are named variables, not an array: GCC spills an array of __m256 to the stack on every k.
template <int MR>
inline void micro_kernel(int K, const float* A, int64_t lda, const float* P, const float* bias, float* C,
                         int64_t ldc, bool accumulate) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  const float* a0 = A;
  const float* a1 = A + lda;
  const float* a2 = A + 2 * lda;
  const float* a3 = A + 3 * lda;
  const float* a4 = A + 4 * lda;
  const float* a5 = A + 5 * lda;
  for (int k = 0; k < K; ++k) {
    const __m256 b0 = _mm256_loadu_ps(P + k * 16);
    const __m256 b1 = _mm256_loadu_ps(P + k * 16 + 8);
    __m256 a;
#define DPF_ROW(i)                                   \
    if (MR > i) {                                     \
      a = _mm256_broadcast_ss(a##i + k);              \
      c##i##0 = _mm256_fmadd_ps(a, b0, c##i##0);      \
      c##i##1 = _mm256_fmadd_ps(a, b1, c##i##1);      \
    }
    DPF_ROW(0) DPF_ROW(1) DPF_ROW(2) DPF_ROW(3) DPF_ROW(4) DPF_ROW(5)
#undef DPF_ROW
  }
  const __m256 bias0 = bias ? _mm256_loadu_ps(bias) : _mm256_setzero_ps();
  const __m256 bias1 = bias ? _mm256_loadu_ps(bias + 8) : _mm256_setzero_ps();
#define DPF_STORE(i)                                                              \
  if (MR > i) {                                                                    \
    float* c = C + i * ldc;                                                        \
    __m256 v0 = _mm256_add_ps(c##i##0, bias0), v1 = _mm256_add_ps(c##i##1, bias1); \
    if (accumulate) {                                                              \
      v0 = _mm256_add_ps(v0, _mm256_loadu_ps(c));                                  \
      v1 = _mm256_add_ps(v1, _mm256_loadu_ps(c + 8));                              \
    }                                                                              \
    _mm256_storeu_ps(c, v0);                                                       \
    _mm256_storeu_ps(c + 8, v1);                                                   \
  }
  DPF_STORE(0) DPF_STORE(1) DPF_STORE(2) DPF_STORE(3) DPF_STORE(4) DPF_STORE(5)
#undef DPF_STORE
}
#else
template <int MR>
inline void micro_kernel(int K, const float* A, int64_t lda, const float* P, const float* bias, float* C,
                         int64_t ldc, bool accumulate) {
  float acc[MR][16] = {};
  for (int k = 0; k < K; ++k)
    for (int r = 0; r < MR; ++r) {
      const float a = A[r * lda + k];
      for (int c = 0; c < 16; ++c) acc[r][c] += a * P[k * 16 + c];
    }
  for (int r = 0; r < MR; ++r)
    for (int c = 0; c < 16; ++c) {
      const float v = acc[r][c] + (bias ? bias[c] : 0.0f);
      C[r * ldc + c] = accumulate ? C[r * ldc + c] + v : v;
    }
}
#endif


#ifdef DPF_DENOISER_AVX512
// The AVX-512 GEMM tile: MR (<= 12) rows x NP (1 or 2) adjacent 16-column panels, one zmm accumulator per row and
// panel (24 + 2 panel rows + the broadcast: 27 of the 32 registers). Two panels per call make every broadcast of
// A feed two FMAs, so a k step is 2 panel loads + 12 broadcasts for 24 FMAs: FMA-bound, at twice the AVX2 tile's
// lanes. The panels keep the AVX2 layout (P[panel][k][16]), so packing is the same for every build; the sum over
// k runs in the same order as the AVX2 and scalar tiles (results differ only by FMA contraction).
template <int MR, int NP>
inline void micro_kernel_512(int K, const float* A, int64_t lda, const float* P0, const float* P1, const float* bias,
                             float* C, int64_t ldc, bool accumulate) {
  static_assert(MR >= 1 && MR <= 12 && (NP == 1 || NP == 2), "tile shape");
#define DPF_DECL(i) __m512 acc##i##_0 = _mm512_setzero_ps(), acc##i##_1 = _mm512_setzero_ps(); \
  const float* a##i = A + (MR > i ? i : 0) * lda;
  DPF_DECL(0) DPF_DECL(1) DPF_DECL(2) DPF_DECL(3) DPF_DECL(4) DPF_DECL(5)
  DPF_DECL(6) DPF_DECL(7) DPF_DECL(8) DPF_DECL(9) DPF_DECL(10) DPF_DECL(11)
#undef DPF_DECL
  for (int k = 0; k < K; ++k) {
    const __m512 b0 = _mm512_loadu_ps(P0 + k * 16);
    const __m512 b1 = NP > 1 ? _mm512_loadu_ps(P1 + k * 16) : b0;
#define DPF_ROW(i)                                               \
    if (MR > i) {                                                 \
      const __m512 a = _mm512_set1_ps(a##i[k]);                   \
      acc##i##_0 = _mm512_fmadd_ps(a, b0, acc##i##_0);            \
      if (NP > 1) acc##i##_1 = _mm512_fmadd_ps(a, b1, acc##i##_1); \
    }
    DPF_ROW(0) DPF_ROW(1) DPF_ROW(2) DPF_ROW(3) DPF_ROW(4) DPF_ROW(5)
    DPF_ROW(6) DPF_ROW(7) DPF_ROW(8) DPF_ROW(9) DPF_ROW(10) DPF_ROW(11)
#undef DPF_ROW
  }
  const __m512 bias0 = bias ? _mm512_loadu_ps(bias) : _mm512_setzero_ps();
  const __m512 bias1 = (NP > 1 && bias) ? _mm512_loadu_ps(bias + 16) : _mm512_setzero_ps();
#define DPF_STORE(i)                                                        \
  if (MR > i) {                                                              \
    float* c = C + i * ldc;                                                  \
    __m512 v0 = _mm512_add_ps(acc##i##_0, bias0);                            \
    if (accumulate) v0 = _mm512_add_ps(v0, _mm512_loadu_ps(c));              \
    _mm512_storeu_ps(c, v0);                                                 \
    if (NP > 1) {                                                            \
      __m512 v1 = _mm512_add_ps(acc##i##_1, bias1);                          \
      if (accumulate) v1 = _mm512_add_ps(v1, _mm512_loadu_ps(c + 16));       \
      _mm512_storeu_ps(c + 16, v1);                                          \
    }                                                                        \
  }
  DPF_STORE(0) DPF_STORE(1) DPF_STORE(2) DPF_STORE(3) DPF_STORE(4) DPF_STORE(5)
  DPF_STORE(6) DPF_STORE(7) DPF_STORE(8) DPF_STORE(9) DPF_STORE(10) DPF_STORE(11)
#undef DPF_STORE
}

// All R rows of NP panels: full 12-row tiles, then one tile of the remaining rows.
template <int NP>
void panel_rows_512(int64_t R, int K, const float* A, int64_t lda, const float* P0, const float* P1,
                    const float* bias, float* C, int64_t ldc, bool accumulate) {
  int64_t r = 0;
  for (; r + 12 <= R; r += 12)
    micro_kernel_512<12, NP>(K, A + r * lda, lda, P0, P1, bias, C + r * ldc, ldc, accumulate);
  const float* Ar = A + r * lda;
  float* Cr = C + r * ldc;
  switch (R - r) {
#define DPF_TAIL(m) \
    case m: micro_kernel_512<m, NP>(K, Ar, lda, P0, P1, bias, Cr, ldc, accumulate); break;
    DPF_TAIL(11) DPF_TAIL(10) DPF_TAIL(9) DPF_TAIL(8) DPF_TAIL(7) DPF_TAIL(6)
    DPF_TAIL(5) DPF_TAIL(4) DPF_TAIL(3) DPF_TAIL(2) DPF_TAIL(1)
#undef DPF_TAIL
    default: break;
  }
}
#endif

#ifdef DPF_DENOISER_AVX2
// Vector forms of denoiser_math.h's exp_approx / erf_approx (same polynomials, same constants).
inline __m256 exp256(__m256 x) {
  x = _mm256_min_ps(_mm256_max_ps(x, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
  const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                   _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fmadd_ps(n, _mm256_set1_ps(2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.9875691500e-4f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.3981999507e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
  p = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(e));
}

inline __m256 gelu256(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  const __m256 u = _mm256_mul_ps(x, _mm256_set1_ps(0.70710678118654752f));
  const __m256 au = _mm256_andnot_ps(sign, u);
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.0f), _mm256_fmadd_ps(au, _mm256_set1_ps(0.3275911f),
                                                                         _mm256_set1_ps(1.0f)));
  __m256 p = _mm256_set1_ps(1.061405429f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.453152027f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.421413741f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.284496736f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.254829592f));
  const __m256 ex = exp256(_mm256_sub_ps(_mm256_setzero_ps(), _mm256_mul_ps(au, au)));
  const __m256 y = _mm256_fnmadd_ps(_mm256_mul_ps(p, t), ex, _mm256_set1_ps(1.0f));  // erf(|u|)
  const __m256 erf = _mm256_or_ps(y, _mm256_and_ps(sign, u));
  return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), _mm256_add_ps(_mm256_set1_ps(1.0f), erf));
}
#endif

void gelu_inplace(float* t, int64_t n) {
  int64_t i = 0;
#ifdef DPF_DENOISER_AVX2
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(t + i, gelu256(_mm256_loadu_ps(t + i)));
#endif
  for (; i < n; ++i) t[i] = gelu(t[i]);
}

// One head of one pose: as denoiser_math.h's attention_head, with K transposed so the J scores of a query are
// computed as vectors (J <= 24 here; wider poses and head widths that are not a multiple of 8 use the shared
// scalar code).
void attention_head_cpu(const float* q, const float* k, const float* v, int ld, int J, int d, float scale, float* o,
                        int ldo) {
#ifdef DPF_DENOISER_AVX2
  if (J <= 24 && d % 8 == 0 && d <= 128) {
    alignas(32) float kT[128 * 24];
    for (int c = 0; c < d; ++c) {
      float* row = kT + c * 24;
      for (int j = 0; j < J; ++j) row[j] = k[static_cast<int64_t>(j) * ld + c];
      for (int j = J; j < 24; ++j) row[j] = 0.0f;
    }
    const __m256 vscale = _mm256_set1_ps(scale);
    const __m256 neg = _mm256_set1_ps(-3.0e38f);
    alignas(32) float p[24];
    for (int i = 0; i < J; ++i) {
      const float* qi = q + static_cast<int64_t>(i) * ld;
      __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0;
      for (int c = 0; c < d; ++c) {
        const __m256 qc = _mm256_broadcast_ss(qi + c);
        s0 = _mm256_fmadd_ps(qc, _mm256_load_ps(kT + c * 24), s0);
        s1 = _mm256_fmadd_ps(qc, _mm256_load_ps(kT + c * 24 + 8), s1);
        s2 = _mm256_fmadd_ps(qc, _mm256_load_ps(kT + c * 24 + 16), s2);
      }
      _mm256_store_ps(p, _mm256_mul_ps(s0, vscale));
      _mm256_store_ps(p + 8, _mm256_mul_ps(s1, vscale));
      _mm256_store_ps(p + 16, _mm256_mul_ps(s2, vscale));
      float m = p[0];
      for (int j = 1; j < J; ++j) m = p[j] > m ? p[j] : m;
      for (int j = J; j < 24; ++j) p[j] = -3.0e38f;
      const __m256 vm = _mm256_set1_ps(m);
      __m256 e0 = exp256(_mm256_sub_ps(_mm256_load_ps(p), vm));
      __m256 e1 = exp256(_mm256_sub_ps(_mm256_load_ps(p + 8), vm));
      __m256 e2 = exp256(_mm256_sub_ps(_mm256_max_ps(_mm256_load_ps(p + 16), neg), vm));
      _mm256_store_ps(p, e0);
      _mm256_store_ps(p + 8, e1);
      _mm256_store_ps(p + 16, e2);
      float den = 0.0f;
      for (int j = 0; j < J; ++j) den += p[j];
      const float inv = 1.0f / den;
      float* oi = o + static_cast<int64_t>(i) * ldo;
      for (int c = 0; c < d; c += 8) {
        __m256 acc = _mm256_setzero_ps();
        for (int j = 0; j < J; ++j)
          acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(v + static_cast<int64_t>(j) * ld + c), acc);
        _mm256_storeu_ps(oi + c, _mm256_mul_ps(acc, _mm256_set1_ps(inv)));
      }
    }
    return;
  }
#endif
  attention_head(q, k, v, ld, J, d, scale, o, ldo);
}

struct Workspace {
  // x: the residual stream; xn: normalised rows; z: GEMM outputs (up to 3C wide); t: GELU / attention output
  std::vector<float> x, xn, z, t;
  void ensure(int64_t rows, int C) {
    const size_t n = static_cast<size_t>(rows) * C;
    if (x.size() < n) {
      x.resize(n);
      xn.resize(n);
      t.resize(n);
      z.resize(n * 3 + static_cast<size_t>(rows) * 16);
    }
  }
};

// The GraphConv epilogue for one tile: y (=|+=) A_hat z[:, :Co] + z[:, Co:2Co] + b, per pose.
void graph_conv_epilogue(const DenoiserWeights& w, int poses, const float* z, int ldz, int Co, const float* b,
                         float* y, int ldy, bool accumulate) {
  const int J = w.J;
  for (int p = 0; p < poses; ++p) {
    const float* zp = z + static_cast<int64_t>(p) * J * ldz;
    float* yp = y + static_cast<int64_t>(p) * J * ldy;
    for (int i = 0; i < J; ++i) {
      float* yi = yp + static_cast<int64_t>(i) * ldy;
      const float* si = zp + static_cast<int64_t>(i) * ldz + Co;
      if (accumulate) {
        DPF_SIMD
        for (int c = 0; c < Co; ++c) yi[c] += si[c] + b[c];
      } else {
        DPF_SIMD
        for (int c = 0; c < Co; ++c) yi[c] = si[c] + b[c];
      }
    }
    adjacency_mix(w.A, J, zp, ldz, Co, yp, ldy);
  }
}

void forward_tile(const DenoiserWeights& w, const float* h, const float* ctx, const float* emb, int64_t emb_stride,
                  int poses, float* out, Workspace& ws) {
  const int J = w.J, E = w.E, Cc = w.Cc, C = w.C, H = w.heads, d = C / H;
  const int64_t R = static_cast<int64_t>(poses) * J;
  ws.ensure(R, C);
  float *x = ws.x.data(), *xn = ws.xn.data(), *z = ws.z.data(), *t = ws.t.data();

  // input GraphConv(3 -> E) (K = 3: plain loops), concat f_ST, + f_D^k
  for (int64_t r = 0; r < R; ++r) {
    float* zr = z + r * 2 * E;
    const float* hr = h + r * 3;
    DPF_SIMD
    for (int c = 0; c < 2 * E; ++c) zr[c] = hr[0] * w.w_in[c] + hr[1] * w.w_in[2 * E + c] + hr[2] * w.w_in[4 * E + c];
  }
  graph_conv_epilogue(w, poses, z, 2 * E, E, w.b_in, x, C, false);
  for (int64_t r = 0; r < R; ++r) {
    float* xr = x + r * C;
    const float* cr = ctx + r * Cc;
    const float* er = emb + (r / J) * emb_stride;
    DPF_SIMD
    for (int c = 0; c < Cc; ++c) xr[E + c] = cr[c];
    DPF_SIMD
    for (int c = 0; c < C; ++c) xr[c] += er[c];
  }

  for (const BlockWeights& bw : w.blocks) {
    // x = x + GC2(GELU(GC1(LN1(x))))
    for (int64_t r = 0; r < R; ++r) layer_norm_row(x + r * C, C, bw.ln1_g, bw.ln1_b, xn + r * C);
    gemm_packed(R, C, 2 * C, xn, C, bw.gc1, nullptr, z, 2 * C, false);
    graph_conv_epilogue(w, poses, z, 2 * C, C, bw.gc1_b, t, C, false);
    gelu_inplace(t, R * C);
    gemm_packed(R, C, 2 * C, t, C, bw.gc2, nullptr, z, 2 * C, false);
    graph_conv_epilogue(w, poses, z, 2 * C, C, bw.gc2_b, x, C, true);
    // x = x + MHA(LN2(x))
    for (int64_t r = 0; r < R; ++r) layer_norm_row(x + r * C, C, bw.ln2_g, bw.ln2_b, xn + r * C);
    gemm_packed(R, C, 3 * C, xn, C, bw.qkv, bw.qkv_b, z, 3 * C, false);
    const float scale = 1.0f / std::sqrt(static_cast<float>(d));
    for (int p = 0; p < poses; ++p) {
      const float* zp = z + static_cast<int64_t>(p) * J * 3 * C;
      float* tp = t + static_cast<int64_t>(p) * J * C;
      for (int hd = 0; hd < H; ++hd)
        attention_head_cpu(zp + hd * d, zp + C + hd * d, zp + 2 * C + hd * d, 3 * C, J, d, scale, tp + hd * d,
                           C);
    }
    gemm_packed(R, C, C, t, C, bw.proj, bw.proj_b, x, C, true);
  }
  // out = [h +] GraphConv(C -> 3)(LN(x))
  for (int64_t r = 0; r < R; ++r) layer_norm_row(x + r * C, C, w.norm_g, w.norm_b, xn + r * C);
  gemm_packed(R, C, 16, xn, C, w.w_out, nullptr, z, 16, false);
  for (int64_t r = 0; r < R; ++r)
    for (int c = 0; c < 3; ++c) out[r * 3 + c] = (w.residual ? h[r * 3 + c] : 0.0f) + z[r * 16 + 3 + c] + w.b_out[c];
  for (int p = 0; p < poses; ++p) adjacency_mix(w.A, J, z + static_cast<int64_t>(p) * J * 16, 16, 3,
                                                out + static_cast<int64_t>(p) * J * 3, 3);
}

}  // namespace

const char* gemm_kernel_name() {
#if defined(DPF_DENOISER_AVX512)
  return "avx512f 12x32";
#elif defined(DPF_DENOISER_AVX2)
  return "avx2-fma 6x16";
#else
  return "scalar";
#endif
}

void gemm_packed(int64_t R, int K, int N, const float* A, int64_t lda, const float* P, const float* bias, float* C,
                 int64_t ldc, bool accumulate) {
#ifdef DPF_DENOISER_AVX512
  const int panels = N / 16;
  const int64_t panel_size = static_cast<int64_t>(K) * 16;
  int jp = 0;
  for (; jp + 2 <= panels; jp += 2)
    panel_rows_512<2>(R, K, A, lda, P + jp * panel_size, P + (jp + 1) * panel_size, bias ? bias + jp * 16 : nullptr,
                      C + jp * 16, ldc, accumulate);
  if (jp < panels)
    panel_rows_512<1>(R, K, A, lda, P + jp * panel_size, nullptr, bias ? bias + jp * 16 : nullptr, C + jp * 16, ldc,
                      accumulate);
#else
  for (int jp = 0; jp < N / 16; ++jp) {
    const float* Pj = P + static_cast<int64_t>(jp) * K * 16;
    const float* bj = bias ? bias + jp * 16 : nullptr;
    float* Cj = C + jp * 16;
    int64_t r = 0;
    for (; r + 6 <= R; r += 6) micro_kernel<6>(K, A + r * lda, lda, Pj, bj, Cj + r * ldc, ldc, accumulate);
    switch (R - r) {
      case 5: micro_kernel<5>(K, A + r * lda, lda, Pj, bj, Cj + r * ldc, ldc, accumulate); break;
      case 4: micro_kernel<4>(K, A + r * lda, lda, Pj, bj, Cj + r * ldc, ldc, accumulate); break;
      case 3: micro_kernel<3>(K, A + r * lda, lda, Pj, bj, Cj + r * ldc, ldc, accumulate); break;
      case 2: micro_kernel<2>(K, A + r * lda, lda, Pj, bj, Cj + r * ldc, ldc, accumulate); break;
      case 1: micro_kernel<1>(K, A + r * lda, lda, Pj, bj, Cj + r * ldc, ldc, accumulate); break;
      default: break;
    }
  }
#endif
}

void forward_cpu(const DenoiserWeights& w, const float* h, const float* ctx, const float* emb, int64_t emb_stride,
                 float* out, int64_t B, int num_threads) {
  // kPosesPerTile poses per tile, fewer when that would leave threads idle (batch 1 x N = 5 poses on 2 threads)
  const int64_t per_tile = std::max<int64_t>(1, std::min<int64_t>(kPosesPerTile, (B + num_threads - 1) / num_threads));
  const int64_t tiles = (B + per_tile - 1) / per_tile;
  const int J = w.J;
  const int threads = static_cast<int>(std::max<int64_t>(1, std::min<int64_t>(num_threads, tiles)));
#pragma omp parallel num_threads(threads)
  {
    Workspace ws;
#pragma omp for schedule(static)
    for (int64_t tile = 0; tile < tiles; ++tile) {
      const int64_t b0 = tile * per_tile;
      const int poses = static_cast<int>(std::min<int64_t>(per_tile, B - b0));
      forward_tile(w, h + b0 * J * 3, ctx + b0 * J * w.Cc, emb + b0 * emb_stride, emb_stride, poses, out + b0 * J * 3,
                   ws);
    }
  }
}

}  // namespace denoiser
}  // namespace dpf
