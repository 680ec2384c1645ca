"""Shared by the examples: load our NumPy parameters into the torch module and compare."""
import numpy as np


def max_error_vs_torch(label, ours, params, x, torch_model):
    """Max |ours - torch| for ``torch_model()`` with ``params`` loaded, or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    m = torch_model()
    sd = m.state_dict()
    sd.update({k: torch.from_numpy(v) for k, v in params.items()})
    m.load_state_dict(sd)
    with torch.no_grad():
        ref = m.eval()(torch.from_numpy(x)).numpy()
    err = float(np.abs(ours - ref).max())
    print(f"{label} {ours.shape}: max |fastconv - torch| = {err:.2e}")
    return err
