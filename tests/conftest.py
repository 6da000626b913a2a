import os, pytest
from pathlib import Path

@pytest.fixture(scope='session')
def data_path():
    "The data folder the tests read: $PRUNELOSS_DATA (CI points it at the offline copies), else the default cache folder."
    from pruneloss.data import data_dir
    return data_dir()

@pytest.fixture(scope='session')
def jpeg_copy(data_path):
    "The data folder, when it holds the offline CIFAR-10 JPEG copy (the tests of that copy need it)."
    if not (data_path/'cifar10-jpeg.tar.gz').exists():
        pytest.skip(f"no cifar10-jpeg.tar.gz in {data_path}: these tests check the offline JPEG copy")
    return data_path
