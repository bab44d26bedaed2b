"""Evaluation: StyleGAN2-ADA's metrics (FID, KID, precision/recall, IS, PPL) with the standard feature networks,
plus FakeCLR's latent continuity (supplementary Fig. 1) and nearest-neighbour test (Figs. 4-5).

Layout: :mod:`.weights` finds the feature networks offline-first and caches them as safetensors;
:mod:`.inception` and :mod:`.lpips` are those networks in plain PyTorch; :mod:`.features` turns images (data
set, folder, generator) into features and caches real-image features; :mod:`.fid`, :mod:`.kid`,
:mod:`.precision_recall`, :mod:`.inception_score`, :mod:`.ppl`, :mod:`.continuity`, :mod:`.neighbours` hold one
metric each; :mod:`.registry` names them and offers :func:`calc_metric` (what the training loop calls at each snapshot
for ``--metrics``) and :func:`compute_metrics`.
"""

from .registry import (
    FOLDER_METRICS, METRICS, MetricContext, MetricResult, append_metric_jsonl, calc_metric, compute_folder_metrics,
    compute_metrics, parse_metric_names,
)
from .weights import NETWORKS, cache_dir, fetch_networks, load_inception, load_lpips

__all__ = [
    "METRICS", "FOLDER_METRICS", "MetricContext", "MetricResult", "calc_metric", "compute_metrics",
    "compute_folder_metrics", "append_metric_jsonl", "parse_metric_names", "NETWORKS", "cache_dir",
    "fetch_networks", "load_inception", "load_lpips", "lpips_image_distance",
]


def lpips_image_distance(path_a, path_b, net: str = "alex", device="cpu") -> float:
    """LPIPS between two image files (RGB or grayscale, same size), like the reference two-image script."""
    import numpy as np
    import torch
    from PIL import Image
    from ..errors import UserError
    from .lpips import to_lpips_range

    def load(p):
        try:
            with Image.open(p) as im:
                return torch.from_numpy(np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy())[None]
        except OSError as e:
            raise UserError(f"Cannot read image {p} ({e}).") from None
    a, b = load(path_a), load(path_b)
    if a.shape != b.shape:
        raise UserError(f"{path_a} is {a.shape[3]}x{a.shape[2]} but {path_b} is {b.shape[3]}x{b.shape[2]}; "
                        "LPIPS compares images of the same size.")
    model = load_lpips(net, device)
    with torch.no_grad():
        return float(model(to_lpips_range(a).to(device), to_lpips_range(b).to(device))[0])
