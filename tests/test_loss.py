"""Loss terms against closed forms and independent computations."""

import math

import numpy as np
import torch
import torch.nn.functional as F

from fakeclr.nn import Discriminator, Generator
from fakeclr.train.loss import (DiscriminatorAdversarial, DiscriminatorHinge, GeneratorAdversarial, GeneratorHinge,
                                PathLength, PhaseContext, R1, stylegan2_terms)


class LinearD(torch.nn.Module):
    """D(x) = <w, x> + b: grad_x D = w, so R1 = gamma/2 * ||w||^2 for every sample."""

    def __init__(self, shape):
        super().__init__()
        self.w = torch.nn.Parameter(torch.randn(shape, dtype=torch.float64))
        self.b = torch.nn.Parameter(torch.tensor(0.3, dtype=torch.float64))

    def forward(self, x, c, return_features=False):
        logits = (x * self.w).flatten(1).sum(1, keepdim=True) + self.b
        return (logits, x) if return_features else logits


class LinearG(torch.nn.Module):
    """mapping: ws = z broadcast to L layers; synthesis: img = sum_l A_l ws_l (linear in w)."""

    def __init__(self, z_dim=5, num_ws=3, shape=(2, 4, 4)):
        super().__init__()
        self.z_dim, self.num_ws, self.shape = z_dim, num_ws, shape
        self.A = torch.nn.Parameter(torch.randn(num_ws, z_dim, math.prod(shape), dtype=torch.float64))
        self.scale = torch.nn.Parameter(torch.ones((), dtype=torch.float64))   # keeps ws in the autograd graph

    def mapping(self, z, c, update_emas=False):
        return (z * self.scale)[:, None, :].repeat(1, self.num_ws, 1)

    def synthesis(self, ws):
        return torch.einsum("nlw,lwp->np", ws, self.A).reshape(ws.shape[0], *self.shape)

    sample = Generator.sample           # style mixing as the StyleGAN2 generator does it


def _ctx(G, D, real, z, mixing=0.0):
    return PhaseContext(G=G, D=D, augment=lambda x: x, real_img=real, real_c=torch.zeros(real.shape[0], 0),
                        gen_z=z, gen_c=torch.zeros(z.shape[0], 0), style_mixing_prob=mixing)


def test_r1_matches_closed_form_for_linear_D():
    torch.manual_seed(0)
    D = LinearD((2, 4, 4))
    real = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    loss = R1(gamma=0.7)(_ctx(None, D, real, torch.zeros(3, 1)))
    expected = 0.7 / 2 * D.w.detach().square().sum()
    torch.testing.assert_close(loss, expected)


def test_r1_gradient_matches_finite_difference_on_real_D():
    """R1's gradient grad_x sum D(x) on a real (minibatch-stddev) D, against a central difference."""
    torch.manual_seed(1)
    D = Discriminator(img_resolution=16, img_channels=3, channel_base=128, channel_max=16, mbstd_group_size=2).double()
    real = torch.randn(4, 3, 16, 16, dtype=torch.float64)
    ctx = _ctx(None, D, real, torch.zeros(4, 1))
    img, out = ctx.d_real(requires_grad=True)
    (grad,) = torch.autograd.grad(out.logits.sum(), img)
    v = torch.randn_like(real)
    eps = 1e-6
    f = lambda x: D(x, None).sum()
    fd = (f(real + eps * v) - f(real - eps * v)) / (2 * eps)
    torch.testing.assert_close((grad * v).sum(), fd, rtol=1e-6, atol=1e-8)
    # And the term is gamma/2 times the mean squared norm of that gradient.
    loss = R1(gamma=2.0)(_ctx(None, D, real, torch.zeros(4, 1)))
    torch.testing.assert_close(loss, grad.square().sum([1, 2, 3]).mean())


def test_path_length_matches_numpy_for_linear_G():
    torch.manual_seed(2)
    G = LinearG()
    z = torch.randn(6, 5, dtype=torch.float64)
    term = PathLength(weight=2.0, batch_shrink=2, decay=0.01).double()
    term.pl_mean.fill_(0.5)
    torch.manual_seed(3)
    loss = term(_ctx(G, None, torch.zeros(1), z))
    # Independent: J_w^T y for img = sum_l A_l w_l is A_l y per layer; the same noise y is re-drawn from the seed.
    torch.manual_seed(3)
    y = (torch.randn(3, 2, 4, 4, dtype=torch.float64) / 4).reshape(3, -1).numpy()
    A = G.A.detach().numpy()
    lengths = np.sqrt(np.stack([np.einsum("lwp,p->lw", A, y[i]) ** 2 for i in range(3)]).sum(2).mean(1))
    pl_mean = 0.5 + 0.01 * (lengths.mean() - 0.5)
    expected = 2.0 * ((lengths - pl_mean) ** 2).mean()
    assert abs(loss.item() - expected) < 1e-10
    assert abs(term.pl_mean.item() - pl_mean) < 1e-12


def test_adversarial_losses_are_softplus_of_logits():
    torch.manual_seed(4)
    D = LinearD((2, 4, 4))
    G = LinearG(z_dim=5, num_ws=1, shape=(2, 4, 4))
    real = torch.randn(3, 2, 4, 4, dtype=torch.float64)
    z = torch.randn(3, 5, dtype=torch.float64)
    fake = G.synthesis(G.mapping(z, None))
    d = lambda x: D(x, None).squeeze(1)
    torch.testing.assert_close(GeneratorAdversarial()(_ctx(G, D, real, z)), F.softplus(-d(fake)).mean())
    expected = F.softplus(d(fake)).mean() + F.softplus(-d(real)).mean()
    torch.testing.assert_close(DiscriminatorAdversarial()(_ctx(G, D, real, z)), expected)


def test_style_mixing_takes_later_layers_from_second_latent():
    torch.manual_seed(5)
    G = LinearG(z_dim=5, num_ws=4)
    ctx = _ctx(G, None, torch.zeros(1), torch.randn(2, 5, dtype=torch.float64), mixing=1.0)
    captured = {}
    synth = G.synthesis

    def recording_synthesis(ws):
        captured["ws"] = ws
        return synth(ws)

    G.synthesis = recording_synthesis
    ctx.run_G(ctx.gen_z, ctx.gen_c)
    ws = captured["ws"]
    same = (ws == ctx.gen_z[:, None, :]).all(dim=2).all(dim=0)   # [L]: layer keeps the main latent
    cutoff = int(same.sum())
    assert 1 <= cutoff < 4 and same[:cutoff].all() and not same[cutoff:].any()


def test_zero_weights_drop_regularisation_terms():
    phases = sorted(t.phase for t in stylegan2_terms(r1_gamma=0, pl_weight=0, pl_batch_shrink=2, pl_decay=0.01))
    assert phases == ["Dmain", "Gmain"]
    phases = sorted(t.phase for t in stylegan2_terms(r1_gamma=1, pl_weight=2, pl_batch_shrink=2, pl_decay=0.01))
    assert phases == ["Dmain", "Dreg", "Gmain", "Greg"]


def test_hinge_losses_match_the_closed_form():
    """D: mean relu(1 - D(x)) + mean relu(1 + D(G(z))); G: -mean D(G(z)), with D scored once on fakes and reals."""
    torch.manual_seed(5)
    G, D = LinearG(shape=(2, 4, 4)), LinearD((2, 4, 4))
    real = torch.randn(4, 2, 4, 4, dtype=torch.float64)
    z = torch.randn(4, 5, dtype=torch.float64)
    ctx = _ctx(G, D, real, z)
    calls = []
    D.register_forward_hook(lambda *a: calls.append(1))
    d_loss = DiscriminatorHinge()(ctx)
    assert len(calls) == 1                                  # one D forward for both batches
    fake_logits = D(G.synthesis(G.mapping(z, None)), None).detach()
    real_logits = D(real, None).detach()
    expected = F.relu(1 - real_logits).mean() + F.relu(1 + fake_logits).mean()
    torch.testing.assert_close(d_loss, expected)
    assert ctx.d_real()[1].logits is ctx.d_fake_and_real()[1].logits and len(calls) == 3
    g_loss = GeneratorHinge()(_ctx(G, D, real, z))
    torch.testing.assert_close(g_loss, -fake_logits.mean())
