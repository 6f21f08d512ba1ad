"""Log-densities, and the bounds built from log-weights (``riwae.models.VAE.log_weights``).

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


def vae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """k-sample estimate of the ELBO, L_VAE: mean over the k log-weights. Shape ``[batch]``."""
    return log_w.mean(0)


def iwae_bound(log_w: torch.Tensor) -> torch.Tensor:
    """k-sample IWAE bound estimate, log (1/k) sum_i w_i. Shape ``[batch]``."""
    return torch.logsumexp(log_w, 0) - math.log(log_w.shape[0])


# Gradient estimators of a bound, by code: the plain reparameterised gradient, "sticking the
# landing" (Roeder et al., 2017: drop the score term of q) and the doubly reparameterised
# gradient (Tucker et al., 2019: also weight each draw's path gradient by its normalised
# weight once more). They differ only in the encoder's gradient; values are the same.
ESTIMATORS = {"reparam": 0, "stl": 1, "dreg": 2}


def bounds_and_surrogate(
    log_joint: torch.Tensor,
    z: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    k: torch.Tensor,
    iwae: torch.Tensor,
    estimator: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of M models (or sets of draws) at once, and a surrogate whose gradient is each
    one's chosen estimator of its bound's gradient.

    ``log_joint``: log p(x, z) ``[M, K, batch]`` for draws ``z = mean + exp(logvar / 2) eps``
    (``[M, K, batch, dim]``; ``mean``/``logvar`` ``[M, 1, batch, dim]``, or ``[M, K, batch,
    dim]`` where q's units depend on the layer below); member m uses its first ``k[m]`` draws.
    ``iwae[m]``: IWAE bound, else the k-sample VAE bound. ``estimator[m]``: a code of
    ``ESTIMATORS``. Returns (bounds, surrogate), ``[M, batch]``.
    """
    valid = (torch.arange(log_joint.shape[1], device=k.device)[None] < k[:, None])[..., None]
    score_free = (estimator != ESTIMATORS["reparam"])[:, None, None]
    log_q = gaussian_log_density(z, mean, logvar)
    if score_free.any():
        log_q = torch.where(
            score_free, gaussian_log_density(z, mean.detach(), logvar.detach()), log_q
        )
    log_w = log_joint - log_q
    log_k = torch.log(k.to(log_w.dtype))[:, None]
    iwae_bounds = torch.logsumexp(log_w.masked_fill(~valid, -math.inf), 1) - log_k
    vae_bounds = log_w.masked_fill(~valid, 0).sum(1) / k[:, None]
    bounds = torch.where(iwae[:, None], iwae_bounds, vae_bounds)
    if not (score_free.any() and torch.is_grad_enabled()):
        return bounds, bounds
    # The gradient of either bound is sum_i weight_i grad log w_i, with the IWAE's normalised
    # weights or the VAE's 1/k, held fixed.
    weights = torch.where(
        iwae[:, None, None],
        torch.softmax(log_w.detach().masked_fill(~valid, -math.inf), 1),
        valid / k[:, None, None],
    )
    if ((estimator == ESTIMATORS["dreg"]) & iwae).any() and z.requires_grad:
        dreg = ((estimator == ESTIMATORS["dreg"]) & iwae)[:, None, None, None]
        # DReG: the path gradient through z_i once more weighted by its normalised weight.
        z.register_hook(lambda grad: torch.where(dreg, grad * weights[..., None], grad))
    weighted = (weights * log_w.masked_fill(~valid, 0)).sum(1)
    return bounds, torch.where(score_free[:, :, 0], weighted, bounds)
