"A tiny sweep through a real local Ray cluster on 127.0.0.1: workers run, the driver alone claims runs and writes the store."
import os, shutil, socket, subprocess, sys, sqlite3, time, signal, contextlib, threading
from pathlib import Path
import pytest
from pruneloss.experiments import ResultStore, expand_grid, run_sweep, ray_reachable

ray = pytest.importorskip('ray')
pytestmark = pytest.mark.slow   # a real Ray cluster: run by .ci/run's slow step
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
                       sparsity=[0.5, 0.8, 0.9, 0.95])
    db = tmp_path/'runs.sqlite'
    # another sweep (a local one, say) holds the last run and finishes it a few seconds later: the Ray sweep must not run it
    other, last = ResultStore(db, lease=2.), cfgs[-1]
    assert other.claim(last)
    finish = threading.Timer(3., lambda: other.put(dict(run_id=last.run_id, **last.to_dict(), status='done', finished='x')))
    finish.start()
    st = run_sweep(cfgs, ResultStore(db, lease=2.), executor='ray', address=ray_cluster, cache=tmp_path/'ckpt', device='cpu',
                   progress=False)
    finish.join()
    status = st.status()
    assert {status[c.run_id] for c in cfgs} == {'done'}           # returned once every run was done, its own and the other's
    ours = [c.run_id for c in cfgs[:3]]
    df = st.to_df().set_index('run_id').loc[ours]
    assert df.host.notna().all() and (df.sparsity_reached - df.sparsity).abs().max() < 1e-3
    assert df.finetuned_test_error.notna().all()
    log = st.attempts()
    assert sorted(log[log.owner == st.owner].run_id) == sorted(ours) and set(log[log.run_id == last.run_id].owner) == {other.owner}
    assert set(log.outcome) == {'done'} and log.kept.all()         # each run attempted once
    assert len(list((tmp_path/'ckpt').glob('*.pt'))) == 1           # one dense network, trained once before the runs
    assert df.dense_cached.all()
    con = sqlite3.connect(db); assert con.execute('PRAGMA integrity_check').fetchone() == ('ok',); con.close()
    assert not ray.is_initialized()                                  # the sweep disconnected from the cluster
    # resume: nothing left to do except on request
    finished = dict(zip(st.to_df().run_id, st.to_df().finished))
    run_sweep(cfgs, st, executor='ray', address=ray_cluster, cache=tmp_path/'ckpt', device='cpu', progress=False)
    assert dict(zip(st.to_df().run_id, st.to_df().finished)) == finished

def test_unreachable_address_fails_fast(tmp_path):
    "Nothing listening at the address: a ConnectionError naming it within seconds (ray.init would retry for minutes), nothing written."
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]
    t0 = time.time()
    with pytest.raises(ConnectionError, match=f'127.0.0.1:{port}'):
        run_sweep(expand_grid(dict(network='MLP'), lam=[0.]), tmp_path/'runs.sqlite', executor='ray', address=f'127.0.0.1:{port}')
    assert time.time() - t0 < 10 and not (tmp_path/'runs.sqlite').exists()
    with pytest.raises(ValueError, match='host:port'): ray_reachable('nonsense')
