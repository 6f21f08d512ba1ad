"""The paper's identity, L_IWAE[q] = L_VAE[q_IW], checked per sample set in float64."""

import pandas as pd
import torch

from riwae.bounds import iwae_bound, vae_bound
from riwae.numeric import POSTERIOR_DRAWS, SYNTHETIC_DRAWS, in_chunks, mean_and_se
from riwae.qiw import conditional_elbo
from riwae.tables import frame_over_seeds
from riwae.targets import DiagGaussian, GaussianMixtureTarget, cremer2d_target


def identity_terms(log_joint: torch.Tensor, log_q: torch.Tensor):
    """Per sample set (columns of ``[k, sets]``): the IWAE bound estimate, the ELBO of the
    conditional q_IW, and the k-sample estimate of the plain ELBO L_VAE[q]."""
    log_w = log_joint - log_q
    return iwae_bound(log_w), conditional_elbo(log_joint, log_q), vae_bound(log_w)


def summarise_identity(
    k: int, iwae: torch.Tensor, vae_qiw: torch.Tensor, vae_q: torch.Tensor, tolerance: float
) -> dict:
    """One row of the identity table: both sides' means with standard errors, the largest
    absolute and relative per-set difference, and whether it is within ``tolerance``."""
    diff = (iwae - vae_qiw).abs()
    iwae_mean, iwae_se = mean_and_se(iwae)
    qiw_mean, qiw_se = mean_and_se(vae_qiw)
    q_mean, q_se = mean_and_se(vae_q)
    max_abs = float(diff.max())
    return {
        "k": k,
        "sample_sets": iwae.numel(),
        "L_IWAE[q]": iwae_mean,
        "L_IWAE[q]_se": iwae_se,
        "L_VAE[q_IW]": qiw_mean,
        "L_VAE[q_IW]_se": qiw_se,
        "L_VAE[q]": q_mean,
        "L_VAE[q]_se": q_se,
        "max_abs_diff": max_abs,
        "max_rel_diff": float((diff / iwae.abs()).max()),
        "tolerance": tolerance,
        "passed": bool(max_abs <= tolerance),
    }


def chunked_identity_terms(draw, k: int, sample_sets: int, chunk_samples: int):
    """``identity_terms`` for ``sample_sets`` independent sets of k draws, made in chunks of
    at most ``chunk_samples`` draws by ``draw(k, sets)``, which returns log p(x, z) and
    log q(z|x), ``[k, sets]`` each."""
    parts = [
        identity_terms(*draw(k, stop - start))
        for start, stop in in_chunks(sample_sets, k, chunk_samples)
    ]
    return tuple(torch.cat(column) for column in zip(*parts, strict=True))


def sampled_identity_terms(
    target,
    proposal: DiagGaussian,
    k: int,
    sample_sets: int,
    generator: torch.Generator,
    chunk_samples: int = SYNTHETIC_DRAWS,
):
    """``identity_terms`` for ``sample_sets`` independent sets of k draws from the proposal.
    ``target`` has ``log_joint(z)``."""

    def draw(k: int, sets: int):
        z = proposal.sample((k, sets), generator)
        return target.log_joint(z), proposal.log_prob(z)

    return chunked_identity_terms(draw, k, sample_sets, chunk_samples)


def synthetic_identity(
    target: GaussianMixtureTarget,
    proposal: DiagGaussian,
    ks: list[int],
    sample_sets: int,
    tolerance: float,
    seed: int,
) -> list[dict]:
    """The identity on a synthetic target for every k, over ``sample_sets`` sample sets."""
    generator = torch.Generator().manual_seed(seed)
    return [
        summarise_identity(
            k, *sampled_identity_terms(target, proposal, k, sample_sets, generator), tolerance
        )
        for k in ks
    ]


def model_identity(
    model, images: torch.Tensor, ks: list[int], sample_sets: int, tolerance: float, seed: int
) -> list[dict]:
    """The identity for a trained model, in float64, over ``sample_sets`` sample sets for
    each of the ``images`` (binarised), pooled per k. The sets are of the model's own
    log-weights (``VAE.log_weights``), so q_IW is over the joint latent of all its layers."""
    model = model.double()
    generator = torch.Generator(device=images.device).manual_seed(seed)

    def draws_for(x: torch.Tensor):
        def draw(k: int, sets: int):
            log_w, log_q, _ = model.log_weights(x.expand(sets, -1), k, generator)
            return log_w + log_q, log_q

        return draw

    rows = []
    with torch.no_grad():
        for k in ks:
            per_image = [
                chunked_identity_terms(draws_for(x), k, sample_sets, POSTERIOR_DRAWS)
                for x in images.double()
            ]
            terms = (torch.cat(column) for column in zip(*per_image, strict=True))
            rows.append(summarise_identity(k, *terms, tolerance))
    return rows


def identity_check(models: dict, images: torch.Tensor, settings: dict, seed: int) -> dict:
    """Both sides of the identity per sample set: on the synthetic 2D target, then on each
    trained model of ``models`` (``riwae.spec.ModelSpec`` -> model, every training seed)
    for the binarised ``images``. ``settings``: the config's ``identity`` section. Returns
    the check's record: ``passed``, and a section per case with its rows
    (``summarise_identity``; a model's with its ``base_model`` and ``seed``)."""
    ks, tolerance = settings["k"], settings["tolerance"]
    target, proposal = cremer2d_target()
    synthetic = synthetic_identity(target, proposal, ks, settings["sample_sets"], tolerance, seed)
    sections = [
        {"case": "synthetic 2D target", "log_evidence": target.log_evidence, "rows": synthetic}
    ]
    sections += [
        {
            "case": spec.name,
            "base_model": spec.base_name,
            "seed": spec.settings.seed,
            "rows": model_identity(
                model, images, ks, settings["model_sample_sets"], tolerance, seed
            ),
        }
        for spec, model in models.items()
    ]
    passed = all(row["passed"] for section in sections for row in section["rows"])
    return {"passed": passed, "sections": sections}


def identity_failure(check: dict) -> str | None:
    """The sentence of a failed identity check (``identity_check``), None when it passed."""
    failures = [
        (s["case"], r["k"]) for s in check["sections"] for r in s["rows"] if not r["passed"]
    ]
    if not failures:
        return None
    tolerance = check["sections"][0]["rows"][0]["tolerance"]
    return (
        "Identity check failed for "
        + ", ".join(f"{case} at k = {k}" for case, k in failures)
        + f": the largest difference exceeds the tolerance {tolerance:g}."
    )


def identity_report(check: dict, distances) -> str:
    """The check as markdown, a section per case, then the original figure code's q_IW from
    the posterior stage's table of ``distances``."""
    markdown = "\n".join(
        f"## {s['case']}\n\n{identity_markdown(s['rows'], s.get('log_evidence'))}"
        for s in check["sections"]
    )
    return markdown + "\n" + over_seeds_markdown(check) + off_by_one_markdown(distances)


def identity_over_seeds(check: dict) -> pd.DataFrame:
    """Per model (``base_model``) and k, over its training seeds: both sides' means over
    the seeds with the seeds' standard deviation, and the largest difference of any seed."""
    rows = pd.DataFrame(
        {"base_model": s["base_model"], "seed": s["seed"], **row}
        for s in check["sections"]
        if "base_model" in s
        for row in s["rows"]
    )
    if rows.empty:
        return rows
    keys = ["base_model", "k"]
    spread = frame_over_seeds(rows[[*keys, "seed", "L_IWAE[q]", "L_VAE[q_IW]"]], keys)
    largest = rows.groupby(keys, sort=False).max_abs_diff.max().reset_index()
    return spread.merge(largest, on=keys)


def over_seeds_markdown(check: dict) -> str:
    """``identity_over_seeds`` as a pipe table, when a model has several training seeds."""
    table = identity_over_seeds(check)
    if table.empty or table.seeds.max() < 2:
        return ""
    lines = [
        "## Over training seeds",
        "",
        "| model | k | seeds | L_IWAE[q] | L_VAE[q_IW] | max abs diff, any seed |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for r in table.to_dict("records"):
        lines.append(
            f"| {r['base_model']} | {r['k']} | {r['seeds']} "
            f"| {r['L_IWAE[q]']:.4f} (sd {r['L_IWAE[q]_seed_sd']:.4f}) "
            f"| {r['L_VAE[q_IW]']:.4f} (sd {r['L_VAE[q_IW]_seed_sd']:.4f}) "
            f"| {r['max_abs_diff']:.2e} |"
        )
    lines += [
        "",
        "Means over the training seeds of each seed's mean over sample sets; sd: the seeds' "
        "standard deviation.",
        "",
    ]
    return "\n".join(lines) + "\n"


def identity_markdown(rows: list[dict], log_evidence: float | None = None) -> str:
    """A table a reader can quote: both sides of the identity with standard errors."""
    lines = [
        "| k | L_VAE[q] | L_IWAE[q] | L_VAE[q_IW] | max abs diff | max rel diff | pass |",
        "|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['k']} | {r['L_VAE[q]']:.4f} ± {r['L_VAE[q]_se']:.4f} "
            f"| {r['L_IWAE[q]']:.4f} ± {r['L_IWAE[q]_se']:.4f} "
            f"| {r['L_VAE[q_IW]']:.4f} ± {r['L_VAE[q_IW]_se']:.4f} "
            f"| {r['max_abs_diff']:.2e} | {r['max_rel_diff']:.2e} "
            f"| {'yes' if r['passed'] else 'NO'} |"
        )
    if log_evidence is not None:
        lines.append("")
        lines.append(f"log p(x) = {log_evidence:.4f} (exact). ± is one Monte Carlo standard error.")
    return "\n".join(lines) + "\n"


def off_by_one_markdown(distances) -> str:
    """The original figure code's q_IW (k other samples instead of k - 1) beside the correct
    one, from the posterior stage's table: integral over the grid and distances."""
    correct = distances[distances.variant == "correct"].set_index("k")
    original = distances[distances.variant == "original"].set_index("k")
    lines = [
        "## The original figure code's q_IW (k others instead of k - 1)",
        "",
        "| k | integral, correct | integral, original | k/(k+1) | TV(original, correct) "
        "| TV to posterior, correct | TV to posterior, original |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for k, row in original.iterrows():
        lines.append(
            f"| {k} | {correct.integral[k]:.3f} | {row.integral:.3f} | {k / (k + 1):.3f} "
            f"| {row.tv_to_correct:.3f} | {correct.tv_to_posterior[k]:.3f} "
            f"| {row.tv_to_posterior:.3f} |"
        )
    lines += [
        "",
        "Grid quadrature of Monte Carlo densities on the synthetic target; "
        "TV is total variation distance.",
    ]
    return "\n".join(lines) + "\n"
