// Batched Gaussian-mixture EM on raw buffers: the contract shared by the CPU kernels, the CUDA launchers
// and the pybind11 bindings. Semantics: diffpose_fast/ops/gmm/reference.py (and csrc/gmm/gmm_math.cuh).
//
// Every array is contiguous, row-major, of the element type T (float or double) unless noted:
//   samples   [B, n, D]
//   resp      [B, n, M]   responsibilities (M step input, fit's resp0)
//   log_resp  [B, n, M]   E step output
//   reg       [B]         reg_covar per mixture, added to the covariance diagonal
//   weights   [B, M]
//   means     [B, M, D]
//   covs      [B, M, D, D] (full) or [B, M, D] (diag)
//   ll        [B]         mean log-likelihood per sample, as scikit-learn's score
//   n_iter    [B] int32   EM iterations run
//   converged [B] uint8   1 when |ll - ll_prev| < tol stopped the mixture
// Sizes are checked by the callers in module.cpp (check_sizes) before any of these runs.
#pragma once

#include <cstdint>

namespace dpf {
namespace gmm {

struct Sizes {
  int64_t B, n, D, M;
  bool full;
};

template <class T>
void em_fit_cpu(const T* samples, const T* resp0, const T* reg, Sizes s, int max_iter, double tol,
                T* weights, T* means, T* covs, T* ll, int32_t* n_iter, uint8_t* converged, int num_threads);

template <class T>
void em_e_step_cpu(const T* samples, const T* weights, const T* means, const T* covs, Sizes s, T* log_resp,
                   T* ll, int num_threads);

template <class T>
void em_m_step_cpu(const T* samples, const T* resp, const T* reg, Sizes s, T* weights, T* means, T* covs,
                   int num_threads);

// Number of OpenMP threads a call with num_threads (<= 0: the OpenMP default) would use; 1 without OpenMP.
int resolve_threads(int num_threads);

#ifdef DIFFPOSE_FAST_WITH_CUDA
// CUDA launchers (csrc/gmm/gmm_em.cu). All pointers are device pointers; `stream` is a cudaStream_t.
// `workspace` must hold em_workspace_bytes_cuda(...) bytes (allocated by the caller, e.g. with torch, so
// that CUDA graphs capture no allocation). Return an error string, empty on success.
enum class Mode : int { Fit = 0, EStep = 1, MStep = 2 };

struct CudaArgs {
  const void* samples;
  const void* resp_in;   // Fit: resp0; MStep: resp
  const void* reg;       // Fit, MStep
  const void* weights_in;  // EStep
  const void* means_in;    // EStep
  const void* covs_in;     // EStep
  void* weights_out;
  void* means_out;
  void* covs_out;
  void* ll_out;          // Fit, EStep
  void* log_resp_out;    // EStep
  int32_t* n_iter_out;   // Fit
  uint8_t* converged_out;  // Fit
  int max_iter;
  double tol;
  void* workspace;
  int64_t workspace_bytes;
};

// Bytes of global workspace a call needs on the current device (0 when everything fits in shared memory).
int64_t em_workspace_bytes_cuda(bool is_double, Sizes s, Mode mode, const char** error);

const char* em_launch_cuda(bool is_double, Sizes s, Mode mode, const CudaArgs& args, void* stream);

// Runtime facts for build_info-like reports: the CUDA runtime version compiled against.
int cuda_runtime_version_compiled();
#endif

}  // namespace gmm
}  // namespace dpf
