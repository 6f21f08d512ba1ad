"""The objectives that followed IWAE (Rainforth et al., 2018): MIWAE, CIWAE and PIWAE.

On the linear-Gaussian model of test_marginal, each of the sample sets has its own copy of
q's parameters (the encoder's) and of p's W and b (the decoder's), so one backward pass
gives every set's gradient: identities are checked on the same draws, set by set, and
expectations against the closed-form ELBO. Then the stacked engine (a group mixing them
with VAE and IWAE members) and short training runs; the formulas draw by draw are in
test_estimators."""

import hashlib
import json
import math
from dataclasses import asdict

import numpy as np
import pytest
import torch
import yaml
from test_estimators import member_models, stack_gradients
from test_marginal import LinearGaussian, closed_form_elbo, problem
from test_train import settings, synthetic_images

from conftest import ROOT
from riwae.bounds import (
    ESTIMATORS,
    LOG_2PI,
    Members,
    Objective,
    bounds_and_surrogate,
    gaussian_log_density,
    standard_normal_log_density,
)
from riwae.config import SCHEMA, ConfigError, check_values, load_config, validation_sentence
from riwae.models import StackedVAE
from riwae.spec import ModelSpec, training_groups
from riwae.targets import DiagGaussian
from riwae.train import Group, TrainSettings, train_group

ENCODER, DECODER = ("mean", "logvar"), ("W", "b")


def noise(draws: int, sets: int = 100, seed: int = 0) -> torch.Tensor:
    """Standard normal noise of ``draws`` draws for each of ``sets`` sample sets."""
    return torch.randn(draws, sets, 2, generator=torch.Generator().manual_seed(seed))


def estimates(objective: Objective, estimator: str, eps: torch.Tensor, model=None, q=None):
    """Each sample set's value of ``objective`` and its estimator's gradient, from the noise
    ``eps`` ``[draws, sets, 2]``: the value ``[sets]`` and the gradients ``[sets, n]`` with
    respect to q's mean and log variance and p's W and b (by name)."""
    if model is None:
        model, q = problem()
    sets = eps.shape[1]
    params = {
        "mean": q.mean.expand(sets, 2),
        "logvar": q.logvar.expand(sets, 2),
        "W": model.W.expand(sets, *model.W.shape),
        "b": model.b.expand(sets, len(model.b)),
    }
    params = {name: p.clone().requires_grad_() for name, p in params.items()}
    mean, logvar = params["mean"][None, None], params["logvar"][None, None]
    z = mean + torch.exp(0.5 * logvar) * eps[None]  # [1, draws, sets, 2]

    def log_joint(z):
        x_mean = torch.einsum("mtsi,sdi->mtsd", z, params["W"]) + params["b"]
        x_logvar = torch.full_like(x_mean, model.log_s2)
        return standard_normal_log_density(z) + gaussian_log_density(model.x, x_mean, x_logvar)

    fixed_z = log_joint(z.detach()) if objective.name == "piwae" else None
    values, surrogate = bounds_and_surrogate(
        log_joint(z),
        z,
        mean,
        logvar,
        Members([objective], [estimator]),
        stopped=(mean.detach(), logvar.detach()),
        log_joint_fixed_z=fixed_z,
    )
    surrogate.sum().backward()
    return values[0].detach(), {name: p.grad.flatten(1) for name, p in params.items()}


def assert_same(actual, expected, names=ENCODER + DECODER, values=True):
    """Values and the gradients of ``names`` equal, set by set, to float64 rounding."""
    if values:
        torch.testing.assert_close(actual[0], expected[0], rtol=1e-12, atol=1e-12)
    for name in names:
        torch.testing.assert_close(actual[1][name], expected[1][name], rtol=1e-12, atol=1e-12)


def combined(a, b, weight_a: float, weight_b: float):
    """``weight_a`` a + ``weight_b`` b of two ``estimates``."""
    return weight_a * a[0] + weight_b * b[0], {
        name: weight_a * a[1][name] + weight_b * b[1][name] for name in a[1]
    }


# --- Identities on the same draws -------------------------------------------------------------


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_miwae_of_one_bound_is_iwae(estimator):
    eps = noise(6)
    assert_same(
        estimates(Objective("miwae", 6, m=1), estimator, eps),
        estimates(Objective("iwae", 6), estimator, eps),
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_miwae_of_one_draw_per_bound_is_the_vae_bound(estimator):
    eps = noise(5)
    assert_same(
        estimates(Objective("miwae", 1, m=5), estimator, eps),
        estimates(Objective("vae", 5), estimator, eps),
    )


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_miwae_is_the_mean_of_its_blocks_iwae_bounds(estimator):
    """MIWAE(3, 4) is the mean of the IWAE bounds of draws 1-4, 5-8 and 9-12, and so is its
    gradient, for every estimator: DReG's weights are normalised within each block."""
    m, k = 3, 4
    eps = noise(m * k)
    blocks = [
        estimates(Objective("iwae", k), estimator, eps[b * k : (b + 1) * k]) for b in range(m)
    ]
    mean_of_blocks = combined(combined(blocks[0], blocks[1], 1, 1), blocks[2], 1 / 3, 1 / 3)
    miwae = estimates(Objective("miwae", k, m=m), estimator, eps)
    assert_same(miwae, mean_of_blocks)
    # Not the IWAE bound of all 12 draws, which is higher on every set.
    assert (estimates(Objective("iwae", m * k), estimator, eps)[0] > miwae[0]).all()


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_ciwae_is_linear_in_beta_from_iwae_to_vae(estimator):
    """CIWAE(beta) = beta L_VAE + (1 - beta) L_IWAE on the same draws, and so is its
    gradient: under DReG, the VAE part takes STL's gradient and the IWAE part DReG's."""
    eps = noise(5)
    vae = estimates(Objective("vae", 5), estimator, eps)
    iwae = estimates(Objective("iwae", 5), estimator, eps)
    assert_same(estimates(Objective("ciwae", 5, beta=0.0), estimator, eps), iwae)
    assert_same(estimates(Objective("ciwae", 5, beta=1.0), estimator, eps), vae)
    for beta in (0.05, 0.3, 0.9):
        ciwae = estimates(Objective("ciwae", 5, beta=beta), estimator, eps)
        assert_same(ciwae, combined(vae, iwae, beta, 1 - beta))


@pytest.mark.parametrize("estimator", ESTIMATORS)
def test_piwae_gives_the_decoder_iwae_and_the_encoder_miwae(estimator):
    """PIWAE(3, 4): its value and its decoder's gradient are those of IWAE with the 12
    draws, its encoder's gradient is MIWAE(3, 4)'s, on the same draws."""
    m, k = 3, 4
    eps = noise(m * k)
    piwae = estimates(Objective("piwae", k, m=m), estimator, eps)
    iwae = estimates(Objective("iwae", m * k), estimator, eps)
    miwae = estimates(Objective("miwae", k, m=m), estimator, eps)
    assert_same(piwae, iwae, names=DECODER)
    assert_same(piwae, miwae, names=ENCODER, values=False)
    # The two objectives' gradients differ on every network: the routing is seen.
    for name in ENCODER + DECODER:
        assert not torch.allclose(iwae[1][name], miwae[1][name], rtol=1e-3), name


# --- Closed forms -----------------------------------------------------------------------------


def diagonal_posterior_problem() -> tuple[LinearGaussian, DiagGaussian]:
    """The linear-Gaussian problem with W's columns made orthogonal, so that the posterior
    is a diagonal Gaussian, and q equal to it."""
    model, _ = problem()
    orthonormal, _ = torch.linalg.qr(model.W)
    model = LinearGaussian(orthonormal * torch.tensor([1.5, 0.7]), model.b, model.log_s2, model.x)
    posterior = model.posterior()
    covariance = posterior.covariance_matrix
    assert covariance[0, 1].abs() < 1e-15
    return model, DiagGaussian(posterior.mean, covariance.diag().log())


ALL_OBJECTIVES = [
    Objective("vae", 12),
    Objective("iwae", 12),
    Objective("miwae", 4, m=3),
    Objective("ciwae", 12, beta=0.3),
    Objective("piwae", 4, m=3),
]


@pytest.mark.parametrize("objective", ALL_OBJECTIVES, ids=lambda o: o.name)
def test_with_the_exact_posterior_every_objective_is_log_evidence(objective):
    """With q the exact posterior every log-weight is log p(x), so every objective is too,
    on every sample set; and STL's and DReG's encoder gradients vanish on every set (the
    path gradient of log p(x, z) - log q(z) is zero), while the score term of the plain
    gradient does not."""
    model, q = diagonal_posterior_problem()
    eps = noise(12, sets=50, seed=1)
    log_evidence = model.log_evidence()
    for estimator in ESTIMATORS:
        value, grads = estimates(objective, estimator, eps, model, q)
        assert (value - log_evidence).abs().max() < 1e-10, (estimator, value)
        encoder = torch.cat([grads[name] for name in ENCODER], 1).abs().max()
        if estimator == "reparam":
            assert encoder > 1e-3
        else:
            assert encoder < 1e-10, (estimator, encoder)


def closed_form_elbo_of(model: LinearGaussian, W, b, mean, logvar) -> torch.Tensor:
    """E_q[log p(x, z)] + H[q] of the linear-Gaussian model as a differentiable function of
    p's W, b and q's mean and log variance: E_q[(x - W z - b)_d^2] is the squared residual at
    q's mean plus sum_i W_di^2 var_i."""
    variance = logvar.exp()
    residual = model.x - W @ mean - b
    squares = residual.square().sum() + (W.square() @ variance).sum()
    log_likelihood = -0.5 * (len(b) * (LOG_2PI + model.log_s2) + squares / math.exp(model.log_s2))
    log_prior = -0.5 * (2 * LOG_2PI + mean.square().sum() + variance.sum())
    entropy = 0.5 * (2 * (LOG_2PI + 1) + logvar.sum())
    return log_likelihood + log_prior + entropy


def test_differentiable_closed_form_elbo_agrees_with_the_marginal_tests():
    model, q = problem()
    value = closed_form_elbo_of(model, model.W, model.b, q.mean, q.logvar)
    assert float(value) == pytest.approx(closed_form_elbo(model, q), abs=1e-10)


def mean_and_se(samples: torch.Tensor):
    return samples.mean(0), samples.std(0) / math.sqrt(len(samples))


@pytest.mark.parametrize("estimator", ESTIMATORS)
@pytest.mark.parametrize(
    "objective",
    [Objective("miwae", 1, m=4), Objective("ciwae", 1, beta=0.3), Objective("piwae", 1, m=4)],
    ids=lambda o: o.name,
)
def test_one_draw_per_bound_is_unbiased_for_the_closed_form_elbo(objective, estimator):
    """MIWAE(4, 1), CIWAE(beta, 1) and PIWAE(4, 1)'s encoder are ELBO estimates: over
    20,000 sample sets their mean value and gradient lie within 4 standard errors of the
    closed-form ELBO's, for every estimator. PIWAE(4, 1)'s value and decoder gradient are
    IWAE(4)'s: its mean decoder gradient is many standard errors away from the ELBO's."""
    model, q = problem()
    params = [model.W, model.b, q.mean, q.logvar]
    params = [p.clone().requires_grad_() for p in params]
    elbo = closed_form_elbo_of(model, *params)
    exact = dict(zip(DECODER + ENCODER, torch.autograd.grad(elbo, params), strict=True))
    value, grads = estimates(objective, estimator, noise(objective.draws, 20_000, seed=3))
    checked = ENCODER if objective.name == "piwae" else ENCODER + DECODER
    if objective.name != "piwae":
        mean, se = mean_and_se(value)
        assert abs(mean - elbo.detach()) < 4 * se, (mean, elbo, se)
    for name in checked:
        mean, se = mean_and_se(grads[name])
        assert ((mean - exact[name].flatten()).abs() < 4 * se).all(), (name, mean, exact[name])
    if objective.name == "piwae":
        mean, se = mean_and_se(torch.cat([grads[name] for name in DECODER], 1))
        exact_decoder = torch.cat([exact[name].flatten() for name in DECODER])
        assert ((mean - exact_decoder).abs() / se).max() > 10


# --- The stacked engine ----------------------------------------------------------------------

MIXED = [
    dict(objective="miwae", m=2, k=3, estimator="reparam"),
    dict(objective="ciwae", beta=0.3, k=4, estimator="dreg"),
    dict(objective="piwae", m=3, k=2, estimator="dreg"),
    dict(objective="iwae", k=2, estimator="reparam"),
    dict(objective="vae", k=5, estimator="stl"),
    dict(objective="piwae", m=2, k=4, estimator="reparam"),
    dict(objective="miwae", m=4, k=1, estimator="stl"),
]


@pytest.mark.parametrize("arch", ["burda1", "burda2"])
def test_a_group_gives_each_member_what_it_gives_alone(arch, one_thread):
    """A stack of MIWAE, CIWAE, PIWAE, IWAE and VAE members with their own estimators and
    draws per image (padded to the most, blocks of several shapes) gives each member the
    bound and gradient it gives as a group of one."""
    members = [settings(arch=arch, seed=20 + i, **spec) for i, spec in enumerate(MIXED)]
    models = member_models(arch, len(members))
    x = (torch.rand(len(members), 3, 784, generator=torch.Generator().manual_seed(1)) < 0.3).to(
        torch.float64
    )

    def run(members, models, x):
        stack = StackedVAE(models)
        generators = [torch.Generator().manual_seed(s.seed) for s in members]
        bounds, surrogate = Group(members, torch.device("cpu")).bounds(stack, x, generators)
        surrogate.mean(1).sum().backward()
        return bounds.detach(), stack_gradients(stack)

    bounds, grads = run(members, models, x)
    for i, member in enumerate(members):
        alone_bounds, (alone_grads,) = run([member], [models[i]], x[i : i + 1])
        torch.testing.assert_close(bounds[i], alone_bounds[0], rtol=1e-12, atol=0)
        for name, grad in grads[i].items():
            torch.testing.assert_close(
                grad, alone_grads[name], rtol=1e-10, atol=1e-12, msg=f"{member.name}: {name}"
            )


@pytest.fixture
def float32(one_thread):
    """Training runs in float32, as in the pipeline (conftest sets float64 for the maths)."""
    default = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)
    yield
    torch.set_default_dtype(default)


def test_each_new_objective_trains_to_a_better_finite_bound(tmp_path, float32):
    """Three epochs of MIWAE, CIWAE and PIWAE (plain and DReG), trained as one group on
    synthetic digits: every bound stays finite and improves."""
    images = synthetic_images(600)
    members = [
        settings(objective="miwae", m=2, k=3, seed=0),
        settings(objective="ciwae", beta=0.5, k=5, seed=1),
        settings(objective="piwae", m=2, k=3, seed=2),
        settings(objective="miwae", m=2, k=3, estimator="dreg", seed=3),
        settings(objective="piwae", m=3, k=2, estimator="dreg", seed=4),
    ]
    _, histories, _ = train_group(
        members, images, images[500:], torch.device("cpu"), tmp_path / "c.pt", progress=False
    )
    for member, history in zip(members, histories, strict=True):
        assert list(history.epoch) == [1, 2, 3], member.name
        assert np.isfinite(history[["train_bound", "heldout_bound"]].to_numpy()).all()
        assert history.train_bound.is_monotonic_increasing, (member.name, history)
        assert history.heldout_bound.iloc[-1] > history.heldout_bound.iloc[0] + 5, member.name


# --- Settings, names and the config -------------------------------------------------------------


def test_names_carry_each_objectives_hyper_parameters():
    specs = {
        "burda1-miwae-m8-k8": dict(arch="burda1", objective="miwae", m=8, k=8),
        "burda2-piwae-m4-k16-dreg": dict(
            arch="burda2", objective="piwae", m=4, k=16, estimator="dreg"
        ),
        "burda1-ciwae-b0.05-k64": dict(arch="burda1", objective="ciwae", beta=0.05, k=64),
        "burda1-ciwae-b0.00001-k64-stl": dict(
            arch="burda1", objective="ciwae", beta=1e-5, k=64, estimator="stl"
        ),
        "burda1-ciwae-b0-k5": dict(arch="burda1", objective="ciwae", beta=0, k=5),
        "burda1-iwae-k50": dict(arch="burda1", objective="iwae", k=50),
        "cremer2d-vae-k5-dreg": dict(arch="cremer2d", objective="vae", k=5, estimator="dreg"),
    }
    for name, spec in specs.items():
        assert settings(seed=3, **spec).base_name == name
        assert settings(seed=3, **spec).name == f"{name} (seed 3)"
        assert ModelSpec(settings(seed=3, **spec), first_seed=False).name == f"{name}-seed3"


def test_vae_and_iwae_settings_keep_their_dict_and_fingerprint():
    """Checkpoints and artifact hashes depend on them: the fingerprints below are those the
    settings had before MIWAE, CIWAE and PIWAE were added."""
    iwae = settings()
    classic = {key: value for key, value in asdict(iwae).items() if key not in ("m", "beta")}
    assert iwae.as_dict() == classic
    assert (
        iwae.fingerprint()
        == hashlib.sha256(json.dumps(classic, sort_keys=True).encode()).hexdigest()
    )
    assert iwae.fingerprint() == "768d092c535f3c16596a4920d98814698ec5eff91686dfa6272ae09ed6ce4b66"
    vae = settings(objective="vae", k=50, estimator="dreg", arch="burda2", seed=3)
    assert vae.fingerprint() == "4ee0b25b0744f903d7aa663e8397a5fd968d69079aa3292dc0621f192602b461"
    # A ciwae model's beta is one number however it is written; its settings load back.
    assert settings(objective="ciwae", beta=0, k=5).fingerprint() == (
        settings(objective="ciwae", beta=0.0, k=5).fingerprint()
    )
    miwae = settings(objective="miwae", m=4, k=2)
    assert miwae.as_dict()["m"] == 4 and "beta" not in miwae.as_dict()
    assert TrainSettings(**miwae.as_dict()) == miwae


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (dict(objective="miwae"), "Objective miwae needs m, .* set m to 1 or more"),
        (dict(objective="piwae", m=0), "m = 0 bounds is too few for piwae; set m to 1 or more"),
        (dict(objective="iwae", m=2), "Objective iwae takes no m .*; remove m"),
        (dict(objective="ciwae"), "Objective ciwae needs beta, .* set beta between 0 and 1"),
        (dict(objective="ciwae", beta=1.5), "ciwae's beta = 1.5 is not between 0 and 1"),
        (dict(objective="miwae", m=2, beta=0.5), "Objective miwae takes no beta .*; remove beta"),
        (dict(objective="rws"), "Unknown objective 'rws'; use one of vae, iwae, miwae"),
        (dict(objective="ciwae", beta=0.5, estimator="vimco"), "Unknown estimator 'vimco'"),
    ],
)
def test_settings_that_do_not_fit_their_objective_are_refused(changes, message):
    with pytest.raises(ValueError, match=message):
        Group([settings(**changes)], torch.device("cpu"))


def test_groups_by_k_count_the_draws_per_image():
    specs = [
        ModelSpec(settings(objective="miwae", m=8, k=8)),
        ModelSpec(settings(objective="iwae", k=64)),
        ModelSpec(settings(objective="miwae", m=4, k=16)),
        ModelSpec(settings(objective="iwae", k=8)),
    ]
    assert training_groups(specs, "k", "cuda") == {
        "burda1-k64": ["burda1-miwae-m8-k8", "burda1-iwae-k64", "burda1-miwae-m4-k16"],
        "burda1-k8": ["burda1-iwae-k8"],
    }


def config_with_models(*models: dict) -> dict:
    config = load_config("config/smoke.yaml", ROOT)
    return {**config, "run": "smoke", "models": config["models"] + list(models)}


def schema_problem(config: dict) -> str | None:
    """The config's first schema error as the pipeline words it, None when it is valid."""
    import jsonschema  # slow to import (its format checkers): only here

    schema = yaml.safe_load((ROOT / SCHEMA).read_text())
    error = next(jsonschema.Draft202012Validator(schema).iter_errors(config), None)
    return None if error is None else validation_sentence(error)


def test_the_config_schema_takes_the_new_models_and_their_keys_only_with_them():
    assert schema_problem(config_with_models()) is None
    new_models = [
        {"arch": "burda1", "objective": "miwae", "m": 8, "k": 8},
        {"arch": "burda1", "objective": "ciwae", "beta": 0.05, "k": 64, "estimator": "dreg"},
        {"arch": "burda2", "objective": "piwae", "m": 4, "k": 16},
    ]
    assert schema_problem(config_with_models(*new_models)) is None
    last = len(config_with_models()["models"])
    problems = {
        "'m' is a required property": {"arch": "burda1", "objective": "piwae", "k": 8},
        "'beta' is a required property": {"arch": "burda1", "objective": "ciwae", "k": 8},
        "'m' is not a setting of objective 'iwae'; remove it": {
            "arch": "burda1",
            "objective": "iwae",
            "k": 8,
            "m": 2,
        },
        "'beta' is not a setting of objective 'miwae'; remove it": {
            "arch": "burda1",
            "objective": "miwae",
            "k": 8,
            "m": 2,
            "beta": 0.5,
        },
        "1.5 is greater than the maximum of 1": {
            "arch": "burda1",
            "objective": "ciwae",
            "k": 8,
            "beta": 1.5,
        },
    }
    for fragment, model in problems.items():
        sentence = schema_problem(config_with_models(model))
        assert sentence.startswith(f"Invalid config at models[{last}]") and fragment in sentence


def test_training_memory_counts_m_times_k_draws():
    miwae = {"arch": "burda1", "objective": "miwae", "m": 10**4, "k": 10}
    check_values(config_with_models({**miwae, "m": 1}), memory=10**10)
    with pytest.raises(ConfigError, match=r"lower models\[\d+\].m, models\[\d+\].k or training"):
        check_values(config_with_models(miwae), memory=10**10)
