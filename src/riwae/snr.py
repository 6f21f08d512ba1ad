"""The signal-to-noise ratio of gradient estimates (Rainforth et al., 2018, "Tighter
variational bounds are not necessarily better"): for one model, images and an objective with
its estimator, each parameter's SNR = |E[g]| / std[g] over independent draws of the
gradient g of the objective averaged over the images (as a training step takes it).

Repeats are vectorised: copies of the model are stacked (``StackedVAE``), each with its own
draws, so that one backward pass gives each copy's gradient. Repeats come in chunks of
copies and images in chunks, so that no pass holds more than ``max_draws`` draws (k = 1000
fits); the moments are merged chunk by chunk in float64 (Chan et al.'s pairwise update),
so memory does not grow with the repeats. Every repeat's draws come from its own seed,
made from (``seed``, draws per image, repeat): the numbers do not depend on the chunking,
and objectives and estimators with the same draws per image see the same noise.
"""

from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from riwae.bounds import Members, Objective
from riwae.models import VAE, StackedVAE
from riwae.numeric import in_chunks


def repeat_seed(seed: int, draws: int, repeat: int) -> int:
    """The seed of one repeat's draws."""
    return int(np.random.SeedSequence([seed, draws, repeat]).generate_state(1)[0])


def repeat_gradients(
    model: VAE,
    x: torch.Tensor,
    objective: Objective,
    estimator: str,
    seeds: list[int],
    image_chunk: int,
) -> dict[str, torch.Tensor]:
    """One gradient of the objective's mean over the images ``x`` per seed, by network:
    ``{"encoder": [repeats, parameters], "decoder": ...}``, from copies of ``model``
    stacked, images taken ``image_chunk`` at a time (the gradients summed)."""
    parameter = next(model.parameters())
    device, dtype = parameter.device, parameter.dtype
    copies = len(seeds)
    stack = StackedVAE([model] * copies)  # each copy with its own parameters, so its gradient
    members = Members([objective] * copies, [estimator] * copies, device)
    shape = (objective.draws, len(x), stack.latent_dim)
    eps = torch.stack(
        [
            torch.randn(
                shape, generator=torch.Generator(device).manual_seed(s), device=device, dtype=dtype
            )
            for s in seeds
        ]
    )  # [copies, draws, images, latent_dim]
    with torch.enable_grad():
        for start, stop in in_chunks(len(x), 1, image_chunk):
            images = x[start:stop]
            _, surrogate = stack.bounds(
                images.expand(copies, *images.shape), eps[:, :, start:stop], members
            )
            (surrogate.sum() / len(x)).backward()
    grads = {"encoder": [], "decoder": []}
    for name, p in stack.named_parameters():
        grads["encoder" if "encoder" in name else "decoder"].append(p.grad.flatten(1))
    return {network: torch.cat(parts, 1) for network, parts in grads.items()}


class Moments:
    """Running count, mean, sum of squared deviations (M2) and "ever non-zero" of many
    vectors, merged a chunk at a time."""

    def __init__(self):
        self.count, self.mean, self.m2, self.nonzero = 0, None, None, None

    def add(self, samples: torch.Tensor) -> None:
        """``samples``: ``[n, parameters]``."""
        n, mean = len(samples), samples.mean(0)
        m2 = (samples - mean).square().sum(0)
        nonzero = (samples != 0).any(0)
        if self.count == 0:
            self.count, self.mean, self.m2, self.nonzero = n, mean, m2, nonzero
            return
        total = self.count + n
        delta = mean - self.mean
        self.mean = self.mean + delta * (n / total)
        self.m2 = self.m2 + m2 + delta.square() * (self.count * n / total)
        self.nonzero = self.nonzero | nonzero
        self.count = total

    def snr(self) -> torch.Tensor:
        """|mean| / std (sample standard deviation, over count - 1) per parameter: NaN
        (undefined) where the gradient is zero in every repeat, +inf where its standard
        deviation is zero but it is not (the same value in every repeat)."""
        std = (self.m2 / (self.count - 1)).sqrt()
        ratio = self.mean.abs() / torch.where(std > 0, std, 1.0)
        ratio = torch.where(std > 0, ratio, torch.inf)
        return torch.where(self.nonzero, ratio, torch.nan)


def snr_table(
    gradient_chunks: Callable[[Objective, str, list[int]], Iterable[dict[str, torch.Tensor]]],
    ks: list[int],
    objective: str = "iwae",
    estimator: str = "reparam",
    m: int | None = None,
    beta: float | None = None,
    repeats: int = 100,
    seed: int = 0,
) -> pd.DataFrame:
    """The SNR of ``estimator``'s gradient of ``objective`` (with ``m`` or ``beta`` where it
    has them) at each k of ``ks``, over ``repeats`` independent gradients, summarised per
    network: one row per k and network with the mean and the median of the per-parameter
    SNR over the network's ``parameters``. A parameter whose gradient is zero in every
    repeat has no SNR: it is left out of the mean and the median and counted in
    ``zero_gradient`` (see ``Moments.snr``).

    ``gradient_chunks(objective, estimator, seeds)`` yields the gradients of one repeat per
    seed, by network (``{network: [repeats in the chunk, parameters]}``), a chunk of
    repeats at a time; ``gradient_snr`` is the one of a VAE."""
    if repeats < 2:
        raise ValueError(f"repeats = {repeats}: a standard deviation needs 2 or more; raise it.")
    rows = []
    for k in ks:
        spec = Objective(objective, k, m, beta)
        seeds = [repeat_seed(seed, spec.draws, r) for r in range(repeats)]
        moments: dict[str, Moments] = {}
        for chunk in gradient_chunks(spec, estimator, seeds):
            for network, grads in chunk.items():
                moments.setdefault(network, Moments()).add(grads.double())
        for network, network_moments in moments.items():
            snr = network_moments.snr()
            defined = snr[~snr.isnan()].numpy(force=True)
            rows.append(
                {
                    "objective": objective,
                    "m": m,
                    "beta": beta,
                    "estimator": estimator,
                    "k": k,
                    "draws": spec.draws,
                    "network": network,
                    "parameters": len(defined),
                    "zero_gradient": len(snr) - len(defined),
                    "mean_snr": float(defined.mean()) if len(defined) else float("nan"),
                    "median_snr": float(np.median(defined)) if len(defined) else float("nan"),
                    "repeats": repeats,
                }
            )
    return pd.DataFrame(rows)


def gradient_snr(
    model: VAE,
    x: torch.Tensor,
    ks: list[int],
    objective: str = "iwae",
    estimator: str = "reparam",
    m: int | None = None,
    beta: float | None = None,
    repeats: int = 100,
    seed: int = 0,
    max_draws: int = 2**15,
    max_copies: int = 32,
) -> pd.DataFrame:
    """``snr_table`` of ``model`` (one or more stochastic layers) on images ``x`` ``[images,
    pixels]``: each repeat's gradient is that of the objective averaged over the images, as
    a training step takes it; networks ``encoder`` (q's parameters) and ``decoder`` (p's).

    No pass holds more than ``max_draws`` draws (repeats in the pass x draws per image x
    images in the pass; one image's draws may exceed it) nor more than ``max_copies`` copies
    of the model: a chunk of repeats is one pass over all images, or, where one repeat's
    draws of all images exceed ``max_draws``, one repeat taken a chunk of images at a time."""
    x = x.to(next(model.parameters()))

    def chunks(spec: Objective, estimator: str, seeds: list[int]):
        per_image = spec.draws
        image_chunk = min(len(x), max(1, max_draws // per_image))
        copies = max(1, min(max_copies, max_draws // (per_image * len(x))))
        for start, stop in in_chunks(len(seeds), 1, copies):
            yield repeat_gradients(model, x, spec, estimator, seeds[start:stop], image_chunk)

    table = snr_table(chunks, ks, objective, estimator, m, beta, repeats, seed)
    return table.assign(images=len(x))
