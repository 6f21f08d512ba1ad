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

import logging
import time
from collections.abc import Callable, Iterable

import numpy as np
import pandas as pd
import torch

from riwae.bounds import Members, Objective
from riwae.models import VAE, StackedVAE
from riwae.numeric import in_chunks

log = logging.getLogger("riwae")


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


def noise_floor(repeats: int) -> float:
    """The SNR that ``repeats`` repeats show for a gradient whose mean is zero: |mean| / std
    is then about |N(0, 1)| / sqrt(repeats), whose mean is sqrt(2 / pi) / sqrt(repeats).
    A network's mean SNR near it says that the repeats cannot tell its signal from zero."""
    return float(np.sqrt(2 / np.pi / repeats))


def snr_slopes(table: pd.DataFrame) -> pd.DataFrame:
    """Per model, network and estimator of a ``gradient_snr`` table (with a ``model``
    column): the least-squares slope of log mean SNR against log k (Rainforth et al.'s
    asymptotes: -1/2 for IWAE's encoder, +1/2 for its decoder), and the mean SNR at the
    smallest and the largest k."""
    rows = []
    for (model, network, estimator), frame in table.groupby(
        ["model", "network", "estimator"], sort=False
    ):
        frame = frame.sort_values("k")
        slope = np.polyfit(np.log(frame.k), np.log(frame.mean_snr), 1)[0]
        rows.append(
            {
                "model": model,
                "network": network,
                "estimator": estimator,
                "k_first": int(frame.k.iloc[0]),
                "k_last": int(frame.k.iloc[-1]),
                "snr_first": float(frame.mean_snr.iloc[0]),
                "snr_last": float(frame.mean_snr.iloc[-1]),
                "slope": float(slope),
                "noise_floor": noise_floor(int(frame.repeats.iloc[0])),
            }
        )
    return pd.DataFrame(rows)


def snr_markdown(table: pd.DataFrame) -> str:
    """The mean SNR of each model, network and estimator at each k, with the slope of
    ``snr_slopes``, as a pipe table and a note on how it was measured."""
    slopes = snr_slopes(table).set_index(["model", "network", "estimator"]).slope
    ks = sorted(table.k.unique())
    lines = [
        "| model | network | estimator | " + " | ".join(f"k = {k}" for k in ks) + " | slope |",
        "|---|---|---|" + "---:|" * (len(ks) + 1),
    ]
    for key, frame in table.groupby(["model", "network", "estimator"], sort=False):
        snr = frame.set_index("k").mean_snr
        cells = [f"{snr[k]:.3f}" if k in snr.index else "" for k in ks]
        lines.append(f"| {' | '.join(key)} | {' | '.join(cells)} | {slopes[key]:+.2f} |")
    repeats, images = int(table.repeats.iloc[0]), int(table.images.iloc[0])
    objective = table.objective.iloc[0].upper()
    lines += [
        "",
        f"Mean over each network's parameters of |mean| / std of the gradient of the "
        f"{objective} bound with k draws, over {repeats} independent repeats, each the "
        f"gradient of the bound averaged over the same {images} binarised test image(s). "
        "Slope: least squares of log SNR against log k (Rainforth et al.: -1/2 for the "
        "encoder, +1/2 for the decoder, as k grows). A gradient with no signal shows an "
        f"SNR of about {noise_floor(repeats):.3f} with {repeats} repeats: values near it "
        "are noise.",
    ]
    return "\n".join(lines) + "\n"


def model_snr(model: VAE, x: torch.Tensor, settings: dict, seed: int) -> pd.DataFrame:
    """``gradient_snr`` of the IWAE bound for each of ``settings["estimators"]`` at
    ``settings["k"]`` (``settings``: the config's ``snr`` section), with ``repeats``."""
    frames = []
    for estimator in settings["estimators"]:
        start = time.perf_counter()
        frames.append(
            gradient_snr(
                model, x, settings["k"], "iwae", estimator, repeats=settings["repeats"], seed=seed
            )
        )
        log.info("%s: %.1f s", estimator, time.perf_counter() - start)
    return pd.concat(frames, ignore_index=True)
