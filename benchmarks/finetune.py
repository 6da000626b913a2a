"""Overhead of masked fine-tuning: a training step with `MaskCallback` against a dense step and against
`torch.nn.utils.prune`'s forward pre-hook (weight = weight_orig * weight_mask at every forward), measured in
one run, on the same model, data and optimiser (the paper's SGD on a fastai Learner).

Run: python benchmarks/finetune.py [--models MLP,VGG11] [--steps 100] [--repeats 5] [--threads 2]
Prints the median seconds per step of each variant and the median over repeats of its ratio to the dense step
of the same repeat (variants are interleaved within a repeat).
"""
import argparse, copy, statistics, time
import torch
from torch.nn.utils import prune as tprune
from fastai.callback.core import Callback, CancelFitException
from fastai.data.core import DataLoaders
from pruneloss.core import get_device, prunable_weights, prunable_modules
from fastai.torch_core import set_seed
from torch.utils.data import TensorDataset
from pruneloss.data import TensorDL
from pruneloss.models import get_model
from pruneloss.finetune import paper_learner, MaskCallback

class StepTimer(Callback):
    "Time `steps` training steps after `warmup` steps, then stop."
    order = 99
    def __init__(self, warmup, steps): self.warmup, self.steps = warmup, steps
    def before_fit(self): self.i, self.t0 = 0, None
    def after_batch(self):
        if not self.training: return
        self.i += 1
        if self.i == self.warmup:
            if self.dls.device.type == 'cuda': torch.cuda.synchronize()
            self.t0 = time.perf_counter()
        if self.i == self.warmup + self.steps:
            if self.dls.device.type == 'cuda': torch.cuda.synchronize()
            self.secs = (time.perf_counter() - self.t0) / self.steps
            raise CancelFitException()

def random_masks(model, sparsity=0.95, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {n: (torch.rand(p.shape, generator=g) >= sparsity).to(p.device) for n, p in prunable_weights(model).items()}

def time_variant(variant, base, masks, dls, arch, warmup, steps):
    model = copy.deepcopy(base)
    cbs = []
    if variant == 'pruneloss MaskCallback': cbs = [MaskCallback(masks)]
    elif variant == 'torch.nn.utils.prune':
        for n, m in prunable_modules(model).items(): tprune.custom_from_mask(m, 'weight', masks[n])
    timer = StepTimer(warmup, steps)
    learn = paper_learner(dls, model, arch, keep_best=False, cbs=cbs + [timer])
    with learn.no_bar(), learn.no_logging(): learn.fit(10 ** 6)
    return timer.secs

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', default='MLP,VGG11')
    ap.add_argument('--steps', type=int, default=0, help='steps timed per repeat (default: 200 for the MLP, 10 for CIFAR nets)')
    ap.add_argument('--warmup', type=int, default=3)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = get_device()
    print(f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads; batch 100, 95% of the weights masked")
    print(f"{'model':16s} {'variant':24s} {'s/step (median)':>16s} {'× dense':>8s}")
    variants = ('dense', 'pruneloss MaskCallback', 'torch.nn.utils.prune')
    for arch in a.models.split(','):
        set_seed(0)
        shape = (1, 28, 28) if arch == 'MLP' else (3, 32, 32)
        steps = a.steps or (200 if arch == 'MLP' else 10)
        n = (a.warmup + steps + 1) * 100      # one epoch covers every timed step: no validation inside the timing
        x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
        dl = lambda: TensorDL(TensorDataset(x, y), bs=100, shuffle=True, drop_last=True, device=dev)
        dls = DataLoaders(dl(), dl(), device=dev)
        base = get_model(arch).to(dev)
        masks = random_masks(base)
        times = {v: [] for v in variants}
        for r in range(a.repeats):          # interleave the variants so that machine noise hits all alike
            for v in variants: times[v].append(time_variant(v, base, masks, dls, arch, a.warmup, steps))
        med = {v: statistics.median(t) for v, t in times.items()}
        # the ratio of each repeat to the dense run of the same repeat, then the median: drift of the machine cancels
        rat = {v: statistics.median(a / b for a, b in zip(times[v], times['dense'])) for v in variants}
        for v in variants: print(f"{arch:16s} {v:24s} {med[v]:16.5f} {rat[v]:8.3f}")

if __name__ == '__main__': main()
