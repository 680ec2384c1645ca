"""Train a LeNet-5-style network on scikit-learn's 8x8 digits with fastconv.nn only.

Forward: :func:`fastconv.nn.conv2d`; backward: :func:`fastconv.nn.grad.conv2d_input` and
:func:`fastconv.nn.grad.conv2d_weight`; ReLU, max-pooling, the linear layers, softmax
cross-entropy and Adam are written out in NumPy. No autograd anywhere.

Run: ``python examples/train_lenet_digits.py`` (a few seconds; > 95 % test accuracy).
"""
import time

import numpy as np

import fastconv.nn as fnn
from fastconv.nn import grad


def load_data(seed=0):
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 16.0).astype(np.float32)[:, None]           # (1797, 1, 8, 8)
    y = d.target.astype(np.int64)
    idx = np.random.default_rng(seed).permutation(len(y))
    cut = int(0.8 * len(y))
    return x[idx[:cut]], y[idx[:cut]], x[idx[cut:]], y[idx[cut:]]


def init_params(rng):
    def he(*shape):
        return (rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))).astype(
            np.float32)
    return {"c1": he(6, 1, 3, 3), "b1": np.zeros(6, np.float32),
            "c2": he(16, 6, 3, 3), "b2": np.zeros(16, np.float32),
            "f1": he(120, 64), "g1": np.zeros(120, np.float32),
            "f2": he(84, 120), "g2": np.zeros(84, np.float32),
            "f3": he(10, 84), "g3": np.zeros(10, np.float32)}


def maxpool2(x):
    """2x2 max-pooling; returns the output and the argmax mask for the backward pass."""
    n, c, h, w = x.shape
    v = x.reshape(n, c, h // 2, 2, w // 2, 2)
    out = v.max(axis=(3, 5))
    mask = v == out[:, :, :, None, :, None]
    mask &= np.cumsum(np.cumsum(mask, axis=3), axis=5) == 1   # one winner per window
    return out, mask


def maxpool2_backward(g, mask):
    n, c, h, _, w, _ = mask.shape
    return (mask * g[:, :, :, None, :, None]).reshape(n, c, 2 * h, 2 * w)


def forward(p, x):
    """Logits and the cache the backward pass needs.

    conv3x3(1->6, pad 1) - ReLU - maxpool2 - conv3x3(6->16, pad 1) - ReLU - maxpool2 -
    fc(64->120) - ReLU - fc(120->84) - ReLU - fc(84->10).
    """
    a1 = fnn.conv2d(x, p["c1"], p["b1"], padding=1)
    r1 = np.maximum(a1, 0)
    m1, k1 = maxpool2(r1)
    a2 = fnn.conv2d(m1, p["c2"], p["b2"], padding=1)
    r2 = np.maximum(a2, 0)
    m2, k2 = maxpool2(r2)
    h0 = m2.reshape(len(x), -1)
    h1 = np.maximum(h0 @ p["f1"].T + p["g1"], 0)
    h2 = np.maximum(h1 @ p["f2"].T + p["g2"], 0)
    logits = h2 @ p["f3"].T + p["g3"]
    return logits, (x, a1, m1, k1, a2, k2, m2.shape, h0, h1, h2)


def backward(p, cache, dlogits):
    x, a1, m1, k1, a2, k2, m2_shape, h0, h1, h2 = cache
    g = {"f3": dlogits.T @ h2, "g3": dlogits.sum(0)}
    d = (dlogits @ p["f3"]) * (h2 > 0)
    g["f2"], g["g2"] = d.T @ h1, d.sum(0)
    d = (d @ p["f2"]) * (h1 > 0)
    g["f1"], g["g1"] = d.T @ h0, d.sum(0)
    d = (d @ p["f1"]).reshape(m2_shape)
    d = maxpool2_backward(d, k2) * (a2 > 0)
    g["c2"] = grad.conv2d_weight(m1, p["c2"].shape, d, padding=1)
    g["b2"] = d.sum(axis=(0, 2, 3))
    d = grad.conv2d_input(m1.shape, p["c2"], d, padding=1)
    d = maxpool2_backward(d, k1) * (a1 > 0)
    g["c1"] = grad.conv2d_weight(x, p["c1"].shape, d, padding=1)
    g["b1"] = d.sum(axis=(0, 2, 3))
    return g


def softmax_xent(logits, y):
    z = logits - logits.max(axis=1, keepdims=True)
    e = np.exp(z)
    prob = e / e.sum(axis=1, keepdims=True)
    loss = -np.log(prob[np.arange(len(y)), y] + 1e-12).mean()
    d = prob
    d[np.arange(len(y)), y] -= 1
    return loss, d / len(y)


def train(epochs=15, batch=32, lr=2e-3, seed=0, verbose=True):
    """Train with Adam; return (test accuracy, seconds)."""
    xtr, ytr, xte, yte = load_data(seed)
    rng = np.random.default_rng(seed)
    p = init_params(rng)
    m = {k: np.zeros_like(v) for k, v in p.items()}
    v = {k: np.zeros_like(w) for k, w in p.items()}
    b1, b2, step = 0.9, 0.999, 0
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(ytr))
        total = 0.0
        for i in range(0, len(order), batch):
            idx = order[i:i + batch]
            logits, cache = forward(p, xtr[idx])
            loss, dlogits = softmax_xent(logits, ytr[idx])
            total += loss * len(idx)
            g = backward(p, cache, dlogits.astype(np.float32))
            step += 1
            for k in p:
                m[k] = b1 * m[k] + (1 - b1) * g[k]
                v[k] = b2 * v[k] + (1 - b2) * g[k] ** 2
                mh, vh = m[k] / (1 - b1 ** step), v[k] / (1 - b2 ** step)
                p[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
        acc = float((forward(p, xte)[0].argmax(1) == yte).mean())
        if verbose:
            print(f"epoch {epoch + 1:2d}  loss {total / len(ytr):.4f}  test accuracy "
                  f"{acc:.3f}")
    return acc, time.perf_counter() - t0


def main():
    acc, secs = train()
    print(f"test accuracy {acc:.3f} after {secs:.1f} s")
    return acc


if __name__ == "__main__":
    main()
