"""Time `prune` with QM: 1, 14 and 140 stages on MLP() (1000 examples) and one stage on VGG11(), and split each
run's time between curvature (g and the diagonal GGN) and ranking + masking (saliencies, global top-k, masks).
Target: ranking and masking under 10% of a stage's time on VGG11.

    python benchmarks/pruning.py                     # all runs, CPU or CUDA (whatever `get_device` picks)
    python benchmarks/pruning.py --quick             # MLP with 1 and 14 stages only
    python benchmarks/pruning.py --fake-curvature    # random g/G instead of pruneloss.curvature: times ranking/masking only
    python benchmarks/pruning.py --threads 1         # on a small shared CPU, OpenMP threads can stall small ops
"""
import argparse, time
import torch
from pruneloss.core import get_device, n_prunable
from fastai.torch_core import set_seed
from pruneloss.models import MLP, VGG11
from pruneloss.pruning import prune

def fake_quantities(model, batches, grad=True, ggn=True, **kw):
    "Random g and G of the right shapes (for timing ranking/masking without the curvature module)."
    from pruneloss.core import prunable_weights
    ws = prunable_weights(model)
    return ({n: torch.randn_like(w) for n, w in ws.items()} if grad else None,
            {n: torch.rand_like(w) for n, w in ws.items()} if ggn else None)

def run(name, model, x_shape, n_stages, device, qfn, n_batches=1):
    set_seed(0)
    model = model.to(device).eval()
    n = 1000
    x = torch.randn(n, *x_shape, device=device); y = torch.randint(0, 10, (n,), device=device)
    data = [(xb, yb) for xb, yb in zip(x.chunk(n_batches), y.chunk(n_batches))]
    t = time.perf_counter()
    _, log = prune(model, 'QM', 0.98847 if name == 'MLP' else 0.956, n_stages=n_stages, data=data,
                   n_examples=n, progress=False, quantities_fn=qfn)
    if device.type == 'cuda': torch.cuda.synchronize(device)
    total = time.perf_counter() - t
    tq, tr = log.t_quantities.sum(), log.t_rank.sum()
    print(f"{name:6s} {n_prunable(model):>10,d} {n_stages:>6d} {total:>9.2f} {tq:>11.2f} {tr:>10.2f} {total - tq - tr:>8.2f}"
          f" {100 * tq / total:>7.1f}% {100 * tr / total:>7.1f}% {1000 * tr / n_stages:>11.1f}", flush=True)

if __name__ == '__main__':
    ap = argparse.ArgumentParser()
    ap.add_argument('--quick', action='store_true'); ap.add_argument('--fake-curvature', action='store_true')
    ap.add_argument('--device', default=None)
    ap.add_argument('--threads', type=int, default=None, help='torch CPU threads (on a busy shared CPU, 1 avoids OpenMP stalls)')
    a = ap.parse_args()
    if a.threads: torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    qfn = fake_quantities if a.fake_curvature else None
    print(f"device: {dev}, torch {torch.__version__}, threads {torch.get_num_threads()}"
          + (", FAKE curvature (random g/G): curvature column is not meaningful" if a.fake_curvature else ", exact GGN"))
    print(f"{'model':6s} {'weights':>10s} {'stages':>6s} {'total s':>9s} {'curvature s':>11s} {'rank+mask s':>10s} {'other s':>8s}"
          f" {'curv %':>8s} {'rank %':>8s} {'rank ms/stage':>11s}")
    for p in ((1, 14) if a.quick else (1, 14, 140)): run('MLP', MLP(), (1, 28, 28), p, dev, qfn)
    if not a.quick: run('VGG11', VGG11(), (3, 32, 32), 1, dev, qfn, n_batches=10)
    print("'other' = setting the masked weights and the loss on the stage's examples before/after (eval mode).")
