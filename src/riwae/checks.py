"""The paper's identity, L_IWAE[q] = L_VAE[q_IW], checked per sample set in float64."""

import math

import torch

from riwae.bounds import iwae_bound, vae_bound
from riwae.qiw import conditional_elbo
from riwae.targets import DiagGaussian, GaussianMixtureTarget


def identity_terms(log_joint: torch.Tensor, log_q: torch.Tensor):
    """Per sample set (columns of ``[k, sets]``): the IWAE bound estimate, the ELBO of the
    conditional q_IW, and the k-sample estimate of the plain ELBO L_VAE[q]."""
    log_w = log_joint - log_q
    return iwae_bound(log_w), conditional_elbo(log_joint, log_q), vae_bound(log_w)


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and Monte Carlo standard error of i.i.d. values."""
    n = values.numel()
    se = float(values.std(correction=1) / math.sqrt(n)) if n > 1 else math.nan
    return float(values.mean()), se


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


def synthetic_identity(
    target: GaussianMixtureTarget,
    proposal: DiagGaussian,
    ks: list[int],
    sample_sets: int,
    tolerance: float,
    seed: int,
    chunk_samples: int = 2**20,
) -> list[dict]:
    """The identity on a synthetic target for every k: ``sample_sets`` independent sets of
    k draws from the proposal, processed in chunks of at most ``chunk_samples`` draws."""
    generator = torch.Generator().manual_seed(seed)
    rows = []
    for k in ks:
        sets_per_chunk = max(1, chunk_samples // k)
        parts = []
        for start in range(0, sample_sets, sets_per_chunk):
            z = proposal.sample((k, min(sets_per_chunk, sample_sets - start)), generator)
            parts.append(identity_terms(target.log_joint(z), proposal.log_prob(z)))
        iwae, vae_qiw, vae_q = (torch.cat(column) for column in zip(*parts, strict=True))
        rows.append(summarise_identity(k, iwae, vae_qiw, vae_q, tolerance))
    return rows


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
