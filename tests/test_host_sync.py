"""The training step reads nothing of the device on the host between ticks, but the ADA pipeline's one read per
call (its padding and which stages act) and the adaptive p's read at its interval (issue 28).

benchmarks/host_syncs.py prints the same counts per method and augmentation.
"""

import pytest
import torch

from fakeclr.config import method_config, preset_config
from fakeclr.train import assembly, loop
from fakeclr.train.host_sync import HostSyncCounter
from fakeclr.train.monitor import Monitor

ITERATIONS = 16           # every lazy phase of the tiny preset (R1 every 4, path length every 2), 8 ADA intervals
PIPE_READ = "augment/ada.py"
ADA_READ = "augment/controller.py"


def _count(method: str, aug: str, tmp_path, backbone: str = "stylegan2") -> tuple[HostSyncCounter, int]:
    """Host reads during ``ITERATIONS`` iterations after 2, and the number of ADA pipeline calls among them."""
    cfg = preset_config("tiny")
    cfg.data.source, cfg.augment.kind, cfg.kimg = "lfw", aug, 100.0
    cfg.contrastive = method_config(method)
    if backbone == "biggan":                 # 2 D steps per G step, the width-2 BigGAN at 32 px
        cfg.network.backbone, cfg.network.width, cfg.data.resolution, cfg.d_steps = "biggan", 2, 32, 2
    torch.manual_seed(0)
    run = assembly.build_run(cfg, tmp_path, torch.device("cpu"), fresh=True, source=None)
    assembly.restore_run(run, None, None)
    monitor = Monitor(None, cfg.kimg, tensorboard=False)
    for _ in range(2):
        loop.train_step(run, monitor)
    calls = []
    if run.augmentation.module is not None:
        run.augmentation.module.register_forward_hook(lambda *_: calls.append(1))
    with HostSyncCounter() as counter:
        for _ in range(ITERATIONS):
            loop.train_step(run, monitor)
    return counter, len(calls)


@pytest.mark.parametrize("method,aug", [("ada", "ada"), ("fakeclr", "ada-linear"), ("insgen", "ada")])
def test_the_step_reads_the_device_once_per_augmentation(method, aug, tmp_path):
    counter, pipe_calls = _count(method, aug, tmp_path)
    sites = {site.split(":")[0]: 0 for site in counter.by_site}
    for site, n in counter.by_site.items():
        sites[site.split(":")[0]] += n
    assert set(sites) <= {PIPE_READ, ADA_READ}, counter.by_site
    assert pipe_calls > ITERATIONS and sites[PIPE_READ] == pipe_calls       # one read per pipeline call
    interval = preset_config("tiny").augment.interval
    assert sites.get(ADA_READ, 0) <= ITERATIONS // interval                  # E[sign D(real)], at the interval


@pytest.mark.parametrize("backbone", ["stylegan2", "biggan"])
@pytest.mark.parametrize("method", ["ada", "fakeclr"])
def test_without_ada_the_step_reads_nothing(method, backbone, tmp_path):
    counter, _ = _count(method, "diffaugment", tmp_path, backbone)
    assert counter.count == 0, counter.by_site


def test_the_counter_sees_scalar_reads_and_lists():
    x = torch.arange(3.0)
    with HostSyncCounter() as counter:
        x.sum().item()
        float(x[0])
        bool(x.any())
        x.tolist()
        y = x * 2                                  # no read
    assert counter.count == 4 and y[1] == 2
