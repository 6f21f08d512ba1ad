"""Evaluating trained models as Burda et al. did: the k=5000 log-likelihood estimate, the
IWAE bound at several k, the VAE bound, and the number of active units."""

import math

import torch

from riwae.bounds import vae_bound
from riwae.io import DataError, read_json
from riwae.models import VAE
from riwae.numeric import decoder_rows, in_chunks, mean_and_se


def evaluation_batch_size(device: torch.device | str, ll_k: int) -> int:
    """Images per batch of ``evaluate_model``: 100 on a CPU; on a GPU as many as fill a
    decoder pass (``riwae.numeric.decoder_rows``) of the k = ``ll_k`` estimate."""
    return max(100, decoder_rows(device) // ll_k)


@torch.no_grad()
def iwae_estimate(
    model: VAE, x: torch.Tensor, k: int, generator: torch.Generator, max_samples: int | None = None
) -> torch.Tensor:
    """log (1/k) sum_i w_i per image for k draws, in chunks of at most ``max_samples``
    latent draws (k x batch; by default ``riwae.numeric.decoder_rows`` of the device) so
    memory stays bounded for k = 5000. Shape ``[batch]``."""
    parts = []
    for start, stop in in_chunks(k, len(x), max_samples or decoder_rows(x.device)):
        log_w, _, _ = model.log_weights(x, stop - start, generator)
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


def evaluation_record(spec, model: VAE, x: torch.Tensor, settings: dict, seed: int) -> dict:
    """What ``eval.json`` holds for one model (``riwae.spec.ModelSpec``): its name, settings
    and device, and ``evaluate_model`` on the binarised test images ``x``. ``settings``: the
    config's ``evaluation`` section."""
    numbers = evaluate_model(model, x, settings["ll_k"], settings["bound_k"], seed)
    return {"model": spec.name, **spec.settings.as_dict(), "device": str(x.device), **numbers}


def read_evaluations(paths, specs) -> list[dict]:
    """The evaluation records (``eval.json``) of ``paths``, each checked against its recorded
    hash (``riwae.io.read_json``) and to be of the model its spec names."""
    records = []
    for path, spec in zip(paths, specs, strict=True):
        record = read_json(path)
        settings = {key: record.get(key) for key in spec.settings.as_dict()}
        if record.get("model") != spec.name or settings != spec.settings.as_dict():
            raise DataError(
                f"{path} is the evaluation of {record.get('model')!r} with other settings, not "
                f"of {spec.name} that its folder names; delete it and run snakemake again, "
                f"which writes it afresh (and what is made from it)."
            )
        records.append(record)
    return records
