"""The end-to-end costs a user of the paper's protocol waits for, on this machine, in seconds:
one paper run of QM with 14 stages on VGG11 (1000 examples per stage in batches of 100, then the loss and error
on the whole training split, valid and test, as `run_experiment` measures them), and one dense VGG11 training epoch
with the library's default training settings.

    python benchmarks/e2e.py [--threads 2] [--epoch-steps N]

`--epoch-steps N` times N training steps and scales to a whole epoch (450 steps of 100 on the 45k split).
The network is untrained (timings do not depend on the weights). Run it before and after a change, on a quiet machine."""
import argparse, time, os, inspect
import torch

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--threads', type=int, default=torch.get_num_threads())
    ap.add_argument('--epoch-steps', type=int, default=None, help='time this many steps and scale (default: a whole epoch)')
    ap.add_argument('--skip-prune', action='store_true')
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    from pruneloss.data import cifar10_dls, ExampleSampler
    from pruneloss.models import get_model
    from pruneloss.pruning import prune
    from pruneloss.core import evaluate
    from pruneloss.finetune import paper_learner
    dls = cifar10_dls()
    print(f"torch {torch.__version__}, {a.threads} thread(s), pruneloss at {os.path.dirname(inspect.getfile(prune))}")
    torch.manual_seed(0); model = get_model('VGG11')
    if not a.skip_prune:
        t0 = time.perf_counter()
        sampler = ExampleSampler.from_dls(dls, n=1000, bs=100, seed=0)
        masks, log = prune(model, 'QM', 1 - 0.8**14, n_stages=14, data=sampler, n_examples=None, progress=False, inplace=True)
        t_prune = time.perf_counter() - t0
        t0 = time.perf_counter()
        for split in ('train', 'valid', 'test'): evaluate(model, dls.eval_dl(split))
        t_eval = time.perf_counter() - t0
        print(f"QM, 14 stages, VGG11: pruning {t_prune:.1f} s (curvature {log.t_quantities.sum():.1f} s), "
              f"evaluation of train/valid/test {t_eval:.1f} s, run {t_prune + t_eval:.1f} s")
    torch.manual_seed(0); model = get_model('VGG11')
    learn = paper_learner(dls, model, 'VGG11', epochs=1, keep_best=False)
    n_steps = len(dls.train)
    if a.epoch_steps:
        from fastai.callback.core import Callback, CancelFitException
        class _Stop(Callback):
            order = 99
            def after_batch(self):
                if self.iter + 1 >= a.epoch_steps: raise CancelFitException()
        learn.add_cb(_Stop())
    t0 = time.perf_counter()
    with learn.no_bar(), learn.no_logging(): learn.fit(1)
    t = time.perf_counter() - t0
    if a.epoch_steps: t = t / a.epoch_steps * n_steps
    print(f"dense VGG11 epoch ({n_steps} steps of {dls.train.bs}{', scaled from %d steps' % a.epoch_steps if a.epoch_steps else ''}): {t:.1f} s")

if __name__ == '__main__': main()
