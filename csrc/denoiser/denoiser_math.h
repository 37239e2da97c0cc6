// Per-pose math of the fused GCN-Attention denoiser, shared by the CPU kernel (denoiser_cpu.cpp) and the CUDA
// kernel (csrc/denoiser/denoiser_block.cu): one definition of LayerNorm, exact-erf GELU, the sparse A_hat
// mix, and the 17-token attention of one head, so the CPU build (and its tests) checks the math the GPU runs.
//
// Contract (all float32, row-major, one pose = J rows):
//   layer_norm_row(x, C, g, b, y)        y = (x - mean) / sqrt(var + 1e-5) * g + b   (biased var; nn.LayerNorm)
//   gelu(x)                              0.5 x (1 + erf(x / sqrt 2))                   (F.gelu, approximate='none')
//   adjacency_mix(A, J, z, ldz, C, y, ldy)  y[i, :] += sum_j A[i, j] z[j, :]           (zeros of A skipped)
//   attention_row(qi, k, v, ld, J, d, scale, oi)       one query row of softmax(q k^T scale) v, one head
//   attention_head(q, k, v, ld, J, d, scale, o, ldo)  every row of one head of one pose
// erf and exp are polynomial approximations (|error| < 2e-7 absolute for erf, < 2 ulp-ish relative for exp):
// well inside the float32 tolerance of the tests, and free of library calls so loops vectorise.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define DPF_HD __host__ __device__ __forceinline__
#define DPF_SIMD
#define DPF_SIMD_SUM(v)
#else
#define DPF_HD inline
#define DPF_PRAGMA(x) _Pragma(#x)
#define DPF_SIMD DPF_PRAGMA(omp simd)
#define DPF_SIMD_SUM(v) DPF_PRAGMA(omp simd reduction(+ : v))
#endif

namespace dpf {
namespace denoiser {

constexpr int kMaxJoints = 32;       // the attention keeps one row of J scores on the stack
constexpr float kLayerNormEps = 1e-5f;

DPF_HD float bits_to_float(int32_t i) {
#if defined(__CUDA_ARCH__)
  return __int_as_float(i);
#else
  float f;
  std::memcpy(&f, &i, sizeof f);
  return f;
#endif
}

// e^x for x in float range (Cephes-style: x = n ln2 + r, degree-6 polynomial in r, scale by 2^n).
DPF_HD float exp_approx(float x) {
  x = x < -87.0f ? -87.0f : (x > 88.0f ? 88.0f : x);
  const float n = static_cast<float>(static_cast<int32_t>(x * 1.44269504088896341f + (x >= 0.0f ? 0.5f : -0.5f)));
  const float r = x - n * 0.693359375f + n * 2.12194440e-4f;
  float p = 1.9875691500e-4f;
  p = p * r + 1.3981999507e-3f;
  p = p * r + 8.3334519073e-3f;
  p = p * r + 4.1665795894e-2f;
  p = p * r + 1.6666665459e-1f;
  p = p * r + 5.0000001201e-1f;
  p = p * r * r + r + 1.0f;
  return p * bits_to_float((static_cast<int32_t>(n) + 127) << 23);
}

// erf(x), Abramowitz & Stegun 7.1.26 (|error| <= 1.5e-7), odd extension.
DPF_HD float erf_approx(float x) {
  const float ax = x < 0.0f ? -x : x;
  const float t = 1.0f / (1.0f + 0.3275911f * ax);
  float p = 1.061405429f;
  p = p * t - 1.453152027f;
  p = p * t + 1.421413741f;
  p = p * t - 0.284496736f;
  p = p * t + 0.254829592f;
  const float y = 1.0f - p * t * exp_approx(-ax * ax);
  return x < 0.0f ? -y : y;
}

DPF_HD float gelu(float x) { return 0.5f * x * (1.0f + erf_approx(x * 0.70710678118654752f)); }

DPF_HD float rsqrt_host(float v) {
#if defined(__CUDA_ARCH__)
  return rsqrtf(v);
#else
  return 1.0f / __builtin_sqrtf(v);
#endif
}

// One row of nn.LayerNorm(C) (two passes over x, which is in L1 or shared memory).
DPF_HD void layer_norm_row(const float* x, int C, const float* g, const float* b, float* y) {
  float s = 0.0f;
  DPF_SIMD_SUM(s)
  for (int c = 0; c < C; ++c) s += x[c];
  const float mean = s / static_cast<float>(C);
  float q = 0.0f;
  DPF_SIMD_SUM(q)
  for (int c = 0; c < C; ++c) q += (x[c] - mean) * (x[c] - mean);
  const float inv = rsqrt_host(q / static_cast<float>(C) + kLayerNormEps);
  DPF_SIMD
  for (int c = 0; c < C; ++c) y[c] = (x[c] - mean) * inv * g[c] + b[c];
}

// y[i, :] += sum_j A[i, j] z[j, :] for one pose (A [J, J] row-major; exact zeros are skipped: the skeleton's
// A_hat has about 3 non-zeros per row).
DPF_HD void adjacency_mix(const float* A, int J, const float* z, int ldz, int C, float* y, int ldy) {
  for (int i = 0; i < J; ++i) {
    float* yi = y + static_cast<int64_t>(i) * ldy;
    for (int j = 0; j < J; ++j) {
      const float a = A[i * J + j];
      if (a == 0.0f) continue;
      const float* zj = z + static_cast<int64_t>(j) * ldz;
      DPF_SIMD
      for (int c = 0; c < C; ++c) yi[c] += a * zj[c];
    }
  }
}

// o[:d] = sum_j softmax_j(scale q . k_j) v_j: one query row of one head (rows of k, v at stride ld).
DPF_HD void attention_row(const float* qi, const float* k, const float* v, int ld, int J, int d, float scale,
                          float* oi) {
  float p[kMaxJoints];
  float m = -3.0e38f;
  for (int j = 0; j < J; ++j) {
    const float* kj = k + static_cast<int64_t>(j) * ld;
    float s = 0.0f;
    DPF_SIMD_SUM(s)
    for (int c = 0; c < d; ++c) s += qi[c] * kj[c];
    s *= scale;
    p[j] = s;
    m = s > m ? s : m;
  }
  float den = 0.0f;
  for (int j = 0; j < J; ++j) {
    p[j] = exp_approx(p[j] - m);
    den += p[j];
  }
  const float inv = 1.0f / den;
  DPF_SIMD
  for (int c = 0; c < d; ++c) oi[c] = 0.0f;
  for (int j = 0; j < J; ++j) {
    const float w = p[j] * inv;
    const float* vj = v + static_cast<int64_t>(j) * ld;
    DPF_SIMD
    for (int c = 0; c < d; ++c) oi[c] += w * vj[c];
  }
}

// attention_row for every query of one head of one pose (q rows at stride ld, o rows at stride ldo).
DPF_HD void attention_head(const float* q, const float* k, const float* v, int ld, int J, int d, float scale,
                           float* o, int ldo) {
  for (int i = 0; i < J; ++i)
    attention_row(q + static_cast<int64_t>(i) * ld, k, v, ld, J, d, scale, o + static_cast<int64_t>(i) * ldo);
}

}  // namespace denoiser
}  // namespace dpf
