"""Resident memory of a long dense training run, epoch by epoch: the library's learner (`LeanRecorder`) against
fastai's own `Recorder` swapped back in. Writes one CSV row per epoch (epoch, rss_mb, seconds) and prints the growth.

    python benchmarks/memory.py --epochs 800 --out rss.csv [--stock-recorder] [--save mlp800.pth]

The MLP on MNIST with the paper's recipe (batch 100, lr 0.01, SGD with momentum and L2), seed 1111."""
import argparse, csv, time, resource
from pathlib import Path
import torch

def rss_mb() -> float:
    "Current resident set size of this process, in MB (from /proc)."
    for line in Path('/proc/self/status').read_text().splitlines():
        if line.startswith('VmRSS:'): return int(line.split()[1]) / 1024
    return float('nan')

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--epochs', type=int, default=800)
    ap.add_argument('--out', required=True, help='CSV file: epoch, rss_mb, seconds')
    ap.add_argument('--stock-recorder', action='store_true', help="use fastai's Recorder instead of LeanRecorder")
    ap.add_argument('--save', help='save the best-validation network as a checkpoint there')
    ap.add_argument('--seed', type=int, default=1111)
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from fastai.learner import Recorder
    from fastai.callback.core import Callback
    from fastai.torch_core import set_seed
    from pruneloss.data import mnist_dls
    from pruneloss.models import get_model
    from pruneloss.finetune import paper_learner, fit_recipe, save_checkpoint
    dls = mnist_dls(seed=a.seed)
    rows, t0 = [], time.perf_counter()
    class _RSS(Callback):
        order = 99
        def after_epoch(self):
            rows.append(dict(epoch=self.epoch, rss_mb=round(rss_mb(), 1), seconds=round(time.perf_counter() - t0, 1)))
            with open(a.out, 'w', newline='') as f:
                w = csv.DictWriter(f, fieldnames=list(rows[0])); w.writeheader(); w.writerows(rows)
    set_seed(a.seed, reproducible=True)
    learn = paper_learner(dls, get_model('MLP'), 'MLP', epochs=a.epochs, seed=a.seed, cbs=[_RSS()])
    if a.stock_recorder: learn.remove_cb(learn.recorder); learn.add_cb(Recorder())
    model, rec = fit_recipe(learn, show_progress=False)
    first, last = rows[0]['rss_mb'], rows[-1]['rss_mb']
    print(f"{'fastai Recorder' if a.stock_recorder else 'LeanRecorder'}: {a.epochs} epochs, RSS {first:.0f} MB after the first epoch, "
          f"{last:.0f} MB after the last ({(last - first) / max(len(rows) - 1, 1):+.2f} MB/epoch), peak "
          f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB; best epoch {rec['best_epoch']}, "
          f"test error {rec['test']['error']:.4f}, {rows[-1]['seconds']:.0f} s")
    if a.save: save_checkpoint(a.save, model, arch='MLP', seed=a.seed, data=dls.info, **rec)

if __name__ == '__main__': main()
