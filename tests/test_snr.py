"""Gradient signal-to-noise ratios (riwae.snr): Rainforth et al.'s directions on the
linear-Gaussian problem, where many repeats are cheap, and the VAE's repeats, chunking,
reproducibility and parameters without a gradient."""

import warnings

import numpy as np
import pandas as pd
import pytest
import torch
from test_estimators import member_models
from test_marginal import problem
from test_objectives import estimates
from test_train import synthetic_images

from riwae.bounds import Members, Objective
from riwae.data import BinarizedMNIST
from riwae.models import StochasticLayers
from riwae.snr import (
    Moments,
    gradient_snr,
    noise_floor,
    repeat_gradients,
    snr_markdown,
    snr_slopes,
    snr_table,
)
from riwae.targets import DiagGaussian


def linear_gaussian_chunks(model, q, chunk: int = 2000):
    """A gradient source for ``snr_table``: each repeat a sample set of the linear-Gaussian
    problem with its own copy of q's parameters (encoder) and p's W and b (decoder)."""

    def chunks(objective: Objective, estimator: str, seeds: list[int]):
        for start in range(0, len(seeds), chunk):
            eps = torch.stack(
                [
                    torch.randn(objective.draws, 2, generator=torch.Generator().manual_seed(s))
                    for s in seeds[start : start + chunk]
                ],
                1,
            )
            _, grads = estimates(objective, estimator, eps, model, q)
            yield {
                "encoder": torch.cat([grads["mean"], grads["logvar"]], 1),
                "decoder": torch.cat([grads["W"], grads["b"]], 1),
            }

    return chunks


def test_iwae_encoder_snr_falls_decoder_snr_rises_and_dregs_encoder_snr_does_not_fall():
    """Rainforth et al. (2018): with k the IWAE gradient's SNR falls for the encoder (as
    1/sqrt(k), asymptotically) and rises for the decoder; Tucker et al. (2019): DReG's
    encoder SNR does not fall. q is wider than the posterior in every direction, so the
    weights are bounded and the asymptotics hold (with q narrower, as in the other tests,
    w^2 has heavy tails and DReG's SNR falls too). 4000 repeats: each SNR is known to
    about 0.02 (measured over seeds: IWAE's encoder 0.62, 0.08-0.09, 0.02-0.04 at k = 1,
    10, 100; DReG's 0.70, 0.21, 0.93; the decoder's 0.79, 2.4, 9.3)."""
    model, _ = problem()
    posterior = model.posterior()
    q = DiagGaussian(posterior.mean + 0.3, torch.log(2 * posterior.covariance_matrix.diag()))
    source = linear_gaussian_chunks(model, q)
    snr = {
        estimator: snr_table(source, [1, 10, 100], "iwae", estimator, repeats=4000, seed=0)
        .set_index(["network", "k"])
        .mean_snr
        for estimator in ("reparam", "dreg")
    }
    iwae, dreg = snr["reparam"], snr["dreg"]
    assert iwae["encoder", 1] > 2 * iwae["encoder", 10] > 2 * 1.5 * iwae["encoder", 100], iwae
    assert iwae["decoder", 1] < iwae["decoder", 10] / 2 < iwae["decoder", 100] / 4, iwae
    assert dreg["encoder", 100] > dreg["encoder", 1] > 5 * iwae["encoder", 100], dreg
    # The estimators differ in the encoder's gradient only.
    torch.testing.assert_close(
        torch.tensor(dreg["decoder"].to_numpy()), torch.tensor(iwae["decoder"].to_numpy())
    )


def test_moments_merged_chunk_by_chunk_are_those_of_all_at_once():
    """Mean and SNR over 3 chunks equal the one-pass sample mean and |mean| / std (over
    n - 1); a parameter whose gradient is always zero has an undefined SNR (NaN), one that
    is the same non-zero value in every repeat an infinite one, with no warning."""
    g = torch.Generator().manual_seed(0)
    samples = 3.0 + torch.randn(50, 6, generator=g) * torch.arange(1.0, 7.0)
    samples[:, 4] = 0.0
    samples[:, 5] = -2.5
    moments = Moments()
    for chunk in samples.split([7, 30, 13]):
        moments.add(chunk)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        snr = moments.snr()
    torch.testing.assert_close(moments.mean, samples.mean(0), rtol=1e-13, atol=1e-13)
    expected = samples.mean(0).abs() / samples.std(0)
    torch.testing.assert_close(snr[:4], expected[:4], rtol=1e-12, atol=0)
    assert snr[4].isnan() and snr[5] == torch.inf


def vae_and_images(arch: str, images: int):
    """A model with p and q near standard normals (test_estimators.member_models), where
    the draws' weights are spread, and synthetic binarised digits."""
    model = member_models(arch, 1)[0]
    x = BinarizedMNIST(synthetic_images(images, seed=5)).fixed(seed=0, dtype=torch.float64)
    return model, x


@pytest.mark.parametrize(
    ("arch", "objective", "estimator"),
    [("burda1", Objective("miwae", 2, m=2), "dreg"), ("burda2", Objective("piwae", 2, m=2), "stl")],
)
def test_each_repeat_is_the_gradient_of_the_model_alone(arch, objective, estimator, one_thread):
    """The stacked copies give each repeat the gradient of the objective's mean over the
    images that the model alone gives with that repeat's noise, taken two images at a
    time."""
    model, x = vae_and_images(arch, 3)
    seeds = [11, 12, 13]
    grads = repeat_gradients(model, x, objective, estimator, seeds, image_chunk=2)
    members = Members([objective], [estimator])
    for r, seed in enumerate(seeds):
        eps = torch.randn(
            (objective.draws, len(x), model.latent_dim),
            generator=torch.Generator().manual_seed(seed),
        )
        model.zero_grad()
        model.bounds(x[None], eps[None], members)[1].mean().backward()
        for network in ("encoder", "decoder"):
            alone = torch.cat(
                [p.grad.flatten() for name, p in model.named_parameters() if (network in name)]
            )
            torch.testing.assert_close(grads[network][r], alone, rtol=1e-10, atol=1e-13)


def test_snr_is_reproducible_and_does_not_depend_on_the_chunking(one_thread):
    model, x = vae_and_images("burda1", 3)
    run = lambda **kwargs: gradient_snr(model, x, [1, 4], "iwae", "dreg", repeats=5, **kwargs)  # noqa: E731
    whole = run(seed=1)
    assert whole.equals(run(seed=1))
    chunked = run(seed=1, max_draws=5, max_copies=2)  # one repeat and one image at a time
    assert chunked.drop(columns=["mean_snr", "median_snr"]).equals(
        whole.drop(columns=["mean_snr", "median_snr"])
    )
    torch.testing.assert_close(
        torch.tensor(chunked[["mean_snr", "median_snr"]].to_numpy()),
        torch.tensor(whole[["mean_snr", "median_snr"]].to_numpy()),
        rtol=1e-9,
        atol=0,
    )
    assert not run(seed=2)[["mean_snr"]].equals(whole[["mean_snr"]])
    assert list(whole.columns) == [
        "objective", "m", "beta", "estimator", "k", "draws", "network", "parameters",
        "zero_gradient", "mean_snr", "median_snr", "repeats", "images",
    ]  # fmt: skip
    assert list(zip(whole.k, whole.network, strict=True)) == [
        (1, "encoder"), (1, "decoder"), (4, "encoder"), (4, "decoder")
    ]  # fmt: skip


def test_no_pass_holds_more_than_max_draws(monkeypatch, one_thread):
    """k = 300 with 3 images and at most 700 draws a pass: two images, then one, per pass;
    k = 1 with at most 32 copies: 32 repeats of all 3 images, then the rest."""
    model, x = vae_and_images("burda1", 3)
    passes = []
    bounds = StochasticLayers.bounds

    def recorded(self, x, eps, members):
        passes.append(tuple(eps.shape[:3]))  # copies, draws per image, images
        return bounds(self, x, eps, members)

    monkeypatch.setattr(StochasticLayers, "bounds", recorded)
    gradient_snr(model, x, [300], repeats=2, max_draws=700)
    assert passes == [(1, 300, 2), (1, 300, 1)] * 2
    passes.clear()
    gradient_snr(model, x, [1], repeats=40, max_draws=700)
    assert passes == [(32, 1, 3), (8, 1, 3)]


def test_parameters_without_a_gradient_are_counted_apart(one_thread):
    """Pixels that are 0 in every image give the encoder's first layer weights with no
    gradient (200 per pixel): they are counted in zero_gradient and left out, with no
    warning."""
    model, x = vae_and_images("burda1", 2)
    x[:, :100] = 0
    dead_pixels = int((x == 0).all(0).sum())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table = gradient_snr(model, x, [2], repeats=3).set_index("network")
    encoder = sum(p.numel() for name, p in model.named_parameters() if "encoder" in name)
    assert table.zero_gradient["encoder"] == 200 * dead_pixels and dead_pixels >= 100
    assert table.parameters["encoder"] + table.zero_gradient["encoder"] == encoder
    assert table.zero_gradient["decoder"] == 0
    assert table[["mean_snr", "median_snr"]].notna().all().all()


def test_the_vae_shows_the_same_directions(one_thread):
    """burda1 near standard normals, 2 images, 100 repeats: from k = 1 to 100 the IWAE
    gradient's median SNR falls for the encoder (measured over seeds: 0.11-0.12 to
    0.066-0.076, near the floor of about 0.8 / sqrt(100) that an estimate of zero signal
    has) and rises for the decoder (0.115-0.128 to 0.32-0.38)."""
    model, x = vae_and_images("burda1", 2)
    table = gradient_snr(model.float(), x, [1, 100], repeats=100, seed=0)
    snr = table.set_index(["network", "k"]).median_snr
    assert snr["encoder", 100] < snr["encoder", 1] / 1.3, snr
    assert snr["decoder", 100] > 2 * snr["decoder", 1], snr


def test_too_few_repeats_are_refused():
    model, x = vae_and_images("burda1", 1)
    with pytest.raises(ValueError, match="repeats = 1: a standard deviation needs 2 or more"):
        gradient_snr(model, x, [1], repeats=1)


def test_a_gradient_without_signal_shows_the_noise_floor():
    """Zero-mean gradients: the mean over 20,000 parameters of |mean| / std over 100
    repeats is sqrt(2 / pi) / sqrt(100) = 0.0798, up to the Student-t correction of about
    (1 + 1 / (4 x 99)) and a standard error of 0.0004; a gradient of SNR 1 is far above it."""
    g = torch.Generator().manual_seed(3)
    moments = Moments()
    moments.add(torch.randn(100, 20000, generator=g, dtype=torch.float64))
    assert noise_floor(100) == pytest.approx(0.0798, abs=1e-4)
    assert moments.snr().mean().item() == pytest.approx(noise_floor(100), rel=0.02)
    signal = Moments()
    signal.add(1.0 + torch.randn(100, 2000, generator=g, dtype=torch.float64))
    assert signal.snr().mean().item() > 10 * noise_floor(100)


def power_law_table(models=("a", "b")) -> pd.DataFrame:
    """A gradient_snr table whose encoder SNR is 0.5 / sqrt(k) and decoder SNR 0.2 sqrt(k)
    exactly, for two estimators and models."""
    rows = [
        {
            "model": model,
            "objective": "iwae",
            "estimator": estimator,
            "k": k,
            "network": network,
            "mean_snr": 0.5 * k**-0.5 if network == "encoder" else 0.2 * k**0.5,
            "repeats": 100,
            "images": 1,
        }
        for model in models
        for estimator in ("reparam", "dreg")
        for k in (1, 10, 100, 1000)
        for network in ("encoder", "decoder")
    ]
    return pd.DataFrame(rows)


def test_slopes_of_power_laws_are_their_exponents():
    slopes = snr_slopes(power_law_table()).set_index(["model", "network", "estimator"])
    assert len(slopes) == 8
    for (_, network, _), row in slopes.iterrows():
        assert row.slope == pytest.approx(-0.5 if network == "encoder" else 0.5, abs=1e-12)
        assert (row.k_first, row.k_last) == (1, 1000)
    assert slopes.loc[("a", "encoder", "reparam")].snr_last == pytest.approx(0.5 / 1000**0.5)
    assert slopes.noise_floor.eq(noise_floor(100)).all()


def test_markdown_has_a_row_per_model_network_and_estimator():
    text = snr_markdown(power_law_table())
    lines = text.splitlines()
    assert (
        lines[0] == "| model | network | estimator | k = 1 | k = 10 | k = 100 | k = 1000 | slope |"
    )
    assert "| a | encoder | reparam | 0.500 | 0.158 | 0.050 | 0.016 | -0.50 |" in lines
    assert "| b | decoder | dreg | 0.200 | 0.632 | 2.000 | 6.325 | +0.50 |" in lines
    assert sum(line.startswith("| a |") or line.startswith("| b |") for line in lines) == 8
    assert "IWAE bound" in text and "100 independent repeats" in text


def test_figure_draws_each_estimator_the_slopes_and_the_floor():
    """One row per model, encoder and decoder panels; in each, a line per estimator, the
    1/sqrt(k) and sqrt(k) references through the plain gradient's k = 1 value, and the
    floor."""
    from riwae.plots import gradient_snr as snr_figure

    table = power_law_table()
    fig = snr_figure(table, {"dpi": 50})
    axes = fig.axes
    assert len(axes) == 4
    encoder = axes[0]
    lines = {line.get_label(): line for line in encoder.get_lines()}
    assert {"reparam", "dreg", "1/sqrt(k)", "sqrt(k)", "no signal"} <= set(lines)
    np.testing.assert_allclose(
        lines["1/sqrt(k)"].get_ydata(), 0.5 / np.sqrt([1, 10, 100, 1000]), rtol=1e-12
    )
    np.testing.assert_allclose(
        lines["sqrt(k)"].get_ydata(), 0.5 * np.sqrt([1, 10, 100, 1000]), rtol=1e-12
    )
    assert lines["no signal"].get_ydata()[0] == pytest.approx(noise_floor(100))
    assert encoder.get_yscale() == "log" and encoder.get_xscale() == "log"
    assert [ax.get_title() for ax in axes] == [
        "a: encoder", "a: decoder", "b: encoder", "b: decoder"
    ]  # fmt: skip
