"""q_IW on a grid against the true posterior: of the paper's synthetic 2D target (its Figure 1),
and of real digits under a trained 2D model."""

import math

import numpy as np
import pandas as pd
import torch

from riwae.data import chosen_images
from riwae.grid import Grid2D, fitted_grid, grid_of_axes, square_grid
from riwae.numeric import POSTERIOR_DRAWS, in_chunks
from riwae.qiw import marginal_log_density
from riwae.tables import frame_over_seeds
from riwae.targets import DiagGaussian, GaussianMixtureTarget, ModelPosterior, cremer2d_target


def other_log_weights(
    target,
    proposal: DiagGaussian,
    k: int,
    sample_sets: int,
    generator: torch.Generator,
    others: int | None = None,
    chunk_samples: int = POSTERIOR_DRAWS,
) -> torch.Tensor:
    """Log-weights of the other samples in the marginal q_IW's expectation: ``[sample_sets,
    others]``, others = k - 1 by default (pass k for the original figure code's density).
    ``target`` has ``log_joint(z)``; draws are weighted in chunks of at most
    ``chunk_samples``, so a decoder's memory stays bounded."""
    others = k - 1 if others is None else others
    log_w = []
    for start, stop in in_chunks(sample_sets, others, chunk_samples):
        z = proposal.sample((stop - start, others), generator)
        log_w.append(target.log_joint(z) - proposal.log_prob(z))
    return torch.cat(log_w)


def qiw_log_density_on_grid(
    target,
    proposal: DiagGaussian,
    grid: Grid2D,
    k: int,
    sample_sets: int,
    generator: torch.Generator,
    others: int | None = None,
) -> torch.Tensor:
    """Monte Carlo log q_IW at every grid point from ``sample_sets`` sets of other samples.

    ``others`` defaults to the correct k - 1; pass k to get the original figure code's density.
    Callers that need several densities on one grid evaluate the grid once and call
    ``marginal_log_density`` with ``other_log_weights`` themselves.
    """
    log_w_others = other_log_weights(target, proposal, k, sample_sets, generator, others)
    log_joint, log_q = target.log_joint(grid.points), proposal.log_prob(grid.points)
    return marginal_log_density(log_joint, log_q, log_w_others, k)


def qiw_grid_arrays(
    target,
    proposal: DiagGaussian,
    grid: Grid2D,
    ks: list[int],
    sample_sets: int,
    generator: torch.Generator,
    log_evidence: float | None = None,
) -> dict[str, np.ndarray]:
    """The arrays of one posterior figure: the grid axes, the normalised log posterior
    (by ``log_evidence`` when known, else by quadrature on the grid), and log q_IW for each
    k (``log_qiw_k{k}``; k = 1 is q itself)."""
    log_joint, log_q = target.log_joint(grid.points), proposal.log_prob(grid.points)
    if log_evidence is None:
        log_evidence = grid.log_integral(log_joint)
    arrays = {
        "x_axis": grid.x_axis.numpy(),
        "y_axis": grid.y_axis.numpy(),
        "log_posterior": grid.image(log_joint - log_evidence).numpy(),
    }
    for k in ks:
        log_w_others = other_log_weights(target, proposal, k, sample_sets, generator)
        log_qiw = marginal_log_density(log_joint, log_q, log_w_others, k)
        arrays[f"log_qiw_k{k}"] = grid.image(log_qiw).numpy()
    return arrays


def synthetic_posterior_grid(settings: dict, seed: int):
    """Figure 1's ``synthetic_posterior`` of the paper's synthetic 2D target
    (``cremer2d_target``) on a square grid; ``settings``: the config's ``posterior``
    section."""
    target, proposal = cremer2d_target()
    grid = square_grid(settings["grid_limit"], settings["grid_size"])
    return synthetic_posterior(
        target,
        proposal,
        grid,
        settings["figure_k"],
        settings["distance_k"],
        settings["sample_sets"],
        seed,
    )


def synthetic_posterior(
    target: GaussianMixtureTarget,
    proposal: DiagGaussian,
    grid: Grid2D,
    figure_ks: list[int],
    distance_ks: list[int],
    sample_sets: int,
    seed: int,
) -> tuple[dict[str, np.ndarray], pd.DataFrame]:
    """Grid densities for the figure and a table of distances to the true posterior.

    Returns ``qiw_grid_arrays`` for ``figure_ks`` plus, for each of them, the original
    code's ``log_qiw_original_k{k}``, and a table with, for each k of either list and
    variant, the density's integral over the grid and its total variation distance to the
    posterior (and, for the original variant, to the correct q_IW).
    """
    generator = torch.Generator().manual_seed(seed)
    arrays = qiw_grid_arrays(
        target, proposal, grid, figure_ks, sample_sets, generator, target.log_evidence
    )
    log_posterior = torch.from_numpy(arrays["log_posterior"]).reshape(-1)
    rows = []
    for k in sorted(set(figure_ks) | set(distance_ks)):
        if k in figure_ks:
            correct = torch.from_numpy(arrays[f"log_qiw_k{k}"]).reshape(-1)
            original = qiw_log_density_on_grid(
                target, proposal, grid, k, sample_sets, generator, others=k
            )
            arrays[f"log_qiw_original_k{k}"] = grid.image(original).numpy()
            variants = {"correct": correct, "original": original}
        else:
            correct = qiw_log_density_on_grid(target, proposal, grid, k, sample_sets, generator)
            variants = {"correct": correct}
        for variant, log_density in variants.items():
            rows.append(
                {
                    "k": k,
                    "variant": variant,
                    "integral": math.exp(grid.log_integral(log_density)),
                    "tv_to_posterior": grid.total_variation(log_density, log_posterior),
                    "tv_to_correct": grid.total_variation(log_density, correct),
                }
            )
    return arrays, pd.DataFrame(rows)


def fitted_posteriors(model, images: torch.Tensor, grid_limit: float, grid_size: int, **fit):
    """For each binarised image (``[images, pixels]``, float64) under a 2D model: its
    posterior (``ModelPosterior``), q, and a ``grid_size`` x ``grid_size`` grid within
    [-grid_limit, grid_limit]^2 fitted to where the posterior and q matter (``fitted_grid``,
    which takes ``fit``)."""
    for x in images:
        posterior = ModelPosterior(model, x)
        q = posterior.proposal()
        yield (
            posterior,
            q,
            fitted_grid([posterior.log_joint, q.log_prob], grid_limit, grid_size, **fit),
        )


def digit_posterior_arrays(model, test: torch.Tensor, ks: list[int], settings: dict, seed: int):
    """For test digits chosen by ``seed`` (``riwae.data.chosen_images``) of the binarised test
    set: ``qiw_grid_arrays`` of each one's posterior under a 2D model, in float64, on a grid
    fitted to where the posterior and q have mass, with the image and its index.
    ``settings``: the ``posterior_*`` settings of the config's ``figures`` section."""
    indices = chosen_images(settings["posterior_digits"], len(test), seed)
    images = test[indices].double()
    generator = torch.Generator().manual_seed(seed)
    # Zoomed to where the densities are within 12 nats of their peaks: the figure's view.
    posteriors = fitted_posteriors(
        model.double(),
        images,
        settings["posterior_grid_limit"],
        settings["posterior_grid_size"],
        log_ratio=12.0,
    )
    sets = settings["posterior_sample_sets"]
    return [
        {
            **qiw_grid_arrays(posterior, q, grid, ks, sets, generator),
            "image": x.reshape(28, 28).numpy(),
            "index": index,
        }
        for (posterior, q, grid), x, index in zip(posteriors, images, indices, strict=True)
    ]


def digit_distances(digits: dict, ks: list[int]) -> pd.DataFrame:
    """Per trained 2D model (``digits``: ``riwae.spec.ModelSpec`` -> its
    ``digit_posterior_arrays``), test digit and k of ``ks``: the total variation distance
    between q_IW (k = 1: q) and the true posterior on the digit's grid."""
    rows = []
    for spec, arrays in digits.items():
        for digit in arrays:
            grid = grid_of_axes(
                torch.from_numpy(digit["x_axis"]), torch.from_numpy(digit["y_axis"])
            )
            log_posterior = torch.from_numpy(digit["log_posterior"]).reshape(-1)
            for k in ks:
                log_qiw = torch.from_numpy(digit[f"log_qiw_k{k}"]).reshape(-1)
                rows.append(
                    {
                        "model": spec.name,
                        "base_model": spec.base_name,
                        "seed": spec.settings.seed,
                        "image": int(digit["index"]),
                        "k": k,
                        "tv_to_posterior": grid.total_variation(log_qiw, log_posterior),
                    }
                )
    return pd.DataFrame(rows)


def digit_distances_over_seeds(distances: pd.DataFrame) -> pd.DataFrame:
    """``digit_distances`` per model (``base_model``) and k: each seed's mean over its
    digits, then the mean over seeds and the seeds' standard deviation."""
    keys = ["base_model", "k"]
    per_seed = distances.groupby([*keys, "seed"], sort=False).tv_to_posterior.mean()
    return frame_over_seeds(per_seed.reset_index(), keys)


def digit_distances_markdown(over_seeds: pd.DataFrame) -> str:
    """One row per model, one column per k: the mean total variation distance to the
    posterior over the test digits (with its sd over seeds when there are several)."""
    ks = list(dict.fromkeys(over_seeds.k))
    several = over_seeds.seeds.max() > 1
    lines = [
        "| model | seeds | " + " | ".join(f"TV(q_IW, posterior), k = {k}" for k in ks) + " |",
        "|---|---:|" + "---:|" * len(ks),
    ]
    for model, rows in over_seeds.groupby("base_model", sort=False):
        by_k = rows.set_index("k")
        cells = [
            f"{by_k.tv_to_posterior[k]:.3f}"
            + (f" (sd {by_k.tv_to_posterior_seed_sd[k]:.3f})" if several else "")
            for k in ks
        ]
        lines.append(f"| {model} | {int(by_k.seeds.iloc[0])} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "Total variation distance between q_IW (k = 1: q itself) and the true posterior of "
        "real test digits under each 2D model, on each digit's grid (the digit posteriors' "
        "figures); the mean over the digits"
        + (", then over training seeds (sd: the seeds' standard deviation)." if several else "."),
    ]
    return "\n".join(lines) + "\n"
