"""Gradual pruning during training (GradualPruning, AGP schedule) against post-training staged pruning + fine-tuning,
the paper's MLP on MNIST at kappa = 1 - 0.8**20, the same total number of epochs for every run.

- gradual-<C>: train from scratch for --epochs epochs; AGP from epoch --start to --end (one update per epoch),
  criterion C (MP, OBD, LM, QM; lambda = --lam) on --n-examples fresh training examples per update (exact GGN).
- post-<C>: train dense for --dense-epochs epochs, prune in stages with `prune` (MP: one stage; OBD/LM/QM:
  --stages geometric stages, exact GGN on --n-examples examples per stage), fine-tune the rest of the epochs with the mask.
Both use the paper's SGD (lr 0.01, momentum 0.9, weight decay 5e-4, batch 100) and report the LAST epoch
(no best-epoch selection: a gradual run's best-validation epoch could be a less sparse one).
Measured at the end: loss and error on the whole training split (eval mode, no augmentation), validation and test.
One row per finished run is appended to the CSV (a rerun skips the runs already there: resumable).

    OMP_NUM_THREADS=1 python benchmarks/gradual_mnist.py --out nbs/results/gradual_mnist.csv [--seeds 1111 1112 1113]
    # a smoke test: --n-train 2000 --epochs 3 --start 0 --end 2 --dense-epochs 1 --stages 3 --out /tmp/g.csv
"""
import argparse, copy, csv, math, os, time
from pathlib import Path
import torch
from precision_accuracy import subset   # benchmarks/precision_accuracy.py: a fixed random subset of the training split

CRITERIA = ('MP', 'LM', 'QM', 'OBD')
FIELDS = ['kind', 'criterion', 'lam', 'seed', 'epochs', 'n_train', 'dense_epochs', 'stages', 'start', 'end', 'n_examples',
          'target_sparsity', 'sparsity', 'loss_after_prune', 'train_loss', 'train_error', 'valid_loss', 'valid_error',
          'test_loss', 'test_error', 't_curvature', 'seconds']

def measure(model, dls) -> dict:
    from pruneloss.core import evaluate
    out = {}
    for split in ('train', 'valid', 'test'):
        r = evaluate(model, dls.eval_dl(split)); out[f'{split}_loss'], out[f'{split}_error'] = r['loss'], r['error']
    return out

def fit(learn, epochs):
    with learn.no_bar(), learn.no_logging(): learn.fit(epochs)
    return learn.model

def append_row(out:Path, row:dict):
    "Append `row` to the CSV, atomically (the whole file rewritten to a temporary file, then renamed)."
    rows = list(csv.DictReader(open(out))) if out.exists() else []
    tmp = out.with_suffix('.tmp')
    with open(tmp, 'w', newline='') as f:
        w = csv.DictWriter(f, FIELDS); w.writeheader(); w.writerows(rows + [{k: row.get(k, '') for k in FIELDS}])
    os.replace(tmp, out)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--out', required=True)
    ap.add_argument('--seeds', type=int, nargs='+', default=[1111, 1112, 1113])
    ap.add_argument('--criteria', nargs='+', default=list(CRITERIA))
    ap.add_argument('--kinds', nargs='+', default=['gradual', 'post'])
    ap.add_argument('--epochs', type=int, default=30, help='total epochs of every run')
    ap.add_argument('--start', type=float, default=1, help='gradual: first AGP update (epoch)')
    ap.add_argument('--end', type=float, default=20, help='gradual: last AGP update, where the final sparsity is reached')
    ap.add_argument('--dense-epochs', type=int, default=15, help='post: dense epochs before pruning (fine-tuning gets the rest)')
    ap.add_argument('--stages', type=int, default=20, help='post: geometric stages for OBD/LM/QM')
    ap.add_argument('--lam', type=float, default=0.)
    ap.add_argument('--n-examples', type=int, default=1000)
    ap.add_argument('--n-train', type=int, default=None, help='cut the training split (smoke tests)')
    ap.add_argument('--threads', type=int, default=1)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from pruneloss.core import n_prunable, get_device
    from fastai.torch_core import set_seed
    from pruneloss.data import mnist_dls, ExampleSampler, cache_dir
    from pruneloss.models import MLP
    from pruneloss.pruning import prune
    from pruneloss.finetune import paper_learner, MaskCallback, save_checkpoint, load_checkpoint
    from pruneloss.gradual import GradualPruning, AGP
    kappa = 1 - 0.8**20
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    key = lambda r: (r['kind'], r['criterion'], int(r['seed']), int(r['epochs']), str(r['n_train']))
    done = {key(r) for r in csv.DictReader(open(out))} if out.exists() else set()
    n_tr = '' if a.n_train is None else a.n_train
    common = dict(lam=a.lam, epochs=a.epochs, n_train=n_tr, n_examples=a.n_examples, target_sparsity=kappa)
    for seed in a.seeds:
        dls = mnist_dls(seed=seed, device='cpu')
        if a.n_train: dls = subset(dls, a.n_train)
        dense = None
        for kind in a.kinds:
            for crit in a.criteria:
                if (kind, crit, seed, a.epochs, str(n_tr)) in done: continue
                t0 = time.perf_counter()
                if kind == 'gradual':
                    set_seed(seed); model = MLP()
                    cb = GradualPruning(crit, kappa, AGP(a.start, a.end, 1), n_examples=a.n_examples, estimator='exact',
                                        lam=a.lam, seed=seed, show_log=False)
                    learn = paper_learner(dls, model, 'MLP', epochs=a.epochs, keep_best=False, seed=seed, cbs=[cb], precision='fp32')
                    fit(learn, a.epochs)
                    row = dict(start=a.start, end=a.end, sparsity=learn.masks.sparsity, t_curvature=float(cb.log.t_quantities.sum()))
                else:
                    if dense is None:
                        ck = cache_dir('checkpoints') / f'gradual_mnist_dense_s{seed}_e{a.dense_epochs}_n{n_tr or "all"}.pt'
                        if ck.exists(): dense, _ = load_checkpoint(ck, device='cpu')
                        else:
                            set_seed(seed); dense = MLP()
                            fit(paper_learner(dls, dense, 'MLP', epochs=a.dense_epochs, keep_best=False, seed=seed, precision='fp32'), a.dense_epochs)
                            save_checkpoint(ck, dense, arch='MLP', seed=seed, epochs=a.dense_epochs, n_train=n_tr)
                        dense = dense.eval()
                    sampler = ExampleSampler.from_dls(dls, n=a.n_examples, bs=a.n_examples, seed=seed)
                    model = copy.deepcopy(dense)
                    masks, log = prune(model, crit, kappa, n_stages=1 if crit == 'MP' else a.stages, data=sampler,
                                       n_examples=a.n_examples, estimator='exact', lam=a.lam, inplace=True, progress=False, seed=seed)
                    after = measure(model, dls)['train_loss']
                    learn = paper_learner(dls, model, 'MLP', epochs=a.epochs - a.dense_epochs, keep_best=False, seed=seed,
                                          cbs=[MaskCallback(masks)], precision='fp32')
                    fit(learn, a.epochs - a.dense_epochs)
                    row = dict(dense_epochs=a.dense_epochs, stages=len(log), sparsity=masks.sparsity, loss_after_prune=after,
                               t_curvature=float(log.t_quantities.sum()))
                model = learn.model
                zeros = sum(int((p == 0).sum()) for p in [m.weight for m in model.modules() if isinstance(m, torch.nn.Linear)])
                assert zeros >= round(n_prunable(model) * kappa), 'pruned weights came back'
                row.update(kind=kind, criterion=crit, seed=seed, **common, **measure(model, dls), seconds=time.perf_counter() - t0)
                append_row(out, row)
                print(f"{kind}-{crit} seed {seed}: test error {row['test_error']:.4f}, train loss {row['train_loss']:.4f} "
                      f"({row['seconds']:.0f} s)", flush=True)

if __name__ == '__main__': main()
