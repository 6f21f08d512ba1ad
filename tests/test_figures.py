import numpy as np
import pytest
import torch
from scipy import stats

from riwae.appendix import appendix_arrays, fit_gaussian, trimodal_target
from riwae.models import VAE
from riwae.plots import mass_box, model_colour
from riwae.reconstruct import (
    decode_means,
    latent_space_arrays,
    q_and_qiw_draws,
    reconstruction_metric,
)


def binary_images(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.rand(n, 784, generator=g) < 0.2).to(torch.get_default_dtype())


def test_metric_is_equal_for_q_and_qiw_when_the_decoder_ignores_z():
    model = VAE("cremer2d").initialise(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.decoder.net[0].weight.zero_()  # p(x|z) no longer depends on z
    rows = {r["source"]: r for r in reconstruction_metric(model, binary_images(50), 10, 3, 0)}
    assert rows["q"]["log_p_x_given_z"] == rows["q_IW"]["log_p_x_given_z"]
    assert rows["q"]["pixel_error"] == rows["q_IW"]["pixel_error"]
    assert rows["q_IW - q"]["log_p_x_given_z"] == 0 and rows["q_IW - q"]["pixel_error"] == 0


def test_qiw_draws_decode_better_than_q_draws_when_q_is_poor():
    """With q much wider than the posterior, resampling by importance weight must help."""
    model = VAE("cremer2d").initialise(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.encoder.net[-1].bias[2:] = 2.0  # log-variance 2: a very wide q
    x = binary_images(100)
    rows = {r["source"]: r for r in reconstruction_metric(model, x, 50, 4, 0)}
    diff = rows["q_IW - q"]
    assert diff["log_p_x_given_z"] > 5 * diff["log_p_x_given_z_se"] > 0


def test_q_and_qiw_draws_shapes_and_k1():
    model = VAE("cremer2d").initialise(torch.Generator().manual_seed(0))
    x = binary_images(7)
    z_q, z_qiw = q_and_qiw_draws(model, x, 4, 3, torch.Generator().manual_seed(0))
    assert z_q.shape == z_qiw.shape == (4, 7, 2)
    # With k = 1 the single proposal is always picked: q_IW draws are q draws.
    a = q_and_qiw_draws(model, x, 4, 1, torch.Generator().manual_seed(1))[1]
    g = torch.Generator().manual_seed(1)
    mean, logvar = model.encoder(x)
    torch.randn((4, 7, 2), generator=g)  # the q draws come first
    expected = mean + torch.exp(0.5 * logvar) * torch.randn((4, 7, 2), generator=g)
    torch.testing.assert_close(a, expected)


def test_latent_space_spans_the_posterior_means():
    model = VAE("cremer2d").initialise(torch.Generator().manual_seed(0))
    space = latent_space_arrays(model, binary_images(400), np.arange(400) % 10, 4)
    means, (left, right, bottom, top) = space["means"], space["extent"]
    inside = (
        (left <= means[:, 0])
        & (means[:, 0] <= right)
        & (bottom <= means[:, 1])
        & (means[:, 1] <= top)
    )
    assert 0.98 <= inside.mean() < 1  # all but 0.5% at each end of each axis
    assert space["manifold"].shape == (4, 4, 28, 28)
    # Rows run from high z_2 to low, columns from low z_1 to high.
    for row, column, z in ((0, 0, [left, top]), (3, 3, [right, bottom]), (0, 3, [right, top])):
        expected = decode_means(model, torch.tensor([z])).reshape(28, 28).numpy()
        np.testing.assert_allclose(space["manifold"][row, column], expected, rtol=1e-12)


def test_digit_panels_zoom_to_where_the_posterior_lies():
    axis = np.linspace(-6, 6, 241)
    z1, z2 = np.meshgrid(axis, axis)  # images are [z_2, z_1]
    log_density = -0.5 * (((z1 - 1) / 0.2) ** 2 + ((z2 + 2) / 0.5) ** 2)
    (left, right), (bottom, top) = mass_box(axis, axis, log_density, mass=0.99, margin=0.2)
    assert right - left == pytest.approx(top - bottom)  # square, as the panels are
    assert (left + right) / 2 == pytest.approx(1, abs=0.05)
    assert (bottom + top) / 2 == pytest.approx(-2, abs=0.05)
    # 99% of the mass along z_2 (the wider axis) is within 2.58 sd, then 20% more each side.
    assert top - bottom == pytest.approx(2 * 2.576 * 0.5 * 1.4, abs=0.1)


def test_a_model_has_one_colour_in_every_figure():
    models = [("vae", 1), ("vae", 5), ("vae", 50), ("iwae", 5), ("miwae", 5), ("piwae", 5)]
    models += [("ciwae", 5)]
    colours = {model: model_colour(*model, "reparam") for model in models}
    assert len(set(map(str, colours.values()))) == len(colours)
    assert model_colour("vae", 1, "reparam") == model_colour("iwae", 1, "reparam")  # k = 1
    assert model_colour("iwae", 5, "dreg") != model_colour("iwae", 5, "reparam")


def test_a_model_looks_as_its_spec_says_whatever_its_name():
    """Colour and marker come from the spec's columns, so any objective, estimator or
    architecture gets a look, one unknown to the figures too."""
    import matplotlib.pyplot as plt
    from test_train import settings

    from riwae.plots import OTHER_COLOURS, OTHER_MARKER, model_looks
    from riwae.spec import ModelSpec, spec_table

    specs = [
        ModelSpec(settings(arch="cremer2d", objective="iwae", k=50)),
        ModelSpec(settings(objective="ciwae", beta=0.5, k=8, estimator="stl")),
        ModelSpec(settings(objective="iwae", k=50, seed=1), first_seed=False),
    ]
    looks = model_looks(spec_table(specs))
    assert list(looks) == ["cremer2d-iwae-k50", "burda1-ciwae-b0.5-k8-stl", "burda1-iwae-k50-seed1"]
    assert looks["cremer2d-iwae-k50"].colour == looks["burda1-iwae-k50-seed1"].colour
    assert looks["cremer2d-iwae-k50"].marker == "s" and looks["burda1-iwae-k50-seed1"].marker == "o"
    assert looks["burda1-ciwae-b0.5-k8-stl"].colour == model_colour("iwae", 8, "stl")
    # An objective and an architecture that no figure knows yet still get a look.
    unknown = model_looks(spec_table(specs[:1]).assign(arch="new2d", objective="rws"))
    look = unknown["cremer2d-iwae-k50"]
    shade = 0.45 + 0.45 * np.log(50) / np.log(100)
    assert look.marker == OTHER_MARKER and look.colour == plt.get_cmap(OTHER_COLOURS)(shade)


def test_wsvi_qiw_covers_the_far_mode_and_svi_does_not():
    torch.set_default_dtype(torch.float64)
    arrays = appendix_arrays([10], steps=600, sample_sets=50, lr=0.03, draws=20000, seed=0)
    far = {m: float((arrays[f"{m}_k10_samples"] > 2).mean()) for m in ("svi", "wsvi")}
    assert abs(far["wsvi"] - 0.4) < 0.06, far  # the true mass of the mode at 4 is 0.4
    assert far["svi"] < 0.15, far


def test_fits_reach_the_right_optimum_for_a_gaussian_target():
    """For a Gaussian posterior, SVI and W-SVI both recover it exactly."""
    from riwae.targets import GaussianMixtureTarget

    target = GaussianMixtureTarget(
        torch.tensor([[1.5]], dtype=torch.float64),
        torch.tensor([[0.5]], dtype=torch.float64),
        torch.zeros(1, dtype=torch.float64),
    )
    for objective, k in (("vae", 1), ("iwae", 5)):
        q = fit_gaussian(target, objective, k, 800, 50, 0.03, torch.Generator().manual_seed(0))
        assert abs(float(q.mean) - 1.5) < 0.05 and abs(float(q.logvar) - 0.5) < 0.1


def test_trimodal_target_is_the_stated_mixture():
    z = torch.linspace(-8, 8, 161)[:, None]
    expected = (
        0.3 * stats.norm.pdf(z, -2, 0.6)
        + 0.3 * stats.norm.pdf(z, 0, 0.9)
        + 0.4 * stats.norm.pdf(z, 4, 0.7)
    )
    torch.testing.assert_close(
        trimodal_target().log_joint(z).exp(), torch.from_numpy(expected[:, 0])
    )
