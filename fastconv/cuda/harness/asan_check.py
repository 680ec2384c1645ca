"""Run every kernel through fastconv._cupy's orchestration on an AddressSanitizer build
of the harness: any read or write outside x, w, out, the im2col columns (both directions) or the launch's
shared memory aborts with a report.  Used by tests/test_cuda_harness.py as

    LD_PRELOAD=libasan.so python asan_check.py ROOT HARNESS_SO
"""
import importlib.util
import itertools
import os
import sys

import numpy as np


def main(root, lib):
    sys.path.insert(0, root)
    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location("harness", os.path.join(here, "harness.py"))
    h = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(h)
    from fastconv import _cupy

    launcher = h.HarnessLauncher(lib)
    rng = np.random.default_rng(0)
    cases = [  # (N, C_in, C_out, groups, S, K, stride, dilation, pad)
        (2, 3, 4, 1, (40,), (5,), (2,), (3,), (4,)),
        (1, 2, 3, 1, (3,), (7,), (1,), (1,), (6,)),                 # kernel > input
        (2, 4, 6, 2, (23, 19), (3, 4), (2, 1), (1, 2), (1, 3)),
        (1, 5, 7, 1, (33, 2), (1, 2), (3, 1), (1, 1), (0, 0)),
        (1, 3, 5, 1, (9, 10, 8), (3, 2, 3), (1, 2, 1), (2, 1, 1), (1, 0, 2)),
        (2, 4, 8, 4, (17, 15), (3, 3), (1, 1), (1, 1), (1, 1)),
        (1, 2, 2, 1, (5, 4, 3, 4), (2, 2, 1, 3), (1, 1, 1, 1), (1, 2, 1, 1), (1, 0, 0, 1)),
        (1, 2, 1, 1, (3000,), (2900,), (1,), (1,), (5,)),          # patch > shared memory
    ]
    with _cupy._use_standin(launcher):
        for case, dt in itertools.product(cases, ["float32", "complex128", "int64"]):
            n, cin, cout, g, S, K, st, dl, pd = case
            x = rng.standard_normal((n, cin) + S).astype(dt)
            w = rng.standard_normal((cout, cin // g) + K).astype(dt)
            for extra in (0, 3):  # output reaching past the input: reads the zeros after
                O = tuple((s + p + extra - d * (k - 1) - 1) // t + 1
                          for s, k, t, d, p in zip(S, K, st, dl, pd))
                O = tuple(max(o, 1) for o in O)
                out = np.empty((n, cout) + O, dt)
                _cupy.correlate(x, w, out, st, dl, pd, g)
                _cupy.gemm_conv(x, w, st, dl, pd, g, out=out)
                _cupy.gemm_conv_adjoint(out, w, S, st, dl, pd, g)
    kernels = sorted({k[0] for k in launcher.launches})
    print("asan ok", len(launcher.launches), " ".join(kernels))


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
