"""A MobileNetV2 inverted-residual block (1x1 expand, 3x3 depthwise, 1x1 linear projection,
ReLU6, residual) with fastconv.nn + NumPy, checked against a torch module."""
import numpy as np

import fastconv.nn as fnn
from _torch_check import max_error_vs_torch  # noqa: E402  (examples run from this folder)

from resnet_bottleneck import batch_norm  # noqa: E402  (examples run from this folder)


def relu6(x):
    return np.clip(x, 0, 6)


def init_params(rng, c=24, expand=6):
    h = c * expand
    p = {}

    def bn(name, n):
        p[name + ".weight"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
        p[name + ".bias"] = rng.uniform(-0.2, 0.2, n).astype(np.float32)
        p[name + ".running_mean"] = rng.uniform(-0.2, 0.2, n).astype(np.float32)
        p[name + ".running_var"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    p["conv.0.weight"] = (rng.standard_normal((h, c, 1, 1)) / np.sqrt(c)).astype(np.float32)
    bn("conv.1", h)
    p["conv.3.weight"] = (rng.standard_normal((h, 1, 3, 3)) / 3).astype(np.float32)
    bn("conv.4", h)
    p["conv.6.weight"] = (rng.standard_normal((c, h, 1, 1)) / np.sqrt(h)).astype(np.float32)
    bn("conv.7", c)
    return p


def forward(p, x):
    out = relu6(batch_norm(fnn.pointwise_conv2d(x, p["conv.0.weight"]), p, "conv.1"))
    out = relu6(batch_norm(fnn.depthwise_conv2d(out, p["conv.3.weight"], padding=1), p,
                           "conv.4"))
    out = batch_norm(fnn.pointwise_conv2d(out, p["conv.6.weight"]), p, "conv.7")
    return x + out


def torch_model(c=24, expand=6):
    from torch import nn
    h = c * expand

    class InvertedResidual(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Sequential(
                nn.Conv2d(c, h, 1, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, h, 3, 1, 1, groups=h, bias=False), nn.BatchNorm2d(h), nn.ReLU6(),
                nn.Conv2d(h, c, 1, bias=False), nn.BatchNorm2d(c))

        def forward(self, x):
            return x + self.conv(x)
    return InvertedResidual()


def main(seed=0):
    rng = np.random.default_rng(seed)
    p = init_params(rng)
    x = rng.standard_normal((2, 24, 28, 28)).astype(np.float32)
    ours = forward(p, x)
    return max_error_vs_torch("MobileNetV2 block", ours, p, x, torch_model)


if __name__ == "__main__":
    main()
