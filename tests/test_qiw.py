import math

import pytest
import torch
from scipy import stats

from riwae.bounds import iwae_bound
from riwae.checks import (
    identity_over_seeds,
    model_identity,
    over_seeds_markdown,
    synthetic_identity,
)
from riwae.grid import square_grid
from riwae.models import VAE
from riwae.posterior import qiw_log_density_on_grid
from riwae.qiw import (
    conditional_elbo,
    conditional_log_density,
    marginal_log_density,
    sir_index,
    sir_sample,
)
from riwae.targets import DiagGaussian, GaussianMixtureTarget, cremer2d_target


def test_sir_picks_each_index_with_its_normalised_weight():
    weights = torch.tensor([0.05, 0.1, 0.15, 0.2, 0.5])
    draws = 100_000
    # Unnormalised log-weights far from 0: the sampler must only use their differences.
    log_w = (weights.log() + 700.0)[:, None].expand(5, draws)
    index = sir_index(log_w, torch.Generator().manual_seed(0))
    counts = torch.bincount(index, minlength=5).double()
    result = stats.chisquare(counts.numpy(), (weights * draws).numpy())
    assert result.pvalue > 1e-3, result
    # A wrong sampler (uniform pick) is rejected by the same test.
    uniform = torch.full((5,), draws / 5)
    assert stats.chisquare(uniform.numpy(), (weights * draws).numpy()).pvalue < 1e-10


def test_sir_sample_returns_the_picked_rows():
    z = torch.arange(24.0).reshape(4, 3, 2)
    log_w = torch.full((4, 3), -math.inf)
    log_w[[2, 0, 3], [0, 1, 2]] = 0.0  # one possible pick per data point
    picked = sir_sample(z, log_w, torch.Generator().manual_seed(0))
    torch.testing.assert_close(picked, z[[2, 0, 3], [0, 1, 2]])


def test_marginal_qiw_equals_q_at_k1():
    target, proposal = cremer2d_target()
    grid = square_grid(6.0, 41)
    log_qiw = qiw_log_density_on_grid(
        target, proposal, grid, 1, 10, torch.Generator().manual_seed(0)
    )
    torch.testing.assert_close(log_qiw, proposal.log_prob(grid.points), rtol=0, atol=1e-12)


@pytest.mark.parametrize("k", [1, 10, 100])
def test_marginal_qiw_integrates_to_one(k):
    target, proposal = cremer2d_target()
    grid = square_grid(7.0, 141)
    log_qiw = qiw_log_density_on_grid(
        target, proposal, grid, k, 4000, torch.Generator().manual_seed(k)
    )
    # Grid error (truncation at 7 and the midpoint rule) is below 1e-3 for these densities;
    # the Monte Carlo error of the average over 4000 sets is about 1%.
    assert math.exp(grid.log_integral(log_qiw)) == pytest.approx(1.0, abs=0.03)


def test_original_code_density_falls_short_by_k_over_k_plus_1():
    target, proposal = cremer2d_target()
    grid = square_grid(7.0, 141)
    log_qiw = qiw_log_density_on_grid(
        target, proposal, grid, 10, 4000, torch.Generator().manual_seed(0), others=10
    )
    assert math.exp(grid.log_integral(log_qiw)) == pytest.approx(10 / 11, abs=0.03)


def test_sir_samples_follow_the_marginal_density():
    """Algorithm 1's samples and the expectation formula describe the same q_IW (1D case)."""
    target = GaussianMixtureTarget(
        torch.tensor([[-2.0], [0.0], [4.0]]),
        torch.tensor([[-1.0], [-1.0], [-0.5]]),
        torch.tensor([0.5, 0.2, 0.3]).log(),
    )
    proposal = DiagGaussian(torch.tensor([0.5]), torch.tensor([math.log(4.0)]))
    k, draws = 5, 200_000
    g = torch.Generator().manual_seed(0)
    z = proposal.sample((k, draws), g)
    samples = sir_sample(z, target.log_joint(z) - proposal.log_prob(z), g)[:, 0]
    edges = torch.linspace(-6, 8, 29)
    observed = torch.histogram(samples, edges).hist / draws
    points = torch.linspace(-6, 8, 2801)[:, None]  # 100 points per bin, midpoint rule
    others = proposal.sample((20_000, k - 1), g)
    log_w_others = target.log_joint(others) - proposal.log_prob(others)
    density = marginal_log_density(
        target.log_joint(points), proposal.log_prob(points), log_w_others, k
    ).exp()
    cell = float(points[1, 0] - points[0, 0])
    expected = torch.stack([density[100 * i : 100 * i + 100].sum() for i in range(28)]) * cell
    tv = 0.5 * float((observed - expected).abs().sum())
    assert tv < 0.01, tv
    # The same comparison against q itself (k = 1) fails: the test can tell them apart.
    q_expected = (
        torch.stack(
            [proposal.log_prob(points[100 * i : 100 * i + 100]).exp().sum() for i in range(28)]
        )
        * cell
    )
    assert 0.5 * float((observed - q_expected).abs().sum()) > 0.1


def test_conditional_density_is_the_papers_second_form():
    """k w~_i q(z_i) = p(x, z_i) / ((1/k) sum_j w_j): the paper's two expressions agree."""
    g = torch.Generator().manual_seed(5)
    log_joint, log_q = torch.randn(7, 4, generator=g) * 5, torch.randn(7, 4, generator=g)
    log_w = log_joint - log_q
    second_form = log_joint - iwae_bound(log_w)
    torch.testing.assert_close(conditional_log_density(log_w, log_q), second_form)


@pytest.mark.parametrize("arch", ["cremer2d", "burda1", "burda2"])
@pytest.mark.parametrize("k", [1, 2, 10, 1000])
def test_identity_holds_for_random_models(arch, k):
    """For burda2, z is the joint latent (h1, h2) and q_IW resamples it whole."""
    g = torch.Generator().manual_seed(k)
    model = VAE(arch).initialise(generator=g).double()
    with torch.no_grad():  # random biases too, so q is not centred at 0 for every x
        for p in model.parameters():
            p.add_(0.1 * torch.randn(p.shape, generator=g))
        x = (torch.rand(4, 784, generator=g) < 0.3).double()
        log_w, log_q, _ = model.log_weights(x, k, generator=g)
    log_joint = log_w + log_q
    torch.testing.assert_close(
        conditional_elbo(log_joint, log_q), iwae_bound(log_w), rtol=0, atol=1e-10
    )
    # Log-weights in the hundreds (trained-size models) to 1e5 (random burda2, whose
    # Gaussian p(h1|h2) is narrow): a real test of stability.
    assert 50 < log_w.abs().max() < 1e6, log_w.abs().max()


def test_identity_check_passes_for_a_two_layer_model():
    """The pipeline's check (``model_identity``) on a random burda2 model, in float32 as
    trained: it runs in float64 per sample set of the joint latent."""
    g = torch.Generator().manual_seed(0)
    model = VAE("burda2").initialise(generator=g).float()
    images = (torch.rand(2, 784, generator=g) < 0.3).float()
    rows = model_identity(model, images, [1, 10, 100], 5, 1e-10, seed=0)
    assert [row["k"] for row in rows] == [1, 10, 100]
    assert all(row["passed"] and row["sample_sets"] == 10 for row in rows)
    assert rows[0]["L_IWAE[q]"] < rows[2]["L_IWAE[q]"]


def test_identity_on_the_synthetic_target():
    target, proposal = cremer2d_target()
    rows = synthetic_identity(target, proposal, [1, 10, 1000], 500, 1e-10, seed=0)
    assert all(row["passed"] and row["max_abs_diff"] <= 1e-10 for row in rows)
    by_k = {row["k"]: row for row in rows}
    # The IWAE bound tightens with k towards log p(x) = log 8.
    assert by_k[1]["L_IWAE[q]"] < by_k[10]["L_IWAE[q]"] < math.log(8) + 0.01
    assert abs(by_k[1000]["L_IWAE[q]"] - math.log(8)) < 5 * by_k[1000]["L_IWAE[q]_se"] + 1e-3


def test_identity_over_seeds_spreads_each_side_and_keeps_the_largest_difference():
    def row(k, iwae, diff):
        return {"k": k, "L_IWAE[q]": iwae, "L_VAE[q_IW]": iwae + diff, "max_abs_diff": diff}

    check = {
        "sections": [
            {"case": "synthetic 2D target", "rows": [row(1, 2.0, 0.0)]},
            {"case": "m", "base_model": "m", "seed": 0, "rows": [row(1, -90.0, 1e-13)]},
            {"case": "m-seed1", "base_model": "m", "seed": 1, "rows": [row(1, -92.0, 3e-13)]},
        ]
    }
    table = identity_over_seeds(check).iloc[0]
    assert table.seeds == 2 and table["L_IWAE[q]"] == pytest.approx(-91.0)
    assert table["L_IWAE[q]_seed_sd"] == pytest.approx(2**0.5) and table.max_abs_diff == 3e-13
    assert "| m | 1 | 2 | -91.0000 (sd 1.4142) |" in over_seeds_markdown(check)
    one_seed = {"sections": check["sections"][:2]}
    assert over_seeds_markdown(one_seed) == ""


def test_digit_distances_on_a_figures_grid_and_over_seeds():
    """q_IW equal to the posterior is at distance 0; q of half its density everywhere at
    0.5; two seeds average each one's digits, then spread."""
    from dataclasses import dataclass

    from riwae.grid import square_grid
    from riwae.posterior import (
        digit_distances,
        digit_distances_markdown,
        digit_distances_over_seeds,
    )

    grid = square_grid(6.0, 61)
    log_posterior = grid.normalise(-0.5 * grid.points.square().sum(-1))

    def digit(index, log_q):
        return {
            "x_axis": grid.x_axis.numpy(),
            "y_axis": grid.y_axis.numpy(),
            "index": index,
            "log_posterior": grid.image(log_posterior).numpy(),
            "log_qiw_k1": grid.image(log_q).numpy(),
            "log_qiw_k10": grid.image(log_posterior).numpy(),
        }

    @dataclass(frozen=True)
    class Settings:
        seed: int

    @dataclass(frozen=True)
    class Spec:  # what digit_distances reads of a riwae.spec.ModelSpec
        name: str
        settings: Settings
        base_name: str = "m"

    def spec(name, seed):
        return Spec(name, Settings(seed))

    half = log_posterior - math.log(2)
    digits = {
        spec("m", 0): [digit(3, half), digit(8, log_posterior)],
        spec("m-seed1", 1): [digit(3, half), digit(8, half)],
    }
    distances = digit_distances(digits, [1, 10])
    assert distances.tv_to_posterior.tolist() == pytest.approx([0.25, 0, 0, 0, 0.25, 0, 0.25, 0])
    spread = digit_distances_over_seeds(distances).set_index("k")
    assert spread.tv_to_posterior[1] == pytest.approx(0.1875) and spread.seeds[1] == 2
    assert spread.tv_to_posterior_seed_sd[1] == pytest.approx(0.125 / 2**0.5)
    assert "| m | 2 | 0.188 (sd 0.088) | 0.000 (sd 0.000) |" in digit_distances_markdown(
        digit_distances_over_seeds(distances)
    )
