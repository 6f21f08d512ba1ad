"""The implicit distribution q_IW: its sampler (the paper's Algorithm 1) and its densities."""

import math

import torch

from riwae.numeric import GRID_VALUES, in_chunks


def sir_index(log_w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Algorithm 1's categorical pick: for each column of ``log_w [k, batch]`` draw an index
    j ~ Cat(w~) with w~ = w / sum(w). Returns a ``[batch]`` tensor of indices."""
    probs = torch.softmax(log_w, dim=0).T  # normalised before any exponentiation
    return torch.multinomial(probs, 1, generator=generator).squeeze(1)


def sir_sample(
    z: torch.Tensor, log_w: torch.Tensor, generator: torch.Generator | None = None
) -> torch.Tensor:
    """One q_IW draw per data point from k proposals ``z [k, batch, dim]`` with log-weights
    ``log_w [k, batch]``: sampling-importance-resampling. Returns ``[batch, dim]``."""
    index = sir_index(log_w, generator)
    return z[index, torch.arange(z.shape[1], device=z.device)]


def conditional_log_density(log_w: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """log q_IW(z_i | x, z_rest) = log(k w~_i q(z_i|x)) for every member i of a sample set.

    Written from the normalised weights and q, not from p(x, z_i), so that the identity
    check compares two different computations. Shapes ``[k, batch]``.
    """
    k = log_w.shape[0]
    return math.log(k) + torch.log_softmax(log_w, dim=0) + log_q


def conditional_elbo(log_joint: torch.Tensor, log_q: torch.Tensor) -> torch.Tensor:
    """L_VAE of the conditional q_IW for each sample set: the expectation, under picking
    z_i with probability w~_i, of log p(x, z_i) - log q_IW(z_i | x, z_rest). Shape ``[batch]``."""
    log_w = log_joint - log_q
    log_qiw = conditional_log_density(log_w, log_q)
    return (torch.softmax(log_w, dim=0) * (log_joint - log_qiw)).sum(0)


def marginal_log_density(
    log_joint: torch.Tensor,
    log_q: torch.Tensor,
    log_w_others: torch.Tensor,
    k: int,
    chunk_elements: int = GRID_VALUES,
) -> torch.Tensor:
    """Monte Carlo log q_IW(z|x) at points z (e.g. a grid), from the paper's expectation

        q_IW(z|x) = E[ p(x, z) / ((1/k) (w(z) + sum_{j=2..k} w_j)) ],  z_j ~ q(z|x).

    ``log_joint``, ``log_q``: ``[points]`` at the evaluation points; ``log_w_others``:
    ``[n, m]``, n independent sets of m other log-weights, averaged over n (every point
    shares a set's other samples). The correct q_IW has m = k - 1; the original figure code
    used m = k, which this function computes when given k others. Work is done in chunks of
    sets so that memory stays below ``chunk_elements`` values.
    """
    n, points = log_w_others.shape[0], log_joint.shape[0]
    log_sum_others = torch.logsumexp(log_w_others, dim=1)  # -inf when m = 0 (k = 1: q_IW = q)
    log_w = log_joint - log_q
    chunk_sums = [
        torch.logsumexp(
            log_joint + math.log(k) - torch.logaddexp(log_w[None, :], part[:, None]), dim=0
        )
        for part in (log_sum_others[a:b] for a, b in in_chunks(n, points, chunk_elements))
    ]
    return torch.logsumexp(torch.stack(chunk_sums), dim=0) - math.log(n)
