"""Each objective through q and q_IW on a 2D model (riwae.through_qiw), against the closed
forms of a linear-Gaussian model, whose posterior is Gaussian: log p(x), KL(q || p(z|x)),
the ELBO and both one-sigma areas are known exactly."""

import math

import pandas as pd
import pytest
import torch
from test_exact import QUADRATURE, LinearGaussianJoint, linear_gaussian

from riwae.exact import exact_log_evidence
from riwae.html_tables import markdown_page
from riwae.tables import frame_over_seeds
from riwae.through_qiw import (
    elbo_of_q,
    hermite_rule,
    iwae_bound_of_q,
    model_summary,
    objectives_markdown,
    per_image_table,
)


def closed_form_kl_q_posterior(joint: LinearGaussianJoint) -> torch.Tensor:
    q = torch.distributions.MultivariateNormal(joint.q_mean, torch.diag_embed(joint.q_logvar.exp()))
    return torch.distributions.kl_divergence(q, joint.posterior())


def test_hermite_rule_integrates_gaussian_moments():
    """E[1] = 1, E[eps_1^2 eps_2^4] = 1 x 3, E[eps_1^8] = 105, odd moments 0."""
    eps, w = hermite_rule(10)
    assert w.sum().item() == pytest.approx(1, abs=1e-14)
    assert (w * eps[:, 0] ** 2 * eps[:, 1] ** 4).sum().item() == pytest.approx(3, rel=1e-12)
    assert (w * eps[:, 0] ** 8).sum().item() == pytest.approx(105, rel=1e-12)
    assert abs((w * eps[:, 0] ** 3 * eps[:, 1]).sum().item()) < 1e-13


def test_elbo_and_kl_of_q_are_the_closed_forms():
    """log p(x, z) is quadratic in z: the Gauss-Hermite ELBO is exact, and log p(x) from the
    quadrature minus it is KL(q || p(z|x)) to the quadrature's accuracy (5e-8 nats
    measured; 1e-6 allowed)."""
    joint = linear_gaussian()
    kl = closed_form_kl_q_posterior(joint)
    elbo = elbo_of_q(joint, nodes=5)
    torch.testing.assert_close(elbo, joint.log_evidence() - kl, rtol=0, atol=1e-10)
    exact = exact_log_evidence(joint, **QUADRATURE)
    table = per_image_table(joint, exact, k=10, sets=200, seed=0)
    torch.testing.assert_close(torch.tensor(table.kl_q_posterior.to_numpy()), kl, rtol=0, atol=1e-6)
    assert (kl > 0.1).all()  # q is off: the test is not of zeros


def test_areas_are_those_of_q_and_of_the_posterior():
    joint = linear_gaussian()
    exact = exact_log_evidence(joint, **QUADRATURE)
    posterior_det = torch.linalg.det(joint.posterior().covariance_matrix)
    torch.testing.assert_close(
        torch.tensor(exact.posterior_area.to_numpy()),
        math.pi * posterior_det.sqrt(),
        rtol=1e-6,
        atol=0,
    )
    table = per_image_table(joint, exact, k=10, sets=20, seed=0)
    q_det = joint.q_logvar.exp().prod(-1)
    expected = (q_det / posterior_det).sqrt()  # q's variances are halved marginals: below 1
    torch.testing.assert_close(
        torch.tensor(table.q_area_over_posterior.to_numpy()), expected, rtol=1e-6, atol=0
    )
    assert (expected < 1).all()


def test_iwae_bound_lies_between_the_elbo_and_log_p_x_and_is_exact_for_the_posterior():
    """q = the posterior's mean and marginal variances: L_IWAE_k - ELBO is positive, below
    KL(q || p(z|x)), and grows with k (Monte Carlo, within 4 standard errors). With q the
    exact posterior (W's columns orthogonal, so the posterior is diagonal) every weight is
    p(x): L_IWAE_k = ELBO = log p(x) for every set."""
    joint = linear_gaussian()
    kl = closed_form_kl_q_posterior(joint)
    elbo = elbo_of_q(joint)
    generator = torch.Generator().manual_seed(1)
    bound = {k: iwae_bound_of_q(joint, k, 4000, generator) for k in (1, 10, 100)}
    mean1, se1 = bound[1]
    assert ((mean1 - elbo).abs() < 4 * se1).all()
    for small, large in ((1, 10), (10, 100)):
        (a, sa), (b, sb) = bound[small], bound[large]
        assert (b - a > -4 * (sa**2 + sb**2).sqrt()).all()
    mean100, se100 = bound[100]
    assert (mean100 - elbo > 0.5 * kl).all() and (mean100 - elbo < kl + 4 * se100).all()

    W = torch.tensor([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    b = torch.zeros(3, dtype=torch.float64)
    x = torch.tensor([[0.5, -1.0, 0.3], [2.0, 1.0, -0.2]], dtype=torch.float64)
    exact_q = LinearGaussianJoint(W, b, math.log(0.5), x, torch.zeros(2, 2), torch.zeros(2, 2))
    posterior = exact_q.posterior()
    exact_q = LinearGaussianJoint(
        W,
        b,
        math.log(0.5),
        x,
        posterior.mean,
        posterior.covariance_matrix.diagonal(dim1=1, dim2=2).log(),
    )
    mean, se = iwae_bound_of_q(exact_q, 5, 10, generator)
    torch.testing.assert_close(mean, exact_q.log_evidence(), rtol=0, atol=1e-12)
    torch.testing.assert_close(elbo_of_q(exact_q), exact_q.log_evidence(), rtol=0, atol=1e-12)
    assert (se < 1e-12).all()


def test_summary_and_spread_over_seeds():
    per_image = pd.DataFrame(
        {
            "log_evidence": [-10.0, -12.0, -14.0],
            "elbo": [-11.0, -12.5, -20.0],
            "iwae_bound": [-10.5, -12.2, -16.0],
            "kl_q_posterior": [1.0, 0.5, 6.0],
            "iwae_minus_elbo": [0.5, 0.3, 4.0],
            "q_area_over_posterior": [2.0, 8.0, 4.0],
            "iwae_k": [50, 50, 50],
        }
    )
    summary = model_summary(per_image)
    assert summary["kl_q_posterior_mean"] == pytest.approx(2.5)
    assert summary["kl_q_posterior_median"] == 1.0 and summary["kl_q_posterior_worst"] == 6.0
    assert summary["q_area_over_posterior"] == pytest.approx(4.0)  # geometric mean
    assert summary["elbo"] == pytest.approx(-43.5 / 3)
    rows = pd.DataFrame(
        {"base_model": ["a", "a", "a", "b"], "model": ["a", "a-seed1", "a-seed2", "b"],
         "kl": [1.0, 2.0, 6.0, 4.0]}
    )  # fmt: skip
    spread = frame_over_seeds(rows, ["base_model"]).set_index("base_model")
    # The markdown is a pipe table the report's HTML pages can read: one cell per column.
    table = frame_over_seeds(
        pd.DataFrame([{**summary, "base_model": "m", "qiw_reconstruction_gain": 3.0}] * 2),
        ["base_model"],
    )
    lines = objectives_markdown(table).splitlines()
    assert len({line.count("|") for line in lines[:3]}) == 1
    assert "| m | 50 | -12.00 (sd 0.00) |" in lines[2]
    markdown_page(objectives_markdown(table), "title")  # splits every row into its cells
    assert spread.kl["a"] == 3.0 and spread.kl_seed_sd["a"] == pytest.approx(math.sqrt(7))
    assert spread.seeds.to_dict() == {"a": 3, "b": 1} and math.isnan(spread.kl_seed_sd["b"])
