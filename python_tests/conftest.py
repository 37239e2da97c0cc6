"""Shared fixtures. The tests run in importlib mode (they import the installed package, not the checkout), so
this folder is put on sys.path here for the helper modules beside the tests (``_hostile``)."""
import os
import sys

import pytest
import torch

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for the module: bit-exactness (resume, folds) holds for a fixed thread count."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
