// The pybind11 module `diffpose_fast_denoiser_native`: the fused denoiser forward on raw buffers (no torch
// headers), built beside `diffpose_fast_native` by csrc/denoiser/sources.cmake. Sizes and pointers are
// re-checked here and bad ones raise ValueError; the GIL is released while kernels run.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "denoiser.h"
#include "denoiser_math.h"

namespace py = pybind11;
namespace dn = dpf::denoiser;

namespace {

constexpr int kAbiVersion = 1;

template <class T> const T* CP(uintptr_t p) { return reinterpret_cast<const T*>(p); }

dn::DenoiserWeights make_weights(const char* fn, int J, int E, int Cc, int C, int heads, bool residual,
                                 const std::vector<uintptr_t>& ptrs) {
  if (J < 1 || J > dn::kMaxJoints)
    throw std::invalid_argument(std::string(fn) + ": J=" + std::to_string(J) + " must be in [1, " +
                                std::to_string(dn::kMaxJoints) + "]");
  if (E < 1 || Cc < 0 || C != E + Cc || heads < 1 || C % heads || C % 16)
    throw std::invalid_argument(std::string(fn) + ": need C = E + Cc, C % heads == 0 and C % 16 == 0, got E=" +
                                std::to_string(E) + " Cc=" + std::to_string(Cc) + " C=" + std::to_string(C) +
                                " heads=" + std::to_string(heads));
  const size_t n = ptrs.size();
  if (n < 7 || (n - 7) % dn::kPointersPerBlock)
    throw std::invalid_argument(std::string(fn) + ": weight pointer list must hold 7 + 12 * blocks entries, got " +
                                std::to_string(n));
  for (size_t i = 0; i < n; ++i)
    if (ptrs[i] == 0) throw std::invalid_argument(std::string(fn) + ": weight pointer " + std::to_string(i) + " is null");
  dn::DenoiserWeights w;
  w.J = J; w.E = E; w.Cc = Cc; w.C = C; w.heads = heads; w.residual = residual;
  w.A = CP<float>(ptrs[0]); w.w_in = CP<float>(ptrs[1]); w.b_in = CP<float>(ptrs[2]);
  const size_t nb = (n - 7) / dn::kPointersPerBlock;
  for (size_t b = 0; b < nb; ++b) {
    const uintptr_t* q = ptrs.data() + 3 + b * dn::kPointersPerBlock;
    w.blocks.push_back(dn::BlockWeights{CP<float>(q[0]), CP<float>(q[1]), CP<float>(q[2]), CP<float>(q[3]),
                                        CP<float>(q[4]), CP<float>(q[5]), CP<float>(q[6]), CP<float>(q[7]),
                                        CP<float>(q[8]), CP<float>(q[9]), CP<float>(q[10]), CP<float>(q[11])});
  }
  const uintptr_t* q = ptrs.data() + 3 + nb * dn::kPointersPerBlock;
  w.norm_g = CP<float>(q[0]); w.norm_b = CP<float>(q[1]); w.w_out = CP<float>(q[2]); w.b_out = CP<float>(q[3]);
  return w;
}

void check_io(const char* fn, int64_t B, int64_t emb_stride, int C, std::initializer_list<uintptr_t> ptrs) {
  if (B < 1 || B > (int64_t(1) << 40)) throw std::invalid_argument(std::string(fn) + ": B must be >= 1");
  if (emb_stride != 0 && emb_stride != C)
    throw std::invalid_argument(std::string(fn) + ": emb_stride must be 0 or C=" + std::to_string(C));
  for (uintptr_t p : ptrs)
    if (p == 0) throw std::invalid_argument(std::string(fn) + ": a tensor pointer is null");
}

void denoiser_forward_cpu(uintptr_t h, uintptr_t ctx, uintptr_t emb, int64_t emb_stride, uintptr_t out, int64_t B,
                          int J, int E, int Cc, int C, int heads, bool residual, const std::vector<uintptr_t>& ptrs,
                          int num_threads) {
  const char* fn = "denoiser_forward_cpu";
  dn::DenoiserWeights w = make_weights(fn, J, E, Cc, C, heads, residual, ptrs);
  check_io(fn, B, emb_stride, C, {h, ctx, emb, out});
  py::gil_scoped_release release;
  dn::forward_cpu(w, CP<float>(h), CP<float>(ctx), CP<float>(emb), emb_stride, reinterpret_cast<float*>(out), B,
                  num_threads < 1 ? 1 : num_threads);
}

void gemm_packed_cpu(int64_t R, int K, int N, uintptr_t A, int64_t lda, uintptr_t P, uintptr_t bias, uintptr_t C,
                     int64_t ldc, bool accumulate) {
  if (R < 1 || K < 1 || N < 16 || N % 16 || lda < K || ldc < N)
    throw std::invalid_argument("gemm_packed_cpu: need R, K >= 1, N a positive multiple of 16, lda >= K, ldc >= N");
  if (!A || !P || !C) throw std::invalid_argument("gemm_packed_cpu: null pointer");
  py::gil_scoped_release release;
  dn::gemm_packed(R, K, N, CP<float>(A), lda, CP<float>(P), bias ? CP<float>(bias) : nullptr,
                  reinterpret_cast<float*>(C), ldc, accumulate);
}

#ifdef DIFFPOSE_FAST_WITH_CUDA
}  // namespace
namespace dpf { namespace denoiser {
void forward_cuda(const DenoiserWeights& w, const void* h, const void* ctx, const void* emb, int64_t emb_stride,
                  void* out, int64_t B, int dtype, void* stream);
}}  // namespace dpf::denoiser
namespace {
void denoiser_forward_cuda(uintptr_t h, uintptr_t ctx, uintptr_t emb, int64_t emb_stride, uintptr_t out, int64_t B,
                           int J, int E, int Cc, int C, int heads, bool residual, const std::vector<uintptr_t>& ptrs,
                           const std::string& dtype, uintptr_t stream) {
  const char* fn = "denoiser_forward_cuda";
  dn::DenoiserWeights w = make_weights(fn, J, E, Cc, C, heads, residual, ptrs);
  check_io(fn, B, emb_stride, C, {h, ctx, emb, out});
  const int code = dtype == "float32" ? 0 : dtype == "bfloat16" ? 1 : dtype == "float16" ? 2 : -1;
  if (code < 0)
    throw std::invalid_argument(std::string(fn) + ": dtype must be float32, bfloat16 or float16, got '" + dtype + "'");
  py::gil_scoped_release release;
  dn::forward_cuda(w, reinterpret_cast<const void*>(h), reinterpret_cast<const void*>(ctx),
                   reinterpret_cast<const void*>(emb), emb_stride, reinterpret_cast<void*>(out), B, code,
                   reinterpret_cast<void*>(stream));
}
#endif

py::dict build_info() {
  py::dict d;
  d["gemm_kernel"] = dn::gemm_kernel_name();
  d["poses_per_tile"] = dn::kPosesPerTile;
  d["max_joints"] = dn::kMaxJoints;
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
#ifdef DIFFPOSE_FAST_WITH_CUDA
  d["cuda_compiled"] = true;
#else
  d["cuda_compiled"] = false;
#endif
  return d;
}

}  // namespace

PYBIND11_MODULE(diffpose_fast_denoiser_native, m) {
  m.doc() = "diffpose_fast fused denoiser kernels (raw buffers; see csrc/denoiser/denoiser.h)";
  m.attr("ABI_VERSION") = kAbiVersion;
  m.def("build_info", &build_info);
  m.def("denoiser_forward_cpu", &denoiser_forward_cpu, py::arg("h"), py::arg("ctx"), py::arg("emb"),
        py::arg("emb_stride"), py::arg("out"), py::arg("B"), py::arg("J"), py::arg("E"), py::arg("Cc"), py::arg("C"),
        py::arg("heads"), py::arg("residual"), py::arg("weights"), py::arg("num_threads"));
  m.def("gemm_packed_cpu", &gemm_packed_cpu, py::arg("R"), py::arg("K"), py::arg("N"), py::arg("A"), py::arg("lda"),
        py::arg("P"), py::arg("bias"), py::arg("C"), py::arg("ldc"), py::arg("accumulate"));
#ifdef DIFFPOSE_FAST_WITH_CUDA
  m.def("denoiser_forward_cuda", &denoiser_forward_cuda, py::arg("h"), py::arg("ctx"), py::arg("emb"),
        py::arg("emb_stride"), py::arg("out"), py::arg("B"), py::arg("J"), py::arg("E"), py::arg("Cc"), py::arg("C"),
        py::arg("heads"), py::arg("residual"), py::arg("weights"), py::arg("dtype"), py::arg("stream"));
#endif
}
