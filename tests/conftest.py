import os, pytest
from pathlib import Path

@pytest.fixture(scope='session')
def data_path():
    "The data folder the tests read: $PRUNELOSS_DATA (CI points it at the offline copies)."
    p = os.environ.get('PRUNELOSS_DATA')
    if not p: pytest.fail("Set PRUNELOSS_DATA to a folder with MNIST/raw and cifar10-jpeg.tar.gz (CI uses ../shared/data).")
    return Path(p)
