"""The Winograd engine (fastconv/src/fc_winograd.h, ``algorithm='winograd'``: F(2x2, 3x3),
F(2x2, 5x5), F(2x2x2, 3x3x3)) against torch.nn.functional and float64 direct sums (the
oracles)."""
import threading

import numpy as np
import pytest
import torch  # the oracle: a test dependency (torch==2.13.0)

import fastconv.nn as fnn
from fastconv.nn import _algorithms, _gemm

F = torch.nn.functional

AVX2 = _gemm.have_fused(np.float32, 2) and _gemm._cgemm.conv_gemm_avx2()
needs_avx2 = pytest.mark.skipif(not AVX2, reason="the Winograd engine needs an AVX2+FMA CPU "
                                "and the compiled fastconv._gemm extension")


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _oracle(x, w, b, nd=2, **kw):
    conv = F.conv2d if nd == 2 else F.conv3d
    return conv(_t(x).double(), _t(w).double(), None if b is None else _t(b).double(),
                **kw).numpy()


def _check(got, want, cg, k=3):
    """float32 rounding of a sum of k*k*cg terms (the same bound the other engines meet)."""
    tol = 2e-4 * max(1.0, np.sqrt(k * k * cg))
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _random_case(rng, k):
    groups = int(rng.choice([1, 1, 1, 2, 3]))
    cg = int(rng.choice([1, 3, 8, 17, 40]))
    cog = int(rng.choice([1, 5, 16, 21, 33]))
    if rng.random() < 0.15:   # depthwise
        cg, groups = 1, int(rng.integers(2, 6))
    dil = (int(rng.choice([1, 1, 2, 3])), int(rng.choice([1, 1, 2, 5])))
    r = rng.random()
    if r < 0.2:
        pad = "same"
    elif r < 0.35:
        pad = "valid"
    else:
        pad = (int(rng.integers(0, 2 * dil[0] + 2)), int(rng.integers(0, 2 * dil[1] + 2)))
    size = (int(rng.integers(1, 40)), int(rng.integers(1, 50)))
    batch = None if rng.random() < 0.2 else int(rng.integers(1, 4))
    p = (0, 0) if pad == "valid" else (dil if pad == "same" else pad)
    if any(s + 2 * q < (k - 1) * d + 1 for s, q, d in zip(size, p, dil)):
        return None
    return dict(groups=groups, cg=cg, cog=cog, dil=dil, pad=pad, size=size, batch=batch,
                bias=rng.random() < 0.5)


def _cases(n, seed, k):
    rng = np.random.default_rng(seed)
    out = []
    while len(out) < n:
        c = _random_case(rng, k)
        if c is not None:
            out.append(c)
    return out


@needs_avx2
@pytest.mark.parametrize("k", [3, 5])
@pytest.mark.parametrize("i", range(40))
def test_random_against_torch(i, k):
    c = _cases(40, 77 if k == 3 else 78, k)[i]
    rng = np.random.default_rng(i)
    g = c["groups"]
    shape = ((c["batch"],) if c["batch"] else ()) + (g * c["cg"],) + c["size"]
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((g * c["cog"], c["cg"], k, k)).astype(np.float32)
    b = rng.standard_normal(g * c["cog"]).astype(np.float32) if c["bias"] else None
    x0, w0 = x.copy(), w.copy()
    kw = dict(padding=c["pad"], dilation=c["dil"], groups=g)
    got = fnn.conv2d(x, w, b, algorithm="winograd", **kw)
    xb = x if c["batch"] else x[None]
    want = _oracle(xb, w, b, **kw)
    if not c["batch"]:
        want = want[0]
    assert got.shape == want.shape and got.dtype == np.float32
    _check(got, want, c["cg"], k)
    np.testing.assert_array_equal(x, x0)   # inputs never modified
    np.testing.assert_array_equal(w, w0)


@needs_avx2
@pytest.mark.parametrize("cin,cout,hw,dil", [
    (256, 256, (56, 56), 1),      # VGG conv3_2: runs of 8 tiles read in place
    (300, 40, (23, 37), 1),       # > 256 input channels: two micro-kernel calls per tile
    (64, 48, (64, 64), 6),        # dilated 3x3 d6 (bench L12's geometry, fewer channels)
    (8, 16, (5, 70), 1),          # one tile row, long runs
    (16, 17, (1, 1), 1),          # a single half tile
    # few tiles (all images' transformed input within 2 MiB): the weight transformed one
    # 16-channel panel per work item, every image's GEMMs in that item
    (128, 96, (14, 14), 1),
    (256, 80, (7, 7), 2),
    # F(2x2, 5x5) with many channels: tile blocks sized by its own V budget
    (192, 64, (20, 30), 1),
])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("k", [3, 5])
def test_engine_shapes(cin, cout, hw, dil, batch, k):
    rng = np.random.default_rng(cin + cout)
    x = rng.standard_normal((batch, cin) + hw).astype(np.float32)
    w = rng.standard_normal((cout, cin, k, k)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32)
    p = dil * (k // 2)
    got = fnn.conv2d(x, w, b, padding=p, dilation=dil, algorithm="winograd")
    _check(got, _oracle(x, w, b, padding=p, dilation=dil), cin, k)


@needs_avx2
@pytest.mark.parametrize("k, shape, c_out, bound, factor", [
    # F(2x2, 3x3): factors 1 and 1/2, its error within a small multiple of the direct
    # float32 sum's (F(4x4, 3x3) or larger tiles, with factors up to 4-8, would not meet this)
    (3, (2, 128, 30, 30), 64, 1e-5, 4),
    # F(2x2, 5x5): factors up to 5 (B^T) and 1/24 (G): ~20x the direct sum's error here,
    # still a few parts per million of the output's largest value (measured: 3-4e-6)
    (5, (2, 96, 27, 27), 64, 1.5e-5, 100),
])
def test_accuracy_against_float64_sums(k, shape, c_out, bound, factor):
    rng = np.random.default_rng(5 * k)
    x = rng.standard_normal(shape).astype(np.float32)
    w = rng.standard_normal((c_out, shape[1], k, k)).astype(np.float32)
    want = _oracle(x, w, None, padding=k // 2)
    err = {}
    for alg in ("winograd", "direct", "gemm"):
        got = fnn.conv2d(x, w, padding=k // 2, algorithm=alg).astype(np.float64)
        err[alg] = np.abs(got - want).max() / np.abs(want).max()
    assert err["winograd"] < bound, err
    assert err["winograd"] < factor * max(err["direct"], err["gemm"]), err


@needs_avx2
def test_conv3d_1x5x5():
    """A 1x5x5 kernel in 3-D: F(2x2, 5x5) on every depth plane."""
    rng = np.random.default_rng(31)
    x = rng.standard_normal((2, 7, 3, 12, 17)).astype(np.float32)
    w = rng.standard_normal((19, 7, 1, 5, 5)).astype(np.float32)
    b = rng.standard_normal(19).astype(np.float32)
    kw = dict(padding=(1, 2, 4), dilation=(1, 1, 2))
    _check(fnn.conv3d(x, w, b, algorithm="winograd", **kw), _oracle(x, w, b, nd=3, **kw), 7,
           5)


@needs_avx2
def test_conv3d_1x3x3_and_float16():
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 6, 4, 9, 11)).astype(np.float32)
    w = rng.standard_normal((10, 6, 1, 3, 3)).astype(np.float32)
    kw = dict(padding=(1, 1, 2), dilation=(1, 1, 2))
    _check(fnn.conv3d(x, w, algorithm="winograd", **kw), _oracle(x, w, None, nd=3, **kw), 6)
    # float16 in: computed in float32, float16 out
    x2 = rng.standard_normal((1, 8, 12, 12)).astype(np.float16)
    w2 = rng.standard_normal((8, 8, 3, 3)).astype(np.float16)
    got = fnn.conv2d(x2, w2, padding=1, algorithm="winograd")
    assert got.dtype == np.float16
    want = _oracle(x2.astype(np.float32), w2.astype(np.float32), None, padding=1)
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=2e-2, atol=5e-2)


@needs_avx2
@pytest.mark.parametrize("i", range(12))
def test_conv3d_3x3x3_random(i):
    """F(2x2x2, 3x3x3): 64 transform positions, tiles chained along every axis."""
    rng = np.random.default_rng(300 + i)
    g = int(rng.choice([1, 1, 2]))
    cg, cog = int(rng.integers(1, 20)), int(rng.integers(1, 36))
    dil = tuple(int(v) for v in rng.choice([1, 1, 2], 3))
    pad = tuple(int(rng.integers(0, 2 * d + 1)) for d in dil)
    size = tuple(int(v) for v in rng.integers(1, 14, 3))
    if any(s + 2 * p < 2 * d + 1 for s, p, d in zip(size, pad, dil)):
        pad = dil
    x = rng.standard_normal((int(rng.integers(1, 3)), g * cg) + size).astype(np.float32)
    w = rng.standard_normal((g * cog, cg, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(g * cog).astype(np.float32) if i % 2 else None
    kw = dict(padding=pad, dilation=dil, groups=g)
    got = fnn.conv3d(x, w, b, algorithm="winograd", **kw)
    tol = 2e-4 * max(1.0, np.sqrt(27 * cg))
    np.testing.assert_allclose(got, _oracle(x, w, b, nd=3, **kw), rtol=tol, atol=tol)


@needs_avx2
def test_conv3d_few_tiles():
    """3x3x3 with few tiles (the per-item weight panels) and grouped, against torch."""
    rng = np.random.default_rng(14)
    x = rng.standard_normal((2, 64, 4, 6, 7)).astype(np.float32)
    w = rng.standard_normal((96, 32, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(96).astype(np.float32)
    got = fnn.conv3d(x, w, b, padding=1, groups=2, algorithm="winograd")
    tol = 2e-4 * np.sqrt(27 * 32)
    np.testing.assert_allclose(got, _oracle(x, w, b, nd=3, padding=1, groups=2), rtol=tol,
                               atol=tol)


@needs_avx2
def test_conv3d_bench_geometry():
    """L14's layer shape (64 -> 64 3x3x3, pad 1) on a smaller volume: runs of 8 tiles read
    in place."""
    rng = np.random.default_rng(11)
    x = rng.standard_normal((1, 64, 6, 20, 37)).astype(np.float32)
    w = rng.standard_normal((64, 64, 3, 3, 3)).astype(np.float32)
    got = fnn.conv3d(x, w, padding=1, algorithm="winograd")
    tol = 2e-4 * np.sqrt(27 * 64)
    np.testing.assert_allclose(got, _oracle(x, w, None, nd=3, padding=1), rtol=tol, atol=tol)


@needs_avx2
def test_noncontiguous_and_padding_modes():
    rng = np.random.default_rng(4)
    big = rng.standard_normal((3, 12, 20, 26)).astype(np.float32)
    x = big[::2, ::2, ::-1, 1::2]   # strided, negative stride
    w = rng.standard_normal((9, 6, 3, 3)).astype(np.float32)
    _check(fnn.conv2d(x, w, padding=2, algorithm="winograd"), _oracle(x, w, None, padding=2),
           6)
    m = torch.nn.Conv2d(6, 9, 3, padding=1, padding_mode="reflect", bias=False).double()
    with torch.no_grad():
        m.weight.copy_(_t(w))
        want = m(_t(x).double()).numpy()
    _check(fnn.conv2d(x, w, padding=1, padding_mode="reflect", algorithm="winograd"), want, 6)


@needs_avx2
def test_transposed_and_gradients():
    rng = np.random.default_rng(6)
    x = rng.standard_normal((2, 12, 15, 13)).astype(np.float32)
    w = rng.standard_normal((12, 20, 3, 3)).astype(np.float32)   # (C_in, C_out, 3, 3)
    want = F.conv_transpose2d(_t(x).double(), _t(w).double(), padding=1).numpy()
    _check(fnn.conv_transpose2d(x, w, padding=1, algorithm="winograd"), want, 12)
    # strided: the zero-stuffed input's stride-1 correlation
    want = F.conv_transpose2d(_t(x).double(), _t(w).double(), stride=2, padding=1).numpy()
    _check(fnn.conv_transpose2d(x, w, stride=2, padding=1, algorithm="winograd"), want, 12)
    # input gradient (a transposed convolution); the weight gradient runs as 'auto'
    wf = rng.standard_normal((20, 12, 3, 3)).astype(np.float32)
    gy = rng.standard_normal((2, 20, 15, 13)).astype(np.float32)
    xt = _t(x).double().requires_grad_()
    wt = _t(wf).double().requires_grad_()
    F.conv2d(xt, wt, padding=1).backward(_t(gy).double())
    _check(fnn.grad.conv2d_input(x.shape, wf, gy, padding=1, algorithm="winograd"),
           xt.grad.numpy(), 20)
    _check(fnn.grad.conv2d_weight(x, wf.shape, gy, padding=1, algorithm="winograd"),
           wt.grad.numpy(), 2 * 15 * 13 / 9)
    # 5x5: the transposed convolution and the input gradient by F(2x2, 5x5)
    w5 = rng.standard_normal((12, 20, 5, 5)).astype(np.float32)
    want = F.conv_transpose2d(_t(x).double(), _t(w5).double(), padding=1).numpy()
    _check(fnn.conv_transpose2d(x, w5, padding=1, algorithm="winograd"), want, 12, 5)
    wf5 = rng.standard_normal((20, 12, 5, 5)).astype(np.float32)
    gy5 = rng.standard_normal((2, 20, 13, 11)).astype(np.float32)
    xt = _t(x).double().requires_grad_()
    F.conv2d(xt, _t(wf5).double(), padding=1).backward(_t(gy5).double())
    _check(fnn.grad.conv2d_input(x.shape, wf5, gy5, padding=1, algorithm="winograd"),
           xt.grad.numpy(), 20, 5)


def test_unsupported_problems_raise():
    x = np.zeros((1, 4, 8, 8), np.float32)
    cases = [
        (lambda: fnn.conv2d(x, np.zeros((4, 4, 7, 7), np.float32), algorithm="winograd"),
         "3x3"),
        (lambda: fnn.conv2d(x, np.zeros((4, 4, 3, 5), np.float32), algorithm="winograd"),
         "5x5"),
        (lambda: fnn.conv3d(np.zeros((1, 4, 6, 6, 6), np.float32),
                            np.zeros((4, 4, 5, 5, 5), np.float32), algorithm="winograd"),
         "1x5x5"),
        (lambda: fnn.conv2d(x, np.zeros((4, 4, 3, 3), np.float32), stride=2,
                            algorithm="winograd"), "stride"),
        (lambda: fnn.conv2d(x.astype(np.float64), np.zeros((4, 4, 3, 3)),
                            algorithm="winograd"), "float64"),
        (lambda: fnn.conv3d(np.zeros((1, 4, 5, 5, 5), np.float32),
                            np.zeros((4, 4, 2, 3, 3), np.float32), algorithm="winograd"),
         "3x3"),
        (lambda: fnn.conv1d(np.zeros((1, 4, 9), np.float32), np.zeros((4, 4, 3), np.float32),
                            algorithm="winograd"), "3x3"),
    ]
    for f, what in cases:
        with pytest.raises(ValueError, match="winograd") as e:
            f()
        assert what in str(e.value)


@needs_avx2
def test_engine_rejects_other_geometries():
    from fastconv import _gemm as cg
    x = np.zeros((1, 4, 1, 8, 8), np.float32)
    with pytest.raises(ValueError, match="engine 2"):   # 7x7: no Winograd form
        cg.conv_gemm_f32(x, np.zeros((4, 4, 1, 7, 7), np.float32), None,
                         np.zeros((1, 4, 1, 2, 2), np.float32), 1, (1, 1, 1), (1, 1, 1),
                         pad=(0, 0, 0), engine=2)
    with pytest.raises(ValueError, match="engine 2"):
        cg.conv_gemm_f32(x, np.zeros((4, 4, 1, 5, 3), np.float32), None,
                         np.zeros((1, 4, 1, 4, 6), np.float32), 1, (1, 1, 1), (1, 1, 1),
                         pad=(0, 0, 0), engine=2)
    with pytest.raises(ValueError, match="engine 2"):
        cg.conv_gemm_f32(x, np.zeros((4, 4, 1, 3, 3), np.float32), None,
                         np.zeros((1, 4, 1, 3, 3), np.float32), 1, (1, 2, 2), (1, 1, 1),
                         pad=(0, 0, 0), engine=2)


@needs_avx2
def test_auto_routes_by_cost(monkeypatch):
    """'auto' takes Winograd for a VGG-sized 3x3 layer and not for a thin or tiny one (a
    spy on the engine, the answers checked against torch)."""
    calls = []
    real = _gemm.correlate_winograd

    def spy(*a, **k):
        calls.append(a[0].shape)
        return real(*a, **k)

    monkeypatch.setattr(_gemm, "correlate_winograd", spy)
    rng = np.random.default_rng(8)
    x = rng.standard_normal((1, 128, 40, 40)).astype(np.float32)
    w = rng.standard_normal((128, 128, 3, 3)).astype(np.float32)
    _check(fnn.conv2d(x, w, padding=1), _oracle(x, w, None, padding=1), 128)
    assert calls == [x.shape]
    calls.clear()
    x2 = rng.standard_normal((4, 3, 32, 32)).astype(np.float32)   # thin stem layer
    w2 = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    _check(fnn.conv2d(x2, w2, padding=1), _oracle(x2, w2, None, padding=1), 3)
    x3 = rng.standard_normal((1, 512, 7, 7)).astype(np.float32)   # weight transform dominates
    w3 = rng.standard_normal((512, 512, 3, 3)).astype(np.float32) * 0.05
    _check(fnn.conv2d(x3, w3, padding=1), _oracle(x3, w3, None, padding=1), 512)
    x4 = rng.standard_normal((8, 16, 28, 28)).astype(np.float32)  # 16 input channels: K = 16
    w4 = rng.standard_normal((64, 16, 3, 3)).astype(np.float32)
    _check(fnn.conv2d(x4, w4, padding=1), _oracle(x4, w4, None, padding=1), 16)
    assert calls == []
    # 5x5: AlexNet conv2 (bench L3, batch 2) takes F(2x2, 5x5) (measured 1.4-1.5x faster
    # than the GEMM at 2 threads); a 16 -> 16 layer (below 24 output channels) does not
    import fastconv
    x4 = rng.standard_normal((2, 96, 27, 27)).astype(np.float32)
    w4 = rng.standard_normal((256, 48, 5, 5)).astype(np.float32)
    x5 = rng.standard_normal((2, 16, 28, 28)).astype(np.float32)
    w5 = rng.standard_normal((16, 16, 5, 5)).astype(np.float32)
    with fastconv.threads(2):
        _check(fnn.conv2d(x4, w4, padding=2, groups=2),
               _oracle(x4, w4, None, padding=2, groups=2), 48, 5)
        assert calls == [x4.shape]
        _check(fnn.conv2d(x5, w5, padding=2), _oracle(x5, w5, None, padding=2), 16, 5)
    assert calls == [x4.shape]


@needs_avx2
def test_threads_at_once():
    rng = np.random.default_rng(9)
    probs = []
    for i in range(8):
        c = 8 + 4 * i
        x = rng.standard_normal((1 + i % 2, c, 10 + 3 * i, 31 - 2 * i)).astype(np.float32)
        k = 3 if i % 2 else 5   # both forms at once
        w = rng.standard_normal((c + 3, c, k, k)).astype(np.float32)
        probs.append((x, w, 1 + i % 3))
    results = [None] * len(probs)

    def work(k):
        x, w, d = probs[k]
        for _ in range(3):
            results[k] = fnn.conv2d(x, w, padding=d, dilation=d, algorithm="winograd")

    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(probs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for (x, w, d), got in zip(probs, results):
        _check(got, _oracle(x, w, None, padding=d, dilation=d), x.shape[1], w.shape[-1])


@needs_avx2
def test_transformed_weight_within_scratch_budget(monkeypatch):
    """The transformed weight (16 floats per 3x3 weight) stays within SCRATCH_BYTES: blocks
    of output channels per engine call (written into channel slices of the output), a
    MemoryError naming the size for a grouped layer, and 'auto' not taking it."""
    monkeypatch.setattr(_gemm, "SCRATCH_BYTES", (16 << 20) + 100_000)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((2, 20, 9, 11)).astype(np.float32)
    w = rng.standard_normal((70, 20, 3, 3)).astype(np.float32)
    b = rng.standard_normal(70).astype(np.float32)
    assert _gemm.winograd_channel_block(70, 20, 1, (3, 3)) == 64   # 2 calls: 64 + 6
    calls = []
    real = _gemm._cgemm.conv_gemm_f32

    def spy(x5, w5, *a, **k):
        calls.append(w5.shape[0])
        return real(x5, w5, *a, **k)

    monkeypatch.setattr(_gemm._cgemm, "conv_gemm_f32", spy)
    _check(fnn.conv2d(x, w, b, padding=1, algorithm="winograd"),
           _oracle(x, w, b, padding=1), 20)
    assert calls == [64, 6]
    with pytest.raises(MemoryError, match="bytes"):
        fnn.conv2d(rng.standard_normal((1, 40, 9, 9)).astype(np.float32),
                   rng.standard_normal((80, 20, 3, 3)).astype(np.float32), groups=2,
                   algorithm="winograd")
    t = _algorithms.predict((2, 20, 9, 11), (70, 20, 3, 3), (9, 11), (1, 1), (1, 1), 1,
                            np.float32)
    assert "winograd" not in t


@needs_avx2
@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("value", [np.inf, -np.inf, np.nan])
@pytest.mark.parametrize("k", [3, 5])
def test_non_finite_values_like_torch(where, value, k):
    """The transforms' differences would turn an Inf into NaN (V0 = d0 - d2 = -Inf,
    V1 = V2 = +Inf, then A^T subtracts their products) where the direct sum gives +-Inf:
    such calls go to the implicit GEMM, so Inf and NaN land where torch puts them."""
    rng = np.random.default_rng(13)
    x = rng.standard_normal((2, 32, 12, 13)).astype(np.float32)
    w = rng.standard_normal((24, 32, k, k)).astype(np.float32)
    if where == "input":
        x[1, 3, 5, 6] = value
        x[0, 31, 0, 12] = value
    else:
        w[5, 7, 1, 2] = value
    want = _oracle(x, w, None, padding=k // 2)
    for alg in ("winograd", "auto"):
        got = fnn.conv2d(x, w, padding=k // 2, algorithm=alg)
        np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
        np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
        np.testing.assert_array_equal(np.sign(got[np.isinf(got)]), np.sign(want[np.isinf(want)]))
        fin = np.isfinite(want)
        _check(got[fin], want[fin], 32, k)
    from fastconv import _gemm as cg
    o = np.empty((2, 24, 1, 12, 13), np.float32)
    with pytest.raises(FloatingPointError, match="Inf or NaN"):
        cg.conv_gemm_f32(x[:, :, None], w[:, :, None], None, o, 1, (1, 1, 1), (1, 1, 1),
                         pad=(0, k // 2, k // 2), engine=2)


def test_conv_gemm_out_slices():
    """conv_gemm_f32 writes a channel slice of a larger output in place (the Winograd
    blocks use it) and refuses an output whose spatial axes are not C-contiguous."""
    from fastconv import _gemm as cg
    rng = np.random.default_rng(15)
    x = rng.standard_normal((2, 8, 1, 9, 10)).astype(np.float32)
    w = rng.standard_normal((12, 8, 1, 3, 3)).astype(np.float32)
    big = np.full((2, 20, 1, 7, 8), 7.0, np.float32)
    cg.conv_gemm_f32(x, w, None, big[:, 5:17], 1, (1, 1, 1), (1, 1, 1), pad=(0, 0, 0))
    want = _oracle(x[:, :, 0], w[:, :, 0], None)
    _check(big[:, 5:17, 0], want, 8)
    assert (big[:, :5] == 7).all() and (big[:, 17:] == 7).all()   # nothing else written
    with pytest.raises(ValueError, match="C-contiguous"):
        cg.conv_gemm_f32(x, w, None, np.zeros((2, 12, 1, 7, 16), np.float32)[..., ::2], 1,
                         (1, 1, 1), (1, 1, 1), pad=(0, 0, 0))


@needs_avx2
def test_auto_dilated_padding_share():
    """Dilated layers: the implicit GEMM skips the kernel rows that read only padding and
    Winograd computes them, so with much padding 'auto' keeps the GEMM (256 -> 256 3x3 on
    64^2, 2 threads: dilation 2 Winograd 16.7 ms against 24.1; dilation 18, 19% such
    rows, 28.0 against 23.1)."""
    import fastconv
    with fastconv.threads(2):
        pick = {d: _algorithms.choose((1, 256, 64, 64), (256, 256, 3, 3), (64, 64), (1, 1),
                                      (d, d), 1, np.float32) for d in (2, 18)}
    assert pick == {2: "winograd", 18: "gemm"}
    assert abs(_algorithms._pad_rows_share((64, 64), (64, 64), (3, 3), (18, 18))
               - 36 / 192) < 1e-12
