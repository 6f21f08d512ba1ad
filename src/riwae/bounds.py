"""Log-weights and the bounds built from them.

Conventions: latents have shape ``[k, batch, dim]`` and log-weights ``[k, batch]``.
The k-sample VAE bound and the IWAE bound are two reductions of the same log-weights;
every sum of weights goes through ``logsumexp`` so no unnormalised weight is exponentiated.
"""

import math

import torch
import torch.nn.functional as F

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).square() * torch.exp(-logvar)).sum(-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.square()).sum(-1)


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)), summed over the last dimension (pixels).

    ``logits`` may carry leading sample dimensions that ``x`` lacks; x is broadcast.
    """
    x = x.expand_as(logits)
    return -F.binary_cross_entropy_with_logits(logits, x, reduction="none").sum(-1)


def sample_gaussian(
    mean: torch.Tensor, logvar: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> torch.Tensor:
    """k reparameterised draws from N(mean, diag(exp(logvar))): shape ``[k, *mean.shape]``."""
    eps = torch.randn((k, *mean.shape), generator=generator, device=mean.device, dtype=mean.dtype)
    return mean + torch.exp(0.5 * logvar) * eps


def log_weights(
    encoder, decoder, x: torch.Tensor, k: int, generator: torch.Generator | None = None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """log w = log p(x, z) - log q(z|x) for k draws z ~ q(z|x) per data point.

    ``encoder(x)`` returns ``(mean, logvar)`` of a diagonal Gaussian q(z|x); ``decoder(z)``
    returns Bernoulli logits of p(x|z); the prior is N(0, I).
    Returns ``(log_w, log_q, z)`` with shapes ``[k, batch]``, ``[k, batch]``, ``[k, batch, dim]``.
    """
    mean, logvar = encoder(x)
    z = sample_gaussian(mean, logvar, k, generator)
    log_q = gaussian_log_density(z, mean, logvar)
    log_joint = standard_normal_log_density(z) + bernoulli_log_likelihood(decoder(z), x)
    return log_joint - log_q, log_q, z


def vae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """k-sample estimate of the ELBO, L_VAE: mean over the k log-weights. Shape ``[batch]``."""
    return log_w.mean(0)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """k-sample IWAE bound estimate, log (1/k) sum_i w_i. Shape ``[batch]``."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])
