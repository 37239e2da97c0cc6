// Batched GMM EM on the GPU: one thread block per mixture, every EM iteration inside the kernel.
//
// Per block (mixture b), kThreads threads:
//   M step   masses and means: one thread per (component, coordinate), summing over the samples;
//            covariances (two-pass): one thread per lower-triangle entry (m, a, c), mirrored.
//   E step   Cholesky of each component by one warp (cholesky_lower with __syncwarp), then one thread per
//            sample: deviations into the thread's column of a [D, kThreads] scratch, forward_solve<T, 1>,
//            log_normalize over the components; the mean log-likelihood by a block reduction.
// Per-GMM formulas: csrc/gmm/gmm_math.cuh, shared with the CPU kernel (csrc/gmm/gmm_cpu.cpp).
//
// Memory: the small arrays, means, covariances/factors, the solve scratch, the responsibilities and the
// samples are placed in dynamic shared memory in that order of priority while they fit under a budget of
// half the opt-in shared memory (two blocks per SM), else all of it; what does not fit goes to a global
// workspace given by the caller (samples that do not fit are read from the input directly, through L1/L2).
// Limits: D <= kCudaMaxDim (64), M <= kMaxComponents (16); n is unbounded.
#include <cuda_runtime.h>

#include <cstdint>

#include "gmm.h"
#include "gmm_math.cuh"

namespace dpf {
namespace gmm {
namespace {

constexpr int kThreads = 256;
constexpr int kWarps = kThreads / 32;

enum Arr { kSmall = 0, kMu, kCov, kY, kR, kX, kNumArr };

struct Layout {
  int64_t off[kNumArr];  // byte offset in shared memory or in the mixture's slice of the workspace
  bool in_shared[kNumArr];
  bool used[kNumArr];
  bool x_direct;            // samples read from the input (not copied)
  int64_t smem_bytes;
  int64_t global_per_mixture;
};

inline int64_t align_up(int64_t x, int64_t a) { return (x + a - 1) / a * a; }

Layout make_layout(int64_t elem, const Sizes& s, Mode mode, int64_t smem_optin) {
  const int64_t n = s.n, D = s.D, M = s.M;
  int64_t bytes[kNumArr];
  bytes[kSmall] = int64_t(kThreads) * 8 + 3 * M * elem;  // reduction (double) + cst, nk, weights
  bytes[kMu] = M * D * elem;
  bytes[kCov] = (s.full ? M * D * D : M * D) * elem;
  bytes[kY] = D * kThreads * elem;
  bytes[kR] = n * M * elem;
  bytes[kX] = n * D * elem;
  Layout lay{};
  lay.used[kSmall] = lay.used[kMu] = lay.used[kCov] = lay.used[kX] = true;
  lay.used[kY] = (mode != Mode::MStep);
  lay.used[kR] = (mode == Mode::Fit);
  const int64_t margin = 1024;  // static shared memory and alignment slack
  const int64_t essential = align_up(bytes[kSmall], 16) + align_up(bytes[kMu], 16) + align_up(bytes[kCov], 16);
  int64_t budget = smem_optin / 2 - margin;
  if (essential > budget) budget = smem_optin - margin;
  int64_t s_off = 0, g_off = 0;
  for (int a = 0; a < kNumArr; ++a) {
    if (!lay.used[a]) continue;
    const int64_t sz = align_up(bytes[a], 16);
    if (s_off + sz <= budget) {
      lay.in_shared[a] = true;
      lay.off[a] = s_off;
      s_off += sz;
    } else if (a == kX) {
      lay.x_direct = true;
    } else {
      lay.in_shared[a] = false;
      lay.off[a] = g_off;
      g_off += sz;
    }
  }
  lay.smem_bytes = s_off;
  lay.global_per_mixture = align_up(g_off, 256);
  return lay;
}

template <class T>
struct Params {
  const T* X;
  const T* resp_in;
  const T* reg;
  const T* w_in;
  const T* mu_in;
  const T* cov_in;
  T* w_out;
  T* mu_out;
  T* cov_out;
  T* ll_out;
  T* log_resp_out;
  int32_t* n_iter_out;
  uint8_t* conv_out;
  int n, D, M;
  bool full;
  int mode;
  int max_iter;
  double tol;
  Layout lay;
  unsigned char* ws;
};

struct WarpSync {
  __device__ __forceinline__ void operator()() const { __syncwarp(); }
};

// Block-wide state of one mixture (pointers into shared memory or the workspace).
template <class T>
struct Block {
  const T* X;
  T* mu;
  T* cov;
  T* y;
  T* r;
  T* cst;
  T* nk;
  T* w;
  double* red;
  int n, D, M;
  bool full;
};

template <class T>
__device__ void block_m_step(const Block<T>& k, const T* R, T reg) {
  const int tid = threadIdx.x, n = k.n, D = k.D, M = k.M;
  // Pass 1: masses (d = -1) and weighted sums of the samples.
  for (int e = tid; e < M * (D + 1); e += kThreads) {
    const int m = e / (D + 1), d = e % (D + 1) - 1;
    T s = T(0);
    if (d < 0) {
      for (int i = 0; i < n; ++i) s += R[int64_t(i) * M + m];
      k.nk[m] = s;
    } else {
      for (int i = 0; i < n; ++i) s += R[int64_t(i) * M + m] * k.X[int64_t(i) * D + d];
      k.mu[m * D + d] = s;
    }
  }
  __syncthreads();
  if (tid == 0) {
    for (int m = 0; m < M; ++m) k.nk[m] = component_mass(k.nk[m]);
    mixture_weights(k.nk, M, k.w);
  }
  __syncthreads();
  for (int e = tid; e < M * D; e += kThreads) k.mu[e] /= k.nk[e / D];
  __syncthreads();
  // Pass 2: covariances from the deviations to the new means.
  if (k.full) {
    for (int e = tid; e < M * D * D; e += kThreads) {
      const int m = e / (D * D), a = (e / D) % D, c = e % D;
      if (c > a) continue;
      const T mua = k.mu[m * D + a], muc = k.mu[m * D + c];
      T s = T(0);
      for (int i = 0; i < n; ++i) {
        const T* x = k.X + int64_t(i) * D;
        s += (R[int64_t(i) * M + m] * (x[a] - mua)) * (x[c] - muc);
      }
      const T v = covariance_entry(s, k.nk[m], reg, a == c);
      k.cov[m * D * D + a * D + c] = v;
      k.cov[m * D * D + c * D + a] = v;
    }
  } else {
    for (int e = tid; e < M * D; e += kThreads) {
      const int m = e / D, d = e % D;
      const T mud = k.mu[e];
      T s = T(0);
      for (int i = 0; i < n; ++i) {
        const T dv = k.X[int64_t(i) * D + d] - mud;
        s += (R[int64_t(i) * M + m] * dv) * dv;
      }
      k.cov[e] = covariance_entry(s, k.nk[m], reg, true);
    }
  }
  __syncthreads();
}

// Cholesky factors (full) or inverse variances (diag), in place of the covariances, and the
// per-component constants.
template <class T>
__device__ void block_prepare_e(const Block<T>& k, T floor) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, D = k.D;
  for (int m = warp; m < k.M; m += kWarps) {
    T log_det;
    if (k.full) {
      T* L = k.cov + m * D * D;
      cholesky_lower(L, D, D, floor, lane, 32, WarpSync{});
      log_det = chol_log_det(L, D, D);
    } else {
      log_det = T(0);
      if (lane == 0) log_det = diag_prepare(k.cov + m * D, D, floor);  // variances -> inverse variances
    }
    if (lane == 0) k.cst[m] = log_gauss_const(k.w[m], log_det, D);
  }
  __syncthreads();
}

// One E step after block_prepare_e: responsibilities (or their logs) to out [n, M]; returns the mean ll.
template <class T>
__device__ T block_e_step(const Block<T>& k, T* out, bool want_log) {
  const int tid = threadIdx.x, n = k.n, D = k.D, M = k.M;
  T* y = k.y + tid;  // this thread's column of the [D, kThreads] scratch
  double acc = 0.0;
  for (int i = tid; i < n; i += kThreads) {
    T lp[kMaxComponents];
    const T* x = k.X + int64_t(i) * D;
    for (int m = 0; m < M; ++m) {
      const T* mum = k.mu + m * D;
      for (int d = 0; d < D; ++d) y[d * kThreads] = x[d] - mum[d];
      T maha;
      if (k.full)
        forward_solve<T, T>(k.cov + m * D * D, D, D, y, kThreads, maha);
      else
        diag_maha<T, T>(y, kThreads, k.cov + m * D, D, maha);
      lp[m] = k.cst[m] - T(0.5) * maha;
    }
    acc += double(log_normalize(lp, M));
    T* o = out + int64_t(i) * M;
    for (int m = 0; m < M; ++m) o[m] = want_log ? lp[m] : Num<T>::exp(lp[m]);
  }
  k.red[tid] = acc;
  __syncthreads();
  for (int s = kThreads / 2; s > 0; s >>= 1) {
    if (tid < s) k.red[tid] += k.red[tid + s];
    __syncthreads();
  }
  const T ll = T(k.red[0] / double(n));
  __syncthreads();  // k.red is reused by the next step
  return ll;
}

template <class T>
__device__ void block_copy(T* dst, const T* src, int64_t count) {
  for (int64_t e = threadIdx.x; e < count; e += kThreads) dst[e] = src[e];
}

template <class T>
__global__ void __launch_bounds__(kThreads) gmm_em_kernel(Params<T> p) {
  extern __shared__ __align__(16) unsigned char smem[];
  const int64_t b = blockIdx.x;
  const int n = p.n, D = p.D, M = p.M;
  const int64_t cov_size = p.full ? int64_t(M) * D * D : int64_t(M) * D;
  unsigned char* gbase = p.ws + b * p.lay.global_per_mixture;
  auto at = [&](int a) -> unsigned char* { return (p.lay.in_shared[a] ? smem : gbase) + p.lay.off[a]; };

  Block<T> k;
  k.n = n;
  k.D = D;
  k.M = M;
  k.full = p.full;
  const T* Xg = p.X + b * int64_t(n) * D;
  if (p.lay.x_direct) {
    k.X = Xg;
  } else {
    T* xs = reinterpret_cast<T*>(at(kX));
    block_copy(xs, Xg, int64_t(n) * D);
    k.X = xs;
  }
  k.mu = reinterpret_cast<T*>(at(kMu));
  k.cov = reinterpret_cast<T*>(at(kCov));
  k.y = p.lay.used[kY] ? reinterpret_cast<T*>(at(kY)) : nullptr;
  k.r = p.lay.used[kR] ? reinterpret_cast<T*>(at(kR)) : nullptr;
  k.red = reinterpret_cast<double*>(at(kSmall));
  k.cst = reinterpret_cast<T*>(k.red + kThreads);
  k.nk = k.cst + M;
  k.w = k.nk + M;
  __syncthreads();

  if (p.mode == int(Mode::EStep)) {
    block_copy(k.w, p.w_in + b * M, M);
    block_copy(k.mu, p.mu_in + b * int64_t(M) * D, int64_t(M) * D);
    block_copy(k.cov, p.cov_in + b * cov_size, cov_size);
    __syncthreads();
    const T floor = Num<T>::tiny();
    block_prepare_e(k, floor);
    const T ll = block_e_step(k, p.log_resp_out + b * int64_t(n) * M, true);
    if (threadIdx.x == 0) p.ll_out[b] = ll;
    return;
  }

  const T reg = p.reg[b];
  block_m_step(k, p.resp_in + b * int64_t(n) * M, reg);
  if (p.mode == int(Mode::Fit)) {
    const T floor = pivot_floor(reg);
    T prev = -Num<T>::inf();
    int it_done = 0;
    bool conv = false;
    for (int it = 1; it <= p.max_iter; ++it) {
      block_prepare_e(k, floor);
      const T cur = block_e_step(k, k.r, false);
      block_m_step(k, k.r, reg);
      it_done = it;
      conv = has_converged(cur, prev, p.tol);  // cur is the same in every thread: a uniform break
      prev = cur;
      if (conv) break;
    }
    block_copy(p.w_out + b * M, k.w, M);
    block_copy(p.mu_out + b * int64_t(M) * D, k.mu, int64_t(M) * D);
    block_copy(p.cov_out + b * cov_size, k.cov, cov_size);
    __syncthreads();
    block_prepare_e(k, floor);
    const T ll = block_e_step(k, k.r, false);  // scikit-learn's score at the final parameters
    if (threadIdx.x == 0) {
      p.ll_out[b] = ll;
      p.n_iter_out[b] = it_done;
      p.conv_out[b] = conv ? 1 : 0;
    }
    return;
  }
  // Mode::MStep
  block_copy(p.w_out + b * M, k.w, M);
  block_copy(p.mu_out + b * int64_t(M) * D, k.mu, int64_t(M) * D);
  block_copy(p.cov_out + b * cov_size, k.cov, cov_size);
}

const char* device_optin_smem(int64_t* out) {
  int dev = 0;
  cudaError_t err = cudaGetDevice(&dev);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  int optin = 0;
  err = cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev);
  if (err != cudaSuccess) return cudaGetErrorString(err);
  *out = optin;
  return nullptr;
}

template <class T>
const char* launch(Sizes s, Mode mode, const CudaArgs& a, cudaStream_t stream) {
  if (s.B > 0x7fffffffLL) return "B exceeds the CUDA grid limit of 2^31 - 1 mixtures";
  if (s.D > kCudaMaxDim || s.M > kMaxComponents) return "D or M beyond the CUDA kernel's limits";
  int64_t optin = 0;
  if (const char* err = device_optin_smem(&optin)) return err;
  Params<T> p{};
  p.X = static_cast<const T*>(a.samples);
  p.resp_in = static_cast<const T*>(a.resp_in);
  p.reg = static_cast<const T*>(a.reg);
  p.w_in = static_cast<const T*>(a.weights_in);
  p.mu_in = static_cast<const T*>(a.means_in);
  p.cov_in = static_cast<const T*>(a.covs_in);
  p.w_out = static_cast<T*>(a.weights_out);
  p.mu_out = static_cast<T*>(a.means_out);
  p.cov_out = static_cast<T*>(a.covs_out);
  p.ll_out = static_cast<T*>(a.ll_out);
  p.log_resp_out = static_cast<T*>(a.log_resp_out);
  p.n_iter_out = a.n_iter_out;
  p.conv_out = a.converged_out;
  p.n = int(s.n);
  p.D = int(s.D);
  p.M = int(s.M);
  p.full = s.full;
  p.mode = int(mode);
  p.max_iter = a.max_iter;
  p.tol = a.tol;
  p.lay = make_layout(sizeof(T), s, mode, optin);
  p.ws = static_cast<unsigned char*>(a.workspace);
  cudaError_t err = cudaFuncSetAttribute(gmm_em_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(p.lay.smem_bytes));
  if (err != cudaSuccess) return cudaGetErrorString(err);
  gmm_em_kernel<T><<<unsigned(s.B), kThreads, size_t(p.lay.smem_bytes), stream>>>(p);
  err = cudaGetLastError();
  if (err != cudaSuccess) return cudaGetErrorString(err);
  return "";
}

}  // namespace

int64_t em_workspace_bytes_cuda(bool is_double, Sizes s, Mode mode, const char** error) {
  int64_t optin = 0;
  if (const char* err = device_optin_smem(&optin)) {
    *error = err;
    return 0;
  }
  const Layout lay = make_layout(is_double ? 8 : 4, s, mode, optin);
  return s.B * lay.global_per_mixture;
}

const char* em_launch_cuda(bool is_double, Sizes s, Mode mode, const CudaArgs& args, void* stream) {
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  return is_double ? launch<double>(s, mode, args, st) : launch<float>(s, mode, args, st);
}

int cuda_runtime_version_compiled() { return CUDART_VERSION; }

}  // namespace gmm
}  // namespace dpf
