"""fastconv.nn forward convolutions against torch.nn.functional (the oracle)."""
import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import fastconv.nn as fnn  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Using padding='same':UserWarning")

ALGORITHMS = ["auto", "direct", "gemm", "fft"]
TOL = {np.float64: 1e-10, np.float32: 2e-4, np.float16: 2e-2}
CONV = {1: fnn.conv1d, 2: fnn.conv2d, 3: fnn.conv3d}
CONV_T = {1: fnn.conv_transpose1d, 2: fnn.conv_transpose2d, 3: fnn.conv_transpose3d}
TCONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
TCONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
TMOD = {1: torch.nn.Conv1d, 2: torch.nn.Conv2d, 3: torch.nn.Conv3d}


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _close(got, want, dtype, scale=1.0):
    tol = TOL[dtype] * max(1.0, scale)
    np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


def _random_conv(rng, nd):
    """One random forward configuration that PyTorch accepts."""
    while True:
        groups = int(rng.choice([1, 1, 2, 3]))
        depthwise = rng.random() < 0.2
        cin = groups * int(rng.integers(1, 4))
        if depthwise:
            groups = cin
        cout = groups * int(rng.integers(1, 3))
        k = tuple(int(v) for v in rng.integers(1, 5 if nd < 3 else 4, nd))
        stride = tuple(int(v) for v in rng.integers(1, 4, nd))
        dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
        mode = rng.choice(["zeros", "zeros", "reflect", "replicate", "circular"])
        r = rng.random()
        if r < 0.15:
            padding, stride = "same", (1,) * nd
        elif r < 0.25:
            padding = "valid"
        elif r < 0.6:
            padding = int(rng.integers(0, 3))
        else:
            padding = tuple(int(v) for v in rng.integers(0, 3, nd))
        size = tuple(int(v) for v in rng.integers(4 if nd < 3 else 3, 12 if nd < 3 else 7, nd))
        batch = None if rng.random() < 0.2 else int(rng.integers(1, 4))
        p = (0,) * nd if padding == "valid" else padding
        if isinstance(p, int):
            p = (p,) * nd
        if p != "same" and any(s + 2 * q < d * (kk - 1) + 1
                                for s, q, d, kk in zip(size, p, dilation, k)):
            continue
        if mode == "reflect" and p != "same" and any(q >= s for q, s in zip(p, size)):
            continue
        return dict(cin=cin, cout=cout, k=k, size=size, batch=batch,
                    kw=dict(stride=stride, padding=padding, dilation=dilation, groups=groups),
                    mode=str(mode), bias=rng.random() < 0.6)


def _cases(nd, count, seed):
    rng = np.random.default_rng(seed)
    return [_random_conv(rng, nd) for _ in range(count)]


def _arrays(case, dtype, rng):
    shape = ((case["batch"],) if case["batch"] else ()) + (case["cin"],) + case["size"]
    x = rng.standard_normal(shape).astype(dtype)
    w = rng.standard_normal((case["cout"], case["cin"] // case["kw"]["groups"]) + case["k"])
    b = rng.standard_normal(case["cout"]) if case["bias"] else None
    return x, w.astype(dtype), None if b is None else b.astype(dtype)


def _torch_conv(nd, x, w, b, kw, mode):
    if mode == "zeros":
        return TCONV[nd](_t(x), _t(w), None if b is None else _t(b), **kw).numpy()
    m = TMOD[nd](w.shape[1] * kw["groups"], w.shape[0], w.shape[2:], bias=b is not None,
                 padding_mode=mode, **kw).double()
    with torch.no_grad():
        m.weight.copy_(_t(w))
        if b is not None:
            m.bias.copy_(_t(b))
        return m(_t(x).double()).numpy()


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("i", range(30))
def test_conv_random_float64(nd, i):
    case = _cases(nd, 30, 1000 + nd)[i]
    rng = np.random.default_rng(i)
    x, w, b = _arrays(case, np.float64, rng)
    want = _torch_conv(nd, x, w, b, case["kw"], case["mode"])
    x0, w0 = x.copy(), w.copy()
    for alg in ALGORITHMS:
        got = CONV[nd](x, w, b, padding_mode=case["mode"], algorithm=alg, **case["kw"])
        assert got.shape == want.shape and got.dtype == np.float64
        _close(got, want, np.float64)
    np.testing.assert_array_equal(x, x0)  # inputs never modified
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("i", range(10))
def test_conv_random_float32(nd, i):
    case = _cases(nd, 10, 2000 + nd)[i]
    rng = np.random.default_rng(i)
    x, w, b = _arrays(case, np.float32, rng)
    want = _torch_conv(nd, x.astype(np.float64), w.astype(np.float64),
                       None if b is None else b.astype(np.float64), case["kw"], case["mode"])
    for alg in ALGORITHMS:
        got = CONV[nd](x, w, b, padding_mode=case["mode"], algorithm=alg, **case["kw"])
        assert got.dtype == np.float32
        _close(got, want, np.float32, scale=np.sqrt(w[0].size))


def _random_transpose(rng, nd):
    groups = int(rng.choice([1, 2, 3]))
    cin = groups * int(rng.integers(1, 3))
    cout_g = int(rng.integers(1, 3))
    k = tuple(int(v) for v in rng.integers(1, 5 if nd < 3 else 4, nd))
    stride = tuple(int(v) for v in rng.integers(1, 4, nd))
    dilation = tuple(int(v) for v in rng.integers(1, 3, nd))
    op = tuple(int(rng.integers(0, max(s, d))) for s, d in zip(stride, dilation))
    padding = tuple(int(rng.integers(0, 3)) for _ in range(nd))
    size = tuple(int(v) for v in rng.integers(2, 8 if nd < 3 else 5, nd))
    batch = None if rng.random() < 0.2 else int(rng.integers(1, 4))
    return dict(cin=cin, cout_g=cout_g, k=k, size=size, batch=batch, bias=rng.random() < 0.5,
                kw=dict(stride=stride, padding=padding, output_padding=op, groups=groups,
                        dilation=dilation))


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("i", range(15))
def test_conv_transpose_random(nd, i, dtype):
    rng = np.random.default_rng(3000 + 100 * nd + i)
    while True:
        c = _random_transpose(rng, nd)
        out = [(n - 1) * s - 2 * p + d * (k - 1) + op + 1 for n, s, p, d, k, op in
               zip(c["size"], c["kw"]["stride"], c["kw"]["padding"], c["kw"]["dilation"],
                   c["k"], c["kw"]["output_padding"])]
        if min(out) > 0:
            break
    shape = ((c["batch"],) if c["batch"] else ()) + (c["cin"],) + c["size"]
    x = rng.standard_normal(shape)
    w = rng.standard_normal((c["cin"], c["cout_g"]) + c["k"])
    b = rng.standard_normal(c["cout_g"] * c["kw"]["groups"]) if c["bias"] else None
    want = TCONV_T[nd](_t(x), _t(w), None if b is None else _t(b), **c["kw"]).numpy()
    xs, ws, bs = (x.astype(dtype), w.astype(dtype), None if b is None else b.astype(dtype))
    for alg in ALGORITHMS:
        got = CONV_T[nd](xs, ws, bs, algorithm=alg, **c["kw"])
        assert got.shape == want.shape and got.dtype == dtype
        _close(got, want, dtype, scale=np.sqrt(w.size))


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_adjoint_identity(dtype):
    rng = np.random.default_rng(7)
    for _ in range(20):
        g = int(rng.choice([1, 2]))
        x = rng.standard_normal((2, 2 * g, 9, 8)).astype(dtype)
        w = rng.standard_normal((2 * g, 2, 3, 2)).astype(dtype)
        kw = dict(stride=tuple(rng.integers(1, 4, 2)), padding=tuple(rng.integers(0, 3, 2)),
                  dilation=tuple(rng.integers(1, 3, 2)), groups=g)
        y = fnn.conv2d(x, w, **kw)
        r = rng.standard_normal(y.shape).astype(dtype)
        op = [n - ((o - 1) * s - 2 * p + d * (k - 1) + 1) for n, o, s, p, d, k in
              zip(x.shape[2:], y.shape[2:], kw["stride"], kw["padding"], kw["dilation"],
                  w.shape[2:])]
        xt = fnn.conv_transpose2d(r, w, output_padding=op, **kw)
        lhs, rhs = float(np.vdot(y, r)), float(np.vdot(x, xt))
        assert abs(lhs - rhs) <= TOL[dtype] * 10 * (abs(lhs) + 1)


def test_float16_and_int_dtypes():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float16)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float16)
    got = fnn.conv2d(x, w, padding=1)
    assert got.dtype == np.float16
    want = F.conv2d(_t(x.astype(np.float64)), _t(w.astype(np.float64)), padding=1).numpy()
    np.testing.assert_allclose(got.astype(np.float64), want, rtol=2e-2, atol=3e-2)
    gi = fnn.conv2d(np.arange(16).reshape(1, 1, 4, 4), np.ones((1, 1, 2, 2), dtype=int))
    assert gi.dtype == np.float64 and gi[0, 0, 0, 0] == 0 + 1 + 4 + 5


def test_unbatched_and_lists():
    x = [[1.0, 2.0, 3.0, 4.0]]
    got = fnn.conv1d(x, [[[1.0, -1.0]]])
    np.testing.assert_array_equal(got, [[-1.0, -1.0, -1.0]])


def test_float32_big_layer_all_algorithms():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 16, 20, 20)).astype(np.float32)
    w = rng.standard_normal((8, 16, 5, 5)).astype(np.float32)
    want = F.conv2d(_t(x), _t(w), padding=2).numpy()
    for alg in ALGORITHMS:
        np.testing.assert_allclose(fnn.conv2d(x, w, padding=2, algorithm=alg), want,
                                   rtol=1e-4, atol=1e-3)


def test_gemm_tiling_matches(monkeypatch):
    from fastconv.nn import _gemm
    rng = np.random.default_rng(2)
    x = rng.standard_normal((3, 4, 15, 11))
    w = rng.standard_normal((6, 2, 3, 3))
    want = F.conv2d(_t(x), _t(w), padding=1, stride=(2, 1), groups=2).numpy()
    monkeypatch.setattr(_gemm, "TILE_BYTES", 1000)
    monkeypatch.setattr(_gemm, "SCRATCH_BYTES", 1000)
    got = fnn.conv2d(x, w, padding=1, stride=(2, 1), groups=2, algorithm="gemm")
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_empty_batch():
    out = fnn.conv2d(np.zeros((0, 3, 5, 5)), np.ones((2, 3, 3, 3)))
    assert out.shape == (0, 2, 3, 3)


# ---------------------------------------------------------------------------------------
# error parity: for each bad configuration torch raises AND we raise ValueError
# ---------------------------------------------------------------------------------------
_X = np.zeros((2, 4, 6, 6))
_W = np.zeros((4, 2, 3, 3))
BAD_CONV = [
    ("groups", dict(x=np.zeros((2, 3, 6, 6)), w=np.zeros((4, 1, 3, 3)), groups=2)),
    ("groups", dict(w=np.zeros((3, 2, 3, 3)), groups=2)),
    ("groups", dict(groups=0)),
    ("weight", dict(w=np.zeros((4, 3, 3, 3)), groups=2)),
    ("weight", dict(w=np.zeros((4, 2, 3)), groups=2)),
    ("input", dict(x=np.zeros((6, 6)), groups=2)),
    ("input", dict(x=np.zeros((1, 2, 4, 6, 6)), groups=2)),
    ("kernel", dict(w=np.zeros((4, 2, 7, 3)), groups=2)),
    ("kernel", dict(w=np.zeros((4, 2, 3, 3)), dilation=4, groups=2)),
    ("stride", dict(stride=0, groups=2)),
    ("stride", dict(stride=(1, -1), groups=2)),
    ("dilation", dict(dilation=0, groups=2)),
    ("padding", dict(padding=-1, groups=2)),
    ("padding", dict(padding="same", stride=2, groups=2)),
    ("padding", dict(padding="full", groups=2)),
    ("stride", dict(stride=(1, 1, 1), groups=2)),
    ("bias", dict(b=np.zeros(3), groups=2)),
]


@pytest.mark.parametrize("what,cfg", BAD_CONV, ids=[f"{i}-{c[0]}" for i, c in
                                                     enumerate(BAD_CONV)])
def test_error_parity_conv(what, cfg):
    cfg = dict(cfg)
    x, w, b = cfg.pop("x", _X), cfg.pop("w", _W), cfg.pop("b", None)
    with pytest.raises(Exception):
        F.conv2d(_t(x), _t(w), None if b is None else _t(b), **cfg)
    for alg in ALGORITHMS:
        with pytest.raises(ValueError):
            fnn.conv2d(x, w, b, algorithm=alg, **cfg)


BAD_MODE = [
    dict(padding=6, padding_mode="reflect"),
    dict(padding=7, padding_mode="circular"),
]


@pytest.mark.parametrize("cfg", BAD_MODE)
def test_error_parity_padding_mode(cfg):
    m = torch.nn.Conv2d(4, 4, 3, groups=2, **cfg).double()
    with pytest.raises(Exception):
        m(_t(_X))
    with pytest.raises(ValueError):
        fnn.conv2d(_X, _W, groups=2, **cfg)


def test_bad_names():
    with pytest.raises(ValueError, match="padding_mode"):
        fnn.conv2d(_X, _W, groups=2, padding_mode="mirror")
    with pytest.raises(ValueError, match="algorithm"):
        fnn.conv2d(_X, _W, groups=2, algorithm="winograd")
    with pytest.raises(TypeError):
        fnn.conv2d(np.array([["a"]]), _W)
    with pytest.raises(TypeError):
        fnn.conv2d(_X.astype(object), _W, groups=2)


BAD_T = [
    dict(output_padding=2, stride=2),
    dict(output_padding=1, stride=1, dilation=1),
    dict(output_padding=-1, stride=2),
    dict(stride=0),
    dict(dilation=0),
    dict(padding=-1),
    dict(groups=3),
    dict(w=np.zeros((3, 2, 3, 3))),
    dict(padding=5),
]


@pytest.mark.parametrize("cfg", BAD_T)
def test_error_parity_transpose(cfg):
    cfg = dict(cfg)
    w = cfg.pop("w", np.zeros((4, 2, 3, 3)))
    x = np.zeros((2, 4, 3, 3))
    with pytest.raises(Exception):
        F.conv_transpose2d(_t(x), _t(w), **cfg)
    with pytest.raises(ValueError):
        fnn.conv_transpose2d(x, w, **cfg)
