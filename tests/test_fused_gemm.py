"""The fused im2col+GEMM float32 engine (fastconv/src/fc_cgemm.h, ``fastconv._gemm.
conv_gemm_f32``) and the public functions that run on it, against PyTorch.

Oracle: ``torch.nn.functional.conv1d/2d/3d`` computed in float64 on the same float32 data
(then ``channel_shuffle`` by reshape/transpose where a shuffle is asked for); fastconv is
never compared against itself. Tolerance: float32 accumulation error, ``rtol=1e-4`` and
``atol = 1e-5 * (sqrt(K) * max|x| * max|w| + max|bias|)`` with ``K = C_in/groups * prod(k)``.

The engine's blocking, which the cases are chosen to straddle: micro-tiles of 6 output
channels x 16 pixels, K blocks of at most 256, 20 micro-panels of A per MC block, at most
768 pixels per work item; B panels are packed either from one contiguous run of 16 floats
or gathered (output rows straddling input rows, strides, dilation). Cases with spatial
kernels and >= 16 output channels per group run the engine's implicit form by default
(``engine=-1``); tests/test_implicit_gemm.py runs those shapes on both forms explicitly.
"""
import itertools
import math
import warnings

import numpy as np
import pytest
import torch  # the oracle: a test dependency, a failure when missing

import fastconv
from fastconv import _gemm as _cgemm  # a build without it is a failure, not a skip
from fastconv import nn as fnn
from fastconv.nn import _gemm as nn_gemm
from _helpers import run_concurrently  # noqa: E402  (tests/ is on sys.path under pytest)

F = torch.nn.functional

conv_gemm_f32 = _cgemm.conv_gemm_f32


# strided problems: the default (-1, auto), 0 (gather the strided taps) and 1 (pack from a
# phase-split copy of the input); None passes no ``phase`` argument (the default)
_PHASES = [None, 0, 1]
PHASE = pytest.mark.parametrize("phase", _PHASES,
                                ids=lambda p: "phase-auto" if p is None else f"phase-{p}")


# ----------------------------------------------------------------------------------------
# helpers
# ----------------------------------------------------------------------------------------
def _rand(rng, shape, scale=1.0):
    return (scale * rng.standard_normal(shape)).astype(np.float32)


def _t64(a):
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float64))


def _torch_conv(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1, shuffle=False):
    """float64 torch convolution of float32 numpy data (the oracle)."""
    nd = w.ndim - 2
    conv = getattr(F, f"conv{nd}d")
    b = None if bias is None else _t64(bias)
    with torch.no_grad(), warnings.catch_warnings():
        # torch's "padding='same' with even kernel lengths ... zero-padded copy" notice
        warnings.simplefilter("ignore", UserWarning)
        y = conv(_t64(x), _t64(w), b, stride=stride, padding=padding, dilation=dilation,
                 groups=groups)
        if shuffle:
            y = _torch_shuffle(y, groups)
    return y.numpy()


def _torch_shuffle(y, groups):
    """ShuffleNet channel shuffle of a batched tensor by reshape/transpose."""
    n, c = y.shape[:2]
    return (y.reshape((n, groups, c // groups) + tuple(y.shape[2:])).transpose(1, 2)
            .reshape(y.shape))


def _assert_close(got, ref, x, w, bias=None, k=None):
    got = np.asarray(got)
    assert got.dtype == np.float32
    assert got.shape == ref.shape
    if k is None:
        k = w.shape[1] * math.prod(w.shape[2:])  # K = C_in/groups * prod(kernel)
    sx = float(np.abs(x).max()) if x.size else 0.0
    sw = float(np.abs(w).max()) if w.size else 0.0
    sb = 0.0 if bias is None or np.size(bias) == 0 else float(np.abs(bias).max())
    atol = 1e-5 * (math.sqrt(max(k, 1)) * sx * sw + sb) + 1e-30
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=atol)


def _out_size(n, k, s, d):
    return (n - d * (k - 1) - 1) // s + 1


def _run_direct(xp, w, bias, groups, stride, dilation, shuffle=False, nthreads=1,
                force_generic=False, out_spatial=None, phase=None):
    """conv_gemm_f32 on an already padded (N, C, D, H, W) input into a NaN-filled ``out``
    (``phase`` passed only when not None)."""
    if out_spatial is None:
        out_spatial = tuple(_out_size(n, k, s, d) for n, k, s, d in
                            zip(xp.shape[2:], w.shape[2:], stride, dilation))
    out = np.full((xp.shape[0], w.shape[0]) + tuple(out_spatial), np.nan, dtype=np.float32)
    extra = {} if phase is None else {"phase": phase}
    conv_gemm_f32(xp, w, bias, out, groups, tuple(stride), tuple(dilation), shuffle,
                  nthreads, force_generic, **extra)
    return out


def _direct_ref(xp, w, bias, groups, stride, dilation, shuffle=False):
    """torch conv3d on the already padded 5-D input (padding=0): the same output size as
    ``_run_direct``'s default."""
    return _torch_conv(xp, w, bias, stride=tuple(stride), dilation=tuple(dilation),
                       groups=groups, shuffle=shuffle)


@pytest.fixture(scope="module", autouse=True)
def _torch_one_thread():
    """The oracle's tiny convolutions run single-threaded: torch's OpenMP team costs
    milliseconds per call on a busy machine (the module's run time, not its results)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


GENERIC = pytest.mark.parametrize("force_generic", [False, True], ids=["avx2", "generic"])


# ----------------------------------------------------------------------------------------
# conv_gemm_f32 directly: the micro-kernel's edges, AVX2 and portable paths
# ----------------------------------------------------------------------------------------
_PIX_SHAPES = {1: (1, 1), 15: (3, 5), 16: (2, 8), 17: (1, 17), 33: (3, 11), 47: (1, 47),
               97: (97, 1)}


@GENERIC
@pytest.mark.parametrize("pixels", sorted(_PIX_SHAPES))
@pytest.mark.parametrize("cog", range(1, 14))
def test_direct_tile_edges(cog, pixels, force_generic):
    """C_out (per group) 1..13 against the 6-row tile, pixel counts around the 16-column
    tile; 3x3 kernel so every pixel panel gathers across input rows; bias fused."""
    rng = np.random.default_rng(1000 * cog + pixels)
    oh, ow = _PIX_SHAPES[pixels]
    c = 3
    xp = _rand(rng, (2, c, 1, oh + 2, ow + 2))
    w = _rand(rng, (cog, c, 1, 3, 3))
    b = _rand(rng, (cog,))
    out = _run_direct(xp, w, b, 1, (1, 1, 1), (1, 1, 1), force_generic=force_generic)
    assert out.shape == (2, cog, 1, oh, ow)
    _assert_close(out, _direct_ref(xp, w, b, 1, (1, 1, 1), (1, 1, 1)), xp, w, b)


# (Cg, kernel): K = Cg * prod(kernel)
_K_CASES = {
    1: (1, (1, 1, 1)),
    2: (1, (1, 1, 2)),
    3: (1, (1, 3, 1)),
    255: (17, (1, 3, 5)),
    256: (16, (1, 4, 4)),
    257: (257, (1, 1, 1)),
    513: (19, (3, 3, 3)),
    769: (769, (1, 1, 1)),
}


@GENERIC
@pytest.mark.parametrize("groups", [1, 2])
@pytest.mark.parametrize("K", sorted(_K_CASES))
def test_direct_k_blocks(K, groups, force_generic):
    """K = 1, 2, 3 (shorter than the 4-way unrolled loop) and 255..769 (across 256-blocks),
    with groups; C_out per group 7 (one full and one partial 6-row panel)."""
    cg, kern = _K_CASES[K]
    assert cg * math.prod(kern) == K
    rng = np.random.default_rng(K + 7 * groups)
    cog = 7
    osp = (2, 3, 7) if kern[0] > 1 else (1, 5, 7)
    xp = _rand(rng, (1, cg * groups) + tuple(o + k - 1 for o, k in zip(osp, kern)))
    w = _rand(rng, (cog * groups, cg) + kern)
    b = _rand(rng, (cog * groups,))
    out = _run_direct(xp, w, b, groups, (1, 1, 1), (1, 1, 1), force_generic=force_generic)
    assert out.shape[2:] == osp
    _assert_close(out, _direct_ref(xp, w, b, groups, (1, 1, 1), (1, 1, 1)), xp, w, b)


@GENERIC
@pytest.mark.parametrize("case", [
    # (N, G, Cg, Cog, padded DHW, kernel, stride, dilation)
    (1, 1, 1, 1, (1, 1, 40), (1, 1, 1), (1, 1, 1), (1, 1, 1)),    # contiguous 1-D panels
    (2, 1, 3, 5, (1, 1, 100), (1, 1, 4), (1, 1, 3), (1, 1, 2)),    # 1-D strided, dilated
    (1, 2, 2, 3, (1, 9, 20), (1, 3, 1), (1, 1, 1), (1, 1, 1)),     # (3,1): rows contiguous
    (1, 1, 2, 4, (1, 19, 23), (1, 2, 5), (1, 2, 3), (1, 3, 2)),    # kernel > stride, dil
    (2, 3, 2, 2, (1, 17, 18), (1, 3, 3), (1, 4, 1), (1, 1, 1)),    # stride only on H
    (1, 1, 3, 6, (1, 16, 21), (1, 3, 3), (1, 1, 4), (1, 1, 1)),    # stride only on W
    (1, 1, 2, 9, (7, 9, 11), (2, 3, 2), (2, 1, 3), (2, 2, 1)),     # 3-D mixed
    (1, 2, 1, 1, (6, 6, 6), (3, 3, 3), (1, 1, 1), (1, 1, 1)),      # 3-D, 1 channel
    (1, 1, 1, 127, (1, 9, 9), (1, 2, 2), (1, 1, 1), (1, 1, 1)),    # > 20 A panels (MC)
    (1, 1, 2, 3, (1, 50, 50), (1, 3, 3), (1, 1, 1), (1, 1, 1)),    # > 768 pixels
    (7, 1, 4, 2, (1, 5, 6), (1, 5, 6), (1, 1, 1), (1, 1, 1)),      # 1 pixel, 7 images
])
@PHASE
def test_direct_geometry(case, force_generic, phase):
    n, g, cg, cog, dhw, kern, stride, dil = case
    rng = np.random.default_rng(sum(dhw) + 31 * cog)
    xp = _rand(rng, (n, g * cg) + dhw)
    w = _rand(rng, (g * cog, cg) + kern)
    b = _rand(rng, (g * cog,))
    for bias in (None, b):
        out = _run_direct(xp, w, bias, g, stride, dil, force_generic=force_generic,
                          phase=phase)
        _assert_close(out, _direct_ref(xp, w, bias, g, stride, dil), xp, w, bias)


@GENERIC
@PHASE
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("seed", range(4))
def test_direct_random_padded(nd, seed, phase, force_generic):
    """Random problems zero-padded with numpy (asymmetric pads; trailing samples the
    strides never reach), 1-D/2-D/3-D, strides 1..4 and dilation 1..2 per axis."""
    rng = np.random.default_rng(100 * nd + seed)
    g = int(rng.choice([1, 2, 3]))
    cg, cog = int(rng.integers(1, 5)), int(rng.integers(1, 10))
    n = int(rng.choice([1, 3]))
    kern = [1] * (3 - nd) + list(rng.integers(1, 5, nd))
    stride = [1] * (3 - nd) + list(rng.integers(1, 5, nd))
    dil = [1] * (3 - nd) + list(rng.integers(1, 3, nd))
    lo = [0] * (3 - nd) + list(rng.integers(0, 3, nd))
    hi = [0] * (3 - nd) + list(rng.integers(0, 3, nd))
    span = [d * (k - 1) + 1 for k, d in zip(kern, dil)]
    size = [max(1, s - a - b) + int(rng.integers(0, 12 if nd < 3 else 5))
            for s, a, b in zip(span, lo, hi)]
    if nd < 3:
        size[: 3 - nd] = [1] * (3 - nd)
    x = _rand(rng, (n, g * cg) + tuple(size))
    w = _rand(rng, (g * cog, cg) + tuple(int(k) for k in kern))
    b = _rand(rng, (g * cog,))
    xp = np.pad(x, [(0, 0), (0, 0)] + list(zip(lo, hi)))
    assert xp.flags.c_contiguous and xp.dtype == np.float32
    stride, dil = tuple(int(s) for s in stride), tuple(int(d) for d in dil)
    out = _run_direct(xp, w, b, g, stride, dil, force_generic=force_generic, phase=phase)
    _assert_close(out, _direct_ref(xp, w, b, g, stride, dil), x, w, b)


@GENERIC
@PHASE
@pytest.mark.parametrize("groups,cog", [(1, 4), (2, 3), (3, 7), (4, 6), (8, 1)])
def test_direct_shuffle_bias(groups, cog, phase, force_generic):
    """shuffle=True writes group g's channel j at j*G + g; the bias follows its channel."""
    rng = np.random.default_rng(groups * 10 + cog)
    cg = 3
    xp = _rand(rng, (2, groups * cg, 1, 6, 7))
    w = _rand(rng, (groups * cog, cg, 1, 2, 3))
    b = _rand(rng, (groups * cog,))
    out = _run_direct(xp, w, b, groups, (1, 1, 2), (1, 2, 1), shuffle=True,
                      force_generic=force_generic, phase=phase)
    ref = _direct_ref(xp, w, b, groups, (1, 1, 2), (1, 2, 1), shuffle=True)
    _assert_close(out, ref, xp, w, b)


@GENERIC
def test_direct_no_input_channels_gives_bias(force_generic):
    """K = 0 (no input channels): the output is the bias, broadcast (an analytic oracle:
    torch's conv with zero input channels returns a (N, 0, ...) tensor)."""
    xp = np.zeros((2, 0, 1, 1, 9), dtype=np.float32)
    w = np.zeros((5, 0, 1, 1, 3), dtype=np.float32)
    b = np.arange(1, 6, dtype=np.float32)
    out = _run_direct(xp, w, b, 1, (1, 1, 1), (1, 1, 1), force_generic=force_generic)
    np.testing.assert_array_equal(out, np.broadcast_to(b[:, None, None, None], out.shape))
    out = _run_direct(xp, w, None, 1, (1, 1, 1), (1, 1, 1), force_generic=force_generic)
    np.testing.assert_array_equal(out, 0.0)


def test_direct_empty_output_is_a_no_op():
    xp = np.ones((0, 2, 1, 1, 5), dtype=np.float32)
    w = np.ones((3, 2, 1, 1, 2), dtype=np.float32)
    out = np.empty((0, 3, 1, 1, 4), dtype=np.float32)
    conv_gemm_f32(xp, w, None, out, 1, (1, 1, 1), (1, 1, 1))
    out = np.empty((1, 3, 1, 1, 0), dtype=np.float32)
    conv_gemm_f32(np.ones((1, 2, 1, 1, 5), np.float32), w, None, out, 1, (1, 1, 1),
                  (1, 1, 1))


def test_avx2_flag_is_a_bool():
    assert isinstance(_cgemm.conv_gemm_avx2(), bool)


# ----------------------------------------------------------------------------------------
# threads
# ----------------------------------------------------------------------------------------
@GENERIC
@pytest.mark.parametrize("nthreads", [1, 2, 3, 8])
def test_direct_nthreads(nthreads, force_generic):
    """Many work items (images x groups x pixel blocks), partial tiles at block ends."""
    rng = np.random.default_rng(77)
    xp = _rand(rng, (3, 4, 1, 29, 37))
    w = _rand(rng, (10, 2, 1, 3, 3))
    b = _rand(rng, (10,))
    ref = _direct_ref(xp, w, b, 2, (1, 1, 1), (1, 1, 1))
    out = _run_direct(xp, w, b, 2, (1, 1, 1), (1, 1, 1), nthreads=nthreads,
                      force_generic=force_generic)
    _assert_close(out, ref, xp, w, b)
    # one image, one group: the pixels alone are split between the threads
    out = _run_direct(xp[:1, :2], w[:5], b[:5], 1, (1, 1, 1), (1, 1, 1),
                      nthreads=nthreads, force_generic=force_generic)
    _assert_close(out, _direct_ref(xp[:1, :2], w[:5], b[:5], 1, (1, 1, 1), (1, 1, 1)),
                  xp, w, b)
    # strided on every axis that has room (the phase split, where built, is threaded too)
    for phase in _PHASES:
        out = _run_direct(xp, w, b, 2, (1, 2, 3), (1, 1, 1), nthreads=nthreads,
                          force_generic=force_generic, phase=phase)
        _assert_close(out, _direct_ref(xp, w, b, 2, (1, 2, 3), (1, 1, 1)), xp, w, b)


@pytest.mark.parametrize("nthreads", [1, 2, 3, 5, 8])
@pytest.mark.parametrize("stride,pad,phase", [
    ((1, 1, 1), (1, 2, 0), -1),    # zero-padded copy, no phase split
    ((2, 3, 2), (1, 0, 2), 1),     # phase-split copy of a padded input
    ((1, 2, 1), (0, 0, 0), 1),     # phase split along one axis only, no padding
    ((2, 3, 2), (1, 0, 2), 0),     # padded copy, strided taps gathered
])
def test_engine_copy_threads(nthreads, stride, pad, phase):
    """The engine's padded / phase-split copy is split between the threads by rows at
    arbitrary places (inside a row group, a phase, a channel): every split must give
    torch's answer, with an odd number of images, channels, depths, rows and columns."""
    rng = np.random.default_rng(31)
    x = _rand(rng, (3, 5, 7, 9, 13))
    w = _rand(rng, (11, 5, 2, 3, 2))
    b = _rand(rng, (11,))
    dil = (1, 1, 2)
    ref = _torch_conv(x, w, b, stride=stride, padding=pad, dilation=dil)
    out = np.full(ref.shape, np.nan, dtype=np.float32)
    conv_gemm_f32(x, w, b, out, 1, stride, dil, False, nthreads, False, phase=phase,
                  pad=pad)
    _assert_close(out, ref, x, w, b)


@pytest.mark.parametrize("nthreads", [1, 2, 3, 8])
def test_public_conv2d_threads(nthreads):
    """~19 M MACs: the wrapper really hands the engine up to 8 threads."""
    rng = np.random.default_rng(5)
    x = _rand(rng, (2, 16, 64, 63))
    w = _rand(rng, (30, 8, 3, 3))
    b = _rand(rng, (30,))
    ref = _torch_conv(x, w, b, padding=1, groups=2)
    with fastconv.threads(nthreads):
        out = fnn.conv2d(x, w, b, padding=1, groups=2, algorithm="gemm")
    _assert_close(out, ref, x, w, b)


def test_concurrent_python_threads():
    """8 Python threads, each on its own problem, all calling conv2d(algorithm='gemm') at
    once (the engine releases the GIL and runs its own OpenMP team)."""
    rng = np.random.default_rng(8)
    probs = []
    for i in range(8):
        g = 1 + i % 3
        x = _rand(rng, (1 + i % 2, 4 * g, 40 + i, 48 - i))
        w = _rand(rng, (g * (5 + i), 4, 1 + i % 3, 3))
        b = _rand(rng, (g * (5 + i),))
        kw = dict(stride=(1 + i % 2, 1), padding=(i % 2, 1), groups=g)
        probs.append((x, w, b, kw, _torch_conv(x, w, b, **kw)))
    results = [None] * 8

    def work(i):
        x, w, b, kw, _ = probs[i]
        with fastconv.threads(1 + i % 3):
            results[i] = [fnn.conv2d(x, w, b, algorithm="gemm", **kw) for _ in range(3)]

    run_concurrently(work, 8)
    for (x, w, b, _, ref), outs in zip(probs, results):
        assert outs is not None
        for out in outs:
            _assert_close(out, ref, x, w, b)


def test_concurrent_transposed_convolutions():
    """8 Python threads at once on strided transposed convolutions: the GEMM path (weight
    read transposed in place, col2im into the output with OpenMP inside) and the per-phase
    path ('direct'), each thread on its own shapes; torch is the oracle."""
    rng = np.random.default_rng(9)
    probs = []
    for i in range(8):
        g = 1 + i % 2
        x = _rand(rng, (1 + i % 3, 4 * g, 9 + i, 11 - i % 4))
        w = _rand(rng, (4 * g, 3 + i % 3, 2 + i % 3, 3))
        kw = dict(stride=(2, 1 + i % 3), padding=(i % 2, 1), output_padding=(1, 0),
                  groups=g, dilation=(1, 1 + i % 2))
        want = torch.nn.functional.conv_transpose2d(torch.from_numpy(x.astype(np.float64)),
                                                    torch.from_numpy(w.astype(np.float64)),
                                                    **kw).numpy()
        probs.append((x, w, kw, want))
    results = [None] * 8

    def work(i):
        x, w, kw, _ = probs[i]
        alg = "gemm" if i % 2 else "direct"
        with fastconv.threads(1 + i % 2):
            results[i] = [fnn.conv_transpose2d(x, w, algorithm=alg, **kw) for _ in range(3)]

    run_concurrently(work, 8)
    for (x, w, kw, want), outs in zip(probs, results):
        assert outs is not None
        for out in outs:
            assert out.shape == want.shape
            np.testing.assert_allclose(out, want, rtol=1e-4,
                                       atol=1e-4 * np.sqrt(w[0].size) * np.abs(want).max())


# ----------------------------------------------------------------------------------------
# bad arguments
# ----------------------------------------------------------------------------------------
def _good():
    xp = np.ones((2, 4, 1, 6, 7), dtype=np.float32)
    w = np.ones((6, 2, 1, 3, 3), dtype=np.float32)
    b = np.ones(6, dtype=np.float32)
    out = np.zeros((2, 6, 1, 4, 5), dtype=np.float32)  # not np.empty: garbage may hold signalling NaNs (a cast warns)
    return dict(xp=xp, w=w, bias=b, out=out, groups=2, stride=(1, 1, 1), dilation=(1, 1, 1))


def _call(**kw):
    a = _good()
    a.update(kw)
    conv_gemm_f32(a["xp"], a["w"], a["bias"], a["out"], a["groups"], a["stride"],
                  a["dilation"])


def test_good_arguments_run():
    _call()


@pytest.mark.parametrize("kw,match", [
    (dict(out=np.empty((2, 6, 1, 5, 5), np.float32)), "too small"),
    (dict(out=np.empty((2, 6, 1, 4, 6), np.float32)), "too small"),
    (dict(out=np.empty((2, 6, 2, 4, 5), np.float32)), "too small"),
    (dict(stride=(1, 2, 1), out=np.empty((2, 6, 1, 3, 5), np.float32)), "too small"),
    (dict(dilation=(1, 1, 3), out=np.empty((2, 6, 1, 4, 2), np.float32)), "too small"),
    (dict(groups=3), "groups"),
    (dict(groups=0), "groups"),
    (dict(groups=-2), "groups"),
    (dict(groups=1), "groups"),  # w.shape[1] * groups != C
    (dict(groups=4, w=np.ones((6, 1, 1, 3, 3), np.float32)), "groups"),  # 6 % 4
    (dict(bias=np.ones(5, np.float32)), "bias"),
    (dict(bias=np.ones(7, np.float32)), "bias"),
    (dict(stride=(1, 0, 1)), "stride"),
    (dict(stride=(0, 1, 1)), "stride"),
    (dict(stride=(1, 1, -1)), "stride"),
    (dict(dilation=(1, 1, 0)), "dilation"),
    (dict(out=np.empty((1, 6, 1, 4, 5), np.float32)), "shape"),
    (dict(out=np.empty((2, 5, 1, 4, 5), np.float32)), "shape"),
    (dict(w=np.ones((6, 2, 1, 0, 3), np.float32)), "kernel is empty"),
    (dict(stride=(1, 1)), None),
])
def test_bad_arguments_raise_value_error(kw, match):
    with pytest.raises(ValueError, match=match):
        _call(**kw)


@pytest.mark.parametrize("name", ["xp", "w", "out", "bias"])
def test_float64_raises(name):
    """A float64 buffer is a Cython buffer dtype mismatch: ValueError."""
    a = _good()
    with pytest.raises(ValueError, match="[Bb]uffer dtype mismatch"):
        _call(**{name: a[name].astype(np.float64)})


@pytest.mark.parametrize("name", ["xp", "w", "out"])
def test_non_c_contiguous_buffers_raise(name):
    a = _good()
    bad = np.asfortranarray(a[name])
    assert not bad.flags.c_contiguous
    with pytest.raises(ValueError, match="contiguous"):
        _call(**{name: bad})


def test_failed_call_leaves_out_untouched():
    out = np.full((2, 6, 1, 4, 5), 3.0, np.float32)
    with pytest.raises(ValueError):
        _call(out=out, bias=np.ones(5, np.float32))
    np.testing.assert_array_equal(out, 3.0)


# ----------------------------------------------------------------------------------------
# public API on the fused engine (float32, algorithm="gemm")
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("sh,sw", list(itertools.product(range(1, 5), range(1, 5))))
def test_conv2d_strides_per_axis(sh, sw):
    rng = np.random.default_rng(10 * sh + sw)
    x = _rand(rng, (2, 4, 19, 22))
    w = _rand(rng, (14, 2, 4, 3))   # kernel larger than most strides; 7 per group
    b = _rand(rng, (14,))
    kw = dict(stride=(sh, sw), padding=(1, 2), dilation=(1, 2), groups=2)
    out = fnn.conv2d(x, w, b, algorithm="gemm", **kw)
    _assert_close(out, _torch_conv(x, w, b, **kw), x, w, b)


_CONV_CASES = [
    # nd, x shape, w shape, kwargs
    (1, (1, 3, 50), (5, 3, 4), dict(padding="same")),
    (1, (7, 2, 33), (13, 2, 5), dict(padding="same", dilation=3)),
    (1, (7, 6, 40), (6, 1, 3), dict(padding=1, groups=6)),            # depthwise
    (1, (1, 4, 300), (8, 2, 7), dict(stride=3, dilation=2, groups=2)),
    (2, (1, 3, 17, 15), (11, 3, 4, 2), dict(padding="same")),         # asymmetric pads
    (2, (7, 2, 9, 10), (4, 2, 3, 4), dict(padding="same", dilation=(2, 1))),
    (2, (2, 6, 20, 21), (6, 1, 3, 3), dict(padding=1, groups=6)),      # depthwise
    (2, (2, 6, 20, 21), (12, 1, 5, 5), dict(padding=2, stride=2, groups=6)),  # multiplier 2
    (2, (1, 9, 16, 16), (12, 3, 3, 3), dict(padding=(0, 3), groups=3)),
    (2, (1, 32, 9, 9), (13, 32, 3, 3), dict(padding=1)),                # K = 288
    (2, (1, 57, 8, 8), (5, 57, 3, 3), dict(padding=1, stride=(2, 1))),  # K = 513
    (2, (1, 16, 12, 12), (7, 16, 4, 4), dict(stride=(4, 3))),           # K = 256
    (2, (7, 1, 6, 6), (1, 1, 6, 6), dict()),                            # 1 pixel
    (2, (2, 3, 5, 40), (6, 3, 1, 1), dict(stride=(1, 3))),              # 1x1 strided
    (3, (1, 2, 6, 7, 8), (5, 2, 2, 3, 4), dict(padding="same")),
    (3, (2, 4, 7, 9, 8), (6, 2, 3, 3, 3), dict(padding=1, stride=(2, 1, 3), groups=2)),
    (3, (1, 3, 9, 9, 9), (3, 1, 3, 3, 3), dict(padding=(2, 0, 1), dilation=(2, 1, 1),
                                                 groups=3)),
    (3, (7, 2, 4, 5, 6), (4, 2, 1, 2, 3), dict(stride=(1, 2, 2))),
]


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", _CONV_CASES,
                         ids=[f"{c[0]}d-{i}" for i, c in enumerate(_CONV_CASES)])
def test_convnd_cases(case, with_bias):
    nd, xs, ws, kw = case
    rng = np.random.default_rng(31 * sum(xs) + sum(ws) + 1000 * nd)
    x, w = _rand(rng, xs), _rand(rng, ws)
    b = _rand(rng, (ws[0],)) if with_bias else None
    conv = getattr(fnn, f"conv{nd}d")
    out = conv(x, w, b, algorithm="gemm", **kw)
    _assert_close(out, _torch_conv(x, w, b, **kw), x, w, b)


def _random_conv_case(nd, seed):
    rng = np.random.default_rng(1000 + 10 * nd + seed)
    g = int(rng.choice([1, 2, 3]))
    cg = int(rng.integers(1, 5))
    cog = int(rng.integers(1, 14))
    n = int(rng.choice([1, 7])) if nd < 3 else int(rng.choice([1, 2]))
    k = tuple(int(v) for v in rng.integers(1, 5, nd))
    s = tuple(int(v) for v in rng.integers(1, 5, nd))
    d = tuple(int(v) for v in rng.integers(1, 3, nd))
    p = tuple(int(rng.integers(0, dd * (kk - 1) + 1)) for kk, dd in zip(k, d))
    hi = 40 if nd == 1 else 18 if nd == 2 else 8
    size = tuple(max(1, dd * (kk - 1) + 1 - 2 * pp) + int(rng.integers(0, hi))
                 for kk, dd, pp in zip(k, d, p))
    x = _rand(rng, (n, g * cg) + size, scale=3.0)
    w = _rand(rng, (g * cog, cg) + k, scale=0.5)
    b = _rand(rng, (g * cog,)) if rng.random() < 0.5 else None
    return x, w, b, dict(stride=s, padding=p, dilation=d, groups=g)


@pytest.mark.parametrize("nd,seed", [(1, i) for i in range(6)] + [(2, i) for i in range(10)]
                         + [(3, i) for i in range(5)])
def test_convnd_random(nd, seed):
    x, w, b, kw = _random_conv_case(nd, seed)
    out = getattr(fnn, f"conv{nd}d")(x, w, b, algorithm="gemm", **kw)
    _assert_close(out, _torch_conv(x, w, b, **kw), x, w, b)


def test_conv2d_unbatched():
    rng = np.random.default_rng(3)
    x, w, b = _rand(rng, (4, 11, 13)), _rand(rng, (6, 2, 3, 2)), _rand(rng, (6,))
    out = fnn.conv2d(x, w, b, stride=(2, 1), padding=1, groups=2, algorithm="gemm")
    ref = _torch_conv(x[None], w, b, stride=(2, 1), padding=1, groups=2)[0]
    _assert_close(out, ref, x, w, b)


@pytest.mark.parametrize("layout", ["fortran", "sliced", "transposed", "negative"])
def test_conv2d_non_contiguous_inputs(layout):
    rng = np.random.default_rng(9)
    base_x = _rand(rng, (3, 4, 26, 30))
    base_w = _rand(rng, (10, 2, 3, 3))
    base_b = _rand(rng, (20,))
    if layout == "fortran":
        x, w = np.asfortranarray(base_x), np.asfortranarray(base_w)
        b = np.asfortranarray(base_b[:10])
    elif layout == "sliced":
        x, w, b = base_x[:, :, ::2, 1::2], base_w[:, :, ::-1], base_b[::2]
    elif layout == "transposed":
        x = np.ascontiguousarray(base_x.transpose(0, 1, 3, 2)).transpose(0, 1, 3, 2)
        w = np.ascontiguousarray(base_w.transpose(2, 3, 1, 0)).transpose(3, 2, 0, 1)
        b = base_b[1::2]
    else:
        x, w, b = base_x[::-1, ::-1, ::-1], base_w[::-1, :, :, ::-1], base_b[:10][::-1]
    assert not x.flags.c_contiguous
    assert x.dtype == np.float32 and w.dtype == np.float32
    kw = dict(stride=(1, 2), padding=(2, 1), groups=2)
    out = fnn.conv2d(x, w, b, algorithm="gemm", **kw)
    _assert_close(out, _torch_conv(x, w, b, **kw), x, w, b)


def test_public_inputs_not_modified():
    rng = np.random.default_rng(4)
    x, w, b = _rand(rng, (2, 6, 12, 14)), _rand(rng, (9, 2, 3, 3)), _rand(rng, (9,))
    w1 = _rand(rng, (6, 2))
    b6 = _rand(rng, (6,))
    xf = np.asfortranarray(x)
    copies = [a.copy(order="A") for a in (x, w, b, w1, b6, xf)]
    fnn.conv2d(x, w, b, padding="same", groups=3, algorithm="gemm")
    fnn.conv2d(xf, w, b, stride=2, groups=3, algorithm="gemm")
    fnn.grouped_pointwise_conv2d(x, w1, 3, b6, shuffle=True)
    fnn.shuffled_group_conv2d(x, w, 3, b, padding=1)
    fnn.pointwise_conv2d(x, w1[:, :2], b6, stride=2, groups=3)
    for orig, now in zip(copies, (x, w, b, w1, b6, xf)):
        np.testing.assert_array_equal(orig, now)
    assert xf.flags.f_contiguous


def test_direct_inputs_not_modified():
    rng = np.random.default_rng(6)
    xp, w, b = _rand(rng, (2, 6, 3, 9, 10)), _rand(rng, (9, 2, 2, 3, 3)), _rand(rng, (9,))
    copies = [a.copy() for a in (xp, w, b)]
    for shuffle, generic, phase in itertools.product([False, True], [False, True], _PHASES):
        _run_direct(xp, w, b, 3, (1, 2, 1), (1, 1, 2), shuffle=shuffle, nthreads=2,
                    force_generic=generic, phase=phase)
        _run_direct(xp, w, b, 3, (2, 1, 3), (1, 2, 1), shuffle=shuffle, nthreads=1,
                    force_generic=generic, phase=phase)
    for orig, now in zip(copies, (xp, w, b)):
        np.testing.assert_array_equal(orig, now)


# ----------------------------------------------------------------------------------------
# pointwise / grouped pointwise / shuffled group convolutions (bias and shuffle fused)
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("stride", [1, 2, (1, 3)])
@pytest.mark.parametrize("c_in,c_out,hw", [(3, 1, (1, 1)), (5, 13, (4, 4)),
                                           (16, 7, (7, 9)), (257, 6, (3, 6))])
def test_pointwise_conv2d(c_in, c_out, hw, stride, with_bias):
    rng = np.random.default_rng(c_in * 100 + c_out)
    x = _rand(rng, (2, c_in) + hw)
    w2 = _rand(rng, (c_out, c_in))
    b = _rand(rng, (c_out,)) if with_bias else None
    out = fnn.pointwise_conv2d(x, w2, b, stride=stride)
    _assert_close(out, _torch_conv(x, w2[:, :, None, None], b, stride=stride), x, w2, b)
    out4 = fnn.pointwise_conv2d(x, w2[:, :, None, None], b, stride=stride)
    _assert_close(out4, _torch_conv(x, w2[:, :, None, None], b, stride=stride), x, w2, b)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("groups,cg,cog,hw,stride", [
    (1, 4, 5, (5, 7), 1),
    (2, 3, 7, (9, 8), 1),
    (3, 4, 6, (6, 11), 2),
    (4, 2, 1, (17, 1), (2, 1)),
    (8, 3, 13, (4, 5), 1),
])
def test_grouped_pointwise_conv2d(groups, cg, cog, hw, stride, with_bias, shuffle):
    rng = np.random.default_rng(groups * 1000 + cog)
    x = _rand(rng, (7 if groups == 2 else 1, groups * cg) + hw)
    w = _rand(rng, (groups * cog, cg))
    b = _rand(rng, (groups * cog,)) if with_bias else None
    out = fnn.grouped_pointwise_conv2d(x, w, groups, bias=b, stride=stride, shuffle=shuffle)
    ref = _torch_conv(x, w[:, :, None, None], b, stride=stride, groups=groups,
                      shuffle=shuffle)
    _assert_close(out, ref, x, w, b)


@pytest.mark.parametrize("nd,shuffle", [(1, False), (2, False), (3, False), (2, True)])
@pytest.mark.parametrize("n,groups,cg,cog,with_bias", [
    (2, 1, 5, 3, False), (8, 3, 80, 80, True), (33, 2, 7, 20, True), (5, 4, 1, 1, False)])
def test_pointwise_on_one_pixel_maps(n, groups, cg, cog, with_bias, nd, shuffle):
    """1x1 layers on 1-pixel maps over several images (squeeze-and-excitation blocks,
    classifier heads) run on the fused engine as one image whose pixels are the images:
    groups, bias, the fused shuffle, 1-3 spatial axes, a non-contiguous input, and stride /
    'same' padding that leave the output one pixel."""
    rng = np.random.default_rng(n * 100 + cg)
    sp = (1,) * nd
    x = _rand(rng, (n, 2 * groups * cg) + sp)[:, ::2]   # a strided view
    w = _rand(rng, (groups * cog, cg) + (1,) * nd)
    b = _rand(rng, (groups * cog,)) if with_bias else None
    conv = {1: fnn.conv1d, 2: fnn.conv2d, 3: fnn.conv3d}[nd]
    for kw in (dict(), dict(stride=2), dict(padding="same")):
        if shuffle:   # the 1x1 shortcut: the fused engine whatever the size
            out = fnn.shuffled_group_conv2d(x, w, groups, b, **kw)
        else:
            out = conv(x, w, b, groups=groups, algorithm="gemm", **kw)
        ref = _torch_conv(np.ascontiguousarray(x), w, b, groups=groups, shuffle=shuffle, **kw)
        assert out.shape == ref.shape
        _assert_close(out, ref, x, w, b)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("n,groups,cg,cog,sp,stride", [
    (1, 1, 960, 240, (1, 1), 1),       # batch-1 squeeze-and-excitation
    (1, 1, 13, 7, (1, 1), 1),          # columns and rows off the 8 / 4 blocks
    (3, 2, 17, 9, (2, 2), 1),          # odd pixel count (the 2-pixel blocks' tail)
    (2, 3, 8, 5, (3, 5), 2),           # strided: 2 x 2 x 3 output pixels
    (16, 4, 1, 3, (1, 1), 1),          # the most pixels it takes, one channel per group
    (1, 2, 33, 6, (4, 4), (2, 3)),
])
def test_thin_products_match_torch(n, groups, cg, cog, sp, stride, shuffle):
    """1x1 layers on at most 16 output pixels in all run on fastconv/src/fc_thin.h
    ('auto' and 'gemm'), against torch, bias and ShuffleNet's order included; the kernel
    itself on both ISA paths."""
    rng = np.random.default_rng(n * 1000 + cg * 10 + cog)
    x = _rand(rng, (n, groups * cg) + sp)
    w = _rand(rng, (groups * cog, cg, 1, 1))
    b = _rand(rng, (groups * cog,))
    ref = _torch_conv(x, w, b, stride=stride, groups=groups, shuffle=shuffle)
    assert n * math.prod(ref.shape[2:]) <= fnn._gemm.THIN_MAX_PIXELS
    if shuffle:
        out = fnn.shuffled_group_conv2d(x, w, groups, b, stride=stride)
        _assert_close(out, ref, x, w, b)
    else:
        for algorithm in ("auto", "gemm"):
            out = fnn.conv2d(x, w, b, stride=stride, groups=groups, algorithm=algorithm)
            _assert_close(out, ref, x, w, b)
        xt = np.ascontiguousarray(np.moveaxis(x[:, :, ::_pair(stride)[0], ::_pair(stride)[1]]
                                              .reshape(n, groups * cg, -1), 1, 2))
        xt = xt.reshape(-1, groups * cg)
        want = np.moveaxis(ref.reshape(n, groups * cog, -1), 1, 2).reshape(-1, groups * cog)
        for generic in (False, True):
            got = np.full(want.shape, np.nan, np.float32)
            _cgemm.thin_f32(xt, w.reshape(groups * cog, cg), b, got, groups, False, 2, generic)
            _assert_close(got, want, x, w, b)


def _pair(v):
    return v if isinstance(v, tuple) else (v, v)


@pytest.mark.parametrize("shuffle", [False, True])
def test_thin_kernel_without_input_channels_gives_bias(shuffle):
    """No input channels: every output is its channel's bias (an analytic oracle), in
    ShuffleNet's order with ``shuffle``; zeros without a bias."""
    x = np.zeros((3, 0), np.float32)
    w = np.zeros((6, 0), np.float32)
    b = np.arange(6, dtype=np.float32) + 1
    out = np.full((3, 6), np.nan, np.float32)
    _cgemm.thin_f32(x, w, b, out, 2, shuffle)
    want = b.reshape(2, 3).T.reshape(-1) if shuffle else b
    np.testing.assert_array_equal(out, np.broadcast_to(want, (3, 6)))
    _cgemm.thin_f32(x, w, None, out, 2, shuffle)
    np.testing.assert_array_equal(out, 0)


def test_thin_kernel_rejects_bad_arguments():
    x = np.zeros((2, 6), np.float32)
    w = np.zeros((4, 3), np.float32)
    out = np.zeros((2, 4), np.float32)
    with pytest.raises(ValueError, match="groups"):
        _cgemm.thin_f32(x, w, None, out, 3)
    with pytest.raises(ValueError, match="out"):
        _cgemm.thin_f32(x, w, None, np.zeros((3, 4), np.float32), 2)
    with pytest.raises(ValueError, match="bias"):
        _cgemm.thin_f32(x, w, np.zeros(3, np.float32), out, 2)


def test_torch_channel_shuffle_matches_reshape_transpose():
    """The oracle's shuffle is torch's own channel_shuffle."""
    y = torch.arange(2 * 12 * 3, dtype=torch.float64).reshape(2, 12, 3)
    assert torch.equal(_torch_shuffle(y, 3), F.channel_shuffle(y, 3))


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("groups,cg,cog,k,kw", [
    (2, 3, 5, 1, dict()),                          # 1x1: the shuffle fused in the GEMM
    (3, 2, 4, 1, dict(stride=2)),
    (4, 4, 3, 1, dict(padding="valid")),
    (3, 2, 7, 3, dict(padding=1)),                  # 3x3: conv then channel_shuffle
    (2, 5, 6, 3, dict(padding="same", dilation=2)),
    (6, 1, 2, 2, dict(stride=(2, 1), padding=1)),
])
def test_shuffled_group_conv2d(groups, cg, cog, k, kw, with_bias):
    rng = np.random.default_rng(groups * 100 + cg * 10 + k)
    x = _rand(rng, (2, groups * cg, 9, 10))
    w = _rand(rng, (groups * cog, cg, k, k))
    b = _rand(rng, (groups * cog,)) if with_bias else None
    out = fnn.shuffled_group_conv2d(x, w, groups, b, **kw)
    ref = _torch_conv(x, w, b, groups=groups, shuffle=True, **kw)
    _assert_close(out, ref, x, w, b)


@pytest.mark.parametrize("call", [
    lambda x2, x1, x3: fnn.conv1d(x1, np.ones((4, 2, 3), np.float32), algorithm="gemm",
                                  groups=2),
    lambda x2, x1, x3: fnn.conv2d(x2, np.ones((4, 4, 3, 3), np.float32), algorithm="gemm"),
    lambda x2, x1, x3: fnn.conv3d(x3, np.ones((2, 4, 2, 2, 2), np.float32),
                                  algorithm="gemm"),
    lambda x2, x1, x3: fnn.pointwise_conv2d(x2, np.ones((3, 4), np.float32)),
    lambda x2, x1, x3: fnn.grouped_pointwise_conv2d(x2, np.ones((6, 2), np.float32), 2,
                                                    shuffle=True),
    lambda x2, x1, x3: fnn.shuffled_group_conv2d(x2, np.ones((4, 2, 1, 1), np.float32), 2),
    lambda x2, x1, x3: fnn.shuffled_group_conv2d(x2, np.ones((4, 2, 3, 3), np.float32), 2,
                                                 algorithm="gemm"),
    lambda x2, x1, x3: fnn.conv_transpose2d(x2, np.ones((4, 3, 3, 3), np.float32), stride=2,
                                            algorithm="gemm"),
], ids=["conv1d", "conv2d", "conv3d", "pointwise", "grouped_pointwise", "shuffled_1x1",
        "shuffled_3x3", "conv_transpose2d"])
def test_public_functions_run_on_the_fused_engine(call, monkeypatch):
    """float32 input reaches conv_gemm_f32 (so the tests above test the engine)."""
    calls = []
    real = _cgemm.conv_gemm_f32

    def spy(*args, **kwargs):
        calls.append(args)
        return real(*args, **kwargs)
    monkeypatch.setattr(_cgemm, "conv_gemm_f32", spy)
    x2 = np.ones((1, 4, 6, 6), np.float32)
    x1 = np.ones((1, 4, 9), np.float32)
    x3 = np.ones((1, 4, 3, 3, 3), np.float32)
    call(x2, x1, x3)
    assert calls


_T_CASES = [
    # nd, input shape, weight shape (C_in, C_out/groups, *k), kwargs
    (1, (2, 4, 17), (4, 3, 5), dict(stride=3, padding=2, output_padding=1)),
    (1, (7, 6, 9), (6, 1, 3), dict(groups=6, dilation=2)),
    (2, (1, 4, 7, 6), (4, 5, 3, 3), dict(stride=2, padding=1, output_padding=1)),
    (2, (2, 6, 5, 8), (6, 7, 4, 2), dict(stride=(1, 3), groups=3, dilation=(2, 1))),
    (2, (1, 16, 6, 6), (16, 13, 4, 4), dict(stride=2, padding=1)),      # K of GEMM 13*16
    (3, (1, 4, 3, 4, 5), (4, 2, 2, 3, 3), dict(stride=(2, 1, 2), padding=(0, 1, 1),
                                               groups=2)),
]


@pytest.mark.parametrize("with_bias", [False, True], ids=["nobias", "bias"])
@pytest.mark.parametrize("case", _T_CASES,
                         ids=[f"{c[0]}d-{i}" for i, c in enumerate(_T_CASES)])
def test_conv_transpose_gemm(case, with_bias):
    """Transposed convolutions take the fused engine for their patch matrix (then col2im)."""
    nd, xs, ws, kw = case
    rng = np.random.default_rng(7 * sum(xs) + sum(ws))
    x, w = _rand(rng, xs), _rand(rng, ws)
    groups = kw.get("groups", 1)
    b = _rand(rng, (ws[1] * groups,)) if with_bias else None
    out = getattr(fnn, f"conv_transpose{nd}d")(x, w, b, algorithm="gemm", **kw)
    with torch.no_grad():
        ref = getattr(F, f"conv_transpose{nd}d")(
            _t64(x), _t64(w), None if b is None else _t64(b), **kw).numpy()
    # every output sums at most C_in/groups * prod(k) products
    _assert_close(out, ref, x, w, b, k=ws[0] // groups * math.prod(ws[2:]))


# ----------------------------------------------------------------------------------------
# the Python wrapper fastconv.nn._gemm.correlate_fused
# ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("nd", [1, 2, 3])
@pytest.mark.parametrize("shuffle", [False, True])
def test_correlate_fused_pads_bias_shuffle_out(nd, shuffle):
    """Contract ``out[n, co, o] = bias + sum x[n, ., o*s + k*d - pad] * w`` with zero
    outside, including a negative pad (leading samples skipped), into a given ``out``."""
    rng = np.random.default_rng(50 + nd + 5 * shuffle)
    g, cg, cog = 3, 2, 5
    size = (13, 11, 9)[:nd]
    kern = (3, 2, 4)[:nd]
    stride = (2, 1, 3)[:nd]
    dil = (1, 2, 1)[:nd]
    pad = (2, -1, 0)[:nd]
    x = _rand(rng, (2, g * cg) + size)
    w = _rand(rng, (g * cog, cg) + kern)
    b = _rand(rng, (g * cog,))
    # torch: crop where the pad is negative, zero-pad (symmetric) where it is positive,
    # then keep the outputs asked for
    xt = x[(Ellipsis,) + tuple(slice(-p, None) if p < 0 else slice(None) for p in pad)]
    tpad = tuple(max(p, 0) for p in pad)
    full = _torch_conv(xt, w, b, stride=stride, padding=tpad, dilation=dil, groups=g,
                       shuffle=shuffle)
    out_spatial = tuple(max(1, o - 1) for o in full.shape[2:])
    ref = full[(Ellipsis,) + tuple(slice(0, o) for o in out_spatial)]
    out = np.full((2, g * cog) + out_spatial, np.nan, np.float32)
    res = nn_gemm.correlate_fused(x, w, out_spatial, stride, dil, pad, g, bias=b,
                                  shuffle=shuffle, out=out)
    assert res is out
    _assert_close(out, ref, x, w, b)


# ----------------------------------------------------------------------------------------
# implicit zero padding inside the engine (``pad=``): the unpadded input, any pads
# ----------------------------------------------------------------------------------------
@GENERIC
@PHASE
@pytest.mark.parametrize("case", [
    # (N, C, (D, H, W), C_out, groups, kernel, stride, dilation, pad)
    (2, 3, (1, 9, 13), 7, 1, (1, 3, 3), (1, 1, 1), (1, 1, 1), (0, 1, 1)),
    (1, 4, (1, 17, 19), 6, 2, (1, 5, 4), (1, 2, 3), (1, 1, 2), (0, 2, 3)),
    (3, 2, (1, 1, 40), 5, 1, (1, 1, 7), (1, 1, 4), (1, 1, 1), (0, 0, 6)),
    (1, 3, (5, 6, 7), 4, 1, (3, 3, 3), (2, 1, 2), (1, 2, 1), (1, 2, 1)),
    (2, 6, (1, 8, 8), 6, 3, (1, 3, 3), (1, 1, 1), (1, 1, 1), (0, 5, 5)),   # pad > kernel
    (1, 2, (1, 30, 31), 13, 1, (1, 1, 1), (1, 2, 2), (1, 1, 1), (0, 0, 0)),  # 1x1 strided
])
def test_engine_padding(case, phase, force_generic):
    n, c, sp, co, g, k, s, d, p = case
    rng = np.random.default_rng(sum(sp) + co)
    x = _rand(rng, (n, c) + sp)
    w = _rand(rng, (co, c // g) + k)
    b = _rand(rng, co)
    ref = _torch_conv(x, w, b, stride=s, padding=p, dilation=d, groups=g)
    out = np.full(ref.shape, np.nan, np.float32)
    x0 = x.copy()
    extra = {} if phase is None else {"phase": phase}
    conv_gemm_f32(x, w, b, out, g, s, d, False, 2, force_generic, pad=p, **extra)
    _assert_close(out, ref, x, w, b)
    np.testing.assert_array_equal(x, x0)


def test_engine_padding_rejects_negative_pad():
    x = np.zeros((1, 1, 1, 5, 5), np.float32)
    w = np.zeros((1, 1, 1, 3, 3), np.float32)
    out = np.zeros((1, 1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="pad"):
        conv_gemm_f32(x, w, None, out, 1, (1, 1, 1), (1, 1, 1), pad=(0, -1, 0))


def test_wrapper_blocks_images_under_the_scratch_budget(monkeypatch):
    # a tiny budget forces one engine call per image; results still match torch
    calls = []
    real = _cgemm.conv_gemm_f32
    monkeypatch.setattr(nn_gemm, "SCRATCH_BYTES", 4000)
    monkeypatch.setattr(_cgemm, "conv_gemm_f32",
                        lambda xp, *a, **k: calls.append(xp.shape[0]) or real(xp, *a, **k))
    rng = np.random.default_rng(11)
    x = _rand(rng, (5, 4, 12, 12))
    w = _rand(rng, (6, 4, 3, 3))
    b = _rand(rng, 6)
    got = nn_gemm.correlate_fused(x, w, (6, 6), (2, 2), (1, 1), (1, 1), 1, b)
    _assert_close(got, _torch_conv(x, w, b, stride=2, padding=1), x, w, b)
    assert calls == [1] * 5


def test_wrapper_refuses_an_image_that_cannot_fit():
    # four outputs 2**20 samples apart: the padded copy of the one image would be ~16 TB,
    # refused with a MemoryError naming the size before anything is allocated
    x = np.zeros((1, 1, 1, 1), np.float32)
    w = np.zeros((1, 1, 1, 1), np.float32)
    with pytest.raises(MemoryError, match="GiB"):
        nn_gemm.correlate_fused(x, w, (2, 2), (1 << 20, 1 << 20), (1, 1), (0, 0), 1)


# ----------------------------------------------------------------------------------------
# weight-gradient mode (``conv_wgrad_f32``, ``correlate_weight_fused``, conv*_weight)
# ----------------------------------------------------------------------------------------
def _torch_wgrad(x, wshape, gy, stride, padding, dilation, groups):
    nd = len(wshape) - 2
    fn = getattr(torch.nn.grad, f"conv{nd}d_weight")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return fn(_t64(x), wshape, _t64(gy), stride, padding, dilation, groups).numpy()


_WG_CASES = [
    # (N, C, spatial, C_out, groups, kernel, stride, dilation, pad)
    (2, 5, (17, 19), 7, 1, (3, 3), (1, 1), (1, 1), (1, 1)),
    (3, 6, (20, 20), 12, 2, (3, 3), (2, 2), (1, 1), (1, 1)),
    (1, 4, (30, 30), 13, 1, (5, 5), (1, 1), (2, 2), (2, 2)),
    (2, 3, (40,), 8, 1, (7,), (3,), (1,), (3,)),
    (1, 2, (6, 7, 8), 5, 1, (3, 2, 3), (2, 1, 2), (1, 2, 1), (1, 1, 0)),
    (4, 6, (9, 11), 6, 3, (1, 1), (2, 1), (1, 1), (0, 0)),
    (2, 20, (12, 12), 9, 1, (4, 4), (1, 1), (1, 1), (2, 1)),   # K = 320 crosses a block
]


@GENERIC
@pytest.mark.parametrize("case", _WG_CASES)
def test_wgrad_engine_matches_torch(case, force_generic):
    n, c, sp, co, g, k, s, d, p = case
    nd = len(sp)
    rng = np.random.default_rng(sum(sp) + co + c)
    x = _rand(rng, (n, c) + sp)
    ysp = tuple((a + 2 * q - e * (kk - 1) - 1) // t + 1 for a, q, e, kk, t in zip(sp, p, d, k, s))
    gy = _rand(rng, (n, co) + ysp)
    want = _torch_wgrad(x, (co, c // g) + k, gy, s, p, d, g)
    ext = (1,) * (3 - nd)
    gw = np.full((co, c // g) + ext + k, np.nan, np.float32)
    x0, gy0 = x.copy(), gy.copy()
    conv_wgrad = _cgemm.conv_wgrad_f32
    conv_wgrad(x.reshape((n, c) + ext + sp), gy.reshape((n, co) + ext + ysp), gw, g,
               ext + s, ext + d, (0,) * (3 - nd) + p, 2, force_generic)
    terms = n * math.prod(ysp)
    atol = 1e-5 * math.sqrt(terms) * float(np.abs(x).max()) * float(np.abs(gy).max())
    np.testing.assert_allclose(gw.reshape(want.shape), want, rtol=1e-4, atol=atol)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(gy, gy0)


def test_wgrad_public_route_and_image_blocks(monkeypatch):
    import fastconv.nn.grad as G
    calls = []
    real = _cgemm.conv_wgrad_f32
    monkeypatch.setattr(_cgemm, "conv_wgrad_f32",
                        lambda x, *a, **k: calls.append(x.shape[0]) or real(x, *a, **k))
    monkeypatch.setattr(nn_gemm, "SCRATCH_BYTES", 3000)   # one image per engine call
    rng = np.random.default_rng(21)
    x = _rand(rng, (5, 4, 11, 10))
    gy = _rand(rng, (5, 6, 6, 5))
    got = G.conv2d_weight(x, (6, 2, 3, 3), gy, stride=2, padding=1, groups=2)
    assert calls == [1] * 5
    want = _torch_wgrad(x, (6, 2, 3, 3), gy, 2, 1, 1, 2)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_wgrad_rejects_bad_arguments():
    x = np.zeros((1, 4, 1, 5, 5), np.float32)
    gy = np.zeros((1, 2, 1, 3, 3), np.float32)
    gw = np.zeros((2, 4, 1, 3, 3), np.float32)
    with pytest.raises(ValueError):
        _cgemm.conv_wgrad_f32(x, gy, gw, 3, (1, 1, 1), (1, 1, 1), (0, 0, 0))   # groups
    with pytest.raises(ValueError):
        _cgemm.conv_wgrad_f32(x, gy, gw, 1, (1, 0, 1), (1, 1, 1), (0, 0, 0))   # stride 0
    with pytest.raises(ValueError):
        _cgemm.conv_wgrad_f32(x, gy, gw, 1, (1, 1, 1), (1, 1, 1), (0, -1, 0))  # pad < 0


@pytest.mark.parametrize("groups", [1, 2, 3])
def test_w_trans_reads_each_groups_weight_transposed(groups):
    """``w_trans``: the weight given as (G*Cg, Cog, 1, 1, 1), each group's matrix transposed
    (how a transposed convolution hands over W_g^T without a copy); float64 oracle."""
    rng = np.random.default_rng(11 + groups)
    n, cg, cog, p = 3, 7, 13, 37   # 13 rows: two 6-row panels and a 1-row tail
    x = rng.standard_normal((n, groups * cg, 1, 1, p)).astype(np.float32)
    wt = rng.standard_normal((groups * cg, cog, 1, 1, 1)).astype(np.float32)
    out = np.empty((n, groups * cog, 1, 1, p), dtype=np.float32)
    _cgemm.conv_gemm_f32(x, wt, None, out, groups, (1, 1, 1), (1, 1, 1), False, 2,
                         w_trans=True)
    x64 = x.astype(np.float64).reshape(n, groups, cg, p)
    w64 = wt.astype(np.float64).reshape(groups, cg, cog)
    want = np.einsum("gcm,ngcp->ngmp", w64, x64).reshape(out.shape)
    np.testing.assert_allclose(out, want, rtol=1e-5, atol=1e-5 * np.sqrt(cg))
    with pytest.raises(ValueError, match="w_trans"):
        _cgemm.conv_gemm_f32(x, np.zeros((groups * cg, cog, 1, 1, 2), np.float32), None,
                             out, groups, (1, 1, 1), (1, 1, 1), False, 2, w_trans=True)
