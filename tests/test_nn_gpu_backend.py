"""fastconv.nn on CuPy arrays, without a GPU: a stand-in ``cupy`` module whose ndarray is a
NumPy subclass (type in module ``cupy``), scipy.fft for cupyx.scipy.fft and the CPU harness
(the .cu sources compiled with g++) for kernel launches -- as tests/test_gpu_backend.py.

Checks: results against torch (CPU, float64 oracle), that results are the stand-in
``cupy.ndarray``, that the ``fastconv._cupy`` engines ran and no CPU engine did, that no
device-to-host copy (``ndarray.get``/``cupy.asnumpy``) happens, and that mixed NumPy/CuPy
inputs raise TypeError naming the arguments.
"""
import importlib.util
import os
import shutil
import sys
import types

import numpy as np
import pytest
import torch

import fastconv.nn as fnn
from fastconv import _cupy
from fastconv.nn import _algorithms, _gemm
from fastconv.nn import grad as fgrad

F = torch.nn.functional

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HARNESS_PY = os.path.join(ROOT, "fastconv", "cuda", "harness", "harness.py")
HAVE_GXX = shutil.which(os.environ.get("CXX", "g++")) is not None


@pytest.fixture(scope="module")
def launcher():
    spec = importlib.util.spec_from_file_location("fastconv_cuda_harness_nn", HARNESS_PY)
    h = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(h)
    return h.HarnessLauncher(h.build())


class GPUArrays:
    """What the fixture hands a test: the stand-in type, engine calls, helpers."""

    def __init__(self, ndarray, calls):
        self.ndarray, self.calls = ndarray, calls

    def __call__(self, a):
        """Host -> 'device' (a view as the stand-in cupy.ndarray)."""
        return None if a is None else np.ascontiguousarray(a).view(self.ndarray)

    def check(self, got, want, rtol=None, dtype=None):
        assert type(got) is self.ndarray, f"result is a {type(got)}, not the cupy stand-in"
        host = got.view(np.ndarray)
        want = np.asarray(want)
        assert host.shape == want.shape
        if dtype is not None:
            assert host.dtype == np.dtype(dtype)
        if rtol is None:
            rtol = 2e-4 if host.dtype in (np.float32, np.float16, np.complex64) else 1e-10
            if host.dtype == np.float16:
                rtol = 2e-2
        scale = max(1.0, float(np.max(np.abs(want)))) if want.size else 1.0
        np.testing.assert_allclose(host.astype(np.complex128 if host.dtype.kind == "c"
                                               else np.float64),
                                   want, rtol=rtol, atol=rtol * scale)


@pytest.fixture
def gpu(launcher, monkeypatch):
    class ndarray(np.ndarray):
        def get(self, *a, **k):
            raise AssertionError("device-to-host copy (cupy.ndarray.get) inside fastconv")

    ndarray.__module__ = "cupy"
    ndarray.__name__ = ndarray.__qualname__ = "ndarray"
    fake = types.ModuleType("cupy")
    fake.ndarray = ndarray
    fake.__getattr__ = lambda name: getattr(np, name)

    def keep(f):
        return lambda *a, **k: np.asarray(f(*a, **k)).view(ndarray)

    for f in ("asarray", "ascontiguousarray", "empty", "zeros", "full", "array", "pad"):
        setattr(fake, f, keep(getattr(np, f)))

    def asnumpy(*a, **k):
        raise AssertionError("device-to-host copy (cupy.asnumpy) inside fastconv")

    fake.asnumpy = asnumpy
    monkeypatch.setitem(sys.modules, "cupy", fake)
    calls = []
    def spy(name, f):
        def engine(*args, **kw):
            for a in args[:2]:
                assert type(a) is ndarray, f"_cupy.{name} got a {type(a)}"
            calls.append(name)
            return f(*args, **kw)
        return engine

    for name in ("correlate", "gemm_conv", "gemm_conv_adjoint"):
        monkeypatch.setattr(_cupy, name, spy(name, getattr(_cupy, name)))

    def cpu_engine(*a, **k):
        raise AssertionError("a CPU engine ran on CuPy input")

    for name in ("direct", "fft", "_direct_numpy"):
        monkeypatch.setattr(_algorithms, name, cpu_engine)
    monkeypatch.setattr(_algorithms, "_ENGINES", {k: cpu_engine for k in _algorithms._ENGINES})
    for name in ("correlate", "pointwise", "correlate_adjoint", "correlate_weight",
                 "im2col"):
        monkeypatch.setattr(_gemm, name, cpu_engine)
    with _cupy._use_standin(launcher, modules=(np, fake)):
        yield GPUArrays(ndarray, calls)


def rand(rng, shape, dtype="float64"):
    return rng.standard_normal(shape).astype(dtype)


def T(a):
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


# ---------------------------------------------------------------------------- forward

CONV_CASES = [
    # (nd, N, Cin, Cout, groups, S, K, stride, padding, dilation, padding_mode)
    (1, 2, 4, 6, 2, (19,), (3,), 2, 1, 1, "zeros"),
    (2, 2, 4, 8, 1, (11, 10), (3, 3), 1, 1, 1, "zeros"),           # dense: gemm
    (2, 2, 6, 6, 6, (12, 9), (3, 3), 1, "same", 2, "zeros"),       # depthwise: direct
    (2, 1, 4, 6, 2, (9, 11), (3, 2), (2, 1), (1, 2), (1, 2), "reflect"),
    (2, 2, 3, 5, 1, (8, 7), (3, 3), 1, 2, 1, "circular"),
    (2, 1, 2, 4, 1, (7, 9), (2, 3), 2, (1, 1), 1, "replicate"),
    (3, 2, 4, 6, 2, (6, 7, 5), (3, 2, 3), (1, 2, 1), 1, (2, 1, 1), "zeros"),
    (2, 0, 4, 8, 1, (6, 6), (3, 3), 1, 0, 1, "zeros"),            # empty batch
]


@pytest.mark.parametrize("algorithm", ["auto", "direct", "gemm", "fft"])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv_vs_torch(gpu, case, algorithm):
    nd, n, cin, cout, g, S, K, st, p, dl, mode = case
    rng = np.random.default_rng(0)
    x = rand(rng, (n, cin) + S, "float32")
    w = rand(rng, (cout, cin // g) + K, "float32")
    b = rand(rng, (cout,), "float32")
    f = getattr(fnn, f"conv{nd}d")
    got = f(gpu(x), gpu(w), gpu(b), stride=st, padding=p, dilation=dl, groups=g,
            padding_mode=mode, algorithm=algorithm)
    conv = torch.nn.Conv1d if nd == 1 else torch.nn.Conv2d if nd == 2 else torch.nn.Conv3d
    m = conv(cin, cout, K, stride=st, padding=p, dilation=dl, groups=g, padding_mode=mode,
             dtype=torch.float64)
    with torch.no_grad():
        m.weight.copy_(T(w))
        m.bias.copy_(T(b))
        want = m(T(x)).numpy()
    gpu.check(got, want, dtype="float32")
    if n:
        assert gpu.calls or algorithm == "fft", "no _cupy engine ran"
        if algorithm == "direct":
            assert set(gpu.calls) == {"correlate"}
        if algorithm == "gemm":
            assert set(gpu.calls) == {"gemm_conv"}
        if algorithm == "fft":
            assert gpu.calls == []  # FFT path: cuFFT + xp.matmul, no kernel engine


@pytest.mark.parametrize("case,engine", [
    (((2, 16, 10, 10), (32, 16, 3, 3), 1), "gemm_conv"),      # dense
    (((2, 16, 10, 10), (16, 1, 3, 3), 16), "correlate"),      # depthwise
    (((2, 1, 10, 10), (2, 1, 5, 5), 1), "correlate"),         # thin: 2 output channels
])
def test_auto_choice(gpu, case, engine):
    xs, ws, g = case
    rng = np.random.default_rng(1)
    x, w = rand(rng, xs), rand(rng, ws)
    got = fnn.conv2d(gpu(x), gpu(w), padding=1, groups=g)
    assert gpu.calls == [engine]
    gpu.check(got, F.conv2d(T(x), T(w), padding=1, groups=g).numpy(), dtype="float64")


@pytest.mark.parametrize("dtype,rdt", [("bool", "float64"), ("int32", "float64"),
                                       ("float16", "float16"), ("float64", "float64")])
def test_dtype_rules(gpu, dtype, rdt):
    rng = np.random.default_rng(2)
    x = (rng.integers(0, 2, (1, 3, 8, 8)) if dtype in ("bool", "int32")
         else rng.standard_normal((1, 3, 8, 8))).astype(dtype)
    w = (rng.integers(-2, 3, (4, 3, 3, 3)) if dtype != "bool"
         else rng.integers(0, 2, (4, 3, 3, 3))).astype(dtype)
    got = fnn.conv2d(gpu(x), gpu(w), padding=1)
    gpu.check(got, F.conv2d(T(x.astype(np.float64)), T(w.astype(np.float64)),
                            padding=1).numpy(), dtype=rdt)


def test_complex(gpu):
    rng = np.random.default_rng(3)
    x = (rng.standard_normal((2, 4, 9, 8)) + 1j * rng.standard_normal((2, 4, 9, 8)))
    w = (rng.standard_normal((6, 2, 3, 3)) + 1j * rng.standard_normal((6, 2, 3, 3)))
    for algorithm in ("direct", "gemm", "fft"):
        got = fnn.conv2d(gpu(x.astype(np.complex128)), gpu(w), padding=1, stride=(1, 2),
                         groups=2, algorithm=algorithm)
        def part(a, b):
            return F.conv2d(T(a), T(b), padding=1, stride=(1, 2), groups=2).numpy()
        want = (part(x.real, w.real) - part(x.imag, w.imag)
                + 1j * (part(x.real, w.imag) + part(x.imag, w.real)))
        gpu.check(got, want, dtype="complex128")


def test_unbatched_and_lists(gpu):
    rng = np.random.default_rng(4)
    x, w = rand(rng, (3, 10)), rand(rng, (5, 3, 3))
    got = fnn.conv1d(gpu(x), gpu(w), [0.5, 1, 2, 3, 4], padding=2)  # list bias: to device
    want = F.conv1d(T(x)[None], T(w), T(np.array([0.5, 1, 2, 3, 4])), padding=2)[0].numpy()
    gpu.check(got, want, dtype="float64")


# ---------------------------------------------------------------------------- transposed

T_CASES = [
    # (nd, N, Cin, Cout_per_group, groups, S, K, stride, padding, output_padding, dilation)
    (1, 2, 4, 3, 2, (7,), (3,), 2, 1, 1, 1),
    (2, 2, 4, 3, 1, (5, 6), (3, 3), 2, 1, 1, 1),
    (2, 1, 6, 1, 6, (6, 5), (3, 3), 1, 1, 0, 2),     # depthwise, stride 1: direct
    (2, 2, 4, 2, 2, (4, 5), (4, 3), (2, 3), (1, 2), (1, 0), (1, 2)),
    (3, 1, 2, 3, 1, (3, 4, 3), (2, 3, 2), (2, 1, 2), (0, 1, 1), (1, 0, 0), 1),
]


@pytest.mark.parametrize("algorithm", ["auto", "direct", "gemm", "fft"])
@pytest.mark.parametrize("case", T_CASES)
def test_conv_transpose_vs_torch(gpu, case, algorithm):
    nd, n, cin, cog, g, S, K, st, p, op, dl = case
    rng = np.random.default_rng(5)
    x = rand(rng, (n, cin) + S)
    w = rand(rng, (cin, cog) + K)
    b = rand(rng, (cog * g,))
    f = getattr(fnn, f"conv_transpose{nd}d")
    got = f(gpu(x), gpu(w), gpu(b), stride=st, padding=p, output_padding=op, groups=g,
            dilation=dl, algorithm=algorithm)
    want = getattr(F, f"conv_transpose{nd}d")(T(x), T(w), T(b), stride=st, padding=p,
                                              output_padding=op, groups=g, dilation=dl)
    gpu.check(got, want.numpy(), dtype="float64")
    if algorithm == "direct":
        assert set(gpu.calls) == {"correlate"}
    if algorithm == "gemm":
        assert "gemm_conv_adjoint" in gpu.calls


# ---------------------------------------------------------------------------- gradients

G_CASES = [
    # (nd, N, Cin, Cout, groups, S, K, stride, padding, dilation)
    (1, 2, 4, 6, 2, (13,), (3,), 2, 1, 2),
    (2, 2, 4, 6, 1, (11, 10), (3, 3), 2, 1, 1),
    (2, 3, 4, 4, 4, (9, 8), (3, 3), 1, (2, 1), (2, 1)),
    (3, 1, 2, 4, 1, (5, 6, 5), (2, 3, 2), (1, 2, 1), (1, 0, 1), 1),
]


@pytest.mark.parametrize("algorithm", ["auto", "direct", "gemm", "fft"])
@pytest.mark.parametrize("case", G_CASES)
def test_grad_vs_torch(gpu, case, algorithm):
    nd, n, cin, cout, g, S, K, st, p, dl = case
    rng = np.random.default_rng(6)
    x = rand(rng, (n, cin) + S)
    w = rand(rng, (cout, cin // g) + K)
    y = getattr(F, f"conv{nd}d")(T(x), T(w), stride=st, padding=p, dilation=dl, groups=g)
    gy = rand(rng, tuple(y.shape))
    gin = getattr(fgrad, f"conv{nd}d_input")(x.shape, gpu(w), gpu(gy), stride=st, padding=p,
                                             dilation=dl, groups=g, algorithm=algorithm)
    gpu.check(gin, getattr(torch.nn.grad, f"conv{nd}d_input")(
        x.shape, T(w), T(gy), stride=st, padding=p, dilation=dl, groups=g).numpy(),
        dtype="float64")
    gpu.calls.clear()
    gw = getattr(fgrad, f"conv{nd}d_weight")(gpu(x), w.shape, gpu(gy), stride=st, padding=p,
                                             dilation=dl, groups=g, algorithm=algorithm)
    gpu.check(gw, getattr(torch.nn.grad, f"conv{nd}d_weight")(
        T(x), w.shape, T(gy), stride=st, padding=p, dilation=dl, groups=g).numpy(),
        dtype="float64")
    assert set(gpu.calls) == {"correlate" if algorithm == "direct" else "gemm_conv"}


def test_grad_unbatched_float32(gpu):
    rng = np.random.default_rng(7)
    x, w = rand(rng, (3, 9, 9), "float32"), rand(rng, (4, 3, 3, 3), "float32")
    gy = rand(rng, (4, 9, 9), "float32")
    gin = fgrad.conv2d_input(x.shape, gpu(w), gpu(gy), padding=1)
    gw = fgrad.conv2d_weight(gpu(x), w.shape, gpu(gy), padding=1)
    gpu.check(gin, torch.nn.grad.conv2d_input((1,) + x.shape, T(w), T(gy)[None],
                                              padding=1)[0].numpy(), dtype="float32")
    gpu.check(gw, torch.nn.grad.conv2d_weight(T(x)[None], w.shape, T(gy)[None],
                                              padding=1).numpy(), dtype="float32")


# ---------------------------------------------------------------------------- variants

def test_variants(gpu):
    rng = np.random.default_rng(8)
    x = rand(rng, (2, 6, 9, 8))
    gx = gpu(x)
    # pointwise (stride 2) and grouped pointwise with shuffle, bias following the shuffle
    wp, bp = rand(rng, (4, 6)), rand(rng, (4,))
    gpu.check(fnn.pointwise_conv2d(gx, gpu(wp), gpu(bp), stride=2),
              F.conv2d(T(x), T(wp)[:, :, None, None], T(bp), stride=2).numpy())
    assert gpu.calls[-1] == "gemm_conv"
    wg, bg = rand(rng, (6, 2)), rand(rng, (6,))
    want = F.channel_shuffle(F.conv2d(T(x), T(wg)[:, :, None, None], T(bg), groups=3), 3)
    gpu.check(fnn.grouped_pointwise_conv2d(gx, gpu(wg), 3, gpu(bg), shuffle=True),
              want.numpy())
    gpu.check(fnn.shuffled_group_conv2d(gx, gpu(wg[:, :, None, None]), 3, gpu(bg)),
              want.numpy())
    w3 = rand(rng, (6, 2, 3, 3))
    gpu.check(fnn.shuffled_group_conv2d(gx, gpu(w3), 3, padding=1),
              F.channel_shuffle(F.conv2d(T(x), T(w3), padding=1, groups=3), 3).numpy())
    gpu.check(fnn.channel_shuffle(gx, 2), F.channel_shuffle(T(x), 2).numpy())
    gpu.check(fnn.grouped_conv2d(gx, gpu(w3), 3, padding=1),
              F.conv2d(T(x), T(w3), padding=1, groups=3).numpy())
    gpu.check(fnn.dilated_conv2d(gx, gpu(w3), groups=3, dilation=2),
              F.conv2d(T(x), T(w3), padding="same", dilation=2, groups=3).numpy())
    # depthwise, depthwise separable
    wd, bd = rand(rng, (12, 1, 3, 3)), rand(rng, (12,))
    gpu.check(fnn.depthwise_conv2d(gx, gpu(wd), gpu(bd), padding=1, padding_mode="reflect"),
              F.conv2d(F.pad(T(x), (1, 1, 1, 1), mode="reflect"), T(wd), T(bd),
                       groups=6).numpy())
    wpw = rand(rng, (5, 12))
    gpu.check(fnn.depthwise_separable_conv2d(gx, gpu(wd), gpu(wpw), stride=2, padding=1),
              F.conv2d(F.conv2d(T(x), T(wd), stride=2, padding=1, groups=6),
                       T(wpw)[:, :, None, None]).numpy())
    # spatially separable, flattened
    wc, wr = rand(rng, (6, 1, 3)), rand(rng, (6, 1, 3))
    full = np.einsum("cih,ciw->cihw", wc, wr)
    gpu.check(fnn.spatially_separable_conv2d(gx, gpu(wc), gpu(wr), padding=1, groups=6),
              F.conv2d(T(x), T(full), padding=1, groups=6).numpy())
    a, v, h = rand(rng, (4, 6)), rand(rng, (4, 3)), rand(rng, (4, 2))
    full = np.einsum("oc,oh,ow->ochw", a, v, h)
    gpu.check(fnn.flattened_conv2d(gx, gpu(a), gpu(v), gpu(h)),
              F.conv2d(T(x), T(full)).numpy())
    # unbatched
    gpu.check(fnn.pointwise_conv2d(gpu(x[0]), gpu(wp)),
              F.conv2d(T(x[:1]), T(wp)[:, :, None, None])[0].numpy())


# ---------------------------------------------------------------------------- errors

def test_mixed_numpy_cupy_is_type_error(gpu):
    x, w = np.ones((1, 2, 6, 6)), np.ones((3, 2, 3, 3))
    with pytest.raises(TypeError, match=r"input is a numpy.ndarray \(host memory\), weight "
                                        r"is a cupy.ndarray"):
        fnn.conv2d(x, gpu(w))
    with pytest.raises(TypeError, match=r"bias is a numpy.ndarray.*input is a cupy"):
        fnn.conv2d(gpu(x), gpu(w), np.ones(3))
    with pytest.raises(TypeError, match="NumPy and CuPy"):
        fnn.conv_transpose2d(gpu(x), np.ones((2, 3, 3, 3)))
    with pytest.raises(TypeError, match=r"grad_output is a numpy.ndarray"):
        fgrad.conv2d_input(x.shape, gpu(w), np.ones((1, 3, 4, 4)))
    with pytest.raises(TypeError, match=r"input is a numpy.ndarray.*grad_output is a cupy"):
        fgrad.conv2d_weight(x, w.shape, gpu(np.ones((1, 3, 4, 4))))
    with pytest.raises(TypeError, match=r"pointwise_weight is a numpy.ndarray"):
        fnn.depthwise_separable_conv2d(gpu(x), gpu(np.ones((2, 1, 3, 3))), np.ones((4, 2)))
    with pytest.raises(TypeError, match=r"horizontal_weight is a numpy.ndarray"):
        fnn.flattened_conv2d(gpu(x), gpu(np.ones((4, 2))), gpu(np.ones((4, 3))),
                             np.ones((4, 3)))
    with pytest.raises(TypeError, match=r"weight is a numpy.ndarray"):
        fnn.pointwise_conv2d(gpu(x), np.ones((4, 2)))
    with pytest.raises(TypeError, match=r"weight is a numpy.ndarray"):
        fnn.depthwise_conv2d(gpu(x), np.ones((2, 1, 3, 3)))


def test_conv_matrix_refuses_cupy(gpu):
    with pytest.raises(TypeError, match=r"conv_matrix.*weight.get\(\)"):
        fnn.conv_matrix(gpu(np.ones((1, 1, 3))), (1, 5))


def test_validation_errors_unchanged(gpu):
    x = gpu(np.ones((1, 4, 6, 6)))
    with pytest.raises(ValueError, match="divisible by groups"):
        fnn.conv2d(x, gpu(np.ones((3, 2, 3, 3))), groups=2)
    with pytest.raises(TypeError, match="numeric dtype"):
        fnn.conv2d(x, gpu(np.ones((3, 4, 3, 3)).astype("U1")))


def test_numpy_path_does_not_import_cupy():
    import subprocess
    code = ("import sys, numpy as np, fastconv.nn as n; "
            "n.conv2d(np.ones((1, 2, 5, 5)), np.ones((3, 2, 3, 3)), padding=1); "
            "n.grad.conv2d_weight(np.ones((1, 2, 5, 5)), (3, 2, 3, 3), np.ones((1, 3, 3, 3))); "
            "n.channel_shuffle(np.ones((1, 4, 2)), 2); "
            "assert 'cupy' not in sys.modules")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)
