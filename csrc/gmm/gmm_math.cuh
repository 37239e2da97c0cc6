// Per-GMM math of the batched EM, written once for host (g++) and device (nvcc) code.
//
// The CPU kernel (csrc/gmm/gmm_cpu.cpp) and the CUDA kernel (csrc/gmm/gmm_em.cu) both call these helpers, so the
// CPU tests exercise the Cholesky with its pivot floor, the triangular solve, the Gaussian constants, the
// log-sum-exp normalisation and the M-step finalisation that the GPU runs. The semantics are those of
// diffpose_fast/ops/gmm/reference.py (scikit-learn compatible):
//
//   log N(x | mu, Sigma) = -1/2 (D log 2 pi + log det Sigma + |L^-1 (x - mu)|^2),   Sigma = L L^T
//   log_resp[i, m] = log pi_m + log N(x_i | m) - logsumexp_m'(...)
//   n_m = sum_i r_im + 10 eps;  pi_m = n_m / sum n;  mu_m = sum_i r_im x_i / n_m
//   Sigma_m = sum_i r_im (x_i - mu_m)(x_i - mu_m)^T / n_m + reg I    (two-pass; diag: the diagonal only)
//
// Storage is row-major; matrices are [D, ld] with ld >= D. Nothing here allocates or throws.
#pragma once

#include <cfloat>
#include <cmath>

#if defined(__CUDACC__)
#define DPF_HD __host__ __device__ __forceinline__
#else
#define DPF_HD inline
#endif

namespace dpf {
namespace gmm {

// Largest sizes the CUDA kernel supports (the CPU kernel has no limit on D; M is bounded by kMaxComponents
// on both, since the per-sample component log-densities live in a fixed-size array).
constexpr int kMaxComponents = 16;
constexpr int kCudaMaxDim = 64;

constexpr double kLog2Pi = 1.8378770664093454835606594728112;

template <class T> struct Num;
template <> struct Num<float> {
  DPF_HD static float eps() { return FLT_EPSILON; }
  DPF_HD static float tiny() { return FLT_MIN; }
  DPF_HD static float max() { return FLT_MAX; }
  DPF_HD static float inf() { return HUGE_VALF; }
  DPF_HD static float sqrt(float x) { return ::sqrtf(x); }
  DPF_HD static float log(float x) { return ::logf(x); }
  DPF_HD static float exp(float x) { return ::expf(x); }
};
template <> struct Num<double> {
  DPF_HD static double eps() { return DBL_EPSILON; }
  DPF_HD static double tiny() { return DBL_MIN; }
  DPF_HD static double max() { return DBL_MAX; }
  DPF_HD static double inf() { return HUGE_VAL; }
  DPF_HD static double sqrt(double x) { return ::sqrt(x); }
  DPF_HD static double log(double x) { return ::log(x); }
  DPF_HD static double exp(double x) { return ::exp(x); }
};

// A barrier for cooperating lanes; the host passes this no-op (one lane), the device a __syncwarp wrapper.
struct NoSync {
  DPF_HD void operator()() const {}
};

// The floor under Cholesky pivots and variances: max(reg, tiny), so that a covariance that rounding made
// (semi-)indefinite, or an all-identical sample set, still gives a finite factor.
template <class T>
DPF_HD T pivot_floor(T reg) {
  return reg > Num<T>::tiny() ? reg : Num<T>::tiny();
}

// A pivot that is <= floor or not finite (NaN, inf) is clamped to the floor.
template <class T>
DPF_HD T clamp_pivot(T p, T floor) {
  return (p > floor && p <= Num<T>::max()) ? p : floor;
}

// In-place lower Cholesky factor of A [D, lda] (right-looking). Only the lower triangle (with the diagonal)
// is read and written; the strict upper triangle is left as it was. `nlanes` lanes cooperate (lane in
// [0, nlanes)); `sync` must be a barrier across them (all lanes must call this function).
template <class T, class Sync>
DPF_HD void cholesky_lower(T* A, int D, int lda, T floor, int lane, int nlanes, Sync sync) {
  for (int k = 0; k < D; ++k) {
    const T lkk = Num<T>::sqrt(clamp_pivot(A[k * lda + k], floor));
    const T inv = T(1) / lkk;
    sync();  // every lane has read A[k][k] before lane 0 overwrites it
    if (lane == 0) A[k * lda + k] = lkk;
    for (int i = k + 1 + lane; i < D; i += nlanes) A[i * lda + k] *= inv;
    sync();
    // Trailing update of the lower triangle: A[i][j] -= L[i][k] L[j][k] for k < j <= i.
    for (int i = k + 1 + lane; i < D; i += nlanes) {
      const T lik = A[i * lda + k];
      T* row = A + i * lda;
      const T* colk = A + k;
      for (int j = k + 1; j <= i; ++j) row[j] -= lik * colk[j * lda];
    }
    sync();
  }
}

// log det of L L^T from the factor's diagonal.
template <class T>
DPF_HD T chol_log_det(const T* L, int D, int ldl) {
  T s = T(0);
  for (int k = 0; k < D; ++k) s += Num<T>::log(L[k * ldl + k]);
  return T(2) * s;
}

// log pi_m - 1/2 (D log 2 pi + log det Sigma_m): the per-component constant of the weighted log-density.
template <class T>
DPF_HD T log_gauss_const(T weight, T log_det, int D) {
  return Num<T>::log(weight) - T(0.5) * (T(D) * T(kLog2Pi) + log_det);
}

// Forward substitution for a group of samples at once. V is the lane type: T on the device (one sample per
// thread), a SIMD vector of samples on the host (a GCC vector type, so that the compiler cannot vectorize
// the wrong loop). On entry Y[d * ldy] = x[d] - mu[d] (lane-wise); on exit Y = L^-1 (x - mu) and
// maha = |Y|^2. Column-oriented (axpy) order. The host calls it with ldy = 1 on a [D] array of vectors, the
// device with ldy = the block's thread count (the thread's column of a shared [D, threads] scratch).
template <class T, class V>
DPF_HD void forward_solve(const T* L, int ldl, int D, V* Y, int ldy, V& maha) {
  maha = V{};
  for (int k = 0; k < D; ++k) {
    const V yk = Y[k * ldy] / L[k * ldl + k];
    Y[k * ldy] = yk;
    maha += yk * yk;
    for (int j = k + 1; j < D; ++j) Y[j * ldy] -= L[j * ldl + k] * yk;
  }
}

// Diagonal covariance: replaces the variances var[D] in place by their inverses (variances floored) and
// returns log det Sigma.
template <class T>
DPF_HD T diag_prepare(T* var, int D, T floor) {
  T log_det = T(0);
  for (int d = 0; d < D; ++d) {
    const T v = clamp_pivot(var[d], floor);
    log_det += Num<T>::log(v);
    var[d] = T(1) / v;
  }
  return log_det;
}

// Diagonal covariance: maha = sum_d Y[d * ldy]^2 * inv_var[d] (inv_var from diag_prepare); lanes as in
// forward_solve.
template <class T, class V>
DPF_HD void diag_maha(const V* Y, int ldy, const T* inv_var, int D, V& maha) {
  maha = V{};
  for (int d = 0; d < D; ++d) maha += Y[d * ldy] * Y[d * ldy] * inv_var[d];
}

// In place: lp[m] (weighted log-densities) -> log responsibilities; returns logsumexp_m lp[m].
// If every lp[m] is -inf or NaN (the sample has no density under any component) the responsibilities are
// uniform and -inf is returned, where the reference would produce NaN.
template <class T>
DPF_HD T log_normalize(T* lp, int M) {
  T mx = -Num<T>::max();
  bool any = false;
  for (int m = 0; m < M; ++m)
    if (lp[m] >= mx) { mx = lp[m]; any = true; }
  if (!any || !(mx <= Num<T>::max())) {
    const T lu = -Num<T>::log(T(M));
    for (int m = 0; m < M; ++m) lp[m] = lu;
    return any ? mx : -Num<T>::inf();  // +inf stays +inf; no density gives -inf
  }
  T s = T(0);
  for (int m = 0; m < M; ++m) s += Num<T>::exp(lp[m] - mx);
  const T lse = mx + Num<T>::log(s);
  for (int m = 0; m < M; ++m) lp[m] -= lse;
  return lse;
}

// n_m = sum_i r_im + 10 eps (the scikit-learn guard against empty components).
template <class T>
DPF_HD T component_mass(T resp_sum) {
  return resp_sum + T(10) * Num<T>::eps();
}

// pi_m = n_m / sum_m' n_m' for the M masses in nk (written to weights).
template <class T>
DPF_HD void mixture_weights(const T* nk, int M, T* weights) {
  T total = T(0);
  for (int m = 0; m < M; ++m) total += nk[m];
  for (int m = 0; m < M; ++m) weights[m] = nk[m] / total;
}

// One covariance entry from its accumulated weighted sum: S / n_m (+ reg on the diagonal).
template <class T>
DPF_HD T covariance_entry(T weighted_sum, T nk, T reg, bool diagonal) {
  return weighted_sum / nk + (diagonal ? reg : T(0));
}

// The per-mixture stopping rule of the reference: |ll - ll_prev| < tol (false while ll_prev = -inf).
template <class T>
DPF_HD bool has_converged(T ll, T ll_prev, double tol) {
  const T change = ll - ll_prev;
  return double(change < T(0) ? -change : change) < tol;
}

}  // namespace gmm
}  // namespace dpf
