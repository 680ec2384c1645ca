"""Run the user guide and the docstring examples as doctests."""
import doctest
import pathlib

import numpy as np
import pytest

import fastconv
import fastconv._config
import fastconv._shapes
import fastconv.signal

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
GUIDE = pathlib.Path(__file__).resolve().parents[1] / "docs" / "guide.md"


@pytest.fixture(autouse=True)
def _default_threads():
    old = fastconv._config._default_threads
    yield
    fastconv._config._default_threads = old


def test_guide_examples():
    assert GUIDE.is_file()
    with np.printoptions(legacy=False):
        res = doctest.testfile(str(GUIDE), module_relative=False, optionflags=FLAGS,
                               raise_on_error=False, verbose=False)
    assert res.attempted >= 30
    assert res.failed == 0, f"{res.failed} of {res.attempted} guide examples failed"


@pytest.mark.parametrize("module", [fastconv.signal, fastconv._config, fastconv._shapes],
                         ids=lambda m: m.__name__)
def test_docstring_examples(module):
    res = doctest.testmod(module, optionflags=FLAGS, raise_on_error=False, verbose=False)
    assert res.attempted > 0
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples in {module.__name__}"


def test_every_public_function_has_a_runnable_example():
    finder = doctest.DocTestFinder()
    for name in fastconv.signal.__all__:
        fn = getattr(fastconv.signal, name)
        tests = finder.find(fn, name)
        assert tests and sum(len(t.examples) for t in tests) > 0, name
