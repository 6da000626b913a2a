"Integration tests of the data loaders on the real offline copies."
import shutil, tarfile, io
import pytest, torch
from pruneloss.data import cifar10_dls, load_cifar10, mnist_dls, ExampleSampler, DataMissingError, CIFAR10_STATS

@pytest.mark.slow
def test_cifar10_jpeg_copy(jpeg_copy, tmp_path, monkeypatch):
    data_path = jpeg_copy
    monkeypatch.setenv('PRUNELOSS_CACHE', str(tmp_path/'cache'))
    stale = tmp_path/'cache'/'tensors'/'cifar10-jpeg-0123456789abcdef.pt'   # an earlier version's cache (keyed by path and time)
    stale.parent.mkdir(parents=True); stale.write_bytes(b'old')
    dls = cifar10_dls(data_path, device='cpu')
    assert dls.info == dict(name='CIFAR10', source='jpeg')
    assert not stale.exists()
    assert [len(dl.dataset) for dl in dls.loaders] == [45_000, 5_000, 10_000]
    assert torch.bincount(dls.valid.dataset.tensors[1]).tolist() == [500] * 10      # class-stratified valid split
    assert torch.bincount(dls.train.dataset.tensors[1]).tolist() == [4_500] * 10
    assert torch.bincount(dls.test.dataset.tensors[1]).tolist() == [1_000] * 10
    # the paper's normalisation gives roughly standardised channels on this copy
    x = dls.norm(dls.valid.dataset.tensors[0])
    assert x.mean((0, 2, 3)).abs().max() < 0.1 and (x.std((0, 2, 3)) - 1).abs().max() < 0.1
    # train batches are augmented (differ between two passes), valid batches are not
    torch.manual_seed(0); a = dls.train.new(shuffle=False).one_batch()[0]
    torch.manual_seed(1); b = dls.train.new(shuffle=False).one_batch()[0]
    assert not torch.equal(a, b)
    assert torch.equal(dls.valid.one_batch()[0], dls.valid.one_batch()[0])
    # decoded once, then read from the cache
    assert len(list((tmp_path/'cache'/'tensors').glob('cifar10-jpeg-*.pt'))) == 1
    raw2, src = load_cifar10(data_path)
    assert src == 'jpeg' and torch.equal(raw2['test'][0][:5], dls.test.dataset.tensors[0][:5])
    # the same copy in another folder, with another modification time: the same cache, not a second 185 MB one
    (tmp_path/'copy').mkdir(); shutil.copyfile(data_path/'cifar10-jpeg.tar.gz', tmp_path/'copy'/'cifar10-jpeg.tar.gz')
    raw3, _ = load_cifar10(tmp_path/'copy', download=False)
    assert len(list((tmp_path/'cache'/'tensors').glob('cifar10-jpeg-*.pt'))) == 1 and torch.equal(raw3['train'][1], raw2['train'][1])

@pytest.mark.slow
def test_cifar10_partial_archive(jpeg_copy, tmp_path, monkeypatch):
    data_path = jpeg_copy
    "A truncated archive is refused with a clear error, not read as a smaller data set."
    monkeypatch.setenv('PRUNELOSS_CACHE', str(tmp_path/'cache'))
    src = (data_path/'cifar10-jpeg.tar.gz').read_bytes()
    (tmp_path/'cifar10-jpeg.tar.gz').write_bytes(src[:len(src)//2])
    with pytest.raises(ValueError, match='corrupt or partial'): load_cifar10(tmp_path, download=False)

def test_mnist_seeds_and_missing(data_path, tmp_path):
    a, b = mnist_dls(data_path, seed=1111, device='cpu'), mnist_dls(data_path, seed=1111, device='cpu')
    c = mnist_dls(data_path, seed=1112, device='cpu')
    assert torch.equal(a.valid.dataset.tensors[1], b.valid.dataset.tensors[1]) and not torch.equal(a.valid.dataset.tensors[1], c.valid.dataset.tensors[1])
    s1, s2 = ExampleSampler.from_dls(a, n=1000, seed=3), ExampleSampler.from_dls(b, n=1000, seed=3)
    assert torch.equal(s1()[0][1], s2()[0][1])
    with pytest.raises(DataMissingError, match=str(tmp_path)): mnist_dls(tmp_path, download=False)
