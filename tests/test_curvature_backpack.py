"Cross-check `pruneloss.curvature` against BackPACK's DiagGGNExact and DiagGGNMC on the paper's MLP and VGG11, and on Conv1d / Conv3d nets."
import copy
import pytest
import torch
from torch import nn
from pruneloss.core import prunable_weights
from pruneloss.models import MLP, VGG11
from pruneloss.curvature import grad_and_diag_ggn

backpack = pytest.importorskip('backpack')
from backpack.extensions import DiagGGNExact, DiagGGNMC

def backpack_diag_ggn(model, x, y, ext):
    "BackPACK's diagonal GGN of the mean cross-entropy for the prunable weights, and the mean gradient."
    # the converter (torch.fx) turns VGG11 into a graph of modules BackPACK knows, keeping the parameter names
    model = backpack.extend(copy.deepcopy(model).eval(), use_converter=not isinstance(model, nn.Sequential))
    loss = backpack.extend(nn.CrossEntropyLoss())(model(x), y)
    with backpack.backpack(ext): loss.backward()
    attr = 'diag_ggn_exact' if isinstance(ext, DiagGGNExact) else 'diag_ggn_mc'
    ws = prunable_weights(model)
    return {n: p.grad for n, p in ws.items()}, {n: getattr(p, attr) for n, p in ws.items()}

def assert_close(a, b, rtol):
    assert list(a) == list(b)
    for n in a:
        assert a[n].shape == b[n].shape, n
        scale = b[n].abs().max()
        err = (a[n] - b[n]).abs().max()
        assert err <= rtol * scale, f'{n}: max error {err:.3g} vs max entry {scale:.3g}'

def conv1d_net():
    return nn.Sequential(nn.Conv1d(3, 6, 3, stride=2, padding=1), nn.ReLU(), nn.Conv1d(6, 4, 3, dilation=2, groups=2),
                         nn.Flatten(), nn.Linear(4 * 4, 10))

def conv3d_net():
    return nn.Sequential(nn.Conv3d(2, 4, 3, padding=1), nn.ReLU(), nn.Conv3d(4, 3, 2, stride=2), nn.Flatten(), nn.Linear(3 * 8, 10))

CASES = [pytest.param(MLP, (1, 28, 28), 32, id='MLP'), pytest.param(VGG11, (3, 32, 32), 4, id='VGG11'),
         pytest.param(conv1d_net, (3, 16), 8, id='Conv1d'), pytest.param(conv3d_net, (2, 4, 4, 4), 8, id='Conv3d')]

@pytest.mark.parametrize('arch, shape, n', CASES)
def test_exact_matches_backpack(arch, shape, n):
    torch.manual_seed(0)
    model, x, y = arch(), torch.randn(n, *shape), torch.randint(0, 10, (n,))
    g_ref, G_ref = backpack_diag_ggn(model, x, y, DiagGGNExact())
    g, G = grad_and_diag_ggn(model, [(x[:n//2], y[:n//2]), (x[n//2:], y[n//2:])], 'exact')
    assert_close(G, G_ref, 1e-4)
    assert_close(g, g_ref, 1e-4)

@pytest.mark.parametrize('arch, shape, n', CASES)
@pytest.mark.parametrize('k', [1, 3])
def test_mc_matches_backpack_with_the_same_draws(arch, shape, n, k):
    # Both sample the labels with torch.multinomial(p, k, replacement=True) from the global generator after a
    # deterministic forward pass, so with the same seed they draw the same labels and must agree closely.
    torch.manual_seed(0)
    model, x, y = arch(), torch.randn(n, *shape), torch.randint(0, 10, (n,))
    torch.manual_seed(1)
    _, G_ref = backpack_diag_ggn(model, x, y, DiagGGNMC(mc_samples=k))
    torch.manual_seed(1)
    _, G = grad_and_diag_ggn(model, [(x, y)], 'mc', mc_samples=k, grad=False)
    assert_close(G, G_ref, 1e-4)

def test_model_left_as_it_was():
    torch.manual_seed(0)
    model, x, y = MLP().train(), torch.randn(4, 1, 28, 28), torch.randint(0, 10, (4,))
    before = {n: p.clone() for n, p in model.state_dict().items()}
    grad_and_diag_ggn(model, [(x, y)])
    assert model.training and all(p.grad is None for p in model.parameters())
    assert all(torch.equal(before[n], p) for n, p in model.state_dict().items())
    assert all(not m._forward_hooks and not m._backward_hooks for m in model.modules())
