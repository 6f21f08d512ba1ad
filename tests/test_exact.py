"""Exact log p(x) by quadrature: against closed forms on a linear-Gaussian model, against a
brute-force grid and the IWAE bound on a 2D model, and the per-image comparison table."""

import math
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from riwae.bounds import (
    gaussian_log_density,
    iwae_bound,
    standard_normal_log_density,
)
from riwae.exact import (
    exact_log_evidence,
    per_image_table,
    summary_markdown,
    summary_table,
)
from riwae.grid import square_grid
from riwae.html_tables import markdown_page
from riwae.io import DataError
from riwae.models import VAE
from riwae.numeric import mean_and_se
from riwae.tables import frame_over_seeds
from riwae.targets import DiagGaussian, ModelPosterior

QUADRATURE = dict(
    coarse_limit=25.0,
    coarse_size=201,
    zoom_size=21,
    mass_outside=1e-6,
    grid_size=25,
    max_grid_size=257,
    tolerance=1e-6,
)


@dataclass(frozen=True)
class LinearGaussianJoint:
    """z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_D), for several observed x; q any diagonal
    Gaussian per image. log p(x) and the posterior are Gaussian, in closed form."""

    W: torch.Tensor  # [D, 2]
    b: torch.Tensor  # [D]
    log_s2: float
    x: torch.Tensor  # [images, D]
    q_mean: torch.Tensor  # [images, 2]
    q_logvar: torch.Tensor  # [images, 2]

    def log_likelihood(self, x: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        mean = z @ self.W.T + self.b
        return gaussian_log_density(x, mean, torch.full_like(mean, self.log_s2))

    def on_shared_points(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_density(z) + self.log_likelihood(self.x[:, None, :], z)

    def on_points(self, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_density(z) + self.log_likelihood(self.x[images, None, :], z)

    def proposal(self) -> DiagGaussian:
        return DiagGaussian(self.q_mean, self.q_logvar)

    def log_evidence(self) -> torch.Tensor:
        covariance = self.W @ self.W.T + math.exp(self.log_s2) * torch.eye(len(self.b))
        return torch.distributions.MultivariateNormal(self.b, covariance).log_prob(self.x)

    def posterior(self) -> torch.distributions.MultivariateNormal:
        precision = torch.eye(2) + self.W.T @ self.W / math.exp(self.log_s2)
        covariance = torch.linalg.inv(precision)
        means = (self.x - self.b) @ self.W @ covariance / math.exp(self.log_s2)
        return torch.distributions.MultivariateNormal(means, covariance.expand(len(self.x), 2, 2))

    def kl_posterior_q(self) -> torch.Tensor:
        q = torch.distributions.MultivariateNormal(
            self.q_mean, torch.diag_embed(self.q_logvar.exp())
        )
        return torch.distributions.kl_divergence(self.posterior(), q)


def linear_gaussian(log_s2: float = math.log(0.3)) -> LinearGaussianJoint:
    g = torch.Generator().manual_seed(0)
    W = torch.randn(6, 2, generator=g)
    W[:, 1] += 0.8 * W[:, 0]  # a correlated posterior, which a grid box does not align with
    b = torch.randn(6, generator=g)
    x = torch.randn(5, 6, generator=g) * 2
    x[0] = b + 8 * W[:, 0]  # a posterior far out, beyond most of the prior's mass
    joint = LinearGaussianJoint(W, b, log_s2, x, torch.zeros(5, 2), torch.zeros(5, 2))
    posterior = joint.posterior()
    # q: each posterior's mean shifted, its marginal variances halved.
    q_logvar = torch.log(posterior.covariance_matrix.diagonal(dim1=1, dim2=2) / 2)
    return LinearGaussianJoint(W, b, log_s2, x, posterior.mean + 0.2, q_logvar)


@pytest.mark.parametrize("log_s2", [math.log(0.3), math.log(1e-3)])
def test_quadrature_matches_the_closed_form_log_evidence_and_kl(log_s2):
    joint = linear_gaussian(log_s2)  # 1e-3: a posterior about 0.01 wide
    table = exact_log_evidence(joint, **QUADRATURE)
    assert torch.allclose(torch.tensor(table.log_evidence), joint.log_evidence(), atol=1e-8)
    assert torch.allclose(torch.tensor(table.kl_posterior_q), joint.kl_posterior_q(), atol=1e-8)
    assert (table.log_evidence - table.half_step).abs().max() <= QUADRATURE["tolerance"]
    assert (table.border_share < math.log(1e-6)).all()


def test_refining_check_flags_a_grid_too_coarse_and_refinement_fixes_it():
    joint = linear_gaussian()
    settings = {**QUADRATURE, "grid_size": 5, "max_grid_size": 5}
    coarse = exact_log_evidence(joint, **settings)
    error = (torch.tensor(coarse.log_evidence) - joint.log_evidence()).abs()
    check = torch.tensor(coarse.log_evidence - coarse.half_step).abs()
    assert (error > 1e-4).any()  # 5 points per axis are not enough ...
    assert (error <= check).all()  # ... and the check says so, conservatively
    refined = exact_log_evidence(joint, **{**settings, "max_grid_size": 257})
    assert (refined.grid_size > 5).all()
    assert torch.allclose(torch.tensor(refined.log_evidence), joint.log_evidence(), atol=1e-6)


def test_border_check_flags_a_box_too_narrow():
    joint = linear_gaussian()
    narrow = exact_log_evidence(joint, **{**QUADRATURE, "mass_outside": 0.3})
    lost = joint.log_evidence() - torch.tensor(narrow.log_evidence)
    assert (lost > 1e-3).all()  # the box cuts off mass ...
    assert (narrow.border_share > math.log(1e-3)).all()  # ... and its border shows it


def test_even_grid_size_is_refused():
    with pytest.raises(ValueError, match="grid_size must be odd"):
        exact_log_evidence(linear_gaussian(), **{**QUADRATURE, "grid_size": 24})


def sharp_2d_model() -> VAE:
    """A random cremer2d model with a sharpened decoder, so that the posteriors of its own
    samples are narrow (about 0.2 wide, as after training), and q = N(0, 2 I) for every x."""
    model = VAE("cremer2d").initialise(torch.Generator().manual_seed(3)).double()
    with torch.no_grad():
        model.decoder.net[0].weight.mul_(10.0)
        model.decoder.net[-1].weight.mul_(5.0)
        model.encoder.net[-1].weight.zero_()
        model.encoder.net[-1].bias.copy_(torch.tensor([0.0, 0.0, math.log(2), math.log(2)]))
    return model


def decoded_images(model: VAE, n: int) -> torch.Tensor:
    """Binary images drawn from the model at latent points z ~ N(0, 0.8^2 I)."""
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        logits = model.decoder(0.8 * torch.randn(n, 2, generator=g))
    return torch.bernoulli(torch.sigmoid(logits), generator=g)


def test_model_posterior_on_shared_points_equals_per_image_points_and_one_image():
    x = decoded_images(sharp_2d_model(), 3)
    joint = ModelPosterior(sharp_2d_model(), x)
    z = torch.randn(50, 2, generator=torch.Generator().manual_seed(2))
    shared = joint.on_shared_points(z)
    per_image = joint.on_points(z.expand(3, -1, -1), torch.arange(3))
    assert torch.allclose(shared, per_image, atol=1e-10, rtol=0)
    # The same class for one image: its density and its q are the images' own.
    one = ModelPosterior(sharp_2d_model(), x[1])
    assert torch.allclose(one.log_joint(z), per_image[1], atol=1e-10, rtol=0)
    assert torch.equal(one.proposal().mean, joint.proposal().mean[1])


def test_model_posterior_refuses_a_model_of_two_stochastic_layers():
    with pytest.raises(ValueError) as error:
        ModelPosterior(VAE("burda2"), torch.zeros(784))
    message = str(error.value)
    assert "\n" not in message and "one stochastic layer, and burda2 has 2" in message


def test_model_quadrature_matches_a_brute_force_grid():
    model = sharp_2d_model()
    joint = ModelPosterior(model, decoded_images(model, 4))
    table = exact_log_evidence(joint, **QUADRATURE)
    assert (table.z1_upper - table.z1_lower).max() < 2  # narrow posteriors: a real test
    grid = square_grid(4.0, 321)  # step 0.025, over the whole region with posterior mass
    reference = torch.cat([joint.on_shared_points(p) for p in grid.points.split(2**13)], 1)
    expected = torch.tensor([grid.log_integral(values) for values in reference])
    assert torch.allclose(torch.tensor(table.log_evidence), expected, atol=1e-6, rtol=0)


@torch.no_grad()
def iwae_draws(model: VAE, x: torch.Tensor, k: int, replicates: int, generator) -> torch.Tensor:
    """``replicates`` independent k-sample IWAE bounds of each image: ``[replicates, images]``."""
    per_call = max(1, 2**12 // k)
    draws = []
    for start in range(0, replicates, per_call):
        sets = min(per_call, replicates - start)
        log_w = model.log_weights(x, k * sets, generator)[0]
        draws.append(iwae_bound(log_w.reshape(k, sets, len(x))))
    return torch.cat(draws)


def test_exact_value_lies_above_the_iwae_bound_and_the_estimate_reaches_it():
    model = sharp_2d_model()
    x = decoded_images(model, 3)
    exact = torch.tensor(exact_log_evidence(ModelPosterior(model, x), **QUADRATURE).log_evidence)
    generator = torch.Generator().manual_seed(0)
    gaps, ses = {}, {}
    for k, replicates in ((1, 2000), (10, 400), (100, 100), (1000, 40)):
        draws = iwae_draws(model, x, k, replicates, generator)
        for image in range(len(x)):
            mean, se = mean_and_se(draws[:, image])
            # E[L_IWAE,k] <= log p(x): one-sided, 3.5 standard errors.
            assert mean <= exact[image] + 3.5 * se, (k, image, mean, float(exact[image]), se)
            gaps[k, image], ses[k, image] = float(exact[image]) - mean, se
    for image in range(len(x)):
        assert gaps[1, image] > gaps[10, image] > gaps[100, image]
        # At k = 1000 the bound's own gap is small: within 0.05 nats plus 4 standard errors.
        assert gaps[1000, image] < 0.05 + 4 * ses[1000, image], gaps


def test_per_image_table_and_summary():
    exact = pd.DataFrame(
        {
            "log_evidence": [-100.0, -90.0, -80.0],
            "half_step": [-100.0, -90.0, -80.0001],
            "border_share": [-20.0, -18.0, -25.0],
            "kl_posterior_q": [1.0, 2.0, 3.0],
            "grid_size": [25, 25, 49],
            "log_tail_bound": [-200.0, -210.0, -220.0],
        }
    )
    table = per_image_table("m", exact, [-100.5, -92.0, -79.9], ll_k=5000)
    assert list(table.difference.round(6)) == [0.5, 2.0, -0.1]
    table = table.assign(base_model="m", seed=0)
    summary = summary_table(table).iloc[0]
    assert summary.images_below_by_more_than_1_nat == 1
    assert summary.images_above_by_more_than_1_nat == 0
    assert summary.difference_max == pytest.approx(2.0)
    assert summary.difference_min == pytest.approx(-0.1)
    assert summary.refinement_max_abs == pytest.approx(1e-4)
    assert summary.exact == pytest.approx(-90.0) and summary.estimate == pytest.approx(-90.8)
    markdown = summary_markdown(
        summary_table(table), frame_over_seeds(summary_table(table), ["base_model"])
    )
    row = (
        "| m | 3 | -90.00 ± 5.77 | -90.80 ± 5.98 (k = 5000) | 0.800 ± 0.624 | 2.000, -0.100 | 1, 0 "
    )
    assert row in markdown and "Over training seeds" not in markdown
    # A second seed of the same model, 2 nats lower everywhere: the spread over seeds.
    second = per_image_table(
        "m-seed1",
        exact.assign(log_evidence=exact.log_evidence - 2),
        [-102.5, -94.0, -81.9],
        ll_k=5000,
    )
    both = summary_table(pd.concat([table, second.assign(base_model="m", seed=1)]))
    spread = frame_over_seeds(both, ["base_model"]).iloc[0]
    assert spread.seeds == 2 and spread.exact == pytest.approx(-91.0)
    assert spread.exact_seed_sd == pytest.approx(
        2**0.5
    ) and spread.difference_seed_sd == pytest.approx(0)
    markdown = summary_markdown(both, frame_over_seeds(both, ["base_model"]))
    assert "| m | 2 | -91.000 (sd 1.414) | -91.800 (sd 1.414) | 0.800 (sd 0.000) |" in markdown
    # The report's page splits every row into its cells: one per column in every table.
    page = markdown_page(markdown, "title")
    assert page.count("<tr>") == 2 + 3
    with pytest.raises(DataError, match="rerun the evaluate stage"):
        per_image_table("m", exact, [-1.0], ll_k=5000)
