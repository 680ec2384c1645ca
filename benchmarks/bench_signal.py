"""fastconv signal benchmark (thin script; the implementation is ``fastconv._bench``).

    python benchmarks/bench_signal.py [--quick] [--threads N] [--json FILE]

equals ``python -m fastconv bench --only signal ...``; see benchmarks/README.md.
"""
import sys

from fastconv._bench import main

if __name__ == "__main__":
    sys.exit(main())
