"""Shared test configuration: the deterministic hypothesis profile and small helpers.

The oracle of every numerical test is someone else's code (scipy.signal, or a float64
direct sum computed by numpy), never fastconv's own output.
"""
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

settings.register_profile(
    "ci", derandomize=True, max_examples=60, deadline=None, print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.register_profile(
    "thorough", derandomize=False, max_examples=1000, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(scope="session", autouse=True)
def _private_cache_dir(tmp_path_factory):
    """Tests neither read nor write the user's tune.json / FFTW wisdom: a session cache dir."""
    from fastconv import _plan

    old = os.environ.get("FASTCONV_CACHE_DIR")
    os.environ["FASTCONV_CACHE_DIR"] = str(tmp_path_factory.mktemp("fastconv-session-cache"))
    _plan._reset()
    yield
    if old is None:
        os.environ.pop("FASTCONV_CACHE_DIR", None)
    else:
        os.environ["FASTCONV_CACHE_DIR"] = old
    _plan._reset()


@pytest.fixture(autouse=True)
def _no_background_measure_leaks():
    """A background FFTW re-plan started by one test (overlap-add blocks are measured once
    they are hot: fastconv._fft.AUTO_MEASURE_BLOCKS) finishes before the next test starts,
    so no test sees another's plan-cache counters change under it."""
    yield
    from fastconv import _fft

    assert _fft.wait_measurements(120.0), "a background FFTW re-plan did not finish"


@pytest.fixture
def rng():
    """A fresh, seeded generator per test (tests are order independent)."""
    return np.random.default_rng(12345)


@pytest.fixture
def cache_dir(tmp_path, monkeypatch):
    """A private FASTCONV_CACHE_DIR; the cost-model constants are reloaded around the test."""
    from fastconv import _plan

    d = tmp_path / "fastconv-cache"
    monkeypatch.setenv("FASTCONV_CACHE_DIR", str(d))
    _plan._reset()
    yield d
    _plan._reset()


# ---------------------------------------------------------------------------------------
# capabilities: tests whose fixtures build the C++ harness of the CUDA sources need g++
# ---------------------------------------------------------------------------------------
_GXX_FIXTURES = {"standin", "launcher"}   # tests/test_gpu_backend.py, test_nn_gpu_backend.py
HAVE_GXX = __import__("shutil").which(os.environ.get("CXX", "g++")) is not None


def pytest_collection_modifyitems(config, items):
    """Mark (skipif) only the tests that reach a g++-built harness, when g++ is absent."""
    mark = pytest.mark.skipif(not HAVE_GXX, reason="needs g++ (builds the CPU harness of "
                                                    "the CUDA sources); not installed here")
    for item in items:
        if _GXX_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(mark)
