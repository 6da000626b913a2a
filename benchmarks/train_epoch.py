"""Seconds per training epoch of the paper's three networks with `paper_learner`, on this machine.

MLP/MNIST: 500 steps of batch 100 (an epoch's worth, spanning one validation pass). VGG11 and PreActResNet18 on CIFAR-10: `--steps` steps of
batch 100 are timed after `--warmup` steps, then extrapolated to an epoch (450 steps of 45k images).
Run: python benchmarks/train_epoch.py [--steps 100] [--threads 2]
"""
import argparse, time, torch
from pruneloss.core import set_seed, get_device
from pruneloss.data import mnist_dls, cifar10_dls
from pruneloss.models import get_model
from pruneloss.finetune import paper_learner
from finetune import StepTimer   # benchmarks/finetune.py: times N steps after a warm-up, then stops

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
    print(f"{'model':16s} {'steps timed':>11s} {'s/step':>8s} {'steps/epoch':>11s} {'s/epoch':>9s} {'data only s/epoch':>18s}")
    for arch in a.models.split(','):
        set_seed(0)
        dls = mnist_dls(device=dev) if arch == 'MLP' else cifar10_dls(device=dev)
        learn = paper_learner(dls, get_model(arch), arch, keep_best=False)
        steps = a.steps if arch != 'MLP' else len(dls.train)
        timer = StepTimer(a.warmup, steps)
        learn.add_cb(timer)
        with learn.no_bar(), learn.no_logging(): learn.fit(3)
        spe = len(dls.train)
        t0 = time.perf_counter(); n = 0
        for xb, yb in dls.train:               # the loader alone (slicing, transfer, augmentation, normalisation)
            n += 1
            if n == steps: break
        data = (time.perf_counter() - t0) / n * spe
        print(f"{arch:16s} {steps:11d} {timer.secs:8.4f} {spe:11d} {timer.secs * spe:9.1f} {data:18.2f}")

if __name__ == '__main__': main()
