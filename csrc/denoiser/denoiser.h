// Fused inference forward of GCNAttentionDenoiser (diffpose_fast/models/denoiser.py): float32 on CPU; float32,
// bfloat16 or float16 storage (float32 arithmetic) on CUDA, where h/ctx/emb/out and the GEMM panels (w_in too)
// are in the storage type and A, biases and LayerNorm parameters stay float32.
//
// Contract (every pointer is a contiguous float32 buffer; sizes are re-checked in module_denoiser.cpp):
//   h    [B, J, 3]   noisy poses             ctx [B, J, Cc]   context features f_ST
//   emb  [C] or [B, C] (emb_stride 0 or C)   the step embedding f_D^k after its MLP (precomputed per step)
//   out  [B, J, 3]   x0_hat (= h + g(...) when residual)
// Weights (DenoiserWeights): A [J, J]; input conv W_in [3, 2E] = [W_n^T | W_s^T] row-major, b_in [E]; per block
// ln1 (g, b) [C], gc1/gc2 packed [C, 2C], biases [C], ln2 (g, b), qkv packed [C, 3C] + bias [3C], proj packed
// [C, C] + bias [C]; final norm (g, b) [C]; output conv packed [C, 16] (columns 0-2 neighbour, 3-5 self, rest 0),
// b_out [3]. "Packed" = panels of 16 output columns: P[(jp * K + k) * 16 + c] = W^T[k, 16 jp + c]
// (diffpose_fast/fast/fused_denoiser.py::pack_panels).
// Work is split over OpenMP threads by groups of kPosesPerTile poses; each thread keeps its tile's activations
// in its own workspace (about 1 MB at C = 256), so weights stream from L2/L3 once per tile.
#pragma once

#include <cstdint>
#include <vector>

namespace dpf {
namespace denoiser {

constexpr int kPosesPerTile = 8;

struct BlockWeights {
  const float *ln1_g, *ln1_b, *gc1, *gc1_b, *gc2, *gc2_b, *ln2_g, *ln2_b, *qkv, *qkv_b, *proj, *proj_b;
};

struct DenoiserWeights {
  int J, E, Cc, C, heads;
  bool residual;
  const float *A, *w_in, *b_in;
  std::vector<BlockWeights> blocks;
  const float *norm_g, *norm_b, *w_out, *b_out;
};

// Number of float pointers per block in the flat pointer list taken by the module (order as in BlockWeights).
constexpr int kPointersPerBlock = 12;

void forward_cpu(const DenoiserWeights& w, const float* h, const float* ctx, const float* emb, int64_t emb_stride,
                 float* out, int64_t B, int num_threads);

// C[R, N] (=|+=) A[R, K] @ P + bias, P packed in 16-column panels (N % 16 == 0). Exposed for the tests.
void gemm_packed(int64_t R, int K, int N, const float* A, int64_t lda, const float* P, const float* bias, float* C,
                 int64_t ldc, bool accumulate);

// Which GEMM micro-kernel this build uses ("avx512f 12x32", "avx2-fma 6x16" or "scalar").
const char* gemm_kernel_name();

}  // namespace denoiser
}  // namespace dpf
