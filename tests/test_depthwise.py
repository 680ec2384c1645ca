"""The dedicated float32 depthwise kernel (fastconv/src/fc_depthwise.h) against torch.

It serves conv1d/conv2d with groups == C_in (any channel multiplier), algorithm 'direct'
(and 'auto' where the cost model picks it), with the bias fused."""

import numpy as np
import pytest
import torch  # the oracle: a test dependency (torch==2.13.0), a failure when missing
import torch.nn.functional as F

import fastconv.nn as fnn
from fastconv import _core
from fastconv.nn import _algorithms
from _helpers import run_concurrently  # noqa: E402  (tests/ is on sys.path under pytest)


def _torch2d(x, w, b, stride, padding, dilation, groups):
    return F.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                    None if b is None else torch.from_numpy(b), stride, padding, dilation,
                    groups).numpy()


def _tol(w):
    return 3e-6 * max(1.0, float(np.abs(w).sum(axis=tuple(range(1, w.ndim))).max()))


CASES = [
    # (N, C, H, W, mult, KH, KW, stride, padding, dilation)
    (2, 3, 9, 13, 1, 3, 3, (1, 1), (1, 1), (1, 1)),
    (1, 4, 56, 56, 1, 3, 3, (1, 1), (1, 1), (1, 1)),
    (2, 3, 9, 13, 2, 3, 5, (2, 3), (2, 1), (1, 2)),
    (1, 4, 17, 33, 3, 7, 7, (1, 2), (3, 3), (2, 2)),
    (1, 2, 5, 5, 1, 3, 3, (1, 1), (4, 4), (1, 1)),     # padding wider than the kernel
    (3, 5, 20, 1, 1, 1, 1, (1, 1), (0, 0), (1, 1)),
    (2, 6, 31, 37, 1, 5, 5, (2, 2), (2, 2), (1, 1)),   # odd widths: masked tail stores
    (1, 3, 8, 70, 2, 1, 9, (1, 1), (0, 4), (1, 1)),    # 1 x k rows, > 32 columns
    (2, 2, 40, 8, 1, 9, 1, (3, 1), (4, 0), (1, 3)),
    (1, 1, 3, 3, 1, 3, 3, (1, 1), (0, 0), (1, 1)),     # one output
]


# the kernels a call can take: the best this CPU runs (AVX-512VL for 3x3 unit-stride
# kernels where present), at most AVX2, the portable loops
ISAS = pytest.mark.parametrize("isa", [dict(), dict(isa_cap=1), dict(force_generic=True)],
                               ids=["best", "avx2", "portable"])


@ISAS
@pytest.mark.parametrize("case", CASES)
def test_kernel_matches_torch(case, isa):
    n, c, h, w_, m, kh, kw, stride, pad, dil = case
    rng = np.random.default_rng(hash(case) % 2**32)
    x = rng.standard_normal((n, c, h, w_), dtype=np.float32)
    w = rng.standard_normal((c * m, 1, kh, kw), dtype=np.float32)
    b = rng.standard_normal(c * m, dtype=np.float32)
    want = _torch2d(x, w, b, stride, pad, dil, c)
    out = np.full(want.shape, np.nan, np.float32)
    x0 = x.copy()
    _core.depthwise2d_f32(x, w.reshape(c * m, kh, kw), b, out, stride, dil, pad, 2, **isa)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=_tol(w))
    np.testing.assert_array_equal(x, x0)


@ISAS
@pytest.mark.parametrize("h", [1, 2, 3, 4, 7])
@pytest.mark.parametrize("w_", [1, 5, 8, 9, 16, 23, 31, 32, 33, 57, 120])
def test_3x3_unit_stride_kernel_edges(h, w_, isa):
    """The row-stationary 3x3 kernel (unit stride and dilation): output heights from 1 (the
    sweep's first and last rows), widths across its 8-column vectors and 32-column strips
    (partial last vectors: masked stores), each padding, a channel multiplier, bias."""
    rng = np.random.default_rng(100 * h + w_)
    for pad, m, bias in (((1, 1), 1, True), ((0, 2), 2, False), ((2, 0), 1, True)):
        hh, ww = h + 2 - 2 * pad[0], w_ + 2 - 2 * pad[1]   # output h x w_
        if hh < 1 or ww < 1:
            continue
        x = rng.standard_normal((2, 3, hh, ww), dtype=np.float32)
        w = rng.standard_normal((3 * m, 1, 3, 3), dtype=np.float32)
        b = rng.standard_normal(3 * m, dtype=np.float32) if bias else None
        want = _torch2d(x, w, b, 1, pad, 1, 3)
        assert want.shape[2:] == (h, w_)
        out = np.full(want.shape, np.nan, np.float32)
        _core.depthwise2d_f32(x, w.reshape(3 * m, 3, 3), b, out, (1, 1), (1, 1), pad, 2, **isa)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=_tol(w))


@pytest.mark.parametrize("case", CASES[:6])
def test_public_conv2d_routes_and_matches(case, monkeypatch):
    n, c, h, w_, m, kh, kw, stride, pad, dil = case
    rng = np.random.default_rng(7)
    x = rng.standard_normal((n, c, h, w_), dtype=np.float32)
    w = rng.standard_normal((c * m, 1, kh, kw), dtype=np.float32)
    b = rng.standard_normal(c * m, dtype=np.float32)
    calls = []
    real = _core.depthwise2d_f32
    monkeypatch.setattr(_core, "depthwise2d_f32", lambda *a, **k: calls.append(1) or real(*a, **k))
    got = fnn.conv2d(x, w, b, stride=stride, padding=pad, dilation=dil, groups=c,
                     algorithm="direct")
    assert calls, "conv2d(groups=C_in, float32, 'direct') did not use the depthwise kernel"
    np.testing.assert_allclose(got, _torch2d(x, w, b, stride, pad, dil, c), rtol=1e-5,
                               atol=_tol(w))


def test_conv1d_depthwise_and_padding_modes():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((3, 4, 50), dtype=np.float32)
    w = rng.standard_normal((8, 1, 5), dtype=np.float32)
    b = rng.standard_normal(8, dtype=np.float32)
    for mode in ("zeros", "reflect", "circular"):
        got = fnn.conv1d(x, w, b, padding=2, stride=2, groups=4, padding_mode=mode,
                         algorithm="direct")
        conv = torch.nn.Conv1d(4, 8, 5, stride=2, padding=2, groups=4, padding_mode=mode)
        with torch.no_grad():
            conv.weight.copy_(torch.from_numpy(w))
            conv.bias.copy_(torch.from_numpy(b))
            want = conv(torch.from_numpy(x)).numpy()
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=_tol(w))


def test_non_contiguous_input_and_no_bias():
    rng = np.random.default_rng(4)
    base = rng.standard_normal((2, 6, 30, 40), dtype=np.float32)
    x = base[:, ::2, ::-1, 1::2]          # strided, reversed view
    w = rng.standard_normal((3, 1, 3, 3), dtype=np.float32)
    got = fnn.conv2d(x, w, padding=1, groups=3, algorithm="direct")
    want = _torch2d(np.ascontiguousarray(x), w, None, 1, 1, 1, 3)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=_tol(w))


def test_threads_and_concurrent_callers():
    rng = np.random.default_rng(5)
    xs = [rng.standard_normal((2, 8, 33, 29), dtype=np.float32) for _ in range(8)]
    w = rng.standard_normal((8, 1, 3, 3), dtype=np.float32)
    wants = [_torch2d(x, w, None, 1, 1, 1, 8) for x in xs]
    for nt in (1, 3, 8):
        out = np.empty_like(wants[0])
        _core.depthwise2d_f32(xs[0], w.reshape(8, 3, 3), None, out, (1, 1), (1, 1), (1, 1), nt)
        np.testing.assert_allclose(out, wants[0], rtol=1e-5, atol=_tol(w))
    got = [None] * len(xs)

    def work(i):
        for _ in range(5):
            got[i] = fnn.conv2d(xs[i], w, padding=1, groups=8, algorithm="direct")
    run_concurrently(work, len(xs))
    for g, want in zip(got, wants):
        np.testing.assert_allclose(g, want, rtol=1e-5, atol=_tol(w))


@pytest.mark.parametrize("k", [3, 5])
def test_large_output_streaming_stores(k):
    # > 8 MiB of output: a 5x5 kernel (fcd_plane_avx2) writes with streaming stores, the
    # 3x3 unit-stride kernels with ordinary ones (they measured faster)
    rng = np.random.default_rng(6)
    x = rng.standard_normal((4, 64, 96, 96), dtype=np.float32)
    w = rng.standard_normal((64, 1, k, k), dtype=np.float32)
    b = rng.standard_normal(64, dtype=np.float32)
    p = k // 2
    got = fnn.conv2d(x, w, b, padding=p, groups=64, algorithm="direct")
    want = _torch2d(x, w, b, 1, p, 1, 64)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=_tol(w))
    # the result is a reused, page-aligned buffer (fastconv._pool), writable and owned by
    # the caller: a second call does not overwrite it
    assert got.ctypes.data % 4096 == 0 and got.flags.writeable and got.flags.c_contiguous
    again = fnn.conv2d(x * 2, w, b, padding=p, groups=64, algorithm="direct")
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=_tol(w))
    assert not np.shares_memory(got, again)
    # outputs only 16-byte aligned (numpy's large arrays often are): 128-bit streaming
    # stores; 32-byte aligned: 256-bit ones; 4-byte aligned: ordinary stores
    wk = w.reshape(64, k, k)
    buf = np.zeros(x.size + 64, np.float32)
    base = (-buf.ctypes.data % 64) // 4
    for off in (0, 4, 1):
        out = buf[base + off: base + off + x.size].reshape(x.shape)
        _core.depthwise2d_f32(x, wk, b, out, (1, 1), (1, 1), (p, p), 2)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=_tol(w))


def test_auto_picks_a_depthwise_engine_for_mobilenet_layer():
    t = _algorithms.predict((8, 144, 56, 56), (144, 1, 3, 3), (56, 56), (1, 1), (1, 1), 144,
                            np.float32)
    assert min(t, key=t.get) == "direct", t


@pytest.mark.parametrize("bad", [
    dict(stride=(0, 1)), dict(dilation=(1, 0)), dict(pad=(-1, 0)),
])
def test_kernel_rejects_bad_geometry(bad):
    x = np.zeros((1, 2, 5, 5), np.float32)
    w = np.zeros((2, 3, 3), np.float32)
    out = np.zeros((1, 2, 3, 3), np.float32)
    kw = dict(stride=(1, 1), dilation=(1, 1), pad=(0, 0))
    kw.update(bad)
    with pytest.raises(ValueError):
        _core.depthwise2d_f32(x, w, None, out, kw["stride"], kw["dilation"], kw["pad"], 1)


def test_kernel_rejects_mismatched_channels_and_bias():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="channel"):
        _core.depthwise2d_f32(x, np.zeros((3, 3, 3), np.float32), None,
                              np.zeros((1, 3, 3, 3), np.float32), (1, 1), (1, 1), (0, 0), 1)
    with pytest.raises(ValueError, match="bias"):
        _core.depthwise2d_f32(x, np.zeros((2, 3, 3), np.float32), np.zeros(3, np.float32),
                              np.zeros((1, 2, 3, 3), np.float32), (1, 1), (1, 1), (0, 0), 1)
    with pytest.raises((ValueError, TypeError)):
        _core.depthwise2d_f32(x.astype(np.float64), np.zeros((2, 3, 3)), None,
                              np.zeros((1, 2, 3, 3)), (1, 1), (1, 1), (0, 0), 1)


# ----------------------------------------------------------------------------------------
# weight gradient of the depthwise layer (fastconv._core.depthwise2d_wgrad_f32)
# ----------------------------------------------------------------------------------------
def _torch_wgrad(x, wshape, gy, stride, pad, dil, groups):
    return torch.nn.grad.conv2d_weight(torch.from_numpy(x).double(), wshape,
                                       torch.from_numpy(gy).double(), stride, pad, dil,
                                       groups).numpy()


@pytest.mark.parametrize("generic", [False, True], ids=["simd", "portable"])
@pytest.mark.parametrize("case", CASES)
def test_wgrad_kernel_matches_torch(case, generic):
    n, c, h, w_, m, kh, kw, stride, pad, dil = case
    rng = np.random.default_rng(hash(case) % 2**32 + 1)
    x = rng.standard_normal((n, c, h, w_), dtype=np.float32)
    oh = (h + 2 * pad[0] - dil[0] * (kh - 1) - 1) // stride[0] + 1
    ow = (w_ + 2 * pad[1] - dil[1] * (kw - 1) - 1) // stride[1] + 1
    gy = rng.standard_normal((n, c * m, oh, ow), dtype=np.float32)
    want = _torch_wgrad(x, (c * m, 1, kh, kw), gy, stride, pad, dil, c)
    gw = np.full((c * m, kh, kw), np.nan, np.float32)
    _core.depthwise2d_wgrad_f32(x, gy, gw, stride, dil, pad, 2, generic)
    scale = np.abs(x).max() * np.abs(gy).max() * np.sqrt(n * oh * ow)
    np.testing.assert_allclose(gw.reshape(want.shape), want, rtol=1e-5, atol=1e-5 * scale)


def test_public_weight_gradient_routes_to_the_kernel(monkeypatch):
    import fastconv.nn.grad as G
    rng = np.random.default_rng(9)
    x = rng.standard_normal((3, 6, 21, 19), dtype=np.float32)
    gy = rng.standard_normal((3, 12, 11, 10), dtype=np.float32)
    calls = []
    real = _core.depthwise2d_wgrad_f32
    monkeypatch.setattr(_core, "depthwise2d_wgrad_f32",
                        lambda *a, **k: calls.append(1) or real(*a, **k))
    got = G.conv2d_weight(x, (12, 1, 3, 3), gy, stride=2, padding=1, groups=6)
    assert calls, "conv2d_weight(groups=C_in, float32) did not use the depthwise kernel"
    want = _torch_wgrad(x, (12, 1, 3, 3), gy, 2, 1, 1, 6)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    # 1-D as well (planes of one row)
    calls.clear()
    x1 = np.ascontiguousarray(x[:, :, 0])
    gy1 = rng.standard_normal((3, 6, 19)).astype(np.float32)
    got1 = G.conv1d_weight(x1, (6, 1, 5), gy1, padding=2, groups=6)
    assert calls, "conv1d_weight(groups=C_in, float32) did not use the depthwise kernel"
    want1 = torch.nn.grad.conv1d_weight(torch.from_numpy(x1).double(), (6, 1, 5),
                                        torch.from_numpy(gy1).double(), 1, 2, 1, 6).numpy()
    np.testing.assert_allclose(got1, want1, rtol=1e-5, atol=1e-4)


def test_wgrad_rejects_mismatched_shapes():
    x = np.zeros((1, 2, 5, 5), np.float32)
    with pytest.raises(ValueError, match="channel"):
        _core.depthwise2d_wgrad_f32(x, np.zeros((1, 3, 3, 3), np.float32),
                                    np.zeros((3, 3, 3), np.float32), (1, 1), (1, 1), (0, 0), 1)


CASES_3D = [
    # (N, C, mult, kernel, stride, padding, dilation, spatial): the 3-D kernel (work items of
    # output-plane chunks whose input slabs are filled once), against torch
    (2, 3, 1, (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), (6, 7, 8)),
    (2, 3, 2, (1, 3, 3), (2, 1, 1), (0, 1, 1), (1, 1, 1), (5, 9, 19)),   # 3x3 in-plane
    (1, 4, 2, (2, 3, 1), (2, 1, 3), (1, 0, 2), (2, 1, 1), (9, 5, 10)),
    (2, 2, 3, (3, 1, 3), (3, 2, 1), (4, 1, 0), (1, 3, 2), (7, 9, 6)),   # depth pad > reach
    (1, 5, 1, (1, 1, 1), (1, 1, 1), (0, 0, 0), (1, 1, 1), (3, 4, 5)),
    (3, 2, 1, (5, 5, 5), (2, 2, 2), (2, 2, 2), (1, 1, 1), (11, 12, 13)),
    (1, 1, 1, (2, 2, 2), (1, 1, 1), (5, 5, 5), (3, 3, 3), (2, 2, 2)),
    (1, 2, 1, (3, 3, 3), (2, 2, 2), (1, 1, 1), (1, 1, 1), (200, 40, 41)),  # several chunks
    (1, 1, 2, (3, 3, 3), (1, 1, 1), (1, 1, 1), (2, 1, 1), (150, 64, 70)),  # several chunks
]


def _case_3d(case, salt):
    """A CASES_3D row unpacked, with its random input and the generator for the rest."""
    n, c, m, k, s, p, d, sp = case
    rng = np.random.default_rng(sum(sp) + c * salt + m)
    return (n, c, m, k, s, p, d, sp), rng, rng.standard_normal((n, c) + sp).astype(np.float32)


@ISAS
@pytest.mark.parametrize("k, stride", [(3, 2), (5, 1), (5, 2)])
@pytest.mark.parametrize("h", [1, 2, 3, 4, 7, 15])
@pytest.mark.parametrize("w_", [1, 2, 5, 9, 15, 16, 17, 31, 32, 33, 65, 113])
def test_kxk_strided_kernel_edges(k, stride, h, w_, isa):
    """3x3 at stride 2 and 5x5 at stride 1 and 2 (the AVX-512VL kernels read the input in
    place; at stride 2 they de-interleave even and odd columns): input heights and widths
    around their input vectors and strips, each padding, a channel multiplier, bias."""
    rng = np.random.default_rng(1000 * k + 100 * h + w_ + stride)
    for pad, m, bias in (((1, 1), 1, True), ((0, 2), 2, False), ((2, 0), 1, True),
                         ((k // 2, k // 2), 1, True)):
        if h + 2 * pad[0] < k or w_ + 2 * pad[1] < k:
            continue
        x = rng.standard_normal((2, 3, h, w_), dtype=np.float32)
        w = rng.standard_normal((3 * m, 1, k, k), dtype=np.float32)
        b = rng.standard_normal(3 * m, dtype=np.float32) if bias else None
        want = _torch2d(x, w, b, stride, pad, 1, 3)
        out = np.full(want.shape, np.nan, np.float32)
        _core.depthwise2d_f32(x, w.reshape(3 * m, k, k), b, out, (stride, stride), (1, 1), pad,
                              2, **isa)
        np.testing.assert_allclose(out, want, rtol=1e-5, atol=_tol(w))


@ISAS
@pytest.mark.parametrize("case", CASES_3D)
def test_kernel_3d_matches_torch(case, isa):
    (n, c, m, k, s, p, d, sp), rng, x = _case_3d(case, 7)
    w = rng.standard_normal((c * m, 1) + k).astype(np.float32)
    b = rng.standard_normal(c * m).astype(np.float32)
    want = F.conv3d(torch.from_numpy(x).double(), torch.from_numpy(w).double(),
                    torch.from_numpy(b).double(), s, p, d, c).numpy()
    out = np.full(want.shape, np.nan, np.float32)
    _core.depthwise3d_f32(x, np.ascontiguousarray(w[:, 0]), b, out, s, d, p, 2, **isa)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=_tol(w))


def _count_calls(monkeypatch, name):
    """Calls of ``fastconv._core.<name>`` from now on (it still runs)."""
    calls = []
    real = getattr(_core, name)

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)
    monkeypatch.setattr(_core, name, spy)
    return calls


def test_public_conv3d_routes_to_the_3d_kernel(monkeypatch):
    calls = _count_calls(monkeypatch, "depthwise3d_f32")
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 9, 10, 11)).astype(np.float32)
    w = rng.standard_normal((12, 1, 3, 3, 3)).astype(np.float32)
    got = fnn.conv3d(x, w, stride=2, padding=1, groups=6, algorithm="direct")
    want = F.conv3d(torch.from_numpy(x), torch.from_numpy(w), None, 2, 1, 1, 6).numpy()
    assert calls == [1]
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=_tol(w))


@pytest.mark.parametrize("generic", [False, True])
@pytest.mark.parametrize("case", CASES_3D)
def test_wgrad_kernel_3d_matches_torch(case, generic):
    """The 3-D weight gradient reads the forward kernel's slabs (chunks of output planes)."""
    (n, c, m, k, s, p, d, sp), rng, x = _case_3d(case, 5)
    osp = tuple((a + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                for a, kk, ss, pp, dd in zip(sp, k, s, p, d))
    gy = rng.standard_normal((n, c * m) + osp).astype(np.float32)
    want = torch.nn.grad.conv3d_weight(torch.from_numpy(x).double(), (c * m, 1) + k,
                                       torch.from_numpy(gy).double(), s, p, d, c).numpy()
    gw = np.full((c * m,) + k, np.nan, np.float32)
    _core.depthwise3d_wgrad_f32(x, gy, gw, s, d, p, 2, force_generic=generic)
    np.testing.assert_allclose(gw, want[:, 0], rtol=1e-4, atol=1e-4 * np.abs(want).max())


def test_public_conv3d_weight_routes_to_the_3d_kernel(monkeypatch):
    from fastconv.nn import grad
    calls = _count_calls(monkeypatch, "depthwise3d_wgrad_f32")
    rng = np.random.default_rng(4)
    x = rng.standard_normal((2, 6, 9, 10, 11)).astype(np.float32)
    gy = rng.standard_normal((2, 12, 5, 5, 6)).astype(np.float32)
    got = grad.conv3d_weight(x, (12, 1, 3, 3, 3), gy, stride=2, padding=1, groups=6)
    want = torch.nn.grad.conv3d_weight(torch.from_numpy(x).double(), (12, 1, 3, 3, 3),
                                       torch.from_numpy(gy).double(), 2, 1, 1, 6).numpy()
    assert calls == [1]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("nd", [2, 3])
def test_kernel_bias_and_empty_input(nd):
    """The forward kernels' shared checks (_core._dw_prepare): a bias of the wrong length is
    refused naming the function; an input with an empty spatial axis, padded to a non-empty
    output, reads only zeros, so the output is the bias, broadcast."""
    fn = getattr(_core, f"depthwise{nd}d_f32")
    k = (3,) * nd
    x = np.zeros((1, 2) + (4,) * nd, np.float32)
    w = np.ones((2,) + k, np.float32)
    out = np.empty((1, 2) + (4,) * nd, np.float32)
    with pytest.raises(ValueError, match=f"depthwise{nd}d_f32: bias"):
        fn(x, w, np.ones(3, np.float32), out, (1,) * nd, (1,) * nd, (1,) * nd, 1)
    x0 = np.zeros((1, 2, 0) + (4,) * (nd - 1), np.float32)
    out0 = np.full((1, 2, 2) + (4,) * (nd - 1), np.nan, np.float32)   # pad 1 on a 0 axis
    b = np.array([1.5, -2.0], np.float32)
    fn(x0, w, b, out0, (1,) * nd, (1,) * nd, (1,) * nd, 1)
    np.testing.assert_array_equal(out0, np.broadcast_to(b.reshape((1, 2) + (1,) * nd),
                                                        out0.shape))


@pytest.mark.parametrize("stride, mult", [(1, 1), (2, 1), (2, 2)])
def test_auto_takes_the_depthwise_kernel_for_1x1(stride, mult, monkeypatch):
    """A 1x1 depthwise layer (a per-channel scale) under 'auto': the depthwise kernel, not
    the GEMM engines (one tiny product per image and group; 15x slower at 4 x 128ch 56^2)."""
    calls = []
    real = _core.depthwise2d_f32
    monkeypatch.setattr(_core, "depthwise2d_f32", lambda *a, **k: calls.append(1) or real(*a, **k))
    rng = np.random.default_rng(11)
    x = rng.standard_normal((4, 128, 56, 56)).astype(np.float32)
    w = rng.standard_normal((128 * mult, 1, 1, 1)).astype(np.float32)
    got = fnn.conv2d(x, w, stride=stride, groups=128)
    want = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), stride=stride,
                                      groups=128).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert calls
