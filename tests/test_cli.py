"The `pruneloss` command line, end to end in subprocesses, on the real MNIST (small budgets)."
import os, subprocess, sys, textwrap
from pathlib import Path
import pytest, torch

ROOT = Path(__file__).resolve().parents[1]

def run(args, tmp_path, check=True):
    env = dict(os.environ, PRUNELOSS_CACHE=str(tmp_path/'cache'), PYTHONPATH=str(ROOT))
    r = subprocess.run([sys.executable, '-m', 'pruneloss.cli', *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    if check: assert r.returncode == 0, r.stdout + r.stderr
    return r

@pytest.mark.parametrize('cmd', ['train', 'prune', 'finetune', 'sweep', 'report', 'demo'])
def test_help(cmd, tmp_path):
    r = run([cmd, '--help'], tmp_path)
    assert r.stdout.startswith('usage: pruneloss ' + cmd)

def test_bad_arguments(tmp_path, data_path):
    r = run(['prune', 'MLP', '--criterion', 'SNIP'], tmp_path, check=False)
    assert r.returncode == 2 and "invalid choice: 'SNIP'" in r.stderr
    r = run(['prune', 'MLP', '--sparsity', '1.2', '--train-epochs', '1'], tmp_path, check=False)
    assert r.returncode == 2 and 'sparsity' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'cache').exists()                     # refused before training anything
    r = run(['train', 'MLP', '--epochs', '2', '--data', str(tmp_path/'nowhere')], tmp_path, check=False)
    assert r.returncode == 2 and 'MNIST not found' in r.stderr and 'Traceback' not in r.stderr
    r = run(['report', '--store', str(tmp_path/'none.sqlite')], tmp_path, check=False)
    assert r.returncode == 2 and 'No results store' in r.stderr

def test_train_prune_finetune(tmp_path, data_path):
    r = run(['train', 'MLP', '--epochs', '1', '--out', 'mlp.pth'], tmp_path)
    assert 'trained and saved' in r.stdout and (tmp_path/'mlp.pth').exists()
    r = run(['train', 'MLP', '--epochs', '1'], tmp_path)
    assert 'loaded from' in r.stdout                           # cached: not trained twice
    from pruneloss.finetune import load_checkpoint
    _, info = load_checkpoint(tmp_path/'mlp.pth', device='cpu')
    assert info['arch'] == 'MLP' and info['config']['key']['seed'] == 1111
    r = run(['prune', 'mlp.pth', '--criterion', 'qm', '--stages', '3', '--sparsity', '0.9', '--n-examples', '500',
             '--out', 'masks.pt'], tmp_path)
    assert 'Per-stage log' in r.stdout and 'Sparsity report' in r.stdout
    saved = torch.load(tmp_path/'masks.pt', weights_only=False)
    n = sum(m.numel() for m in saved['masks'].values()); pruned = sum(int((~m).sum()) for m in saved['masks'].values())
    assert pruned == round(0.9 * n) and saved['criterion'] == 'QM' and saved['stages'] == 3
    r = run(['finetune', 'mlp.pth', 'masks.pt', '--epochs', '1', '--out', 'tuned.pth'], tmp_path)
    assert 'after fine-tuning' in r.stdout
    tuned, _ = load_checkpoint(tmp_path/'tuned.pth', device='cpu')
    for name, p in tuned.named_parameters():
        if name in saved['masks']: assert (p[~saved['masks'][name]] == 0).all()
    # masks of another network are refused with a clear message
    torch.save({'masks': {'1.weight': torch.ones(3, 3, dtype=torch.bool)}}, tmp_path/'bad.pt')
    r = run(['finetune', 'mlp.pth', 'bad.pt', '--epochs', '1'], tmp_path, check=False)
    assert r.returncode == 2 and 'do not fit the model' in r.stderr

def test_sweep_and_report(tmp_path, data_path):
    (tmp_path/'grid.toml').write_text(textwrap.dedent('''
        [base]
        network = "MLP"
        seed = 1111
        train_epochs = 1
        finetune_epochs = 1
        n_train = 3000
        n_eval = 1000
        n_examples = 500
        [grid]
        [[grid.blocks]]
        criterion = ["MP"]
        [[grid.blocks]]
        criterion = ["LM"]
        n_stages = [2]
        lam = [0.0, 0.01]
    '''))
    r = run(['sweep', 'grid.toml', '--store', 'runs.sqlite'], tmp_path)
    assert '3 done' in r.stdout
    r = run(['sweep', 'grid.toml', '--store', 'runs.sqlite'], tmp_path)
    assert '3 done before this sweep' in r.stdout             # resumed: nothing to do
    r = run(['report', '--store', 'runs.sqlite', '--out', 'rep'], tmp_path)
    assert 'Kendall' in r.stdout
    for f in ('summary.csv', 'runs.csv', 'MLP_loss_vs_lambda.png', 'MLP_accuracy_vs_lambda.png', 'MLP_loss_vs_accuracy.png'):
        assert (tmp_path/'rep'/f).stat().st_size > 0, f
