"""The examples/ scripts run, match torch, and the digits LeNet-5 learns (> 95 %)."""
import importlib
import os
import sys

import pytest
import torch  # noqa: F401  the oracle: a test dependency, a failure when missing

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "examples")


@pytest.fixture(autouse=True)
def _examples_on_path(monkeypatch):
    monkeypatch.syspath_prepend(EXAMPLES)


def _load(name):
    if name in sys.modules:
        return sys.modules[name]
    return importlib.import_module(name)


@pytest.mark.parametrize("name,tol", [
    ("lenet5", 1e-5),
    ("resnet_bottleneck", 1e-4),
    ("mobilenetv2_block", 1e-4),
    ("shufflenet_unit", 1e-4),
])
def test_forward_examples_match_torch(name, tol):
    err = _load(name).main()
    assert err is not None and err < tol


def test_lenet_digits_training():
    import sklearn  # noqa: F401  a test dependency (the digits data set)
    mod = _load("train_lenet_digits")
    acc, secs = mod.train(verbose=False)
    assert acc > 0.95, acc
