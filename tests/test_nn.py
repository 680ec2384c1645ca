"""fastconv.nn forward convolutions against torch.nn.functional (the oracle)."""
import itertools

import numpy as np
import pytest
import torch  # the oracle: a test dependency (torch==2.13.0), a failure when missing

F = torch.nn.functional

import fastconv.nn as fnn  # noqa: E402
import fastconv.nn.grad as fgrad  # noqa: E402

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
        fnn.conv2d(_X, _W, groups=2, algorithm="im2col")
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


# ---------------------------------------------------------------------------------------
# variants
# ---------------------------------------------------------------------------------------
def _rand(rng, *shape):
    return rng.standard_normal(shape)


@pytest.mark.parametrize("stride", [1, 2])
@pytest.mark.parametrize("groups", [1, 2])
def test_pointwise(stride, groups):
    rng = np.random.default_rng(11)
    x, w, b = _rand(rng, 2, 6, 7, 9), _rand(rng, 4, 6 // groups), _rand(rng, 4)
    want = F.conv2d(_t(x), _t(w[:, :, None, None]), _t(b), stride=stride,
                    groups=groups).numpy()
    _close(fnn.pointwise_conv2d(x, w, b, stride=stride, groups=groups), want, np.float64)
    _close(fnn.pointwise_conv2d(x[0], w[:, :, None, None], b, stride=stride, groups=groups),
           want[0], np.float64)


@pytest.mark.parametrize("groups", [2, 3])
@pytest.mark.parametrize("k", [1, 3])
def test_channel_shuffle_and_shuffled_group_conv(groups, k):
    rng = np.random.default_rng(12)
    x, w, b = _rand(rng, 2, 6, 8, 8), _rand(rng, 12, 6 // groups, k, k), _rand(rng, 12)
    y = F.conv2d(_t(x), _t(w), _t(b), padding=k // 2, groups=groups)
    want = F.channel_shuffle(y, groups).numpy()
    _close(fnn.channel_shuffle(y.numpy(), groups), want, np.float64)
    for alg in ALGORITHMS:
        got = fnn.shuffled_group_conv2d(x, w, groups, b, padding=k // 2, algorithm=alg)
        _close(got, want, np.float64)
    got = fnn.grouped_pointwise_conv2d(x, w[:, :, :1, :1], groups, b, shuffle=True)
    want = F.channel_shuffle(F.conv2d(_t(x), _t(w[:, :, :1, :1]), _t(b), groups=groups),
                             groups).numpy()
    _close(got, want, np.float64)
    with pytest.raises(ValueError, match="groups"):
        fnn.channel_shuffle(x, 4)


@pytest.mark.parametrize("mult", [1, 2])
@pytest.mark.parametrize("stride", [1, 2])
def test_depthwise_and_separable(mult, stride):
    rng = np.random.default_rng(13)
    c = 5
    x, wd, wp = _rand(rng, 2, c, 9, 10), _rand(rng, c * mult, 1, 3, 3), _rand(rng, 7, c * mult)
    bd, bp = _rand(rng, c * mult), _rand(rng, 7)
    mid = F.conv2d(_t(x), _t(wd), _t(bd), stride=stride, padding=1, groups=c)
    for alg in ALGORITHMS:
        _close(fnn.depthwise_conv2d(x, wd, bd, stride=stride, padding=1, algorithm=alg),
               mid.numpy(), np.float64)
    want = F.conv2d(mid, _t(wp[:, :, None, None]), _t(bp)).numpy()
    got = fnn.depthwise_separable_conv2d(x, wd, wp, bd, bp, stride=stride, padding=1)
    _close(got, want, np.float64)
    with pytest.raises(ValueError):
        fnn.depthwise_conv2d(x, _rand(rng, c, 2, 3, 3))


def test_spatially_separable_and_flattened():
    rng = np.random.default_rng(14)
    x = _rand(rng, 2, 4, 10, 11)
    wc, wr, b = _rand(rng, 6, 4, 3, 1), _rand(rng, 5, 6, 1, 5), _rand(rng, 5)
    mid = F.conv2d(_t(x), _t(wc), stride=(2, 1), padding=(1, 0), dilation=(2, 1))
    want = F.conv2d(mid, _t(wr), _t(b), stride=(1, 3), padding=(0, 2), dilation=(1, 1))
    got = fnn.spatially_separable_conv2d(x, wc, wr, b, stride=(2, 3), padding=(1, 2),
                                         dilation=(2, 1))
    _close(got, want.numpy(), np.float64)
    # flattened: channel 1x1, then vertical and horizontal depthwise
    a, v, h, b = _rand(rng, 6, 4), _rand(rng, 6, 3), _rand(rng, 6, 5), _rand(rng, 6)
    t = F.conv2d(_t(x), _t(a[:, :, None, None]))
    t = F.conv2d(t, _t(v[:, None, :, None]), padding=(1, 0), groups=6)
    want = F.conv2d(t, _t(h[:, None, None, :]), _t(b), padding=(0, 2), groups=6).numpy()
    _close(fnn.flattened_conv2d(x, a, v, h, b, padding=(1, 2)), want, np.float64)
    full = np.einsum("oc,oh,ow->ochw", a, v, h)
    _close(fnn.flattened_conv2d(x, a, v, h, b, padding=(1, 2)),
           F.conv2d(_t(x), _t(full), _t(b), padding=(1, 2)).numpy(), np.float64)


def test_dilated_and_grouped():
    rng = np.random.default_rng(15)
    x, w = _rand(rng, 1, 4, 12, 12), _rand(rng, 4, 2, 3, 3)
    want = F.conv2d(_t(x), _t(w), padding=3, dilation=3, groups=2).numpy()
    _close(fnn.dilated_conv2d(x, w, dilation=3, groups=2), want, np.float64)
    _close(fnn.grouped_conv2d(x, w, 2, padding=3, dilation=3), want, np.float64)


def test_output_shape_helpers():
    assert fnn.conv_output_shape((227, 227), 11, stride=4) == (55, 55)
    assert fnn.conv_output_shape((56, 56), 3, padding=6, dilation=6) == (56, 56)
    assert fnn.conv_output_shape(10, 4, padding="same") == (10,)
    assert fnn.conv_transpose_output_shape((16, 16), 4, stride=2, padding=1) == (32, 32)
    assert fnn.conv_transpose_output_shape(5, 3, stride=2, output_padding=1) == (12,)
    with pytest.raises(ValueError, match="output_padding"):
        fnn.conv_transpose_output_shape(5, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError):
        fnn.conv_output_shape(3, 5)


@pytest.mark.parametrize("nd,kw", [
    (1, dict(stride=2, padding=1)),
    (2, dict(stride=(2, 1), padding=(1, 2), dilation=(1, 2), groups=2)),
    (2, dict(padding="same", dilation=2)),
    (3, dict(stride=2, padding=1, groups=2)),
])
def test_conv_matrix(nd, kw):
    rng = np.random.default_rng(16)
    g = kw.get("groups", 1)
    shape = (4,) + (7,) * nd
    w = _rand(rng, 6, 4 // g, *(3,) * nd)
    x = _rand(rng, *shape)
    C = fnn.conv_matrix(w, shape, **kw)
    y = TCONV[nd](_t(x[None]), _t(w), **kw).numpy()[0]
    np.testing.assert_allclose(C @ x.ravel(), y.ravel(), atol=1e-12)
    if kw.get("padding") != "same":
        r = _rand(rng, *y.shape)
        p = kw.get("padding", 0)
        s, d = kw.get("stride", 1), kw.get("dilation", 1)
        tkw = dict(stride=s, padding=p, dilation=d, groups=g)
        out = np.array(fnn.conv_transpose_output_shape(y.shape[1:], (3,) * nd, s, p, 0, d))
        op = tuple(int(v) for v in np.array(shape[1:]) - out)
        xt = TCONV_T[nd](_t(r[None]), _t(w), output_padding=op, **tkw).numpy()[0]
        np.testing.assert_allclose(C.T @ r.ravel(), xt.ravel(), atol=1e-12)


def test_concurrent_calls_agree():
    from concurrent.futures import ThreadPoolExecutor
    rng = np.random.default_rng(17)
    xs = [rng.standard_normal((2, 8, 16, 16)).astype(np.float32) for _ in range(6)]
    w = rng.standard_normal((8, 8, 3, 3)).astype(np.float32)
    serial = [fnn.conv2d(x, w, padding=1) for x in xs]
    with ThreadPoolExecutor(3) as ex:
        par = list(ex.map(lambda x: fnn.conv2d(x, w, padding=1), xs))
    for a, b in zip(serial, par):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_implicit_gemm_engine(nd):
    """The implicit-GEMM engine (no im2col; used when a patch matrix would not fit)."""
    from fastconv.nn import _gemm
    assert _gemm.have_implicit(np.float64), "the compiled fastconv._gemm extension is missing"
    rng = np.random.default_rng(20 + nd)
    for _ in range(4):
        g = int(rng.choice([1, 2]))
        xs = (2, 2 * g) + tuple(int(v) for v in rng.integers(5, 9, nd))
        ws = (2 * g, 2) + tuple(int(v) for v in rng.integers(1, 4, nd))
        s = tuple(int(v) for v in rng.integers(1, 3, nd))
        d = tuple(int(v) for v in rng.integers(1, 3, nd))
        p = tuple(int(v) for v in rng.integers(0, 3, nd))
        x, w = rng.standard_normal(xs), rng.standard_normal(ws)
        want = TCONV[nd](_t(x), _t(w), stride=s, dilation=d, padding=p, groups=g).numpy()
        got = _gemm.correlate_implicit(x, w, want.shape[2:], s, d, p, g)
        np.testing.assert_allclose(got, want, atol=1e-12)
        y = rng.standard_normal(want.shape)
        gx = _gemm.adjoint_implicit(y, w, xs[2:], s, d, p, g)
        assert abs(np.vdot(got, y) - np.vdot(x, gx)) < 1e-9 * (1 + abs(np.vdot(got, y)))


def test_threaded_gemm_paths_large_layers(monkeypatch):
    """Layers big enough for the chunked, pooled GEMM paths (2 threads), incl. 3-D tiles."""
    import fastconv
    from fastconv.nn import _gemm
    rng = np.random.default_rng(30)
    with fastconv.threads(2):
        x = rng.standard_normal((4, 32, 32, 32)).astype(np.float32)
        w = rng.standard_normal((32, 32, 3, 3)).astype(np.float32) / 17
        want = F.conv2d(_t(x), _t(w), padding=1, stride=(1, 2)).numpy()
        got = fnn.conv2d(x, w, padding=1, stride=(1, 2), algorithm="gemm")
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)
        w1 = rng.standard_normal((48, 16, 1, 1)).astype(np.float32) / 4
        want = F.channel_shuffle(F.conv2d(_t(x), _t(w1), groups=2), 2).numpy()
        np.testing.assert_allclose(fnn.shuffled_group_conv2d(x, w1, 2), want, rtol=1e-4,
                                   atol=1e-4)
        want = F.conv2d(_t(x[:1]), _t(w1[:, :, :, :].repeat(2, axis=1))).numpy()
        np.testing.assert_allclose(fnn.pointwise_conv2d(x[:1], w1.repeat(2, axis=1)), want,
                                   rtol=1e-4, atol=1e-4)
        wt = rng.standard_normal((32, 8, 4, 4)).astype(np.float32) / 10
        want = F.conv_transpose2d(_t(x), _t(wt), stride=2, padding=1).numpy()
        np.testing.assert_allclose(fnn.conv_transpose2d(x, wt, stride=2, padding=1,
                                                        algorithm="gemm"),
                                   want, rtol=1e-4, atol=1e-4)
        monkeypatch.setattr(_gemm, "TILE_BYTES", 20000)
        x3 = rng.standard_normal((2, 16, 6, 12, 12)).astype(np.float32)
        w3 = rng.standard_normal((16, 16, 3, 3, 3)).astype(np.float32) / 20
        want = F.conv3d(_t(x3), _t(w3), padding=1).numpy()
        np.testing.assert_allclose(fnn.conv3d(x3, w3, padding=1, algorithm="gemm"), want,
                                   rtol=1e-4, atol=1e-4)


def test_complex_inputs():
    rng = np.random.default_rng(31)
    x = rng.standard_normal((2, 4, 9, 9)) + 1j * rng.standard_normal((2, 4, 9, 9))
    w = rng.standard_normal((6, 2, 3, 3)) + 1j * rng.standard_normal((6, 2, 3, 3))
    want = F.conv2d(_t(x), _t(w), padding=1, groups=2, stride=2).numpy()
    for alg in ALGORITHMS:
        got = fnn.conv2d(x, w, padding=1, groups=2, stride=2, algorithm=alg)
        assert got.dtype == np.complex128
        np.testing.assert_allclose(got, want, atol=1e-10)


def test_shuffled_group_conv_1x1_strided_same_is_rejected_like_conv2d():
    x = np.ones((1, 4, 6, 6), np.float32)
    w = np.ones((4, 2, 1, 1), np.float32)
    with pytest.raises(ValueError):
        fnn.conv2d(x, w, None, 2, "same", groups=2)
    with pytest.raises(ValueError):
        fnn.shuffled_group_conv2d(x, w, 2, stride=2, padding="same")
    # stride 1 'same' and 'valid' take the 1x1 shortcut and agree with torch
    for pad in ("same", "valid", 0):
        got = fnn.shuffled_group_conv2d(x, w, 2, padding=pad)
        want = torch.nn.functional.channel_shuffle(
            torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), groups=2), 2)
        np.testing.assert_allclose(got, want.numpy(), rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
@pytest.mark.parametrize("case", [
    # (input shape, weight shape, stride, padding, dilation, groups): strided transposed
    # convolutions computed as one stride-1 correlation per output phase
    ((2, 8, 9, 7), (8, 1, 3, 3), (2, 2), (1, 1), (1, 1), 8),      # depthwise: 'auto' phases
    ((2, 4, 6, 5), (4, 3, 4, 3), (3, 2), (2, 0), (2, 3), 1),      # dilation/stride coprime
    ((1, 4, 5, 6), (4, 2, 3, 3), (2, 2), (0, 1), (2, 2), 2),      # gcd(d, s) = 2: empty phases
    ((2, 3, 4, 5, 3), (3, 2, 2, 3, 2), (2, 3, 2), (0, 1, 1), (1, 1, 2), 1),
    ((3, 6, 11), (6, 2, 5), (4,), (3,), (3,), 3),
])
def test_conv_transpose_phases(case, dtype):
    """The per-phase path ('direct' when strided, and 'auto' where the phases are cheaper)
    against torch, with output_padding taking every allowed value."""
    from fastconv.nn import _algorithms
    xs, ws, stride, pad, dil, g = case
    nd = len(xs) - 2
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    for op in itertools.product(*[range(max(s, d)) for s, d in zip(stride, dil)]):
        kw = dict(stride=stride, padding=pad, output_padding=op, dilation=dil, groups=g)
        want = TCONV_T[nd](_t(x), _t(w), **kw).numpy()
        for alg in ("direct", "auto"):
            got = CONV_T[nd](x.astype(dtype), w.astype(dtype), algorithm=alg, **kw)
            assert got.shape == want.shape
            _close(got, want, dtype, scale=np.sqrt(w.size))
    # the direct path is the phase decomposition, called once per phase
    calls = []
    real = _algorithms.correlate

    def spy(*a, **k):
        calls.append(a[2])
        return real(*a, **k)
    _algorithms.correlate = spy
    try:
        CONV_T[nd](x, w, algorithm="direct", stride=stride, padding=pad, dilation=dil,
                   groups=g)
    finally:
        _algorithms.correlate = real
    assert 0 < len(calls) <= np.prod(stride)


def test_conv_transpose_auto_takes_phases_for_depthwise():
    from fastconv.nn import _algorithms
    calls = []
    real = _algorithms._adjoint_phases

    def spy(*a, **k):
        calls.append(a[-1])
        return real(*a, **k)
    rng = np.random.default_rng(5)
    x = rng.standard_normal((4, 32, 24, 24)).astype(np.float32)
    w = rng.standard_normal((32, 1, 3, 3)).astype(np.float32)
    _algorithms._adjoint_phases = spy
    try:
        got = fnn.conv_transpose2d(x, w, stride=2, padding=1, groups=32)
    finally:
        _algorithms._adjoint_phases = real
    assert calls == ["auto"]
    want = TCONV_T[2](_t(x), _t(w), stride=2, padding=1, groups=32).numpy()
    _close(got, want, np.float32, scale=3.0)


@pytest.mark.parametrize("case", [
    # (input, weight, stride, padding, groups, what 'auto' must take, why)
    # 16 -> 16 7x7/2: col2im's patch matrix is 49 x the input, its reduction 16 long
    ((8, 16, 64, 64), (16, 16, 7, 7), 2, 0, 1, "phases"),
    # L13 (256 -> 128 4x4/2): every phase a dense GEMM, col2im's matrix small
    ((8, 256, 16, 16), (256, 128, 4, 4), 2, 1, 1, "gemm"),
    # unit stride, kernel large against the input: the forward problem reads mostly padding
    ((8, 128, 8, 8, 8), (128, 1, 7, 7, 7), 1, 0, 1, "col2im"),
    # unit stride 3x3 pad 1: the forward correlation (no patch matrix), by Winograd where
    # the AVX2 engine is built (measured, 2 threads: 2.2-2.7 ms against the GEMM's 3.0-3.1)
    ((8, 64, 32, 32), (64, 64, 3, 3), 1, 1, 1, "forward 3x3"),
])
def test_conv_transpose_auto_choice(case):
    """The adjoint cost model (choose_adjoint) on geometries where one route is several
    times faster than the others (measured, 2 threads: 16 -> 16 7x7/2 phases 10-11 ms vs
    col2im 38-44 ms; 128 -> 1 7^3 col2im 3.1 ms vs forward 42 ms)."""
    import fastconv
    from fastconv.nn import _algorithms
    xs, ws, s, p, g, want = case
    nd = len(xs) - 2
    x_spatial = tuple((n - 1) * s - 2 * p + k for n, k in zip(xs[2:], ws[2:]))
    with fastconv.threads(2):
        got = _algorithms.choose_adjoint(xs, ws, x_spatial, (s,) * nd, (1,) * nd, (p,) * nd,
                                         g, np.float32)
    if want == "forward 3x3":
        want = ("winograd" if _algorithms._gemm.winograd_serves(np.float32, ws[2:], (1, 1))
                else "gemm")
    assert got == want


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", [
    # unit-stride transposed convolutions that 'auto' scatters (GEMM + col2im), against torch
    ((1, 128, 3, 4), (128, 2, 9, 9), 0, 1, 1),
    ((2, 96, 4, 5), (96, 2, 7, 7), (2, 1), (1, 2), 3),
    ((3, 512, 6), (512, 1, 15), 2, 3, 1),
    ((1, 64, 4, 4, 4), (64, 1, 5, 5, 5), 1, 1, 1),
])
def test_conv_transpose_unit_stride_col2im(case, dtype):
    from fastconv.nn import _algorithms
    xs, ws, pad, dil, g = case
    nd = len(xs) - 2
    rng = np.random.default_rng(sum(xs) + sum(ws))
    x = rng.standard_normal(xs)
    w = rng.standard_normal(ws)
    b = rng.standard_normal(ws[1] * g)
    kw = dict(padding=pad, dilation=dil, groups=g)
    want = TCONV_T[nd](_t(x), _t(w), _t(b), **kw).numpy()
    calls = []
    real = _algorithms._gemm.correlate_adjoint

    def spy(*a, **k):
        calls.append(1)
        return real(*a, **k)
    _algorithms._gemm.correlate_adjoint = spy
    try:
        got = CONV_T[nd](x.astype(dtype), w.astype(dtype), b.astype(dtype), **kw)
    finally:
        _algorithms._gemm.correlate_adjoint = real
    assert calls == [1]
    assert got.shape == want.shape and got.dtype == dtype
    _close(got, want, dtype, scale=np.sqrt(w.size))


@pytest.mark.parametrize("variant", [
    {"stride": True}, {"stride": 1.0}, {"stride": np.int64(1)}, {"stride": (1, 1)},
    {"stride": [1, 1]}, {"stride": (1,)}, {"stride": (1, True)}, {"padding": True},
    {"padding": 1.0}, {"padding": "same"}, {"padding": "SAME"}, {"dilation": (1, 1.0)},
    {"groups": True}, {"groups": 1.0}, {"padding_mode": "reflect"},
])
def test_validated_arguments_memo_changes_nothing(variant):
    """conv_params remembers arguments that validated once; a warm memo must accept and
    reject exactly what a cold one does (True is not 1, 1.0 is not 1 to the validators),
    and agree with torch on what is accepted."""
    from fastconv.nn import _shapes

    rng = np.random.default_rng(5)
    x = rng.standard_normal((1, 2, 7, 7)).astype(np.float32)
    w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
    kw = dict(stride=1, padding=1, dilation=1, groups=1)
    kw.update({k: v for k, v in variant.items() if k != "padding_mode"})
    mode = variant.get("padding_mode", "zeros")

    def outcome():
        try:
            return fnn.conv2d(x, w, padding_mode=mode, **kw).shape
        except (TypeError, ValueError) as e:
            return type(e)

    _shapes._PARAMS_MEMO.clear()
    cold = outcome()
    for warm_kw in (dict(stride=1, padding=1, dilation=1, groups=1), kw):
        fnn.conv2d(x, w, **{**dict(stride=1, padding=1, dilation=1, groups=1)})
        try:
            fnn.conv2d(x, w, padding_mode=mode, **warm_kw)
        except (TypeError, ValueError):
            pass
        assert outcome() == cold
    # the oracle: torch accepts the same arguments; except a bool inside a stride or
    # dilation tuple, which torch's argument parser lets through as an int (while it
    # rejects a bool stride and a bool in a padding tuple); fastconv rejects bools alike
    bool_in_tuple = any(isinstance(v, tuple) and any(isinstance(e, bool) for e in v)
                        for v in variant.values())
    if mode == "zeros" and not bool_in_tuple:
        try:
            torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w), **kw)
            accepted = True
        except (TypeError, ValueError, RuntimeError):
            accepted = False
        assert accepted == (not isinstance(cold, type)), (variant, cold)


@pytest.mark.parametrize("n,cin,cout,sz,bias,stride", [
    (1, 256, 64, 7, True, 1), (1, 96, 128, 14, False, 1), (8, 32, 64, 7, True, 1),
    (1, 128, 64, 14, True, 2), (1, 64, 96, 27, False, 2), (1, 64, 32, 7, True, 1),
    (1, 64, 64, 28, False, 1), (1, 40, 72, 16, True, 1),
])
def test_small_map_pointwise(n, cin, cout, sz, bias, stride):
    """float32 1x1 layers on small maps (batch 1 takes the implicit form with per-item
    weight packing there, see fc_cgemm_run's ``small1``), through conv2d and
    pointwise_conv2d, against torch."""
    rng = np.random.default_rng(n * 1000 + cout)
    x = rng.standard_normal((n, cin, sz, sz)).astype(np.float32)
    w = rng.standard_normal((cout, cin, 1, 1)).astype(np.float32)
    b = rng.standard_normal(cout).astype(np.float32) if bias else None
    for got in (fnn.conv2d(x, w, b, stride=stride),
                fnn.pointwise_conv2d(x, w[:, :, 0, 0], b, stride=stride)):
        ref = torch.nn.functional.conv2d(
            torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64)),
            None if b is None else torch.from_numpy(b.astype(np.float64)), stride=stride).numpy()
        assert got.dtype == np.float32
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.sqrt(cin))


def _winograd_available():
    from fastconv.nn import _gemm
    return _gemm.winograd_serves(np.float32, (3, 3), (1, 1))


@pytest.mark.parametrize("alg", ALGORITHMS + [pytest.param(
    "winograd", marks=pytest.mark.skipif(
        not _winograd_available(),
        reason="the Winograd engine needs an AVX2+FMA CPU and the compiled extension"))])
@pytest.mark.parametrize("cout", [8, 64])
def test_no_input_channels_gives_the_bias(alg, cout):
    """C_in = 0: every output is the bias (an empty sum). 'auto' divided by the empty
    reduction in its cost model (ZeroDivisionError) and the Winograd engine left the
    output unwritten; torch 2.13 returns 0 output channels here, so the oracle is the
    definition."""
    x = np.zeros((2, 0, 7, 6), np.float32)
    w = np.zeros((cout, 0, 3, 3), np.float32)
    b = np.arange(cout, dtype=np.float32) - 3
    got = fnn.conv2d(x, w, b, padding=1, algorithm=alg)
    assert got.shape == (2, cout, 7, 6)
    np.testing.assert_array_equal(got, np.broadcast_to(b[None, :, None, None], got.shape))


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_empty_channels_every_route(nd, dtype):
    """Zero input channels through every algorithm and the weight gradient: empty sums,
    the bias, right shapes (before: float64 GEMM and the weight gradient failed in a
    reshape, 'auto' divided by zero, the direct kernel left the output unwritten). What
    torch refuses -- a weight with no rows (zero output channels; a transposed weight with
    zero input or output channels), an input with an empty spatial axis -- is refused."""
    sp = (6,) * nd
    b = np.arange(5, dtype=dtype) - 2
    bsh = (1, 5) + (1,) * nd
    k = (3,) * nd
    for alg in ALGORITHMS:
        got = CONV[nd](np.zeros((2, 0) + sp, dtype), np.zeros((5, 0) + k, dtype), b,
                       padding=1, algorithm=alg)
        assert got.dtype == dtype
        np.testing.assert_array_equal(got, np.broadcast_to(b.reshape(bsh), got.shape))
        gw = getattr(fnn.grad, f"conv{nd}d_weight")(
            np.zeros((2, 0) + sp, dtype), (4, 0) + k, np.zeros((2, 4) + (4,) * nd, dtype),
            algorithm=alg)
        assert gw.shape == (4, 0) + k and gw.dtype == dtype
        with pytest.raises(ValueError, match="at least 1 at dimension 0"):
            CONV[nd](np.zeros((2, 3) + sp, dtype), np.zeros((0, 3) + k, dtype), algorithm=alg)
        for s in (1, 2):
            with pytest.raises(ValueError, match="at least 1 at dimension 0"):
                CONV_T[nd](np.zeros((2, 0) + sp, dtype), np.zeros((0, 5) + k, dtype),
                           stride=s, algorithm=alg)
            with pytest.raises(ValueError, match=r"weight.shape\[1\]"):
                CONV_T[nd](np.zeros((2, 3) + sp, dtype), np.zeros((3, 0) + k, dtype),
                           stride=s, algorithm=alg)
        with pytest.raises(ValueError, match="at least 1 at dimension 0"):
            getattr(fnn.grad, f"conv{nd}d_input")((2, 3) + sp, np.zeros((0, 3) + k, dtype),
                                                  np.zeros((2, 0) + (4,) * nd, dtype),
                                                  algorithm=alg)
        with pytest.raises(ValueError, match="at least 1 at dimension 0"):
            getattr(fnn.grad, f"conv{nd}d_weight")(
                np.zeros((2, 3) + sp, dtype), (0, 3) + k, np.zeros((2, 0) + (4,) * nd, dtype),
                algorithm=alg)


@pytest.mark.parametrize("nd", [1, 2, 3])
def test_empty_spatial_axis_refused_like_torch(nd):
    x = np.ones((1, 2, 0) + (6,) * (nd - 1))
    w = np.ones((3, 2) + (1,) * nd)
    ref = [F.conv1d, F.conv2d, F.conv3d][nd - 1]
    with pytest.raises(RuntimeError, match="Only zero batch or zero channel"):
        ref(_t(x), _t(w), padding=1)
    with pytest.raises(ValueError, match="only zero batch or zero channel inputs"):
        CONV[nd](x, w, padding=1)
    with pytest.raises(ValueError, match="only zero batch or zero channel inputs"):
        CONV_T[nd](x, np.ones((2, 3) + (1,) * nd))
    gy = np.ones((1, 3, 2) + (6,) * (nd - 1))
    with pytest.raises(ValueError, match="only zero batch or zero channel inputs"):
        getattr(fnn.grad, f"conv{nd}d_input")(x.shape, w, gy, padding=1)
    with pytest.raises(ValueError, match="only zero batch or zero channel inputs"):
        getattr(fnn.grad, f"conv{nd}d_weight")(x, w.shape, gy, padding=1)
    with pytest.raises(ValueError, match="input_size"):
        fnn.conv_output_shape((0,) + (6,) * (nd - 1), 1, padding=1)
    # zero batch stays accepted, as torch
    assert CONV[nd](np.ones((0, 2) + (6,) * nd), w).shape == (0, 3) + (6,) * nd


def test_channel_shuffle_returns_a_copy():
    x = np.arange(12.).reshape(1, 6, 2)
    for g in (1, 2, 6):
        y = fnn.channel_shuffle(x, g)
        np.testing.assert_array_equal(
            y, torch.nn.functional.channel_shuffle(_t(x), g).numpy())
        assert not np.shares_memory(x, y)


def test_shuffled_group_conv2d_array_arguments():
    rng = np.random.default_rng(4)
    x = rng.standard_normal((1, 6, 5, 5)).astype(np.float32)
    w = rng.standard_normal((6, 2, 1, 1)).astype(np.float32)
    # torch as the oracle: the grouped convolution, then its channel shuffle
    want = F.channel_shuffle(F.conv2d(_t(x), _t(w), groups=3), 3).numpy()
    for kw in ({"padding": np.array([0, 0])}, {"dilation": np.array([1, 1])},
               {"stride": np.array([1, 1]), "padding": "same"}, {"padding": (0, 0)},
               {"padding": np.int64(0), "stride": [1]}):
        np.testing.assert_allclose(fnn.shuffled_group_conv2d(x, w, 3, **kw), want,
                                   rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("alg", ALGORITHMS)
def test_empty_batch_every_algorithm(alg):
    """N = 0: empty outputs of the right shape (the Winograd cost terms divided by the
    number of images: ZeroDivisionError under 'auto')."""
    for nd in (1, 2, 3):
        got = CONV[nd](np.zeros((0, 64) + (8,) * nd, np.float32),
                       np.ones((64, 64) + (3,) * nd, np.float32), padding=1, algorithm=alg)
        assert got.shape == (0, 64) + (8,) * nd
        got = CONV_T[nd](np.zeros((0, 64) + (8,) * nd, np.float32),
                         np.ones((64, 48) + (3,) * nd, np.float32), padding=1, algorithm=alg)
        assert got.shape == (0, 48) + (8,) * nd


def test_float16_overflow_is_inf_without_warning():
    """float16 results past 65504 become +-inf, as torch's do, with no RuntimeWarning from
    the final cast."""
    import warnings
    rng = np.random.default_rng(16)
    x = (rng.random((1, 64, 8, 8)) * 300).astype(np.float16)
    w = (rng.random((64, 64, 3, 3)) * 300).astype(np.float16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        got = fnn.conv2d(x, w, padding=1)
        gx = fnn.grad.conv2d_input(x.shape, w, np.ones((1, 64, 8, 8), np.float16) * 3e4,
                                   padding=1)
    want = F.conv2d(_t(x).float(), _t(w).float(), padding=1).half().numpy()
    np.testing.assert_array_equal(np.isinf(got), np.isinf(want))
    assert np.isinf(got).any() and got.dtype == np.float16 and np.isinf(gx).any()


# ----------------------------------------------------------------------------- NaN / Inf, FFT engine
def _same_nonfinite(got, want):
    """NaN where torch has NaN, +-Inf where it has +-Inf, finite values close."""
    np.testing.assert_array_equal(np.isnan(got), np.isnan(want))
    np.testing.assert_array_equal(np.isposinf(got), np.isposinf(want))
    np.testing.assert_array_equal(np.isneginf(got), np.isneginf(want))
    fin = np.isfinite(want)
    np.testing.assert_allclose(got[fin], want[fin], rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("algorithm", ["auto", "fft"])
@pytest.mark.parametrize("where", ["input", "weight"])
@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_fft_engine_keeps_nonfinite_local_like_torch(algorithm, where, bad):
    # a 15x15 kernel: 'auto' takes the FFT engine for it; a product of spectra would smear
    # one NaN/Inf over every output, torch keeps it to the outputs that read it
    rng = np.random.default_rng(3)
    x = rng.standard_normal((2, 3, 40, 40))
    w = rng.standard_normal((4, 3, 15, 15))
    if where == "input":
        x[1, 2, 5, 7] = bad
    else:
        w[2, 1, 3, 3] = bad
    want = F.conv2d(_t(x), _t(w), padding=2).numpy()
    _same_nonfinite(fnn.conv2d(x, w, padding=2, algorithm=algorithm), want)
    y = rng.standard_normal((2, 4, 20, 20))
    if where == "input":
        y[0, 3, 4, 4] = bad
    for stride in (1, 2):
        # transposed (weight (C_in=4, C_out=3, k, k)) and the input gradient
        want = F.conv_transpose2d(_t(y), _t(w), stride=stride).numpy()
        _same_nonfinite(fnn.conv_transpose2d(y, w, stride=stride, algorithm=algorithm), want)
        want = torch.nn.grad.conv2d_input(want.shape, _t(w), _t(y), stride=stride).numpy()
        _same_nonfinite(fgrad.conv2d_input(want.shape, w, y, stride=stride,
                                           algorithm=algorithm), want)
    x1 = np.ones((1, 1, 8))
    x1[0, 0, 0] = bad
    _same_nonfinite(fnn.conv1d(x1, np.ones((1, 1, 3)), algorithm="fft"),
                    F.conv1d(_t(x1), torch.ones(1, 1, 3, dtype=torch.float64)).numpy())


def test_results_that_cannot_fit_are_refused_before_allocation(monkeypatch):
    """MemoryError naming the size, before any allocation, for results (and conv_matrix's
    entries) larger than the memory available (here made 1 GiB)."""
    from fastconv import _config
    monkeypatch.setattr(_config, "available_memory", lambda: 2 ** 30)
    x = np.ones((1, 1, 100, 100), np.float32)
    w = np.ones((1, 1, 3, 3), np.float32)
    cases = [
        lambda: fnn.conv2d(x, np.ones((30000, 1, 1, 1), np.float32)),     # 1.1 GiB result
        lambda: fnn.conv_transpose2d(x, np.ones((1, 30000, 1, 1), np.float32)),
        lambda: fnn.conv_transpose2d(x, w, stride=(200, 200)),            # 1.5 GiB result
        lambda: fnn.grad.conv2d_input((1, 30000, 100, 100), np.ones((1, 30000, 1, 1)),
                                      np.ones((1, 1, 100, 100))),
        lambda: fnn.conv_matrix(np.ones((64, 64, 3, 3)), (64, 200, 200), padding=1),
    ]
    for f in cases:
        with pytest.raises(MemoryError, match="GiB"):
            f()
    # what fits still runs
    assert fnn.conv2d(x, np.ones((8, 1, 1, 1), np.float32)).shape == (1, 8, 100, 100)


@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("k,s,d,p", [(1, 2, 1, 0), (1, 3, 1, 2), (1, 2, 1, 1), (3, 2, 2, 1),
                                     (3, 2, 4, 3), ((1, 3, 1), (2, 2, 3), 1, (0, 1, 1)),
                                     (2, 3, 3, 0)])
def test_strided_single_phase_taps(nd, k, s, d, p):
    """Strided layers whose taps read one stride phase of the input (1x1 kernels, dilation
    a multiple of the stride), with and without padding; torch is the oracle."""
    def per_axis(v):
        return tuple(v[:nd]) if isinstance(v, tuple) else (v,) * nd
    k, s, d, p = per_axis(k), per_axis(s), per_axis(d), per_axis(p)
    rng = np.random.default_rng(sum(k) + sum(s) + sum(d) + sum(p) + nd)
    x = rng.standard_normal((2, 6) + (11, 9, 10)[:nd]).astype(np.float32)
    w = rng.standard_normal((10, 3) + k).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    want = [F.conv1d, F.conv2d, F.conv3d][nd - 1](_t(x), _t(w), _t(b), stride=s, padding=p,
                                                 dilation=d, groups=2).numpy()
    for alg in ("auto", "gemm"):
        got = CONV[nd](x, w, b, stride=s, padding=p, dilation=d, groups=2, algorithm=alg)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
