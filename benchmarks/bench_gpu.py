"""Thin script: the benchmark lives in the package (``fastconv._bench_gpu``) so that
``python -m fastconv bench`` finds it from an installed copy too.

Run: ``python benchmarks/bench_gpu.py [--quick]``.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastconv import _bench_gpu as _impl  # noqa: E402

run = _impl.run
main = _impl.main

if __name__ == "__main__":
    sys.exit(main())
