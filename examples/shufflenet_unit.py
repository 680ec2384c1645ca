"""A ShuffleNet (v1) unit: grouped 1x1 conv + channel shuffle (fused), 3x3 depthwise,
grouped 1x1 conv, residual, with fastconv.nn + NumPy, checked against a torch module."""
import numpy as np

import fastconv.nn as fnn
from _torch_check import max_error_vs_torch  # noqa: E402  (examples run from this folder)

from resnet_bottleneck import batch_norm  # noqa: E402  (examples run from this folder)


def init_params(rng, c=240, groups=3):
    mid = c // 4
    p = {}

    def bn(name, n):
        p[name + ".weight"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
        p[name + ".bias"] = rng.uniform(-0.2, 0.2, n).astype(np.float32)
        p[name + ".running_mean"] = rng.uniform(-0.2, 0.2, n).astype(np.float32)
        p[name + ".running_var"] = rng.uniform(0.5, 1.5, n).astype(np.float32)
    p["gconv1.weight"] = (rng.standard_normal((mid, c // groups, 1, 1)) /
                          np.sqrt(c // groups)).astype(np.float32)
    bn("bn1", mid)
    p["dwconv.weight"] = (rng.standard_normal((mid, 1, 3, 3)) / 3).astype(np.float32)
    bn("bn2", mid)
    p["gconv2.weight"] = (rng.standard_normal((c, mid // groups, 1, 1)) /
                          np.sqrt(mid // groups)).astype(np.float32)
    bn("bn3", c)
    return p


def forward(p, x, groups=3):
    # batch norm is per channel, so it commutes with the shuffle once its parameters are
    # shuffled too; here we shuffle inside the grouped GEMM and normalise afterwards
    shuffled = {k: fnn.channel_shuffle(v[None, :, None], groups)[0, :, 0]
                for k, v in p.items() if k.startswith("bn1.")}
    out = fnn.shuffled_group_conv2d(x, p["gconv1.weight"], groups)
    out = np.maximum(batch_norm(out, shuffled, "bn1"), 0)
    out = batch_norm(fnn.depthwise_conv2d(out, p["dwconv.weight"], padding=1), p, "bn2")
    out = batch_norm(fnn.grouped_pointwise_conv2d(out, p["gconv2.weight"], groups), p, "bn3")
    return np.maximum(x + out, 0)


def torch_model(c=240, groups=3):
    from torch import nn
    mid = c // 4

    class ShuffleUnit(nn.Module):
        def __init__(self):
            super().__init__()
            self.gconv1 = nn.Conv2d(c, mid, 1, groups=groups, bias=False)
            self.bn1 = nn.BatchNorm2d(mid)
            self.dwconv = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
            self.bn2 = nn.BatchNorm2d(mid)
            self.gconv2 = nn.Conv2d(mid, c, 1, groups=groups, bias=False)
            self.bn3 = nn.BatchNorm2d(c)

        def forward(self, x):
            out = nn.functional.relu(self.bn1(self.gconv1(x)))
            out = nn.functional.channel_shuffle(out, groups)
            out = self.bn2(self.dwconv(out))
            out = self.bn3(self.gconv2(out))
            return nn.functional.relu(x + out)
    return ShuffleUnit()


def main(seed=0):
    rng = np.random.default_rng(seed)
    p = init_params(rng)
    x = rng.standard_normal((2, 240, 14, 14)).astype(np.float32)
    ours = forward(p, x)
    return max_error_vs_torch("ShuffleNet unit", ours, p, x, torch_model)


if __name__ == "__main__":
    main()
