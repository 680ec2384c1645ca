"""Engine choice and the non-GEMM engines of ``fastconv.nn``.

Three engines serve one contract (``fastconv._core.correlate``'s, docs/internals.md):

direct
    ``fastconv._core.correlate`` (Cython/OpenMP); while that extension is not importable, a
    NumPy stand-in that sums one ``(C_out, C_in)`` GEMM per kernel tap (implicit GEMM).
gemm
    im2col + BLAS (:mod:`fastconv.nn._gemm`).
fft
    ``rfftn`` of the (padded) input and the flipped kernel, a per-frequency complex matrix
    product over the input channels, ``irfftn``; stride-1 problems (strided ones are
    computed at stride 1 and subsampled, so 'auto' never picks FFT for them).

``'auto'`` picks the cheapest by a cost model whose constants come from
``fastconv._plan.constants()`` (calibrated per machine) or, when that is not available, from
the defaults below.
"""
import itertools
import math

import numpy as np

from .. import _config
from . import _gemm

try:
    from .. import _core
    _HAVE_CORE = hasattr(_core, "correlate")
except ImportError:  # pragma: no cover - depends on the build
    _core = None
    _HAVE_CORE = False

# Per-thread rates of *these* engines on a 2-core AVX2+FMA machine (single-thread CPU time,
# float32): the direct engine's multi-channel kernel, its 1x1 and depthwise cases, the GEMM
# path (im2col + OpenBLAS sgemm) and this module's FFT path. fastconv._plan's calibrated
# constants rescale them (ratio of tuned to built-in value), so ``fastconv.tune()`` on a
# faster machine moves all of them together.
_RATES = {
    "direct": 4.2e-11,          # s per MAC per thread, C_in/groups > 1, kernel > 1
    "direct_1x1": 25e-11,       # 1x1 kernels: the direct engine has no reuse to exploit
    "direct_depthwise": 11e-11,  # C_in/groups == 1: memory bound
    "gemm": 3.3e-11,            # large, square-ish GEMMs (im2col included)
    # fused im2col+GEMM (float32, fc_cgemm.h): per MAC of the padded 6-row panels, per
    # packed patch element (strided problems: x1.3 for the phase-split copy), per call
    "fused_mac": 2.6e-11,
    "fused_pack": 0.25e-9,
    "fused_call": 1e-5,
    # Winograd (fc_winograd.h, see _winograd_terms): per GEMM MAC, per kernel
    # call, per (input channel, run of 8 tiles) of the input transform, per (output
    # channel, tile) of the output one, per transformed weight written through memory or
    # (few tiles) in cache (thread-seconds), per call (seconds)
    "wino_mac": 1.74e-11,
    "wino_call": 2.32e-08,
    "wino_in": 1.09e-07,
    "wino_out": 0.0,
    "wino_weight": 8.15e-09,
    # refitted (was 1.14e-08, which priced a 512 x 512 3x3 weight's transform at 1.5 ms of
    # a 1.46 ms layer and kept small-map 512-channel layers on the slower GEMM: 8 x 512 ->
    # 512 on 7x7 12.4 ms against Winograd's 8.7): chosen engine over the fastest, geo-mean
    # (worst), 36 small-map 3x3 layers 1.059 (1.42) -> 1.023 (1.27), 67 random 3x3/5x5
    # layers 1.038 (1.34) -> 1.025 (1.30)
    "wino_weight_small": 0.4e-08,
    "wino_stream": 3.57e-11,
    "wino_fixed": 1.69e-05,
    "fft_flop": 4e-10,          # per modelled flop of the FFT path
    "overhead": 2e-5,
}
_PLAN_KEYS = ("direct_s_per_mac_float32", "gemm_s_per_mac_float32", "fft_s_per_flop",
              "call_overhead_s")


def constants():
    """Scale factors from ``fastconv._plan.constants()`` (1.0 each when not available)."""
    try:
        from .. import _plan
        got, ref = _plan.constants(), _plan.DEFAULTS
    except Exception:  # noqa: BLE001 - planner not available: built-in rates
        got, ref = {}, {}
    scale = {}
    for key in _PLAN_KEYS:
        d = ref.get(key, 1.0)
        try:
            v = float(got.get(key, d))
        except (TypeError, ValueError):
            v = d
        scale[key] = v / d if v > 0 else 1.0
    return scale


# ----------------------------------------------------------------------------------------
# direct engine
# ----------------------------------------------------------------------------------------
def _direct_numpy(x, w, out_spatial, stride, dilation, pad, groups):
    """Implicit GEMM: ``out += W[:, :, k] @ x[taps k]`` for every kernel tap ``k``."""
    n, c = x.shape[:2]
    c_out = w.shape[0]
    kernel = w.shape[2:]
    g = groups
    cg, cog = c // g, c_out // g
    xp = _gemm.pad_input(x, out_spatial, kernel, stride, dilation, pad)
    hw = math.prod(out_spatial)
    out = np.zeros((n, g, cog, hw), dtype=x.dtype)
    wk = w.reshape((g, cog, cg) + tuple(kernel))
    for k in np.ndindex(*kernel):
        idx = tuple(slice(ki * d, ki * d + (o - 1) * s + 1, s)
                    for ki, d, o, s in zip(k, dilation, out_spatial, stride))
        xs = xp[(Ellipsis, *idx)].reshape(n, g, cg, hw)
        wkk = wk[(Ellipsis, *k)]  # (g, cog, cg)
        if cg == 1 and cog == 1:
            out += wkk.reshape(1, g, 1, 1) * xs
        else:
            out += np.matmul(wkk, xs)
    return out.reshape((n, c_out) + tuple(out_spatial))


def _depthwise_fast(x, w, groups):
    """Whether the dedicated float32 depthwise kernel (fastconv/src/fc_depthwise.h) serves
    this problem: one input channel per group, 1, 2 or 3 spatial axes."""
    return (_HAVE_CORE and hasattr(_core, "depthwise2d_f32") and x.dtype == np.float32
            and (x.ndim in (3, 4) or (x.ndim == 5 and hasattr(_core, "depthwise3d_f32")))
            and w.shape[1] == 1 and groups == x.shape[1]
            and groups > 0 and math.prod(w.shape[2:]) <= 1024)


def direct(x, w, out_spatial, stride, dilation, pad, groups, bias=None):
    """Direct correlation (``fastconv._core`` when built, else the NumPy stand-in), plus
    ``bias`` when given."""
    if _HAVE_CORE and x.dtype in (np.float32, np.float64, np.complex64, np.complex128):
        if any(p < 0 for p in pad):  # contract: pad >= 0; skip leading samples instead
            x = x[(Ellipsis, *[slice(-p, None) if p < 0 else slice(None) for p in pad])]
            pad = tuple(max(p, 0) for p in pad)
        x = np.ascontiguousarray(x)
        w = np.ascontiguousarray(w)
        out = _gemm.result_empty(x.shape[:1] + w.shape[:1] + tuple(out_spatial), dtype=x.dtype)
        dw = out.size and _depthwise_fast(x, w, groups)
        if dw and x.ndim == 5:
            nt = max(1, min(_config.get_num_threads(), (out.size * w[0].size) >> 17))
            b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
            _core.depthwise3d_f32(x, w.reshape((w.shape[0],) + w.shape[2:]), b, out,
                                  tuple(stride), tuple(dilation), tuple(pad), nt)
            return out
        if dw:
            one = x.ndim == 3  # 1-D: a plane of one row
            x4 = x[:, :, None] if one else x
            w3 = w.reshape(w.shape[0], *((1,) if one else ()), *w.shape[2:])
            o4 = out[:, :, None] if one else out
            ext = (1,) if one else ()
            nt = max(1, min(_config.get_num_threads(), (out.size * w3[0].size) >> 17))
            b = None if bias is None else np.ascontiguousarray(bias, dtype=np.float32)
            _core.depthwise2d_f32(x4, w3, b, o4, ext + tuple(stride), ext + tuple(dilation),
                                  (0,) * len(ext) + tuple(pad), nt)
            return out
        if out.size:
            # small problems: threads cost more than they save (~1 M MACs each at least)
            macs = out.size * math.prod(w.shape[1:])
            nt = max(1, min(_config.get_num_threads(), macs >> 20))
            code = _core._REAL_CODES.get(x.dtype)
            if code is not None and w.dtype == x.dtype and len(pad) == x.ndim - 2:
                # real: x, w contiguous and of one dtype, out fresh, the front validated
                # the geometry -- straight to the engine (_core.correlate's own argument
                # checks were a third of a small layer's call)
                _core._correlate_real(x, w, out, tuple(stride), tuple(dilation), tuple(pad),
                                      groups, nt, None, code)
            else:
                _core.correlate(x, w, out, tuple(stride), tuple(dilation), tuple(pad), groups,
                                nt)
    else:
        out = _direct_numpy(x, w, out_spatial, stride, dilation, pad, groups)
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * (out.ndim - 2))
    return out


# ----------------------------------------------------------------------------------------
# FFT engine
# ----------------------------------------------------------------------------------------
def _fft_sizes(x_spatial, kernel, out_spatial, stride, dilation, pad):
    import scipy.fft
    kd = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
    full = [(o - 1) * s + 1 + kk - 1 for o, s, kk in zip(out_spatial, stride, kd)]
    return kd, [scipy.fft.next_fast_len(f, real=True) for f in full]


def fft(x, w, out_spatial, stride, dilation, pad, groups):
    """Correlation through real FFTs with a per-frequency channel GEMM."""
    import scipy.fft
    nd = x.ndim - 2
    n, c = x.shape[:2]
    c_out = w.shape[0]
    kernel = w.shape[2:]
    g = groups
    cg, cog = c // g, c_out // g
    # only the input samples that some output reads, at stride 1
    o1 = tuple((o - 1) * s + 1 for o, s in zip(out_spatial, stride))
    xp = _gemm.pad_input(x, o1, kernel, (1,) * nd, dilation, pad)
    kd, fshape = _fft_sizes(x.shape[2:], kernel, out_spatial, stride, dilation, pad)
    need = tuple(o + k - 1 for o, k in zip(o1, kd))
    xp = xp[(Ellipsis, *[slice(0, e) for e in need])]
    wd = np.zeros((c_out, cg) + tuple(kd), dtype=w.dtype)
    wd[(Ellipsis, *[slice(None, None, d) for d in dilation])] = w
    wd = wd[(Ellipsis, *[slice(None, None, -1)] * nd)]
    axes = tuple(range(2, 2 + nd))
    workers = _config.get_num_threads()
    cplx = x.dtype.kind == "c"
    fwd = scipy.fft.fftn if cplx else scipy.fft.rfftn
    inv = scipy.fft.ifftn if cplx else scipy.fft.irfftn
    xf = fwd(xp, s=fshape, axes=axes, workers=workers)            # (n, c, *F)
    wf = fwd(wd, s=fshape, axes=axes, workers=workers)            # (c_out, cg, *F)
    dc = (Ellipsis,) + (0,) * nd      # a DC bin sums its input: NaN/Inf anywhere show there
    if (not (np.isfinite(xf[dc]).all() and np.isfinite(wf[dc]).all())
            and not (np.isfinite(x).all() and np.isfinite(w).all())):
        # the product of spectra would spread one NaN/Inf over every output; torch (and
        # the other engines) keep it to the outputs that read it: the cheaper of the
        # direct sum and the GEMM instead (a large kernel's direct sum can take minutes)
        t = predict(x.shape, w.shape, out_spatial, stride, dilation, groups, x.dtype)
        if t["gemm"] < t["direct"]:
            return _gemm.correlate(x, w, out_spatial, stride, dilation, pad, groups)
        return direct(x, w, out_spatial, stride, dilation, pad, groups)
    fsz = math.prod(xf.shape[2:])
    # (g, F, cog, cg) @ (g, F, cg, n) -> (g, F, cog, n)
    xt = xf.reshape(n, g, cg, fsz).transpose(1, 3, 2, 0)
    wt = wf.reshape(g, cog, cg, fsz).transpose(0, 3, 1, 2)
    yf = np.matmul(wt, xt)                                          # (g, F, cog, n)
    yf = np.ascontiguousarray(yf.transpose(3, 0, 2, 1)).reshape((n, c_out) + xf.shape[2:])
    y = inv(yf, s=fshape, axes=axes, workers=workers)
    sl = tuple(slice(k - 1, k - 1 + (o - 1) * s + 1, s)
               for k, o, s in zip(kd, out_spatial, stride))
    return np.ascontiguousarray(y[(Ellipsis, *sl)], dtype=x.dtype)


# ----------------------------------------------------------------------------------------
# cost model
# ----------------------------------------------------------------------------------------
def predict(x_shape, w_shape, out_spatial, stride, dilation, groups, dtype, nthreads=None):
    """Predicted seconds of each engine for one forward correlation problem."""
    sc = constants()
    nt = nthreads or _config.get_num_threads()
    n, cin = x_shape[:2]
    c_out, cg = w_shape[:2]
    kernel = w_shape[2:]
    kk = math.prod(kernel)
    hw = math.prod(out_spatial)
    cog = max(1, c_out // groups)
    macs = n * c_out * hw * cg * kk
    dt = np.dtype(dtype)
    if dt.kind == "c":
        macs *= 4
    if dt.itemsize == 8 and dt.kind == "f" or dt.itemsize == 16:
        macs *= 2
    over = _RATES["overhead"] * sc["call_overhead_s"]
    # GEMM: efficiency falls when the matrices are thin (few output channels per group, a
    # short reduction, few output positions); many small calls cost overhead each. A short
    # reduction (few input channels: stems, C_in*K of a few hundred) costs more than the
    # BLAS rate alone says: the im2col copy is then as large as the GEMM's work (measured,
    # quiet 2-core machine, timed interleaved with torch: ResNet stem 3->64 7x7/2 direct
    # 2.65 ms, GEMM 5.48 ms; AlexNet conv1 a tie)
    red = cg * kk
    thin = ((1 + 8 / cog) * (1 + (16 if kk == 1 else 64) / max(red, 1))
            * (1 + 64 / max(hw, 1)))
    calls = groups * max(1, n)
    t_gemm = (macs * _RATES["gemm"] * sc["gemm_s_per_mac_float32"] * thin / nt
              + calls * 2e-6 + over)
    if _gemm.have_fused(dt, len(kernel)):
        # fused engine: every patch element (N*G*P*K of them) is packed once and meets
        # the output channels of its group in 6-row micro-panels (a tail of 1-2 or 3-4
        # rows runs a 2- or 4-row kernel), or, for spatial kernels, is read in place
        elems = n * groups * hw * red
        if _gemm.implicit_form(kk, cog, n, hw, cg):
            # its implicit form (fc_igemm.h): nothing packed, 16-channel panels, a kernel
            # call and a transposed store per 6-pixel tile
            per = (cog - cog % -16) * _RATES["fused_mac"] * (1 + 16 / max(1, red))
        else:
            cogpad = cog + (-cog % 6 if cog % 6 > 4 else -cog % 2)
            pack = _RATES["fused_pack"] * (1.3 if any(s > 1 for s in stride) else 1.0)
            per = cogpad * _RATES["fused_mac"] * (1 + 8 / max(1, min(red, 256))) + pack
        t_gemm = (elems * per / nt + _RATES["fused_call"]) * sc["gemm_s_per_mac_float32"] \
            + over
    if any(s > 1 for s in stride):
        strided = 1.5  # the direct kernel's strided loads (measured: AlexNet conv1, 3x3/2)
    else:
        strided = 1.0
    if cg == 1 and (groups > 1 or kk > 1):
        # one input channel per group: the depthwise kernel (1x1 depthwise layers too, a
        # per-channel scale; a dense single-channel 1x1 layer is priced below)
        rate = _RATES["direct_depthwise"]
        if dt == np.float32 and len(kernel) <= 2:
            # the float32 depthwise kernel serves a channel multiplier's outputs from one
            # read of the input (measured: LeNet-5 conv1, 1 -> 6 5x5, 0.31 ms where the
            # multiplier-1 rate predicts 0.43 ms)
            rate *= 0.6 + 0.4 / cog
    elif kk == 1:
        # a short reduction leaves the 1x1 direct kernel mostly in per-tile overhead
        # (measured: 4 -> 32 channels per group, 4 groups, 4 x 8^3: 0.37 ms, where the
        # rate alone said 0.09 ms; the fused GEMM took 0.08 ms)
        rate = _RATES["direct_1x1"] * (1 + 16 / max(1, cg))
    else:
        # few output channels per group leave the register tile partly idle (measured:
        # 8 -> 8 3x3 at ~2x, 16 -> 32 5x5 at ~1.25x the dense rate), and short output rows
        # its row tiles. Fitted, with fused_call, on 646 layers (batch 1-8, 3-128 -> 16-256
        # channels, 6^2-56^2 maps, 1x1-5x5, both engines timed): the choice cost 1.126x
        # the faster engine's time on average and up to 4.97x (direct picked on 6x6-8x8
        # maps where the fused GEMM took a quarter of its time); now 1.009x, at most 1.51x
        #
        # Refit (session 14, 270 random float32 layers of <= 3e8 MACs, 1-8 images, 3-256
        # -> 8-256 channels, groups 1-4, 3x3-7x7, stride and dilation 1-2, 7^2-56^2 maps):
        # the direct kernel (since dispatched to AVX-512 where the CPU has it) ran at
        # ~0.4x this rate's prediction, and lost far less to few output channels per
        # group than 1 + 8/cog said (2-8 channels: direct 1.2-1.8x faster than the GEMM
        # 'auto' took). 0.8 * (1 + 1/cog): the chosen engine 1.048 -> 1.019x the fastest
        # (geo-mean; 12 -> 5 layers over 1.2x) on 120 layers, 1.047 -> 1.022x on 150
        # held out; larger factors for the GEMM's side were worse (the fused engine's
        # prediction reads ~1.2x high, but the winograd and fft terms are fitted to it).
        # Float32 only: the float64 kernel keeps the old penalty (a 96 -> 6 transposed
        # layer in 3 groups on 4x5: direct 201 us, col2im 41 us).
        few = 0.8 * (1 + 1 / cog) if dt == np.float32 else 1 + 8 / cog
        rate = _RATES["direct"] * few * (1 + 16 / max(1, out_spatial[-1]))
    t_direct = macs * rate * strided * sc["direct_s_per_mac_float32"] / nt + over
    if cg == 1 and groups > 1:
        # depthwise: the GEMM engines run one tiny product per (image, group) with a panel
        # of 16 or 6 output channels mostly padding; priced as dense they were taken for
        # 1x1 depthwise layers the depthwise kernel ran 2-15x faster (4 x 128ch 56^2:
        # GEMM 4.4 ms, direct 0.28 ms, torch 0.34 ms)
        t_gemm *= 1 + 16 / cog
    if dt == np.float64 and kk > 1:
        # the float64 direct kernel runs at ~1.6x its float32 time, not the 2x the doubled
        # MACs say, while float64 GEMM is BLAS on im2col tiles (3-6x the fused float32
        # engine): priced at 2x, 'auto' took that GEMM for float64 layers the direct kernel
        # ran 1.05-5x faster (measured, 2 threads: 16 -> 16 3x3 on 16^2 46 against 108 us,
        # 64 -> 64 on 2 x 16^2 0.55 against 1.21 ms, AlexNet conv1 19.8 against 23.4 ms;
        # VGG conv3_2 at batch 1 the one loss, 48 against 41 ms)
        t_direct *= 0.5
    if not _HAVE_CORE:
        t_direct *= 4
    # FFT: transforms of input, kernel and output, a complex GEMM per frequency
    if all(s == 1 for s in stride) and kk > 1:
        kd = [d * (k - 1) + 1 for k, d in zip(kernel, dilation)]
        f = math.prod(o + k - 1 for o, k in zip(out_spatial, kd))
        logf = max(1.0, math.log2(max(f, 2)))
        flops = 2.5 * f * logf * (n * cin + n * c_out + c_out * cg) + 4 * n * c_out * cg * f
        t_fft = flops * _RATES["fft_flop"] * sc["fft_s_per_flop"] / nt + 3 * over
    else:
        t_fft = math.inf
    t = {"direct": t_direct, "gemm": t_gemm, "fft": t_fft}
    # Winograd: not below 48 output channels per group for 3x3 (each transformed input
    # element meets only C_out/G of them, so the transforms dominate: on 180 timed 3x3
    # layers it never won there, and won 40% of those with 48 or more); 5x5 saves more
    # multiplies (2.8x, not 2.25x): on 60 timed 5x5 layers with 16-40 output channels it
    # won up to 1.34x from 24 on, and the model kept the choices within 1.025x of the
    # fastest engine on average with any threshold from 16 to 40 (1.034x without it).
    # 3x3 also needs 24 input channels per group: each (tile, position) GEMM has K = C_in/G,
    # and below that the transforms dominate (16 -> 64 on 8 x 28^2: Winograd 1.25-2.25 ms,
    # GEMM 0.70 ms, where the model said 0.76 ms; 16 -> 128 1.77 against 1.28; at 24 a tie,
    # at 32 Winograd 1.26 against 1.42)
    five = tuple(kernel)[-1] == 5
    if (cog >= (24 if five else 48) and (five or cg >= 24)
            and _gemm.winograd_serves(dt, kernel, stride)
            and _gemm.winograd_channel_block(c_out, cg, groups, kernel) == c_out):
        t["winograd"] = _winograd_cost(n, cg, c_out, groups, kernel, out_spatial, dilation,
                                       nt) \
            * sc["gemm_s_per_mac_float32"] + over
        # dilated layers: the implicit GEMM skips the kernel rows that read only padding
        # (fci_run), which grow with the dilation, and Winograd computes them: 3x3 d18 on
        # 64^2 (19% such rows) took 28 ms against the GEMM's 23. Priced against Winograd
        # only, and only when dilated (a padding term in the GEMM model, or for every
        # layer, moved other choices the wrong way on held-out layers: a 7x7 map's 10%
        # made 'auto' take a GEMM 2.3x slower)
        share = _pad_rows_share(x_shape[2:], out_spatial, kernel, dilation)
        if any(d > 1 for d in dilation) and share >= 0.03:
            t["winograd"] /= 1 - share
    return t


def _pad_rows_share(x_spatial, out_spatial, kernel, dilation):
    """The share of (output row, kernel row) pairs of a unit-stride problem -- rows over
    every axis but the last -- whose kernel row reads only padding (the implicit GEMM
    skips those: fc_igemm.h's fci_pad_rows_permille), the padding taken as split evenly."""
    keep = 1.0
    for n, o, k, d in list(zip(x_spatial, out_spatial, kernel, dilation))[:-1]:
        lo = ((o - 1) + d * (k - 1) + 1 - n) // 2
        skip = sum(1 for a in range(o) for t in range(k) if not 0 <= a + t * d - lo < n)
        keep *= 1 - skip / max(1, o * k)
    return 1 - keep


def _wino_chains(o, d):
    """Winograd tiles (2 outputs per axis) of each chain along an axis of ``o`` outputs at dilation ``d``
    (every d-th output, cut into pairs: fc_winograd.h's fcw_origins)."""
    return [-(-(-(-(o - r) // d)) // 2) for r in range(min(d, o))]


def _winograd_terms(n, cg, c_out, groups, kernel, out_spatial, dilation, nt):
    """The Winograd engine's work (fc_winograd.h's fc_wino_run, its blocking mirrored), as
    counts priced by the ``wino_*`` rates: GEMM multiply-adds of the 16 (3x3x3: 64) GEMMs
    of (C_out/G padded to 16) x C_in/G x tiles (padded per work item), micro-kernel calls,
    input-transform runs (per input channel and run of up to 8 tiles), output tiles (per
    output channel padded to 16), weight-transform writes (the whole transformed weight
    through memory, or -- few tiles -- one panel at a time in cache). Rates: see
    :func:`_winograd_cost`."""
    nd3 = len(kernel) == 3 and kernel[0] == 3   # F(2x2x2, 3x3x3): 64 positions
    nxi = _gemm.winograd_positions(kernel)
    ty = sum(_wino_chains(out_spatial[-2], dilation[-2]))
    cx = _wino_chains(out_spatial[-1], dilation[-1])
    tz = 1
    if len(out_spatial) == 3:
        tz = sum(_wino_chains(out_spatial[0], dilation[0])) if nd3 else out_spatial[0]
    rows = ty * tz
    tiles = rows * sum(cx)
    runs = rows * sum(-(-c // 8) for c in cx)
    cog = max(1, c_out // groups)
    njt = -(-cog // 16)
    ng = max(1, n * groups)   # (no images: priced as one, the call returns at once)
    tp = -(-tiles // 6) * 6
    # the tile-block form: tiles per item with V (nxi x cg x tb floats) within 384 KiB
    # (F(2x2, 5x5): 864 KiB), at least 4 items per thread when the tiles allow, then
    # near-equal blocks of 6k tiles
    vbytes = (864 << 10) if nxi == 36 else (384 << 10)
    tb = max(6, min(vbytes // (4 * nxi * max(cg, 1)), 96)) // 6 * 6
    if ng * -(-tiles // tb) < 4 * nt:
        tb = max(6, -(-(-(-tiles // -(-4 * nt // ng))) // 6) * 6)
    nblk = -(-tiles // tb)
    items = ng * nblk
    # the weight-panel form when every image's transformed input (VA) fits in cache, or
    # streams fewer bytes than U read by every item (fc_wino_run's rule)
    va = 4 * nxi * ng * cg * tp
    u_group = 4 * nxi * njt * 16 * cg
    panels = (groups * njt >= 2 * nt and va <= (64 << 20)
              and (va <= (2 << 20) or va * njt < items * u_group))
    padded = tp if panels else nblk * (-(-(-(-tiles // nblk)) // 6) * 6)
    weights = groups * njt * 16 * cg * nxi / 16
    return {"wino_mac": ng * nxi * njt * 16 * cg * padded,
            "wino_call": ng * njt * nxi * (padded // 6) * -(-cg // 256),
            "wino_in": ng * cg * runs * nxi / 16,
            "wino_out": ng * njt * 16 * tiles * nxi / 16,
            "wino_weight": 0 if panels else weights,
            "wino_weight_small": weights if panels else 0,
            # bytes streamed past L2: VA once per panel, or U once per item
            "wino_stream": (va * njt if va > (2 << 20) else 0) if panels
            else items * u_group}


def _winograd_cost(n, cg, c_out, groups, kernel, out_spatial, dilation, nt):
    """Predicted seconds of the Winograd engine: :func:`_winograd_terms` at the ``wino_*``
    rates (thread-seconds, split over ``nt`` threads) plus a fixed cost per call."""
    terms = _winograd_terms(n, cg, c_out, groups, kernel, out_spatial, dilation, nt)
    if _gemm.winograd_positions(kernel) == 36:
        # F(2x2, 5x5): its input-transform runs (6x6 patches, priced per position as the
        # 4x4 ones) x0.8 -- of 0.4-1.5 (with an overall factor of 0.9-1.4) the value that
        # chose best on 128 timed 5x5 layers (batch 1-8, 3-256 -> 16-256 channels,
        # 7^2-56^2 maps, groups 1-2, dilation 1-2; 2 threads): the chosen engine 1.011x
        # the fastest on average, 1.23x at worst; on 130 held-out layers 1.010x (1.18x at
        # worst) and 1.112x less time than without Winograd
        terms["wino_in"] *= 0.8
    work = sum(v * _RATES[k] for k, v in terms.items())
    # x1.15: the rates are fitted to measured times (90 timed layers with >= 48 output
    # channels per group: 50 of a random grid -- batch 1-4, 16-512 channels, 7^2-56^2
    # maps, dilation 1-2 -- and 27 ResNet/VGG/Inception-sized 3x3 layers at batch 1, 2, 8;
    # 2 threads), while the GEMM model it is weighed against reads high on these sizes;
    # of 1.0-1.45 the factor that chose best on 40 held-out layers: the chosen engine's
    # time 1.115x less than without Winograd (geo-mean), 1.020x the fastest engine's on
    # average, 1.31x at worst (1.121x and 1.014x with predict's dilation term); on the
    # ResNet/VGG set 1.32x less, 1.003x the fastest
    return 1.15 * (work / nt + _RATES["wino_fixed"])


_plan_mod = None   # fastconv._plan, imported on first use (an import statement per call
                   # was a tenth of a tiny layer's time)


def _memoised(key, compute):
    """``compute()`` once per ``key`` in ``fastconv._plan``'s choice cache (cleared when
    the constants change, e.g. by tune; at most 4096 entries)."""
    global _plan_mod
    if _plan_mod is None:
        try:
            from .. import _plan as _plan_mod
        except ImportError:  # pragma: no cover - planner not available
            return compute()
    cache, lock = _plan_mod._choice_cache, _plan_mod._lock
    hit = cache.get(key)
    if hit is not None:
        return hit
    value = compute()
    with lock:
        if len(cache) >= 4096:
            cache.clear()
        cache[key] = value
    return value


def choose(x_shape, w_shape, out_spatial, stride, dilation, groups, dtype):
    """The engine 'auto' takes: the cheapest by :func:`predict`, memoised per problem."""
    key = ("nn", tuple(x_shape), tuple(w_shape), tuple(out_spatial), tuple(stride),
           tuple(dilation), groups, np.dtype(dtype).str, _config.get_num_threads())

    def cheapest():
        if _gemm.thin_serves(x_shape, w_shape, out_spatial, stride, dtype):
            return "gemm"   # a 1x1 layer on a few pixels: the thin-product kernel
        t = predict(x_shape, w_shape, out_spatial, stride, dilation, groups, dtype)
        return min(t, key=t.get)
    return _memoised(key, cheapest)


def winograd(x, w, out_spatial, stride, dilation, pad, groups, bias=None):
    """Winograd F(2x2, 3x3) / F(2x2, 5x5) (:func:`fastconv.nn._gemm.correlate_winograd`):
    float32 3x3 and 5x5 kernels at unit stride; ValueError for any other problem."""
    if any(s != 1 for s in stride):
        raise ValueError(f"algorithm='winograd' needs stride 1, got stride={tuple(stride)}")
    return _gemm.correlate_winograd(x, w, out_spatial, dilation, pad, groups, bias=bias)


_ENGINES = {"direct": direct, "gemm": _gemm.correlate, "fft": fft, "winograd": winograd}


def correlate(x, w, out_spatial, stride, dilation, pad, groups, algorithm="auto", xp=np,
              bias=None):
    """Forward correlation by ``algorithm`` (contract of ``fastconv._core.correlate``), plus
    ``bias`` (C_out,) of the computation dtype when given (fused into the GEMM engine).

    ``xp`` is the array module the front detected; CuPy arrays go to the GPU engines
    (:mod:`fastconv.nn._gpu`, with their own, simpler 'auto' choice)."""
    if xp is not np:
        from . import _gpu
        out = _gpu.correlate(xp, x, w, out_spatial, stride, dilation, pad, groups,
                             algorithm)
    elif w.shape[1] == 0:
        # no input channels: every output is an empty sum (the engines' reshapes and cost
        # terms assume at least one)
        out = np.zeros(x.shape[:1] + w.shape[:1] + tuple(out_spatial), dtype=x.dtype)
    else:
        if algorithm == "auto":
            algorithm = choose(x.shape, w.shape, out_spatial, stride, dilation, groups,
                               x.dtype)
        if algorithm in ("gemm", "direct", "winograd"):  # they add the bias themselves
            return _ENGINES[algorithm](x, w, out_spatial, stride, dilation, pad, groups,
                                       bias=bias)
        out = _ENGINES[algorithm](x, w, out_spatial, stride, dilation, pad, groups)
    if bias is not None:
        out += bias.reshape((-1,) + (1,) * (out.ndim - 2))
    return out


def transposed_weight(w, groups):
    """Weight of the correlation equal to the adjoint: swap in/out per group, flip taps."""
    c_out, cg = w.shape[:2]
    kernel = w.shape[2:]
    nd = len(kernel)
    cog = c_out // groups
    wt = w.reshape((groups, cog, cg) + tuple(kernel)).swapaxes(1, 2)
    wt = wt.reshape((groups * cg, cog) + tuple(kernel))
    return np.ascontiguousarray(wt[(Ellipsis, *[slice(None, None, -1)] * nd)])


def _axis_phases(x_len, k, s, d, p):
    """The output phases of one axis of a transposed convolution (stride ``s``).

    The adjoint writes ``x[i*s + t*d - p] += y[i] w[t]``. Output ``o = r + s*a`` of phase
    ``r`` receives the taps ``t`` with ``(r + p - t*d) % s == 0``, each from
    ``y[a + e_t]``, ``e_t = (r + p - t*d) // s``. Those taps are ``s/g`` apart
    (``g = gcd(d, s)``) and their ``e_t`` are ``d/g`` apart, so phase ``r`` is a stride-1
    correlation of ``y`` with the taps in descending order, dilation ``d/g`` and padding
    ``-e`` of the last tap. Returns ``[(r, length, taps, dilation, pad)]`` for the phases
    that have outputs (``taps`` empty: that phase is all zeros)."""
    g = math.gcd(d, s)
    out = []
    for r in range(min(s, x_len)):
        length = len(range(r, x_len, s))
        taps = [t for t in range(k - 1, -1, -1) if (r + p - t * d) % s == 0]
        pad = -((r + p - taps[0] * d) // s) if taps else 0
        out.append((r, length, taps, d // g, pad))
    return out


#: 'auto' takes the phases only when predicted this much cheaper than the alternatives.
#: The cost model sees neither the phases' interleaving writes nor col2im's patch matrix;
#: a per-element interleave term instead of this margin (tried, at 1.5 ns from writes
#: measured at 0.46-2.9 ns) made 'auto' pick col2im for a depthwise 3x3/2 layer whose
#: phases measured 2.7x faster (1.64 vs 4.46 ms, 2 threads)
_PHASES_MARGIN = 1.25


def _phases(x_spatial, kernel, stride, dilation, pad):
    """The output phases of a strided transposed convolution that some tap reaches, as
    ``(offsets, taps, lengths, dilations, pads)`` (per axis, see :func:`_axis_phases`), and
    whether some phase is reached by none (its outputs are zeros)."""
    axes = [_axis_phases(*a) for a in zip(x_spatial, kernel, stride, dilation, pad)]
    out, empty = [], False
    for combo in itertools.product(*axes):
        if any(not a[2] for a in combo):
            empty = True
            continue
        out.append(tuple(tuple(a[i] for a in combo) for i in (0, 2, 1, 3, 4)))
    return out, empty


def _adjoint_phases(y, w, x_spatial, stride, dilation, pad, groups, algorithm):
    """Strided transposed convolution as ``prod(stride)`` stride-1 correlations of ``y``,
    one per output phase (sub-pixel decomposition): no zero stuffing, no col2im, every
    multiply-add one that the transposed convolution needs. Each phase is a forward
    problem for ``algorithm`` ('auto': the cheapest engine of that phase)."""
    n, c_out = y.shape[:2]
    nd = y.ndim - 2
    kernel = tuple(w.shape[2:])
    cog, cg = c_out // groups, w.shape[1]
    # forward-layout weight of the adjoint correlation: (G*cg, cog, *kernel), taps unflipped
    # (contiguous once: each phase's np.take on the swapped view had cost 1.4 ms for L13's
    # 0.5 MiB weight, 11 ms of the 4 phases' 22)
    wsw = np.ascontiguousarray(w.reshape((groups, cog, cg) + kernel).swapaxes(1, 2).reshape(
        (groups * cg, cog) + kernel))
    phases, empty = _phases(x_spatial, kernel, stride, dilation, pad)
    y = np.ascontiguousarray(y)
    x = (np.zeros if empty else np.empty)((n, groups * cg) + tuple(x_spatial), dtype=y.dtype)
    if x.size == 0:
        return x
    for offsets, taps, lengths, dils, pads in phases:
        wr = wsw[(Ellipsis,) + np.ix_(*taps)]     # the phase's taps, one gather
        sub = correlate(y, np.ascontiguousarray(wr), lengths, (1,) * nd, dils, pads, groups,
                        algorithm)
        x[(Ellipsis, *[slice(o, None, st) for o, st in zip(offsets, stride)])] = sub
    return x


def _phases_cost(y_shape, w_shape, x_spatial, stride, dilation, pad, groups, dtype):
    """Predicted seconds of :func:`_adjoint_phases` with each phase's cheapest engine."""
    n, c_out = y_shape[:2]
    cg = w_shape[1]
    phases, _ = _phases(x_spatial, tuple(w_shape[2:]), stride, dilation, pad)
    total = 0.0
    for _, taps, lengths, dils, _ in phases:
        t = predict((n, c_out) + tuple(y_shape[2:]),
                    (cg * groups, c_out // groups) + tuple(len(t) for t in taps), lengths,
                    (1,) * len(taps), dils, groups, dtype)
        total += min(t.values()) + _PHASE_CALL_S
    return total


#: Fixed cost per phase of :func:`_adjoint_phases` beyond its engine's predicted time (its
#: own call, the weight gather, the interleaving write, and small phases' engines running
#: below their rates). Fitted on 100 random strided transposed float32 layers (1-8 images,
#: 8-256 -> 8-128 channels, 7^2-28^2, kernels 2-5, stride 2-3, groups 1-2): the chosen
#: route within 1.043x -> 1.018x of the faster one (geo-mean), 1.053x -> 1.014x on 100 held
#: out (20-40 us per phase gave 1.026-1.042x)
_PHASE_CALL_S = 80e-6


#: The GEMM route of a strided transposed convolution (:func:`fastconv.nn._gemm.correlate_adjoint`)
#: writes a patch matrix of N*C_in*K*O elements (K kernel taps, O = prod(y spatial)) and
#: col2im reads and scatters it back: per element and thread, the matrix's writes bound the
#: 1x1 GEMM that makes it when its reduction (C_out/groups) is short, and col2im costs on
#: top. Measured (float32, 2 threads, 8 images): 16 -> 16 7x7/2 on 64^2, GEMM 16.5 ms
#: (0.64 ns per element) + col2im 11.5 ms (0.45 ns), 28-40 ms in all, where the forward
#: problem's model had said 5.5 ms and the phases (11 ms) were passed over; 256 -> 128
#: 4x4/2 on 16^2 (L13): GEMM 11.3 ms compute-bound + col2im 1.25 ms (0.30 ns).
_COLS_WRITE_S = 1.2e-9
_COL2IM_S = 0.7e-9
#: at unit stride the scatter is taken only when predicted this much cheaper than the
#: forward problem's best engine
_COL2IM_MARGIN = 1.25


def _adjoint_gemm_cost(y_shape, w_shape, groups, dtype):
    """Predicted seconds of the GEMM + col2im route of a transposed convolution: the 1x1
    problem that makes the patch matrix (or that matrix's writes, whichever is longer),
    then col2im's pass over it."""
    n, c_out = y_shape[:2]
    cg = w_shape[1]
    kk = math.prod(w_shape[2:])
    cog = max(1, c_out // groups)
    py = math.prod(y_shape[2:])
    nt = _config.get_num_threads()
    t = predict((n, c_out, py), (groups * cg * kk, cog, 1), (py,), (1,), (1,), groups,
                dtype)["gemm"]
    cols = n * groups * cg * kk * py * (np.dtype(dtype).itemsize / 4)
    return max(t, cols * _COLS_WRITE_S / nt) + cols * _COL2IM_S / nt


def choose_adjoint(y_shape, w_shape, x_spatial, stride, dilation, pad, groups, dtype):
    """What 'auto' takes for a transposed convolution, by predicted time (memoised like
    :func:`choose`). Strided: 'gemm' (GEMM + col2im), 'fft' (the zero-stuffed problem) or
    'phases' (one stride-1 problem per output phase, each at its cheapest engine). Unit
    stride: 'col2im' (GEMM + col2im) or the engine of the equivalent forward correlation
    ('direct', 'gemm' or 'fft')."""
    key = ("nn-adjoint", tuple(y_shape), tuple(w_shape), tuple(x_spatial), tuple(stride),
           tuple(dilation), tuple(pad), groups, np.dtype(dtype).str,
           _config.get_num_threads())
    return _memoised(key, lambda: _cheapest_adjoint(y_shape, w_shape, x_spatial, stride,
                                                    dilation, pad, groups, dtype))


def _cheapest_adjoint(y_shape, w_shape, x_spatial, stride, dilation, pad, groups, dtype):
    """:func:`choose_adjoint` without the memo."""
    # The phases pay prod(stride) calls and an interleaving copy: measured (2 threads) they
    # lose to col2im when every phase is a dense GEMM (L13 0.86x, DCGAN 4x4 -> 8x8 0.53x)
    # and win when their phases go direct (depthwise 3x3/2 2.45x, 3-D 4^3/2 1.16x) or when
    # col2im's patch matrix is large against the work (16 -> 16 7x7/2: 3-4x), hence the
    # margin and the patch-matrix terms of _adjoint_gemm_cost.
    nd = len(y_shape) - 2
    n, c_out = y_shape[:2]
    kernel = tuple(w_shape[2:])
    ws = (w_shape[1] * groups, c_out // groups) + kernel
    if all(s == 1 for s in stride):
        # the forward correlation of y with the flipped weight over the output, or the
        # scatter (GEMM + col2im): where the kernel is large against y, most of the
        # forward problem's taps read its padding (128 -> 1 7^3 on 8^3: 5.4x the
        # multiply-adds of the scatter)
        # (col2im only when predicted 1.25x cheaper: a 96 -> 128 3^3 layer on 2 x 8^3,
        # predicted 3.9 ms against the forward GEMM's 4.5, took 5.1 against 3.9)
        t = predict(y_shape, ws, x_spatial, (1,) * nd, dilation, groups, dtype)
        t["col2im"] = _COL2IM_MARGIN * _adjoint_gemm_cost(y_shape, w_shape, groups, dtype)
    else:
        t = {"gemm": _adjoint_gemm_cost(y_shape, w_shape, groups, dtype),
             "fft": predict((n, c_out) + tuple(x_spatial), ws, x_spatial, (1,) * nd,
                            dilation, groups, dtype)["fft"],
             "phases": _PHASES_MARGIN * _phases_cost(y_shape, w_shape, x_spatial, stride,
                                                     dilation, pad, groups, dtype)}
    return min(t, key=t.get)


def correlate_adjoint(y, w, x_spatial, stride, dilation, pad, groups, algorithm="auto",
                      xp=np):
    """Adjoint of :func:`correlate` in ``x`` (transposed convolution) by ``algorithm``.

    At unit stride it is the forward correlation of ``y`` with the flipped,
    channel-transposed weight (any engine, 'auto' choosing as for a forward layer).
    Strided: 'gemm' is GEMM + col2im; 'direct' computes each of the ``prod(stride)``
    output phases as a stride-1 direct correlation of ``y`` (:func:`_adjoint_phases`);
    'fft' correlates the zero-stuffed ``y`` with that weight; 'auto' takes the cheapest
    of those three and the phases with each phase's own cheapest engine. CuPy arrays (``xp`` not numpy) go to
    :mod:`fastconv.nn._gpu`.
    """
    if xp is not np:
        from . import _gpu
        return _gpu.correlate_adjoint(xp, y, w, x_spatial, stride, dilation, pad, groups,
                                      algorithm)
    if y.shape[1] == 0 or w.shape[1] == 0:   # nothing to scatter, or no output channels
        return np.zeros(y.shape[:1] + (w.shape[1] * groups,) + tuple(x_spatial),
                        dtype=y.dtype)
    if not np.isfinite(w).all():
        # a NaN/Inf weight tap: torch scatters each y sample over the taps (GEMM + col2im
        # here, the same sum), never multiplying the tap by padding or stuffed zeros, which
        # every correlation form does (NaN over the whole output channel). torch's float32
        # (oneDNN) itself differs from its float64 there; this follows the float64 one.
        with np.errstate(invalid="ignore", over="ignore"):    # torch does not warn
            return _gemm.correlate_adjoint(y, w, x_spatial, stride, dilation, pad, groups)
    nd = y.ndim - 2
    kernel = w.shape[2:]
    unit = all(s == 1 for s in stride)
    if unit:
        # at unit stride the adjoint is a forward correlation of y with the flipped,
        # channel-transposed weight: every forward engine serves it at forward speed;
        # 'auto' also weighs the scatter, which skips the taps that read padding
        if algorithm == "auto":
            algorithm = choose_adjoint(y.shape, w.shape, x_spatial, stride, dilation, pad,
                                       groups, y.dtype)
            if algorithm == "col2im":
                return _gemm.correlate_adjoint(y, w, x_spatial, stride, dilation, pad, groups)
        wt = transposed_weight(w, groups)
        pad2 = tuple(d * (k - 1) - p for d, k, p in zip(dilation, kernel, pad))
        return correlate(np.ascontiguousarray(y), wt, tuple(x_spatial), (1,) * nd, dilation,
                         pad2, groups, algorithm)
    if algorithm == "auto":
        algorithm = choose_adjoint(y.shape, w.shape, x_spatial, stride, dilation, pad, groups,
                                   y.dtype)
        if algorithm == "phases":
            return _adjoint_phases(y, w, x_spatial, stride, dilation, pad, groups, "auto")
    if algorithm == "gemm":
        return _gemm.correlate_adjoint(y, w, x_spatial, stride, dilation, pad, groups)
    if algorithm == "direct":
        return _adjoint_phases(y, w, x_spatial, stride, dilation, pad, groups, "direct")
    # (a non-finite weight went to the scatter above; a NaN/Inf in y meets only finite
    # taps, so the zero-stuffed correlation below keeps it local, as fft() does)
    n, c_out = y.shape[:2]
    ys = np.zeros((n, c_out) + tuple((o - 1) * s + 1 for o, s in zip(y.shape[2:], stride)),
                  dtype=y.dtype)
    ys[(Ellipsis, *[slice(None, None, s) for s in stride])] = y
    wt = transposed_weight(w, groups)
    pad2 = tuple(d * (k - 1) - p for d, k, p in zip(dilation, kernel, pad))
    return _ENGINES[algorithm](ys, wt, tuple(x_spatial), (1,) * nd, dilation, pad2, groups)
