"""`pruneloss export` and `pruneloss run-exported` through the installed console script (exit statuses included), the
export file's size against the information floor on real pruning runs, and every kind of bad file, in-process."""
import copy, os, shutil, subprocess
from pathlib import Path
import pytest, torch
from pruneloss.cli import main, save_masks
from pruneloss.core import Masks
from pruneloss.experiments import ExperimentConfig, dense_key, PAPER_SPARSITY
from pruneloss.export import load_export, save_export, information_floor, to_inference, EXPORT_MAGIC
from pruneloss.finetune import save_checkpoint
from pruneloss.models import MLP, VGG11, PreActResNet18
from pruneloss.pruning import prune

ROOT = Path(__file__).resolve().parents[1]
EXE = shutil.which('pruneloss')
needs_scripts = pytest.mark.skipif(EXE is None, reason="the console script is not installed (pip install -e .)")
FAST = ['--batch-sizes', '1,8', '--repeats', '2', '--threads', '1']

def run(args, tmp_path):
    "Run the installed console script with this checkout's package first on the path."
    env = dict(os.environ, PRUNELOSS_CACHE=str(tmp_path/'cache'), PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)

def pruned_mlp(tmp_path, seed=1111, sparsity=PAPER_SPARSITY['MLP'], name='mlp'):
    "A dense MLP checkpoint (untrained weights from `seed`) and its magnitude masks, as `train --out` and `prune --out` write them."
    torch.manual_seed(seed); net = MLP()
    ckpt = save_checkpoint(tmp_path/f'{name}.pth', net, arch='MLP', key=dense_key(ExperimentConfig('MLP', seed=seed, train_epochs=0)))
    masks, _ = prune(net, 'MP', sparsity, progress=False)
    save_masks(tmp_path/f'{name}_masks.pt', masks, network='MLP', seed=seed, train_epochs=0, criterion='MP')
    return net, masks, ckpt, tmp_path/f'{name}_masks.pt'

@pytest.mark.slow
@needs_scripts
def test_export_and_run_from_the_shell(tmp_path):
    net, masks, ckpt, mfile = pruned_mlp(tmp_path)
    r = run(['export', ckpt.name, mfile.name, '--out', 'mlp.plx', '--bench', *FAST], tmp_path)
    assert r.returncode == 0, r.stderr
    assert 'smaller' in r.stdout and 'information floor' in r.stdout and 'exported_speedup' in r.stdout, r.stdout
    dense, back, info = load_export(tmp_path/'mlp.plx', device='cpu')
    for n in masks: assert torch.equal(back[n], masks[n])
    assert info['input_shape'] == [1, 28, 28] and info['meta']['masks_record']['criterion'] == 'MP'
    r = run(['run-exported', 'mlp.plx', *FAST], tmp_path)
    assert r.returncode == 0 and 'largest output difference' in r.stdout, r.stderr
    torch.manual_seed(0); x = torch.randn(5, 1, 28, 28); torch.save(x, tmp_path/'x.pt')
    r = run(['run-exported', 'mlp.plx', '--input', 'x.pt', '--out', 'y.pt'], tmp_path)
    assert r.returncode == 0 and 'predicted classes' in r.stdout, r.stderr
    y = torch.load(tmp_path/'y.pt', weights_only=True)
    with torch.inference_mode(): want = masks.apply(copy.deepcopy(net)).eval()(x)
    torch.testing.assert_close(y, want, rtol=1e-5, atol=1e-6)
    # a bad file: one line on stderr, exit status 2, no traceback
    raw = (tmp_path/'mlp.plx').read_bytes(); (tmp_path/'cut.plx').write_bytes(raw[:-10])
    r = run(['run-exported', 'cut.plx'], tmp_path)
    assert r.returncode == 2 and r.stderr.count('\n') == 1 and 'damaged export file' in r.stderr and 'Traceback' not in r.stderr, r.stderr

@pytest.mark.parametrize('cmd', ['export', 'run-exported'])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e: main([cmd, '--help'])
    assert e.value.code == 0 and capsys.readouterr().out.startswith('usage: pruneloss ' + cmd)

def test_refusals(tmp_path, monkeypatch, capsys):
    "Bad input to `export` and `run-exported`: status 2, one line naming the problem, nothing written."
    monkeypatch.chdir(tmp_path)
    net, masks, ckpt, mfile = pruned_mlp(tmp_path)
    _, _, other, _ = pruned_mlp(tmp_path, seed=1112, name='other')
    assert main(['export', 'mlp.pth', 'mlp_masks.pt', '--out', 'good.plx']) == 0
    raw = (tmp_path/'good.plx').read_bytes()
    flipped = bytearray(raw); flipped[-50] ^= 0xFF; (tmp_path/'flip.plx').write_bytes(bytes(flipped))
    (tmp_path/'head.plx').write_bytes(EXPORT_MAGIC + raw[len(EXPORT_MAGIC):len(EXPORT_MAGIC) + 30])
    (tmp_path/'notes.txt').write_text('not an export')
    torch.save({n: ~m for n, m in masks.items()}, tmp_path/'plain_masks.pt')
    class Payload:
        def __reduce__(self): return (exec, (f"open({str(tmp_path/'pwned')!r}, 'w').write('ran')",))
    torch.save({'format': 'pruneloss-export', 'layers': Payload()}, tmp_path/'evil.plx')
    capsys.readouterr()
    cases = [(['export', 'other.pth', 'mlp_masks.pt', '--out', 'x.plx'], '1111 (masks) ≠ 1112'),
             (['export', 'mlp.pth', 'plain_masks.pt', '--out', 'x.plx'], 'records no network'),
             (['export', 'missing.pth', 'mlp_masks.pt', '--out', 'x.plx'], 'is missing'),
             (['export', 'mlp.pth', 'mlp_masks.pt', '--out', str(tmp_path)], 'is a folder; give a file name'),
             (['export', 'mlp.pth', 'mlp.pth', '--out', 'x.plx'], 'not masks'),
             (['run-exported', 'flip.plx'], 'SHA-256'),
             (['run-exported', 'head.plx'], 'header is not JSON'),
             (['run-exported', 'mlp.pth'], 'not a pruneloss export file (a zip archive'),
             (['run-exported', 'notes.txt'], 'not a pruneloss export file'),
             (['run-exported', 'evil.plx'], 'not a pruneloss export file'),
             (['run-exported', 'nothing.plx'], 'No export file'),
             (['run-exported', 'good.plx', '--input', 'mlp_masks.pt'], 'must hold one float tensor'),
             (['run-exported', 'good.plx', '--device', 'bogus'], "Unknown device 'bogus'")]
    for argv, want in cases:
        code = main(argv); err = capsys.readouterr().err
        assert code == 2 and err.count('\n') == 1 and err.startswith(f'pruneloss {argv[0]}: error: ') and want in err, (argv, err)
    assert not (tmp_path/'x.plx').exists() and not (tmp_path/'pwned').exists()
    assert main(['export', 'other.pth', 'mlp_masks.pt', '--out', 'x.plx', '--allow-mismatch']) == 0   # the override
    for bad in (['export', 'a', 'b'], ['run-exported', 'good.plx', '--batch-sizes', '0'], ['run-exported', 'good.plx', '--input-shape', 'x']):
        with pytest.raises(SystemExit) as e: main(bad)
        assert e.value.code == 2

@pytest.mark.slow
def test_size_near_the_information_floor(tmp_path):
    "Real pruning runs at the paper's sparsities: the file is within 25% of the floor, and 35× (MLP) / 10× (CIFAR) smaller than dense."
    for cls, want in ((MLP, 35), (VGG11, 10), (PreActResNet18, 10)):
        torch.manual_seed(0); net = cls()
        masks, _ = prune(net, 'MP', PAPER_SPARSITY[cls.__name__], progress=False)
        size = save_export(tmp_path/'n.plx', net, masks).stat().st_size
        sd = net.state_dict()
        floor = information_floor(masks) + sum(v.numel() * v.element_size() for k, v in sd.items() if k not in masks)
        dense = sum(v.numel() * v.element_size() for v in sd.values())
        assert size <= 1.25 * floor and dense / size >= want, (cls.__name__, size, floor, dense / size)
        back, m2, _ = load_export(tmp_path/'n.plx', device='cpu')
        assert all(torch.equal(m2[n], masks[n]) for n in masks)

@pytest.mark.slow
def test_exported_resnet_matches_dense(tmp_path):
    "PreActResNet18 (BatchNorm, residual blocks) loaded from a file and made fully sparse gives the masked dense network's outputs."
    torch.manual_seed(0); net = PreActResNet18()
    net.train()
    with torch.no_grad(): net(torch.randn(16, 3, 32, 32))          # non-trivial BatchNorm running statistics
    masks, _ = prune(net, 'MP', PAPER_SPARSITY['PreActResNet18'], progress=False)
    dense, m2, _ = load_export(save_export(tmp_path/'r.plx', net, masks), device='cpu')
    inf = to_inference(dense, m2, 'all')
    x = torch.randn(4, 3, 32, 32)
    with torch.inference_mode(): want, got = masks.apply(copy.deepcopy(net)).eval()(x), inf(x)
    torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-4 * want.abs().max().item())
