"""Seconds per training epoch of the paper's three networks with `paper_learner`, on this machine.

MLP/MNIST: whole epochs (500 steps of batch 100). VGG11 and PreActResNet18 on CIFAR-10: `--steps` steps of
batch 100 are timed after `--warmup` steps, then extrapolated to an epoch (450 steps of 45k images).
Run: python benchmarks/train_epoch.py [--steps 100] [--threads 2]
"""
import argparse, time, torch
from fastai.callback.core import Callback, CancelFitException
from pruneloss.core import set_seed, get_device
from pruneloss.data import mnist_dls, cifar10_dls
from pruneloss.models import get_model
from pruneloss.finetune import paper_learner

class StepTimer(Callback):
    "Time `steps` training steps after `warmup`, then stop fitting."
    def __init__(self, warmup, steps): self.warmup, self.steps, self.i, self.t0 = warmup, steps, 0, None
    def after_batch(self):
        if not self.training: return
        self.i += 1
        if self.i == self.warmup: self.t0 = time.perf_counter()
        if self.i == self.warmup + self.steps:
            self.secs = time.perf_counter() - self.t0
            raise CancelFitException()

def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument('--steps', type=int, default=100)
    ap.add_argument('--warmup', type=int, default=5)
    ap.add_argument('--threads', type=int, default=2)
    ap.add_argument('--models', default='MLP,VGG11,PreActResNet18')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    dev = get_device()
    print(f"device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'model':16s} {'steps timed':>11s} {'s/step':>8s} {'steps/epoch':>11s} {'s/epoch':>9s}")
    for arch in a.models.split(','):
        set_seed(0)
        dls = mnist_dls(device=dev) if arch == 'MLP' else cifar10_dls(device=dev)
        learn = paper_learner(dls, get_model(arch), arch, keep_best=False)
        timer = StepTimer(a.warmup, a.steps if arch != 'MLP' else len(dls.train))
        learn.add_cb(timer)
        with learn.no_bar(), learn.no_logging(): learn.fit(2)
        spe = len(dls.train)
        print(f"{arch:16s} {timer.steps:11d} {timer.secs / timer.steps:8.4f} {spe:11d} {timer.secs / timer.steps * spe:9.1f}")

if __name__ == '__main__': main()
