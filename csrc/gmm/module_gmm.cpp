// The pybind11 module `diffpose_fast_native`: raw-buffer entry points, no torch headers.
//
// Every array argument is an address (Python int, from tensor.data_ptr()) of a contiguous buffer; the Python
// wrapper (diffpose_fast/ops/gmm/native.py) allocates outputs and guarantees dtype, device and contiguity.
// This file re-checks the sizes before anything touches memory and raises ValueError (std::invalid_argument)
// on bad ones, so that a wrong call never aborts the process. The GIL is released while kernels run.
#include <pybind11/pybind11.h>

#include <cstdint>
#include <sstream>
#include <stdexcept>
#include <string>

#include "build_config.h"
#include "gmm.h"
#include "gmm_math.cuh"

namespace py = pybind11;
using dpf::gmm::Sizes;

namespace {

constexpr int kAbiVersion = 1;

#define DPF_STR2(x) #x
#define DPF_STR(x) DPF_STR2(x)

bool parse_dtype(const std::string& dtype, const char* fn) {
  if (dtype == "float64") return true;
  if (dtype == "float32") return false;
  throw std::invalid_argument(std::string(fn) + ": dtype must be 'float32' or 'float64', got '" + dtype + "'");
}

Sizes check_sizes(const char* fn, int64_t B, int64_t n, int64_t D, int64_t M, bool full, bool cuda) {
  std::ostringstream err;
  if (B < 1 || n < 1 || D < 1 || M < 1)
    err << fn << ": sizes must be >= 1, got B=" << B << " n=" << n << " D=" << D << " M=" << M;
  else if (M > dpf::gmm::kMaxComponents)
    err << fn << ": M=" << M << " exceeds the kernel limit of " << dpf::gmm::kMaxComponents << " components";
  else if (cuda && D > dpf::gmm::kCudaMaxDim)
    err << fn << ": D=" << D << " exceeds the CUDA kernel limit of " << dpf::gmm::kCudaMaxDim;
  else if (n > (int64_t(1) << 31) / M || D > (int64_t(1) << 20) || B > (int64_t(1) << 40))
    err << fn << ": sizes too large (B=" << B << " n=" << n << " D=" << D << " M=" << M << ")";
  const std::string msg = err.str();
  if (!msg.empty()) throw std::invalid_argument(msg);
  return Sizes{B, n, D, M, full};
}

void check_ptrs(const char* fn, std::initializer_list<std::pair<const char*, uintptr_t>> ptrs) {
  for (const auto& p : ptrs)
    if (p.second == 0) throw std::invalid_argument(std::string(fn) + ": " + p.first + " is a null pointer");
}

template <class T> T* P(uintptr_t p) { return reinterpret_cast<T*>(p); }

void em_fit_cpu(const std::string& dtype, uintptr_t samples, int64_t B, int64_t n, int64_t D, int64_t M, bool full,
                uintptr_t resp0, uintptr_t reg, int max_iter, double tol, uintptr_t weights, uintptr_t means,
                uintptr_t covs, uintptr_t ll, uintptr_t n_iter, uintptr_t converged, int num_threads) {
  const char* fn = "em_fit_cpu";
  const bool dbl = parse_dtype(dtype, fn);
  const Sizes s = check_sizes(fn, B, n, D, M, full, false);
  if (max_iter < 0) throw std::invalid_argument("em_fit_cpu: max_iter must be >= 0");
  check_ptrs(fn, {{"samples", samples}, {"resp0", resp0}, {"reg", reg}, {"weights", weights}, {"means", means},
                  {"covs", covs}, {"ll", ll}, {"n_iter", n_iter}, {"converged", converged}});
  py::gil_scoped_release release;
  if (dbl)
    dpf::gmm::em_fit_cpu<double>(P<const double>(samples), P<const double>(resp0), P<const double>(reg), s, max_iter,
                                 tol, P<double>(weights), P<double>(means), P<double>(covs), P<double>(ll),
                                 P<int32_t>(n_iter), P<uint8_t>(converged), num_threads);
  else
    dpf::gmm::em_fit_cpu<float>(P<const float>(samples), P<const float>(resp0), P<const float>(reg), s, max_iter, tol,
                                P<float>(weights), P<float>(means), P<float>(covs), P<float>(ll), P<int32_t>(n_iter),
                                P<uint8_t>(converged), num_threads);
}

void em_e_step_cpu(const std::string& dtype, uintptr_t samples, int64_t B, int64_t n, int64_t D, int64_t M,
                   bool full, uintptr_t weights, uintptr_t means, uintptr_t covs, uintptr_t log_resp, uintptr_t ll,
                   int num_threads) {
  const char* fn = "em_e_step_cpu";
  const bool dbl = parse_dtype(dtype, fn);
  const Sizes s = check_sizes(fn, B, n, D, M, full, false);
  check_ptrs(fn, {{"samples", samples}, {"weights", weights}, {"means", means}, {"covs", covs},
                  {"log_resp", log_resp}, {"ll", ll}});
  py::gil_scoped_release release;
  if (dbl)
    dpf::gmm::em_e_step_cpu<double>(P<const double>(samples), P<const double>(weights), P<const double>(means),
                                    P<const double>(covs), s, P<double>(log_resp), P<double>(ll), num_threads);
  else
    dpf::gmm::em_e_step_cpu<float>(P<const float>(samples), P<const float>(weights), P<const float>(means),
                                   P<const float>(covs), s, P<float>(log_resp), P<float>(ll), num_threads);
}

void em_m_step_cpu(const std::string& dtype, uintptr_t samples, int64_t B, int64_t n, int64_t D, int64_t M,
                   bool full, uintptr_t resp, uintptr_t reg, uintptr_t weights, uintptr_t means, uintptr_t covs,
                   int num_threads) {
  const char* fn = "em_m_step_cpu";
  const bool dbl = parse_dtype(dtype, fn);
  const Sizes s = check_sizes(fn, B, n, D, M, full, false);
  check_ptrs(fn, {{"samples", samples}, {"resp", resp}, {"reg", reg}, {"weights", weights}, {"means", means},
                  {"covs", covs}});
  py::gil_scoped_release release;
  if (dbl)
    dpf::gmm::em_m_step_cpu<double>(P<const double>(samples), P<const double>(resp), P<const double>(reg), s,
                                    P<double>(weights), P<double>(means), P<double>(covs), num_threads);
  else
    dpf::gmm::em_m_step_cpu<float>(P<const float>(samples), P<const float>(resp), P<const float>(reg), s,
                                   P<float>(weights), P<float>(means), P<float>(covs), num_threads);
}

#ifdef DIFFPOSE_FAST_WITH_CUDA
using dpf::gmm::CudaArgs;
using dpf::gmm::Mode;

void run_cuda(const char* fn, bool dbl, const Sizes& s, Mode mode, CudaArgs& a, uintptr_t stream) {
  const char* err = nullptr;
  const int64_t need = dpf::gmm::em_workspace_bytes_cuda(dbl, s, mode, &err);
  if (err) throw std::runtime_error(std::string(fn) + ": " + err);
  if (a.workspace_bytes < need || (need > 0 && a.workspace == nullptr))
    throw std::invalid_argument(std::string(fn) + ": workspace of " + std::to_string(a.workspace_bytes) +
                                " bytes is smaller than the " + std::to_string(need) + " bytes needed");
  const char* launch_err;
  {
    py::gil_scoped_release release;
    launch_err = dpf::gmm::em_launch_cuda(dbl, s, mode, a, reinterpret_cast<void*>(stream));
  }
  if (launch_err && *launch_err) throw std::runtime_error(std::string(fn) + ": " + launch_err);
}

int64_t em_workspace_bytes_cuda(const std::string& dtype, int64_t B, int64_t n, int64_t D, int64_t M, bool full,
                                int mode) {
  const char* fn = "em_workspace_bytes_cuda";
  const bool dbl = parse_dtype(dtype, fn);
  const Sizes s = check_sizes(fn, B, n, D, M, full, true);
  if (mode < 0 || mode > 2) throw std::invalid_argument("em_workspace_bytes_cuda: mode must be 0 (fit), 1 (e), 2 (m)");
  const char* err = nullptr;
  const int64_t bytes = dpf::gmm::em_workspace_bytes_cuda(dbl, s, Mode(mode), &err);
  if (err) throw std::runtime_error(std::string(fn) + ": " + err);
  return bytes;
}

void em_fit_cuda(const std::string& dtype, uintptr_t samples, int64_t B, int64_t n, int64_t D, int64_t M, bool full,
                 uintptr_t resp0, uintptr_t reg, int max_iter, double tol, uintptr_t weights, uintptr_t means,
                 uintptr_t covs, uintptr_t ll, uintptr_t n_iter, uintptr_t converged, uintptr_t workspace,
                 int64_t workspace_bytes, uintptr_t stream) {
  const char* fn = "em_fit_cuda";
  const bool dbl = parse_dtype(dtype, fn);
  const Sizes s = check_sizes(fn, B, n, D, M, full, true);
  if (max_iter < 0) throw std::invalid_argument("em_fit_cuda: max_iter must be >= 0");
  check_ptrs(fn, {{"samples", samples}, {"resp0", resp0}, {"reg", reg}, {"weights", weights}, {"means", means},
                  {"covs", covs}, {"ll", ll}, {"n_iter", n_iter}, {"converged", converged}});
  CudaArgs a{};
  a.samples = P<const void>(samples);
  a.resp_in = P<const void>(resp0);
  a.reg = P<const void>(reg);
  a.weights_out = P<void>(weights);
  a.means_out = P<void>(means);
  a.covs_out = P<void>(covs);
  a.ll_out = P<void>(ll);
  a.n_iter_out = P<int32_t>(n_iter);
  a.converged_out = P<uint8_t>(converged);
  a.max_iter = max_iter;
  a.tol = tol;
  a.workspace = P<void>(workspace);
  a.workspace_bytes = workspace_bytes;
  run_cuda(fn, dbl, s, Mode::Fit, a, stream);
}

void em_e_step_cuda(const std::string& dtype, uintptr_t samples, int64_t B, int64_t n, int64_t D, int64_t M,
                    bool full, uintptr_t weights, uintptr_t means, uintptr_t covs, uintptr_t log_resp, uintptr_t ll,
                    uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
  const char* fn = "em_e_step_cuda";
  const bool dbl = parse_dtype(dtype, fn);
  const Sizes s = check_sizes(fn, B, n, D, M, full, true);
  check_ptrs(fn, {{"samples", samples}, {"weights", weights}, {"means", means}, {"covs", covs},
                  {"log_resp", log_resp}, {"ll", ll}});
  CudaArgs a{};
  a.samples = P<const void>(samples);
  a.weights_in = P<const void>(weights);
  a.means_in = P<const void>(means);
  a.covs_in = P<const void>(covs);
  a.log_resp_out = P<void>(log_resp);
  a.ll_out = P<void>(ll);
  a.workspace = P<void>(workspace);
  a.workspace_bytes = workspace_bytes;
  run_cuda(fn, dbl, s, Mode::EStep, a, stream);
}

void em_m_step_cuda(const std::string& dtype, uintptr_t samples, int64_t B, int64_t n, int64_t D, int64_t M,
                    bool full, uintptr_t resp, uintptr_t reg, uintptr_t weights, uintptr_t means, uintptr_t covs,
                    uintptr_t workspace, int64_t workspace_bytes, uintptr_t stream) {
  const char* fn = "em_m_step_cuda";
  const bool dbl = parse_dtype(dtype, fn);
  const Sizes s = check_sizes(fn, B, n, D, M, full, true);
  check_ptrs(fn, {{"samples", samples}, {"resp", resp}, {"reg", reg}, {"weights", weights}, {"means", means},
                  {"covs", covs}});
  CudaArgs a{};
  a.samples = P<const void>(samples);
  a.resp_in = P<const void>(resp);
  a.reg = P<const void>(reg);
  a.weights_out = P<void>(weights);
  a.means_out = P<void>(means);
  a.covs_out = P<void>(covs);
  a.workspace = P<void>(workspace);
  a.workspace_bytes = workspace_bytes;
  run_cuda(fn, dbl, s, Mode::MStep, a, stream);
}
#endif

py::dict build_info() {
  py::dict d;
#ifdef DIFFPOSE_FAST_WITH_CUDA
  d["cuda_compiled"] = true;
  d["cuda_architectures"] = std::string(DIFFPOSE_FAST_CUDA_ARCHITECTURES);
  d["cuda_version"] = std::string(DIFFPOSE_FAST_CUDA_VERSION);
#else
  d["cuda_compiled"] = false;
  d["cuda_architectures"] = std::string("");
  d["cuda_version"] = std::string("");
#endif
#ifdef _OPENMP
  d["openmp"] = true;
  d["openmp_version"] = int(_OPENMP);
#else
  d["openmp"] = false;
  d["openmp_version"] = 0;
#endif
  d["compiler"] = std::string(DIFFPOSE_FAST_COMPILER);
  d["build_type"] = std::string(DIFFPOSE_FAST_BUILD_TYPE);
  d["cpu_flags"] = std::string(DIFFPOSE_FAST_CPU_FLAGS);
  d["max_components"] = dpf::gmm::kMaxComponents;
  d["cuda_max_dim"] = dpf::gmm::kCudaMaxDim;
  d["default_threads"] = dpf::gmm::resolve_threads(0);
  return d;
}

}  // namespace

PYBIND11_MODULE(diffpose_fast_native, m) {
  m.doc() = "diffpose_fast native kernels (raw buffers; see csrc/gmm/gmm.h for the contract)";
  m.attr("ABI_VERSION") = kAbiVersion;
  m.def("build_info", &build_info, "What was compiled: CUDA and its architectures, OpenMP, compiler, build type.");

  m.def("em_fit_cpu", &em_fit_cpu, py::arg("dtype"), py::arg("samples_ptr"), py::arg("B"), py::arg("n"),
        py::arg("D"), py::arg("M"), py::arg("full"), py::arg("resp0_ptr"), py::arg("reg_ptr"), py::arg("max_iter"),
        py::arg("tol"), py::arg("out_weights_ptr"), py::arg("out_means_ptr"), py::arg("out_covs_ptr"),
        py::arg("out_ll_ptr"), py::arg("out_n_iter_ptr"), py::arg("out_converged_ptr"), py::arg("num_threads") = 0,
        "EM fit of B mixtures from resp0 [B, n, M]; outputs as reference.fit (n_iter int32, converged uint8).");
  m.def("em_e_step_cpu", &em_e_step_cpu, py::arg("dtype"), py::arg("samples_ptr"), py::arg("B"), py::arg("n"),
        py::arg("D"), py::arg("M"), py::arg("full"), py::arg("weights_ptr"), py::arg("means_ptr"),
        py::arg("covs_ptr"), py::arg("out_log_resp_ptr"), py::arg("out_ll_ptr"), py::arg("num_threads") = 0,
        "One E step: log responsibilities [B, n, M] and mean log-likelihood [B].");
  m.def("em_m_step_cpu", &em_m_step_cpu, py::arg("dtype"), py::arg("samples_ptr"), py::arg("B"), py::arg("n"),
        py::arg("D"), py::arg("M"), py::arg("full"), py::arg("resp_ptr"), py::arg("reg_ptr"),
        py::arg("out_weights_ptr"), py::arg("out_means_ptr"), py::arg("out_covs_ptr"), py::arg("num_threads") = 0,
        "One M step from responsibilities [B, n, M] and reg [B].");

#ifdef DIFFPOSE_FAST_WITH_CUDA
  m.def("em_workspace_bytes_cuda", &em_workspace_bytes_cuda, py::arg("dtype"), py::arg("B"), py::arg("n"),
        py::arg("D"), py::arg("M"), py::arg("full"), py::arg("mode"),
        "Global workspace bytes the CUDA kernel needs on the current device (mode 0 fit, 1 E step, 2 M step).");
  m.def("em_fit_cuda", &em_fit_cuda, py::arg("dtype"), py::arg("samples_ptr"), py::arg("B"), py::arg("n"),
        py::arg("D"), py::arg("M"), py::arg("full"), py::arg("resp0_ptr"), py::arg("reg_ptr"), py::arg("max_iter"),
        py::arg("tol"), py::arg("out_weights_ptr"), py::arg("out_means_ptr"), py::arg("out_covs_ptr"),
        py::arg("out_ll_ptr"), py::arg("out_n_iter_ptr"), py::arg("out_converged_ptr"), py::arg("workspace_ptr"),
        py::arg("workspace_bytes"), py::arg("stream"), "CUDA twin of em_fit_cpu, asynchronous on `stream`.");
  m.def("em_e_step_cuda", &em_e_step_cuda, py::arg("dtype"), py::arg("samples_ptr"), py::arg("B"), py::arg("n"),
        py::arg("D"), py::arg("M"), py::arg("full"), py::arg("weights_ptr"), py::arg("means_ptr"),
        py::arg("covs_ptr"), py::arg("out_log_resp_ptr"), py::arg("out_ll_ptr"), py::arg("workspace_ptr"),
        py::arg("workspace_bytes"), py::arg("stream"), "CUDA twin of em_e_step_cpu.");
  m.def("em_m_step_cuda", &em_m_step_cuda, py::arg("dtype"), py::arg("samples_ptr"), py::arg("B"), py::arg("n"),
        py::arg("D"), py::arg("M"), py::arg("full"), py::arg("resp_ptr"), py::arg("reg_ptr"),
        py::arg("out_weights_ptr"), py::arg("out_means_ptr"), py::arg("out_covs_ptr"), py::arg("workspace_ptr"),
        py::arg("workspace_bytes"), py::arg("stream"), "CUDA twin of em_m_step_cpu.");
#endif
}
