"""The convolution as an explicit sparse matrix (``conv_matrix``)."""
import math

import numpy as np

from .._config import check_alloc
from . import _shapes


def conv_matrix(weight, input_shape, stride=1, padding=0, dilation=1, groups=1):
    """The sparse matrix ``C`` of a convolution: ``conv(x) == C @ x.ravel()``.

    ``C`` maps one (unbatched) input sample ``x`` of shape ``input_shape`` to its output
    (PyTorch semantics, zero padding), so ``C.T`` is the transposed convolution:
    ``C.T @ y.ravel() == conv_transpose(y, weight, ...)`` with the ``output_padding`` that
    gives back ``input_shape``. Handy for teaching, for analysis (singular values,
    Lipschitz bounds) and for tests.

    Parameters
    ----------
    weight : array_like, shape (C_out, C_in / groups, *kernel)
        1-D, 2-D or 3-D convolution weight (host memory: a CuPy array raises TypeError).
    input_shape : tuple of ints
        ``(C_in, *spatial)`` of one sample.
    stride, dilation : int or tuple of ints, default 1
    padding : int, tuple of ints, 'valid' or 'same', default 0
    groups : int, default 1

    Returns
    -------
    scipy.sparse.csr_matrix, shape (C_out * prod(out_spatial), C_in * prod(spatial))
        With the weight's dtype (float64 for integers; float32 for float16, which
        scipy.sparse does not compute in).

    Raises
    ------
    TypeError
        For a CuPy ``weight`` (the matrix lives in host memory; pass ``weight.get()``).

    Notes
    -----
    Cost: ``C_out * (C_in / groups) * prod(out) * prod(kernel)`` stored entries (fewer at
    the borders) -- the MAC count of the convolution it represents.

    See Also
    --------
    conv2d, conv_transpose2d

    Examples
    --------
    >>> import numpy as np
    >>> from fastconv.nn import conv_matrix, conv1d
    >>> w = np.array([[[1.0, 2.0]]])
    >>> C = conv_matrix(w, (1, 3), padding=1)
    >>> C.toarray()
    array([[2., 0., 0.],
           [1., 2., 0.],
           [0., 1., 2.],
           [0., 0., 1.]])
    >>> x = np.array([[1.0, 2.0, 3.0]])
    >>> np.allclose(C @ x.ravel(), conv1d(x, w, padding=1).ravel())
    True
    """
    import scipy.sparse

    from .. import _cupy
    if _cupy.get_array_module(weight, names=("weight",)) is not np:
        raise TypeError("conv_matrix builds a scipy.sparse matrix in host memory and does "
                        "not take CuPy arrays; pass weight.get()")
    w = _shapes.as_array(weight, "weight")
    if w.ndim < 3:
        raise ValueError(f"conv_matrix: weight must be (C_out, C_in/groups, *kernel), got "
                         f"shape {w.shape}")
    nd = w.ndim - 2
    shape = tuple(_shapes._as_int(s, "input_shape") for s in input_shape)
    if len(shape) != nd + 1:
        raise ValueError(f"conv_matrix: input_shape must be (C_in, *spatial) with {nd} "
                         f"spatial axes, got {shape}")
    cdt, _ = _shapes.dtypes(w)
    if w.dtype.kind == "f" and w.dtype.itemsize == 2:
        cdt = np.dtype(np.float32)
    dummy = np.lib.stride_tricks.as_strided(np.zeros(1), (1,) + shape, (0,) * (nd + 2))
    stride, dilation, lo, _, groups, out = _shapes.conv_params(
        dummy, w, stride, padding, dilation, groups, "zeros", nd, "conv_matrix")
    c_out, cg = w.shape[:2]
    c_in = shape[0]
    kernel = w.shape[2:]
    spatial = shape[1:]
    # memory, before anything is allocated: the index grids over (output position, tap),
    # then per stored entry its value, row and column (COO), and the CSR copy of them
    pairs = float(math.prod(out)) * float(math.prod(kernel))
    entries = float(c_out) * float(cg) * pairs
    check_alloc(pairs * 8 * (3 * nd + 3) + entries * (cdt.itemsize + 16) * 2,
                f"conv_matrix of a {tuple(w.shape)} weight on input {shape} "
                f"({entries:.3g} stored entries)")
    # spatial pattern: for every (o, k), the input position o*s + k*d - p (if inside)
    grids = np.meshgrid(*[np.arange(o) for o in out], *[np.arange(k) for k in kernel],
                        indexing="ij")
    pos, valid = [], np.ones(grids[0].shape, dtype=bool)
    for i in range(nd):
        p = grids[i] * stride[i] + grids[nd + i] * dilation[i] - lo[i]
        valid &= (p >= 0) & (p < spatial[i])
        pos.append(p)
    rows_sp = np.ravel_multi_index([g[valid] for g in grids[:nd]], out) if nd else None
    cols_sp = np.ravel_multi_index([p[valid] for p in pos], spatial)
    kidx = np.ravel_multi_index([g[valid] for g in grids[nd:]], kernel)
    po, ps, kk = math.prod(out), math.prod(spatial), math.prod(kernel)
    co = np.arange(c_out)[:, None, None]
    ci = np.arange(cg)[None, :, None]
    grp = co // (c_out // groups)
    rows = co * po + rows_sp[None, None, :]
    cols = (grp * cg + ci) * ps + cols_sp[None, None, :]
    data = w.reshape(c_out, cg, kk).astype(cdt)[:, :, kidx]
    rows, cols = np.broadcast_arrays(rows, cols, data)[:2]
    return scipy.sparse.csr_matrix((data.ravel(), (rows.ravel(), cols.ravel())),
                                   shape=(c_out * po, c_in * ps))
