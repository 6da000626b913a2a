"""Speed and memory of the gradient + diagonal GGN (pruneloss.curvature) against a plain forward+backward and BackPACK.

    python benchmarks/curvature.py                       # MLP (batch 1000), VGG11 and PreActResNet18 (batch 100)
    python benchmarks/curvature.py --models VGG11 --repeats 5 --threads 2
    python benchmarks/curvature.py --ratios-only         # only the interleaved ratios (no memory/BackPACK table)

"plain" is `cross_entropy(model(x), y).backward()` in eval mode; all methods give the mean gradient as well as the
diagonal GGN. Two parts:

1. Ratios to plain, interleaved (the speed targets are judged on these). One process per model builds the model and a
   random batch (seeded), runs each of plain, exact and MC(1) once to warm up, then `--repeats` rounds of
   plain, exact, MC(1) in turn. For each round the time of exact and of MC(1) is divided by that round's plain time,
   so load that changes between rounds (the machine may be shared) largely cancels; the table gives the median of
   those per-round ratios and their range (the noise), and the median seconds. The per-phase and per-layer time
   split (`pruneloss.curvature.time_split`) of the median exact and MC(1) rounds follows.
2. Memory and BackPACK (skipped with --ratios-only). Every measurement runs in a fresh subprocess: it builds the
   model and batch, runs the method once to warm up, then `--repeats` times, and reports the median wall-clock
   seconds and the peak memory of the computation = peak resident set size of the process
   (`resource.getrusage().ru_maxrss`) minus its resident set size just before the first call (so the model, the
   batch and the Python/torch runtime are not counted; the results dictionaries are). BackPACK runs on
   `extend(model, use_converter=True)` where the converter handles the model, and is skipped (with the reason) where
   it does not. Every run of a method is followed by a plain forward+backward in the same process: "× plain" is the
   ratio of the two medians in that process, and "× BackPACK" the ratio of the two "× plain" ratios (pruneloss and
   BackPACK of the same estimator), which cancels load that changes between processes.
"""
import argparse, json, os, resource, statistics, subprocess, sys, time

# measure the checkout this script belongs to, not whichever pruneloss is installed
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

MODELS = {'MLP': ((1, 28, 28), 1000), 'VGG11': ((3, 32, 32), 100), 'PreActResNet18': ((3, 32, 32), 100)}
METHODS = ['plain', 'pruneloss exact', 'pruneloss mc1', 'backpack exact', 'backpack mc1']

def _rss_bytes():
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

def _setup(model_name, threads):
    "The network (eval mode), a fixed batch, and a plain forward+backward on it: what every measurement starts from."
    import torch, torch.nn.functional as F
    from pruneloss.models import get_model
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    shape, n = MODELS[model_name]
    model = get_model(model_name).eval()
    x, y = torch.randn(n, *shape), torch.randint(0, 10, (n,))
    def plain():
        model.zero_grad(set_to_none=True)
        F.cross_entropy(model(x), y).backward()
    return model, x, y, plain

def child(model_name, method, repeats, threads, warmup):
    "Run one measurement in this process and print a JSON line."
    from torch import nn
    from pruneloss.curvature import grad_and_diag_ggn, time_split
    model, x, y, plain = _setup(model_name, threads)
    split = None
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

def child_ratios(model_name, repeats, threads):
    "Plain, exact and MC(1) interleaved in this process; print a JSON line with per-round times and time splits."
    from pruneloss.curvature import grad_and_diag_ggn, time_split
    model, x, y, plain = _setup(model_name, threads)
    runs = {'plain': plain, 'exact': lambda: grad_and_diag_ggn(model, [(x, y)], 'exact'),
            'mc1': lambda: grad_and_diag_ggn(model, [(x, y)], 'mc', mc_samples=1)}
    for f in runs.values(): f()   # warm-up
    times, splits = {k: [] for k in runs}, {k: [] for k in runs if k != 'plain'}
    for _ in range(repeats):
        for k, f in runs.items():
            with time_split() as split: t = time.perf_counter(); f(); times[k].append(time.perf_counter() - t)
            if k in splits: splits[k].append(dict(split))
    print(json.dumps(dict(times=times, splits=splits)))

def ratios(models, repeats, threads):
    "Run `child_ratios` for each model in a fresh process and print the ratio table and the time splits."
    print(f'\nRatios to a plain forward+backward, interleaved in one process per model ({repeats} rounds after a '
          f'warm-up; per-round ratio = time / that round\'s plain time; median [min-max over rounds])')
    print(f'  {"model":<16}{"batch":>6}{"plain s":>9}{"exact s":>9}{"exact × plain":>22}{"MC(1) s":>9}'
          f'{"MC(1) × plain":>22}')
    out = []
    for m in models:
        cmd = [sys.executable, __file__, '--child-ratios', m, '--repeats', str(repeats), '--threads', str(threads)]
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 0:
            print(f'  {m:<16} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}'); continue
        res = json.loads(r.stdout.strip().splitlines()[-1])
        t = res['times']
        cells = []
        for k in ('exact', 'mc1'):
            rs = [a / b for a, b in zip(t[k], t['plain'])]
            cells.append((statistics.median(t[k]), statistics.median(rs), min(rs), max(rs)))
            mid = sorted(range(len(rs)), key=lambda i: rs[i])[len(rs) // 2]
            out.append((m, k, rs[mid], res['splits'][k][mid]))
        fmt = lambda c: f'{c[0]:>9.3f}{f"{c[1]:.2f} [{c[2]:.2f}-{c[3]:.2f}]":>22}'
        print(f'  {m:<16}{MODELS[m][1]:>6}{statistics.median(t["plain"]):>9.3f}{fmt(cells[0])}{fmt(cells[1])}')
    for m, k, ratio, split in out:
        tot = sum(split.values())
        print(f'\nTime split of {k} on {m} (the median round, {ratio:.2f} × plain, {tot:.3f} s timed):')
        for key, v in split.items(): print(f'  {key:<48}{v:>8.3f} s{100*v/tot:>6.1f} %')

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
    ap.add_argument('--ratios-only', action='store_true', help='only the interleaved ratios to plain (part 1)')
    ap.add_argument('--child', nargs=2, metavar=('MODEL', 'METHOD'), help=argparse.SUPPRESS)
    ap.add_argument('--child-ratios', metavar='MODEL', help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child: return child(*a.child, a.repeats, a.threads, not a.no_warmup)
    if a.child_ratios: return child_ratios(a.child_ratios, a.repeats, a.threads)
    import torch
    print(f'torch {torch.__version__}, {a.threads} threads, load average {os.getloadavg()[0]:.1f} at the start')
    ratios(a.models, a.repeats, a.threads)
    if a.ratios_only: return
    print(f'\nPer-method processes: repeats {a.repeats} (BackPACK exact on conv nets and '
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
