"""The contrastive parts: InfoNCE gradients in closed form, forgetting factor, queue, perturbation, methods."""

import math
from types import SimpleNamespace

import pytest
import torch

from fakeclr.config import METHODS, method_config, preset_config
from fakeclr.contrastive import (FeatureQueue, LatentPerturbation, QueueSizer, batch_diversity, dataset_queue_size,
                                 forgetting_weights, iteration_weighted_info_nce)
from fakeclr.contrastive.method import FakeInstanceTerm
from fakeclr.train import checkpoint as ckpt
from fakeclr.train.loop import train


def _unit(*shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.nn.functional.normalize(torch.randn(*shape, generator=g, dtype=torch.float64), dim=-1)


# ---------------------------------------------------------------------------------------------------- InfoNCE
@pytest.mark.parametrize("mode", ["paper", "official", "none"])
def test_info_nce_gradients_match_closed_form(mode):
    """Supplementary Prop. 1 / Eq. (3): with p+ and p_i the softmax weights of the positive and negatives,
    dL/dq = ((p+ - 1) k+ + sum_i p_i k_i) / tau,  dL/dk+ = (p+ - 1) q / tau,  dL/dk_i = p_i q / tau (per sample,
    averaged over the batch)."""
    n, k, c, tau, tau_m = 4, 7, 5, 0.2, 0.05
    q, kp, queue = _unit(n, c, seed=1), _unit(n, c, seed=2), _unit(k, c, seed=3)
    iters = torch.tensor([3, 3, 5, 8, 8, 9, 12])
    for t in (q, kp, queue):
        t.requires_grad_(True)
    loss = iteration_weighted_info_nce(q, kp, queue, iters, tau=tau, tau_m=tau_m, mode=mode)
    gq, gkp, gqueue = torch.autograd.grad(loss, [q, kp, queue])

    m = forgetting_weights(iters, tau_m, mode).double()
    with torch.no_grad():
        l_pos = (q * kp).sum(1) / tau
        l_neg = (q @ queue.t() + m) / tau
        z = torch.cat([l_pos[:, None], l_neg], 1)
        p = torch.softmax(z, 1)
        p_pos, p_neg = p[:, 0], p[:, 1:]
        exp_q = ((p_pos - 1)[:, None] * kp + p_neg @ queue) / tau / n
        exp_kp = (p_pos - 1)[:, None] * q / tau / n
        exp_queue = p_neg.t() @ q / tau / n
        exp_loss = -torch.log(p_pos).mean()
    torch.testing.assert_close(loss.detach(), exp_loss)
    torch.testing.assert_close(gq, exp_q)
    torch.testing.assert_close(gkp, exp_kp)
    torch.testing.assert_close(gqueue, exp_queue)


def test_forgetting_weights_paper_mode_hand_computed():
    iters = torch.tensor([0, 10, 10, 20], dtype=torch.float64)
    # min-max: [0, .5, .5, 1]; L2 norm sqrt(1.5); softmax over the queue of t / norm / tau_m.
    t = torch.tensor([0, 0.5, 0.5, 1], dtype=torch.float64) / math.sqrt(1.5) / 0.1
    expected = torch.exp(t) / torch.exp(t).sum()
    torch.testing.assert_close(forgetting_weights(iters, tau_m=0.1), expected)


def test_forgetting_weights_properties():
    iters = torch.tensor([40, 0, 10, 30, 20, 20, 50])
    m = forgetting_weights(iters, tau_m=0.01)
    assert m.sum().item() == pytest.approx(1.0)
    order = torch.argsort(iters, stable=True)
    assert (m[order].diff() >= 0).all()                     # non-decreasing in recency
    assert m[iters.argmax()] > m[iters.argmin()]
    assert torch.equal(forgetting_weights(iters, mode="official"), torch.ones(7))
    assert torch.equal(forgetting_weights(iters, mode="none"), torch.zeros(7))
    assert torch.allclose(forgetting_weights(torch.full((4,), 5)), torch.full((4,), 0.25))


def test_official_mode_is_a_constant_shift():
    """The released code's m_i = 1 shifts every negative logit by 1/tau: same loss as mode none with q.k_i + 1."""
    q, kp, queue = _unit(3, 4, seed=5), _unit(3, 4, seed=6), _unit(6, 4, seed=7)
    iters = torch.arange(6)
    a = iteration_weighted_info_nce(q, kp, queue, iters, mode="official")
    logits = torch.cat([(q * kp).sum(1, keepdim=True), q @ queue.t() + 1], 1) / 0.2
    b = torch.nn.functional.cross_entropy(logits, torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(a, b)


# ---------------------------------------------------------------------------------------------------- queue
def test_queue_fifo_wraparound_and_iterations():
    q = FeatureQueue(dim=2, size=5)
    assert int(q.filled) == 5 and (q.iters == 0).all()       # starts full of random keys from iteration 0
    for it in range(1, 5):
        q.enqueue(torch.full((2, 2), float(it)), iteration=it)
    # 8 keys into 5 slots: slots hold iterations 4,4,2,3,3 after wrapping (pointer at 3).
    assert q.iters.tolist() == [3, 4, 4, 2, 3] and int(q.ptr) == 3
    assert q.keys[:, 0].tolist() == [3, 4, 4, 2, 3]
    keys, iters = q.entries()
    keys += 1                                                 # entries are copies
    assert q.keys[0, 0].item() == 3


def test_queue_resize_keeps_newest_and_state_round_trip():
    q = FeatureQueue(dim=1, size=6)
    for it in range(1, 9):
        q.enqueue(torch.full((1, 1), float(it)), iteration=it)
    q.resize(3)
    assert sorted(q.iters.tolist()) == [6, 7, 8] and int(q.filled) == 3
    q.resize(5)                                               # growing leaves empty slots that are not negatives
    keys, iters = q.entries()
    assert iters.tolist() == [6, 7, 8] and int(q.filled) == 3 and q.size == 5
    q.enqueue(torch.full((3, 1), 9.0), iteration=9)         # two empty slots, then the oldest (6) goes
    assert q.entries()[1].tolist() == [9, 7, 8, 9, 9] and int(q.ptr) == 1 and int(q.filled) == 5
    q.enqueue(torch.full((1, 1), 10.0), iteration=10)        # overwrites the now oldest (7)
    assert sorted(q.entries()[1].tolist()) == [8, 9, 9, 9, 10]
    other = FeatureQueue(dim=1, size=2)
    other.load_state_dict(q.state_dict())
    assert other.size == 5 and torch.equal(other.keys, q.keys) and torch.equal(other.iters, q.iters)


def test_queue_rule_and_diversity():
    assert dataset_queue_size(100, mirror=False) == 5
    assert dataset_queue_size(100, mirror=True) == 10        # released: 5% of the images, x2 with x-flips
    assert dataset_queue_size(2000, mirror=True) == 200
    same = torch.nn.functional.normalize(torch.ones(4, 3), dim=1)
    assert batch_diversity(same).item() == pytest.approx(0.0, abs=1e-7)
    orth = torch.eye(3)
    assert batch_diversity(orth).item() == pytest.approx(1.0)
    sizer = QueueSizer("generated", base_size=100, min_size=10)
    sizer.observe(same, orth)                                 # fakes collapsed: ratio 0
    assert sizer.tick() == 90                                 # 0.9 * 1 + 0.1 * 0 -> 90
    assert QueueSizer("dataset", 100, fixed=200).initial_size() == 200
    assert QueueSizer("dataset", 100).tick() is None


# ---------------------------------------------------------------------------------------------------- perturbation
def test_noise_related_perturbation_statistics():
    torch.manual_seed(0)
    z = torch.tensor([[0.0, 0.5, -1.0, 2.0, -5.0]])
    pert = LatentPerturbation("noise", lam=0.1, norm_cap=3.0)
    eps = torch.stack([pert(z) - z for _ in range(40000)])[:, 0]   # [S, 5]
    expected = 0.1 * torch.tensor([0.0, 0.5, 1.0, 2.0, 3.0])        # lam * min(|z|, c)
    torch.testing.assert_close(eps.std(0), expected, rtol=0.02, atol=1e-6)
    torch.testing.assert_close(eps.mean(0), torch.zeros(5), atol=0.004, rtol=0)
    fixed = LatentPerturbation("fixed", radius=0.15)
    eps = torch.stack([fixed(z) - z for _ in range(40000)])[:, 0]
    torch.testing.assert_close(eps.std(0), torch.full((5,), 0.15), rtol=0.02, atol=0)


# ---------------------------------------------------------------------------------------------------- methods
def _tiny(method, kimg=0.032, **cl):
    cfg = preset_config("tiny")
    cfg.data.source = "lfw"
    cfg.kimg, cfg.snapshot_kimg, cfg.tick_kimg = kimg, kimg / 2, kimg / 4
    cfg.contrastive = method_config(method)
    for k, v in cl.items():
        setattr(cfg.contrastive, k, v)
    return cfg


EXPECTED_TERMS = {
    "ada": set(),
    "instance-real": {"Loss/cl/real"},
    "instance-fake": {"Loss/cl/fake"},
    "instance-perturbation": {"Loss/cl/fake"},
    "insgen": {"Loss/cl/real", "Loss/cl/fake", "Loss/cl/fake_on_G"},
    "fakeclr": {"Loss/cl/fake", "Loss/cl/fake_on_G"},
}


@pytest.mark.parametrize("method", list(METHODS.names))
def test_each_method_has_exactly_its_terms(tmp_path, method):
    out = train(_tiny(method, kimg=0.016), tmp_path, tensorboard=False)
    import json
    record = json.loads((tmp_path / "stats.jsonl").read_text().splitlines()[-1])
    assert {k for k in record if k.startswith("Loss/cl/")} == EXPECTED_TERMS[method]
    state = ckpt.load_state(out["state"])
    modules = set(state["method"]["modules"])
    cfg = method_config(method)
    assert ("real_queue" in modules) == cfg.real_instance and ("fake_queue" in modules) == (cfg.fake_positive != "none")
    assert ("D_ema" in modules) == (method != "ada")


def test_method_configs_match_the_paper():
    f = method_config("fakeclr")
    assert (f.real_instance, f.fake_positive, f.perturbation, f.fake_on_g, f.forgetting) == (False, "perturb", "noise", True, "paper")
    assert (f.lw_fake, f.lw_fake_on_g, f.tau, f.tau_m, f.lam, f.z_norm_cap) == (1.0, 0.1, 0.2, 0.01, 0.1, 3.0)
    i = method_config("insgen")
    assert (i.real_instance, i.fake_positive, i.perturbation, i.fake_on_g, i.radius) == (True, "perturb", "fixed", True, 0.15)
    assert (i.lw_real, i.lw_fake, i.lw_fake_on_g) == (1.0, 1.0, 0.1)


@pytest.mark.parametrize("method,cl", [("fakeclr", {"queue_sizer": "generated"}), ("insgen", {})])
def test_resume_with_queues_is_bit_exact(tmp_path, method, cl):
    a = train(_tiny(method, kimg=0.064, **cl), tmp_path / "a", tensorboard=False)
    train(_tiny(method, kimg=0.064, **cl), tmp_path / "b", stop_at_kimg=0.032, tensorboard=False)
    b = train(_tiny(method, kimg=0.064, **cl), tmp_path / "b", tensorboard=False)
    sa, sb = ckpt.load_state(a["state"]), ckpt.load_state(b["state"])
    for group in ("nets", "method"):
        flat_a, flat_b = _flatten(sa[group]), _flatten(sb[group])
        assert flat_a.keys() == flat_b.keys()
        for k in flat_a:
            assert torch.equal(flat_a[k], flat_b[k]) if isinstance(flat_a[k], torch.Tensor) else flat_a[k] == flat_b[k], k
    assert "fake_queue" in sa["method"]["modules"]


def _flatten(obj, prefix=""):
    if isinstance(obj, dict):
        out = {}
        for k, v in obj.items():
            out.update(_flatten(v, f"{prefix}/{k}"))
        return out
    return {prefix: obj}


def test_generated_sizer_resizes_queue_during_training(tmp_path, monkeypatch):
    """The fakes are shown to the sizer as identical (diversity 0), so the ratio follows 0.9 ** ticks and the
    queue must shrink tick by tick to round(base * 0.9 ** t), bounded below by queue_min."""
    import json
    from fakeclr.contrastive import diversity
    observe = diversity.QueueSizer.observe
    monkeypatch.setattr(diversity.QueueSizer, "observe",
                        lambda self, fake, real: observe(self, fake[:1].expand_as(fake), real))
    cfg = _tiny("fakeclr", kimg=0.064, queue_sizer="generated", queue_min=2)
    cfg.data.mirror = True                        # base 10: no size lands on a rounding tie
    out = train(cfg, tmp_path, tensorboard=False)
    sizes = [json.loads(line)["fake_queue_size"] for line in (tmp_path / "stats.jsonl").read_text().splitlines()]
    base = diversity.dataset_queue_size(100, cfg.data.mirror)
    assert sizes == [max(2, round(base * 0.9 ** t)) for t in range(1, len(sizes) + 1)]
    assert sizes[-1] < base and out["nets"]["fake_queue"].size == sizes[-1]


def test_real_in_fake_queue_configs():
    """Table 5: Config A mixes real keys into every enqueue, Config B only from half-way through training."""
    cfg = method_config("fakeclr")
    marker = lambda ctx, img, c: torch.full((img.shape[0], 2), 7.0)
    fake_k = torch.zeros(6, 2)
    ctx = SimpleNamespace(real_img=torch.zeros(6, 1, 4, 4), real_c=torch.zeros(6, 0), cur_nimg=10)
    for mode, nimg, n_real in [("none", 10, 0), ("start", 10, 3), ("half", 10, 0), ("half", 60, 3)]:
        cfg.real_in_fake_queue = mode
        term = FakeInstanceTerm(None, marker, None, cfg, None, None, total_nimg=100)
        ctx.cur_nimg = nimg
        keys = term._keys_to_enqueue(ctx, fake_k)
        assert keys.shape == (6, 2) and int((keys[:, 0] == 7).sum()) == n_real, (mode, nimg)


@pytest.mark.parametrize("mixing,same", [("shared", True), ("independent", False)])
def test_style_mixing_of_the_two_fake_views(mixing, same):
    """With eps = 0, shared mixing gives the positive view exactly the query's image; independent mixing not."""
    from fakeclr.nn import Generator
    from fakeclr.train.loss import PhaseContext
    torch.manual_seed(0)
    G = Generator(z_dim=8, w_dim=8, img_resolution=16, img_channels=1, channel_base=64, channel_max=8, mapping_layers=1)
    cfg = method_config("fakeclr")
    cfg.mixing = mixing
    term = FakeInstanceTerm(None, None, None, cfg, LatentPerturbation("noise", lam=0.0), None, total_nimg=1)
    ctx = PhaseContext(G=G, D=None, augment=lambda x: x, real_img=None, real_c=None, gen_z=torch.randn(4, 8),
                       gen_c=torch.zeros(4, 0), style_mixing_prob=1.0)
    with torch.no_grad():
        img = ctx.fake()[0]
        pos = term.positive_images(ctx)
    assert torch.equal(img, pos) == same


def test_plot_forgetting_command(tmp_path):
    from PIL import Image

    from fakeclr.cli import main
    from fakeclr.tools.plots import queue_iterations
    assert queue_iterations(200, 50).tolist() == [1] * 50 + [2] * 50 + [3] * 50 + [4] * 50
    out = tmp_path / "fig2.png"
    assert main(["plot", "forgetting", "--out", str(out), "--sizes", "200,400", "--tau-m", "0.01,0.1"]) == 0
    w, h = Image.open(out).size
    assert w > 2 * h > 0                                      # two panels side by side
    assert main(["plot", "forgetting", "--out", str(tmp_path / "x.png"), "--sizes", "0"]) == 2
    assert not (tmp_path / "x.png").exists()
