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
ESTIMATORS = ("reparam", "stl", "dreg")


class Members:
    """What M bounds computed at once know of their members: each one's k, IWAE bound or
    k-sample VAE bound, and gradient estimator. Held on the host, to choose what to compute
    without asking the device, and as device tensors, for the per-member choices."""

    def __init__(self, ks, iwae, estimators, device=None):
        unknown = set(estimators) - set(ESTIMATORS)
        if unknown:
            raise ValueError(f"Unknown estimator {unknown.pop()!r}; use one of {ESTIMATORS}.")
        self.ks, self.iwae, self.estimators = list(ks), list(iwae), list(estimators)
        self.max_k = max(self.ks)
        self.padded = min(self.ks) < self.max_k
        self.score_free = [e != "reparam" for e in self.estimators]
        self.dreg = [e == "dreg" and i for e, i in zip(self.estimators, self.iwae, strict=True)]
        tensor = lambda values: torch.tensor(values, device=device)  # noqa: E731
        self.k_tensor = tensor(self.ks)
        self.iwae_tensor = tensor(self.iwae)[:, None]
        self.score_free_tensor = tensor(self.score_free)[:, None, None]
        self.dreg_tensor = tensor(self.dreg)[:, None, None, None]
        # valid[m, j]: draw j counts for member m (members with a smaller k are padded).
        self.valid = (torch.arange(self.max_k, device=device)[None] < self.k_tensor[:, None])[
            ..., None
        ]


def bounds_and_surrogate(
    log_joint: torch.Tensor,
    z: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    members: Members,
    stopped: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of M models (or sets of draws) at once, and a surrogate whose gradient is each
    one's chosen estimator of its bound's gradient.

    ``log_joint``: log p(x, z) ``[M, K, batch]`` for draws ``z`` ``[M, K, batch, dim]`` from
    q(z|x) with ``mean``/``logvar`` (``[M, 1, batch, dim]``, or ``[M, K, batch, dim]`` where
    q's units depend on the layer below); member m uses its first ``k`` draws. ``stopped``:
    q's mean and log variance with q's parameters held fixed but z's paths live
    (``StochasticLayers.draw(..., stopped_q=True)``), which STL and DReG members need for a
    gradient; their log q is taken from it. ``z`` must be the node that log p and log q
    see, apart from the draws that later layers were drawn from: DReG's weighting acts on
    its gradient. Returns (bounds, surrogate), ``[M, batch]``. Nothing here waits for the
    device: what to compute is decided from ``members``' host values.
    """
    m = members
    score_free = any(m.score_free) and torch.is_grad_enabled()
    if score_free and stopped is None:
        raise ValueError("STL and DReG need q's mean and log variance with q held fixed.")
    if not score_free:
        log_q = gaussian_log_density(z, mean, logvar)
    elif all(m.score_free):
        log_q = gaussian_log_density(z, *stopped)
    else:
        log_q = torch.where(
            m.score_free_tensor,
            gaussian_log_density(z, *stopped),
            gaussian_log_density(z, mean, logvar),
        )
    log_w = log_joint - log_q
    valid_log_w = log_w.masked_fill(~m.valid, -math.inf) if m.padded else log_w
    bounds = []
    if any(m.iwae):
        bounds.append(
            torch.logsumexp(valid_log_w, 1) - torch.log(m.k_tensor.to(log_w.dtype))[:, None]
        )
    if not all(m.iwae):
        summed = log_w.masked_fill(~m.valid, 0).sum(1) if m.padded else log_w.sum(1)
        bounds.append(summed / m.k_tensor[:, None])
    bounds = bounds[0] if len(bounds) == 1 else torch.where(m.iwae_tensor, *bounds)
    if not score_free:
        return bounds, bounds
    # The gradient of either bound is sum_i weight_i grad log w_i, with the IWAE's normalised
    # weights or the VAE's 1/k, held fixed.
    weights = torch.where(
        m.iwae_tensor[..., None],
        torch.softmax(valid_log_w.detach(), 1),
        m.valid / m.k_tensor[:, None, None],
    )
    if any(m.dreg) and z.requires_grad:
        # DReG: the path gradient through z_i once more weighted by its normalised weight.
        z.register_hook(lambda grad: torch.where(m.dreg_tensor, grad * weights[..., None], grad))
    weighted = (weights * log_w.masked_fill(~m.valid, 0)).sum(1)
    return bounds, torch.where(m.score_free_tensor[:, :, 0], weighted, bounds)
