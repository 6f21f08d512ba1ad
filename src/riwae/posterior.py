"""q_IW on a grid against the true posterior of a synthetic 2D target (the paper's Figure 1)."""

import math

import numpy as np
import pandas as pd
import torch

from riwae.grid import Grid2D
from riwae.qiw import marginal_log_density
from riwae.targets import DiagGaussian, GaussianMixtureTarget


def qiw_log_density_on_grid(
    target: GaussianMixtureTarget,
    proposal: DiagGaussian,
    grid: Grid2D,
    k: int,
    sample_sets: int,
    generator: torch.Generator,
    others: int | None = None,
) -> torch.Tensor:
    """Monte Carlo log q_IW at every grid point from ``sample_sets`` sets of other samples.

    ``others`` defaults to the correct k - 1; pass k to get the original figure code's density.
    """
    others = k - 1 if others is None else others
    z_others = proposal.sample((sample_sets, others), generator)
    log_w_others = target.log_joint(z_others) - proposal.log_prob(z_others)
    log_joint, log_q = target.log_joint(grid.points), proposal.log_prob(grid.points)
    return marginal_log_density(log_joint, log_q, log_w_others, k)


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

    Returns arrays (``axis``, ``log_posterior`` and, for each k of ``figure_ks``,
    ``log_qiw_k{k}`` and the original code's ``log_qiw_original_k{k}``) and a table with,
    for each k and variant, the density's integral over the grid and its total variation
    distance to the posterior (and, for the original variant, to the correct q_IW).
    """
    generator = torch.Generator().manual_seed(seed)
    log_posterior = target.log_joint(grid.points) - target.log_evidence
    arrays = {"axis": grid.axis.numpy(), "log_posterior": grid.image(log_posterior).numpy()}
    rows = []
    for k in sorted(set(figure_ks) | set(distance_ks)):
        correct = qiw_log_density_on_grid(target, proposal, grid, k, sample_sets, generator)
        variants = {"correct": correct}
        if k in figure_ks:
            variants["original"] = qiw_log_density_on_grid(
                target, proposal, grid, k, sample_sets, generator, others=k
            )
            arrays[f"log_qiw_k{k}"] = grid.image(correct).numpy()
            arrays[f"log_qiw_original_k{k}"] = grid.image(variants["original"]).numpy()
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
