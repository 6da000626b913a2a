"Sweeps end to end: the shipped grids, and a sweep killed with SIGKILL then resumed."
import os, sys, signal, sqlite3, subprocess, time, json
from pathlib import Path
import pytest
from pruneloss.experiments import ExperimentConfig, Grid, ResultStore, load_configs, expand_grid, run_sweep, PAPER_SPARSITY

ROOT = Path(__file__).resolve().parent.parent

@pytest.mark.parametrize('name,network', [('mnist_mlp', 'MLP'), ('cifar10_vgg11', 'VGG11'), ('cifar10_preactresnet18', 'PreActResNet18')])
def test_paper_configs(name, network):
    "The shipped grid files are the paper's: 82 runs per seed, 5 seeds, the paper's sparsity and budgets."
    cs = load_configs(ROOT/'configs'/f'{name}.toml')
    assert [c.run_id for c in cs] == [c.run_id for c in Grid.paper(network)]       # the defaults are the paper's
    assert len(cs) == 410 and {c.network for c in cs} == {network}
    assert {c.sparsity for c in cs} == {PAPER_SPARSITY[network]}
    ep = {'MLP': 800, 'VGG11': 300, 'PreActResNet18': 200}[network]                     # SPEC §6
    assert {(c.train_epochs, c.finetune_epochs, c.n_train, c.n_eval) for c in cs} == {(ep, ep, None, None)}
    assert {c.example_bs for c in cs} == {1000 if network == 'MLP' else 100}

def test_smoke_config():
    cs = load_configs(ROOT/'configs'/'mnist_mlp_smoke.toml', ['finetune_epochs=0'])
    assert len(cs) == 13 and {c.finetune_epochs for c in cs} == {0}

SCRIPT = """
import sys, json; sys.path.insert(0, {root!r})
from pruneloss.experiments import ExperimentConfig, run_sweep
cfgs = [ExperimentConfig.from_dict(d) for d in json.loads({cfgs!r})]
run_sweep(cfgs, {db!r}, cache={cache!r}, device='cpu', progress=False)
"""

def _configs():
    base = dict(network='MLP', criterion='MP', train_epochs=1, finetune_epochs=2, n_train=1000, n_eval=500)
    return expand_grid(base, sparsity=[0.5, 0.6, 0.7, 0.8, 0.9, 0.95])

def _sweep_proc(tmp_path, data_path):
    code = SCRIPT.format(root=str(ROOT), cfgs=json.dumps([c.to_dict() for c in _configs()]),
                         db=str(tmp_path/'runs.sqlite'), cache=str(tmp_path/'ckpt'))
    env = dict(os.environ, PRUNELOSS_DATA=str(data_path), OMP_NUM_THREADS='1')
    return subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)

def _done(db):
    if not db.exists(): return {}
    con = sqlite3.connect(db, timeout=30)
    try: return dict(con.execute("SELECT run_id, finished FROM runs WHERE status='done'").fetchall())
    except sqlite3.OperationalError: return {}   # table not created yet
    finally: con.close()

def test_kill_and_resume(tmp_path, data_path):
    "SIGKILL a sweep after its first finished run; restarted, it runs only the missing ones, each exactly once."
    db = tmp_path/'runs.sqlite'
    p = _sweep_proc(tmp_path, data_path)
    t0 = time.time()
    while not _done(db):
        assert p.poll() is None, f"the sweep ended before any run finished:\n{p.stdout.read().decode()}"
        assert time.time() - t0 < 300, "no run finished in 5 minutes"
        time.sleep(0.1)
    p.send_signal(signal.SIGKILL); p.wait()
    before = _done(db)
    n = len(_configs())
    assert 1 <= len(before) < n, f"killed with {len(before)} of {n} runs done: nothing left to resume"
    con = sqlite3.connect(db)
    assert con.execute('PRAGMA integrity_check').fetchone() == ('ok',)
    con.close()
    p = _sweep_proc(tmp_path, data_path)
    out = p.communicate(timeout=600)[0].decode()
    assert p.returncode == 0, out
    st = ResultStore(db)
    df = st.to_df(status=None)
    assert len(df) == n and set(df.status) == {'done'} and set(df.attempts) == {1}       # every run done exactly once
    assert {c.run_id for c in _configs()} == set(df.run_id)
    after = dict(zip(df.run_id, df.finished))
    assert {k: after[k] for k in before} == before                                          # finished runs not rerun
    resumed = df[~df.run_id.isin(list(before))]
    assert resumed.dense_cached.all()                      # the dense network trained before the kill was reused
    assert (resumed.sparsity_reached - resumed.sparsity).abs().max() < 1e-3
    assert (resumed.finetuned_sparsity - resumed.sparsity).abs().max() < 1e-3
    assert df['versions.torch'].notna().all() and set(df.device) == {'cpu'}
    assert (df.t_total > 0).all() and df.pruned_train_loss.notna().all() and df.finetuned_test_error.notna().all()
    con = sqlite3.connect(db)
    assert con.execute('PRAGMA integrity_check').fetchone() == ('ok',)
    con.close()
    assert list((tmp_path/'ckpt').glob('*.pt')).__len__() == 1
    csv = st.to_csv(tmp_path/'runs.csv')
    assert csv.read_text().count('\n') == n + 1
