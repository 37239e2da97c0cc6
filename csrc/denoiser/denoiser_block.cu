// CUDA fused forward of the GCN-Attention denoiser (contract in csrc/denoiser/denoiser.h): one thread
// block per pose, the whole network in one launch. The pose's activations (x, LN(x), the GEMM outputs up to 3C
// wide, the GELU/attention buffer) and A_hat live in shared memory; weights are read from global memory (L2) in
// the same 16-column panel layout the CPU kernel uses; LayerNorm, GELU, the adjacency mix and the 17-token
// attention come from csrc/denoiser/denoiser_math.h (the code the CPU build tests).
// Storage type T (float, __nv_bfloat16 or __half) for the inputs h, ctx, emb, the output and the GEMM weight
// panels; A_hat, biases and LayerNorm parameters stay float32, and all arithmetic and shared memory is float32
// (half precision with float32 accumulation).
// Compiled by the normal build for sm_80/sm_90; tested only on a GPU (python_tests/test_fast_denoiser.py).
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>

#include "denoiser.h"
#include "denoiser_math.h"

namespace dpf {
namespace denoiser {
namespace {

constexpr int kMaxBlocks = 8;
constexpr int kThreads = 256;

struct DeviceWeights {
  int J, E, Cc, C, heads, nblocks;
  bool residual;
  const float *A, *w_in, *b_in;
  BlockWeights blocks[kMaxBlocks];
  const float *norm_g, *norm_b, *w_out, *b_out;
};

__device__ __forceinline__ float to_f(float v) { return v; }
__device__ __forceinline__ float to_f(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float to_f(__half v) { return __half2float(v); }
template <class T> __device__ __forceinline__ T from_f(float v);
template <> __device__ __forceinline__ float from_f<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f<__nv_bfloat16>(float v) { return __float2bfloat16(v); }
template <> __device__ __forceinline__ __half from_f<__half>(float v) { return __float2half(v); }

// out[j, n] (=|+=) sum_k in[j, k] P[k, n] + bias[n] for the J rows of one pose; P in 16-column panels.
template <class T>
__device__ void pose_gemm(const DeviceWeights& w, const float* in, int K, const float* P_, int N, const float* bias,
                          float* out, int ldo, bool accumulate) {
  const T* P = reinterpret_cast<const T*>(P_);
  const int J = w.J;
  for (int n = threadIdx.x; n < N; n += blockDim.x) {
    float acc[kMaxJoints];
    for (int j = 0; j < J; ++j) acc[j] = 0.0f;
    const T* pn = P + static_cast<int64_t>(n >> 4) * K * 16 + (n & 15);
    for (int k = 0; k < K; ++k) {
      const float b = to_f(pn[k * 16]);
      for (int j = 0; j < J; ++j) acc[j] = fmaf(in[j * K + k], b, acc[j]);
    }
    const float bn = bias ? bias[n] : 0.0f;
    for (int j = 0; j < J; ++j) out[j * ldo + n] = (accumulate ? out[j * ldo + n] : 0.0f) + acc[j] + bn;
  }
}

// y (=|+=) A z[:, :Co] + z[:, Co:2Co] + b, columns over threads.
__device__ void graph_epilogue(const DeviceWeights& w, const float* As, const float* z, int ldz, int Co,
                               const float* b, float* y, int ldy, bool accumulate) {
  const int J = w.J;
  for (int c = threadIdx.x; c < Co; c += blockDim.x)
    for (int i = 0; i < J; ++i) {
      float s = z[i * ldz + Co + c] + b[c];
      for (int j = 0; j < J; ++j) s = fmaf(As[i * J + j], z[j * ldz + c], s);
      y[i * ldy + c] = accumulate ? y[i * ldy + c] + s : s;
    }
}

template <class T>
__global__ void __launch_bounds__(kThreads) denoiser_forward_kernel(DeviceWeights w, const T* __restrict__ h,
                                                                   const T* __restrict__ ctx,
                                                                   const T* __restrict__ emb, int64_t emb_stride,
                                                                   T* __restrict__ out) {
  extern __shared__ float smem[];
  const int J = w.J, E = w.E, Cc = w.Cc, C = w.C, H = w.heads, d = C / H;
  const int64_t pose = blockIdx.x;
  float* As = smem;               // [J, J]
  float* x = As + J * J;          // [J, C]
  float* xn = x + J * C;          // [J, C]
  float* t = xn + J * C;          // [J, C]
  float* z = t + J * C;           // [J, 3C] (>= [J, 16])
  const T* hp = h + pose * J * 3;
  const T* w_in = reinterpret_cast<const T*>(w.w_in);
  for (int i = threadIdx.x; i < J * J; i += blockDim.x) As[i] = w.A[i];
  for (int i = threadIdx.x; i < J * 3; i += blockDim.x) xn[i] = to_f(hp[i]);
  __syncthreads();
  // input GraphConv(3 -> E) into x[:, :E]; context into x[:, E:]; + f_D^k
  for (int n = threadIdx.x; n < 2 * E; n += blockDim.x)
    for (int j = 0; j < J; ++j)
      z[j * 2 * E + n] = xn[j * 3] * to_f(w_in[n]) + xn[j * 3 + 1] * to_f(w_in[2 * E + n]) +
                         xn[j * 3 + 2] * to_f(w_in[4 * E + n]);
  __syncthreads();
  graph_epilogue(w, As, z, 2 * E, E, w.b_in, x, C, false);
  for (int i = threadIdx.x; i < J * Cc; i += blockDim.x) x[(i / Cc) * C + E + i % Cc] = to_f(ctx[pose * J * Cc + i]);
  __syncthreads();
  for (int i = threadIdx.x; i < J * C; i += blockDim.x) x[i] += to_f(emb[pose * emb_stride + i % C]);
  __syncthreads();
  const float scale = rsqrtf(static_cast<float>(d));
  for (int bi = 0; bi < w.nblocks; ++bi) {
    const BlockWeights& bw = w.blocks[bi];
    if (threadIdx.x < J) layer_norm_row(x + threadIdx.x * C, C, bw.ln1_g, bw.ln1_b, xn + threadIdx.x * C);
    __syncthreads();
    pose_gemm<T>(w, xn, C, bw.gc1, 2 * C, nullptr, z, 2 * C, false);
    __syncthreads();
    graph_epilogue(w, As, z, 2 * C, C, bw.gc1_b, t, C, false);
    __syncthreads();
    for (int i = threadIdx.x; i < J * C; i += blockDim.x) t[i] = gelu(t[i]);
    __syncthreads();
    pose_gemm<T>(w, t, C, bw.gc2, 2 * C, nullptr, z, 2 * C, false);
    __syncthreads();
    graph_epilogue(w, As, z, 2 * C, C, bw.gc2_b, x, C, true);
    __syncthreads();
    if (threadIdx.x < J) layer_norm_row(x + threadIdx.x * C, C, bw.ln2_g, bw.ln2_b, xn + threadIdx.x * C);
    __syncthreads();
    pose_gemm<T>(w, xn, C, bw.qkv, 3 * C, bw.qkv_b, z, 3 * C, false);
    __syncthreads();
    for (int task = threadIdx.x; task < H * J; task += blockDim.x) {
      const int hd = task / J, i = task % J;
      attention_row(z + i * 3 * C + hd * d, z + C + hd * d, z + 2 * C + hd * d, 3 * C, J, d, scale,
                    t + i * C + hd * d);
    }
    __syncthreads();
    pose_gemm<T>(w, t, C, bw.proj, C, bw.proj_b, x, C, true);
    __syncthreads();
  }
  if (threadIdx.x < J) layer_norm_row(x + threadIdx.x * C, C, w.norm_g, w.norm_b, xn + threadIdx.x * C);
  __syncthreads();
  pose_gemm<T>(w, xn, C, w.w_out, 16, nullptr, z, 16, false);
  __syncthreads();
  for (int i = threadIdx.x; i < J * 3; i += blockDim.x) {
    const int r = i / 3, c = i % 3;
    float s = z[r * 16 + 3 + c] + w.b_out[c];
    for (int j = 0; j < J; ++j) s = fmaf(As[r * J + j], z[j * 16 + c], s);
    out[pose * J * 3 + i] = from_f<T>((w.residual ? to_f(hp[i]) : 0.0f) + s);
  }
}

template <class T>
void launch(const DeviceWeights& dw, const void* h, const void* ctx, const void* emb, int64_t emb_stride, void* out,
            int64_t B, size_t smem, cudaStream_t stream) {
  cudaError_t err = cudaFuncSetAttribute(denoiser_forward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(smem));
  if (err != cudaSuccess)
    throw std::runtime_error(std::string("denoiser_forward_cuda: shared memory of ") + std::to_string(smem) +
                             " bytes refused: " + cudaGetErrorString(err));
  denoiser_forward_kernel<T><<<static_cast<unsigned>(B), kThreads, smem, stream>>>(
      dw, static_cast<const T*>(h), static_cast<const T*>(ctx), static_cast<const T*>(emb), emb_stride,
      static_cast<T*>(out));
}

}  // namespace

void forward_cuda(const DenoiserWeights& w, const void* h, const void* ctx, const void* emb, int64_t emb_stride,
                  void* out, int64_t B, int dtype, void* stream) {
  if (static_cast<int>(w.blocks.size()) > kMaxBlocks)
    throw std::invalid_argument("denoiser_forward_cuda: at most " + std::to_string(kMaxBlocks) + " blocks");
  if (B > 0x7fffffff) throw std::invalid_argument("denoiser_forward_cuda: B too large");
  DeviceWeights dw{};
  dw.J = w.J; dw.E = w.E; dw.Cc = w.Cc; dw.C = w.C; dw.heads = w.heads;
  dw.nblocks = static_cast<int>(w.blocks.size()); dw.residual = w.residual;
  dw.A = w.A; dw.w_in = w.w_in; dw.b_in = w.b_in;
  for (int i = 0; i < dw.nblocks; ++i) dw.blocks[i] = w.blocks[i];
  dw.norm_g = w.norm_g; dw.norm_b = w.norm_b; dw.w_out = w.w_out; dw.b_out = w.b_out;
  const size_t smem = sizeof(float) * (static_cast<size_t>(w.J) * w.J + static_cast<size_t>(w.J) * w.C * 6);
  cudaStream_t st = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case 0: launch<float>(dw, h, ctx, emb, emb_stride, out, B, smem, st); break;
    case 1: launch<__nv_bfloat16>(dw, h, ctx, emb, emb_stride, out, B, smem, st); break;
    case 2: launch<__half>(dw, h, ctx, emb, emb_stride, out, B, smem, st); break;
    default: throw std::invalid_argument("denoiser_forward_cuda: dtype code must be 0 (float32), 1 (bfloat16) or 2 (float16)");
  }
  const cudaError_t err = cudaGetLastError();
  if (err != cudaSuccess) throw std::runtime_error(std::string("denoiser_forward_cuda: ") + cudaGetErrorString(err));
}

}  // namespace denoiser
}  // namespace dpf
