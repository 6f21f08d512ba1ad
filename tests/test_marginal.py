"""The marginal q_IW among the bounds, on a linear-Gaussian model where p(x), the posterior
and L_VAE[q] have closed forms."""

import math
from dataclasses import dataclass

import pandas as pd
import pytest
import torch

from riwae.bounds import gaussian_log_density, standard_normal_log_density
from riwae.grid import fitted_grid
from riwae.marginal import marginal_ordering, marginal_over_seeds
from riwae.targets import DiagGaussian


@dataclass(frozen=True)
class LinearGaussian:
    """z ~ N(0, I_2), x | z ~ N(W z + b, s^2 I_D), for one observed x."""

    W: torch.Tensor  # [D, 2]
    b: torch.Tensor  # [D]
    log_s2: float
    x: torch.Tensor  # [D]

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        mean = z @ self.W.T + self.b
        logvar = torch.full_like(mean, self.log_s2)
        return standard_normal_log_density(z) + gaussian_log_density(self.x, mean, logvar)

    def log_evidence(self) -> float:
        covariance = self.W @ self.W.T + math.exp(self.log_s2) * torch.eye(len(self.b))
        dist = torch.distributions.MultivariateNormal(self.b, covariance)
        return float(dist.log_prob(self.x))

    def posterior(self) -> torch.distributions.MultivariateNormal:
        precision = torch.eye(2) + self.W.T @ self.W / math.exp(self.log_s2)
        covariance = torch.linalg.inv(precision)
        mean = covariance @ self.W.T @ (self.x - self.b) / math.exp(self.log_s2)
        return torch.distributions.MultivariateNormal(mean, covariance)


def problem() -> tuple[LinearGaussian, DiagGaussian]:
    g = torch.Generator().manual_seed(0)
    W = torch.randn(5, 2, generator=g)
    W[:, 1] += 0.8 * W[:, 0]  # correlated posterior: a diagonal q cannot match it
    b = torch.randn(5, generator=g)
    model = LinearGaussian(W, b, math.log(0.5), torch.randn(5, generator=g))
    posterior = model.posterior()
    # q: the posterior's mean shifted, with the posterior's marginal variances shrunk.
    q = DiagGaussian(posterior.mean + 0.3, torch.log(posterior.covariance_matrix.diag() * 0.6))
    return model, q


def closed_form_elbo(model: LinearGaussian, q: DiagGaussian) -> float:
    q_dist = torch.distributions.MultivariateNormal(q.mean, torch.diag(q.logvar.exp()))
    return model.log_evidence() - float(
        torch.distributions.kl_divergence(q_dist, model.posterior())
    )


def test_grid_log_evidence_and_elbo_match_closed_forms():
    model, q = problem()
    grid = fitted_grid([model.log_joint, q.log_prob], limit=8.0, size=301)
    log_joint = model.log_joint(grid.points)
    assert abs(grid.log_integral(log_joint) - model.log_evidence()) < 1e-6
    assert abs(grid.elbo(q.log_prob(grid.points), log_joint) - closed_form_elbo(model, q)) < 1e-4


def test_bounds_are_ordered_and_the_kl_shrinks():
    model, q = problem()
    grid = fitted_grid([model.log_joint, q.log_prob], limit=8.0, size=151)
    rows = marginal_ordering(
        model,
        q,
        grid,
        ks=[1, 5, 50],
        sample_sets=400,
        replicates=4,
        bound_sets=20000,
        generator=torch.Generator().manual_seed(1),
    )
    elbo, log_evidence = closed_form_elbo(model, q), model.log_evidence()
    for row in rows:
        assert row["ordered"], row
        # L_VAE[q] is the same for every k: its Monte Carlo estimate matches the closed form.
        assert abs(row["L_VAE[q]"] - elbo) < 4 * row["L_VAE[q]_se"]
        assert abs(row["log p(x)"] - log_evidence) < 1e-5
    k1, k5, k50 = rows
    # At k = 1, q_IW is q: its grid ELBO is the closed-form ELBO.
    assert abs(k1["L_VAE[q_IW marginal]"] - elbo) < 1e-3
    # The marginal's ELBO sits strictly between L_IWAE and log p(x) once k > 1 ...
    assert k5["L_IWAE[q]"] < k5["L_VAE[q_IW marginal]"] < log_evidence
    # ... and its KL to the posterior shrinks with k.
    kl = [row["KL(q_IW marginal || posterior)"] for row in rows]
    assert kl[0] > kl[1] > kl[2] > 0


def test_marginal_over_seeds_averages_each_seeds_images_then_spreads_over_seeds():
    """Seed 0's KL at k = 1 is 5 (images 3 and 7), seed 1's 10: mean 7.5, sd 5 / sqrt(2);
    one case of four at k = 10 is not ordered."""
    rows = [
        {
            "case": "a" if seed == 0 else "a-seed1",
            "image": image,
            "base_model": "a",
            "seed": seed,
            "k": k,
            "KL(q_IW marginal || posterior)": (seed + 1) * image / k,
            "L_VAE[q_IW marginal]": -1.0 - seed,
            "ordered": not (seed == 1 and k == 10 and image == 3),
        }
        for seed in (0, 1)
        for image in (3, 7)
        for k in (1, 10)
    ]
    synthetic = {"case": "synthetic 2D target", "image": -1, "k": 1, "ordered": False}
    spread = marginal_over_seeds(pd.DataFrame([synthetic, *rows])).set_index("k")
    kl = "KL(q_IW marginal || posterior)"
    assert spread.seeds.tolist() == [2, 2]
    assert spread[kl][1] == pytest.approx(7.5) and spread[f"{kl}_seed_sd"][1] == pytest.approx(
        5 / 2**0.5
    )
    assert spread[kl][10] == pytest.approx(0.75)
    assert spread.ordered_share.tolist() == [1.0, 0.75]
