"""A ResNet-50 bottleneck block (1x1 -> 3x3 -> 1x1, batch norm, projection shortcut) with
fastconv.nn + NumPy, checked against torchvision-style torch modules with the same weights.
"""
import numpy as np

import fastconv.nn as fnn
from _torch_check import max_error_vs_torch  # noqa: E402  (examples run from this folder)

EPS = 1e-5


def batch_norm(x, p, name):
    """Inference-mode batch norm with running statistics."""
    scale = p[name + ".weight"] / np.sqrt(p[name + ".running_var"] + EPS)
    shift = p[name + ".bias"] - p[name + ".running_mean"] * scale
    return x * scale[:, None, None] + shift[:, None, None]


def init_params(rng, cin=64, width=32, cout=128):
    p = {}

    def conv(name, co, ci, k):
        p[name + ".weight"] = (rng.standard_normal((co, ci, k, k)) /
                               np.sqrt(ci * k * k)).astype(np.float32)

    def bn(name, c):
        p[name + ".weight"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
        p[name + ".bias"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        p[name + ".running_mean"] = rng.uniform(-0.2, 0.2, c).astype(np.float32)
        p[name + ".running_var"] = rng.uniform(0.5, 1.5, c).astype(np.float32)
    conv("conv1", width, cin, 1), bn("bn1", width)
    conv("conv2", width, width, 3), bn("bn2", width)
    conv("conv3", cout, width, 1), bn("bn3", cout)
    conv("downsample.0", cout, cin, 1), bn("downsample.1", cout)
    return p


def forward(p, x, stride=2):
    relu = lambda t: np.maximum(t, 0)  # noqa: E731
    out = relu(batch_norm(fnn.pointwise_conv2d(x, p["conv1.weight"]), p, "bn1"))
    out = relu(batch_norm(fnn.conv2d(out, p["conv2.weight"], stride=stride, padding=1),
                          p, "bn2"))
    out = batch_norm(fnn.pointwise_conv2d(out, p["conv3.weight"]), p, "bn3")
    identity = batch_norm(fnn.pointwise_conv2d(x, p["downsample.0.weight"], stride=stride),
                          p, "downsample.1")
    return relu(out + identity)


def torch_model(cin=64, width=32, cout=128, stride=2):
    from torch import nn

    class Bottleneck(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
            self.bn1 = nn.BatchNorm2d(width)
            self.conv2 = nn.Conv2d(width, width, 3, stride, 1, bias=False)
            self.bn2 = nn.BatchNorm2d(width)
            self.conv3 = nn.Conv2d(width, cout, 1, bias=False)
            self.bn3 = nn.BatchNorm2d(cout)
            self.relu = nn.ReLU()
            self.downsample = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                            nn.BatchNorm2d(cout))

        def forward(self, x):
            out = self.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.bn2(self.conv2(out)))
            out = self.bn3(self.conv3(out))
            return self.relu(out + self.downsample(x))
    return Bottleneck()


def main(seed=0):
    rng = np.random.default_rng(seed)
    p = init_params(rng)
    x = rng.standard_normal((2, 64, 28, 28)).astype(np.float32)
    ours = forward(p, x)
    return max_error_vs_torch("ResNet bottleneck", ours, p, x, torch_model)


if __name__ == "__main__":
    main()
