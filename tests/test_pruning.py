"Integration checks for pruning: conv nets, torch.nn.utils.prune interop, and the library's curvature against a reference."
import copy
import pytest, torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, jacrev, vmap
from pruneloss.core import Masks, prunable_weights, n_prunable
from pruneloss.criteria import QM, OBD
from pruneloss.pruning import prune, sparsity_report

def func_quantities(model, batches, grad=True, ggn=True, **kw):
    "Independent reference: full per-example logit Jacobians (torch.func) and G = mean_n Jᵀ(diag p − p pᵀ)J."
    ws = prunable_weights(model); rest = {n: t for n, t in [*model.named_parameters(), *model.named_buffers()] if n not in ws}
    x = torch.cat([b[0] for b in batches]); y = torch.cat([b[1] for b in batches])
    params = {n: w.detach() for n, w in ws.items()}
    logits = lambda p, xi: functional_call(model, {**rest, **p}, (xi[None],))[0]
    J = vmap(jacrev(logits), (None, 0))(params, x)                     # name -> (N, C, *shape)
    with torch.no_grad(): P = model(x).softmax(1)
    H = torch.diag_embed(P) - P[:, :, None] * P[:, None, :]
    g = {n: torch.einsum('nc,nc...->...', P - F.one_hot(y, P.shape[1]), J[n]) / len(x) for n in ws} if grad else None
    G = {n: torch.einsum('nc...,ncd,nd...->...', J[n], H, J[n]) / len(x) for n in ws} if ggn else None
    return g, G

def small_cnn():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(3, 4, 3), nn.Tanh(),
                         nn.Flatten(), nn.Linear(16, 5))

def test_qm_on_a_conv_net_matches_brute_force_ranking():
    net = small_cnn().eval(); x, y = torch.randn(30, 1, 8, 8), torch.randint(0, 5, (30,))
    masks, log = prune(net, QM(1e-3), 0.7, data=(x, y), n_examples=30, quantities_fn=func_quantities, progress=False)
    g, G = func_quantities(net, [(x, y)])
    ws = prunable_weights(net)
    s = torch.cat([QM(1e-3).saliency(ws[n].detach(), g[n], G[n]).flatten() for n in ws])
    k = round(n_prunable(net) * 0.7); pr = torch.zeros_like(s, dtype=torch.bool); pr[torch.argsort(s, stable=True)[:k]] = True
    assert torch.equal(torch.cat([~masks[n].flatten() for n in ws]), pr)
    assert log.loc[1, 'n_pruned'] == k

def test_masks_round_trip_through_torch_prune_and_a_file(tmp_path):
    net = small_cnn(); x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 5, (20,))
    masks, _ = prune(net, OBD(), 0.5, n_stages=3, data=[(x, y)], n_examples=20, quantities_fn=func_quantities, progress=False)
    torch.save(masks, tmp_path / 'masks.pt')
    masks2 = torch.load(tmp_path / 'masks.pt', weights_only=True); assert type(masks2) is Masks
    tp = masks2.to_torch_prune(copy.deepcopy(net))
    torch.save(tp.state_dict(), tmp_path / 'sd.pt')
    fresh = masks.to_torch_prune(small_cnn()); fresh.load_state_dict(torch.load(tmp_path / 'sd.pt'))
    back = Masks.from_torch_prune(fresh)
    for n in masks: assert torch.equal(back[n], masks[n])
    ours = masks.apply(copy.deepcopy(net))
    with torch.no_grad(): assert torch.allclose(fresh(x), ours(x), atol=1e-6)   # same network either way
    assert sparsity_report(ours).loc['total', 'nonzero'] == masks.n_total - masks.n_pruned

def test_default_curvature_matches_reference():
    net = small_cnn().eval(); x, y = torch.randn(24, 1, 8, 8), torch.randint(0, 5, (24,))
    m_ref, log_ref = prune(net, 'QM', 0.8, n_stages=3, data=[(x, y)], n_examples=24, quantities_fn=func_quantities, progress=False)
    m, log = prune(net, 'QM', 0.8, n_stages=3, data=[(x, y)], n_examples=24, progress=False)
    assert sum(int((m[n] != m_ref[n]).sum()) for n in m) <= 2      # float round-off may swap a near-tie
    assert torch.allclose(torch.tensor(log.predicted_change.values), torch.tensor(log_ref.predicted_change.values), rtol=1e-3, atol=1e-6)

def test_prune_takes_an_example_sampler():
    from torch.utils.data import TensorDataset
    from pruneloss.data import ExampleSampler
    torch.manual_seed(0)
    x = (torch.rand(200, 1, 8, 8) * 255).to(torch.uint8); y = torch.randint(0, 5, (200,))
    s = ExampleSampler(TensorDataset(x, y), lambda t: t.float() / 255, n=20, bs=8, seed=3)
    seen = []
    def spy(model, batches, **kw):
        seen.append(torch.cat([b[1] for b in batches])); return func_quantities(model, batches, **kw)
    net = small_cnn().eval()
    masks, log = prune(net, 'QM', 0.6, n_stages=3, data=s, n_examples=20, quantities_fn=spy, progress=False)
    assert len(seen) == 3 and not torch.equal(seen[0], seen[1])      # fresh examples every stage
    assert list(log.n_examples) == [20, 20, 20]
    with pytest.raises(ValueError, match='Too few examples'):
        prune(net, 'QM', 0.6, data=s, n_examples=21, quantities_fn=spy, progress=False)

@pytest.mark.parametrize('dtype', [torch.float64, torch.bfloat16, torch.float16])
def test_conv_net_in_another_dtype_prunes_like_a_float64_ranking(dtype):
    "QM and staged MP on a conv net in float64 / bfloat16 / float16: exact k, the float64 ranking's masks, dtypes kept."
    net = small_cnn().eval().to(dtype); x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 5, (20,))   # float32 examples
    g, G = func_quantities(small_cnn().eval().double(), [(x.double(), y)])
    g, G = {n: v.to(dtype) for n, v in g.items()}, {n: v.to(dtype) for n, v in G.items()}          # as a dtype-aware engine gives them
    fixed = lambda model, batches, grad=True, ggn=True, **kw: (g if grad else None, G if ggn else None)
    before = {n: t.clone() for n, t in net.state_dict().items()}
    ws = {n: w.detach().double() for n, w in prunable_weights(net).items()}
    D = n_prunable(net); k = round(D * 0.7)
    for crit, n_stages, sal in [('QM', 1, QM(1e-3).scores(ws, {n: v.double() for n, v in g.items()}, {n: v.double() for n, v in G.items()})),
                                ('MP', 4, {n: w ** 2 for n, w in ws.items()})]:
        masks, log = prune(net, crit, 0.7, n_stages=n_stages, lam=1e-3 if crit == 'QM' else None, data=(x, y), n_examples=20,
                           quantities_fn=fixed, progress=False)
        s = torch.cat([v.flatten() for v in sal.values()]); pr = torch.zeros_like(s, dtype=torch.bool); pr[torch.argsort(s, stable=True)[:k]] = True
        assert torch.equal(torch.cat([~masks[n].flatten() for n in ws]), pr)
        assert masks.n_pruned == k and list(log.n_pruned)[-1] == k and log.loss_after.notna().all()
    assert all(t.dtype == before[n].dtype and torch.equal(t, before[n]) for n, t in net.state_dict().items())   # untouched
    pruned = masks.apply(copy.deepcopy(net))
    assert {p.dtype for p in pruned.parameters()} == {dtype}
    with torch.no_grad(): assert pruned(x.to(dtype)).dtype == dtype
    assert sparsity_report(pruned, masks, input_shape=(1, 8, 8)).loc['total', 'nonzero'] == D - k

def test_stage_masks_through_torch_prune_twice_give_the_later_masks():
    "Masks of two pruning runs (the second continuing the first) put on a model one after the other with torch.nn.utils.prune."
    net = small_cnn().eval(); x, y = torch.randn(20, 1, 8, 8), torch.randint(0, 5, (20,))
    m1, _ = prune(net, 'OBD', 0.4, data=[(x, y)], n_examples=20, quantities_fn=func_quantities, progress=False)
    m2, _ = prune(net, 'OBD', 0.8, n_stages=2, masks=m1, data=[(x, y)], n_examples=20, quantities_fn=func_quantities, progress=False)
    tp = m1.to_torch_prune(copy.deepcopy(net)); m1.to_torch_prune(tp); m2.to_torch_prune(tp)
    back = Masks.from_torch_prune(tp)
    assert all(torch.equal(back[n], m2[n]) for n in m2)
    ours = m2.apply(copy.deepcopy(net))
    with torch.no_grad(): assert torch.allclose(tp(x), ours(x), atol=1e-6)
    with pytest.raises(ValueError, match="keeps .* weight\\(s\\) that the layer's torch.nn.utils.prune mask already prunes"):
        m1.to_torch_prune(tp)
    with pytest.raises(ValueError, match="Layer '0' \\(Conv2d\\) is pruned with torch.nn.utils.prune"):
        prune(tp, 'MP', 0.9, progress=False)
