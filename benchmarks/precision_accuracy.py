"""Final test accuracy of dense training in float32 against mixed precision (bfloat16 autocast), same seeds, same recipe:
the MLP on MNIST at the budget of the MNIST pages (100 epochs; seeds 1111, 1112) and VGG11 on CIFAR-10 on a short
schedule (3 epochs on a fixed random 10k-image subset of the training split, lr 0.01; seed 1111).
One row per finished run is appended to the CSV (a rerun skips the runs already there: resumable).

    python benchmarks/precision_accuracy.py --out nbs/results/precision_accuracy.csv [--threads 1] [--only MLP]
"""
import argparse, csv, time
from pathlib import Path
import torch

RUNS = [('MLP', 1111, 100), ('MLP', 1112, 100), ('VGG11', 1111, 3)]

def subset(dls, n, seed=0):
    "`dls` with its training split cut to a fixed random subset of `n` images."
    from torch.utils.data import TensorDataset
    from pruneloss.data import TensorDL, PaperDataLoaders
    tr = dls.train; ds = tr.dataset
    idx = torch.randperm(len(ds), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    sub = TensorDL(TensorDataset(ds.tensors[0][idx], ds.tensors[1][idx]), bs=tr.bs, shuffle=True, after_batch=tr.after_batch, device=tr.device)
    out = PaperDataLoaders(sub, dls.valid, dls.test, device=dls.device); out.info, out.norm = dict(dls.info, n_train=n), dls.norm
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--threads', type=int, default=1)
    ap.add_argument('--only', help='MLP or VGG11')
    ap.add_argument('--precisions', default='fp32,bf16')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from pruneloss.data import mnist_dls, cifar10_dls
    from pruneloss.finetune import train_dense, Recipe, cpu_has_bf16
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    done = {(r['network'], int(r['seed']), r['precision']) for r in csv.DictReader(open(out))} if out.exists() else set()
    for net, seed, epochs in RUNS:
        if a.only and net != a.only: continue
        dls = mnist_dls(seed=seed) if net == 'MLP' else subset(cifar10_dls(), 10_000)
        recipe = None if net == 'MLP' else Recipe(lr=0.01, epochs=epochs, step=60)
        for prec in a.precisions.split(','):
            if (net, seed, prec) in done: continue
            t0 = time.perf_counter()
            _, rec = train_dense(net, dls, seed=seed, epochs=epochs, recipe=recipe, precision=prec, show_progress=False)
            row = dict(network=net, seed=seed, epochs=epochs, n_train=len(dls.train.dataset), precision=prec,
                       cpu_bf16=cpu_has_bf16(), best_epoch=rec['best_epoch'], valid_error=rec['valid']['error'],
                       test_error=rec['test']['error'], test_accuracy=1 - rec['test']['error'], seconds=round(time.perf_counter() - t0, 1))
            new = not out.exists()
            with open(out, 'a', newline='') as f:
                w = csv.DictWriter(f, fieldnames=list(row))
                if new: w.writeheader()
                w.writerow(row)
            print(row, flush=True)

if __name__ == '__main__': main()
