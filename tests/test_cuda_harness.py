"""The CUDA kernels of fastconv/cuda, compiled with g++ and run on the CPU (no GPU).

harness/harness.cpp #includes the same .cu files CuPy compiles; the harness runs every
block of a launch (phase by phase for the shared-memory kernels), so index arithmetic,
tiling, channel chunking and zero-padding boundaries are checked here against
scipy.signal.correlate / numpy.correlate / torch.nn.functional.conv*d.
"""
import importlib.util
import itertools
import os
import shutil

import numpy as np
import pytest
import scipy.signal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS_PY = os.path.join(ROOT, "fastconv", "cuda", "harness", "harness.py")

pytestmark = pytest.mark.skipif(shutil.which(os.environ.get("CXX", "g++")) is None,
                                reason="g++ not installed")

DTYPES = ["float32", "float64", "complex64", "complex128", "int64"]
RTOL = {"float32": 2e-5, "float64": 1e-12, "complex64": 2e-5, "complex128": 1e-12,
        "int64": 0}


def load_harness_module():
    spec = importlib.util.spec_from_file_location("fastconv_cuda_harness", HARNESS_PY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def launcher(tmp_path_factory):
    h = load_harness_module()
    return h.HarnessLauncher(h.build())


from _helpers import rand  # noqa: E402  (tests/ is on sys.path under pytest)


def ref_correlate(x, w, O, stride, dilation, pad, groups):
    """Oracle from scipy.signal.correlate (which conjugates in2: pass conj(w))."""
    N, Cin = x.shape[:2]
    Cout, cin_g = w.shape[:2]
    S, K = x.shape[2:], w.shape[2:]
    need = [(o - 1) * s + (k - 1) * d + 1 for o, s, k, d in zip(O, stride, K, dilation)]
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, max(0, n - s - p))
                                       for p, n, s in zip(pad, need, S)])
    wd = np.zeros((Cout, cin_g) + tuple((k - 1) * d + 1 for k, d in zip(K, dilation)), w.dtype)
    wd[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = w
    out = np.zeros((N, Cout) + tuple(O), dtype=np.result_type(x.dtype, np.float64)
                   if x.dtype.kind != "i" else np.int64)
    cout_g = Cout // groups
    sub = tuple(slice(0, (o - 1) * s + 1, s) for o, s in zip(O, stride))
    for n, co, ci in itertools.product(range(N), range(Cout), range(cin_g)):
        xc = xp[(n, (co // cout_g) * cin_g + ci)]
        full = scipy.signal.correlate(xc, np.conj(wd[co, ci]), mode="valid", method="direct")
        out[n, co] += full[sub]
    return out


def assert_close(got, want, dtype):
    if np.dtype(dtype).kind == "i":
        np.testing.assert_array_equal(got, want)
    else:
        scale = max(1.0, float(np.max(np.abs(want))) if want.size else 1.0)
        np.testing.assert_allclose(got, want, rtol=RTOL[dtype], atol=RTOL[dtype] * scale * 10)


def base_geom(nd, N, Cin, Cout, groups, S, K, O, st, dl, pd):
    return [nd, N, Cin, Cout, groups, *S, *K, *O, *st, *dl, *pd]


def tiled_extra(O, K, st, dl, tile, cob, cic, rw=1):
    """Geometry after the nd == 3 arrays, without the trailing nCOg and rw."""
    span = [tile[0], tile[1], tile[2] * rw]  # outputs per block along each axis
    ext = [(t - 1) * s + (k - 1) * d + 1 for t, s, k, d in zip(span, st, K, dl)]
    return [*tile, cob, cic, *ext, *[-(-o // t) for o, t in zip(O, span)]], ext


def run_conv(launcher, kernel, x, w, O, stride, dilation, pad, groups, tile=None, cob=4,
             cic=None, block=128, rw=1, index32=1):
    """Launch one conv kernel by hand (geometry built here from fc_common.cuh's layout)."""
    N, Cin = x.shape[:2]
    Cout = w.shape[0]
    nd = x.ndim - 2
    out = np.full((N, Cout) + tuple(O), 7, dtype=x.dtype)  # garbage: must be overwritten
    g = base_geom(nd, N, Cin, Cout, groups, x.shape[2:], w.shape[2:], O, stride, dilation, pad)
    if kernel == "fc_corr_tiled":
        cin_g, cout_g = Cin // groups, Cout // groups
        cob = min(cob, cout_g)
        cic = cic or cin_g
        extra, ext = tiled_extra(O, w.shape[2:], stride, dilation, tile, cob, cic, rw)
        ncog = -(-cout_g // cob)
        g = np.array(g + extra + [ncog, rw], np.int64)
        nthr = int(np.prod(tile))
        nblocks = N * groups * ncog * int(np.prod(extra[8:11]))
        smem = (cic * int(np.prod(ext)) + cob * rw * nthr) * x.dtype.itemsize
        grid = max(1, min(nblocks, 5))  # few blocks: exercises the block-stride loop
        launcher.launch(kernel, x.dtype, grid, nthr, (x, w, out, g, nblocks), smem)
    else:
        if kernel == "fc_depthwise":
            g = g + [index32]  # FC_D_INDEX32
        g = np.array(g, np.int64)
        grid = max(1, min(3, -(-out.size // block)))  # small grid: grid-stride loop
        launcher.launch(kernel, x.dtype, grid, block, (x, w, out, g, out.size))
    return out


def out_size(S, K, st, dl, pd, extra_after=0):
    return tuple((s + p + extra_after - d * (k - 1) - 1) // t + 1
                 for s, k, t, d, p in zip(S, K, st, dl, pd))


# (N, Cin, Cout, groups, S, K, stride, dilation, pad)
CASES = [
    (1, 1, 1, 1, (17,), (4,), (1,), (1,), (0,)),
    (2, 3, 4, 1, (19,), (5,), (2,), (3,), (4,)),
    (1, 4, 6, 2, (9, 11), (3, 2), (1, 2), (2, 1), (1, 3)),
    (2, 2, 3, 1, (13, 7), (5, 5), (3, 1), (1, 2), (4, 0)),
    (1, 6, 4, 2, (5, 6, 7), (2, 3, 2), (1, 2, 1), (2, 1, 3), (1, 0, 2)),
    (1, 2, 2, 1, (4, 3, 5, 4), (2, 2, 3, 1), (1, 2, 1, 1), (1, 1, 2, 1), (1, 0, 1, 0)),
]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{len(c[4])}d-g{c[3]}")
def test_corr_nd(launcher, dtype, case):
    N, Cin, Cout, groups, S, K, st, dl, pd = case
    rng = np.random.default_rng(0)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // groups) + K, dtype)
    O = out_size(S, K, st, dl, pd, extra_after=2)  # also reads zeros past the end
    got = run_conv(launcher, "fc_corr_nd", x, w, O, st, dl, pd, groups)
    assert_close(got, ref_correlate(x, w, O, st, dl, pd, groups), dtype)


def to3(case):
    N, Cin, Cout, groups, S, K, st, dl, pd = case
    one = (1,) * (3 - len(S))
    return (N, Cin, Cout, groups, one + S, one + K, one + st, one + dl, (0,) * (3 - len(S)) + pd)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [to3(c) for c in CASES[:5]], ids=lambda c: f"g{c[3]}-{c[4]}")
@pytest.mark.parametrize("tile,cob,cic,rw", [((1, 4, 8), 4, None, 1), ((2, 2, 4), 3, 1, 2),
                                             ((1, 1, 32), 1, 2, 4), ((3, 5, 2), 2, None, 3),
                                             ((1, 2, 4), 4, None, 4)])
def test_corr_tiled(launcher, dtype, case, tile, cob, cic, rw):
    N, Cin, Cout, groups, S, K, st, dl, pd = case
    rng = np.random.default_rng(1)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // groups) + K, dtype)
    O = out_size(S, K, st, dl, pd, extra_after=3)
    got = run_conv(launcher, "fc_corr_tiled", x, w, O, st, dl, pd, groups, tile=tile,
                   cob=cob, cic=cic and min(cic, Cin // groups), rw=rw)
    assert_close(got, ref_correlate(x, w, O, st, dl, pd, groups), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mult", [1, 3])
@pytest.mark.parametrize("index32", [0, 1])
def test_depthwise(launcher, dtype, mult, index32):
    rng = np.random.default_rng(2)
    C = 3
    S, K, st, dl, pd = (1, 10, 9), (1, 3, 4), (1, 2, 1), (1, 2, 1), (0, 3, 2)
    x = rand(rng, (2, C) + S, dtype)
    w = rand(rng, (C * mult, 1) + K, dtype)
    O = out_size(S, K, st, dl, pd, extra_after=2)
    got = run_conv(launcher, "fc_depthwise", x, w, O, st, dl, pd, C, index32=index32)
    assert_close(got, ref_correlate(x, w, O, st, dl, pd, C), dtype)


def test_conv2d_against_torch(launcher):
    import torch  # the oracle: a test dependency
    rng = np.random.default_rng(3)
    x = rand(rng, (2, 4, 21, 18), "float64")
    w = rand(rng, (6, 2, 3, 5), "float64")
    st, dl, p = (2, 1), (1, 2), (2, 3)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=st,
                                      padding=p, dilation=dl, groups=2).numpy()
    O = want.shape[2:]
    for kernel, kw in [("fc_corr_nd", {}), ("fc_corr_tiled", {"tile": (1, 8, 8)})]:
        x3, w3 = x[:, :, None], w[:, :, None]
        got = run_conv(launcher, kernel, x3, w3, (1,) + O, (1,) + st, (1,) + dl, (0,) + p, 2,
                       **kw)
        np.testing.assert_allclose(got[:, :, 0], want, rtol=1e-12, atol=1e-12)


def test_int64_wraps_like_numpy(launcher):
    """int64 arithmetic wraps modulo 2**64 (oracle: numpy.correlate on int64)."""
    rng = np.random.default_rng(4)
    x = rng.integers(-2**62, 2**62, size=40, dtype=np.int64)
    w = rng.integers(-2**62, 2**62, size=5, dtype=np.int64)
    with np.errstate(over="ignore"):
        want = np.correlate(x, w, mode="valid")
    O = (want.size,)
    got = run_conv(launcher, "fc_corr_nd", x[None, None], w[None, None], O, (1,), (1,), (0,), 1)
    np.testing.assert_array_equal(got[0, 0], want)
    got = run_conv(launcher, "fc_corr_tiled", x[None, None, None, None], w[None, None, None, None],
                   (1, 1) + O, (1, 1, 1), (1, 1, 1), (0, 0, 0), 1, tile=(1, 1, 16), rw=2)
    np.testing.assert_array_equal(got[0, 0, 0, 0], want)


@pytest.mark.parametrize("dtype", ["float32", "complex128", "int64"])
def test_im2col(launcher, dtype):
    """cols @ weights == correlation (oracle: scipy), any spatial ndim."""
    rng = np.random.default_rng(5)
    for S, K, st, dl, pd in [((11,), (3,), (2,), (2,), (1,)),
                             ((7, 8), (2, 3), (1, 2), (2, 1), (1, 1)),
                             ((4, 5, 3), (2, 2, 2), (1, 1, 2), (1, 2, 1), (0, 1, 1))]:
        N, Cin, Cout = 2, 3, 2
        x = rand(rng, (N, Cin) + S, dtype)
        w = rand(rng, (Cout, Cin) + K, dtype)
        O = out_size(S, K, st, dl, pd, extra_after=1)
        KP, P = int(np.prod(K)), int(np.prod(O))
        cols = np.full((N, Cin, KP, P), 5, dtype=x.dtype)
        g = np.array(base_geom(len(S), N, Cin, Cout, 1, S, K, O, st, dl, pd), np.int64)
        launcher.launch("fc_im2col", x.dtype, 2, 64, (x, cols, g, cols.size))
        got = np.matmul(w.reshape(Cout, Cin * KP), cols.reshape(N, Cin * KP, P))
        assert_close(got.reshape((N, Cout) + O), ref_correlate(x, w, O, st, dl, pd, 1), dtype)


@pytest.mark.parametrize("dtype", ["float32", "complex128", "int64"])
def test_col2im(launcher, dtype):
    """fc_col2im against a scatter-add written out in NumPy: every tap of every column
    lands at o*stride + k*dilation - pad, dropped outside x; negative pads included."""
    rng = np.random.default_rng(6)
    for S, K, O, st, dl, pd in [((11,), (3,), (6,), (2,), (2,), (1,)),
                                ((9, 8), (2, 3), (4, 4), (2, 2), (2, 1), (1, -1)),
                                ((4, 5, 3), (2, 2, 2), (4, 3, 2), (1, 2, 2), (1, 2, 1),
                                 (0, 1, 1)),
                                ((6,), (4,), (5,), (3,), (1,), (-2,))]:
        N, Cin = 2, 3
        KP, P = int(np.prod(K)), int(np.prod(O))
        cols = rand(rng, (N, Cin, KP, P), dtype)
        x = np.full((N, Cin) + S, 7, dtype=cols.dtype)
        g = np.array(base_geom(len(S), N, Cin, 1, 1, S, K, O, st, dl, pd), np.int64)
        launcher.launch("fc_col2im", cols.dtype, 3, 64, (cols, x, g, x.size))
        want = np.zeros_like(x)
        c6 = cols.reshape((N, Cin) + K + O)
        for k in np.ndindex(*K):
            for o in np.ndindex(*O):
                pos = tuple(oi * s + ki * d - p for oi, ki, s, d, p in zip(o, k, st, dl, pd))
                if all(0 <= q < n for q, n in zip(pos, S)):
                    want[(slice(None), slice(None)) + pos] += c6[(slice(None), slice(None))
                                                                 + k + o]
        assert_close(x, want, dtype)


def test_launch_limits_are_enforced(launcher):
    x = np.ones((1, 1, 1, 1, 8), np.float32)
    w = np.ones((1, 1, 1, 1, 3), np.float32)
    out = np.zeros((1, 1, 1, 1, 6), np.float32)
    extra, ext = tiled_extra((1, 1, 6), (1, 1, 3), (1, 1, 1), (1, 1, 1), (1, 1, 8), 1, 1)
    g = np.array(base_geom(3, 1, 1, 1, 1, (1, 1, 8), (1, 1, 3), (1, 1, 6), (1, 1, 1),
                           (1, 1, 1), (0, 0, 0)) + extra + [1, 1], np.int64)
    with pytest.raises(RuntimeError, match="rc=-2"):  # block != tile threads
        launcher.launch("fc_corr_tiled", np.float32, 1, 4, (x, w, out, g, 1), 4096)
    with pytest.raises(RuntimeError, match="rc=-1"):  # > 48 KiB shared memory
        launcher.launch("fc_corr_tiled", np.float32, 1, 8, (x, w, out, g, 1), 49 * 1024)
    launcher.launch("fc_corr_tiled", np.float32, 1, 8, (x, w, out, g, 1), 4096)
    np.testing.assert_array_equal(out.ravel(), np.full(6, 3.0))


def _sanitizer_libs():
    import subprocess
    libs = []
    for name in ("libasan.so", "libubsan.so"):
        try:
            p = subprocess.run([os.environ.get("CXX", "g++"), f"-print-file-name={name}"],
                               capture_output=True, text=True).stdout.strip()
        except OSError:
            return None
        if not os.path.isabs(p) or not os.path.exists(p):
            return None
        libs.append(p)
    return libs


_SANITIZER_LIBS = _sanitizer_libs()


@pytest.mark.skipif(_SANITIZER_LIBS is None,
                    reason="needs g++'s AddressSanitizer/UBSan runtimes; not installed here")
def test_kernels_under_address_sanitizer(tmp_path):
    """Every kernel, launched by the real orchestration, stays inside its buffers and its
    shared memory (AddressSanitizer + UBSan build of the harness, in a subprocess)."""
    import subprocess
    import sys
    libs = _SANITIZER_LIBS
    h = load_harness_module()
    lib = h.build(str(tmp_path), ["-fsanitize=address,undefined", "-fno-sanitize-recover=all",
                                  "-fno-omit-frame-pointer", "-O0"])
    env = dict(os.environ, LD_PRELOAD=" ".join(libs), ASAN_OPTIONS="detect_leaks=0")
    res = subprocess.run([sys.executable, os.path.join(os.path.dirname(HARNESS_PY),
                                                       "asan_check.py"), ROOT, lib],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0 and "asan ok" in res.stdout, res.stdout + res.stderr[-4000:]
    assert "fc_corr_tiled fc_depthwise fc_im2col" in res.stdout and "fc_corr_nd" in res.stdout
    assert "fc_col2im" in res.stdout
