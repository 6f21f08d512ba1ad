import os
import subprocess
import sys

import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

from conftest import ROOT
from riwae.bounds import (
    bernoulli_log_likelihood,
    gaussian_log_density,
    iwae_bound,
    standard_normal_log_density,
    vae_bound,
)
from riwae.models import VAE


def test_densities_match_torch_distributions():
    g = torch.Generator().manual_seed(0)
    z, mean, logvar = (torch.randn(7, 3, generator=g) for _ in range(3))
    expected = Independent(Normal(mean, torch.exp(0.5 * logvar)), 1).log_prob(z)
    torch.testing.assert_close(gaussian_log_density(z, mean, logvar), expected)
    standard = Independent(Normal(torch.zeros(3), torch.ones(3)), 1).log_prob(z)
    torch.testing.assert_close(standard_normal_log_density(z), standard)
    logits, x = torch.randn(4, 7, 5, generator=g), (torch.rand(7, 5, generator=g) < 0.5).double()
    expected = Independent(Bernoulli(logits=logits), 1).log_prob(x.expand(4, 7, 5))
    torch.testing.assert_close(bernoulli_log_likelihood(logits, x), expected)


def test_vae_and_iwae_agree_at_k1():
    log_w = torch.randn(1, 50, generator=torch.Generator().manual_seed(1)) * 30
    torch.testing.assert_close(iwae_bound(log_w), vae_bound(log_w), rtol=0, atol=0)


@pytest.mark.parametrize("scale", [1e4, -1e4])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_bounds_are_finite_for_extreme_log_weights(scale, dtype):
    g = torch.Generator().manual_seed(2)
    log_w = (scale + torch.randn(50, 8, generator=g)).to(dtype)
    iwae, vae = iwae_bound(log_w), vae_bound(log_w)
    assert torch.isfinite(iwae).all() and torch.isfinite(vae).all()
    # log-mean-exp of values within a few units of `scale` stays within those few units.
    assert (iwae - scale).abs().max() < 5


def test_iwae_bound_is_log_mean_of_weights_and_above_vae():
    g = torch.Generator().manual_seed(3)
    log_w = torch.randn(10, 20, generator=g)
    torch.testing.assert_close(iwae_bound(log_w), log_w.exp().mean(0).log())
    assert (iwae_bound(log_w) >= vae_bound(log_w)).all()  # Jensen, per sample set


@pytest.mark.parametrize("arch", ["cremer2d", "burda1"])
def test_log_weights_shapes_and_value(arch):
    g = torch.Generator().manual_seed(4)
    model = VAE(arch).initialise(generator=g).double()
    encoder, decoder = model.encoder, model.decoder
    x = (torch.rand(3, 784, generator=g) < 0.3).double()
    log_w, log_q, z = model.log_weights(x, 5, generator=g)
    latent = encoder.net[-1].out_features // 2
    assert log_w.shape == (5, 3) and log_q.shape == (5, 3) and z.shape == (5, 3, latent)
    mean, logvar = encoder(x)
    q = Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)
    prior = Independent(Normal(torch.zeros(latent), torch.ones(latent)), 1)
    joint = prior.log_prob(z) + Independent(Bernoulli(logits=decoder(z)), 1).log_prob(x)
    torch.testing.assert_close(log_w, joint - q.log_prob(z))
    torch.testing.assert_close(log_q, q.log_prob(z))
    assert torch.isfinite(iwae_bound(log_w)).all()


def test_two_layer_log_weights_match_torch_distributions():
    """burda2: log p(x, h1, h2) - log q(h1, h2 | x) written out layer by layer, with the
    draws rebuilt from the same noise: h1 = mu1(x) + sigma1(x) e1, h2 = mu2(h1) + sigma2(h1) e2."""
    g = torch.Generator().manual_seed(5)
    model = VAE("burda2").initialise(generator=g).double()
    with torch.no_grad():  # random biases, so that no mean or scale is trivially 0 or 1
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
    x = (torch.rand(2, 784, generator=g) < 0.3).double()
    log_w, log_q, z = model.log_weights(x, 3, generator=torch.Generator().manual_seed(6))
    assert log_w.shape == log_q.shape == (3, 2) and z.shape == (3, 2, 150)
    e = torch.randn(3, 2, 150, generator=torch.Generator().manual_seed(6))

    def gaussian(net, h):  # Burda et al.'s units: std = exp(linear output)
        mean, log_std = net(h).chunk(2, dim=-1)
        return Independent(Normal(mean, log_std.exp()), 1)

    q1 = gaussian(model.encoder.net, x)
    h1 = q1.mean + q1.stddev * e[..., :100]
    q2 = gaussian(model.upper_encoders[0].net, h1)
    h2 = q2.mean + q2.stddev * e[..., 100:]
    torch.testing.assert_close(z, torch.cat([h1, h2], -1))
    prior = Independent(Normal(torch.zeros(50), torch.ones(50)), 1)
    p_h1 = gaussian(model.upper_decoders[0].net, h2)
    p_x = Independent(Bernoulli(logits=model.decoder.net(h1)), 1)
    expected_q = q1.log_prob(h1) + q2.log_prob(h2)
    expected_joint = prior.log_prob(h2) + p_h1.log_prob(h1) + p_x.log_prob(x)
    torch.testing.assert_close(log_q, expected_q, rtol=0, atol=1e-10)
    torch.testing.assert_close(log_w, expected_joint - expected_q, rtol=0, atol=1e-10)
    # The layers' shapes are Burda et al.'s.
    sizes = [
        [layer.weight.shape[::-1] for layer in net.net if isinstance(layer, torch.nn.Linear)]
        for net in (model.encoder, *model.upper_encoders, *model.upper_decoders, model.decoder)
    ]
    assert sizes == [
        [(784, 200), (200, 200), (200, 200)],
        [(100, 100), (100, 100), (100, 100)],
        [(50, 100), (100, 100), (100, 200)],
        [(100, 200), (200, 200), (200, 784)],
    ]


def reference_log_likelihood(logits, x):
    """log Bernoulli(x; sigmoid(logits)) per pixel, summed, by torch's binary
    cross-entropy (the CPU's formula)."""
    return -torch.nn.functional.binary_cross_entropy_with_logits(
        logits, x.expand_as(logits), reduction="none"
    ).sum(-1)


def likelihood_case(dtype, seed: int = 0):
    """Logits [2, 3, 4, 30] (two members, three draws, four images) around +-10, with
    saturated ones (beyond the +-80 of ``SATURATION``), and binary pixels broadcast over the
    draws."""
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(2, 3, 4, 30, generator=g, dtype=torch.float64) * 10
    logits[0, 0, 0, :6] = torch.tensor([-1000.0, -200.0, -85.0, 79.0, 90.0, 700.0])
    x = (torch.rand(2, 1, 4, 30, generator=g) < 0.4).double()
    return logits.to(dtype), x.to(dtype), torch.randn(2, 3, 4, generator=g, dtype=dtype)


def likelihood_errors(logits, x, grad):
    """The largest errors of ``bernoulli_log_likelihood``'s value and gradient against the
    float64 formula, then those of that formula run in ``logits``' dtype."""
    exact = logits.detach().cpu().double().requires_grad_()
    exact_value = reference_log_likelihood(exact, x.cpu().double())
    (exact_value * grad.cpu().double()).sum().backward()
    errors = []
    for function in (bernoulli_log_likelihood, reference_log_likelihood):
        tensor = logits.clone().requires_grad_()
        value = function(tensor, x)
        (value * grad).sum().backward()
        value_error = (value.detach().cpu().double() - exact_value.detach()).abs().max()
        gradient_error = (tensor.grad.cpu().double() - exact.grad).abs().max()
        errors.append((value_error.item(), gradient_error.item()))
    return errors


TRITON_CHECK = """
import torch
from riwae.bounds import bernoulli_log_likelihood, triton_usable
from test_bounds import likelihood_case, likelihood_errors
logits, x, grad = likelihood_case(torch.float32)
cases = ((logits, x, grad), (logits[0, 0], x[0, 0], grad[0, 0]), (logits[0], x[0, 0, 0], grad[0]))
for l, p, g in cases:
    assert triton_usable(l, p.expand_as(l))
    (value, gradient), (old_value, old_gradient) = likelihood_errors(l, p, g)
    # Sums of 30 terms of up to 1000 nats: float32 rounding of about 1e-4 nats.
    assert value <= 2 * old_value + 1e-5 and gradient <= 2 * old_gradient + 1e-7, (l.shape,)
print("as close")
"""


def test_triton_likelihood_under_the_interpreter_is_as_close_to_float64_as_torchs():
    """The CUDA kernels of the likelihood, run by Triton's interpreter on the CPU: values
    and gradients as close to the float64 formula as torch's float32 formula is, saturated
    logits included, for the stack's [M, k, batch, pixels] logits with pixels broadcast
    over the draws and for fewer leading dimensions."""
    pytest.importorskip("triton")
    environment = {
        **os.environ,
        "TRITON_INTERPRET": "1",
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), str(ROOT / "tests")]),
    }
    result = subprocess.run(
        [sys.executable, "-c", TRITON_CHECK], env=environment, capture_output=True, text=True
    )
    assert result.stdout.strip() == "as close", result.stderr[-3000:]
