"""Tests of the direct engine ``fastconv._core.correlate`` (the contract in docs/internals.md).

Oracles are other people's code: scipy.signal.correlate (N = C = 1, stride = dilation = 1),
torch.nn.functional.conv1d/2d/3d in float64 (stride, dilation, groups, padding) and a
float64 / Python-int numpy direct sum written from the contract (4-D, 5-D, int64).
"""
import itertools
import math

import numpy as np
import pytest
import scipy.signal
import torch  # the oracle: a test dependency (torch==2.13.0), a failure when missing

from fastconv import _core
import _helpers  # noqa: E402  (tests/ is on sys.path under pytest)

F = torch.nn.functional

REAL = [np.float32, np.float64, np.int64]
FLOATS = [np.float32, np.float64, np.complex64, np.complex128]
ALL = FLOATS + [np.int64]
EPS = {np.dtype(np.float32): np.finfo(np.float32).eps, np.dtype(np.complex64): np.finfo(np.float32).eps,
       np.dtype(np.float64): np.finfo(np.float64).eps, np.dtype(np.complex128): np.finfo(np.float64).eps}


# ----------------------------------------------------------------------------- helpers

def rand(rng, shape, dtype):
    """:func:`_helpers.rand` with integers up to 50 in magnitude (wrapping int8 sums)."""
    return _helpers.rand(rng, shape, dtype, imax=50)


def direct_sum(x, w, O, stride, dilation, pad, groups):
    """The contract, literally: float64/complex128 (or Python ints for int64)."""
    if x.dtype.kind == "i":
        x, w = x.astype(object), w.astype(object)
        acc_dt = object
    else:
        acc_dt = np.complex128 if np.iscomplexobj(x) else np.float64
        x, w = x.astype(acc_dt), w.astype(acc_dt)
    N, C_in = x.shape[:2]
    C_out = w.shape[0]
    Cig, Cog = C_in // groups, C_out // groups
    S, K, D = x.shape[2:], w.shape[2:], x.ndim - 2
    out = np.zeros((N, C_out) + tuple(O), dtype=acc_dt)
    if acc_dt is object:
        out[...] = 0
    for k in itertools.product(*[range(n) for n in K]):
        idx, mask = [], None
        for d in range(D):
            i = np.arange(O[d]) * stride[d] + k[d] * dilation[d] - pad[d]
            m = (i >= 0) & (i < S[d])
            idx.append(np.clip(i, 0, max(S[d] - 1, 0)))
            mask = m if mask is None else np.multiply.outer(mask, m)
        if not mask.any():
            continue
        sub = x[(slice(None), slice(None)) + np.ix_(*idx)] * mask
        for co in range(C_out):
            g = co // Cog
            xs = sub[:, g * Cig:(g + 1) * Cig]
            wk = w[(co, slice(None)) + k]
            for ci in range(Cig):
                out[:, co] += xs[:, ci] * wk[ci]
    return out


def abs_bound(x, w, O, stride, dilation, pad, groups):
    """sum |x| |w| over the same terms: the scale of the rounding error."""
    xa = np.abs(x).astype(np.float64)
    wa = np.abs(w).astype(np.float64)
    return direct_sum(xa, wa, O, stride, dilation, pad, groups)


def assert_close(out, ref, bound, nterms):
    """|out - ref| <= c * eps * sum|x||w| with c ~ sqrt(#terms) (exact for int64)."""
    if out.dtype.kind == "i":
        wrapped = np.array([((int(v) + 2**63) % 2**64) - 2**63 for v in ref.ravel()],
                           dtype=np.int64).reshape(ref.shape)
        np.testing.assert_array_equal(out, wrapped)
        return
    c = 4.0 * np.sqrt(max(nterms, 1)) + 4.0
    tol = c * EPS[out.dtype] * bound + 1e-300
    err = np.abs(out.astype(ref.dtype) - ref)
    bad = err > tol
    assert not bad.any(), (f"{bad.sum()} of {bad.size} elements off; max err "
                           f"{err.max():.3g}, tol at worst element {tol.ravel()[np.argmax(err)]:.3g}")


def run(x, w, O, stride, dilation, pad, groups, nthreads=2, isa=None):
    out = np.full((x.shape[0], w.shape[0]) + tuple(O), 7, dtype=x.dtype)  # overwritten
    res = _core.correlate(x, w, out, tuple(stride), tuple(dilation), tuple(pad), groups,
                          nthreads, _isa=isa)
    assert res is out
    return out


def check_direct(x, w, O, stride, dilation, pad, groups, nthreads=2, isa=None):
    out = run(x, w, O, stride, dilation, pad, groups, nthreads, isa)
    ref = direct_sum(x, w, O, stride, dilation, pad, groups)
    bound = abs_bound(x, w, O, stride, dilation, pad, groups) if x.dtype.kind != "i" else None
    assert_close(out, ref, bound, w[0].size)


def scipy_case(S, K, mode):
    """(pad, O) that make our contract equal to scipy.signal.correlate(.., mode)."""
    if mode == "full":
        return tuple(k - 1 for k in K), tuple(s + k - 1 for s, k in zip(S, K))
    if mode == "same":
        return tuple(k // 2 for k in K), tuple(S)
    return tuple(0 for _ in K), tuple(s - k + 1 for s, k in zip(S, K))


# ----------------------------------------------------------------------------- scipy oracle

SCIPY_SHAPES = [
    ((37,), (5,)), ((64,), (4,)), ((1000,), (31,)), ((9,), (15,)),           # 1-D
    ((23, 31), (3, 3)), ((17, 40), (4, 6)), ((6, 5), (7, 9)), ((40, 70), (5, 1)),  # 2-D
    ((9, 11, 13), (3, 2, 3)), ((5, 6, 7), (6, 3, 8)),                           # 3-D
]


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("S,K,mode", [
    (S, K, mode) for S, K in SCIPY_SHAPES for mode in ("full", "same", "valid")
    if mode != "valid" or all(k <= s for s, k in zip(S, K))])
def test_matches_scipy_correlate(dtype, S, K, mode):
    rng = np.random.default_rng(hash((S, K, mode)) % 2**32)
    a, v = rand(rng, S, dtype), rand(rng, K, dtype)
    pad, O = scipy_case(S, K, mode)
    D = len(S)
    x, w = a.reshape((1, 1) + S), v.reshape((1, 1) + K)
    out = run(x, w, O, (1,) * D, (1,) * D, pad, 1)[0, 0]
    # scipy conjugates its second argument; the engine does not
    ref = scipy.signal.correlate(a.astype(np.complex128 if a.dtype.kind == "c" else
                                          np.float64 if a.dtype.kind == "f" else np.int64),
                                 np.conj(v).astype(np.complex128 if v.dtype.kind == "c" else
                                                   np.float64 if v.dtype.kind == "f"
                                                   else np.int64),
                                 mode=mode, method="direct")
    if dtype == np.int64:
        np.testing.assert_array_equal(out, ref)
    else:
        bound = scipy.signal.correlate(np.abs(a).astype(np.float64),
                                       np.abs(v).astype(np.float64), mode=mode,
                                       method="direct")
        assert_close(out, ref, bound, v.size)


@pytest.mark.parametrize("isa", [None, "avx2", "generic"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_generic_and_simd_paths(isa, dtype):
    """Every ISA path (None: the best the CPU has -- AVX-512VL where present)."""
    rng = np.random.default_rng(3)
    for S, K in [((300,), (7,)), ((30, 45), (3, 5)), ((7, 9, 20), (2, 3, 3))]:
        x = rand(rng, (2, 3) + S, dtype)
        w = rand(rng, (4, 3) + K, dtype)
        pad, O = scipy_case(S, K, "same")
        check_direct(x, w, O, (1,) * len(S), (1,) * len(S), pad, 1, isa=isa)


# ----------------------------------------------------------------------------- torch oracle

TORCH_CASES = [
    # (D, N, C_in, C_out, S, K, stride, dilation, padding, groups)
    (1, 2, 4, 6, (50,), (3,), (1,), (1,), (1,), 1),
    (1, 3, 4, 4, (77,), (5,), (2,), (3,), (4,), 2),
    (1, 1, 3, 3, (40,), (8,), (3,), (1,), (0,), 3),
    (2, 2, 3, 8, (19, 23), (3, 3), (1, 1), (1, 1), (1, 1), 1),
    (2, 2, 24, 20, (13, 17), (3, 5), (2, 1), (1, 2), (1, 3), 1),     # channel-vector path
    (2, 2, 16, 36, (11, 9), (2, 3), (1, 2), (2, 1), (2, 0), 2),      # partial channel block
    (2, 2, 4, 8, (20, 17), (5, 4), (2, 3), (1, 2), (2, 3), 2),
    (2, 3, 6, 6, (16, 16), (3, 3), (1, 1), (2, 2), (2, 2), 6),      # depthwise dilated
    (2, 2, 4, 12, (15, 21), (3, 5), (2, 1), (1, 1), (1, 2), 4),      # channel multiplier 3
    (2, 1, 2, 3, (9, 40), (4, 4), (3, 3), (2, 1), (5, 5), 1),        # pad > kernel
    (2, 5, 1, 6, (32, 32), (5, 5), (1, 1), (1, 1), (0, 0), 1),       # LeNet-like
    (2, 1, 3, 2, (70, 3), (7, 3), (2, 1), (1, 1), (3, 1), 1),
    (3, 2, 2, 4, (9, 10, 11), (3, 3, 3), (1, 1, 1), (1, 1, 1), (1, 1, 1), 1),
    (3, 1, 4, 4, (12, 9, 14), (2, 3, 4), (2, 1, 3), (2, 1, 1), (1, 2, 0), 2),
    (3, 2, 3, 3, (8, 8, 8), (3, 3, 3), (1, 2, 1), (1, 1, 2), (2, 0, 3), 3),
]


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("case", TORCH_CASES)
def test_matches_torch_conv(case, dtype):
    D, N, Cin, Cout, S, K, st, di, pa, g = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // g) + K, dtype)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[D]
    tx, tw = torch.from_numpy(x.astype(np.float64)), torch.from_numpy(w.astype(np.float64))
    ref = conv(tx, tw, stride=st, dilation=di, padding=pa, groups=g).numpy()
    bound = conv(tx.abs(), tw.abs(), stride=st, dilation=di, padding=pa, groups=g).numpy()
    out = run(x, w, ref.shape[2:], st, di, pa, g)
    assert_close(out, ref, bound, w[0].size)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_matches_torch_asymmetric_padding(dtype):
    # pad (2, 1) before and (0, 3) after: F.pad then a 'valid' conv
    rng = np.random.default_rng(5)
    x = rand(rng, (2, 3, 13, 18), dtype)
    w = rand(rng, (5, 3, 3, 4), dtype)
    tx = F.pad(torch.from_numpy(x.astype(np.float64)), (1, 3, 2, 0))
    tw = torch.from_numpy(w.astype(np.float64))
    ref = F.conv2d(tx, tw, stride=(1, 2)).numpy()
    bound = F.conv2d(tx.abs(), tw.abs(), stride=(1, 2)).numpy()
    out = run(x, w, ref.shape[2:], (1, 2), (1, 1), (2, 1), 1)
    assert_close(out, ref, bound, w[0].size)


# ----------------------------------------------------------------------------- direct-sum oracle

ND_CASES = [
    # (N, C_in, C_out, S, K, stride, dilation, pad, groups)
    (1, 2, 2, (4, 5, 3, 6), (2, 3, 1, 2), (1, 1, 1, 1), (1, 1, 1, 1), (1, 1, 0, 1), 1),
    (2, 2, 4, (5, 4, 6, 7), (2, 2, 3, 3), (2, 1, 1, 2), (1, 2, 1, 1), (0, 2, 1, 3), 2),
    (1, 1, 2, (3, 4, 3, 4, 9), (2, 1, 2, 3, 4), (1, 1, 2, 1, 2), (1, 1, 1, 2, 1),
     (1, 0, 1, 2, 3), 1),
    (2, 3, 3, (3, 3, 4, 3, 5), (1, 2, 2, 2, 2), (1, 1, 1, 1, 1), (1, 1, 1, 1, 1),
     (0, 1, 1, 1, 1), 3),
]


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("case", ND_CASES)
def test_nd_matches_direct_sum(case, dtype):
    N, Cin, Cout, S, K, st, di, pa, g = case
    rng = np.random.default_rng(abs(hash(case)) % 2**32)
    x = rand(rng, (N, Cin) + S, dtype)
    w = rand(rng, (Cout, Cin // g) + K, dtype)
    O = tuple((s + 2 * p - d * (k - 1) - 1) // t + 1 for s, k, t, d, p in zip(S, K, st, di, pa))
    check_direct(x, w, O, st, di, pa, g)


@pytest.mark.parametrize("dtype", ALL)
@pytest.mark.parametrize("D", [1, 2, 3])
def test_edge_geometry(D, dtype):
    """Kernel larger than the input, pads larger than the kernel, outputs reading past the
    end (longer than 'full'), negative pads (cropping), even/odd kernels."""
    rng = np.random.default_rng(10 + D)
    cases = [
        ((5,) * D, (9,) * D, (1,) * D, (1,) * D, (8,) * D, (13,) * D),
        ((6,) * D, (2,) * D, (1,) * D, (2,) * D, (7,) * D, (20,) * D),
        ((7,) * D, (4,) * D, (2,) * D, (1,) * D, (6,) * D, (11,) * D),
        ((8,) * D, (3,) * D, (1,) * D, (1,) * D, (-2,) * D, (3,) * D),
        ((3,) * D, (1,) * D, (3,) * D, (1,) * D, (0,) * D, (5,) * D),
    ]
    for S, K, st, di, pa, O in cases:
        x = rand(rng, (2, 2) + S, dtype)
        w = rand(rng, (2, 2) + K, dtype)
        check_direct(x, w, O, st, di, pa, 1)


def test_nothing_outside_x_is_read():
    # all reads land outside x: the output must be exactly zero
    x = np.ones((1, 1, 4, 4))
    w = np.ones((1, 1, 2, 2))
    out = run(x, w, (3, 3), (1, 1), (1, 1), (10, 10), 1)
    assert not out.any()


@pytest.mark.parametrize("nthreads", [1, 2, 3, 8])
def test_tilings_and_thread_counts(nthreads):
    """Shapes that exercise column tiles (> 4096), row tiles, channel chunks and partial
    register tiles, for several thread counts."""
    rng = np.random.default_rng(nthreads)
    for xs, ws, pa, g in [
        ((1, 1, 9000), (1, 1, 11), (5,), 1),
        ((1, 1, 4100), (1, 1, 3), (1,), 1),
        ((1, 64, 5000), (2, 64, 3), (1,), 1),          # channel chunks (accumulate path)
        ((1, 1, 203, 37), (1, 1, 3, 3), (1, 1), 1),
        ((1, 2, 2, 70), (3, 2, 2, 2), (0, 1), 1),      # < 4 rows: row-vector kernel
        ((2, 40, 30, 30), (8, 10, 3, 3), (1, 1), 4),
        ((1, 200, 20, 20), (9, 200, 3, 3), (1, 1), 1),   # channel chunks, channel vectors
        ((1, 1, 9, 5000), (1, 1, 3, 3), (1, 1), 1),
    ]:
        x = rand(rng, xs, np.float64)
        w = rand(rng, ws, np.float64)
        D = len(xs) - 2
        O = tuple(s + 2 * p - k + 1 for s, k, p in zip(xs[2:], ws[2:], pa))
        check_direct(x, w, O, (1,) * D, (1,) * D, pa, g, nthreads=nthreads)


@pytest.mark.parametrize("nthreads", [1, 8])
@pytest.mark.parametrize("dtype", REAL)
def test_panel_free_tiles(dtype, nthreads):
    """Unit-stride 2-D row tiles with no zero rows read the image itself, with a small panel
    only for the edge tiles whose reads leave the image: widths around the register-tile
    widths (8, 12, 16, 24 lanes), every column tap count 1-7 (3 and 5 unrolled), left/right
    pads from 0 to past the kernel, tall images split into many row tiles, 1-3 channels."""
    rng = np.random.default_rng(17 + nthreads)
    for W in (1, 5, 11, 12, 13, 23, 24, 25, 31, 47, 48, 49, 73, 100):
        for KW in range(1, 8):
            if KW > W + 2:
                continue
            KH = 1 + (W + KW) % 5
            for pw in sorted({0, KW // 2, KW - 1, KW + 1}):
                C = 1 + (W + KW + pw) % 3
                x = rand(rng, (1, C, 29 + KW, W), dtype)
                w = rand(rng, (2, C, KH, KW), dtype)
                pad = (KH // 2, pw)
                O = (x.shape[2] + 2 * pad[0] - KH + 1, W + 2 * pw - KW + 1)
                if O[1] < 1:
                    continue
                check_direct(x, w, O, (1, 1), (1, 1), pad, 1, nthreads=nthreads)
    # one channel, no padding: the plain scipy 'valid' correlation, many tasks
    for W, K in [(200, (5, 5)), (301, (3, 3)), (77, (4, 7)), (64, (6, 2))]:
        x = rand(rng, (1, 1, 400, W), dtype)
        w = rand(rng, (1, 1) + K, dtype)
        O = (400 - K[0] + 1, W - K[1] + 1)
        out = run(x, w, O, (1, 1), (1, 1), (0, 0), 1, nthreads=nthreads)
        wide = np.int64 if dtype == np.int64 else np.float64   # |sums| < 2**20: exact
        ref = scipy.signal.correlate(x[0, 0].astype(wide), w[0, 0].astype(wide),
                                     mode="valid", method="direct")
        if dtype == np.int64:
            np.testing.assert_array_equal(out[0, 0], ref)
        else:
            np.testing.assert_allclose(out[0, 0], ref, rtol=0,
                                       atol=50 * EPS[np.dtype(dtype)] * np.abs(ref).max())


@pytest.mark.parametrize("dtype,nthreads,isa", [
    (np.float32, 1, None), (np.float32, 8, "generic"), (np.float64, 8, None),
    (np.float64, 1, "generic"), (np.complex64, 2, None), (np.float32, 2, "avx2"),
    (np.float64, 2, "avx2")])
def test_one_row_tiles(dtype, nthreads, isa):
    """One-row register tiles (1-D signals, kernels one row high, images under 4 rows): rows
    of >= 24 taps at unit column stride and dilation take the diagonal kernel -- tap counts
    around its phase and block lengths (8 or 4 lanes, blocks of 7 taps) --, shorter ones the
    one-row fc_mk; with one input channel both read the signal itself and give edge tiles a
    small panel. Outputs around the tile widths and past one column tile (4096), pads from
    none to past the kernel, one to three input and output channels (fewer than the
    channel-vector path needs)."""
    rng = np.random.default_rng(29 + nthreads)
    cases = []
    for K in (3, 5, 8, 9, 15, 21, 24, 25, 31, 47, 48, 49, 56, 57, 63, 100, 301):
        for S in (K - 3, 65, 200, 4300):
            for pad in (0, K // 2, K + 3):
                O = S + 2 * pad - K + 1
                if O >= 1 and (S < 4300 or (pad == K // 2 and K in (3, 31, 301))):
                    cases.append(((1 + S % 2, 1 + K % 3) + (S,), (1 + K % 3, 1 + K % 3, K),
                                  (pad,), (O,)))
    cases += [
        ((1, 2, 5, 300), (3, 2, 1, 37), (0, 18), (5, 300)),       # 1 x K on a tall image
        ((2, 1, 9, 130), (2, 1, 1, 24), (1, 30), (11, 167)),      # output past 'full'
        ((1, 2, 3, 200), (2, 2, 2, 30), (0, 5), (2, 181)),        # 2 rows: KH taps rows
        ((1, 1, 1, 100), (1, 1, 1, 64), (0, 63), (1, 163)),
        ((1, 1, 2, 3, 90), (2, 1, 1, 1, 33), (0, 0, 16), (2, 3, 90)),  # 3-D, 1 x 1 x K
    ]
    for xs, ws, pa, O in cases:
        x = rand(rng, xs, dtype)
        w = rand(rng, ws, dtype)
        D = len(xs) - 2
        check_direct(x, w, O, (1,) * D, (1,) * D, pa, 1, nthreads=nthreads, isa=isa)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(1, 1, 1100, 2048), (2, 3, 700, 1001)])
def test_large_outputs(dtype, shape):
    """Outputs of several MB (streaming-store path where aligned), 3x3 'same'."""
    rng = np.random.default_rng(11)
    x = rand(rng, shape, dtype)
    w = rand(rng, (shape[1], 1, 3, 3), dtype)
    out = run(x, w, shape[2:], (1, 1), (1, 1), (1, 1), shape[1])
    acc = np.zeros(shape, dtype=np.int64 if dtype == np.int64 else np.float64)
    xp = np.pad(x.astype(acc.dtype), ((0, 0), (0, 0), (1, 1), (1, 1)))
    for a in range(3):
        for b in range(3):
            acc += xp[:, :, a:a + shape[2], b:b + shape[3]] * w[:, 0, a, b].astype(acc.dtype)[:, None, None]
    if dtype == np.int64:
        np.testing.assert_array_equal(out, acc)
    else:
        np.testing.assert_allclose(out, acc, rtol=0, atol=50 * EPS[np.dtype(dtype)] * 9 * 25)


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
@pytest.mark.parametrize("shape", [(1, 1, 40, 256, 256), (1, 2, 33, 130, 255)])
def test_large_outputs_3d(dtype, shape):
    """3-D outputs over 8 MiB: written with streaming stores (FC_NT_MIN_BYTES_3D) where a
    tile's destination is aligned, plain stores elsewhere (odd widths), 3x3x3 'same'."""
    rng = np.random.default_rng(12)
    x = rand(rng, shape, dtype)
    w = rand(rng, (shape[1], 1, 3, 3, 3), dtype)
    item = np.dtype(dtype).itemsize
    n = math.prod(shape)
    outs = []
    for shift in (0, 1):   # a 64-byte aligned output (streamed), and one element off it
        raw = np.full(n + 64 // item + 1, 7, dtype=dtype)
        lead = (-raw.ctypes.data % 64) // item + shift
        out = raw[lead:lead + n].reshape(shape)
        _core.correlate(x, w, out, (1, 1, 1), (1, 1, 1), (1, 1, 1), shape[1], 2)
        outs.append(out)
    acc = np.zeros(shape, dtype=np.int64 if dtype == np.int64 else np.float64)
    xp = np.pad(x.astype(acc.dtype), ((0, 0), (0, 0), (1, 1), (1, 1), (1, 1)))
    for a in range(3):
        for b in range(3):
            for c in range(3):
                acc += (xp[:, :, a:a + shape[2], b:b + shape[3], c:c + shape[4]]
                        * w[:, 0, a, b, c].astype(acc.dtype)[:, None, None, None])
    for out in outs:
        if dtype == np.int64:
            np.testing.assert_array_equal(out, acc)
        else:
            np.testing.assert_allclose(out, acc, rtol=0,
                                       atol=50 * EPS[np.dtype(dtype)] * 27 * 25)


def test_int64_wraps_modulo_2_64():
    rng = np.random.default_rng(7)
    x = rng.integers(-2**63, 2**63 - 1, size=(2, 3, 9, 11), dtype=np.int64)
    w = rng.integers(-2**63, 2**63 - 1, size=(4, 3, 3, 2), dtype=np.int64)
    out = run(x, w, (9, 12), (1, 1), (1, 1), (1, 1), 1)
    xo, wo = x.astype(object), w.astype(object)
    ref = np.zeros(out.shape, dtype=object)
    for n, co, i, j in itertools.product(*[range(s) for s in out.shape]):
        acc = 0
        for ci, a, b in itertools.product(range(3), range(3), range(2)):
            r, c = i + a - 1, j + b - 1
            if 0 <= r < 9 and 0 <= c < 11:
                acc += int(xo[n, ci, r, c]) * int(wo[co, ci, a, b])
        ref[n, co, i, j] = ((acc + 2**63) % 2**64) - 2**63
    np.testing.assert_array_equal(out, ref.astype(np.int64))


def test_complex_is_not_conjugated():
    x = np.array([[[1 + 2j, 3 - 1j, 0.5j]]], dtype=np.complex128)
    w = np.array([[[2 - 1j, 1j]]], dtype=np.complex128)
    out = run(x, w, (2,), (1,), (1,), (0,), 1)[0, 0]
    expected = [(1 + 2j) * (2 - 1j) + (3 - 1j) * 1j, (3 - 1j) * (2 - 1j) + 0.5j * 1j]
    np.testing.assert_allclose(out, expected, rtol=1e-15)


def test_empty_shapes():
    x = np.ones((0, 2, 5))
    out = run(x, np.ones((3, 2, 2)), (4,), (1,), (1,), (0,), 1)
    assert out.shape == (0, 3, 4)
    # empty reduction (C_in = 0, or a zero-length kernel) gives zeros
    out = run(np.ones((2, 0, 5)), np.ones((3, 0, 2)), (4,), (1,), (1,), (0,), 1)
    assert out.shape == (2, 3, 4) and not out.any()
    out = run(np.ones((1, 1, 5, 5)), np.ones((1, 1, 0, 2)), (3, 3), (1, 1), (1, 1), (0, 0), 1)
    assert not out.any()
    out = run(np.ones((1, 1, 5)), np.ones((1, 1, 2)), (0,), (1,), (1,), (0,), 1)
    assert out.shape == (1, 1, 0)


# ----------------------------------------------------------------------------- errors

def _readonly(a):
    a.flags.writeable = False
    return a


def _args():
    return dict(x=np.zeros((1, 2, 8, 8)), w=np.zeros((4, 2, 3, 3)), out=np.zeros((1, 4, 6, 6)),
                stride=(1, 1), dilation=(1, 1), pad=(0, 0), groups=1, nthreads=1)


BAD = [
    (TypeError, "ndarray", dict(x=[[[1.0]]])),
    (TypeError, "dtype", dict(w=np.zeros((4, 2, 3, 3), np.float32))),
    (TypeError, "unsupported", dict(x=np.zeros((1, 2, 8, 8), np.int32),
                                    w=np.zeros((4, 2, 3, 3), np.int32),
                                    out=np.zeros((1, 4, 6, 6), np.int32))),
    (TypeError, "unsupported", dict(x=np.zeros((1, 2, 8, 8), ">f8"),
                                    w=np.zeros((4, 2, 3, 3), ">f8"),
                                    out=np.zeros((1, 4, 6, 6), ">f8"))),
    (ValueError, "spatial", dict(x=np.zeros((1, 2)), w=np.zeros((4, 2)), out=np.zeros((1, 4)))),
    (ValueError, "number of dimensions", dict(w=np.zeros((4, 2, 3)))),
    (ValueError, "C-contiguous", dict(x=np.zeros((1, 2, 8, 16))[..., ::2])),
    (ValueError, "C-contiguous", dict(out=np.zeros((1, 4, 6, 6)).transpose(0, 1, 3, 2))),
    (ValueError, "writeable", dict(out=_readonly(np.zeros((1, 4, 6, 6))))),
    (ValueError, "groups", dict(groups=3)),
    (ValueError, "w.shape", dict(groups=2)),
    (ValueError, "out.shape", dict(out=np.zeros((2, 4, 6, 6)))),
    (ValueError, "out.shape", dict(out=np.zeros((1, 3, 6, 6)))),
    (ValueError, "stride", dict(stride=(1, 0))),
    (ValueError, "stride", dict(stride=(1,))),
    (TypeError, "stride", dict(stride=1)),
    (TypeError, "dilation", dict(dilation=(1, 1.5))),
    (ValueError, "dilation", dict(dilation=(-1, 1))),
    (TypeError, "pad", dict(pad=(None, 0))),
    (ValueError, "groups", dict(groups=0)),
    (TypeError, "groups", dict(groups=1.0)),
    (ValueError, "nthreads", dict(nthreads=0)),
    (TypeError, "nthreads", dict(nthreads=True)),
]


@pytest.mark.parametrize("exc,match,kw", BAD)
def test_bad_arguments_raise(exc, match, kw):
    args = _args()
    args.update(kw)
    with pytest.raises(exc, match=match):
        _core.correlate(**args)


def test_overlapping_out_raises():
    x = np.zeros((1, 4, 8, 8))
    with pytest.raises(ValueError, match="overlap"):
        _core.correlate(x, np.zeros((4, 4, 1, 1)), x, (1, 1), (1, 1), (0, 0), 1, 1)


def test_unaligned_raises():
    raw = np.zeros(8 * 64 + 1, np.uint8)[1:].view(np.float64).reshape(1, 1, 64)
    assert not raw.flags.aligned
    with pytest.raises(ValueError, match="aligned"):
        _core.correlate(raw, np.zeros((1, 1, 3)), np.zeros((1, 1, 62)), (1,), (1,), (0,), 1, 1)


# ----------------------------------------------------------------------------- build facts, threads

def test_build_facts():
    assert isinstance(_core.openmp_enabled(), bool)
    assert _core.simd_info() in ("avx512vl+avx2+fma", "avx2+fma", "generic")


def test_concurrent_python_threads():
    """8 Python threads, different shapes and dtypes, each checked against its oracle."""
    rng = np.random.default_rng(99)
    jobs = []
    for i in range(8):
        D = 1 + i % 3
        dtype = [np.float32, np.float64, np.complex64, np.int64][i % 4]
        S = tuple(int(s) for s in rng.integers(6 if D == 3 else 20, 12 if D == 3 else 40, D))
        K = tuple(int(k) for k in rng.integers(1, 5, D))
        x = rand(rng, (2, 2) + S, dtype)
        w = rand(rng, (3, 2) + K, dtype)
        pad, O = scipy_case(S, K, "same")
        ref = direct_sum(x, w, O, (1,) * D, (1,) * D, pad, 1)
        jobs.append((x, w, O, pad, ref))

    def worker(i):
        x, w, O, pad, ref = jobs[i]
        D = len(O)
        for _ in range(20):
            out = run(x, w, O, (1,) * D, (1,) * D, pad, 1, nthreads=2)
            if x.dtype.kind == "i":
                np.testing.assert_array_equal(out, ref.astype(np.int64))
            else:
                np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-4)

    _helpers.run_concurrently(worker, len(jobs))


def test_float32_direct_long_kernels_accuracy():
    """The 1-D direct kernel's register chains are flushed into a running total every 112
    taps: a float32 sum over thousands of taps in one chain had ~10x the error of scipy's
    (float64 sums as the oracle; 20000 taps: 4.9e-6 of the output's maximum, now ~5e-7)."""
    import fastconv
    rng = np.random.default_rng(21)
    for n, k in ((20000, 8001), (30000, 3001)):
        a = rng.standard_normal(n).astype(np.float32)
        b = rng.standard_normal(k).astype(np.float32)
        want = np.convolve(a.astype(np.float64), b.astype(np.float64), "same")
        got = fastconv.convolve(a, b, "same", method="direct")
        assert np.abs(got - want).max() / np.abs(want).max() < 1.2e-6
