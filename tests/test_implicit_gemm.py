"""The implicit forward engine of the fused float32 GEMM (fastconv/src/fc_igemm.h, chosen
with ``conv_gemm_f32(..., engine=1)``, by default for spatial kernels), against PyTorch.

Oracle: ``torch.nn.functional.conv1d/2d/3d`` in float64 on the same float32 data (then a
channel shuffle by reshape/transpose where asked), never fastconv itself; tolerance as in
test_fused_gemm.py (float32 accumulation, ``atol ~ 1e-5 sqrt(K) max|x| max|w|``).

What the cases straddle: tiles of 6 output pixels x 16 output channels (any number of
channels left over in the last panel, any number of pixels in the last tile); a single K
block up to 480 taps, blocks of at most 160 beyond; pixel blocks sized by the partial-sum
buffer (96 KiB / 16 channels); the kernel-row-major tap order (chosen when >= 3% of the
(pixel, kernel row) pairs read only padding -- those rows are skipped per tile) and the
channel-major order; strides and dilations read in place (no phase split); pads larger
than the kernel's reach (tiles that read nothing but padding: output = bias).
On a CPU without AVX2+FMA ``engine=1`` runs the portable engine (then these tests check
that one).
"""
import math
import warnings

import numpy as np
import pytest
import torch  # the oracle: a test dependency, a failure when missing

from fastconv import _gemm as _cgemm  # a build without it is a failure, not a skip
from _helpers import run_concurrently  # noqa: E402  (tests/ is on sys.path under pytest)

F = torch.nn.functional


@pytest.fixture(scope="module", autouse=True)
def _torch_one_thread():
    """The oracle's small convolutions run single-threaded (module run time only)."""
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


def _rand(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


def _ref(x, w, b, stride, pad, dil, groups, shuffle=False):
    """float64 torch correlation of the float32 arrays (numpy result)."""
    nd = w.ndim - 2
    conv = getattr(F, f"conv{nd}d")
    t = lambda a: None if a is None else torch.from_numpy(a.astype(np.float64))  # noqa: E731
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        y = conv(t(x), t(w), t(b), stride=stride, padding=pad, dilation=dil, groups=groups)
    if shuffle:
        n, c = y.shape[:2]
        y = y.reshape((n, groups, c // groups) + tuple(y.shape[2:])).transpose(1, 2)
        y = y.reshape((n, c) + tuple(y.shape[3:]))
    return y.numpy()


def _run(x, w, b, stride, pad, dil, groups, engine, shuffle=False, nthreads=1):
    """conv_gemm_f32 on 1-3-D data (lifted to 3-D) into a NaN-filled output."""
    nd = w.ndim - 2
    ext = (1,) * (3 - nd)
    out_sp = tuple((n + 2 * p - d * (k - 1) - 1) // s + 1
                   for n, k, s, p, d in zip(x.shape[2:], w.shape[2:], stride, pad, dil))
    out = np.full((x.shape[0], w.shape[0]) + out_sp, np.nan, dtype=np.float32)
    _cgemm.conv_gemm_f32(x.reshape(x.shape[:2] + ext + x.shape[2:]),
                         w.reshape(w.shape[:2] + ext + w.shape[2:]), b,
                         out.reshape(out.shape[:2] + ext + out_sp), groups, ext + tuple(stride),
                         ext + tuple(dil), shuffle, nthreads, pad=(0,) * (3 - nd) + tuple(pad),
                         engine=engine)
    return out


def _check(got, ref, x, w, b):
    k = w.shape[1] * math.prod(w.shape[2:])
    sb = 0.0 if b is None else float(np.abs(b).max())
    atol = 1e-5 * (math.sqrt(k) * float(np.abs(x).max()) * float(np.abs(w).max()) + sb)
    assert got.shape == ref.shape
    assert np.isfinite(got).all(), "an output element was never written"
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=atol + 1e-30)


ENGINES = pytest.mark.parametrize("engine", [1, -1, 0], ids=["implicit", "auto", "packed"])


@ENGINES
@pytest.mark.parametrize("cog", [1, 5, 8, 15, 16, 17, 24, 31, 32, 33, 48])
def test_channel_panels(cog, engine):
    """Every remainder of 16 output channels, with bias; pixels not a multiple of 6."""
    rng = np.random.default_rng(cog)
    x = _rand(rng, (2, 3, 11, 13))
    w = _rand(rng, (cog, 3, 3, 3))
    b = _rand(rng, (cog,))
    _check(_run(x, w, b, (1, 1), (1, 1), (1, 1), 1, engine), _ref(x, w, b, 1, 1, 1, 1),
           x, w, b)


@ENGINES
@pytest.mark.parametrize("cg,k", [(53, 3), (480, 1), (481, 1), (17, 5), (32, 5), (55, 3),
                                  (161, 3)])
def test_k_blocks(cg, k, engine):
    """K = cg*k*k = 477, 480, 425 (one block) and 481, 800, 495, 1449 (blocks of <= 160):
    block boundaries inside and between kernel rows."""
    rng = np.random.default_rng(cg * 10 + k)
    x = _rand(rng, (1, cg, 9, 10))
    w = _rand(rng, (20, cg, k, k))
    b = _rand(rng, (20,))
    for pad in (0, k // 2 + 1):   # channel-major, and row-major (padding rows skipped)
        _check(_run(x, w, b, (1, 1), (pad, pad), (1, 1), 1, engine),
               _ref(x, w, b, 1, pad, 1, 1), x, w, b)


@ENGINES
@pytest.mark.parametrize("case", [
    # (input spatial, kernel, stride, pad, dilation)
    ((28, 28), (5, 5), (1, 1), (2, 2), (1, 1)),         # GoogLeNet 5x5: row-major
    ((20, 20), (3, 3), (1, 1), (6, 6), (6, 6)),         # dilated, pad 6: row-major
    ((30, 31), (3, 3), (2, 2), (1, 1), (1, 1)),         # strided, channel-major
    ((31, 33), (7, 7), (2, 3), (3, 2), (1, 2)),         # strided + dilated in place
    ((23, 19), (11, 11), (4, 4), (0, 0), (1, 1)),       # AlexNet conv1 shape, no copy
    ((9, 9), (3, 3), (1, 1), (7, 5), (1, 1)),           # pads beyond the kernel's reach
    ((5, 6), (2, 3), (3, 1), (9, 0), (2, 1)),           # rows of padding only, 1 row of x
    ((1, 40), (1, 5), (1, 1), (0, 2), (1, 1)),          # one row
    ((40, 1), (5, 1), (1, 1), (2, 0), (1, 1)),          # one column
], ids=lambda c: "x".join(map(str, c[0])) + f"_k{c[1][0]}s{c[2][0]}p{c[3][0]}d{c[4][0]}")
def test_geometry_2d(case, engine):
    sp, k, s, p, d = case
    rng = np.random.default_rng(sum(sp) + sum(k))
    x = _rand(rng, (2, 4) + sp)
    w = _rand(rng, (18, 4) + k)
    b = _rand(rng, (18,))
    _check(_run(x, w, b, s, p, d, 1, engine), _ref(x, w, b, s, p, d, 1), x, w, b)


@ENGINES
@pytest.mark.parametrize("seed", range(6))
def test_random_1d_3d(seed, engine):
    """Random 1-D and 3-D problems: depth padding rows skipped with the height ones."""
    rng = np.random.default_rng(100 + seed)
    nd = 1 + 2 * (seed % 2)
    sp = tuple(int(v) for v in rng.integers(3, 12, nd))
    k = tuple(int(v) for v in rng.integers(1, 4, nd))
    s = tuple(int(v) for v in rng.integers(1, 3, nd))
    d = tuple(int(v) for v in rng.integers(1, 3, nd))
    p = tuple(int(v) for v in rng.integers(0, 4, nd))
    groups = int(rng.choice([1, 2]))
    cg, cog = int(rng.integers(1, 5)), int(rng.choice([16, 20, 9]))
    x = _rand(rng, (2, groups * cg) + sp)
    w = _rand(rng, (groups * cog, cg) + k)
    b = _rand(rng, (groups * cog,))
    _check(_run(x, w, b, s, p, d, groups, engine), _ref(x, w, b, s, p, d, groups), x, w, b)


@pytest.mark.parametrize("shuffle", [False, True])
@pytest.mark.parametrize("groups", [2, 3])
def test_groups_shuffle_bias(groups, shuffle):
    """Groups (per-group weight panels), ShuffleNet's channel order, bias per channel."""
    rng = np.random.default_rng(groups)
    x = _rand(rng, (3, 4 * groups, 12, 14))
    w = _rand(rng, (20 * groups, 4, 3, 3))
    b = _rand(rng, (20 * groups,))
    out = _run(x, w, b, (1, 1), (1, 1), (1, 1), groups, 1, shuffle=shuffle)
    _check(out, _ref(x, w, b, 1, 1, 1, groups, shuffle), x, w, b)


def test_padding_only_tiles_give_bias():
    """Pads much larger than the kernel's reach: the corners read only padding (no kernel
    row survives for those tiles) and must equal the bias exactly."""
    rng = np.random.default_rng(3)
    x = _rand(rng, (1, 2, 4, 4))
    w = _rand(rng, (16, 2, 2, 2))
    b = _rand(rng, (16,))
    out = _run(x, w, b, (1, 1), (8, 8), (1, 1), 1, 1)
    _check(out, _ref(x, w, b, 1, 8, 1, 1), x, w, b)
    np.testing.assert_array_equal(out[:, :, :6, :], np.broadcast_to(b[:, None, None],
                                                                    out[:, :, :6, :].shape))


def test_w_trans_implicit():
    """A 1x1 weight given per group transposed (a transposed convolution's W_g^T)."""
    rng = np.random.default_rng(9)
    g, cg, cog = 2, 5, 19
    x = _rand(rng, (2, g * cg, 1, 6, 7))
    wt = _rand(rng, (g * cg, cog, 1, 1, 1))          # w[g*Cg + c, m]
    w = wt.reshape(g, cg, cog).transpose(0, 2, 1).reshape(g * cog, cg, 1, 1, 1)
    out = np.full((2, g * cog, 1, 6, 7), np.nan, dtype=np.float32)
    _cgemm.conv_gemm_f32(x, np.ascontiguousarray(wt), None, out, g, (1, 1, 1), (1, 1, 1),
                         False, 2, w_trans=True, engine=1)
    _check(out, _ref(x, np.ascontiguousarray(w), None, 1, 0, 1, g), x, w, None)


@pytest.mark.parametrize("nthreads", [1, 2, 3, 8])
def test_threads(nthreads):
    """Work items (image, group, pixel block) split among 1-8 threads: odd pixel counts,
    a partial last block, both tap orders."""
    rng = np.random.default_rng(nthreads)
    x = _rand(rng, (3, 6, 29, 37))
    w = _rand(rng, (34, 3, 5, 5))
    b = _rand(rng, (34,))
    for pad in ((0, 0), (2, 2)):
        _check(_run(x, w, b, (1, 1), pad, (1, 1), 2, 1, nthreads=nthreads),
               _ref(x, w, b, 1, pad, 1, 2), x, w, b)


def test_concurrent_python_threads():
    """8 Python threads at once, each a different problem on the implicit engine."""
    rng = np.random.default_rng(11)
    cases = []
    for i in range(8):
        x = _rand(rng, (1 + i % 3, 4, 10 + i, 12))
        w = _rand(rng, (16 + 3 * i, 4, 3, 3))
        b = _rand(rng, (16 + 3 * i,))
        s, p = (1 + i % 2, 1 + i % 2), (i % 4, 1)
        cases.append((x, w, b, s, p, _ref(x, w, b, s, p, 1, 1)))

    def work(i):
        x, w, b, s, p, ref = cases[i]
        for _ in range(5):
            _check(_run(x, w, b, s, p, (1, 1), 1, 1, nthreads=2), ref, x, w, b)

    run_concurrently(work, 8)


def test_input_untouched():
    rng = np.random.default_rng(4)
    x = _rand(rng, (2, 3, 10, 10))
    w = _rand(rng, (16, 3, 3, 3))
    x0, w0 = x.copy(), w.copy()
    _run(x, w, None, (2, 2), (2, 2), (1, 1), 1, 1)
    np.testing.assert_array_equal(x, x0)
    np.testing.assert_array_equal(w, w0)


@pytest.mark.parametrize("engine", [2, -2, 7])
def test_bad_engine(engine):
    x = np.zeros((1, 1, 1, 3, 3), np.float32)
    w = np.zeros((1, 1, 1, 1, 1), np.float32)
    out = np.zeros((1, 1, 1, 3, 3), np.float32)
    with pytest.raises(ValueError, match="engine"):
        _cgemm.conv_gemm_f32(x, w, None, out, 1, (1, 1, 1), (1, 1, 1), engine=engine)


@pytest.mark.parametrize("engine", [1, 0], ids=["implicit", "packed"])
@pytest.mark.parametrize("nthreads", [2, 3, 8])
@pytest.mark.parametrize("n,groups", [(1, 1), (1, 2), (1, 3), (2, 1), (4, 2), (3, 1)])
def test_thread_shares(n, groups, nthreads, engine):
    """How threads share the items and the padded copy's rows (fc_items): by images when
    they split evenly, by groups of one image, by row bands of one image and one group
    (every channel plane's band copied by the thread that computes from it; the kernel's
    halo rows come from the neighbouring band), else one item at a time. Strided cases
    make the packed form's copy phase-split (bands of phase images); 3-D cases band the
    (depth, row) pairs."""
    rng = np.random.default_rng(n * 100 + groups * 10 + nthreads)
    for sp, k, s, p in [((17, 23), (3, 3), (1, 1), (1, 1)),
                        ((19, 16), (5, 3), (2, 3), (2, 1)),
                        ((6, 9, 11), (3, 2, 3), (1, 2, 1), (1, 0, 2))]:
        x = _rand(rng, (n, 3 * groups) + sp)
        w = _rand(rng, (17 * groups, 3) + k)
        b = _rand(rng, (17 * groups,))
        _check(_run(x, w, b, s, p, (1,) * len(sp), groups, engine, nthreads=nthreads),
               _ref(x, w, b, s, p, 1, groups), x, w, b)


@pytest.mark.parametrize("nthreads", [2, 3, 4])
@pytest.mark.parametrize("sp,cog,k,p", [((7, 7), 72, 3, 1), ((5, 6), 40, 3, 0),
                                        ((14, 14), 33, 3, 1), ((7, 7), 64, 1, 0)])
@pytest.mark.parametrize("n", [1, 3])
def test_few_pixel_blocks_split_panels(sp, cog, k, p, nthreads, n):
    """A layer on few small maps (at most 256 pixels in all: each item packs its own
    weight panels) has fewer pixel blocks than threads x 4: the items then also split the
    16-channel panels (fci_run's nmc); every (image, pixel, channel) is written once,
    including the last, partial panel (its weight gathered with a mask)."""
    rng = np.random.default_rng(cog * 10 + nthreads + n)
    x = _rand(rng, (n, 40) + sp)
    w = _rand(rng, (cog, 40, k, k))
    b = _rand(rng, (cog,))
    _check(_run(x, w, b, (1, 1), (p, p), (1, 1), 1, 1, nthreads=nthreads),
           _ref(x, w, b, 1, p, 1, 1), x, w, b)


# ----------------------------------------------------------------------------------------
# the weight gradient in the implicit form (conv_wgrad_f32(engine=1), the default on AVX2):
# fci_run with its operands' roles swapped -- columns = the Cg*KT taps, reduction = every
# (image, position) pair, "weight" = grad_output packed by fci_pack_gy -- and, when the
# columns are too few to share, one private reduction slice per thread, summed
def _ref_wgrad(x, gy, wshape, stride, pad, dil, groups):
    nd = x.ndim - 2
    t = lambda a: torch.from_numpy(a.astype(np.float64))  # noqa: E731
    fn = getattr(torch.nn.grad, f"conv{nd}d_weight")
    return fn(t(x), wshape, t(gy), stride=stride, padding=pad, dilation=dil,
              groups=groups).numpy()


def _run_wgrad(x, gy, wshape, stride, pad, dil, groups, engine, nthreads):
    nd = x.ndim - 2
    ext = (1,) * (3 - nd)
    gw = np.full(wshape[:2] + ext + tuple(wshape[2:]), np.nan, dtype=np.float32)
    _cgemm.conv_wgrad_f32(x.reshape(x.shape[:2] + ext + x.shape[2:]),
                          gy.reshape(gy.shape[:2] + ext + gy.shape[2:]), gw, groups,
                          ext + tuple(stride), ext + tuple(dil), (0,) * (3 - nd) + tuple(pad),
                          nthreads, engine=engine)
    return gw.reshape(wshape)


WGRAD_CASES = [
    # (N, C, C_out, groups, kernel, stride, padding, dilation, spatial)
    (2, 3, 16, 1, (3, 3), (1, 1), (1, 1), (1, 1), (9, 11)),
    (3, 8, 32, 2, (5, 5), (2, 2), (2, 2), (1, 1), (13, 12)),
    (1, 5, 17, 1, (3, 3), (1, 2), (0, 3), (2, 1), (10, 9)),        # one channel past a panel
    (2, 4, 48, 4, (2, 3, 2), (1, 2, 1), (1, 0, 1), (1, 1, 2), (5, 6, 7)),
    (4, 1, 16, 1, (7,), (3,), (3,), (2,), (100,)),
    (2, 16, 16, 1, (1, 1), (1, 1), (0, 0), (1, 1), (8, 8)),          # 1x1
    (2, 6, 6, 3, (3, 3), (3, 3), (1, 1), (1, 1), (14, 15)),          # 2 channels per group
    (8, 1, 16, 1, (7, 7), (1, 1), (0, 0), (2, 2), (40, 40)),         # few columns: slices
    (5, 2, 8, 1, (3,), (1,), (1,), (1,), (997,)),                    # slices, odd lengths
    (3, 4, 12, 2, (2, 2, 2), (1, 1, 1), (1, 1, 1), (1, 1, 1), (9, 10, 11)),
]


@pytest.mark.parametrize("engine", [1, 0, -1], ids=["implicit", "packed", "auto"])
@pytest.mark.parametrize("nthreads", [1, 2, 3])
@pytest.mark.parametrize("case", WGRAD_CASES)
def test_wgrad_against_torch(case, nthreads, engine):
    n, c, co, g, k, s, p, d, sp = case
    rng = np.random.default_rng(sum(sp) + co + nthreads)
    x = _rand(rng, (n, c) + sp)
    out_sp = tuple((a + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                   for a, kk, ss, pp, dd in zip(sp, k, s, p, d))
    gy = _rand(rng, (n, co) + out_sp)
    wshape = (co, c // g) + k
    got = _run_wgrad(x, gy, wshape, s, p, d, g, engine, nthreads)
    ref = _ref_wgrad(x, gy, wshape, s, p, d, g)
    red = n * math.prod(out_sp)
    atol = 1e-5 * math.sqrt(red) * float(np.abs(x).max()) * float(np.abs(gy).max())
    assert np.isfinite(got).all(), "a weight-gradient element was never written"
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=atol)


def test_wgrad_concurrent_and_inputs_untouched():
    """8 Python threads at once (the sliced path and the column path), inputs unchanged."""
    rng = np.random.default_rng(11)
    cases = [WGRAD_CASES[7], WGRAD_CASES[1]]
    data = []
    for n, c, co, g, k, s, p, d, sp in cases:
        x = _rand(rng, (n, c) + sp)
        out_sp = tuple((a + 2 * pp - dd * (kk - 1) - 1) // ss + 1
                       for a, kk, ss, pp, dd in zip(sp, k, s, p, d))
        gy = _rand(rng, (n, co) + out_sp)
        wshape = (co, c // g) + k
        data.append((x, gy, wshape, s, p, d, g, _ref_wgrad(x, gy, wshape, s, p, d, g)))
    copies = [(x.copy(), gy.copy()) for x, gy, *_ in data]

    def work(i):
        x, gy, wshape, s, p, d, g, ref = data[i % 2]
        got = _run_wgrad(x, gy, wshape, s, p, d, g, -1, 2)
        np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-3)
    run_concurrently(work, 8)
    for (x, gy, *_), (x0, gy0) in zip(data, copies):
        assert np.array_equal(x, x0) and np.array_equal(gy, gy0)


def test_wgrad_bad_engine():
    x = np.zeros((1, 1, 1, 3, 3), np.float32)
    gy = np.zeros((1, 1, 1, 3, 3), np.float32)
    gw = np.zeros((1, 1, 1, 1, 1), np.float32)
    with pytest.raises(ValueError, match="engine"):
        _cgemm.conv_wgrad_f32(x, gy, gw, 1, (1, 1, 1), (1, 1, 1), (0, 0, 0), 1, engine=3)


def test_implicit_form_rule_for_1x1_on_small_maps():
    """1x1 layers take the implicit form on maps of at most 100 pixels with >= 128 input
    channels per group (the packed form's 16-pixel panels would be mostly padding), not on
    larger maps or with few input channels; spatial kernels as before (the rule itself: the
    engine applies it on AVX2+FMA CPUs and runs its portable loops elsewhere)."""
    assert _cgemm.implicit_form(1, 256, 8, 49, 512)
    assert _cgemm.implicit_form(1, 160, 8, 100, 128)
    assert not _cgemm.implicit_form(1, 256, 8, 196, 512)
    assert not _cgemm.implicit_form(1, 256, 8, 49, 64)
    assert not _cgemm.implicit_form(1, 24, 8, 49, 512)      # 16-channel panels 1/4 padding
    assert _cgemm.implicit_form(9, 16, 8, 3136, 3)
    assert not _cgemm.implicit_form(9, 8, 8, 3136, 64)


@pytest.mark.parametrize("n,c,h,co,groups", [(8, 256, 7, 64, 1), (3, 512, 5, 48, 2),
                                             (2, 128, 10, 32, 1), (4, 160, 6, 96, 1)])
def test_pointwise_small_maps_auto_engine(n, c, h, co, groups):
    """1x1 layers on small maps through engine=-1 (the implicit form), with bias, against
    torch's float64 convolution."""
    rng = np.random.default_rng(n * c + h)
    x = _rand(rng, (n, c, h, h + 1))
    w = _rand(rng, (co, c // groups, 1, 1))
    b = _rand(rng, (co,))
    got = _run(x, w, b, (1, 1), (0, 0), (1, 1), groups, -1, nthreads=2)
    np.testing.assert_allclose(got, _ref(x, w, b, (1, 1), (0, 0), (1, 1), groups),
                               rtol=1e-4, atol=1e-4)
