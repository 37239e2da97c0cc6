"""Issue 3 numbers: context vs DiffPose (DDIM 1/2/5/10 steps) on held-out synthetic data, one seed.

    OMP_NUM_THREADS=1 python benchmarks/frame_sampler_steps.py

The exact script behind the "frame pipeline" table of benchmarks/RESULTS.md (it also trains a Stand-Diff model
after the GMM one; that part was stopped before it finished in the recorded run).
"""
import time, torch, sys, json
from diffpose_fast.data.synthetic import generate_sequences
from diffpose_fast import DiffPoseLifter
torch.set_num_threads(1)
train = generate_sequences(40, 200, seed=0)
test = generate_sequences(8, 200, seed=1000)
over = dict(embed_dim=64, context_dim=64, denoiser_heads=4, encoder_layers=3, batch_size=256, gmm_samples=32, gmm_max_iter=10)
lifter = DiffPoseLifter(seed=0, **over)
t=time.time()
h = lifter.fit(train, context_steps=1500, diffusion_steps=0, progress=False)
print("ctx", time.time()-t, sum(h["context"][-50:])/50, flush=True)
enc = {k: v.clone() for k, v in lifter.model.encoder.state_dict().items()}
hist = lifter.model.depth_histogram
r = lifter.evaluate(test, sampler="context"); print("context", r["mpjpe_mm"], r["p_mpjpe_mm"], flush=True)
for name, extra in [("gmm", {}), ("stand", {"forward_process": "standard"})]:
    lf = DiffPoseLifter(seed=0, **over, **extra)
    lf.model.encoder.load_state_dict(enc)
    t=time.time()
    h = lf.fit(train, context_steps=0, diffusion_steps=800, progress=False)
    print(name, "train", time.time()-t, sum(h["diffusion"][-50:])/50, flush=True)
    for s, st in [("ddim", 5), ("ddim", 1), ("ddim", 2), ("ddim", 10)]:
        r = lf.evaluate(test, sampler=s, steps=st); print(name, s, st, r["mpjpe_mm"], r["p_mpjpe_mm"], flush=True)
    r = lf.evaluate(test, sampler="context"); print(name, "ctx-check", r["mpjpe_mm"], flush=True)
