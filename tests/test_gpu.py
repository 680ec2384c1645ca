"""The GPU suite: fastconv on CuPy arrays, on a real NVIDIA GPU (``pytest -m gpu``).

Oracles: the CPU result of the same fastconv call, cupyx.scipy.signal / cupyx.scipy.ndimage
and torch (the pinned CPU build of the test extra) in float64 -- complex inputs as four real
convolutions, int64 inputs as exact float64 sums of small integers.  Skipped without CuPy
and a CUDA device.

Run with ``bash .ci/gpu``.  First run: NVIDIA H200, 2026-12-04, all 251 tests passed
(docs/gpu.md).
"""
import numpy as np
import pytest

import fastconv
from fastconv import _cupy


def _have_gpu():
    try:
        import cupy
        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not _have_gpu(), reason="needs CuPy and an NVIDIA GPU")]

DTYPES = ["float32", "float64", "complex64", "complex128", "int64"]
TOL = {"float32": 2e-4, "float64": 1e-10, "complex64": 2e-4, "complex128": 1e-10, "int64": 0}


@pytest.fixture(scope="module")
def cp():
    import cupy
    return cupy


@pytest.fixture(scope="module")
def torch_cpu():
    import torch  # a test dependency (pinned CPU build): the oracle, not the system under test
    return torch


from _helpers import rand  # noqa: E402  (tests/ is on sys.path under pytest)


def close(got, want, dtype):
    """got: cupy or numpy; want: numpy."""
    got = got.get() if hasattr(got, "get") else np.asarray(got)
    dtype = np.dtype(dtype).name
    if dtype not in TOL or TOL[dtype] == 0:
        np.testing.assert_array_equal(got, want)
        return
    scale = max(1.0, float(np.max(np.abs(want)))) if np.size(want) else 1.0
    np.testing.assert_allclose(got, want, rtol=TOL[dtype], atol=10 * TOL[dtype] * scale)


def to_torch(torch, a):
    """float64 CPU tensor of a real array (the oracle's precision)."""
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def torch_conv(torch, fn, x, w, **kw):
    """torch's ``fn`` (a torch.nn.functional convolution) on any of DTYPES, in float64:
    complex as (xr*wr - xi*wi) + i(xr*wi + xi*wr); int64 (small integers, exact in float64)
    rounded back."""
    def real(a, b):
        return fn(to_torch(torch, a), to_torch(torch, b), **kw).numpy()
    if np.iscomplexobj(x) or np.iscomplexobj(w):
        return (real(x.real, w.real) - real(x.imag, w.imag)) + 1j * (
            real(x.real, w.imag) + real(x.imag, w.real))
    out = real(x, w)
    return np.rint(out).astype(x.dtype) if x.dtype.kind == "i" else out


# ------------------------------------------------------------------------- engines

@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [
    # (N, Cin, Cout, groups, S, K, stride, dilation, pad)   kernel chosen
    (2, 3, 4, 1, (300,), (7,), (2,), (3,), (4,)),                   # tiled 1-D
    (2, 8, 12, 2, (64, 57), (3, 5), (2, 1), (1, 2), (1, 3)),        # tiled 2-D
    (1, 4, 6, 1, (20, 21, 19), (3, 3, 2), (1, 2, 1), (2, 1, 1), (1, 0, 2)),  # tiled 3-D
    (2, 16, 32, 16, (40, 33), (3, 3), (1, 1), (1, 1), (1, 1)),      # depthwise x2
    (1, 2, 1, 1, (20000,), (15000,), (1,), (1,), (0,)),             # generic (smem)
    (1, 2, 2, 1, (6, 5, 7, 4), (2, 3, 2, 2), (1, 1, 2, 1), (1, 1, 1, 2), (1, 0, 1, 0)),
])
def test_correlate_engine_vs_cpu_engine(cp, dtype, case):
    from fastconv import _core
    N, Cin, Cout, groups, S, K, st, dl, pd = case
    rng = np.random.default_rng(0)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // groups) + K, dtype)
    O = tuple((s + 2 * p - d * (k - 1) - 1) // t + 1 for s, k, t, d, p in zip(S, K, st, dl, pd))
    want = np.empty((N, Cout) + O, dtype)
    _core.correlate(x, w, want, st, dl, pd, groups, 1)
    out = cp.full((N, Cout) + O, 7, dtype=dtype)
    res = _cupy.correlate(cp.asarray(x), cp.asarray(w), out, st, dl, pd, groups)
    assert res is out
    close(out, want, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("case", [
    (8, 64, 64, 1, (56, 56), (3, 3), (1, 1), (1, 1), (1, 1)),
    (4, 32, 64, 2, (28, 30), (5, 3), (2, 1), (1, 2), (2, 1)),
    (2, 3, 8, 1, (16, 16, 16), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1)),
    (4, 64, 128, 1, (14, 14), (1, 1), (1, 1), (1, 1), (0, 0)),
])
def test_direct_and_gemm_vs_torch(cp, torch_cpu, dtype, case):
    torch = torch_cpu
    N, Cin, Cout, groups, S, K, st, dl, pd = case
    rng = np.random.default_rng(1)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // groups) + K, dtype)
    f = [None, torch.nn.functional.conv1d, torch.nn.functional.conv2d,
         torch.nn.functional.conv3d][len(S)]
    want = torch_conv(torch, f, x, w, stride=st, padding=pd, dilation=dl, groups=groups)
    got = _cupy.gemm_conv(cp.asarray(x), cp.asarray(w), st, dl, pd, groups)
    assert isinstance(got, cp.ndarray)
    close(got, want, dtype)
    out = cp.empty(want.shape, dtype)
    _cupy.correlate(cp.asarray(x), cp.asarray(w), out, st, dl, pd, groups)
    close(out, want, dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "complex128"])
@pytest.mark.parametrize("s1,s2,axes", [((100_000,), (301,), (0,)), ((300, 280), (31, 17), (0, 1)),
                                        ((40, 41, 42), (5, 6, 7), (0, 1, 2)),
                                        ((8, 5000), (1, 129), (1,))])
def test_fft_engines_vs_cupyx(cp, dtype, s1, s2, axes):
    import cupyx.scipy.signal as cps
    rng = np.random.default_rng(2)
    a, b = cp.asarray(rand(rng, s1, dtype)), cp.asarray(rand(rng, s2, dtype))
    want = cps.fftconvolve(a, b, mode="full", axes=axes).get()
    full = [s1[i] + s2[i] - 1 for i in axes]
    for fn in (_cupy.fft_convolve, _cupy.oaconvolve):
        got = fn(a, b, axes, (0,) * len(axes), full)
        assert isinstance(got, cp.ndarray) and got.dtype == np.dtype(dtype)
        close(got, want, dtype)


def test_fft_plans_are_reused(cp):
    cache = cp.fft.config.get_plan_cache()
    a = cp.random.standard_normal(50_000).astype(cp.float32)
    b = cp.random.standard_normal(1001).astype(cp.float32)
    _cupy.fft_convolve(a, b, (0,), (0,), (51_000,))
    n = cache.get_curr_size()
    for _ in range(3):
        _cupy.fft_convolve(a, b, (0,), (0,), (51_000,))
    assert cache.get_curr_size() == n


def test_kernels_compiled_once_per_dtype_and_device(cp):
    _cupy._cuda_module.cache_clear()
    _cupy._cuda_function.cache_clear()
    x = cp.ones((1, 2, 50), cp.float32)
    w = cp.ones((2, 2, 3), cp.float32)
    for _ in range(3):
        _cupy.correlate(x, w, cp.empty((1, 2, 48), cp.float32), (1,), (1,), (0,), 1)
        _cupy.correlate(x.astype(cp.float64), w.astype(cp.float64),
                        cp.empty((1, 2, 48), cp.float64), (1,), (1,), (0,), 1)
    assert _cupy._cuda_module.cache_info().misses == 2      # direct.cu x {f32, f64}
    assert _cupy._cuda_function.cache_info().hits >= 4


# ------------------------------------------------------------------------- signal front

SIGNAL_CASES = [((1000,), (31,)), ((64, 70), (7, 5)), ((20, 18, 16), (3, 4, 5))]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("method", ["auto", "direct", "fft"])
@pytest.mark.parametrize("s1,s2", SIGNAL_CASES)
def test_convolve_correlate_vs_cpu_and_cupyx(cp, dtype, mode, method, s1, s2):
    import cupyx.scipy.signal as cps
    if method == "fft" and dtype == "int64":
        method = "auto"
    rng = np.random.default_rng(3)
    a, b = rand(rng, s1, dtype), rand(rng, s2, dtype)
    ga, gb = cp.asarray(a), cp.asarray(b)
    for name in ("convolve", "correlate"):
        got = getattr(fastconv, name)(ga, gb, mode=mode, method=method)
        assert isinstance(got, cp.ndarray)
        cpu = getattr(fastconv, name)(a, b, mode=mode, method=method)
        assert got.dtype == cpu.dtype and got.shape == cpu.shape
        close(got, cpu, dtype if dtype != "int64" else "int64")
        # cupyx's method='auto' refuses ndim > 1; its direct method is the oracle here
        ref = getattr(cps, name)(ga, gb, mode=mode, method="direct").get()
        close(got, ref.astype(cpu.dtype), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex128"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
def test_fftconvolve_oaconvolve_vs_cupyx(cp, dtype, mode):
    import cupyx.scipy.signal as cps
    rng = np.random.default_rng(4)
    a, b = rand(rng, (3, 20000), dtype), rand(rng, (1, 257), dtype)
    ga, gb = cp.asarray(a), cp.asarray(b)
    for name in ("fftconvolve", "oaconvolve"):
        got = getattr(fastconv, name)(ga, gb, mode=mode, axes=1)
        assert isinstance(got, cp.ndarray)
        close(got, getattr(fastconv, name)(a, b, mode=mode, axes=1), dtype)
        close(got, getattr(cps, name)(ga, gb, mode=mode, axes=1).get(), dtype)


@pytest.mark.parametrize("dtype", ["float32", "float64", "complex64", "int64"])
@pytest.mark.parametrize("mode", ["full", "same", "valid"])
@pytest.mark.parametrize("boundary", ["fill", "wrap", "symm"])
def test_convolve2d_correlate2d(cp, dtype, mode, boundary):
    """Oracles: scipy.signal on the host for every case; cupyx.scipy.signal for 'fill' in
    float64 only (it JIT-compiles a kernel per dtype, mode and boundary: seconds each)."""
    import cupyx.scipy.signal as cps
    import scipy.signal
    rng = np.random.default_rng(5)
    a, b = rand(rng, (50, 47), dtype), rand(rng, (5, 6), dtype)
    ga, gb = cp.asarray(a), cp.asarray(b)
    for name in ("convolve2d", "correlate2d"):
        got = getattr(fastconv, name)(ga, gb, mode=mode, boundary=boundary)
        assert isinstance(got, cp.ndarray)
        close(got, getattr(fastconv, name)(a, b, mode=mode, boundary=boundary), dtype)
        close(got, getattr(scipy.signal, name)(a, b, mode=mode, boundary=boundary), dtype)
        if boundary == "fill" and dtype == "float64":
            close(got, getattr(cps, name)(ga, gb, mode=mode, boundary=boundary).get(), dtype)


def test_convolve_vs_cupyx_ndimage(cp):
    import cupyx.scipy.ndimage as ndi
    rng = np.random.default_rng(6)
    a, b = cp.asarray(rand(rng, (128, 130), "float64")), cp.asarray(rand(rng, (5, 5), "float64"))
    got = fastconv.convolve(a, b, mode="same")
    want = ndi.convolve(a, b, mode="constant", cval=0.0)
    close(got, want.get(), "float64")


# ------------------------------------------------------------------------- nn front

def test_nn_conv_vs_torch(cp, torch_cpu):
    torch = torch_cpu
    rng = np.random.default_rng(7)
    for nd, f in ((1, "conv1d"), (2, "conv2d"), (3, "conv3d")):
        x = rand(rng, (2, 4) + (9,) * nd, "float32")
        w = rand(rng, (6, 2) + (3,) * nd, "float32")
        b = rand(rng, (6,), "float32")
        got = getattr(fastconv.nn, f)(cp.asarray(x), cp.asarray(w), cp.asarray(b), stride=2,
                                      padding=1, dilation=1, groups=2)
        assert isinstance(got, cp.ndarray)
        want = getattr(torch.nn.functional, f)(to_torch(torch, x), to_torch(torch, w),
                                               to_torch(torch, b), stride=2, padding=1,
                                               groups=2).numpy()
        close(got, want, "float32")
        close(got, getattr(fastconv.nn, f)(x, w, b, stride=2, padding=1, groups=2), "float32")


def test_nn_conv_transpose2d_and_grad_vs_torch(cp, torch_cpu):
    torch = torch_cpu
    rng = np.random.default_rng(8)
    x = rand(rng, (2, 4, 11, 10), "float64")
    wt = rand(rng, (4, 3, 3, 3), "float64")
    got = fastconv.nn.conv_transpose2d(cp.asarray(x), cp.asarray(wt), stride=2, padding=1,
                                       output_padding=1)
    assert isinstance(got, cp.ndarray)
    want = torch.nn.functional.conv_transpose2d(to_torch(torch, x), to_torch(torch, wt),
                                                stride=2, padding=1, output_padding=1)
    close(got, want.numpy(), "float64")
    w = rand(rng, (6, 4, 3, 3), "float64")
    gy = rand(rng, (2, 6, 6, 5), "float64")
    gx = fastconv.nn.grad.conv2d_input(x.shape, cp.asarray(w), cp.asarray(gy), stride=2, padding=1)
    gw = fastconv.nn.grad.conv2d_weight(cp.asarray(x), w.shape, cp.asarray(gy), stride=2,
                                        padding=1)
    assert isinstance(gx, cp.ndarray) and isinstance(gw, cp.ndarray)
    close(gx, torch.nn.grad.conv2d_input(x.shape, to_torch(torch, w), to_torch(torch, gy),
                                         stride=2, padding=1).numpy(), "float64")
    close(gw, torch.nn.grad.conv2d_weight(to_torch(torch, x), w.shape, to_torch(torch, gy),
                                          stride=2, padding=1).numpy(), "float64")


# ------------------------------------------------------------------------- no host copies

def _refuse_host_copies(cp, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("device-to-host copy inside fastconv")

    monkeypatch.setattr(cp.ndarray, "get", refuse)  # must be patchable: the check depends on it
    monkeypatch.setattr(cp, "asnumpy", refuse)


@pytest.mark.parametrize("call", [
    lambda f, a, b: f.convolve(a, b, method="direct"),
    lambda f, a, b: f.convolve(a, b, method="fft"),
    lambda f, a, b: f.convolve(a, b),
    lambda f, a, b: f.correlate(a, b, mode="same"),
    lambda f, a, b: f.fftconvolve(a, b),
    lambda f, a, b: f.oaconvolve(a, b),
    lambda f, a, b: f.convolve2d(a, b, mode="same"),
    lambda f, a, b: f.correlate2d(a, b, mode="valid", boundary="wrap"),
], ids=["direct", "fft", "auto", "correlate", "fftconvolve", "oaconvolve", "convolve2d",
        "correlate2d"])
def test_no_device_to_host_copies_signal(cp, monkeypatch, call):
    rng = np.random.default_rng(9)
    a = cp.asarray(rand(rng, (300, 310), "float32"))
    b = cp.asarray(rand(rng, (9, 9), "float32"))
    want = call(fastconv, a.get(), b.get())
    _refuse_host_copies(cp, monkeypatch)
    got = call(fastconv, a, b)
    monkeypatch.undo()
    assert isinstance(got, cp.ndarray)
    close(got, want, "float32")


def test_no_device_to_host_copies_nn(cp, monkeypatch):
    rng = np.random.default_rng(10)
    x = cp.asarray(rand(rng, (2, 4, 30, 31), "float32"))
    w = cp.asarray(rand(rng, (8, 4, 3, 3), "float32"))
    want = fastconv.nn.conv2d(x.get(), w.get(), padding=1)
    _refuse_host_copies(cp, monkeypatch)
    got = fastconv.nn.conv2d(x, w, padding=1)
    monkeypatch.undo()
    assert isinstance(got, cp.ndarray)
    close(got, want, "float32")


# ------------------------------------------------------------------------- errors

def test_mixed_numpy_cupy_is_type_error(cp):
    a = cp.ones(10)
    b = np.ones(3)
    for fn in (fastconv.convolve, fastconv.correlate, fastconv.fftconvolve,
               fastconv.oaconvolve):
        with pytest.raises(TypeError, match="NumPy and CuPy"):
            fn(a, b)
        with pytest.raises(TypeError, match="NumPy and CuPy"):
            fn(b, a)
    with pytest.raises(TypeError, match="NumPy and CuPy"):
        fastconv.convolve2d(cp.ones((4, 4)), np.ones((2, 2)))


def test_mixed_numpy_cupy_is_type_error_nn(cp):
    with pytest.raises(TypeError, match="NumPy and CuPy"):
        fastconv.nn.conv2d(cp.ones((1, 1, 4, 4)), np.ones((1, 1, 2, 2)))


def test_tune_gpu_measures(cp):
    c = _cupy.tune_gpu()
    assert set(c) == set(_cupy.default_constants())
    assert all(0 < v < 1e-2 for v in c.values())
