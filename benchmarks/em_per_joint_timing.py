"""Time one per-joint EM fit of the training hot loop (4096 mixtures x 32 samples x D = 3, M = 5, 10 iterations,
float32, one thread): native full, native diagonal, and the PyTorch reference.

    OMP_NUM_THREADS=1 python benchmarks/em_per_joint_timing.py
"""
import time, torch
from diffpose_fast.ops.gmm import native, reference
torch.set_num_threads(1)
x = torch.randn(4096, 32, 3)
resp = torch.softmax(torch.randn(4096,32,5)*3,-1)
reg = torch.full((4096,), 1e-3, dtype=torch.float32)
for it in [10]:
    native._fit_impl(x, resp, reg, True, 1, 0.0)
    t=time.time(); native._fit_impl(x, resp, reg, True, it, 0.0); print("native full", it, time.time()-t)
    t=time.time(); native._fit_impl(x, resp, reg, False, it, 0.0); print("native diag", it, time.time()-t)
    t=time.time(); reference.fit(x, resp, reg.double(), "full", it, 0.0); print("ref full", it, time.time()-t)
