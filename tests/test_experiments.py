"""Sweeps end to end through the installed `pruneloss sweep`: the shipped grids; two sweeps sharing one store; a sweep
killed (SIGKILL) at random moments and resumed, compared value by value with an uninterrupted one."""
import os, random, shutil, signal, sqlite3, subprocess, sys, textwrap, time
from datetime import datetime
from pathlib import Path
import pytest
from pruneloss.experiments import ExperimentConfig, Grid, ResultStore, load_configs, PAPER_SPARSITY

ROOT = Path(__file__).resolve().parent.parent
EXE = shutil.which('pruneloss')

@pytest.mark.parametrize('name,network', [('mnist_mlp', 'MLP'), ('cifar10_vgg11', 'VGG11'), ('cifar10_preactresnet18', 'PreActResNet18')])
def test_paper_configs(name, network):
    "The shipped grid files are the paper's: 82 runs per seed, 5 seeds, the paper's sparsity and budgets."
    cs = load_configs(ROOT/'configs'/f'{name}.toml')
    assert [c.run_id for c in cs] == [c.run_id for c in Grid.paper(network)]       # the defaults are the paper's
    assert len(cs) == 410 and {c.network for c in cs} == {network}
    assert {c.sparsity for c in cs} == {PAPER_SPARSITY[network]}
    ep = {'MLP': 800, 'VGG11': 300, 'PreActResNet18': 200}[network]                     # method §6
    assert {(c.train_epochs, c.finetune_epochs, c.n_train, c.n_eval) for c in cs} == {(ep, ep, None, None)}
    assert {c.example_bs for c in cs} == {1000 if network == 'MLP' else 100}

def test_smoke_config():
    cs = load_configs(ROOT/'configs'/'mnist_mlp_smoke.toml', ['finetune_epochs=0'])
    assert len(cs) == 13 and {c.finetune_epochs for c in cs} == {0}

GRID = '''
    [base]
    network = "MLP"
    criterion = "MP"
    train_epochs = 1
    finetune_epochs = 1
    n_train = 20000
    n_eval = 500
    [grid]
    sparsity = [0.5, 0.6, 0.7, 0.8, 0.9, 0.95]
'''
N_RUNS = 6   # about 1.7 s a run on one thread (n_train = 2000 made it 0.2 s: a sweep started a second late found all but one done)
# what a run measures: equal to the last bit between an uninterrupted sweep and a killed-and-resumed one
METRICS = ['dense_best_epoch', 'sparsity_reached', 'n_pruned', 'predicted_change', 'stage_loss_change', 'finetune_best_epoch',
           *(f'{p}_{s}_{m}' for p in ('dense', 'pruned', 'finetuned') for s in ('train', 'valid', 'test') for m in ('loss', 'error'))]

def sweep(folder:Path, data_path):
    "`pruneloss sweep` (the installed script, this checkout's code) on the grid, in its own process group."
    (folder/'grid.toml').write_text(textwrap.dedent(GRID))
    env = dict(os.environ, PRUNELOSS_DATA=str(data_path), PYTHONPATH=str(ROOT), OMP_NUM_THREADS='1')
    return subprocess.Popen([EXE, 'sweep', 'grid.toml', '--store', 'runs.sqlite', '--cache', 'ckpt', '--device', 'cpu'], cwd=folder,
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)

def n_attempts(db:Path) -> int:
    "Rows in the store's attempt log (0 before the store or its table exists)."
    if not db.exists(): return 0
    con = sqlite3.connect(db, timeout=30)
    try: return con.execute('SELECT count(*) FROM attempt_log').fetchone()[0]
    except sqlite3.OperationalError: return 0
    finally: con.close()

def integrity(db): 
    con = sqlite3.connect(db)
    try: return con.execute('PRAGMA integrity_check').fetchone()[0]
    finally: con.close()

needs_script = pytest.mark.skipif(EXE is None, reason="the console script is not installed (pip install -e .)")

@pytest.fixture(scope='module')
def reference(tmp_path_factory, data_path):
    "Two sweeps started together on one store and one cache, never interrupted."
    if EXE is None: pytest.skip("the console script is not installed")
    d = tmp_path_factory.mktemp('two_sweeps')
    ps = [sweep(d, data_path) for _ in range(2)]
    outs = [p.communicate(timeout=600)[0].decode() for p in ps]
    return d, [p.returncode for p in ps], outs

@pytest.mark.slow
@needs_script
def test_two_sweeps_on_one_store_split_the_work(reference):
    "Each run is claimed by one sweep and done exactly once; both sweeps did some of it; the dense network was trained once."
    d, rcs, outs = reference
    assert rcs == [0, 0], '\n'.join(outs)
    st = ResultStore(d/'runs.sqlite')
    df = st.to_df(status=None)
    assert len(df) == N_RUNS and set(df.status) == {'done'} and set(df.attempts) == {1}, df[['run_id', 'status', 'attempts']]
    log = st.attempts()
    assert len(log) == N_RUNS and log.run_id.is_unique and set(log.outcome) == {'done'} and log.kept.all(), log
    assert log.owner.nunique() == 2, log                      # the work was split, not doubled
    assert len(list((d/'ckpt').glob('*.pt'))) == 1 and df.dense_path.nunique() == 1
    assert integrity(d/'runs.sqlite') == 'ok'

def n_done(db:Path) -> int:
    con = sqlite3.connect(db, timeout=30)
    try: return con.execute("SELECT count(*) FROM runs WHERE status='done'").fetchone()[0]
    except sqlite3.OperationalError: return 0
    finally: con.close()

@pytest.mark.slow
@needs_script
def test_killed_at_random_moments_then_resumed(reference, tmp_path, data_path):
    "SIGKILL a sweep 3 times at random moments of its work (dense training included), resume: every value equals the uninterrupted sweep's."
    ref_db = reference[0]/'runs.sqlite'
    ref = ResultStore(ref_db).to_df(stage_log=True).set_index('run_id')
    log = ResultStore(ref_db).attempts()
    wall = (datetime.fromisoformat(max(log.ended)) - datetime.fromisoformat(min(log.claimed))).total_seconds()
    per_run = 2 * wall / N_RUNS                     # two sweeps shared the work: about the time of one run in one sweep
    seed = int(os.environ.get('PRUNELOSS_KILL_SEED', time.time_ns() % 10**6))
    rng, db, kills = random.Random(seed), tmp_path/'runs.sqlite', []
    for k in range(3):      # the first kill within the first run, which trains the dense network; the others anywhere
        n0 = n_attempts(db); j = 1 if k == 0 else rng.randint(1, max(1, N_RUNS - (n_done(db) if db.exists() else 0)))
        p, t0 = sweep(tmp_path, data_path), time.time()
        while n_attempts(db) < n0 + j and p.poll() is None:    # until its j-th claim: a random run of those left
            assert time.time() - t0 < 300, "the sweep claimed nothing in 5 minutes"
            time.sleep(0.02)
        t = rng.uniform(0, per_run); time.sleep(t)            # then a random moment within about one run
        if p.poll() is None: os.killpg(p.pid, signal.SIGKILL)
        p.wait(); kills.append((j, round(t, 2), p.returncode))
        assert integrity(db) == 'ok'
    print(f"one run ≈ {per_run:.1f} s; kills (at claim j, seconds after it, exit status): {kills}; attempts {n_attempts(db)}")
    p = sweep(tmp_path, data_path)
    out = p.communicate(timeout=600)[0].decode()
    why = f"kills (at claim j, seconds after it, exit status): {kills}; PRUNELOSS_KILL_SEED={seed}\n{out}"
    assert p.returncode == 0, why
    st = ResultStore(db)
    df = st.to_df(stage_log=True).set_index('run_id')
    assert sorted(df.index) == sorted(ref.index) and set(df.status) == {'done'}, why
    got, want = df.loc[ref.index, METRICS], ref[METRICS]
    assert got.equals(want), f"{why}\n{(got - want).abs().max()}"
    strip = lambda logs: [{k: v for k, v in row.items() if not k.startswith('t_')} for row in logs]
    assert all(strip(df.stage_log[r]) == strip(ref.stage_log[r]) for r in ref.index), why
    att = st.attempts()
    assert (att[att.kept == 1].groupby('run_id').size() == 1).all() and att[att.kept == 1].run_id.nunique() == N_RUNS, att
    assert integrity(db) == 'ok' and len(list((tmp_path/'ckpt').glob('*.pt'))) == 1
