// Batched GMM EM on the CPU: OpenMP over the B mixtures (one mixture per loop iteration, each thread with
// its own scratch), SIMD inside a mixture. The per-GMM formulas come from csrc/gmm/gmm_math.cuh, shared with
// the CUDA kernel; this file holds the CPU's loop structure:
//   E step: per tile of kTile samples (transposed once to [D, kTile]) and per component, the deviations are
//           solved against the Cholesky factor by forward_solve_blocked (SIMD across the tile's samples, 4 rows
//           of L at a time in registers; same operations and order as the header's forward_solve);
//   M step: two passes (mass and mean; then the covariance) where the weighted scatter matrix is a
//           register-blocked C += W^T Dev over tiles of samples (6 x 8 doubles / 6 x 16 floats of SIMD
//           accumulators; lower triangle only, then mirrored).
#include <algorithm>
#include <cstring>
#include <type_traits>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <immintrin.h>
#endif

#include "gmm.h"
#include "gmm_math.cuh"

namespace dpf {
namespace gmm {

namespace {

constexpr int kTile = 16;       // samples per E-step tile (SIMD lanes across samples)
// kTile samples as a few native SIMD vectors (GCC vector types of 32 bytes: 4 AVX2 registers for double,
// 2 for float). A struct of native-width vectors, not one wide generic vector: GCC lowers the latter through
// the stack. forward_solve_blocked and the header's diag_maha run on it lane-wise.
template <class T> struct VecOf;
template <> struct VecOf<double> { typedef double type __attribute__((vector_size(32))); };
template <> struct VecOf<float> { typedef float type __attribute__((vector_size(32))); };

template <class T>
struct Lanes {
  typedef typename VecOf<T>::type vec;
  static constexpr int kPer = 32 / int(sizeof(T));
  static constexpr int kVecs = 16 / kPer;
  vec v[kVecs];
  T get(int s) const { return v[s / kPer][s % kPer]; }
  void set(int s, T x) { v[s / kPer][s % kPer] = x; }
  Lanes& operator+=(const Lanes& o) { for (int i = 0; i < kVecs; ++i) v[i] += o.v[i]; return *this; }
  Lanes& operator-=(const Lanes& o) { for (int i = 0; i < kVecs; ++i) v[i] -= o.v[i]; return *this; }
  friend Lanes operator*(const Lanes& a, const Lanes& b) { Lanes r; for (int i = 0; i < kVecs; ++i) r.v[i] = a.v[i] * b.v[i]; return r; }
  friend Lanes operator*(const Lanes& a, T b) { Lanes r; for (int i = 0; i < kVecs; ++i) r.v[i] = a.v[i] * b; return r; }
  friend Lanes operator*(T a, const Lanes& b) { Lanes r; for (int i = 0; i < kVecs; ++i) r.v[i] = a * b.v[i]; return r; }
  friend Lanes operator/(const Lanes& a, T b) { Lanes r; for (int i = 0; i < kVecs; ++i) r.v[i] = a.v[i] / b; return r; }
};
static_assert(Lanes<double>::kVecs * Lanes<double>::kPer == kTile && Lanes<float>::kVecs * Lanes<float>::kPer == kTile,
              "kTile must be a whole number of SIMD vectors");

constexpr int kScatterTile = 32;  // samples per M-step tile

// Register block of the scatter accumulation: kRows x Cols<T> accumulators (12 AVX2 registers).
constexpr int kRows = 6;
template <class T> constexpr int kCols = 64 / int(sizeof(T));  // 8 doubles or 16 floats

inline int64_t round_up(int64_t x, int64_t k) { return (x + k - 1) / k * k; }

// C[a0 + r, b0 + c] += sum_t W[t, a0 + r] Dev[t, b0 + c] for the kRows x Cols block at (a0, b0), the
// accumulators held as native SIMD vectors (kRows x kCols<T> / lanes of them).
template <class T>
inline void scatter_block(const T* __restrict W, const T* __restrict Dev, int ld, int nt, int a0, int b0,
                          T* __restrict C, int ldc) {
  typedef typename VecOf<T>::type V;
  constexpr int P = 32 / int(sizeof(T));
  constexpr int NV = kCols<T> / P;
  V acc[kRows][NV];
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NV; ++c) acc[r][c] = V{};
  for (int t = 0; t < nt; ++t) {
    const T* w = W + int64_t(t) * ld + a0;
    const T* d = Dev + int64_t(t) * ld + b0;
    V dv[NV];
    for (int c = 0; c < NV; ++c) std::memcpy(&dv[c], d + c * P, sizeof(V));
#pragma GCC unroll 8
    for (int r = 0; r < kRows; ++r) {
      const T wr = w[r];
      for (int c = 0; c < NV; ++c) acc[r][c] += wr * dv[c];
    }
  }
  for (int r = 0; r < kRows; ++r)
    for (int c = 0; c < NV; ++c) {
      T* out = C + (a0 + r) * ldc + b0 + c * P;
      V cur;
      std::memcpy(&cur, out, sizeof(V));
      cur += acc[r][c];
      std::memcpy(out, &cur, sizeof(V));
    }
}

// Forward substitution of rows [j0, j0 + R) of L for the group of kSolveVecs SIMD vectors starting at vector
// g of every Y[d] (rows < j0 already solved): row-oriented, R rows at a time with their accumulators in
// registers, so each solved Y[k] is loaded once per R rows instead of loaded and stored once per
// multiply-add. Per element the operations and their order are those of forward_solve in gmm_math.cuh
// (subtract L[j, k] y_k for k = 0 .. j-1 in order, then divide by L[j, j]; maha summed in row order).
constexpr int kSolveVecs = 2;
template <class T, int R>
inline void solve_rows(const T* __restrict L, int ldl, int j0, Lanes<T>* __restrict Y, int g,
                       typename Lanes<T>::vec* maha) {
  typedef typename Lanes<T>::vec V;
  constexpr int G = kSolveVecs;
  V acc[R][G];
  for (int r = 0; r < R; ++r)
    for (int v = 0; v < G; ++v) acc[r][v] = Y[j0 + r].v[g + v];
  const T* Lj = L + int64_t(j0) * ldl;
  for (int k = 0; k < j0; ++k) {
    V yk[G];
    for (int v = 0; v < G; ++v) yk[v] = Y[k].v[g + v];
#pragma GCC unroll 8
    for (int r = 0; r < R; ++r) {
      const T l = Lj[r * ldl + k];
      for (int v = 0; v < G; ++v) acc[r][v] -= l * yk[v];
    }
  }
#pragma GCC unroll 8
  for (int r = 0; r < R; ++r) {
    for (int k = 0; k < r; ++k) {
      const T l = Lj[r * ldl + j0 + k];
      for (int v = 0; v < G; ++v) acc[r][v] -= l * acc[k][v];
    }
    const T piv = Lj[r * ldl + j0 + r];
    for (int v = 0; v < G; ++v) {
      acc[r][v] = acc[r][v] / piv;
      maha[v] += acc[r][v] * acc[r][v];
      Y[j0 + r].v[g + v] = acc[r][v];
    }
  }
}

// Y = L^-1 Y and maha = |Y|^2 lane-wise (the CPU's blocked form of forward_solve).
template <class T>
inline void forward_solve_blocked(const T* L, int D, Lanes<T>* Y, Lanes<T>& maha) {
  constexpr int R = 4;
  static_assert(Lanes<T>::kVecs % kSolveVecs == 0, "tile must be whole solve groups");
  maha = Lanes<T>{};
  for (int g = 0; g < Lanes<T>::kVecs; g += kSolveVecs) {
    typename Lanes<T>::vec* mh = maha.v + g;
    int j0 = 0;
    for (; j0 + R <= D; j0 += R) solve_rows<T, R>(L, D, j0, Y, g, mh);
    switch (D - j0) {
      case 3: solve_rows<T, 3>(L, D, j0, Y, g, mh); break;
      case 2: solve_rows<T, 2>(L, D, j0, Y, g, mh); break;
      case 1: solve_rows<T, 1>(L, D, j0, Y, g, mh); break;
      default: break;
    }
  }
}

// Per-thread scratch, sized once per call.
template <class T>
struct Work {
  int64_t n, D, M, Dp;
  bool full;
  std::vector<T> chol;     // [M, D, D] Cholesky factors (full) or [M, D] inverse variances (diag)
  std::vector<T> cst;      // [M] log pi_m - 1/2 (D log 2 pi + log det)
  std::vector<Lanes<T>> xtile;  // [D] vectors of kTile samples (the tile transposed, padding lanes 0)
  std::vector<Lanes<T>> ytile;  // [D] vectors of kTile samples
  std::vector<T> lp;       // [kTile, M]
  std::vector<T> resp;     // [n, M] (fit only)
  std::vector<T> nk;       // [M]
  std::vector<T> scatter;  // [Dp, Dp]
  std::vector<T> dev;      // [kScatterTile, Dp], padding columns stay zero
  std::vector<T> wdev;     // [kScatterTile, Dp]

  Work(const Sizes& s, bool need_resp)
      : n(s.n), D(s.D), M(s.M), Dp(std::max(round_up(s.D, kCols<T>), round_up(s.D, kRows))), full(s.full) {
    chol.resize(full ? M * D * D : M * D);  // Cholesky factors, or inverse variances (diag)
    if (full) {
      scatter.resize(Dp * Dp);
      dev.assign(kScatterTile * Dp, T(0));
      wdev.assign(kScatterTile * Dp, T(0));
    }
    cst.resize(M);
    xtile.resize(D);
    ytile.resize(D);
    lp.resize(kTile * M);
    nk.resize(M);
    if (need_resp) resp.resize(n * M);
  }
};

// One E step for one mixture. Writes responsibilities (exp) or log responsibilities [n, M] to out;
// returns the mean log-likelihood.
template <class T>
T e_step_one(const T* X, const T* w, const T* mu, const T* cov, T floor, bool want_log, T* out, Work<T>& wk) {
  const int n = int(wk.n), D = int(wk.D), M = int(wk.M);
  for (int m = 0; m < M; ++m) {
    T log_det;
    if (wk.full) {
      T* L = wk.chol.data() + int64_t(m) * D * D;
      std::memcpy(L, cov + int64_t(m) * D * D, sizeof(T) * D * D);
      cholesky_lower(L, D, D, floor, 0, 1, NoSync{});
      log_det = chol_log_det(L, D, D);
    } else {
      T* iv = wk.chol.data() + int64_t(m) * D;
      std::memcpy(iv, cov + int64_t(m) * D, sizeof(T) * D);
      log_det = diag_prepare(iv, D, floor);
    }
    wk.cst[m] = log_gauss_const(w[m], log_det, D);
  }
  double ll_sum = 0.0;
  Lanes<T>* Y = wk.ytile.data();
  Lanes<T>* XT = wk.xtile.data();
  T* lp = wk.lp.data();
  Lanes<T> maha;
  for (int i0 = 0; i0 < n; i0 += kTile) {
    const int ns = std::min(kTile, n - i0);
    if (ns < kTile) std::fill(XT, XT + D, Lanes<T>{});
    for (int s = 0; s < ns; ++s) {
      const T* x = X + int64_t(i0 + s) * D;
      for (int d = 0; d < D; ++d) XT[d].set(s, x[d]);
    }
    for (int m = 0; m < M; ++m) {
      const T* mum = mu + int64_t(m) * D;
      for (int d = 0; d < D; ++d)
        for (int v = 0; v < Lanes<T>::kVecs; ++v) Y[d].v[v] = XT[d].v[v] - mum[d];
      if (wk.full)
        forward_solve_blocked<T>(wk.chol.data() + int64_t(m) * D * D, D, Y, maha);
      else
        diag_maha<T, Lanes<T>>(Y, 1, wk.chol.data() + int64_t(m) * D, D, maha);
      for (int s = 0; s < ns; ++s) lp[s * M + m] = wk.cst[m] - T(0.5) * maha.get(s);
    }
    for (int s = 0; s < ns; ++s) {
      T* row = lp + s * M;
      ll_sum += double(log_normalize(row, M));
      T* o = out + int64_t(i0 + s) * M;
      if (want_log)
        for (int m = 0; m < M; ++m) o[m] = row[m];
      else
        for (int m = 0; m < M; ++m) o[m] = Num<T>::exp(row[m]);
    }
  }
  return T(ll_sum / double(n));
}

// One M step for one mixture from responsibilities R [n, M].
template <class T>
void m_step_one(const T* X, const T* R, T reg, T* w, T* mu, T* cov, Work<T>& wk) {
  const int64_t n = wk.n, D = wk.D, M = wk.M;
  T* nk = wk.nk.data();
  // Pass 1: masses and means.
  std::fill(nk, nk + M, T(0));
  std::fill(mu, mu + M * D, T(0));
  for (int64_t i = 0; i < n; ++i) {
    const T* x = X + i * D;
    const T* r = R + i * M;
    for (int64_t m = 0; m < M; ++m) {
      const T rm = r[m];
      nk[m] += rm;
      T* mum = mu + m * D;
      for (int64_t d = 0; d < D; ++d) mum[d] += rm * x[d];
    }
  }
  for (int64_t m = 0; m < M; ++m) {
    nk[m] = component_mass(nk[m]);
    for (int64_t d = 0; d < D; ++d) mu[m * D + d] /= nk[m];
  }
  mixture_weights(nk, int(M), w);

  // Pass 2: covariances from the deviations to the new means.
  if (!wk.full) {
    std::fill(cov, cov + M * D, T(0));
    for (int64_t i = 0; i < n; ++i) {
      const T* x = X + i * D;
      const T* r = R + i * M;
      for (int64_t m = 0; m < M; ++m) {
        const T rm = r[m];
        const T* mum = mu + m * D;
        T* c = cov + m * D;
        for (int64_t d = 0; d < D; ++d) {
          const T dv = x[d] - mum[d];
          c[d] += rm * dv * dv;
        }
      }
    }
    for (int64_t m = 0; m < M; ++m)
      for (int64_t d = 0; d < D; ++d) cov[m * D + d] = covariance_entry(cov[m * D + d], nk[m], reg, true);
    return;
  }
  const int Dp = int(wk.Dp);
  constexpr int RB = kCols<T>;
  T* C = wk.scatter.data();
  T* dev = wk.dev.data();
  T* wdev = wk.wdev.data();
  for (int64_t m = 0; m < M; ++m) {
    const T* mum = mu + m * D;
    std::fill(C, C + int64_t(Dp) * Dp, T(0));
    for (int64_t i0 = 0; i0 < n; i0 += kScatterTile) {
      const int nt = int(std::min<int64_t>(kScatterTile, n - i0));
      for (int t = 0; t < nt; ++t) {
        const T* x = X + (i0 + t) * D;
        const T rm = R[(i0 + t) * M + m];
        T* dv = dev + int64_t(t) * Dp;
        T* wv = wdev + int64_t(t) * Dp;
        for (int64_t d = 0; d < D; ++d) {
          dv[d] = x[d] - mum[d];
          wv[d] = rm * dv[d];
        }
      }
      // Blocks that touch the lower triangle of the D x D matrix (rows up to round_up(D, kRows), columns up
      // to round_up(D, RB), both <= Dp; the padding rows and columns of W and Dev are zero).
      for (int a0 = 0; a0 < D; a0 += kRows)
        for (int b0 = 0; b0 < a0 + kRows && b0 < D; b0 += RB)
          scatter_block<T>(wdev, dev, Dp, nt, a0, b0, C, Dp);
    }
    T* cm = cov + m * D * D;
    for (int64_t a = 0; a < D; ++a)
      for (int64_t b = 0; b <= a; ++b) {
        const T v = covariance_entry(C[a * Dp + b], nk[m], reg, a == b);
        cm[a * D + b] = v;
        cm[b * D + a] = v;
      }
  }
}

// Flush denormals to zero while a kernel runs on this thread (restored on exit). Responsibilities of far
// components underflow into the denormal range within a few EM iterations, and every product with them
// then costs a microcode assist (measured: a 2.7x slower fit); their contribution is below DBL_MIN anyway.
struct DenormalsAreZero {
#if defined(__SSE2__)
  unsigned int saved = _mm_getcsr();
  DenormalsAreZero() { _mm_setcsr(saved | 0x8040u); }  // FTZ (bit 15) | DAZ (bit 6)
  ~DenormalsAreZero() { _mm_setcsr(saved); }
#endif
};

// Runs body(b, work) for every mixture b, in parallel over threads, each with its own scratch WorkT
// (Work<T>, or SmallWork<T> for the small-D path).
template <class T, class Body, class WorkT = Work<T>>
void for_each_mixture(const Sizes& s, bool need_resp, int num_threads, Body body) {
#ifdef _OPENMP
  const int threads = int(std::min<int64_t>(resolve_threads(num_threads), s.B));
  if (threads > 1) {
#pragma omp parallel num_threads(threads)
    {
      DenormalsAreZero ftz;
      WorkT wk(s, need_resp);
#pragma omp for schedule(dynamic, 1)
      for (int64_t b = 0; b < s.B; ++b) body(b, wk);
    }
    return;
  }
#endif
  (void)num_threads;
  DenormalsAreZero ftz;
  WorkT wk(s, need_resp);
  for (int64_t b = 0; b < s.B; ++b) body(b, wk);
}

inline int64_t cov_size(const Sizes& s) { return s.full ? s.M * s.D * s.D : s.M * s.D; }

// The small-dimension path (D = 1..4, the per-joint fits): dispatch_small and its kernels.
#include "gmm_cpu_small.inc"

}  // namespace

int resolve_threads(int num_threads) {
#ifdef _OPENMP
  return num_threads > 0 ? num_threads : omp_get_max_threads();
#else
  (void)num_threads;
  return 1;
#endif
}

template <class T>
void em_fit_cpu(const T* samples, const T* resp0, const T* reg, Sizes s, int max_iter, double tol, T* weights,
                T* means, T* covs, T* ll, int32_t* n_iter, uint8_t* converged, int num_threads) {
  const bool small = dispatch_small(s, [&](auto dim, auto full) {
    constexpr int D = decltype(dim)::value;
    constexpr bool Full = decltype(full)::value;
    auto body = [&](int64_t b, SmallWork<T>& wk) {
      small_fit<T, D, Full>(samples + b * s.n * s.D, resp0 + b * s.n * s.M, reg[b], max_iter, tol, weights + b * s.M,
                            means + b * s.M * s.D, covs + b * cov_size(s), ll + b, n_iter + b, converged + b, wk);
    };
    for_each_mixture<T, decltype(body), SmallWork<T>>(s, true, num_threads, body);
  });
  if (small) return;
  for_each_mixture<T>(s, true, num_threads, [&](int64_t b, Work<T>& wk) {
    const T* X = samples + b * s.n * s.D;
    T* w = weights + b * s.M;
    T* mu = means + b * s.M * s.D;
    T* cov = covs + b * cov_size(s);
    const T floor = pivot_floor(reg[b]);
    m_step_one(X, resp0 + b * s.n * s.M, reg[b], w, mu, cov, wk);
    T prev = -Num<T>::inf();
    int it_done = 0;
    bool conv = false;
    for (int it = 1; it <= max_iter; ++it) {
      const T cur = e_step_one(X, w, mu, cov, floor, false, wk.resp.data(), wk);
      m_step_one(X, wk.resp.data(), reg[b], w, mu, cov, wk);
      it_done = it;
      conv = has_converged(cur, prev, tol);
      prev = cur;
      if (conv) break;
    }
    // The reported log-likelihood is the E step at the final parameters (scikit-learn's score).
    ll[b] = e_step_one(X, w, mu, cov, floor, false, wk.resp.data(), wk);
    n_iter[b] = it_done;
    converged[b] = conv ? 1 : 0;
  });
}

template <class T>
void em_e_step_cpu(const T* samples, const T* weights, const T* means, const T* covs, Sizes s, T* log_resp,
                   T* ll, int num_threads) {
  const bool small = dispatch_small(s, [&](auto dim, auto full) {
    constexpr int D = decltype(dim)::value;
    constexpr bool Full = decltype(full)::value;
    auto body = [&](int64_t b, SmallWork<T>& wk) {
      wk.load_samples(samples + b * s.n * s.D);
      ll[b] = small_e_step<T, D, Full>(weights + b * s.M, means + b * s.M * s.D, covs + b * cov_size(s),
                                       Num<T>::tiny(), EOut::LogResp, log_resp + b * s.n * s.M, wk);
    };
    for_each_mixture<T, decltype(body), SmallWork<T>>(s, false, num_threads, body);
  });
  if (small) return;
  for_each_mixture<T>(s, false, num_threads, [&](int64_t b, Work<T>& wk) {
    ll[b] = e_step_one(samples + b * s.n * s.D, weights + b * s.M, means + b * s.M * s.D, covs + b * cov_size(s),
                       Num<T>::tiny(), true, log_resp + b * s.n * s.M, wk);
  });
}

template <class T>
void em_m_step_cpu(const T* samples, const T* resp, const T* reg, Sizes s, T* weights, T* means, T* covs,
                   int num_threads) {
  const bool small = dispatch_small(s, [&](auto dim, auto full) {
    constexpr int D = decltype(dim)::value;
    constexpr bool Full = decltype(full)::value;
    auto body = [&](int64_t b, SmallWork<T>& wk) {
      wk.load_samples(samples + b * s.n * s.D);
      wk.load_resp(resp + b * s.n * s.M);
      small_m_step<T, D, Full>(reg[b], weights + b * s.M, means + b * s.M * s.D, covs + b * cov_size(s), wk);
    };
    for_each_mixture<T, decltype(body), SmallWork<T>>(s, false, num_threads, body);
  });
  if (small) return;
  for_each_mixture<T>(s, false, num_threads, [&](int64_t b, Work<T>& wk) {
    m_step_one(samples + b * s.n * s.D, resp + b * s.n * s.M, reg[b], weights + b * s.M, means + b * s.M * s.D,
               covs + b * cov_size(s), wk);
  });
}

#define DPF_INSTANTIATE(T)                                                                                   \
  template void em_fit_cpu<T>(const T*, const T*, const T*, Sizes, int, double, T*, T*, T*, T*, int32_t*,    \
                              uint8_t*, int);                                                                \
  template void em_e_step_cpu<T>(const T*, const T*, const T*, const T*, Sizes, T*, T*, int);                 \
  template void em_m_step_cpu<T>(const T*, const T*, const T*, Sizes, T*, T*, T*, int);
DPF_INSTANTIATE(float)
DPF_INSTANTIATE(double)
#undef DPF_INSTANTIATE

}  // namespace gmm
}  // namespace dpf
