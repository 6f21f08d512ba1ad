"""Log-densities, and the bounds built from log-weights (``riwae.models.VAE.log_weights``).

Conventions: latents have shape ``[k, batch, dim]`` and log-weights ``[k, batch]``.
The k-sample VAE bound, the IWAE bound and the objectives that followed it (``Objective``)
are reductions of the same log-weights; every sum of weights goes through ``logsumexp`` so
no unnormalised weight is exponentiated.
"""

import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.autograd.function import once_differentiable

LOG_2PI = math.log(2 * math.pi)


def gaussian_log_density(z: torch.Tensor, mean: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """log N(z; mean, diag(exp(logvar))), summed over the last dimension."""
    return -0.5 * (LOG_2PI + logvar + (z - mean).square() * torch.exp(-logvar)).sum(-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return -0.5 * (LOG_2PI + z.square()).sum(-1)


# Below -SATURATION a logit's sigmoid nears float32's smallest normal number (exp(-87.3)),
# where it loses digits and then underflows; log sigmoid(u) = u there, to within e^-80.
SATURATION = 80.0


def triton_usable(logits: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether ``riwae.triton_kernels`` computes the likelihood of these tensors: CUDA ones
    (or any under Triton's interpreter, ``TRITON_INTERPRET=1``), asked without importing
    Triton for the CPU's."""
    if not (logits.is_cuda or os.environ.get("TRITON_INTERPRET") == "1"):
        return False
    from riwae import triton_kernels

    return triton_kernels.usable(logits, x)


class FusedBernoulliLogLikelihood(torch.autograd.Function):
    """``bernoulli_log_likelihood`` and its gradient as one Triton kernel each way, one pass
    over the logits: log sigmoid(u), u = logits * (2x - 1), summed over pixels, and
    sigmoid(-u) * (2x - 1) * grad (``riwae.triton_kernels``)."""

    @staticmethod
    def forward(ctx, logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        from riwae import triton_kernels

        ctx.save_for_backward(logits, x)
        return triton_kernels.bernoulli_forward(logits, x)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        from riwae import triton_kernels

        return triton_kernels.bernoulli_backward(*ctx.saved_tensors, grad), None


def bernoulli_log_likelihood(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """log Bernoulli(x; sigmoid(logits)), summed over the last dimension (pixels), for
    binarised pixels ``x`` (0 or 1; the images are). ``logits`` may carry leading sample
    dimensions that ``x`` lacks; x is broadcast.

    On CUDA (float32, with Triton) one fused pass each way (``FusedBernoulliLogLikelihood``;
    there torch's formula below takes several kernels and as many passes over the
    ``[members, k x batch, 784]`` logits, about half a step's floor). On the CPU torch's
    binary cross-entropy: measured here, the fused formula in torch's operations was no
    faster (7.1 against 6.7 ms forward and backward at k = 50), so the CPU keeps the
    formula, and the numbers, it always had."""
    x = x.expand_as(logits)
    if triton_usable(logits, x) and not x.requires_grad:
        return FusedBernoulliLogLikelihood.apply(logits, x)
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

# Training objectives, each a reduction of a model's log-weights; the last three are
# Rainforth et al.'s (2018, "Tighter variational bounds are not necessarily better").
OBJECTIVES = ("vae", "iwae", "miwae", "ciwae", "piwae")
BLOCKED = ("miwae", "piwae")  # objectives that reduce blocks of k draws, m blocks per image


@dataclass(frozen=True)
class Objective:
    """A model's training objective: its name, k and hyper-parameters.

    - ``vae``: the k-sample ELBO, the mean of k log-weights.
    - ``iwae``: the IWAE bound of k draws, log (1/k) sum_i w_i.
    - ``miwae`` (m, k): the mean of m IWAE bounds of k draws each, from m x k independent
      draws.
    - ``ciwae`` (beta, k): beta * L_VAE + (1 - beta) * L_IWAE of the same k draws.
    - ``piwae`` (m, k): the decoder (p) takes the gradient of the IWAE bound of all m x k
      draws, the encoder (q) that of MIWAE(m, k) of the same draws. Its value, the bound
      reported for it, is the IWAE bound of the m x k draws.

    Every estimator composes with every objective: STL drops q's score term of every draw;
    DReG weights each draw's path gradient once more by its normalised weight in the IWAE
    bound it belongs to (of its block for MIWAE and PIWAE's encoder; of the IWAE part of
    CIWAE, whose VAE part takes STL's gradient; the k-sample ELBO's DReG is STL).
    """

    name: str
    k: int  # draws per IWAE bound: all draws but for miwae and piwae
    m: int | None = None  # miwae, piwae: the number of bounds of k draws
    beta: float | None = None  # ciwae: the weight of the k-sample ELBO

    def __post_init__(self):
        if self.name not in OBJECTIVES:
            raise ValueError(
                f"Unknown objective {self.name!r}; use one of {', '.join(OBJECTIVES)}."
            )
        if self.k < 1:
            raise ValueError(f"k = {self.k} draws per bound is too few; set k to 1 or more.")
        if self.name in BLOCKED and self.m is None:
            raise ValueError(
                f"Objective {self.name} needs m, its number of IWAE bounds of k draws each; "
                "set m to 1 or more."
            )
        if self.name not in BLOCKED and self.m is not None:
            raise ValueError(
                f"Objective {self.name} takes no m (only miwae and piwae do); remove m."
            )
        if self.m is not None and self.m < 1:
            raise ValueError(f"m = {self.m} bounds is too few for {self.name}; set m to 1 or more.")
        if self.name == "ciwae" and self.beta is None:
            raise ValueError(
                "Objective ciwae needs beta, the weight in beta * L_VAE + (1 - beta) * L_IWAE; "
                "set beta between 0 and 1."
            )
        if self.name != "ciwae" and self.beta is not None:
            raise ValueError(f"Objective {self.name} takes no beta (only ciwae does); remove beta.")
        if self.beta is not None and not 0 <= self.beta <= 1:
            raise ValueError(f"ciwae's beta = {self.beta} is not between 0 and 1; set it there.")

    @property
    def draws(self) -> int:
        """Draws per image: m x k for miwae and piwae, else k."""
        return (self.m or 1) * self.k


class Members:
    """What M bounds computed at once know of their members: each one's objective (with k
    and hyper-parameters) and gradient estimator. Held on the host, to choose what to
    compute without asking the device, and as device tensors, for the per-member choices.

    Member m uses the first ``draws[m]`` of ``max_draws`` draws (the others are padding).
    MIWAE and PIWAE members see their draws also as ``[m, k]`` blocks, laid out for all
    members at once as ``[max m, max k]`` of the blocked members."""

    def __init__(self, objectives: list[Objective], estimators, device=None):
        unknown = set(estimators) - set(ESTIMATORS)
        if unknown:
            raise ValueError(f"Unknown estimator {unknown.pop()!r}; use one of {ESTIMATORS}.")
        self.objectives, self.estimators = list(objectives), list(estimators)
        self.names = {o.name for o in self.objectives}
        self.draws = [o.draws for o in self.objectives]
        self.max_draws = max(self.draws)
        self.padded = min(self.draws) < self.max_draws
        self.score_free = [e != "reparam" for e in self.estimators]
        # DReG of the k-sample ELBO is STL: every draw's normalised weight is 1/k, fixed.
        self.dreg = [
            e == "dreg" and o.name != "vae"
            for o, e in zip(self.objectives, self.estimators, strict=True)
        ]
        # Members whose gradient is that of their bound's value; the others take a surrogate.
        self.own_gradient = [
            e == "reparam" and o.name != "piwae"
            for o, e in zip(self.objectives, self.estimators, strict=True)
        ]
        tensor = lambda values: torch.tensor(values, device=device)  # noqa: E731
        self.draws_tensor = tensor(self.draws)
        self.is_objective = {
            name: tensor([o.name == name for o in self.objectives]) for name in self.names
        }
        self.beta = tensor([o.beta or 0.0 for o in self.objectives])[:, None]
        self.own_gradient_tensor = tensor(self.own_gradient)[:, None]
        self.score_free_tensor = tensor(self.score_free)[:, None, None]
        self.dreg_tensor = tensor(self.dreg)[:, None, None, None]
        # valid[m, j]: draw j counts for member m (members with fewer draws are padded).
        draw = torch.arange(self.max_draws, device=device)
        self.valid = (draw[None] < self.draws_tensor[:, None])[..., None]
        if self.names & set(BLOCKED):
            self._lay_out_blocks(draw, device)

    def _lay_out_blocks(self, draw: torch.Tensor, device) -> None:
        """Where each draw of a blocked member sits in the ``[M, max m, max k]`` layout, and
        back. Other members get one block of one draw, unused."""
        shapes = [(o.m, o.k) if o.name in BLOCKED else (1, 1) for o in self.objectives]
        blocks = torch.tensor([b for b, _ in shapes], device=device)[:, None, None]
        per_block = torch.tensor([k for _, k in shapes], device=device)[:, None, None]
        self.block_shape = tuple(max(sizes) for sizes in zip(*shapes, strict=True))
        block = torch.arange(self.block_shape[0], device=device)[None, :, None]
        within = torch.arange(self.block_shape[1], device=device)[None, None, :]
        self.in_block = ((block < blocks) & (within < per_block))[..., None]
        self.block_exists = (block < blocks)[:, :, 0, None]  # [M, max m, 1]
        # Entries beyond a block's k count for nothing (-inf); blocks beyond m are left out
        # later, and hold zeros so that nothing in them is undefined.
        self.block_fill = torch.where(self.block_exists[..., None], -math.inf, 0.0)
        self.block_source = torch.where(
            self.in_block[..., 0], block * per_block + within, 0
        ).flatten(1)  # [M, max m * max k]: the draw at each place of the layout
        self.block_size = per_block[:, :, 0]  # [M, 1]
        self.block_count = blocks[:, :, 0]  # [M, 1]
        self.block_place = torch.where(
            draw[None] < self.block_count * self.block_size,
            draw[None] // self.block_size * self.block_shape[1] + draw[None] % self.block_size,
            0,
        )  # [M, max_draws]: the place of each draw in the flattened layout

    def blocks(self, log_w: torch.Tensor) -> torch.Tensor:
        """``log_w`` ``[M, max_draws, batch]`` laid out as ``[M, max m, max k, batch]``."""
        batch = log_w.shape[-1]
        taken = log_w.gather(1, self.block_source[..., None].expand(-1, -1, batch))
        taken = taken.view(len(self.draws), *self.block_shape, batch)
        return torch.where(self.in_block, taken, self.block_fill.to(log_w.dtype))

    def unblock(self, blocked: torch.Tensor) -> torch.Tensor:
        """The inverse of ``blocks``: ``[M, max_draws, batch]``, zero at padding draws."""
        flat = blocked.flatten(1, 2)
        taken = flat.gather(1, self.block_place[..., None].expand(-1, -1, flat.shape[-1]))
        return taken * self.valid

    def select(self, values: dict[str, torch.Tensor | None]) -> torch.Tensor:
        """Each member's entry of ``values`` (by objective name, leading dim M; only the
        objectives present are read), chosen on the device."""
        names = [name for name in OBJECTIVES if name in self.names]
        chosen = values[names[0]]
        for name in names[1:]:
            mask = self.is_objective[name].view(-1, *[1] * (chosen.dim() - 1))
            chosen = torch.where(mask, values[name], chosen)
        return chosen


def bounds_and_surrogate(
    log_joint: torch.Tensor,
    z: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    members: Members,
    stopped: tuple[torch.Tensor, torch.Tensor] | None = None,
    log_joint_fixed_z: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Bounds of M models (or sets of draws) at once, and a surrogate whose gradient is each
    one's chosen estimator of its objective's gradient.

    ``log_joint``: log p(x, z) ``[M, K, batch]`` for draws ``z`` ``[M, K, batch, dim]`` from
    q(z|x) with ``mean``/``logvar`` (``[M, 1, batch, dim]``, or ``[M, K, batch, dim]`` where
    q's units depend on the layer below); member m uses its first ``draws`` draws. ``stopped``:
    q's mean and log variance with q's parameters held fixed but z's paths live
    (``StochasticLayers.draw(..., stopped_q=True)``), which STL and DReG members need for a
    gradient; their log q is taken from it. ``log_joint_fixed_z``: log p(x, z) again, with z
    detached (gradient to p's parameters only), which PIWAE members need for a gradient.
    ``z`` must be the node that log p and log q see, apart from the draws that later layers
    were drawn from: DReG's weighting acts on its gradient. Returns (bounds, surrogate),
    ``[M, batch]``. Nothing here waits for the device: what to compute is decided from
    ``members``' host values.
    """
    m = members
    gradient = torch.is_grad_enabled()
    score_free = any(m.score_free) and gradient
    if score_free and stopped is None:
        raise ValueError("STL and DReG need q's mean and log variance with q held fixed.")
    if "piwae" in m.names and gradient and log_joint_fixed_z is None:
        raise ValueError("PIWAE needs log p(x, z) at z held fixed for its decoder's gradient.")
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
    beta = m.beta.to(log_w.dtype)
    uses_all = m.names & {"iwae", "ciwae", "piwae"}  # the IWAE bound of all draws
    uses_mean = m.names & {"vae", "ciwae"}  # the mean log-weight
    iwae = vae = blocked = miwae = ciwae = None
    if uses_all:
        iwae = torch.logsumexp(valid_log_w, 1) - torch.log(m.draws_tensor.to(log_w.dtype))[:, None]
    if uses_mean:
        summed = log_w.masked_fill(~m.valid, 0).sum(1) if m.padded else log_w.sum(1)
        vae = summed / m.draws_tensor[:, None]
    if "ciwae" in m.names:
        ciwae = beta * vae + (1 - beta) * iwae
    if m.names & set(BLOCKED):
        blocked = m.blocks(log_w)
        per_block = torch.logsumexp(blocked, 2) - torch.log(m.block_size.to(log_w.dtype))[:, None]
        miwae = per_block.masked_fill(~m.block_exists, 0).sum(1) / m.block_count
    bounds = m.select({"vae": vae, "iwae": iwae, "miwae": miwae, "ciwae": ciwae, "piwae": iwae})
    if not gradient or all(m.own_gradient):
        return bounds, bounds
    # Every objective's gradient is sum_i c_i grad log w_i, with weights c_i held fixed: the
    # normalised weights of all draws (IWAE), 1/k (VAE), their mixture (CIWAE), or the
    # normalised weights within each block over m (MIWAE, PIWAE's encoder).
    normalised = torch.softmax(valid_log_w.detach(), 1) if uses_all else None
    per_draw = m.valid / m.draws_tensor[:, None, None] if uses_mean else None
    in_block = m.unblock(torch.softmax(blocked.detach(), 2)) if blocked is not None else None
    miwae_weights = in_block / m.block_count[..., None] if in_block is not None else None
    mixed = (
        beta[..., None] * per_draw + (1 - beta[..., None]) * normalised
        if ciwae is not None
        else None
    )
    weights = m.select(
        {
            "vae": per_draw,
            "iwae": normalised,
            "miwae": miwae_weights,
            "ciwae": mixed,
            "piwae": miwae_weights,
        }
    )
    if any(m.dreg) and z.requires_grad:
        # DReG: the path gradient through z_i, which carries weights_i, once more weighted by
        # z_i's normalised weight in its IWAE bound; CIWAE's IWAE part alone is reweighted,
        # (beta/k + (1 - beta) w_i^2) / weights_i (0 where weights_i is 0: no gradient there).
        if ciwae is not None:
            dreg_ciwae = beta[..., None] * per_draw + (1 - beta[..., None]) * normalised**2
            dreg_ciwae = torch.where(weights > 0, dreg_ciwae / weights, 0)
        else:
            dreg_ciwae = None
        again = m.select(
            {
                "vae": per_draw,  # not read: DReG of the k-sample ELBO is STL
                "iwae": normalised,
                "miwae": in_block,
                "ciwae": dreg_ciwae,
                "piwae": in_block,
            }
        )
        z.register_hook(lambda grad: torch.where(m.dreg_tensor, grad * again[..., None], grad))
    weighted = (weights * log_w.masked_fill(~m.valid, 0)).sum(1)
    if "piwae" in m.names:
        # PIWAE routes two weightings to the two networks. log w_i weighted by the encoder's
        # weights gives q its gradient, and p the same weights; log p(x, z_i) at z_i held
        # fixed reaches p alone, and adds the difference to the IWAE bound's weights. Cost:
        # log p once more, forward and backward, for every member of the stack.
        decoder_only = torch.where(m.is_objective["piwae"][:, None, None], normalised - weights, 0)
        weighted = weighted + (decoder_only * log_joint_fixed_z.masked_fill(~m.valid, 0)).sum(1)
    return bounds, torch.where(m.own_gradient_tensor, bounds, weighted)
