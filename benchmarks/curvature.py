"""Speed and memory of the gradient + diagonal GGN (pruneloss.curvature) against a plain forward+backward and BackPACK.

    python benchmarks/curvature.py                       # MLP (batch 1000), VGG11 and PreActResNet18 (batch 100)
    python benchmarks/curvature.py --models VGG11 --repeats 5 --threads 2

Every measurement runs in a fresh subprocess: it builds the model and a random batch (seeded), runs the method once
to warm up, then `--repeats` times, and reports the median wall-clock seconds and the peak memory of the
computation = peak resident set size of the process (`resource.getrusage().ru_maxrss`) minus its resident set size
just before the first call (so the model, the batch and the Python/torch runtime are not counted; the results
dictionaries are). All methods give the mean gradient as well as the diagonal GGN; "plain" is
`cross_entropy(model(x), y).backward()` in eval mode. BackPACK runs on `extend(model, use_converter=True)` where
the converter handles the model, and is skipped (with the reason) where it does not.

The machine may be shared, so every run of a method is followed by a plain forward+backward in the same process:
"× plain" is the ratio of the two medians in that process, and "× BackPACK" the ratio of the two "× plain" ratios
(pruneloss and BackPACK of the same estimator), which cancels load that changes between processes.
"""
import argparse, json, os, resource, statistics, subprocess, sys, time

MODELS = {'MLP': ((1, 28, 28), 1000), 'VGG11': ((3, 32, 32), 100), 'PreActResNet18': ((3, 32, 32), 100)}
METHODS = ['plain', 'pruneloss exact', 'pruneloss mc1', 'backpack exact', 'backpack mc1']

def _rss_bytes():
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

def child(model_name, method, repeats, threads, warmup):
    "Run one measurement in this process and print a JSON line."
    import torch, torch.nn.functional as F
    from torch import nn
    from pruneloss.models import get_model
    from pruneloss.curvature import grad_and_diag_ggn, time_split
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape, n = MODELS[model_name]
    model = get_model(model_name).eval()
    x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
    split = None
    def plain():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    if method == 'plain': run = plain
    elif method.startswith('pruneloss'):
        est = 'exact' if method.endswith('exact') else 'mc'
        def run(): return grad_and_diag_ggn(model, [(x, y)], est, mc_samples=1)
    else:
        import warnings; warnings.filterwarnings('ignore')
        from backpack import backpack, extend
        from backpack.extensions import DiagGGNExact, DiagGGNMC
        try: bp = model if isinstance(model, nn.Sequential) else extend(model, use_converter=True)
        except Exception as e:
            print(json.dumps(dict(skipped=f'BackPACK converter failed: {type(e).__name__}: {e}'))); return
        bp = extend(bp); lossf = extend(nn.CrossEntropyLoss())
        ext = DiagGGNExact if method.endswith('exact') else (lambda: DiagGGNMC(mc_samples=1))
        def run():
            bp.zero_grad(set_to_none=True)
            for p in bp.parameters():
                for a in ('diag_ggn_exact', 'diag_ggn_mc'):
                    if hasattr(p, a): delattr(p, a)
            loss = lossf(bp(x), y)
            with backpack(ext()): loss.backward()
    base = _rss_bytes()
    if warmup: run()
    times, plain_times = [], []
    for _ in range(repeats):
        if method.startswith('pruneloss'):
            with time_split() as split: t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
        else: t = time.perf_counter(); run(); times.append(time.perf_counter() - t)
        # the machine is shared: a plain forward+backward timed right after each run gives each ratio its own baseline
        if method != 'plain': t = time.perf_counter(); plain(); plain_times.append(time.perf_counter() - t)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base   # ru_maxrss is in KiB on Linux
    print(json.dumps(dict(median=statistics.median(times), times=times, peak=peak, split=split,
                          plain=statistics.median(plain_times or times))))

def measure(model_name, method, repeats, threads, warmup):
    cmd = [sys.executable, __file__, '--child', model_name, method, '--repeats', str(repeats), '--threads', str(threads)]
    if not warmup: cmd.append('--no-warmup')
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0: return dict(skipped=f'failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}')
    return json.loads(r.stdout.strip().splitlines()[-1])

def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--models', nargs='+', default=list(MODELS), choices=list(MODELS))
    ap.add_argument('--methods', nargs='+', default=METHODS, choices=METHODS)
    ap.add_argument('--repeats', type=int, default=3, help='timed runs per measurement (after one warm-up run)')
    ap.add_argument('--slow-repeats', type=int, default=1,
                    help='timed runs for the slow measurements: BackPACK exact on conv nets, everything on PreActResNet18')
    ap.add_argument('--threads', type=int, default=2, help='torch.set_num_threads')
    ap.add_argument('--no-warmup', action='store_true')
    ap.add_argument('--child', nargs=2, metavar=('MODEL', 'METHOD'), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(*a.child, a.repeats, a.threads, not a.no_warmup)
    import torch
    print(f'torch {torch.__version__}, {a.threads} threads, repeats {a.repeats} (BackPACK exact on conv nets and '
          f'everything on PreActResNet18: {a.slow_repeats}, then without warm-up); median seconds; '
          f'peak = extra resident memory')
    splits = []
    for m in a.models:
        shape, n = MODELS[m]
        res = {}
        for meth in a.methods:
            slow = (meth == 'backpack exact' and m != 'MLP') or m == 'PreActResNet18'
            reps = a.slow_repeats if slow else a.repeats
            res[meth] = measure(m, meth, reps, a.threads, not a.no_warmup and reps > 1)   # no warm-up for single runs
            if res[meth].get('split'): splits.append((m, meth, res[meth]['split']))
        print(f'\n{m} (batch {n})')
        print(f'  {"method":<17}{"median s":>10}{"× plain":>9}{"× BackPACK":>12}{"peak MB":>10}{"peak × BackPACK":>17}')
        for meth, r in res.items():
            if 'skipped' in r: print(f'  {meth:<17}  skipped: {r["skipped"]}'); continue
            bp = res.get('backpack ' + meth.split()[-1], {}) if meth.startswith('pruneloss') else {}
            xp = f'{r["median"]/r["plain"]:.2f}'
            # relative to BackPACK: each time in units of its own plain baseline, so that load changes between runs cancel
            xb = f'{(r["median"]/r["plain"])/(bp["median"]/bp["plain"]):.2f}' if bp.get('median') else '-'
            mb = f'{r["peak"]/bp["peak"]:.2f}' if bp.get('peak') else '-'
            print(f'  {meth:<17}{r["median"]:>10.3f}{xp:>9}{xb:>12}{r["peak"]/2**20:>10.0f}{mb:>17}')
    for m, meth, split in splits:
        tot = sum(split.values())
        print(f'\nTime split of {meth} on {m} (last run, {tot:.3f} s timed):')
        for k, v in split.items(): print(f'  {k:<48}{v:>8.3f} s{100*v/tot:>6.1f} %')

if __name__ == '__main__': main()
