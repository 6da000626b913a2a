"""Training throughput of the paper's three networks on this machine, with the references measured in the same run.

1. Precision: seconds per training step (batch 100, the paper's SGD) in fp32, bf16 autocast and fp16 autocast, each with
   and without channels_last for the CIFAR networks; the ratio to fp32 and what `precision='auto'` picks here.
2. The loop: a fastai epoch with the library's learner (`paper_learner`: StepLR, KeepBest, SeedRun, LeanRecorder, the
   precision callbacks, and MaskCallback with 95% of the weights masked) against a raw PyTorch loop doing the same
   arithmetic (torch.optim.SGD with momentum and L2, the same autocast, the masks multiplied after each step) on the
   same loader. Target: fastai / raw <= 1.1.
3. Seconds per epoch with the default settings, extrapolated from the timed steps.

Variants are interleaved within each repeat; ratios are medians over repeats of per-repeat ratios (machine drift cancels).
Run: python benchmarks/train_epoch.py [--models MLP,VGG11,PreActResNet18] [--steps 20] [--repeats 3] [--threads 2]
"""
import argparse, statistics, time
import torch
from torch import nn
import torch.nn.functional as F
from fastai.torch_core import set_seed
from pruneloss.core import get_device, prunable_weights
from pruneloss.data import mnist_dls, cifar10_dls
from pruneloss.models import get_model
from pruneloss.finetune import paper_learner, MaskCallback, PAPER_RECIPES, autocast_dtype, precision_name
from finetune import StepTimer, random_masks   # benchmarks/finetune.py

def _sync(dev):
    if dev is not None and torch.device(dev).type == 'cuda': torch.cuda.synchronize()

def fastai_step(arch, dls, precision, channels_last, warmup, steps, masks=True):
    "Seconds per step of the library's learner."
    torch.manual_seed(0); model = get_model(arch).to(dls.device)
    timer = StepTimer(warmup, steps)
    cbs = ([MaskCallback(random_masks(model))] if masks else []) + [timer]
    learn = paper_learner(dls, model, arch, keep_best=True, seed=0, precision=precision, channels_last=channels_last, cbs=cbs)
    with learn.no_bar(), learn.no_logging(): learn.fit(10 ** 6)
    return timer.secs

def raw_step(arch, dls, precision, warmup, steps):
    "Seconds per step of a plain PyTorch loop doing the same arithmetic on the same loader (library defaults: layout included)."
    torch.manual_seed(0); model = get_model(arch).to(dls.device)
    dt = autocast_dtype(precision, dls.device)
    cl = dt is not None and any(isinstance(m, nn.Conv2d) for m in model.modules())
    if cl: model = model.to(memory_format=torch.channels_last)
    r = PAPER_RECIPES[arch]
    opt = torch.optim.SGD(model.parameters(), lr=r.lr, momentum=r.mom, weight_decay=r.wd)
    ms = random_masks(model); ps = list(prunable_weights(model).values()); mv = [ms[n].to(p.dtype) for n, p in prunable_weights(model).items()]
    with torch.no_grad(): torch._foreach_mul_(ps, mv)
    model.train(); i = 0
    while True:
        for xb, yb in dls.train:
            if cl: xb = xb.contiguous(memory_format=torch.channels_last)
            with torch.autocast(dls.device.type, dtype=dt or torch.bfloat16, enabled=dt is not None):
                loss = F.cross_entropy(model(xb).float(), yb)
            opt.zero_grad(); loss.backward(); opt.step()
            with torch.no_grad(): torch._foreach_mul_(ps, mv)
            i += 1
            if i == warmup: _sync(dls.device); t0 = time.perf_counter()
            if i == warmup + steps: _sync(dls.device); return (time.perf_counter() - t0) / steps

def med_ratio(a, b): return statistics.median(x / y for x, y in zip(a, b))

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--models', default='MLP,VGG11,PreActResNet18')
    ap.add_argument('--steps', type=int, default=20, help='steps timed per measurement for the CIFAR networks (the MLP: 300)')
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--precisions', default='fp32,bf16,fp16')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = get_device()
    auto = precision_name(autocast_dtype('auto', dev))
    print(f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads; precision='auto' here means {auto}")
    for arch in a.models.split(','):
        set_seed(0)
        dls = mnist_dls(device=dev) if arch == 'MLP' else cifar10_dls(device=dev)
        steps = 300 if arch == 'MLP' else a.steps
        conv = arch != 'MLP'
        variants = [(p, cl) for p in a.precisions.split(',') for cl in ((False, True) if conv else (False,))]
        times = {v: [] for v in variants}; fa, raw = [], []
        for r in range(a.repeats):
            for v in variants: times[v].append(fastai_step(arch, dls, v[0], v[1], a.warmup, steps, masks=False))
            fa.append(fastai_step(arch, dls, 'auto', None, a.warmup, steps)); raw.append(raw_step(arch, dls, 'auto', a.warmup, steps))
        base = times[('fp32', False)]
        print(f"\n{arch} (batch 100, {steps} steps timed, {a.repeats} repeats)")
        print(f"  {'precision':22s} {'s/step':>8s} {'x fp32 speed':>13s}")
        for v in variants:
            name = v[0] + (' + channels_last' if v[1] else '')
            print(f"  {name:22s} {statistics.median(times[v]):8.4f} {med_ratio(base, times[v]):13.2f}")
        ratio = med_ratio(fa, raw)
        print(f"  fastai learner (auto = {auto}, masks, callbacks) {statistics.median(fa):.4f} s/step; raw PyTorch loop "
              f"{statistics.median(raw):.4f} s/step; fastai / raw = {ratio:.3f} (target <= 1.1)")
        print(f"  an epoch with the defaults: {statistics.median(fa) * len(dls.train):.1f} s ({len(dls.train)} steps)")

if __name__ == '__main__': main()
