"""fastconv signal benchmark (thin script; the implementation is ``fastconv._bench``).

    python benchmarks/bench_signal.py [--quick] [--threads N] [--json FILE]

equals ``python -m fastconv bench --only signal ...``; see benchmarks/README.md.
"""
import os
import sys

try:
    import fastconv  # noqa: F401 - an installed fastconv
except ImportError:  # a source checkout: the package is next to this folder
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from fastconv._bench import main

if __name__ == "__main__":
    sys.exit(main())
