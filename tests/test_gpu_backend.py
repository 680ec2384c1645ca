"""fastconv._cupy orchestration without a GPU: NumPy stands in for CuPy, scipy.fft for
cupyx.scipy.fft, and the CPU harness (the same .cu sources compiled with g++) for
cupy.RawModule launches.  Oracles: scipy.signal, torch.nn.functional.
"""
import importlib.util
import os
import shutil
import sys
import types

import numpy as np
import pytest
import scipy.signal

from fastconv import _cupy

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS_PY = os.path.join(ROOT, "fastconv", "cuda", "harness", "harness.py")
HAVE_GXX = shutil.which(os.environ.get("CXX", "g++")) is not None

DTYPES = ["float32", "float64", "complex64", "complex128", "int64"]
TOL = {"float32": 3e-5, "float64": 1e-11, "complex64": 3e-5, "complex128": 1e-11, "int64": 0}


@pytest.fixture(scope="module")
def standin(tmp_path_factory):
    spec = importlib.util.spec_from_file_location("fastconv_cuda_harness", HARNESS_PY)
    h = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(h)
    launcher = h.HarnessLauncher(h.build())
    with _cupy._use_standin(launcher):
        yield launcher


from _helpers import rand  # noqa: E402  (tests/ is on sys.path under pytest)


def close(got, want, dtype):
    dtype = np.dtype(dtype).name
    if dtype == "int64":
        np.testing.assert_array_equal(got, want)
    else:
        scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
        np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=10 * TOL[dtype] * scale)


def torch_conv(x, w, stride, padding, dilation, groups):
    import torch  # the oracle: a test dependency
    f = [None, torch.nn.functional.conv1d, torch.nn.functional.conv2d,
         torch.nn.functional.conv3d][x.ndim - 2]
    return f(torch.from_numpy(x), torch.from_numpy(w), stride=stride, padding=padding,
             dilation=dilation, groups=groups).numpy()


def last_kernel(launcher):
    return launcher.launches[-1][0]


# ---------------------------------------------------------------------------- direct

@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case,kernel", [
    # (N, Cin, Cout, groups, S, K, stride, dilation, padding)
    ((2, 3, 4, 1, (40,), (5,), (2,), (3,), (4,)), "fc_corr_tiled"),
    ((2, 4, 6, 2, (23, 19), (3, 4), (2, 1), (1, 2), (1, 3)), "fc_corr_tiled"),
    ((1, 3, 5, 1, (9, 10, 8), (3, 2, 3), (1, 2, 1), (2, 1, 1), (1, 0, 2)), "fc_corr_tiled"),
    ((2, 4, 8, 4, (17, 15), (3, 3), (1, 1), (1, 1), (1, 1)), "fc_depthwise"),
    ((1, 3, 3, 3, (11, 9, 7), (3, 3, 3), (2, 1, 1), (1, 1, 2), (1, 1, 1)), "fc_depthwise"),
    ((1, 2, 1, 1, (13100,), (13000,), (1,), (1,), (0,)), "fc_corr_nd"),  # > smem
    ((1, 1, 1, 1, (13100,), (13000,), (1,), (1,), (0,)), "fc_depthwise"),  # > smem
    ((1, 1, 1, 1, (40, 37), (9, 8), (1, 1), (1, 1), (8, 7)), "fc_corr_tiled"),  # signal 2-D
    ((1, 2, 5, 1, (9, 203), (3, 4), (1, 1), (1, 2), (1, 3)), "fc_corr_tiled"),  # rw = 4
    ((1, 1, 1, 1, (700,), (40,), (1,), (1,), (39,)), "fc_corr_tiled"),  # 1-D rw = 3
    ((2, 3, 6, 3, (20, 21), (7, 6), (1, 2), (2, 1), (4, 2)), "fc_corr_tiled"),  # big depthwise
])
def test_correlate_vs_torch(standin, dtype, case, kernel):
    N, Cin, Cout, groups, S, K, st, dl, p = case
    rng = np.random.default_rng(0)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // groups) + K, dtype)
    want = torch_conv(x, w, st, p, dl, groups)
    # the engine pads before only: symmetric torch padding == pad before, and the output
    # size reads the zeros after
    out = np.full(want.shape, 3, dtype=dtype)
    res = _cupy.correlate(x, w, out, st, dl, p, groups)
    assert res is out
    assert last_kernel(standin) == kernel
    close(out, want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shapes", [((37,), (6,)), ((12, 15), (4, 3)), ((6, 7, 5), (2, 3, 2)),
                                    ((5, 4, 3, 4), (2, 2, 1, 3)), ((40,), (33,)),
                                    ((15, 14), (6, 7))])
def test_correlate_vs_scipy(standin, dtype, shapes):
    """scipy.signal.correlate(in1, in2, 'full') == engine with pad = K-1 (in2 conjugated
    by scipy, so the engine gets conj(in2))."""
    s1, s2 = shapes
    rng = np.random.default_rng(1)
    a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
    want = scipy.signal.correlate(a, b, mode="full", method="direct")
    nd = a.ndim
    out = np.empty((1, 1) + want.shape, dtype=dtype)
    _cupy.correlate(a[None, None], np.conj(b)[None, None].copy(), out, (1,) * nd, (1,) * nd,
                    tuple(k - 1 for k in s2), 1)
    taps = int(np.prod(s2))
    assert last_kernel(standin) == ("fc_corr_nd" if nd > 3 else
                                    "fc_depthwise" if taps <= 27 else "fc_corr_tiled")
    close(out[0, 0], want, dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_correlate_tiled_all_dtypes(standin, dtype):
    rng = np.random.default_rng(2)
    x = rand(rng, (2, 6, 13, 12), dtype)
    w = rand(rng, (9, 3, 3, 2), dtype)  # groups=2: C_out/groups=... 9 not divisible
    with pytest.raises(ValueError, match="groups"):
        _cupy.correlate(x, w, np.empty((2, 9, 11, 11), dtype), (1, 1), (1, 1), (0, 0), 2)
    w = rand(rng, (10, 3, 3, 2), dtype)
    out = np.empty((2, 10, 7, 8), dtype)
    _cupy.correlate(x, w, out, (2, 2), (1, 2), (1, 2), 2)
    assert last_kernel(standin) == "fc_corr_tiled"
    want = np.zeros(out.shape, dtype=np.result_type(dtype, np.float64)
                    if np.dtype(dtype).kind != "i" else np.int64)
    xp = np.pad(x, [(0, 0), (0, 0), (1, 4), (2, 4)])
    for n in range(2):
        for co in range(10):
            for ci in range(3):
                wd = np.conj(np.kron(w[co, ci], np.array([[1, 0]], w.dtype))[:, :3])
                full = scipy.signal.correlate(xp[n, (co // 5) * 3 + ci].astype(want.dtype),
                                              wd.astype(want.dtype), mode="valid",
                                              method="direct")
                want[n, co] += full[:13:2, :15:2][:7, :8]
    close(out, want, dtype)


def test_correlate_empty_and_errors(standin):
    x = np.ones((1, 2, 0), np.float64)
    w = np.ones((1, 2, 3), np.float64)
    out = np.full((1, 1, 4), 5.0)
    _cupy.correlate(x, w, out, (1,), (1,), (0,), 1)
    np.testing.assert_array_equal(out, 0)
    with pytest.raises(TypeError, match="dtype"):
        _cupy.correlate(np.ones((1, 1, 5), np.float32), np.ones((1, 1, 2)),
                        np.ones((1, 1, 4)), (1,), (1,), (0,), 1)
    with pytest.raises(ValueError, match="stride"):
        _cupy.correlate(np.ones((1, 1, 5)), np.ones((1, 1, 2)), np.ones((1, 1, 4)),
                        (0,), (1,), (0,), 1)
    with pytest.raises(ValueError, match="contiguous"):
        _cupy.correlate(np.ones((1, 1, 10))[..., ::2], np.ones((1, 1, 2)), np.ones((1, 1, 4)),
                        (1,), (1,), (0,), 1)


def test_correlate_launch_plans_are_per_geometry(standin):
    """correlate() memoises its launch plan per (shapes, stride, dilation, pad, groups):
    with the same array shapes, every change of stride, dilation or pad must still give its
    own result, repeated calls must follow new data, and bad geometry is still refused after
    a good one was planned.  Oracle: a float64 direct sum."""
    rng = np.random.default_rng(11)
    x, w = rand(rng, (1, 1, 40), "float64"), rand(rng, (1, 1, 5), "float64")

    def want(stride, dilation, pad, O=12):
        xp = np.concatenate([np.zeros(pad), x[0, 0], np.zeros(200)])
        return np.array([sum(xp[o * stride + k * dilation] * w[0, 0, k] for k in range(5))
                         for o in range(O)])

    for st, dl, pd in [(1, 1, 0), (2, 1, 0), (1, 2, 0), (1, 1, 3), (1, 1, 0), (3, 2, 1)]:
        out = np.full((1, 1, 12), 9.0)
        _cupy.correlate(x, w, out, (st,), (dl,), (pd,), 1)
        close(out[0, 0], want(st, dl, pd), "float64")
    x[...] = rand(rng, x.shape, "float64")          # same geometry, new data
    out = np.full((1, 1, 12), 9.0)
    _cupy.correlate(x, w, out, (1,), (1,), (0,), 1)
    close(out[0, 0], want(1, 1, 0), "float64")
    with pytest.raises(ValueError, match="stride"):
        _cupy.correlate(x, w, out, (0,), (1,), (0,), 1)
    with pytest.raises(TypeError, match="stride must be 1 ints"):
        _cupy.correlate(x, w, out, [[1]], (1,), (0,), 1)
    with pytest.raises(ValueError, match="groups"):
        _cupy.correlate(x, w, out, (1,), (1,), (0,), 2)


def test_numpy_without_standin_is_refused(monkeypatch):
    monkeypatch.setattr(_cupy, "_standin_modules", ())
    with pytest.raises(TypeError, match="CuPy arrays"):
        _cupy.correlate(np.ones((1, 1, 5)), np.ones((1, 1, 2)), np.ones((1, 1, 4)),
                        (1,), (1,), (0,), 1)


def test_tile_plan_fits_shared_memory():
    for O3, K3 in [((1, 1, 10**6), (1, 1, 3)), ((1, 2048, 2048), (1, 63, 63)),
                   ((128, 128, 128), (1, 5, 5)), ((1, 3, 1000), (1, 3, 3))]:
        for isz in (4, 8, 16):
            plan = _cupy._tile_plan(isz, O3, K3, (1, 1, 1), (1, 1, 1), 64, 64)
            if plan is not None:
                extra, nthr, smem = plan
                assert smem <= 48 * 1024 and 32 <= nthr <= 256
                assert nthr == extra[0] * extra[1] * extra[2]
                assert 1 <= extra[12] <= 4 and 1 <= extra[3] <= 4
    assert _cupy._tile_plan(4, (1, 1, 10**6), (1, 1, 30001), (1, 1, 1), (1, 1, 1), 1, 1) is None
    extra, nthr, smem = _cupy._tile_plan(4, (1, 2048, 2048), (1, 3, 3), (1, 1, 1), (1, 1, 1),
                                         64, 64)
    assert extra[12] == 4 and extra[3] == 4  # full register block for a big fp32 layer
    extra, nthr, smem = _cupy._tile_plan(16, (1, 2048, 2048), (1, 3, 3), (1, 1, 1),
                                         (1, 1, 1), 64, 64)
    assert extra[3] * extra[12] * nthr * 16 <= 24 * 1024  # complex128: smaller block


# ---------------------------------------------------------------------------- GEMM

@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128", "int64"])
@pytest.mark.parametrize("case", [
    (2, 4, 6, 2, (23, 19), (3, 4), (2, 1), (1, 2), (1, 3)),
    (3, 4, 8, 1, (10, 12), (1, 1), (1, 1), (1, 1), (0, 0)),   # 1x1: no im2col
    (2, 3, 4, 1, (30,), (4,), (3,), (2,), (2,)),
    (1, 2, 4, 2, (6, 7, 5), (2, 3, 2), (1, 2, 1), (1, 1, 2), (1, 0, 1)),
])
def test_gemm_conv(standin, dtype, case, monkeypatch):
    N, Cin, Cout, groups, S, K, st, dl, p = case
    rng = np.random.default_rng(3)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // groups) + K, dtype)
    if dtype in ("float32", "float64"):
        want = torch_conv(x, w, st, p, dl, groups)
    else:  # torch has no int64/complex CPU conv everywhere: float64 parts by torch
        parts = [torch_conv(np.ascontiguousarray(xx), np.ascontiguousarray(ww), st, p, dl, groups)
                 for xx, ww in ((x.real.astype(np.float64), w.real.astype(np.float64)),
                                (x.imag.astype(np.float64), w.imag.astype(np.float64)),
                                (x.real.astype(np.float64), w.imag.astype(np.float64)),
                                (x.imag.astype(np.float64), w.real.astype(np.float64)))]
        want = parts[0] - parts[1] + 1j * (parts[2] + parts[3])
        want = want.real.round().astype(np.int64) if dtype == "int64" else want
    monkeypatch.setattr(_cupy, "_GEMM_WORKSPACE", 1)  # one image per chunk: batching path
    n0 = len(standin.launches)
    got = _cupy.gemm_conv(x, w, st, dl, p, groups)
    kernels = {k[0] for k in standin.launches[n0:]}
    assert kernels == (set() if K == (1, 1) else {"fc_im2col"})
    assert got.shape == want.shape and got.dtype == np.dtype(dtype)
    close(got, want, dtype)


def test_gemm_conv_with_out_matches_correlate(standin):
    rng = np.random.default_rng(4)
    x = rand(rng, (2, 4, 9, 8), "float64")
    w = rand(rng, (6, 2, 3, 3), "float64")
    a = np.empty((2, 6, 5, 6))
    b = np.empty((2, 6, 5, 6))
    _cupy.gemm_conv(x, w, (2, 1), (1, 1), (1, 0), 2, out=a)
    _cupy.correlate(x, w, b, (2, 1), (1, 1), (1, 0), 2)
    np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", [
    # (y shape, w shape, x_spatial, stride, dilation, pad, groups)
    ((2, 4, 5, 4), (4, 3, 3, 2), (10, 9), (2, 2), (1, 2), (1, 0), 2),
    ((1, 3, 6), (3, 2, 4), (13,), (2,), (1,), (-1,), 1),           # negative pad cuts
    ((2, 2, 3, 2, 3), (2, 1, 2, 2, 2), (6, 5, 7), (2, 2, 2), (1, 1, 2), (0, 1, 1), 2),
])
def test_gemm_conv_adjoint(standin, case):
    """The GPU transposed convolution (one GEMM + fc_col2im) against a scatter-add in
    float64 NumPy: x[n, g*Cg + c, o*s + k*d - p] += y[n, co, o] * w[co, c, k]."""
    ys, ws, S, st, dl, pd, g = case
    rng = np.random.default_rng(sum(ys))
    y, w = rand(rng, ys, "float64"), rand(rng, ws, "float64")
    got = _cupy.gemm_conv_adjoint(y, w, S, st, dl, pd, g)
    cog, cg = ws[0] // g, ws[1]
    want = np.zeros((ys[0], cg * g) + S)
    for co in range(ws[0]):
        gr = co // cog
        for c in range(cg):
            for k in np.ndindex(*ws[2:]):
                for o in np.ndindex(*ys[2:]):
                    pos = tuple(oi * s + ki * d - p for oi, ki, s, d, p in zip(o, k, st, dl, pd))
                    if all(0 <= q < n for q, n in zip(pos, S)):
                        want[(slice(None), gr * cg + c) + pos] += (
                            y[(slice(None), co) + o] * w[(co, c) + k])
    close(got, want, "float64")


def test_gemm_conv_adjoint_bad_input(standin):
    y, w = np.ones((1, 4, 5), np.float32), np.ones((4, 2, 3), np.float32)
    with pytest.raises(TypeError, match="y and w must share one dtype"):
        _cupy.gemm_conv_adjoint(y, w.astype(np.float64), (9,), (2,), (1,), (0,), 2)
    with pytest.raises(ValueError, match="x_spatial"):
        _cupy.gemm_conv_adjoint(y, w, (9, 9), (2,), (1,), (0,), 2)
    with pytest.raises(ValueError, match="groups=3"):
        _cupy.gemm_conv_adjoint(y, w, (9,), (2,), (1,), (0,), 3)
    with pytest.raises(ValueError, match="stride"):
        _cupy.gemm_conv_adjoint(y, w, (9,), (0,), (1,), (0,), 2)


# ---------------------------------------------------------------------------- FFT

FFT_CASES = [
    # (shape1, shape2, axes)
    ((1000,), (31,), (0,)),
    ((257,), (300,), (0,)),
    ((4, 600), (1, 25), (1,)),
    ((3, 40, 50), (3, 7, 5), (1, 2)),
    ((200, 64), (9, 64), (0,)),
    ((90, 80, 6), (5, 70, 6), (0, 1)),
    ((30, 20, 10), (4, 3, 2), (0, 1, 2)),
]


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("engine,oracle", [("fft_convolve", "fftconvolve"),
                                           ("oaconvolve", "oaconvolve")])
@pytest.mark.parametrize("case", FFT_CASES, ids=lambda c: f"{c[0]}x{c[1]}@{c[2]}")
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_fft_engines_vs_scipy(standin, dtype, engine, oracle, case, mode):
    s1, s2, axes = case
    rng = np.random.default_rng(5)
    a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
    if mode == "valid" and not all(s1[ax] >= s2[ax] for ax in axes):
        a, b = b, a
    want = getattr(scipy.signal, oracle)(a, b, mode=mode, axes=axes)
    full = [a.shape[ax] + b.shape[ax] - 1 for ax in axes]
    shape = [want.shape[ax] for ax in axes]
    start = [(f - s) // 2 if mode == "same" else (f - s if mode == "valid" else 0)
             for f, s in zip(full, shape)]
    if mode == "valid":
        start = [b.shape[ax] - 1 for ax in axes]
    got = getattr(_cupy, engine)(a, b, axes, start, shape)
    assert got.dtype == np.dtype(dtype) and got.shape == want.shape
    close(got, want, dtype if "complex" in dtype or dtype == "float32" else "float64")


def test_oaconvolve_really_blocks(standin, monkeypatch):
    calls = []
    orig = _cupy._spectral_product

    def spy(be, in1, in2, fshape, axes, real):
        calls.append((in1.shape, tuple(fshape)))
        return orig(be, in1, in2, fshape, axes, real)

    monkeypatch.setattr(_cupy, "_spectral_product", spy)
    a = np.random.default_rng(6).standard_normal(100_000)
    b = np.random.default_rng(7).standard_normal(101)
    got = _cupy.oaconvolve(a, b, (0,), (0,), (a.size + b.size - 1,))
    np.testing.assert_allclose(got, scipy.signal.fftconvolve(a, b), atol=1e-9)
    (shape, fshape), = calls
    assert len(shape) == 2 and shape[0] > 1 and fshape[0] < 4096


def test_fft_int_input_and_empty(standin):
    a = np.arange(10)
    b = np.array([1, 2, 3])
    got = _cupy.fft_convolve(a, b, (0,), (0,), (12,))
    assert got.dtype == np.float64
    np.testing.assert_allclose(got, np.convolve(a, b), atol=1e-9)
    got = _cupy.fft_convolve(np.ones((3, 0)), np.ones((3, 4)), (1,), (0,), (0,))
    assert got.shape == (3, 0)


# ---------------------------------------------------------------------------- modules

class FakeCupyArray:
    """Stands for cupy.ndarray in tests without CuPy."""

    class device:
        id = 0

    __cuda_array_interface__ = {"shape": (3,), "typestr": "<f8", "data": (0, False),
                                "version": 3}


def test_get_array_module_numpy_only():
    assert _cupy.get_array_module(np.ones(3), [1.0], 2, None, np.float32(1)) is np
    assert not _cupy.is_cupy_array(np.ones(3))


def test_get_array_module_without_cupy(monkeypatch):
    monkeypatch.setattr(_cupy, "_cupy_module", lambda import_=True: None)
    with pytest.raises(ImportError, match=r"in2 is a GPU array.*fastconv\[gpu\]"):
        _cupy.get_array_module(np.ones(3), FakeCupyArray(), names=("in1", "in2"))


def test_get_array_module_mixed(monkeypatch):
    fake = types.SimpleNamespace(ndarray=FakeCupyArray)
    monkeypatch.setattr(_cupy, "_cupy_module", lambda import_=True: fake)
    assert _cupy.get_array_module(FakeCupyArray(), 3) is fake
    assert _cupy.is_cupy_array(FakeCupyArray())
    with pytest.raises(TypeError, match=r"in1 is a numpy.ndarray \(host memory\).*in2 is a "
                                        r".*FakeCupyArray \(GPU 0\)"):
        _cupy.get_array_module(np.ones(3), FakeCupyArray(), names=("in1", "in2"))
    other = FakeCupyArray()
    other.device = types.SimpleNamespace(id=1)
    with pytest.raises(ValueError, match="different GPUs"):
        _cupy.get_array_module(FakeCupyArray(), other)


def test_importing_fastconv_does_not_import_cupy():
    import subprocess
    code = ("import sys, numpy as np, fastconv, fastconv._cupy as c; "
            "c.get_array_module(np.ones(2)); assert 'cupy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_kernel_sources_expand_headers():
    for f in _cupy._FILE_KERNELS:
        src = _cupy._source(f)
        assert "#include" not in src and "fc_complex" in src
        for k in _cupy._FILE_KERNELS[f]:
            assert f"void {k}(" in src


def test_default_constants():
    c = _cupy.default_constants()
    assert set(c) == {"direct_s_per_mac", "fft_s_per_flop", "gemm_s_per_mac",
                      "call_overhead_s"}
    assert all(0 < v < 1e-3 for v in c.values())
    if _cupy._cupy_module() is None:
        with pytest.raises(RuntimeError, match="GPU"):
            _cupy.tune_gpu()


@pytest.mark.skipif(_cupy.gpu_available(), reason="a GPU is present: this checks the no-GPU exit")
def test_bench_gpu_without_gpu_says_no_gpu():
    import subprocess
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_gpu.py"),
                          "--quick"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert res.returncode == 0, res.stderr
    assert "no GPU" in res.stdout


# ---------------------------------------------------------------------------- the front

@pytest.fixture
def fake_cupy(standin, monkeypatch):
    """A stand-in 'cupy' module: arrays are a numpy subclass whose type lives in module
    'cupy', so fastconv.signal takes its GPU route and calls the _cupy engines (which then
    run on the numpy data through the harness).  Records every engine call."""
    class ndarray(np.ndarray):
        pass

    ndarray.__module__ = "cupy"
    fake = types.ModuleType("cupy")
    fake.ndarray = ndarray
    fake.__getattr__ = lambda name: getattr(np, name)

    def keep(f):
        return lambda *a, **k: np.asarray(f(*a, **k)).view(ndarray)

    for f in ("asarray", "ascontiguousarray", "empty", "zeros", "full", "array"):
        setattr(fake, f, keep(getattr(np, f)))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(_cupy, "_standin_modules", (np, fake))
    calls = []
    for name in ("correlate", "fft_convolve", "oaconvolve"):
        def spy(*args, _f=getattr(_cupy, name), _n=name, **kw):
            calls.append(_n)
            return _f(*args, **kw)
        monkeypatch.setattr(_cupy, name, spy)
    return ndarray, calls


@pytest.mark.parametrize("dtype", ["float32", "complex128", "int64"])
@pytest.mark.parametrize("method", ["direct", "fft", "auto"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("name", ["convolve", "correlate"])
def test_signal_front_through_gpu_engines(fake_cupy, dtype, method, mode, name):
    import fastconv
    gpu_ndarray, calls = fake_cupy
    rng = np.random.default_rng(8)
    a, b = rand(rng, (30, 27), dtype), rand(rng, (5, 4), dtype)
    got = getattr(fastconv, name)(a.view(gpu_ndarray), b.view(gpu_ndarray), mode=mode,
                                  method=method)
    want = getattr(scipy.signal, name)(a, b, mode=mode, method=method)
    assert calls, "the front did not use the GPU engines"
    assert np.asarray(got).dtype == want.dtype
    close(np.asarray(got), want, dtype)


@pytest.mark.parametrize("name", ["fftconvolve", "oaconvolve"])
def test_signal_front_fft_through_gpu_engines(fake_cupy, name):
    import fastconv
    gpu_ndarray, calls = fake_cupy
    rng = np.random.default_rng(9)
    a, b = rand(rng, (3, 3000), "float64"), rand(rng, (1, 65), "float64")
    got = getattr(fastconv, name)(a.view(gpu_ndarray), b.view(gpu_ndarray), mode="same", axes=1)
    assert calls == ["fft_convolve" if name == "fftconvolve" else "oaconvolve"]
    close(np.asarray(got), getattr(scipy.signal, name)(a, b, mode="same", axes=1), "float64")


# ---------------------------------------------------------------------------- CuPy launcher

def test_cupy_launcher_marshalling(standin, monkeypatch):
    """_CupyLauncher against a fake cupy.RawModule that checks what CuPy needs (a C++
    standard option, name expressions, (grid,), (block,), numpy int64 scalars) and then
    runs the named kernel on the harness."""
    ctype_to_dtype = {v: k for k, v in _cupy._CTYPES.items()}
    modules = []

    class FakeKernel:
        def __init__(self, name):
            self.name = name

        def __call__(self, grid, block, args, shared_mem=0):
            assert isinstance(grid, tuple) and isinstance(block, tuple)
            assert all(type(v) is int for v in grid + block) and block[0] <= 256
            for a in args:
                assert isinstance(a, (np.ndarray, np.int64)), type(a)
            kernel, ctype = self.name.split("<", 1)
            standin.launch(kernel, ctype_to_dtype[ctype[:-1]], grid[0], block[0], args,
                           shared_mem)

    class FakeRawModule:
        def __init__(self, *, code, options, name_expressions):
            assert "-std=c++14" in options and "#include" not in code
            self.names = tuple(name_expressions)
            modules.append(self)
            self.compiled = False

        def compile(self):
            self.compiled = True

        def get_function(self, name):
            assert self.compiled and name in self.names
            return FakeKernel(name)

    class Device:
        def __init__(self, i=0):
            self.id = i

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            return False

    fake = types.SimpleNamespace(ndarray=np.ndarray, RawModule=FakeRawModule,
                                 cuda=types.SimpleNamespace(Device=Device))
    monkeypatch.setattr(_cupy, "_cupy_module", lambda import_=True: fake)
    _cupy._cuda_module.cache_clear()
    _cupy._cuda_function.cache_clear()
    import scipy.fft
    be = _cupy._Backend(np, scipy.fft, _cupy._CupyLauncher(fake, 0), "fake0")
    monkeypatch.setattr(_cupy, "_standin", be)
    try:
        rng = np.random.default_rng(10)
        for dtype in DTYPES:
            for (S, K, groups, cin) in [((30, 31), (3, 3), 1, 4), ((30, 31), (3, 3), 4, 4),
                                        ((5, 4, 3, 4), (2, 2, 1, 2), 1, 2)]:
                x = rand(rng, (2, cin) + S, dtype)
                w = rand(rng, (4, cin // groups) + K, dtype)
                nd = len(S)
                out = np.empty((2, 4) + tuple(s - k + 1 for s, k in zip(S, K)), dtype)
                _cupy.correlate(x, w, out, (1,) * nd, (1,) * nd, (0,) * nd, groups)
                ref = np.empty_like(out)
                with _cupy._use_standin(standin):
                    _cupy.correlate(x, w, ref, (1,) * nd, (1,) * nd, (0,) * nd, groups)
                np.testing.assert_array_equal(out, ref)
                got = _cupy.gemm_conv(x, w, (1,) * nd, (1,) * nd, (0,) * nd, groups)
                close(got, ref, dtype)
    finally:
        _cupy._cuda_module.cache_clear()
        _cupy._cuda_function.cache_clear()
    # one module per (file, dtype): direct.cu and im2col.cu x 5 dtypes, each compiled once
    assert len(modules) == 10
    assert {n.split("<")[0] for m in modules for n in m.names} == set(_cupy._KERNEL_FILE)


def test_docstring_examples():
    import doctest
    res = doctest.testmod(_cupy, optionflags=doctest.ELLIPSIS, raise_on_error=False,
                          verbose=False)
    assert res.attempted > 0 and res.failed == 0


def _random_case(rng):
    nd = int(rng.integers(1, 4))
    groups = int(rng.choice([1, 2, 3]))
    cin = groups * int(rng.integers(1, 4))
    cout = groups * int(rng.integers(1, 6))
    K = tuple(int(k) for k in rng.integers(1, 6, nd))
    dl = tuple(int(d) for d in rng.integers(1, 4, nd))
    st = tuple(int(s) for s in rng.integers(1, 4, nd))
    p = tuple(int(v) for v in rng.integers(0, 5, nd))
    S = tuple(int(max(1, (k - 1) * d + 1 - 2 * pp + int(rng.integers(0, 12))))
              for k, d, pp in zip(K, dl, p))
    return int(rng.integers(1, 3)), cin, cout, groups, S, K, st, dl, p


@pytest.mark.parametrize("seed", range(40))
def test_random_geometries_vs_torch(standin, seed):
    """Random stride/dilation/padding/groups/sizes (tiles larger than the output, stride
    larger than the kernel, padding larger than the input...) through every kernel path."""
    rng = np.random.default_rng(1000 + seed)
    for _ in range(100):        # draw until torch accepts the geometry
        N, Cin, Cout, groups, S, K, st, dl, p = _random_case(rng)
        x = rand(rng, (N, Cin) + S, "float64")
        w = rand(rng, (Cout, Cin // groups) + K, "float64")
        try:
            want = torch_conv(x, w, st, p, dl, groups)
            break
        except RuntimeError:
            continue
    else:
        raise AssertionError("no valid geometry drawn")
    out = np.full(want.shape, np.nan)
    _cupy.correlate(x, w, out, st, dl, p, groups)
    close(out, want, "float64")
    close(_cupy.gemm_conv(x, w, st, dl, p, groups), want, "float64")
