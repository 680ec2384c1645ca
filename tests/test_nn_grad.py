"""fastconv.nn.grad against torch.nn.grad (the oracle) and the adjoint identity."""
import numpy as np
import pytest
import torch  # the oracle: a test dependency (torch==2.13.0), a failure when missing
import torch.nn.grad as tgrad

import fastconv.nn as fnn
from fastconv.nn import grad

ALGORITHMS = ["auto", "direct", "gemm", "fft"]
TGIN = {1: tgrad.conv1d_input, 2: tgrad.conv2d_input, 3: tgrad.conv3d_input}
TGW = {1: tgrad.conv1d_weight, 2: tgrad.conv2d_weight, 3: tgrad.conv3d_weight}
GIN = {1: grad.conv1d_input, 2: grad.conv2d_input, 3: grad.conv3d_input}
GW = {1: grad.conv1d_weight, 2: grad.conv2d_weight, 3: grad.conv3d_weight}
TCONV = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
         3: torch.nn.functional.conv3d}


def _case(rng, nd):
    while True:
        g = int(rng.choice([1, 2, 3]))
        cin, cout = g * int(rng.integers(1, 3)), g * int(rng.integers(1, 3))
        if rng.random() < 0.2:
            g = cin
            cout = cin * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 4, nd))
        s = tuple(int(v) for v in rng.integers(1, 4, nd))
        d = tuple(int(v) for v in rng.integers(1, 3, nd))
        p = tuple(int(v) for v in rng.integers(0, 3, nd))
        size = tuple(int(v) for v in rng.integers(3, 10 if nd < 3 else 6, nd))
        if all(n + 2 * q >= dd * (kk - 1) + 1 for n, q, dd, kk in zip(size, p, d, k)):
            return (int(rng.integers(1, 4)), cin) + size, (cout, cin // g) + k, \
                dict(stride=s, padding=p, dilation=d, groups=g)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("i", range(12))
def test_grads_vs_torch(nd, i, dtype):
    rng = np.random.default_rng(500 + 37 * nd + i)
    xs, ws, kw = _case(rng, nd)
    x, w = rng.standard_normal(xs), rng.standard_normal(ws)
    y = TCONV[nd](torch.from_numpy(x), torch.from_numpy(w), **kw)
    gy = rng.standard_normal(tuple(y.shape))
    want_in = TGIN[nd](xs, torch.from_numpy(w), torch.from_numpy(gy), **kw).numpy()
    want_w = TGW[nd](torch.from_numpy(x), ws, torch.from_numpy(gy), **kw).numpy()
    tol = 1e-10 if dtype == np.float64 else 1e-3
    for alg in ALGORITHMS:
        gi = GIN[nd](xs, w.astype(dtype), gy.astype(dtype), algorithm=alg, **kw)
        gw = GW[nd](x.astype(dtype), ws, gy.astype(dtype), algorithm=alg, **kw)
        assert gi.dtype == dtype and gw.dtype == dtype
        np.testing.assert_allclose(gi, want_in, rtol=tol, atol=tol * 10)
        np.testing.assert_allclose(gw, want_w, rtol=tol, atol=tol * 30)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_adjoint_identities(nd):
    """<conv(x, w), y> == <x, grad_input(y)> == <w, grad_weight(x, y)>."""
    rng = np.random.default_rng(nd)
    for _ in range(5):
        xs, ws, kw = _case(rng, nd)
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        conv = {1: fnn.conv1d, 2: fnn.conv2d, 3: fnn.conv3d}[nd]
        y = conv(x, w, **kw)
        r = rng.standard_normal(y.shape)
        a = np.vdot(y, r)
        b = np.vdot(x, GIN[nd](xs, w, r, **kw))
        c = np.vdot(w, GW[nd](x, ws, r, **kw))
        assert abs(a - b) < 1e-9 * (1 + abs(a))
        assert abs(a - c) < 1e-9 * (1 + abs(a))


def test_unbatched_and_same_padding():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 7, 8))
    w = rng.standard_normal((2, 3, 3, 3))
    y = fnn.conv2d(x, w, padding=1)
    gy = rng.standard_normal(y.shape)
    want = tgrad.conv2d_input((1,) + x.shape, torch.from_numpy(w),
                              torch.from_numpy(gy[None]), padding=1).numpy()[0]
    np.testing.assert_allclose(grad.conv2d_input(x.shape, w, gy, padding=1), want, atol=1e-12)
    np.testing.assert_allclose(grad.conv2d_input(x.shape, w, gy, padding="same"), want,
                               atol=1e-12)
    want_w = tgrad.conv2d_weight(torch.from_numpy(x[None]), w.shape,
                                 torch.from_numpy(gy[None]), padding=1).numpy()
    np.testing.assert_allclose(grad.conv2d_weight(x, w.shape, gy, padding=1), want_w,
                               atol=1e-11)


def test_bad_grad_arguments():
    w = np.zeros((2, 3, 3, 3))
    with pytest.raises(ValueError, match="grad_output"):
        grad.conv2d_input((1, 3, 8, 8), w, np.zeros((1, 2, 5, 5)))
    with pytest.raises(ValueError, match="stride"):
        grad.conv2d_input((1, 3, 8, 8), w, np.zeros((1, 2, 6, 6)), stride=0)
    with pytest.raises(ValueError, match="groups"):
        grad.conv2d_weight(np.zeros((1, 3, 8, 8)), (2, 3, 3, 3), np.zeros((1, 2, 6, 6)),
                           groups=2)
    with pytest.raises(TypeError):
        grad.conv2d_weight(np.zeros((1, 3, 8, 8)).astype(object), (2, 3, 3, 3),
                           np.zeros((1, 2, 6, 6)))


@pytest.mark.parametrize("case", [
    # (N, C, multiplier, kernel, stride, dilation, padding, spatial): 3-D depthwise weight
    # gradients, one 2-D problem per depth tap over the (image, output depth) pairs whose
    # input plane is inside x -- including taps whose every plane is padding (zeros)
    (2, 4, 1, (2, 2, 2), (1, 1, 1), (2, 2, 2), (0, 0, 0), (9, 10, 11)),
    (3, 5, 2, (3, 3, 3), (2, 1, 2), (1, 2, 1), (1, 1, 2), (7, 8, 9)),
    (1, 3, 1, (3, 1, 2), (3, 2, 1), (1, 1, 1), (4, 0, 1), (5, 6, 7)),
    (2, 2, 3, (1, 3, 3), (1, 1, 1), (1, 1, 1), (0, 1, 1), (4, 5, 6)),
    (1, 2, 1, (3, 3, 3), (1, 1, 1), (3, 1, 1), (5, 1, 1), (6, 7, 8)),
    (1, 2, 1, (2, 2, 2), (3, 1, 1), (4, 1, 1), (6, 0, 0), (3, 3, 3)),
])
@pytest.mark.parametrize("algorithm", ["auto", "direct"])
def test_depthwise_3d_weight_grad(case, algorithm):
    n, c, m, k, s, d, p, sp = case
    rng = np.random.default_rng(sum(sp) + c + m)
    x = rng.standard_normal((n, c) + sp).astype(np.float32)
    wshape = (c * m, 1) + k
    osp = tuple((a + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                for a, kk, ss, pp, dd in zip(sp, k, s, p, d))
    gy = rng.standard_normal((n, c * m) + osp).astype(np.float32)
    x0, gy0 = x.copy(), gy.copy()
    want = tgrad.conv3d_weight(torch.from_numpy(x).double(), wshape,
                               torch.from_numpy(gy).double(), stride=s, padding=p,
                               dilation=d, groups=c).numpy()
    got = grad.conv3d_weight(x, wshape, gy, stride=s, padding=p, dilation=d, groups=c,
                             algorithm=algorithm)
    assert got.shape == want.shape and got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())
    assert np.array_equal(x, x0) and np.array_equal(gy, gy0)
