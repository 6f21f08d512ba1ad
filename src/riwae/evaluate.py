"""Evaluating trained models as Burda et al. did: the k=5000 log-likelihood estimate, the
IWAE bound at several k, the VAE bound, and the number of active units."""

import math

import torch

from riwae.bounds import vae_bound
from riwae.checks import mean_and_se
from riwae.models import VAE

# Burda et al. (2016), Table 1, MNIST test log-likelihood (k = 5000 estimate).
BURDA_TABLE1 = [
    {"layers": 1, "objective": "vae", "k": 1, "nll": 86.76},
    {"layers": 1, "objective": "vae", "k": 5, "nll": 86.47},
    {"layers": 1, "objective": "vae", "k": 50, "nll": 86.35},
    {"layers": 1, "objective": "iwae", "k": 1, "nll": 86.76},
    {"layers": 1, "objective": "iwae", "k": 5, "nll": 85.54},
    {"layers": 1, "objective": "iwae", "k": 50, "nll": 84.78},
    {"layers": 2, "objective": "vae", "k": 1, "nll": 85.33},
    {"layers": 2, "objective": "vae", "k": 5, "nll": 85.01},
    {"layers": 2, "objective": "vae", "k": 50, "nll": 84.78},
    {"layers": 2, "objective": "iwae", "k": 1, "nll": 85.33},
    {"layers": 2, "objective": "iwae", "k": 5, "nll": 83.89},
    {"layers": 2, "objective": "iwae", "k": 50, "nll": 82.90},
]


def chunk_rows(device: torch.device) -> int:
    """Latent draws (k x images) per forward pass of the estimate. On a CPU small chunks are
    fastest: the decoder's [rows, 784] outputs stay in cache (measured: about twice the
    throughput at 2^12 rows as at 2^16). On a GPU large chunks keep it busy; 2^18 rows of
    784 float32 logits are 0.8 GB."""
    return 2**12 if torch.device(device).type == "cpu" else 2**18


def evaluation_batch_size(device: torch.device | str, ll_k: int) -> int:
    """Images per batch of ``evaluate_model``: 100 on a CPU; on a GPU as many as fill a chunk
    of the k = ``ll_k`` estimate."""
    return max(100, chunk_rows(device) // ll_k)


@torch.no_grad()
def iwae_estimate(
    model: VAE, x: torch.Tensor, k: int, generator: torch.Generator, max_samples: int | None = None
) -> torch.Tensor:
    """log (1/k) sum_i w_i per image for k draws, in chunks of at most ``max_samples``
    latent draws (k x batch; by default ``chunk_rows`` of the device) so memory stays
    bounded for k = 5000. Shape ``[batch]``."""
    chunk = max(1, (max_samples or chunk_rows(x.device)) // len(x))
    parts = []
    for start in range(0, k, chunk):
        log_w, _, _ = model.log_weights(x, min(chunk, k - start), generator)
        parts.append(torch.logsumexp(log_w, 0))
    return torch.logsumexp(torch.stack(parts), 0) - math.log(k)


@torch.no_grad()
def active_units(model: VAE, x: torch.Tensor, threshold: float = 0.01, batch_size: int = 1000):
    """Burda et al.'s activity, per stochastic layer: the variance over data of each unit's
    posterior mean. A unit of layer l > 1 is taken at the mean of q(h_l | h_{l-1}) with
    h_{l-1} at its own mean (Burda et al.'s code puts one draw of h_{l-1} there, which adds
    that draw's noise to the variance).

    Returns (the number of units with variance above ``threshold``, and the variances), one
    entry per layer."""
    means: list[list[torch.Tensor]] = [[] for _ in range(model.arch.layers)]
    for batch in x.split(batch_size):
        h = batch
        for layer, parts in enumerate(means):
            h = model.encode(layer, h)[0]
            parts.append(h)
    variances = [torch.cat(parts).double().var(0, correction=1) for parts in means]
    return [int((v > threshold).sum()) for v in variances], variances


@torch.no_grad()
def evaluate_model(
    model: VAE,
    x: torch.Tensor,
    ll_k: int,
    bound_ks: list[int],
    seed: int,
    batch_size: int | None = None,
) -> dict:
    """Test-set numbers of one model on fixed binarised images ``x``.

    ``log_likelihood``: the k = ``ll_k`` IWAE estimate (Burda et al. use 5000);
    ``iwae_k{k}``: the IWAE bound at each k of ``bound_ks``; ``vae_bound``: the ELBO
    L_VAE[q], averaged over ``max(bound_ks)`` draws per image. Each with its standard error
    over images. ``active_units``: of all stochastic layers; ``active_units_per_layer``.
    """
    batch_size = batch_size or evaluation_batch_size(x.device, ll_k)
    generator = torch.Generator(device=x.device).manual_seed(seed)
    columns: dict[str, list[torch.Tensor]] = {"log_likelihood": [], "vae_bound": []}
    columns.update({f"iwae_k{k}": [] for k in bound_ks})
    for batch in x.split(batch_size):
        columns["log_likelihood"].append(iwae_estimate(model, batch, ll_k, generator))
        log_w, _, _ = model.log_weights(batch, max(bound_ks), generator)
        columns["vae_bound"].append(vae_bound(log_w))
        for k in bound_ks:
            columns[f"iwae_k{k}"].append(iwae_estimate(model, batch, k, generator))
    result = {"test_images": len(x), "ll_k": ll_k}
    for name, parts in columns.items():
        result[name], result[f"{name}_se"] = mean_and_se(torch.cat(parts))
    # Per image, so that models evaluated on the same images can be compared pairwise.
    result["log_likelihood_per_image"] = torch.cat(columns["log_likelihood"]).tolist()
    counts, variances = active_units(model, x)
    result["active_units"], result["active_units_per_layer"] = sum(counts), counts
    result["latent_dim"], result["latent_dims"] = model.latent_dim, list(model.arch.latent_dims)
    result["posterior_mean_variances"] = [v.tolist() for v in variances]
    return result
