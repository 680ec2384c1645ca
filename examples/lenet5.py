"""LeNet-5 forward pass with fastconv.nn + NumPy, checked against a torch module.

Run: ``python examples/lenet5.py`` (prints the largest difference to torch).
"""
import numpy as np

import fastconv.nn as fnn


def init_params(rng):
    """LeNet-5 weights (PyTorch layouts) for 1x32x32 inputs."""
    def u(*shape):
        fan_in = int(np.prod(shape[1:]))
        return rng.uniform(-1, 1, shape).astype(np.float32) / np.sqrt(fan_in)
    return {
        "conv1.weight": u(6, 1, 5, 5), "conv1.bias": u(6, 1)[:, 0],
        "conv2.weight": u(16, 6, 5, 5), "conv2.bias": u(16, 6)[:, 0],
        "fc1.weight": u(120, 400), "fc1.bias": u(120, 400)[:, 0],
        "fc2.weight": u(84, 120), "fc2.bias": u(84, 120)[:, 0],
        "fc3.weight": u(10, 84), "fc3.bias": u(10, 84)[:, 0],
    }


def avg_pool2(x):
    n, c, h, w = x.shape
    return x.reshape(n, c, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def forward(p, x):
    """LeNet-5: conv5-tanh-pool, conv5-tanh-pool, fc120-tanh, fc84-tanh, fc10."""
    x = np.tanh(fnn.conv2d(x, p["conv1.weight"], p["conv1.bias"]))
    x = avg_pool2(x)
    x = np.tanh(fnn.conv2d(x, p["conv2.weight"], p["conv2.bias"]))
    x = avg_pool2(x).reshape(x.shape[0], -1)
    x = np.tanh(x @ p["fc1.weight"].T + p["fc1.bias"])
    x = np.tanh(x @ p["fc2.weight"].T + p["fc2.bias"])
    return x @ p["fc3.weight"].T + p["fc3.bias"]


def torch_model():
    import torch
    from torch import nn

    class LeNet5(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(1, 6, 5)
            self.conv2 = nn.Conv2d(6, 16, 5)
            self.fc1, self.fc2, self.fc3 = nn.Linear(400, 120), nn.Linear(120, 84), \
                nn.Linear(84, 10)

        def forward(self, x):
            x = nn.functional.avg_pool2d(torch.tanh(self.conv1(x)), 2)
            x = nn.functional.avg_pool2d(torch.tanh(self.conv2(x)), 2).flatten(1)
            x = torch.tanh(self.fc1(x))
            return self.fc3(torch.tanh(self.fc2(x)))
    return LeNet5()


def load(module, params):
    import torch
    module.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()})
    return module.eval()


def main(batch=16, seed=0):
    rng = np.random.default_rng(seed)
    p = init_params(rng)
    x = rng.standard_normal((batch, 1, 32, 32)).astype(np.float32)
    ours = forward(p, x)
    try:
        import torch
    except ImportError:
        print("logits", ours.shape, "(torch not installed: not compared)")
        return None
    with torch.no_grad():
        ref = load(torch_model(), p)(torch.from_numpy(x)).numpy()
    err = float(np.abs(ours - ref).max())
    print(f"LeNet-5 logits {ours.shape}: max |fastconv - torch| = {err:.2e}")
    return err


if __name__ == "__main__":
    main()
