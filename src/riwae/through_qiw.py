"""What a training objective does to q and to q_IW, measured exactly on a 2D model.

For a 2-latent model the quadrature of ``riwae.exact`` gives log p(x) per image, so the gap
between it and q's ELBO is KL(q || p(z|x)) itself, not an estimate. Per image:

- log p(x), by quadrature over the posterior's fitted box (``riwae.exact``, whose stage
  computes it once for every 2D model);
- the ELBO of q, E_q[log p(x, z)] by a Gauss-Hermite rule in q's own coordinates (exact for
  polynomials of degree below twice the nodes per axis; log p(x, z) is smooth in z) plus
  q's entropy in closed form;
- KL(q || p(z|x)) = log p(x) - ELBO;
- L_IWAE_k - ELBO at the model's sample budget k: Monte Carlo over sample sets, with its
  standard error;
- the one-sigma areas pi sqrt(det Sigma) of q and of the posterior (its covariance by
  quadrature on the same grid as log p(x)).

``joint`` is any object with ``x``, ``on_shared_points``, ``on_points`` and ``proposal``, as
``riwae.targets.ModelPosterior``; tests use a linear-Gaussian one with closed forms.
"""

import logging
import math

import numpy as np
import pandas as pd
import torch

from riwae.io import DataError
from riwae.numeric import mean_and_se
from riwae.tables import frame_over_seeds
from riwae.targets import ModelPosterior

log = logging.getLogger("riwae")


def hermite_rule(nodes: int, dtype=torch.float64, device=None):
    """Points ``[nodes^2, 2]`` and weights ``[nodes^2]`` (summing to 1) of the product
    Gauss-Hermite rule for E[f(eps)], eps ~ N(0, I_2)."""
    t, w = np.polynomial.hermite_e.hermegauss(nodes)
    w = w / w.sum()
    t2, t1 = np.meshgrid(t, t, indexing="ij")
    points = np.stack([t1.reshape(-1), t2.reshape(-1)], 1)
    weights = np.outer(w, w).reshape(-1)
    as_tensor = lambda a: torch.tensor(a, dtype=dtype, device=device)  # noqa: E731
    return as_tensor(points), as_tensor(weights)


@torch.no_grad()
def elbo_of_q(joint, nodes: int = 40, max_rows: int = 2**14) -> torch.Tensor:
    """Per image, L_VAE[q] = E_q[log p(x, z)] + H[q], the expectation by the product
    Gauss-Hermite rule with ``nodes`` points per axis in q's coordinates: ``[images]``."""
    q = joint.proposal()
    mean, logvar = q.mean.double(), q.logvar.double()
    eps, weights = hermite_rule(nodes, device=mean.device)
    std = (0.5 * logvar).exp()
    entropy = (0.5 * (1 + math.log(2 * math.pi)) + 0.5 * logvar).sum(-1)
    chunk = max(1, max_rows // len(eps))
    expected = []
    for start in range(0, len(mean), chunk):
        images = torch.arange(start, min(start + chunk, len(mean)), device=mean.device)
        z = mean[images, None] + std[images, None] * eps  # [chunk, nodes^2, 2]
        expected.append(joint.on_points(z.to(joint.x.dtype), images).double() @ weights)
    return torch.cat(expected) + entropy


@torch.no_grad()
def iwae_bound_of_q(
    joint, k: int, sets: int, generator: torch.Generator, max_rows: int = 2**14
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, L_IWAE_k[q] by Monte Carlo over ``sets`` independent sets of k draws from
    q: its mean and standard error over the sets (``[images]`` each)."""
    q = joint.proposal()
    mean, logvar = q.mean.double(), q.logvar.double()
    std = (0.5 * logvar).exp()
    chunk = max(1, max_rows // (k * sets))
    means, errors = [], []
    for start in range(0, len(mean), chunk):
        images = torch.arange(start, min(start + chunk, len(mean)), device=mean.device)
        eps = torch.randn(
            (len(images), sets * k, 2), generator=generator, dtype=mean.dtype, device=mean.device
        )
        z = mean[images, None] + std[images, None] * eps
        log_q = (-0.5 * eps.square() - 0.5 * math.log(2 * math.pi)).sum(-1) - 0.5 * logvar[
            images, None
        ].sum(-1)
        log_w = joint.on_points(z.to(joint.x.dtype), images).double() - log_q
        bounds = torch.logsumexp(log_w.view(len(images), sets, k), -1) - math.log(k)
        means.append(bounds.mean(1))
        errors.append(bounds.std(1) / math.sqrt(sets))
    return torch.cat(means), torch.cat(errors)


def per_image_table(
    joint, exact: pd.DataFrame, k: int, sets: int, seed: int, nodes: int = 40
) -> pd.DataFrame:
    """One row per image: log p(x) and the posterior's one-sigma area (``exact``, the rows
    of ``riwae.exact.exact_log_evidence`` for ``joint``), the ELBO of q, KL(q || p(z|x)),
    L_IWAE_k[q] with its standard error and its gap over the ELBO, and q's one-sigma area
    and its ratio to the posterior's."""
    generator = torch.Generator(device=joint.x.device).manual_seed(seed)
    elbo = elbo_of_q(joint, nodes).cpu()
    iwae, iwae_se = (t.cpu() for t in iwae_bound_of_q(joint, k, sets, generator))
    logvar = joint.proposal().logvar
    q_area = math.pi * (0.5 * logvar.double().sum(-1)).exp().cpu()
    table = pd.DataFrame(
        {
            "image": range(len(exact)),
            "log_evidence": exact.log_evidence.to_numpy(),
            "elbo": elbo.numpy(),
            "iwae_bound": iwae.numpy(),
            "iwae_bound_se": iwae_se.numpy(),
            "q_area": q_area.numpy(),
            "posterior_area": exact.posterior_area.to_numpy(),
        }
    )
    table["kl_q_posterior"] = table.log_evidence - table.elbo
    table["iwae_minus_elbo"] = table.iwae_bound - table.elbo
    table["q_area_over_posterior"] = table.q_area / table.posterior_area
    table["iwae_k"] = k
    return table


def model_summary(per_image: pd.DataFrame) -> dict:
    """One model's per-image table summarised: means (with standard errors over images),
    the median and the worst KL(q || p(z|x)), and the geometric mean of q's area over the
    posterior's."""

    def mean(column: str) -> tuple[float, float]:
        return mean_and_se(torch.tensor(per_image[column].to_numpy()))

    (log_evidence, log_evidence_se), (elbo, elbo_se) = mean("log_evidence"), mean("elbo")
    (kl, kl_se), (gap, gap_se) = mean("kl_q_posterior"), mean("iwae_minus_elbo")
    return {
        "images": len(per_image),
        "iwae_k": int(per_image.iwae_k.iloc[0]),
        "log_evidence": log_evidence,
        "log_evidence_se": log_evidence_se,
        "elbo": elbo,
        "elbo_se": elbo_se,
        "kl_q_posterior_mean": kl,
        "kl_q_posterior_se": kl_se,
        "kl_q_posterior_median": float(per_image.kl_q_posterior.median()),
        "kl_q_posterior_worst": float(per_image.kl_q_posterior.max()),
        "iwae_minus_elbo": gap,
        "iwae_minus_elbo_se": gap_se,
        "q_area_over_posterior": float(np.exp(np.log(per_image.q_area_over_posterior).mean())),
    }


def objectives_markdown(table: pd.DataFrame) -> str:
    """The objectives table (``riwae.tables.frame_over_seeds`` of the per-model rows) as a
    pipe table."""
    seeds = int(table.seeds.max())

    def cell(r, column: str, digits: int = 2) -> str:
        spread = r.get(f"{column}_seed_sd", math.nan)
        sd = f" (sd {spread:.{digits}f})" if seeds > 1 and not math.isnan(spread) else ""
        return f"{r[column]:.{digits}f}{sd}"

    lines = [
        # No '|' inside a cell: it would split the pipe table.
        "| model | k budget | log p(x) | ELBO of q | KL(q ‖ posterior): mean | median | worst "
        "| L_IWAE - ELBO | q's area / posterior's | reconstruction gain, q_IW over q |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for _, r in table.iterrows():
        lines.append(
            f"| {r.base_model} | {int(r.iwae_k)} | {cell(r, 'log_evidence')} | {cell(r, 'elbo')} "
            f"| {cell(r, 'kl_q_posterior_mean')} | {cell(r, 'kl_q_posterior_median')} "
            f"| {cell(r, 'kl_q_posterior_worst')} | {cell(r, 'iwae_minus_elbo')} "
            f"| {cell(r, 'q_area_over_posterior', 1)} | {cell(r, 'qiw_reconstruction_gain', 1)} |"
        )
    images = int(table.images.max())
    lines += [
        "",
        f"Per 2D model, on the first {images} binarised test images, in nats: log p(x) by "
        "quadrature (the test log-likelihood, exact), the ELBO of q by a Gauss-Hermite rule, "
        "KL(q ‖ p(z|x)) = log p(x) - ELBO per image (its mean, median and largest), "
        "L_IWAE - ELBO at the model's sample budget (k draws per image; m x k for MIWAE and "
        "PIWAE), the ratio of q's one-sigma area to the posterior's (geometric mean over "
        "images), and the gain in log p(x|z) from decoding q_IW draws instead of q draws "
        "(the reconstruction metric). "
        + (
            f"Each number is the mean over {seeds} training seeds, with their standard "
            "deviation (sd)."
            if seeds > 1
            else "One training seed."
        ),
    ]
    return "\n".join(lines) + "\n"


def objectives_tables(
    models: dict,
    x: torch.Tensor,
    exact: pd.DataFrame,
    gains: pd.Series,
    settings: dict,
    seed: int,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every 2D model of ``models`` (``riwae.spec.ModelSpec`` -> model, every seed) on the
    binarised images ``x``, in float64: ``per_image_table`` of each at its sample budget,
    with log p(x) and the posterior's area from ``exact`` (the exact_loglik stage's
    per-image table, by ``model``; ``settings``: the config's ``through_qiw`` section), and
    one row per model with its reconstruction gain (``gains``, by model name), then their
    means and spread over seeds (``riwae.tables.frame_over_seeds``)."""
    images, rows = [], []
    for spec, model in models.items():
        quadrature = exact[exact.model == spec.name].reset_index(drop=True)
        if len(quadrature) != len(x):  # log p(x) of other images than these
            raise DataError(
                f"{spec.name}: the exact log p(x) table has {len(quadrature)} of its images, "
                f"this stage {len(x)}; rerun the exact_loglik stage with the same "
                f"evaluation.test_images."
            )
        joint = ModelPosterior(model.double(), x.double())
        draws = spec.settings.training_objective.draws  # the model's sample budget
        frame = per_image_table(
            joint, quadrature, draws, settings["iwae_sets"], seed, settings["nodes"]
        ).assign(model=spec.name)
        images.append(frame)
        rows.append(
            {
                "model": spec.name,
                "base_model": spec.base_name,
                "seed": spec.settings.seed,
                **model_summary(frame),
                "qiw_reconstruction_gain": gains[spec.name],
            }
        )
        log.info("%s: %s", spec.name, rows[-1])
    summary = frame_over_seeds(pd.DataFrame(rows), ["base_model"])
    return pd.concat(images, ignore_index=True), summary
