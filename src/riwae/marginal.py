"""The marginal q_IW placed among the other bounds (Domke and Sheldon, 2018):

    L_VAE[q] <= L_IWAE[q] <= L_VAE[q_IW marginal] <= log p(x),

all computable for a 2D latent space: the last two by quadrature on a grid, the marginal
q_IW density by its Monte Carlo expectation formula."""

import logging
import math

import pandas as pd
import torch

from riwae.checks import sampled_identity_terms
from riwae.grid import Grid2D, square_grid
from riwae.numeric import POSTERIOR_DRAWS, mean_and_se
from riwae.posterior import fitted_posteriors, other_log_weights
from riwae.qiw import marginal_log_density
from riwae.tables import frame_over_seeds
from riwae.targets import DiagGaussian, cremer2d_target

log = logging.getLogger("riwae")

# An inequality a <= b counts as violated only if a exceeds b by more than this many
# standard errors of the difference: the terms are Monte Carlo estimates.
ORDER_SIGMAS = 3.0


def not_above(a: float, se_a: float, b: float, se_b: float) -> bool:
    return a - b <= ORDER_SIGMAS * math.hypot(se_a, se_b)


def marginal_ordering(
    target,
    proposal: DiagGaussian,
    grid: Grid2D,
    ks: list[int],
    sample_sets: int,
    replicates: int,
    bound_sets: int,
    generator: torch.Generator,
) -> list[dict]:
    """For each k: L_VAE[q] and L_IWAE[q] (Monte Carlo over ``bound_sets`` sample sets),
    L_VAE[q_IW marginal] (quadrature of ``replicates`` independent grid estimates of the
    density, each averaged over ``sample_sets`` sets; mean and standard error over the
    replicates), log p(x) by quadrature, KL(q_IW marginal || posterior) = log p(x) -
    L_VAE[q_IW marginal], and whether each inequality holds within its error bars."""
    # The grid is evaluated once: only the other samples differ between replicates.
    log_joint, log_q = target.log_joint(grid.points), proposal.log_prob(grid.points)
    log_evidence = grid.log_integral(log_joint)
    rows = []
    for k in ks:
        iwae, _, vae_q = sampled_identity_terms(
            target, proposal, k, bound_sets, generator, chunk_samples=POSTERIOR_DRAWS
        )
        marginal = torch.tensor(
            [
                grid.elbo(
                    marginal_log_density(
                        log_joint,
                        log_q,
                        other_log_weights(target, proposal, k, sample_sets, generator),
                        k,
                    ),
                    log_joint,
                )
                for _ in range(replicates)
            ]
        )
        (q_mean, q_se), (iw_mean, iw_se) = mean_and_se(vae_q), mean_and_se(iwae)
        m_mean, m_se = mean_and_se(marginal)
        rows.append(
            {
                "k": k,
                "L_VAE[q]": q_mean,
                "L_VAE[q]_se": q_se,
                "L_IWAE[q]": iw_mean,
                "L_IWAE[q]_se": iw_se,
                "L_VAE[q_IW marginal]": m_mean,
                "L_VAE[q_IW marginal]_se": m_se,
                "log p(x)": log_evidence,
                "KL(q_IW marginal || posterior)": log_evidence - m_mean,
                "KL_se": m_se,
                "VAE <= IWAE": not_above(q_mean, q_se, iw_mean, iw_se),
                "IWAE <= marginal": not_above(iw_mean, iw_se, m_mean, m_se),
                "marginal <= log p(x)": not_above(m_mean, m_se, log_evidence, 0.0),
            }
        )
    for row in rows:
        row["ordered"] = (
            row["VAE <= IWAE"] and row["IWAE <= marginal"] and row["marginal <= log p(x)"]
        )
    return rows


def marginal_table(
    models: dict, images: torch.Tensor, indices: list[int], settings: dict, seed: int
) -> pd.DataFrame:
    """``marginal_ordering`` for the synthetic 2D target, then for each binarised test image
    (``images``, the test set's ``indices``) under each 2D model of ``models``
    (``riwae.spec.ModelSpec`` -> model), on a grid fitted to each image's posterior and q;
    in float64, with one generator throughout. ``settings``: the config's ``marginal``
    section. One row per case (``case``, ``image``: -1 for the synthetic target;
    ``base_model`` and training ``seed`` of a model) and k."""
    common = dict(
        ks=settings["k"],
        sample_sets=settings["sample_sets"],
        replicates=settings["replicates"],
        bound_sets=settings["bound_sets"],
        generator=torch.Generator().manual_seed(seed),
    )
    limit, size = settings["grid_limit"], settings["grid_size"]
    target, proposal = cremer2d_target()
    rows = marginal_ordering(target, proposal, square_grid(limit, size), **common)
    frames = [pd.DataFrame(rows).assign(case="synthetic 2D target", image=-1)]
    for spec, model in models.items():
        posteriors = fitted_posteriors(model.double(), images.double(), limit, size)
        for index, (posterior, q, grid) in zip(indices, posteriors, strict=True):
            rows = marginal_ordering(posterior, q, grid, **common)
            frames.append(
                pd.DataFrame(rows).assign(
                    case=spec.name, image=index, base_model=spec.base_name, seed=spec.settings.seed
                )
            )
            log.info("%s, test image %d done", spec.name, index)
    return pd.concat(frames, ignore_index=True)


def marginal_over_seeds(table: pd.DataFrame) -> pd.DataFrame:
    """Per 2D model (``base_model``) and k: KL(q_IW marginal || posterior) and the other
    quantities averaged over the test images of each training seed, then their mean over
    the seeds and the seeds' standard deviation (``*_seed_sd``), and the share of the cases
    (seeds x images) whose bounds are ordered."""
    models = table[table.image >= 0].assign(ordered=lambda t: t.ordered.astype(float))
    keys = ["base_model", "k"]
    per_seed = models.groupby([*keys, "seed"], sort=False).mean(numeric_only=True).reset_index()
    columns = [*keys, "seed", "KL(q_IW marginal || posterior)", "L_VAE[q_IW marginal]"]
    spread = frame_over_seeds(per_seed[columns], keys)
    ordered = models.groupby(keys, sort=False).ordered.mean().rename("ordered_share")
    return spread.merge(ordered.reset_index(), on=keys)


def marginal_markdown(table: pd.DataFrame, over_seeds: pd.DataFrame) -> str:
    """The four quantities per case and k, with one standard error, and the verdict; then,
    with several training seeds, each model's KL per k over its seeds (``over_seeds``:
    ``marginal_over_seeds``)."""
    lines = []
    for (case, image), rows in table.groupby(["case", "image"], sort=False):
        title = case if image < 0 else f"{case}, test image {image}"
        lines += [
            f"## {title}",
            "",
            "| k | L_VAE[q] | L_IWAE[q] | L_VAE[q_IW marginal] | log p(x) | KL(q_IW ‖ p) "
            "| ordered |",
            "|---:|---:|---:|---:|---:|---:|:---:|",
        ]
        for r in rows.to_dict("records"):
            lines.append(
                f"| {r['k']} | {r['L_VAE[q]']:.3f} ± {r['L_VAE[q]_se']:.3f} "
                f"| {r['L_IWAE[q]']:.3f} ± {r['L_IWAE[q]_se']:.3f} "
                f"| {r['L_VAE[q_IW marginal]']:.3f} ± {r['L_VAE[q_IW marginal]_se']:.3f} "
                f"| {r['log p(x)']:.3f} | {r['KL(q_IW marginal || posterior)']:.3f} "
                f"| {'yes' if r['ordered'] else 'NO'} |"
            )
        lines.append("")
    lines.append(
        f"± is one Monte Carlo standard error. 'ordered': L_VAE[q] <= L_IWAE[q] <= "
        f"L_VAE[q_IW marginal] <= log p(x), each within {ORDER_SIGMAS:g} standard errors "
        f"of the difference. log p(x) and L_VAE[q_IW marginal] by quadrature on a grid."
    )
    if len(over_seeds) and over_seeds.seeds.max() > 1:
        kl = "KL(q_IW marginal || posterior)"
        lines += [
            "",
            "## Over training seeds",
            "",
            "| model | k | seeds | KL(q_IW ‖ p), mean over images | sd over seeds "
            "| ordered cases |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in over_seeds.to_dict("records"):
            lines.append(
                f"| {r['base_model']} | {r['k']} | {r['seeds']} | {r[kl]:.3f} "
                f"| {r[f'{kl}_seed_sd']:.3f} | {r['ordered_share']:.0%} |"
            )
    return "\n".join(lines) + "\n"
