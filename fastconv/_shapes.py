"""Convolution arithmetic for the signal front: modes as windows of the full convolution.

Every scipy.signal mode is a window ``[start, start + shape)`` of the *full* linear
convolution (length ``n1 + n2 - 1`` per axis). Engines compute windows, so the front
never crops after the fact.
"""
import operator

import numpy as np

MODES = ("full", "same", "valid")


def check_mode(mode):
    if not isinstance(mode, str) or mode not in MODES:
        # scipy's wording (tests match on it), then what we got
        raise ValueError(f"acceptable mode flags are 'valid', 'same', or 'full'; got mode={mode!r}")
    return mode


def inputs_swap_needed(mode, shape1, shape2, axes=None):
    """scipy's rule: for 'valid' one input must be at least as large as the other in every
    axis; return True when in2 is the larger one (the inputs are then swapped)."""
    if mode != "valid":
        return False
    if not shape1:
        return False
    if axes is None:
        axes = range(len(shape1))
    ok1 = all(shape1[i] >= shape2[i] for i in axes)
    ok2 = all(shape2[i] >= shape1[i] for i in axes)
    if not (ok1 or ok2):
        raise ValueError(
            "For 'valid' mode, one must be at least as large as the other in every "
            f"dimension; got shapes {tuple(shape1)} and {tuple(shape2)}")
    return not ok1


def window(mode, n1, n2):
    """(start, length) of ``mode`` in the full convolution of lengths n1 (in1) and n2."""
    full = n1 + n2 - 1
    if mode == "full":
        return 0, full
    if mode == "same":
        return (full - n1) // 2, n1
    # valid
    length = abs(n1 - n2) + 1
    return min(n1, n2) - 1, length


def correlation_lags(in1_len, in2_len, mode="full"):
    """Lag indices of a 1-D cross-correlation (same as scipy.signal.correlation_lags).

    Examples
    --------
    >>> from fastconv import correlation_lags
    >>> correlation_lags(3, 2)
    array([-1,  0,  1,  2])
    """
    def length(name, v):
        if isinstance(v, (bool, np.bool_)):
            raise TypeError(f"{name} must be an int, got {type(v).__name__}")
        try:
            v = operator.index(v)         # ints, numpy integers, 0-d integer arrays
        except TypeError:
            raise TypeError(f"{name} must be an int, got {type(v).__name__}") from None
        if v < 0:
            raise ValueError(f"{name} must be non-negative, got {v}")
        return v
    in1_len, in2_len = length("in1_len", in1_len), length("in2_len", in2_len)
    if mode == "full":
        lags = np.arange(-in2_len + 1, in1_len)
    elif mode == "same":
        lags = np.arange(-in2_len + 1, in1_len)
        mid = lags.size // 2
        lag_bound = in1_len // 2
        if in1_len % 2 == 0:
            lags = lags[(mid - lag_bound):(mid + lag_bound)]
        else:
            lags = lags[(mid - lag_bound):(mid + lag_bound) + 1]
    elif mode == "valid":
        lag_bound = in1_len - in2_len
        if lag_bound >= 0:
            lags = np.arange(lag_bound + 1)
        else:
            lags = np.arange(lag_bound, 1)
    else:
        raise ValueError(f"Mode {mode} is invalid: mode must be 'full', 'same' or 'valid'")
    return lags
