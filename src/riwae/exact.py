"""Exact log p(x) of a 2-latent model, per image, by quadrature over the plane, and how far
the k-sample importance-sampling estimate falls from it.

log p(x) = log of the integral of p(x, z) over z in R^2. Each image gets its own grid: a
coarse pass over a wide box [-L, L]^2, shared by all images, then a zoom onto each image's
box, find where its posterior has mass; a fine grid over that box gives the integral by the
midpoint rule, its step halved until the result is stable. Two checks come with every
value: the same rule on every other grid point (twice the step) must agree within the
tolerance, and the grid's border must hold a negligible share of the mass. Outside the
coarse box the integrand is below the prior (p(x|z) <= 1 for binary pixels), whose mass
there is at most exp(-L^2 / 2).
"""

import logging
import math
import time

import pandas as pd
import torch

from riwae.bounds import gaussian_log_density
from riwae.grid import Grid2D, box_grid, square_grid
from riwae.io import DataError
from riwae.numeric import QUADRATURE_POINTS, in_chunks, mean_and_se
from riwae.tables import frame_over_seeds
from riwae.targets import ModelPosterior

log = logging.getLogger("riwae")

# An image counts as badly estimated when the estimate is this many nats off log p(x).
BAD_ESTIMATE_NATS = 1.0


def height_threshold(log_joint: torch.Tensor, mass_outside: float) -> torch.Tensor:
    """Per image ([images, 1]): a level such that the points of ``log_joint`` [images, points]
    below it hold at most ``mass_outside`` of its sum (each holds at most mass_outside /
    points of the highest's). Cheap, and generous: for large shared grids."""
    return log_joint.amax(1, keepdim=True) + math.log(mass_outside / log_joint.shape[1])


def mass_threshold(log_joint: torch.Tensor, mass_outside: float) -> torch.Tensor:
    """Per image ([images, 1]): the highest level such that the points of ``log_joint``
    below it hold at most ``mass_outside`` of its sum. By mass, not by height: a far bump
    20 nats below the peak holds next to nothing, and would stretch a box around it."""
    ascending = log_joint.sort(1).values
    below = torch.logcumsumexp(ascending, 1) - torch.logsumexp(log_joint, 1, keepdim=True)
    first_kept = (below > math.log(mass_outside)).int().argmax(1, keepdim=True)
    return ascending.gather(1, first_kept)


def box_around(
    log_joint: torch.Tensor, points: torch.Tensor, step: torch.Tensor, threshold: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the box (``lower``, ``upper``: [images, 2]) around the points where
    ``log_joint`` [images, points] reaches ``threshold`` [images, 1], widened by ``step``
    (the grid's step per axis) on each side. ``points``: [points, 2] shared by all images,
    or [images, points, 2]."""
    keep = (log_joint >= threshold)[..., None]
    infinity = torch.tensor(math.inf, dtype=points.dtype, device=points.device)
    lower = torch.where(keep, points, infinity).amin(1) - step
    upper = torch.where(keep, points, -infinity).amax(1) + step
    return lower, upper


def on_boxes(joint, lower, upper, images: list[int], size: int, max_rows: int):
    """Yield, chunk by chunk of ``images``: their indices, their ``size`` x ``size`` grids
    over their boxes, and log p(x, z) there ([chunk, size^2], in the joint's dtype)."""
    for start, stop in in_chunks(len(images), size**2, max_rows):
        chunk = torch.tensor(images[start:stop], device=lower.device)
        grids = [
            box_grid(tuple(lo), tuple(hi), size, lower.dtype, lower.device)
            for lo, hi in zip(lower[chunk].tolist(), upper[chunk].tolist(), strict=True)
        ]
        points = torch.stack([grid.points for grid in grids])  # [chunk, size^2, 2]
        yield chunk, grids, joint.on_points(points, chunk)


@torch.no_grad()
def fitted_boxes(
    joint, coarse_limit: float, coarse_size: int, zoom_size: int, mass_outside: float, max_rows: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per image, the box where its posterior has mass (``box_around`` with ``mass_outside``),
    found on a coarse grid over [-coarse_limit, coarse_limit]^2 shared by all images, then
    narrowed on a ``zoom_size`` x ``zoom_size`` grid over that box. ``[images, 2]`` each."""
    coarse = square_grid(coarse_limit, coarse_size, dtype=joint.x.dtype, device=joint.x.device)
    points = coarse.points
    log_joint = torch.cat(
        [joint.on_shared_points(points[a:b]) for a, b in in_chunks(len(points), 1, max_rows)], 1
    )
    step = coarse.x_axis[1] - coarse.x_axis[0]
    threshold = height_threshold(log_joint, mass_outside)
    lower, upper = box_around(log_joint, coarse.points, step, threshold)
    zoom_steps = (upper - lower) / (zoom_size - 1)
    narrowed = [lower.clone(), upper.clone()]
    everyone = list(range(len(lower)))
    for chunk, grids, log_joint in on_boxes(joint, lower, upper, everyone, zoom_size, max_rows):
        points = torch.stack([grid.points for grid in grids])
        threshold = mass_threshold(log_joint, mass_outside)
        box = box_around(log_joint, points, zoom_steps[chunk], threshold)
        narrowed[0][chunk], narrowed[1][chunk] = box
    return narrowed[0].clamp(min=-coarse_limit), narrowed[1].clamp(max=coarse_limit)


def quadrature_checks(grid: Grid2D, log_joint: torch.Tensor) -> dict[str, float]:
    """log of the integral of exp(log_joint) over ``grid`` (odd size), the same with every
    other point (twice the step), and the log share of the integral on the grid's border."""
    image = grid.image(log_joint)
    border = torch.cat([image[0], image[-1], image[1:-1, 0], image[1:-1, -1]])
    total = torch.logsumexp(log_joint, 0)
    return {
        "log_evidence": grid.log_integral(log_joint),
        "half_step": float(torch.logsumexp(image[::2, ::2].reshape(-1), 0))
        + math.log(4 * grid.cell_area),
        "border_share": float(torch.logsumexp(border, 0) - total),
    }


def kl_to_proposal(grid: Grid2D, log_joint: torch.Tensor, log_q: torch.Tensor) -> float:
    """KL(p(z|x) || q) on the grid, the posterior normalised there: how badly q misses it."""
    log_posterior = grid.normalise(log_joint)
    return float((log_posterior.exp() * (log_posterior - log_q)).sum()) * grid.cell_area


@torch.no_grad()
def quadrature_on_boxes(joint, lower, upper, images: list[int], size: int, max_rows: int):
    """For each image of ``images``: ``quadrature_checks`` on a ``size`` x ``size`` grid over
    its box, KL(p(z|x) || q) and the posterior's one-sigma area there."""
    q = joint.proposal()
    rows = []
    for chunk, grids, log_joints in on_boxes(joint, lower, upper, images, size, max_rows):
        for grid, log_joint, i in zip(grids, log_joints, chunk.tolist(), strict=True):
            # float64 from here: the logsumexp of the integrand sets the result's precision.
            log_joint = log_joint.double()
            log_q = gaussian_log_density(grid.points, q.mean[i], q.logvar[i]).double()
            rows.append(
                {
                    **quadrature_checks(grid, log_joint),
                    "kl_posterior_q": kl_to_proposal(grid, log_joint, log_q),
                    "posterior_area": grid.one_sigma_area(log_joint),
                    "grid_size": size,
                }
            )
    return rows


def quadrature_settings(settings: dict) -> dict:
    """The settings of the config's ``exact`` section that ``exact_log_evidence`` takes."""
    keys = ("coarse_limit", "coarse_size", "zoom_size", "mass_outside", "grid_size")
    return {key: settings[key] for key in (*keys, "max_grid_size", "tolerance")}


def exact_log_evidence(
    joint: ModelPosterior,
    coarse_limit: float,
    coarse_size: int,
    zoom_size: int,
    mass_outside: float,
    grid_size: int,
    max_grid_size: int,
    tolerance: float,
    max_rows: int = QUADRATURE_POINTS,
) -> pd.DataFrame:
    """log p(x) per image by the midpoint rule over its fitted box (``fitted_boxes``), on a
    ``grid_size`` x ``grid_size`` grid, refined (step halved) while the result moves by more
    than ``tolerance`` nats from the same rule at twice the step, up to ``max_grid_size``.

    One row per image: ``log_evidence``, ``half_step``, ``border_share``
    (``quadrature_checks``); ``log_tail_bound``: log of exp(-L^2/2), the bound on the mass
    outside the coarse box, relative to p(x); ``kl_posterior_q``; ``posterior_area``
    (``Grid2D.one_sigma_area``); the final ``grid_size``; the box. ``joint`` is any object with
    ``x``, ``on_shared_points``, ``on_points`` and ``proposal`` as
    ``riwae.targets.ModelPosterior``; ``max_rows`` bounds the points evaluated at once
    (small chunks keep a decoder's outputs in cache).
    """
    if grid_size % 2 == 0:
        raise ValueError(
            f"grid_size must be odd (got {grid_size}): every other point spans the box"
        )
    lower, upper = fitted_boxes(joint, coarse_limit, coarse_size, zoom_size, mass_outside, max_rows)
    rows: dict[int, dict] = {}
    todo, size = list(range(len(lower))), grid_size
    while todo and size <= max_grid_size:
        evaluated = quadrature_on_boxes(joint, lower, upper, todo, size, max_rows)
        rows.update(zip(todo, evaluated, strict=True))
        todo = [i for i in todo if abs(rows[i]["log_evidence"] - rows[i]["half_step"]) > tolerance]
        size = 2 * size - 1  # halves the step; the old points are every other new one
    table = pd.DataFrame([rows[i] for i in range(len(lower))])
    table["log_tail_bound"] = -0.5 * coarse_limit**2 - table.log_evidence
    box = torch.cat([lower, upper], 1).double().cpu().numpy()
    table[["z1_lower", "z2_lower", "z1_upper", "z2_upper"]] = box
    return table


def per_image_table(model_name: str, exact: pd.DataFrame, estimate: list[float], ll_k: int):
    """The quadrature's rows beside the k-sample estimate of the same images: ``difference``
    = log p(x) - estimate (positive: the estimate is below the truth) and ``refinement`` =
    log p(x) minus the same quadrature at twice the step."""
    if len(estimate) != len(exact):  # an evaluation of other images than these
        raise DataError(
            f"{model_name}: the evaluation has {len(estimate)} images, the quadrature "
            f"{len(exact)}; rerun the evaluate stage with the same evaluation.test_images."
        )
    table = exact.assign(model=model_name, image=range(len(exact)), ll_k=ll_k)
    table["estimate"] = estimate
    table["difference"] = table.log_evidence - table.estimate
    table["refinement"] = table.log_evidence - table.half_step
    first = ["model", "image", "log_evidence", "estimate", "difference", "ll_k", "refinement"]
    return table[first + [c for c in table.columns if c not in first]]


def summary_table(per_image: pd.DataFrame) -> pd.DataFrame:
    """Per model (``per_image``'s ``model``, with its ``base_model`` and training ``seed``):
    the test log-likelihood by quadrature and by the estimate (mean and
    standard error over images), their paired difference, its largest and smallest value,
    how many estimates are more than ``BAD_ESTIMATE_NATS`` below and above log p(x), and the
    worst of each quadrature check."""
    rows = []
    for name, frame in per_image.groupby("model", sort=False):
        exact, exact_se = mean_and_se(torch.tensor(frame.log_evidence.to_numpy()))
        estimate, estimate_se = mean_and_se(torch.tensor(frame.estimate.to_numpy()))
        difference, difference_se = mean_and_se(torch.tensor(frame.difference.to_numpy()))
        rows.append(
            {
                "model": name,
                "base_model": frame.base_model.iloc[0],
                "seed": int(frame.seed.iloc[0]),
                "test_images": len(frame),
                "ll_k": int(frame.ll_k.iloc[0]),
                "exact": exact,
                "exact_se": exact_se,
                "estimate": estimate,
                "estimate_se": estimate_se,
                "difference": difference,
                "difference_se": difference_se,
                "difference_max": float(frame.difference.max()),
                "difference_min": float(frame.difference.min()),
                "images_below_by_more_than_1_nat": int(
                    (frame.difference > BAD_ESTIMATE_NATS).sum()
                ),
                "images_above_by_more_than_1_nat": int(
                    (frame.difference < -BAD_ESTIMATE_NATS).sum()
                ),
                "kl_posterior_q_mean": float(frame.kl_posterior_q.mean()),
                "refinement_max_abs": float(frame.refinement.abs().max()),
                "border_share_max": float(frame.border_share.max()),
                "log_tail_bound_max": float(frame.log_tail_bound.max()),
            }
        )
    return pd.DataFrame(rows)


# The summary's columns whose spread over training seeds the markdown shows.
OVER_SEEDS_COLUMNS = ("exact", "estimate", "difference", "kl_posterior_q_mean")


def summary_markdown(summary: pd.DataFrame, over_seeds: pd.DataFrame) -> str:
    """The per-model summary as a pipe table, then, with several training seeds, each model's
    mean over its seeds (``over_seeds``: ``riwae.tables.frame_over_seeds`` of the summary)
    with the seeds' standard deviation. No '|' inside a cell: it would split the table."""
    lines = [
        "| model | images | log p(x), exact | k-sample estimate | exact - estimate "
        f"| largest, smallest | estimates > {BAD_ESTIMATE_NATS:g} nat below, above "
        "| mean KL(posterior ‖ q) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in summary.to_dict("records"):
        lines.append(
            f"| {r['model']} | {r['test_images']} | {r['exact']:.2f} ± {r['exact_se']:.2f} "
            f"| {r['estimate']:.2f} ± {r['estimate_se']:.2f} (k = {r['ll_k']}) "
            f"| {r['difference']:.3f} ± {r['difference_se']:.3f} "
            f"| {r['difference_max']:.3f}, {r['difference_min']:.3f} "
            f"| {r['images_below_by_more_than_1_nat']}, {r['images_above_by_more_than_1_nat']} "
            f"| {r['kl_posterior_q_mean']:.3f} |"
        )
    worst = summary.max(numeric_only=True)
    lines += [
        "",
        "Test log-likelihood in nats: mean over the same binarised test images, ± one "
        "standard error over images (the difference is paired, per image). The estimate "
        "is the evaluate stage's importance-sampling estimate with q as proposal: unbiased "
        "for p(x), so it can land above log p(x) too; exact is quadrature over the plane on "
        "a grid fitted to each image's posterior.",
        "",
        f"Quadrature checks, worst over all images: |log p(x) - the same at twice the step| "
        f"<= {worst['refinement_max_abs']:.1e} nats; share of the integral on the grid's "
        f"border <= e^{worst['border_share_max']:.0f}; mass outside the coarse box, "
        f"relative to p(x), <= e^{worst['log_tail_bound_max']:.0f}.",
    ]
    if over_seeds.seeds.max() > 1:
        lines += [
            "",
            "Over training seeds: the mean over seeds (sd: their standard deviation).",
            "",
            "| model | seeds | log p(x), exact | k-sample estimate | exact - estimate "
            "| mean KL(posterior ‖ q) |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for r in over_seeds.to_dict("records"):
            cells = " | ".join(
                f"{r[c]:.3f} (sd {r[f'{c}_seed_sd']:.3f})" for c in OVER_SEEDS_COLUMNS
            )
            lines.append(f"| {r['base_model']} | {r['seeds']} | {cells} |")
    return "\n".join(lines) + "\n"


@torch.no_grad()
def posterior_panel_arrays(
    joint: ModelPosterior, per_image: pd.DataFrame, shown: int, size: int
) -> list[dict]:
    """For the ``shown`` images whose estimate is furthest below log p(x): the binarised
    image, the normalised log posterior on a ``size`` x ``size`` grid over the image's
    fitted box, q's mean and standard deviations, and both log-likelihoods."""
    panels = []
    q = joint.proposal()
    for row in per_image.nlargest(shown, "difference").itertuples():
        grid = box_grid(
            (row.z1_lower, row.z2_lower), (row.z1_upper, row.z2_upper), size, device=joint.x.device
        )
        log_joint = joint.on_points(grid.points[None].to(joint.x.dtype), torch.tensor([row.image]))
        panels.append(
            {
                "index": row.image,
                "image": joint.x[row.image].reshape(28, 28).cpu().numpy(),
                "x_axis": grid.x_axis.cpu().numpy(),
                "y_axis": grid.y_axis.cpu().numpy(),
                "log_posterior": grid.image(grid.normalise(log_joint[0].double())).cpu().numpy(),
                "q_mean": q.mean[row.image].cpu().numpy(),
                "q_std": (0.5 * q.logvar[row.image]).exp().cpu().numpy(),
                "exact": row.log_evidence,
                "estimate": row.estimate,
            }
        )
    return panels


def exact_loglik_tables(models: dict, evaluations: list[dict], x: torch.Tensor, settings: dict):
    """log p(x) by quadrature of every model of ``models`` (``riwae.spec.ModelSpec`` -> a 2D
    model) on the binarised images ``x``, beside its evaluation's k-sample estimate of the
    same images (``evaluations``, one ``eval.json`` record per model), in float64: the
    integrand's sums (784 pixel terms per point, then the quadrature's) decide the result's
    last digits, and float64 keeps them whatever the precision of float32 matrix products.
    ``settings``: the config's ``exact`` section.

    Returns the per-image table, its summary per model, the summary's means and spread
    over training seeds (``riwae.tables.frame_over_seeds``), and the figure's panels (each
    with its ``model``; first-seed models only)."""
    tables, panels = [], []
    for (spec, model), evaluation in zip(models.items(), evaluations, strict=True):
        joint = ModelPosterior(model.double(), x.double())
        start = time.perf_counter()
        exact = exact_log_evidence(joint, **quadrature_settings(settings))
        seconds = time.perf_counter() - start
        log.info("%s: %d images by quadrature in %.1f s", spec.name, len(x), seconds)
        table = per_image_table(
            spec.name, exact, evaluation["log_likelihood_per_image"], evaluation["ll_k"]
        )
        tables.append(table.assign(base_model=spec.base_name, seed=spec.settings.seed))
        if spec.first_seed:
            shown = posterior_panel_arrays(
                joint, table, settings["shown_images"], settings["figure_grid_size"]
            )
            panels += [{**panel, "model": spec.name} for panel in shown]
    every_image = pd.concat(tables, ignore_index=True)
    summary = summary_table(every_image)
    return every_image, summary, frame_over_seeds(summary, ["base_model"]), panels
