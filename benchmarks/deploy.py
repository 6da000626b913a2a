"""Dense against exported, in the same run: file size and inference latency of the paper's pruned networks.

The MLP is trained briefly on MNIST (`--mlp-epochs`, plain SGD), or read from a dense checkpoint
(`--checkpoint MLP=PATH`, e.g. one of the experiments' 800-epoch networks), and pruned to κ = 0.98847 with QM
(λ = 1e-3) in 14 stages (1000 fresh training examples per stage), as the paper prunes it. VGG11 and PreActResNet18
are pruned to κ = 0.956 by global magnitude (MP): from a trained network with `--checkpoint VGG11=PATH`, otherwise
from their random initialisation (training them takes hours on a CPU), whose masks are real outputs of the pruner
but not those of trained networks. The output says which. A Linear-heavy model of a user's kind, the own-model page's
transformer on MNIST rows (`pruneloss.examples.RowTransformer`, `--rt-width` d), is trained for an epoch and pruned to
80% with QM in 5 stages, as on that page. For each network: the masked dense
network (`Masks.apply`) against `to_inference` with its layers chosen by timing at the same batch sizes, both
under `torch.inference_mode`, interleaved within every round; outputs checked equal; the dense checkpoint file
(`save_checkpoint`) against the export file (`save_export`). Where `to_inference` removed dead hidden units
(`compact_units`: the MLP), the same choice of sparse layers without that removal is timed too (`speedup_uncompacted`),
so that the two sources of the gain can be told apart.

Run: PRUNELOSS_DATA=/work/shared/data python benchmarks/deploy.py [--models MLP,VGG11,PreActResNet18,RowTransformer]
     [--threads 1] [--repeats 7] [--mlp-batch-sizes 1,16,256] [--cifar-batch-sizes 1,16,64] [--device cpu]
     [--checkpoint NETWORK=PATH ...] [--rt-width 32]
Prints per network the latency at each batch size (median of the rounds) with the speed-up, the file sizes with
their ratio, and the issue's targets (MLP ≥ 5× faster at batch 256 and not slower at 1; no network slower
than dense at any batch size; files ≥ 35× (MLP) and ≥ 10× (CIFAR) smaller) as met or not. Timings keep each
network's fastest round (`time_interleaved`); on a shared machine ratios near 1 are equal within ~5%.
"""
import argparse, copy, tempfile, time
from pathlib import Path
import pandas as pd
import torch
import torch.nn.functional as F
from pruneloss.core import get_device
from fastai.torch_core import set_seed
from pruneloss.data import mnist_dls, ExampleSampler
from pruneloss.export import save_export, load_export, to_inference, compare_latency, sparse_text
from pruneloss.finetune import save_checkpoint, load_checkpoint, Recipe, paper_learner, fit_recipe
from pruneloss.examples import RowTransformer
from pruneloss.models import get_model, NETWORKS, PAPER_SPARSITY
from pruneloss.data import DATA_SPECS
from pruneloss.pruning import prune

SHAPES = {**{n: DATA_SPECS[s.data].input_shape for n, s in NETWORKS.items()}, 'RowTransformer': (1, 28, 28)}

def dense_from(path, name, device):
    "The dense network of checkpoint `path` (written by `save_checkpoint`), checked to be a `name`."
    net, ck = load_checkpoint(path, device=device)
    if ck['arch'] != name: raise SystemExit(f"--checkpoint {name}={path}: that file holds a {ck['arch']}, not a {name}.")
    return net

def pruned_mlp(epochs, device, seed=1111, checkpoint=None):
    "The MLP trained `epochs` epochs on MNIST (or read from `checkpoint`), pruned with QM in 14 stages to the paper's sparsity."
    set_seed(seed)
    dls = mnist_dls(bs=100, device=device, download=False)
    if checkpoint: net, how = dense_from(checkpoint, 'MLP', device), f'the trained network of {Path(checkpoint).name}'
    else:
        net, how = get_model('MLP').to(device), f'after {epochs} epoch(s) of training'
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
        for _ in range(epochs):
            net.train()
            for xb, yb in dls.train: opt.zero_grad(); F.cross_entropy(net(xb), yb).backward(); opt.step()
    sampler = ExampleSampler.from_dls(dls, n=1000, bs=1000, seed=seed)
    masks, _ = prune(net.eval(), 'QM', PAPER_SPARSITY['MLP'], n_stages=14, lam=1e-3, data=sampler, progress=False)
    return net, masks, f'QM λ=1e-3, 14 stages, {how}'

def pruned_cifar(name, device, seed=1111, checkpoint=None):
    "`name` from its random initialisation (or read from `checkpoint`), pruned by global magnitude to the paper's sparsity."
    set_seed(seed)
    net = dense_from(checkpoint, name, device) if checkpoint else get_model(name).to(device).eval()
    masks, _ = prune(net, 'MP', PAPER_SPARSITY[name], progress=False)
    return net, masks, f'MP, the trained network of {Path(checkpoint).name}' if checkpoint else 'MP, random initialisation'

def pruned_rowtransformer(device, seed=1111, d=32, epochs=1):
    "The own-model page's transformer on MNIST rows (width `d`), trained `epochs` epochs on MNIST, pruned with QM in 5 stages to 80%."
    set_seed(seed)
    dls = mnist_dls(bs=100, device=device, download=False)
    net, _ = fit_recipe(paper_learner(dls, RowTransformer(d=d), Recipe(lr=0.05, epochs=epochs), seed=seed), show_progress=False)
    masks, _ = prune(net.eval(), 'QM', 0.8, n_stages=5, data=ExampleSampler.from_dls(dls, n=1000, bs=500, seed=seed),
                     estimator='exact', progress=False)
    return net, masks, f'QM, 5 stages, as on the own-model page; width {d}, {epochs} epoch(s) of training on MNIST'

def bench(name, net, masks, how, batch_sizes, repeats, device, folder):
    "Sizes, latencies and output check of one network; returns its summary row."
    shape = SHAPES[name]
    ckpt = save_checkpoint(folder/f'{name}.pth', masks.apply(copy.deepcopy(net)), arch=name)
    exp = save_export(folder/f'{name}.plx', net, masks, arch=name, input_shape=shape)
    dense, m2, _ = load_export(exp, model=None if name in NETWORKS else net, device=device)   # what a user loads back
    t0 = time.perf_counter()
    inf = to_inference(dense, m2, input_shape=shape, batch_sizes=batch_sizes, repeats=max(3, repeats // 2))
    t_choose = time.perf_counter() - t0
    x = torch.randn(4, *shape, device=device)
    with torch.inference_mode(): ref, got = dense(x), inf(x)
    err = float((ref - got).abs().max() / ref.abs().max())
    models = dict(dense=dense, exported=inf)
    if inf.units_kept:   # how much of the gain is the removal of dead units: the same choice of sparse layers without it
        models['uncompacted'] = to_inference(dense, m2, sparse=inf.sparse_layers, compact=False)
    lat = compare_latency(models, shape, batch_sizes=batch_sizes, repeats=repeats)
    lat['speedup'] = lat.dense_s / lat.exported_s
    if inf.units_kept: lat['speedup_uncompacted'] = lat.dense_s / lat.uncompacted_s
    sizes = ckpt.stat().st_size, exp.stat().st_size
    print(f"\n{name} at sparsity {masks.sparsity:.5f} ({how}); sparse layers {len(inf.sparse_layers)} of {len(masks)} "
          f"(name: the batch sizes it runs sparse; chosen in {t_choose:.0f} s): "
          + ('; '.join(f"{n.removesuffix('.weight')}: {sparse_text(r)}" for n, r in inf.sparse_layers.items()) or 'none'))
    if inf.units_kept: print("  hidden units kept: " + '; '.join(f'{n}: {k} of {n0}' for n, (n0, k) in inf.units_kept.items()))
    print(f"  file: dense checkpoint {sizes[0]:,} bytes, export {sizes[1]:,} bytes: {sizes[0] / sizes[1]:.1f}× smaller")
    print(f"  outputs: largest difference {err:.1e} of the largest output")
    lat = lat.assign(dense_ms=lat.dense_s * 1e3, exported_ms=lat.exported_s * 1e3)
    print(lat[['dense_ms', 'exported_ms', 'speedup'] + (['speedup_uncompacted'] if inf.units_kept else [])].to_string(float_format='{:.3f}'.format))
    return dict(network=name, sparsity=masks.sparsity, size_ratio=sizes[0] / sizes[1], max_rel_err=err,
                **{f'speedup_bs{b}': lat.loc[b, 'speedup'] for b in batch_sizes})

def main():
    p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    p.add_argument('--models', default='MLP,VGG11,PreActResNet18,RowTransformer')
    p.add_argument('--rt-width', type=int, default=32, help="the RowTransformer's width d (the own-model page's: 32)")
    p.add_argument('--threads', type=int, default=1)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--mlp-epochs', type=int, default=1)
    p.add_argument('--mlp-batch-sizes', default='1,16,256')
    p.add_argument('--cifar-batch-sizes', default='1,16,64')
    p.add_argument('--device', default='cpu')
    p.add_argument('--checkpoint', action='append', default=[], metavar='NETWORK=PATH',
                   help='a trained dense network to prune instead (repeatable), e.g. MLP=~/.cache/pruneloss/checkpoints/MLP-....pt')
    a = p.parse_args()
    try: ckpts = dict(c.split('=', 1) for c in a.checkpoint)
    except ValueError: p.error(f"--checkpoint is NETWORK=PATH, got {a.checkpoint}")
    unknown = [n for n in a.models.split(',') if n not in SHAPES]
    if unknown: p.error(f"--models: {unknown[0]!r} is not one of {list(SHAPES)}")
    bad = [n for n in ckpts if n not in NETWORKS]
    if bad: p.error(f"--checkpoint: {bad[0]!r} is not one of {list(NETWORKS)}")
    torch.set_num_threads(a.threads)
    dev = get_device(a.device)
    print(f"torch {torch.__version__}, {a.threads} thread(s), device {dev}; dense and exported interleaved in every round")
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name in a.models.split(','):
            bs = tuple(int(b) for b in (a.cifar_batch_sizes if name in ('VGG11', 'PreActResNet18') else a.mlp_batch_sizes).split(','))
            net, masks, how = (pruned_mlp(a.mlp_epochs, dev, checkpoint=ckpts.get(name)) if name == 'MLP'
                               else pruned_rowtransformer(dev, d=a.rt_width) if name == 'RowTransformer'
                               else pruned_cifar(name, dev, checkpoint=ckpts.get(name)))
            rows.append(bench(name, net, masks, how, bs, a.repeats, dev, Path(d)))
    df = pd.DataFrame(rows).set_index('network')
    print('\nSummary (speed-up = dense latency / exported latency, same run):')
    print(df.to_string(float_format='{:.3f}'.format))
    print('\nTargets:')
    for n, r in df.iterrows():
        sp = r.filter(like='speedup_bs').dropna()
        want = {'MLP': 35, 'VGG11': 10, 'PreActResNet18': 10}.get(n)   # the file targets (none for the own model, at 80%)
        print(f"  {n}: file {r.size_ratio:.1f}× smaller" + (f" (target ≥ {want}×: {'met' if r.size_ratio >= want else 'NOT met'})" if want else '') + "; "
              f"slowest ratio {sp.min():.2f}× (target: not slower; {'met' if sp.min() >= 1 else 'met within the 5% noise' if sp.min() >= 0.95 else 'NOT met'})"
              + (f"; batch 256 {r.get('speedup_bs256', float('nan')):.2f}× (target ≥ 5×: "
                 f"{'met' if r.get('speedup_bs256', 0) >= 5 else 'NOT met'})" if n == 'MLP' else ''))

if __name__ == '__main__': main()
