"""The unit costs that the CIFAR-10 page's compute budget is planned from, measured on this machine.

Per network (batch 100, random inputs of the right shape: the cost depends on shapes, not values):
- `step`: one training step (forward, backward, SGD with momentum and L2), train mode, float32;
- `grad`: the mean gradient alone over 100 examples (`grad_and_diag_ggn(..., ggn=False)`);
- `exact`, `mc`: gradient and diagonal GGN over 100 examples, exact and Monte-Carlo (one sampled label);
- `eval`: evaluation (inference mode) per 1000 examples, at batch 500.
Every quantity is timed in `--repeats` rounds (the quantities taking turns within a round, after one untimed warm-up
each); the median round counts. The ratios to `step` are printed beside the seconds.

Run: python benchmarks/cifar_costs.py [--models VGG11,PreActResNet18] [--threads 2] [--repeats 3] [--out costs.csv]
"""
import argparse, statistics, time
import pandas as pd
import torch
import torch.nn.functional as F
from pruneloss.core import get_device
from pruneloss.curvature import grad_and_diag_ggn
from pruneloss.data import DATA_SPECS
from pruneloss.models import get_model, NETWORKS

def _sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize(dev)

def costs(name, dev, repeats):
    "Seconds of each unit of work for network `name` (dict)."
    torch.manual_seed(0)
    shape, n_cls = DATA_SPECS[NETWORKS[name].data].input_shape, 10
    net = get_model(name).to(dev)
    x, y = torch.randn(100, *shape, device=dev), torch.randint(0, n_cls, (100,), device=dev)
    xe = torch.randn(500, *shape, device=dev)
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)
    def step():
        net.train(); opt.zero_grad(); F.cross_entropy(net(x), y).backward(); opt.step()
    def curv(estimator, ggn=True):
        net.eval(); grad_and_diag_ggn(net, [(x, y)], estimator=estimator, ggn=ggn, generator=torch.Generator(dev).manual_seed(0))
    def evaluate():
        net.eval()
        with torch.inference_mode(): net(xe); net(xe)
    units = {'step': step, 'grad': lambda: curv('exact', ggn=False), 'exact': lambda: curv('exact'), 'mc': lambda: curv('mc'),
             'eval': evaluate}
    out = {k: [] for k in units}
    for f in units.values(): f(); _sync(dev)   # warm-up
    for _ in range(repeats):
        for k, f in units.items():
            t0 = time.perf_counter(); f(); _sync(dev); out[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in out.items()}

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--models', default='VGG11,PreActResNet18')
    p.add_argument('--threads', type=int, default=2)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--device', default=None)
    p.add_argument('--out', default=None, help='a CSV file to write (one row per network, seconds)')
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    print(f"torch {torch.__version__}, {a.threads} thread(s), device {dev}; median of {a.repeats} rounds")
    rows = []
    for name in a.models.split(','):
        if name not in NETWORKS: p.error(f"{name!r} is not one of {list(NETWORKS)}")
        c = costs(name, dev, a.repeats)
        rows.append(dict(network=name, threads=a.threads, device=str(dev), step_s=c['step'], grad_per100_s=c['grad'],
                         exact_per100_s=c['exact'], mc_per100_s=c['mc'], eval_per1000_s=c['eval']))
        print(f"{name}: step {c['step']:.3f} s; per 100 examples: gradient {c['grad']:.3f} s ({c['grad'] / c['step']:.1f}× a step), "
              f"exact g+G {c['exact']:.3f} s ({c['exact'] / c['step']:.1f}×), MC g+G {c['mc']:.3f} s ({c['mc'] / c['step']:.1f}×); "
              f"evaluation {c['eval']:.3f} s per 1000 examples", flush=True)
    df = pd.DataFrame(rows)
    if a.out: df.to_csv(a.out, index=False); print(f"wrote {a.out}")

if __name__ == '__main__': main()
