"""The training loop's small formulas against independent values (issue 11, item 5), and a golden loss trace.

Each of these was compared only with itself before: a wrong exponent or a swapped lerp would have passed.
"""

from __future__ import annotations

import io
import json

import pytest
import torch

from fakeclr.config import method_config, preset_config
from fakeclr.contrastive.heads import momentum_update
from fakeclr.train import loop
from fakeclr.train.assembly import make_optimizer
from fakeclr.train.feed import RealSampler
from fakeclr.train.backbone import biggan_ema, stylegan2_ema
from fakeclr.train.loop import train
from fakeclr.train.monitor import Monitor


def test_lazy_regularisation_rescales_lr_and_betas():
    """StyleGAN2 App. B: with a regulariser every k steps, lr * k/(k+1) and beta ** (k/(k+1))."""
    cfg = preset_config("tiny")
    cfg.optim.lr, cfg.optim.beta1, cfg.optim.beta2 = 0.0025, 0.5, 0.99
    m = torch.nn.Linear(2, 2)
    g = make_optimizer([m], cfg, 16).param_groups[0]
    assert g["lr"] == pytest.approx(0.00235294117647, rel=1e-12)          # 0.0025 * 16 / 17
    assert g["betas"][0] == pytest.approx(0.52080800532529, rel=1e-12)      # 0.5 ** (16 / 17)
    assert g["betas"][1] == pytest.approx(0.99058545730743, rel=1e-12)      # 0.99 ** (16 / 17)
    g1 = make_optimizer([m], cfg, 1).param_groups[0]
    assert (g1["lr"], g1["betas"]) == (0.0025, (0.5, 0.99))                # interval 1: no regulariser phase


def test_ema_half_life_and_ramp_up():
    """After one half-life of images a constant target is half reached; early on the ramp-up shortens it."""
    cfg = preset_config("tiny")
    cfg.ema_kimg, cfg.ema_rampup, cfg.batch = 0.08, None, 8                   # 80 images
    G, G_ema = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    G.register_buffer("stat", torch.tensor([5.0]))
    G_ema.register_buffer("stat", torch.tensor([0.0]))
    with torch.no_grad():
        G.weight.fill_(1.0)
        G_ema.weight.fill_(0.0)
        for i in range(10):                                                    # 10 steps of 8 images = 80
            stylegan2_ema(G_ema, G, cfg, iteration=i, cur_nimg=8 * (i + 1))
    assert G_ema.weight.item() == pytest.approx(0.5, abs=1e-6)
    assert G_ema.stat.item() == 5.0                                            # buffers are copied
    cfg.ema_rampup = 0.05                                                      # at 1000 images: 50, not 80
    with torch.no_grad():
        G_ema.weight.fill_(0.0)
        stylegan2_ema(G_ema, G, cfg, iteration=0, cur_nimg=1000)
    assert G_ema.weight.item() == pytest.approx(1 - 0.5 ** (8 / 50), rel=1e-6)


def test_biggan_ema_copies_until_the_start_then_decays_every_entry():
    """BigGAN-PyTorch: iterations 1 .. start-1 copy G (iteration 0 decays: the reference tests ``itr and ...``),
    from ``start`` on every state-dict entry, buffers included, moves by (1 - decay)."""
    cfg = preset_config("biggan-cifar")
    cfg.ema_decay, cfg.ema_start = 0.75, 3
    G, G_ema = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    G.register_buffer("stat", torch.tensor([4.0]))
    G_ema.register_buffer("stat", torch.tensor([0.0]))
    with torch.no_grad():
        G.weight.fill_(1.0)
        G_ema.weight.fill_(0.0)
        expected = []
        for it in range(5):
            biggan_ema(G_ema, G, cfg, iteration=it, cur_nimg=0)
            expected.append((G_ema.weight.item(), G_ema.stat.item()))
    assert expected[0] == (0.25, 1.0)                        # iteration 0: 0.75 * 0 + 0.25 * G
    assert expected[1] == expected[2] == (1.0, 4.0)          # iterations 1, 2 < start: copies
    G.weight.data.fill_(3.0)
    with torch.no_grad():
        biggan_ema(G_ema, G, cfg, iteration=5, cur_nimg=0)
    assert G_ema.weight.item() == pytest.approx(0.75 * 1.0 + 0.25 * 3.0)


def test_momentum_update_is_moco_eq2():
    ema, net = torch.nn.Linear(1, 1, bias=False), torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        ema.weight.fill_(2.0)
        net.weight.fill_(4.0)
    momentum_update(ema, net, 0.9)
    assert ema.weight.item() == pytest.approx(0.9 * 2 + 0.1 * 4)
    assert net.weight.item() == 4.0


def test_real_sampler_passes_are_permutations_and_resume():
    s = RealSampler(7, seed=3)
    drawn = torch.cat([s.next(3) for _ in range(7)]).tolist()                  # 21 = 3 passes of 7, in chunks of 3
    for p in range(3):
        assert sorted(drawn[7 * p: 7 * (p + 1)]) == list(range(7)), p
    assert drawn[:7] != drawn[7:14]                                             # each pass is shuffled anew
    state = s.state_dict()
    a = s.next(10).tolist()
    t = RealSampler(7, seed=99)
    t.load_state_dict(state)
    assert t.next(10).tolist() == a


def test_monitor_averages_over_values_and_eta(tmp_path, monkeypatch):
    clock = iter([100.0, 100.0, 130.0])                                       # start, tick start, tick end
    import fakeclr.train.monitor as mon
    monkeypatch.setattr(mon.time, "time", lambda: next(clock))
    out = io.StringIO()
    m = Monitor(tmp_path, total_kimg=10, tensorboard=False, stream=out)
    m.add({"Loss/G/loss": [torch.tensor([1.0, 2.0]), torch.tensor([6.0])], "Loss/D/loss": [torch.tensor(4.0)]})
    m.add({"Loss/G/loss": [torch.tensor([3.0])]})
    rec = m.tick(cur_nimg=2000, tick_start_nimg=1000, extra={"augment_p": 0.25})
    assert rec["Loss/G/loss"] == pytest.approx(3.0)                            # (1 + 2 + 6 + 3) / 4 values
    assert rec["Loss/D/loss"] == 4.0 and rec["sec_per_kimg"] == pytest.approx(30.0)
    line = out.getvalue()
    assert "kimg 2/10" in line and "sec/kimg   30.00" in line and "p 0.250" in line
    assert "ETA 4m 00s" in line                                                # 8 kimg left at 30 s each
    assert json.loads((tmp_path / "stats.jsonl").read_text())["Loss/G/loss"] == pytest.approx(3.0)


def test_monitor_reports_each_part_s_time_per_kimg_of_the_tick(tmp_path):
    """Timing/<part>: the part's seconds in the tick divided by the tick's kimg; reset at every tick."""
    m = Monitor(tmp_path, total_kimg=10, tensorboard=False, stream=io.StringIO())
    m.add_time("Gmain", 3.0)
    m.add_time("Dmain", 1.0)
    m.add_time("Gmain", 1.5)
    rec = m.tick(cur_nimg=1500, tick_start_nimg=1000, extra={})               # a 0.5-kimg tick
    assert rec["Timing/Gmain"] == pytest.approx(9.0) and rec["Timing/Dmain"] == pytest.approx(2.0)
    m.add_time("Dmain", 0.25)
    rec = m.tick(cur_nimg=2500, tick_start_nimg=1500, extra={})
    assert "Timing/Gmain" not in rec and rec["Timing/Dmain"] == pytest.approx(0.25)


@pytest.mark.parametrize("p", [0.0, 1.0])
def test_apa_shows_the_discriminator_fakes_as_reals_with_probability_p(p, tmp_path, monkeypatch):
    """The wiring: the D phases' reals are the G phase's fakes of the same iteration with probability p (0: never,
    1: always); the G phases keep the real batch. (pseudo_augment's per-image draw: tests/test_augment.py.)"""
    cfg = preset_config("tiny")
    cfg.data.source, cfg.kimg, cfg.tick_kimg, cfg.snapshot_kimg = "lfw", 0.032, 0.032, 0.032
    cfg.augment.kind, cfg.augment.p, cfg.augment.speed_kimg = "apa", p, 1e9   # p stays where it starts
    seen = []
    context = loop.PhaseContext

    def spy(**kw):
        ctx = context(**kw)
        seen.append((kw["real_img"].detach().clone(), ctx))
        return ctx
    monkeypatch.setattr(loop, "PhaseContext", spy)
    train(cfg, tmp_path, tensorboard=False, stream=io.StringIO())
    by_iteration = {}
    for real, ctx in seen:
        by_iteration.setdefault(ctx.iteration, []).append((real, ctx))
    shown_fake = 0
    for it, phases in by_iteration.items():
        (real0, gmain), rest = phases[0], phases[1:]          # Gmain runs first in every iteration
        fake = gmain._cache["fake"][0].detach()
        for real, _ in rest:
            if torch.equal(real, fake):
                shown_fake += 1
            else:
                assert torch.equal(real, real0), it            # Greg, or a D phase with p = 0
    n_d_phases = sum(1 for phases in by_iteration.values() for _, c in phases[1:] if c.real_logit_observers and
                     not torch.equal(phases[0][0], c.real_img))
    assert (shown_fake > 0) == (p == 1.0)
    assert shown_fake == n_d_phases
    assert shown_fake >= (len(by_iteration) if p == 1.0 else 0)   # Dmain in every iteration


@pytest.fixture
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_golden_loss_trace_of_the_tiny_preset(tmp_path, one_thread):
    """Four ticks of `tiny` on the embedded faces, on one thread (set here: with two, the summation order moves
    the R1 penalty in the 4th digit): a silent change to any loss, its weight or the order of random draws changes
    these numbers. Recorded with the code of the commit that added this test."""
    golden = {
        "ada": [(1.423908, 0.69684, 0.2259353, 0.0078539), (1.284435, 0.8140596, 0.3198552, None),
                (1.1946107, 0.9273627, 0.2401517, 0.0083711), (1.2270847, 1.0669625, 0.19587, None)],
        "fakeclr": [(1.4036112, 0.7129349, 0.2957798, 0.0071189, 1.1890878, 1.2082567),
                    (1.2967305, 0.8514383, 0.3980111, None, 2.5184605, 2.4927405),
                    (1.2307863, 0.8883854, 0.30842, 0.0082105, 2.398599, 2.3043995),
                    (1.2354784, 0.9437928, 0.2805459, None, 2.3557521, 2.3804426)],
    }
    keys = ["Loss/D/loss", "Loss/G/loss", "Loss/pl_penalty", "Loss/r1_penalty", "Loss/cl/fake", "Loss/cl/fake_on_G"]
    for method, rows in golden.items():
        cfg = preset_config("tiny")
        cfg.data.source, cfg.kimg, cfg.tick_kimg, cfg.snapshot_kimg = "lfw", 0.064, 0.016, 0.064
        cfg.contrastive = method_config(method)
        train(cfg, tmp_path / method, tensorboard=False, stream=io.StringIO())
        recs = [json.loads(line) for line in (tmp_path / method / "stats.jsonl").read_text().splitlines()]
        assert len(recs) == len(rows)
        for rec, row in zip(recs, rows):
            for key, want in zip(keys, row):
                if want is None:
                    assert key not in rec, (method, key)
                else:
                    assert rec[key] == pytest.approx(want, rel=2e-5, abs=2e-7), (method, rec["kimg"], key)
