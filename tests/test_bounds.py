import pytest
import torch
from torch.distributions import Bernoulli, Independent, Normal

from riwae.bounds import (
    bernoulli_log_likelihood,
    gaussian_log_density,
    iwae_bound,
    log_weights,
    standard_normal_log_density,
    vae_bound,
)
from riwae.models import build_model


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
    encoder, decoder = build_model(arch, generator=g)
    encoder, decoder = encoder.double(), decoder.double()
    x = (torch.rand(3, 784, generator=g) < 0.3).double()
    log_w, log_q, z = log_weights(encoder, decoder, x, 5, generator=g)
    latent = encoder.net[-1].out_features // 2
    assert log_w.shape == (5, 3) and log_q.shape == (5, 3) and z.shape == (5, 3, latent)
    mean, logvar = encoder(x)
    q = Independent(Normal(mean, torch.exp(0.5 * logvar)), 1)
    prior = Independent(Normal(torch.zeros(latent), torch.ones(latent)), 1)
    joint = prior.log_prob(z) + Independent(Bernoulli(logits=decoder(z)), 1).log_prob(x)
    torch.testing.assert_close(log_w, joint - q.log_prob(z))
    torch.testing.assert_close(log_q, q.log_prob(z))
    assert torch.isfinite(iwae_bound(log_w)).all()
