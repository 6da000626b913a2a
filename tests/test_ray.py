"A tiny sweep through a real local Ray cluster on 127.0.0.1: workers run, the driver alone writes the store."
import os, shutil, socket, subprocess, sys, sqlite3, time, signal, contextlib
from pathlib import Path
import pytest
from pruneloss.experiments import ResultStore, expand_grid, run_sweep

ray = pytest.importorskip('ray')
ROOT = Path(__file__).resolve().parent.parent

def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def ray_cluster(tmp_path_factory):
    "A head node on 127.0.0.1 with 2 CPUs (`ray start --block` in its own session), stopped at teardown."
    exe = shutil.which('ray') or str(Path(sys.executable).parent/'ray')
    port = _free_port()
    tmp = tmp_path_factory.mktemp('ray')
    env = dict(os.environ, RAY_USAGE_STATS_ENABLED='0')
    cmd = [exe, 'start', '--head', '--block', '--node-ip-address=127.0.0.1', f'--port={port}', '--num-cpus=2', '--num-gpus=0',
           '--include-dashboard=false', '--disable-usage-stats', f'--temp-dir={tmp}']
    p = subprocess.Popen(cmd, env=env, stdout=open(tmp/'ray.log', 'w'), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        t0 = time.time()
        while True:        # wait for the head's GCS port
            if p.poll() is not None: pytest.fail(f"ray start failed:\n{(tmp/'ray.log').read_text()}")
            if time.time() - t0 > 120: pytest.fail(f"ray did not start in 120 s:\n{(tmp/'ray.log').read_text()}")
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', port)) == 0: break
            time.sleep(0.5)
        yield f'127.0.0.1:{port}'
    finally:   # only the cluster this test started: its own process group
        with contextlib.suppress(ProcessLookupError): os.killpg(p.pid, signal.SIGTERM)
        try: p.wait(timeout=60)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError): os.killpg(p.pid, signal.SIGKILL)

def test_ray_sweep(ray_cluster, tmp_path, data_path, monkeypatch):
    monkeypatch.setenv('PRUNELOSS_DATA', str(data_path))
    cfgs = expand_grid(dict(network='MLP', criterion='MP', train_epochs=1, finetune_epochs=1, n_train=1000, n_eval=500),
                       sparsity=[0.5, 0.8, 0.9])
    db = tmp_path/'runs.sqlite'
    st = run_sweep(cfgs, db, executor='ray', address=ray_cluster, cache=tmp_path/'ckpt', device='cpu', progress=False)
    status = st.status()
    assert {status[c.run_id] for c in cfgs} == {'done'}
    df = st.to_df()
    assert len(df) == 3 and df.host.notna().all() and (df.sparsity_reached - df.sparsity).abs().max() < 1e-3
    assert df.finetuned_test_error.notna().all()
    assert len(list((tmp_path/'ckpt').glob('*.pt'))) == 1           # one dense network, trained once before the runs
    assert df.dense_cached.all()
    con = sqlite3.connect(db); assert con.execute('PRAGMA integrity_check').fetchone() == ('ok',); con.close()
    assert not ray.is_initialized()                                  # the sweep disconnected from the cluster
    # resume: nothing left to do except on request
    finished = dict(zip(df.run_id, df.finished))
    run_sweep(cfgs, st, executor='ray', address=ray_cluster, cache=tmp_path/'ckpt', device='cpu', progress=False)
    assert dict(zip(st.to_df().run_id, st.to_df().finished)) == finished
