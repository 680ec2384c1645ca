"""Thin script: the benchmark lives in the package (``fastconv.nn._bench``) so that
``python -m fastconv bench`` finds it from an installed copy too.

Run: ``python benchmarks/bench_nn.py [--quick]``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastconv.nn import _bench as _impl  # noqa: E402

run = _impl.run
main = _impl.main

if __name__ == "__main__":
    sys.exit(main())
