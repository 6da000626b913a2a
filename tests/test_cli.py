"""The `pruneloss` command line through its installed console scripts, as users run it (exit statuses included), on the
real MNIST with small budgets; the many ways to give it bad input, in-process through `main` (the same code)."""
import os, shutil, socket, sqlite3, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, torch
from pruneloss.cli import main, build_parser, load_masks
from pruneloss.experiments import ExperimentConfig, ResultStore, dense_key
from pruneloss.finetune import save_checkpoint, load_checkpoint
from pruneloss.models import MLP

ROOT = Path(__file__).resolve().parents[1]
EXE, DEMO = shutil.which('pruneloss'), shutil.which('pruneloss-demo')
needs_scripts = pytest.mark.skipif(EXE is None or DEMO is None, reason="the console scripts are not installed (pip install -e .)")

def run(args, tmp_path, exe=None, check=True):
    "Run an installed console script with this checkout's package first on the path (the script imports `pruneloss.cli`)."
    env = dict(os.environ, PRUNELOSS_CACHE=str(tmp_path/'cache'), PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    r = subprocess.run([exe or EXE, *args], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=600)
    if check: assert r.returncode == 0, f"exit status {r.returncode}\n{r.stdout}\n{r.stderr}"
    return r

def fake_dense(path, seed):
    "A dense MLP checkpoint as `dense_model` writes it (untrained weights from `seed`: enough to test the plumbing)."
    torch.manual_seed(seed)
    return save_checkpoint(path, MLP(), arch='MLP', key=dense_key(ExperimentConfig('MLP', seed=seed, train_epochs=0)))

@needs_scripts
def test_entry_points_run_this_checkout(tmp_path):
    r = run(['--version'], tmp_path)
    assert str(ROOT/'pruneloss') in r.stdout, r.stdout           # the installed script runs this checkout's code
    r = run(['--help'], tmp_path, exe=DEMO)
    assert r.stdout.startswith('usage: pruneloss demo')

@needs_scripts
def test_progress_in_a_log(tmp_path, data_path):
    "Written to a file (not a terminal), progress is a plain line per finished stage: no redrawn bars, no import warnings."
    fake_dense(tmp_path/'good.pth', 1111)
    r = run(['prune', 'good.pth', '--criterion', 'MP', '--stages', '3', '--sparsity', '0.5'], tmp_path)
    for out in (r.stdout, r.stderr): assert '\r' not in out and '█' not in out, out
    lines = [l.split(' (')[0] for l in r.stderr.splitlines()]     # a line per stage, at most one per 10 s: the last always
    assert lines and lines[-1] == 'pruning stages: 3/3 done' and set(lines) <= {f'pruning stages: {i}/3 done' for i in (1, 2, 3)}, r.stderr
    assert 'Per-stage log' in r.stdout

@pytest.mark.parametrize('cmd', ['train', 'prune', 'finetune', 'sweep', 'report', 'demo'])
def test_help(cmd, capsys):
    with pytest.raises(SystemExit) as e: main([cmd, '--help'])
    assert e.value.code == 0 and capsys.readouterr().out.startswith('usage: pruneloss ' + cmd)

@pytest.mark.slow
@needs_scripts
def test_train_prune_finetune(tmp_path, data_path):
    r = run(['train', 'MLP', '--epochs', '1', '--out', 'mlp.pth'], tmp_path)        # exit status 0, nothing dumped on stderr
    assert 'trained and saved' in r.stdout and (tmp_path/'mlp.pth').exists() and 'MLP(' not in r.stderr
    _, info = load_checkpoint(tmp_path/'mlp.pth', device='cpu')
    assert info['arch'] == 'MLP' and info['config']['key']['seed'] == 1111
    r = run(['prune', 'mlp.pth', '--criterion', 'qm', '--stages', '3', '--sparsity', '0.9', '--n-examples', '500',
             '--out', 'masks.pt'], tmp_path)
    assert 'Per-stage log' in r.stdout and 'Sparsity report' in r.stdout
    saved = torch.load(tmp_path/'masks.pt', weights_only=True)                  # plain data: readable without unpickling code
    n = sum(m.numel() for m in saved['masks'].values()); pruned = sum(int((~m).sum()) for m in saved['masks'].values())
    assert pruned == round(0.9 * n) and saved['criterion'] == 'QM' and saved['stages'] == 3
    assert (saved['network'], saved['seed'], saved['train_epochs']) == ('MLP', 1111, 1) and len(saved['dense_fingerprint']) == 16
    r = run(['finetune', 'mlp.pth', 'masks.pt', '--epochs', '1', '--out', 'tuned.pth'], tmp_path)
    assert 'after fine-tuning' in r.stdout
    tuned, _ = load_checkpoint(tmp_path/'tuned.pth', device='cpu')
    for name, p in tuned.named_parameters():
        if name in saved['masks']: assert (p[~saved['masks'][name]] == 0).all()
    # masks computed on another network (seed 1112) are refused, naming what differs, before any work
    fake_dense(tmp_path/'other.pth', 1112)
    r = run(['finetune', 'other.pth', 'masks.pt', '--epochs', '1', '--out', 'tuned2.pth'], tmp_path, check=False)
    assert r.returncode == 2 and 'made for another network' in r.stderr and '1111 (masks) ≠ 1112' in r.stderr, r.stderr
    assert 'Traceback' not in r.stderr and not (tmp_path/'tuned2.pth').exists()
    # a crafted masks file is data, never code: its payload does not run
    class Payload:
        def __reduce__(self): return (exec, (f"open({str(tmp_path/'pwned')!r}, 'w').write('ran')",))
    torch.save({'masks': Payload()}, tmp_path/'evil.pt')
    r = run(['finetune', 'mlp.pth', 'evil.pt', '--epochs', '1'], tmp_path, check=False)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith('pruneloss finetune: error: '), r.stderr
    assert 'not a safe masks file' in r.stderr and 'refused without running anything' in r.stderr and 'Traceback' not in r.stderr
    assert not (tmp_path/'pwned').exists()
    with pytest.raises(Exception): torch.load(tmp_path/'evil.pt', weights_only=True)
    torch.load(tmp_path/'evil.pt', weights_only=False)             # the payload is real: unpickled, it writes the file
    assert (tmp_path/'pwned').read_text() == 'ran'

@pytest.mark.slow
def test_mismatched_masks_in_process(tmp_path, data_path, monkeypatch, capsys):
    "The same refusal in-process, and `--allow-mismatch` overriding it; masks without a record are refused too."
    monkeypatch.setenv('PRUNELOSS_CACHE', str(tmp_path/'cache')); monkeypatch.chdir(tmp_path)
    fake_dense(tmp_path/'a.pth', 1111); fake_dense(tmp_path/'b.pth', 1112)
    assert main(['prune', 'a.pth', '--criterion', 'MP', '--sparsity', '0.5', '--out', 'm.pt']) == 0
    assert main(['finetune', 'b.pth', 'm.pt', '--epochs', '1']) == 2
    assert 'seed 1111 (masks) ≠ 1112 (network)' in capsys.readouterr().err
    # same name, seed and epochs, other weights: caught by the fingerprint
    torch.manual_seed(5); save_checkpoint(tmp_path/'a2.pth', MLP(), arch='MLP', key=load_checkpoint(tmp_path/'a.pth')[1]['config']['key'])
    assert main(['finetune', 'a2.pth', 'm.pt', '--epochs', '1']) == 2 and 'other weights' in capsys.readouterr().err
    masks, _ = load_masks(tmp_path/'m.pt')
    torch.save(dict(masks), tmp_path/'bare.pt')                  # a plain {name: mask} dict: readable, but made for what?
    assert main(['finetune', 'a.pth', 'bare.pt', '--epochs', '1']) == 2 and 'records no network' in capsys.readouterr().err
    assert main(['finetune', 'b.pth', 'm.pt', '--epochs', '1', '--allow-mismatch']) == 0

GRID = '''
    [base]
    network = "MLP"
    train_epochs = 3
    finetune_epochs = 0
    n_train = 1000
    n_eval = 500
    n_examples = 200
    [grid]
    [[grid.blocks]]
    criterion = ["MP"]
    [[grid.blocks]]
    criterion = ["LM"]
    lam = [0.0, 0.01]
'''

@pytest.mark.slow
@needs_scripts
def test_sweep_exit_status_overrides_and_report(tmp_path, data_path, capsys, monkeypatch):
    (tmp_path/'grid.toml').write_text(textwrap.dedent(GRID))
    bad = tmp_path/'bad'/'MNIST'/'raw'; bad.mkdir(parents=True)
    from pruneloss.data import MNIST_MD5
    for f in MNIST_MD5: (bad/f).write_bytes(b'not mnist')
    ovr = ['--set', 'train_epochs=1', '--set', 'finetune_epochs=1']               # both apply (not only the last)
    r = run(['sweep', 'grid.toml', '--store', 'runs.sqlite', '--data', str(tmp_path/'bad'), *ovr], tmp_path, check=False)
    assert r.returncode == 1 and '3 failed' in r.stdout and '3 of 3 runs did not finish' in r.stderr, r.stdout + r.stderr
    r = run(['sweep', 'grid.toml', '--store', 'runs.sqlite', '--retry-failed', *ovr], tmp_path)
    assert '3 done' in r.stdout
    df = ResultStore(tmp_path/'runs.sqlite').to_df()
    assert len(df) == 3 and set(df.train_epochs) == {1} and set(df.finetune_epochs) == {1} and df.finetuned_test_error.notna().all()
    r = run(['sweep', 'grid.toml', '--store', 'runs.sqlite', *ovr], tmp_path)
    assert '3 done before this sweep' in r.stdout                                    # resumed: nothing to do
    r = run(['report', '--store', 'runs.sqlite', '--out', 'rep'], tmp_path)
    assert 'Kendall' in r.stdout
    for f in ('summary.csv', 'runs.csv', 'MLP_loss_vs_lambda.png', 'MLP_accuracy_vs_lambda.png', 'MLP_loss_vs_accuracy.png'):
        assert (tmp_path/'rep'/f).stat().st_size > 0, f
    assert not [p for p in (tmp_path/'rep').iterdir() if 'tmp' in p.name]            # no temporary file left behind
    # one corrupt row: the others are reported, the bad run is named, the exit status is 1
    broken = df.run_id[df.criterion == 'LM'].iloc[0]
    con = sqlite3.connect(tmp_path/'runs.sqlite'); con.execute("UPDATE runs SET result='{\"run_id\": 1' WHERE run_id=?", (broken,))
    con.commit(); con.close()
    monkeypatch.chdir(tmp_path)
    assert main(['report', '--store', 'runs.sqlite', '--out', 'rep2']) == 1
    out, err = capsys.readouterr()
    assert broken in err and 'corrupt' in err and (tmp_path/'rep2'/'runs.csv').read_text().count('\n') == 3   # header + the other runs

@pytest.mark.slow
@needs_scripts
def test_user_errors_through_the_console_script(tmp_path):
    "A few of the errors below through the installed script: one line, exit status 2, no traceback."
    (tmp_path/'empty.toml').write_text('')
    for args, msg in [(['train', 'MLP', '--epochs', '-2'], 'must be >= 0'),
                      (['sweep', 'empty.toml', '--store', 'r.sqlite'], 'needs a `network`')]:
        r = run(args, tmp_path, check=False)
        assert r.returncode == 2 and msg in r.stderr and 'Traceback' not in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ['empty.toml']               # nothing written (no store, no cache)

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def _files(d): return sorted(str(p.relative_to(d)) for p in d.rglob('*'))

@pytest.fixture
def inputs(tmp_path, monkeypatch):
    "A folder of good and bad inputs; the cache is inside it, so anything a command writes shows up."
    monkeypatch.setenv('PRUNELOSS_CACHE', str(tmp_path/'cache')); monkeypatch.chdir(tmp_path)
    fake_dense(tmp_path/'good.pth', 1111)
    b = (tmp_path/'good.pth').read_bytes(); (tmp_path/'trunc.pth').write_bytes(b[:len(b) // 2])
    (tmp_path/'text.pt').write_text('not a checkpoint')
    torch.save(dict(arch='MLP'), tmp_path/'nokeys.pth')
    torch.save(dict(arch='MLP', arch_kwargs={}, config={}, state_dict={'1.weight': torch.zeros(3, 3)}), tmp_path/'shapes.pth')
    torch.save([torch.ones(3, dtype=torch.bool)], tmp_path/'list.pt')
    (tmp_path/'adir').mkdir(); (tmp_path/'afile.txt').write_text('x')
    (tmp_path/'g.toml').write_text(textwrap.dedent(GRID))
    (tmp_path/'bad.yaml').write_text('network: MLP\nlam: [1, 2\n')
    (tmp_path/'grid5.toml').write_text('grid = 5\n'); (tmp_path/'blocks5.toml').write_text('[base]\nnetwork = "MLP"\n[grid]\nblocks = 5\n')
    (tmp_path/'list.yaml').write_text('- network: MLP\n'); (tmp_path/'empty.toml').write_text('')
    (tmp_path/'text.sqlite').write_text('not a database')
    st = ResultStore(tmp_path/'full.sqlite')
    for i in range(40):
        c = ExperimentConfig('MLP', lam=float(i))
        st.put(dict(run_id=c.run_id, **c.to_dict(), status='done', stage_log=[dict(stage=s) for s in range(100)]))
    con = sqlite3.connect(tmp_path/'full.sqlite'); con.execute('PRAGMA wal_checkpoint(TRUNCATE)'); con.close()
    b = (tmp_path/'full.sqlite').read_bytes(); (tmp_path/'trunc.sqlite').write_bytes(b[:len(b) // 2])
    for f in ('full.sqlite', 'full.sqlite-wal', 'full.sqlite-shm'): (tmp_path/f).unlink(missing_ok=True)
    return tmp_path

PORT = _free_port()
CASES = [   # (argv, what the message says)
    (['prune', 'trunc.pth'], 'trunc.pth'),                              # a truncated checkpoint
    (['prune', 'text.pt'], 'text.pt'),                                  # not a checkpoint at all
    (['prune', 'nokeys.pth'], 'nokeys.pth'),                            # a checkpoint without its keys
    (['prune', 'shapes.pth'], 'shapes.pth'),                            # weights of the wrong shapes
    (['prune', 'adir'], 'is a folder'),                                 # a folder given as a file
    (['finetune', 'good.pth', 'list.pt'], 'holds a list'),              # a masks file holding a list
    (['finetune', 'good.pth', 'adir'], 'is a folder'),
    (['finetune', 'good.pth', 'text.pt'], 'text.pt is not a'),
    (['train', 'MLP', '--epochs', '1', '--device', 'bogus'], "Unknown device 'bogus'"),
    (['prune', 'good.pth', '--out', 'afile.txt/masks.pt'], 'is a file, not a folder'),   # an unwritable --out, before any work
    (['prune', 'good.pth', '--out', 'adir'], 'is a folder'),
    (['report', '--store', 'text.sqlite'], 'not an SQLite file'),       # a store that is not SQLite
    (['report', '--store', 'trunc.sqlite'], 'truncated'),               # a truncated store
    (['sweep', 'g.toml', '--store', 'text.sqlite'], 'not an SQLite file'),
    (['report', '--store', 'missing.sqlite'], 'No results store'),
    (['sweep', 'g.toml', '--store', 'adir'], 'is a folder'),
    (['sweep', 'bad.yaml'], 'YAML syntax error'),
    (['sweep', 'grid5.toml'], '`grid` must be a table'),
    (['sweep', 'blocks5.toml'], '`grid.blocks` must be a list of tables'),
    (['sweep', 'list.yaml'], 'holds a list'),
    (['sweep', 'empty.toml'], 'needs a `network`'),                     # not the paper's 800-epoch run
    (['sweep', 'g.toml', '--set', 'lam=1', '--set', 'lam=2'], 'lam is set twice'),
    (['sweep', 'g.toml', '--executor', 'ray', '--address', f'127.0.0.1:{PORT}'], f'Cannot reach the Ray cluster at 127.0.0.1:{PORT}'),
]
if not torch.cuda.is_available(): CASES.append((['train', 'MLP', '--device', 'cuda'], 'CUDA is not available'))

@pytest.mark.parametrize('argv, msg', CASES, ids=[' '.join(a) for a, _ in CASES])
def test_user_errors(argv, msg, inputs, capsys):
    "Bad input: one line `pruneloss <cmd>: error: ...`, exit status 2, within seconds, and nothing written."
    before = _files(inputs)
    t0 = time.time()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f'pruneloss {argv[0]}: error: ') and err.count('\n') == 1 and msg in err, err
    assert time.time() - t0 < 60
    assert _files(inputs) == before

def test_argparse_errors(capsys):
    for argv, msg in [(['train', 'MLP', '--epochs', '-2'], 'must be >= 0'), (['prune', 'MLP', '--criterion', 'SNIP'], "invalid choice: 'SNIP'"),
                      (['finetune', 'a.pth', 'm.pt', '--epochs', '0'], 'must be >= 1'), (['demo', '--stages', '1,x'], 'comma-separated')]:
        with pytest.raises(SystemExit) as e: main(argv)
        assert e.value.code == 2 and msg in capsys.readouterr().err
    a = build_parser().parse_args(['sweep', 'g.toml', '--set', 'a=1', '--set', 'b=2', 'c=3'])
    assert a.set == ['a=1', 'b=2', 'c=3']

def test_library_refusals_and_missing_data(tmp_path, data_path, capsys, monkeypatch):
    monkeypatch.setenv('PRUNELOSS_CACHE', str(tmp_path/'cache'))
    assert main(['prune', 'MLP', '--sparsity', '1.2', '--train-epochs', '1']) == 2
    assert 'sparsity' in capsys.readouterr().err and not (tmp_path/'cache').exists()     # refused before training anything
    assert main(['train', 'MLP', '--epochs', '2', '--data', str(tmp_path/'nowhere')]) == 2
    assert 'MNIST not found' in capsys.readouterr().err
