"""Decoding draws from q and from q_IW: the paper's Figure 2 and a test-set number for it;
and the 2D latent space of a model."""

import numpy as np
import pandas as pd
import torch

from riwae.bounds import bernoulli_log_likelihood, sample_gaussian
from riwae.data import chosen_images
from riwae.models import VAE
from riwae.numeric import mean_and_se
from riwae.qiw import sir_sample
from riwae.tables import reconstruction_over_seeds


@torch.no_grad()
def q_and_qiw_draws(model: VAE, x: torch.Tensor, draws: int, k: int, generator):
    """``draws`` latents per image from q(z|x) and from q_IW(z|x), each q_IW draw a
    resample from k fresh q draws (Algorithm 1). Shapes ``[draws, batch, dim]``."""
    mean, logvar = model.encoder(x)
    z_q = sample_gaussian(mean, logvar, draws, generator)
    log_w, _, z = model.log_weights(x, draws * k, generator)
    batch, dim = x.shape[0], z.shape[-1]
    # [draws * k, batch] -> [k, draws * batch]: one independent set of k per (draw, image).
    log_w = log_w.view(draws, k, batch).transpose(0, 1).reshape(k, draws * batch)
    z = z.view(draws, k, batch, dim).transpose(0, 1).reshape(k, draws * batch, dim)
    z_qiw = sir_sample(z, log_w, generator).view(draws, batch, dim)
    return z_q, z_qiw


@torch.no_grad()
def reconstruction_metric(
    model: VAE, x: torch.Tensor, k: int, draws: int, seed: int, batch_size: int = 500
) -> list[dict]:
    """Mean log p(x|z) and mean absolute pixel error of the Bernoulli means, for z from q
    and z from q_IW, averaged over ``draws`` draws per image; mean and standard error over
    images, and the per-image difference (q_IW minus q) with its standard error."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    per_image = {"q": ([], []), "q_IW": ([], [])}
    for batch in x.split(batch_size):
        z_q, z_qiw = q_and_qiw_draws(model, batch, draws, k, generator)
        for source, z in (("q", z_q), ("q_IW", z_qiw)):
            logits = model.decoder(z)
            per_image[source][0].append(bernoulli_log_likelihood(logits, batch).mean(0))
            per_image[source][1].append((torch.sigmoid(logits) - batch).abs().mean((0, 2)))
    log_lik = {s: torch.cat(v[0]) for s, v in per_image.items()}
    error = {s: torch.cat(v[1]) for s, v in per_image.items()}

    def row(source: str, log_lik: torch.Tensor, error: torch.Tensor) -> dict:
        (lik_mean, lik_se), (err_mean, err_se) = mean_and_se(log_lik), mean_and_se(error)
        return {
            "source": source,
            "log_p_x_given_z": lik_mean,
            "log_p_x_given_z_se": lik_se,
            "pixel_error": err_mean,
            "pixel_error_se": err_se,
        }

    return [
        row("q", log_lik["q"], error["q"]),
        row("q_IW", log_lik["q_IW"], error["q_IW"]),
        row("q_IW - q", log_lik["q_IW"] - log_lik["q"], error["q_IW"] - error["q"]),
    ]


def reconstructions(models: dict, test: torch.Tensor, settings: dict, seed: int):
    """C2 for every 2D model of ``models`` (``riwae.spec.ModelSpec`` -> model) on the binarised
    test set: the reconstruction metric (``reconstruction_metric``, one row per model and
    source, with the model's ``base_model`` and ``seed``), the same as means over each
    model's seeds (``riwae.tables.reconstruction_over_seeds``), and Figure 2's arrays: real
    digits and decodes of draws from q and from q_IW under ``reconstruction_model``.
    ``settings``: the ``reconstruction_*`` and ``metric_draws`` settings of the config's
    ``figures`` section."""
    k = settings["reconstruction_k"]
    indices = torch.tensor(chosen_images(settings["reconstruction_digits"], len(test), seed))
    rows, figure_arrays = [], {}
    for spec, model in models.items():
        numbers = reconstruction_metric(model, test, k, settings["metric_draws"], seed)
        trained = {"base_model": spec.base_name, "seed": spec.settings.seed}
        rows += [
            {"model": spec.name, **trained, "k": k, "test_images": len(test), **row}
            for row in numbers
        ]
        if spec.name == settings["reconstruction_model"]:
            generator = torch.Generator().manual_seed(seed)
            z_q, z_qiw = q_and_qiw_draws(
                model, test[indices], settings["reconstruction_draws"], k, generator
            )
            figure_arrays = {
                "real": test[indices].reshape(-1, 28, 28).numpy(),
                "from_q": decode_means(model, z_q).transpose(0, 1).numpy(),
                "from_qiw": decode_means(model, z_qiw).transpose(0, 1).numpy(),
                "indices": indices.numpy(),
                "model": np.array(spec.name),
            }
    table = pd.DataFrame(rows)
    return table, reconstruction_over_seeds(table), figure_arrays


@torch.no_grad()
def decode_means(model: VAE, z: torch.Tensor) -> torch.Tensor:
    """Bernoulli means of p(x|z) as images ``[..., 28, 28]``."""
    return torch.sigmoid(model.decoder(z)).reshape(*z.shape[:-1], 28, 28)


def latent_space_arrays(model: VAE, x: torch.Tensor, labels, size: int) -> dict[str, np.ndarray]:
    """The 2D latent space of a model: the posterior means of the images ``x``, and the
    decoded Bernoulli means over a ``size`` x ``size`` grid of z covering the region that
    holds all but 0.5% of the means at each end of both axes (``manifold``: [rows, columns,
    28, 28], rows from high z_2 to low, as a scatter plot shows them)."""
    with torch.no_grad():
        means = model.encoder(x)[0].numpy()
    low, high = np.percentile(means, [0.5, 99.5], axis=0)
    z1 = np.linspace(low[0], high[0], size)
    z2 = np.linspace(high[1], low[1], size)
    grid = torch.tensor(np.stack(np.meshgrid(z1, z2), axis=-1), dtype=x.dtype)
    return {
        "means": means,
        "labels": np.asarray(labels),
        "manifold": decode_means(model, grid).numpy(),
        "extent": np.array([low[0], high[0], low[1], high[1]]),
    }
