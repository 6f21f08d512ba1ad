"""The encoder-gradient estimators of the bounds (plain reparameterised, STL, DReG).

On a linear-Gaussian model, where the ELBO's gradient has a closed form, each of the B
sample sets has its own copy of q's parameters, so one backward pass gives B independent
gradient estimates: their mean estimates the expected gradient, their spread its variance.
On stacked VAEs of one and two stochastic layers, the training surrogate's gradient is
checked against the estimators' formulas written out draw by draw, and DReG's mean
against the plain gradient's."""

import copy
import math

import pytest
import torch
from test_marginal import closed_form_elbo, problem
from test_train import settings
from torch.distributions import Bernoulli, Normal

from riwae.bounds import ESTIMATORS, Members, Objective, bounds_and_surrogate
from riwae.models import VAE, StackedVAE
from riwae.train import Group

SETS = 40_000


def gradients(estimator: str, k: int, iwae: bool = True, seed: int = 0):
    """Per-set gradients of the surrogate w.r.t. q's mean and log-variance: ``[SETS, 4]``,
    and the bounds' values ``[SETS]``."""
    model, q = problem()
    mean = q.mean.expand(SETS, 2).clone().requires_grad_()
    logvar = q.logvar.expand(SETS, 2).clone().requires_grad_()
    g = torch.Generator().manual_seed(seed)
    eps = torch.randn(1, k, SETS, 2, generator=g)
    m, lv = mean[None, None], logvar[None, None]
    z = m + torch.exp(0.5 * lv) * eps
    log_joint = model.log_joint(z.reshape(-1, 2)).reshape(1, k, SETS)
    bounds, surrogate = bounds_and_surrogate(
        log_joint,
        z,
        m,
        lv,
        Members([Objective("iwae" if iwae else "vae", k)], [estimator]),
        stopped=(m.detach(), lv.detach()),
    )
    surrogate.sum().backward()
    return torch.cat([mean.grad, logvar.grad], 1), bounds[0].detach()


def mean_and_se(grads):
    return grads.mean(0), grads.std(0) / math.sqrt(len(grads))


def test_every_estimator_leaves_the_bound_unchanged():
    values = [gradients(name, 5)[1] for name in ESTIMATORS]
    assert torch.equal(values[0], values[1]) and torch.equal(values[0], values[2])


@pytest.mark.parametrize("estimator", ["reparam", "stl"])
def test_elbo_gradient_estimators_are_unbiased(estimator):
    """At k = 1 (the ELBO) the expected gradient equals the closed form's gradient."""
    model, q = problem()
    exact_mean = q.mean.clone().requires_grad_()
    exact_logvar = q.logvar.clone().requires_grad_()
    elbo = closed_form_elbo_of(model, exact_mean, exact_logvar)
    exact = torch.cat(torch.autograd.grad(elbo, [exact_mean, exact_logvar]))
    grads, _ = gradients(estimator, 1, iwae=False)
    mean, se = mean_and_se(grads)
    assert ((mean - exact).abs() < 4 * se).all(), (mean, exact, se)


def closed_form_elbo_of(model, mean, logvar):
    """The closed-form ELBO as a differentiable function of q's parameters."""
    q_dist = torch.distributions.MultivariateNormal(mean, torch.diag(logvar.exp()))
    return model.log_evidence() - torch.distributions.kl_divergence(q_dist, model.posterior())


def test_closed_form_elbo_helper_agrees_with_the_marginal_tests():
    model, q = problem()
    assert float(closed_form_elbo_of(model, q.mean, q.logvar)) == pytest.approx(
        closed_form_elbo(model, q)
    )


def test_dreg_is_unbiased_for_the_iwae_gradient_and_stl_is_not():
    """At k = 10 the plain reparameterised gradient is unbiased for the IWAE bound; DReG
    agrees with it, STL's expectation is off by many standard errors."""
    k = 10
    reference, reference_se = mean_and_se(gradients("reparam", k, seed=1)[0])
    dreg, dreg_se = mean_and_se(gradients("dreg", k, seed=2)[0])
    stl, stl_se = mean_and_se(gradients("stl", k, seed=3)[0])
    assert ((dreg - reference).abs() < 4 * (dreg_se**2 + reference_se**2).sqrt()).all()
    bias = (stl - reference).abs() / (stl_se**2 + reference_se**2).sqrt()
    assert bias.max() > 10, bias  # STL's bias, in standard errors


def test_variances_are_ordered_as_the_literature_says():
    """For the IWAE bound at k = 10 the encoder's gradient variance orders DReG < STL < plain
    (Tucker et al., 2019; measured here: about 5.4, 14 and 25). With 40,000 sets each
    variance is known to a few per cent, so the 20% margins cannot flip by chance."""
    k = 10
    variance = {name: float(gradients(name, k)[0].var(0).sum()) for name in ESTIMATORS}
    assert variance["dreg"] < 0.8 * variance["stl"] < 0.8**2 * variance["reparam"], variance


# --- Models with one and two stochastic layers, trained as a stack ---------------------------


def member_models(arch: str, count: int, seed: int = 0) -> list[VAE]:
    """Initialised models with every parameter nudged, so that no bias is trivially zero, and
    every network's output layer scaled down, so that p and q are near standard normals and
    the draws' normalised weights are spread: of a fresh model one draw takes all the
    weight, and then DReG's squared weights equal STL's weights."""
    g = torch.Generator().manual_seed(seed)
    models = [VAE(arch).initialise(torch.Generator().manual_seed(seed + i)) for i in range(count)]
    with torch.no_grad():
        for model in models:
            for p in model.parameters():
                p.add_(0.1 * torch.randn(p.shape, generator=g))
            networks = [model.encoder, *model.upper_encoders, model.decoder, *model.upper_decoders]
            for network in networks:
                network.net[-1].weight.mul_(0.03)
    return models


def log_weight(model: VAE, q_model: VAE, x: torch.Tensor, e: torch.Tensor) -> torch.Tensor:
    """log p(x, h) - log q(h|x) for one image and the draw h = (h1, ..., hL) made from noise
    ``e`` by ``model``'s q, layer by layer: h_l = mu_l(h_{l-1}) + sigma_l(h_{l-1}) e_l. log q
    is that of ``q_model``'s networks (``model`` itself, or a copy held fixed) at those h."""

    def normal(network, h):
        mean, logvar = network(h)
        return Normal(mean, torch.exp(0.5 * logvar))

    encoders = [model.encoder, *model.upper_encoders]
    h, below = [], x
    for network, noise in zip(encoders, e.split(model.arch.latent_dims), strict=True):
        q = normal(network, below)
        below = q.loc + q.scale * noise
        h.append(below)
    held = [q_model.encoder, *q_model.upper_encoders]
    log_q = sum(
        normal(network, h_below).log_prob(h_l).sum()
        for network, h_below, h_l in zip(held, [x, *h[:-1]], h, strict=True)
    )
    log_p = Normal(0.0, 1.0).log_prob(h[-1]).sum()
    log_p = log_p + sum(
        normal(network, h_above).log_prob(h_l).sum()
        for network, h_l, h_above in zip(model.upper_decoders, h[:-1], h[1:], strict=True)
    )
    log_p = log_p + Bernoulli(logits=model.decoder(h[0])).log_prob(x).sum()
    return log_p - log_q


def draw_weights(objective: Objective, log_w: torch.Tensor, dreg: bool):
    """The weights c_i of sum_i c_i grad log w_i that give an objective's gradient, from its
    definition, for p's parameters and for q's (where DReG squares each draw's normalised
    weight in its IWAE bound): 1/k for the VAE bound; the normalised weights for the IWAE
    bound; within each block of k, over m, for MIWAE; beta/k + (1 - beta) times the IWAE's
    for CIWAE; IWAE's for PIWAE's decoder and MIWAE's for its encoder."""
    power = 2 if dreg else 1
    uniform = torch.full_like(log_w, 1 / len(log_w))
    normalised = torch.softmax(log_w, 0)
    if objective.name in ("miwae", "piwae"):
        in_block = torch.softmax(log_w.view(objective.m, objective.k), 1).flatten()
        miwae = in_block / objective.m, in_block**power / objective.m
    if objective.name == "vae":
        return uniform, uniform
    if objective.name == "iwae":
        return normalised, normalised**power
    if objective.name == "miwae":
        return miwae
    if objective.name == "ciwae":
        beta = objective.beta
        return beta * uniform + (1 - beta) * normalised, beta * uniform + (
            1 - beta
        ) * normalised**power
    return normalised, miwae[1]  # piwae


def reference_bound(objective: Objective, log_w: torch.Tensor) -> torch.Tensor:
    """An objective's value on one image's log-weights, from its definition."""
    iwae = torch.logsumexp(log_w, 0) - math.log(len(log_w))
    if objective.name == "vae":
        return log_w.mean()
    if objective.name == "miwae":
        blocks = log_w.view(objective.m, objective.k)
        return (torch.logsumexp(blocks, 1) - math.log(objective.k)).mean()
    if objective.name == "ciwae":
        return objective.beta * log_w.mean() + (1 - objective.beta) * iwae
    return iwae  # iwae, piwae


def reference_gradients(model: VAE, member, x: torch.Tensor, eps: torch.Tensor):
    """A member's bound per image, its draws' normalised weights ``[batch, draws]`` and its
    estimator's gradient of the mean bound, from the formulas, draw by draw: sum_i c_i grad
    log w_i with the objective's weights c_i (``draw_weights``). Under STL and DReG, log q's
    parameters are held fixed (a copy of q without gradients) while every draw, and h1 as
    the input of q(h2|h1), stays a function of q's parameters."""
    objective = member.training_objective
    held = copy.deepcopy(model)
    for network in [held.encoder, *held.upper_encoders]:
        network.requires_grad_(False)
    q_model = model if member.estimator == "reparam" else held
    encoder = {name for name, _ in model.named_parameters() if "encoder" in name}
    params = dict(model.named_parameters())
    total = {name: torch.zeros_like(p) for name, p in params.items()}
    bounds, normalised = [], []
    for b in range(len(x)):
        log_w, grads = [], []
        for i in range(objective.draws):
            value = log_weight(model, q_model, x[b], eps[i, b])
            log_w.append(value.detach())
            grads.append(torch.autograd.grad(value, list(params.values())))
        log_w = torch.stack(log_w)
        bounds.append(reference_bound(objective, log_w))
        normalised.append(torch.softmax(log_w, 0))
        decoder_weights, encoder_weights = draw_weights(
            objective, log_w, dreg=member.estimator == "dreg"
        )
        for j, name in enumerate(params):
            weights = encoder_weights if name in encoder else decoder_weights
            total[name] += sum(weights[i] * grads[i][j] for i in range(len(log_w))) / len(x)
    return torch.stack(bounds), torch.stack(normalised), total


def stack_gradients(stack: StackedVAE) -> list[dict[str, torch.Tensor]]:
    """The stack's gradients, member by member, named as a VAE's parameters."""
    holder = copy.deepcopy(stack)
    with torch.no_grad():
        for p, q in zip(holder.parameters(), stack.parameters(), strict=True):
            p.copy_(q.grad)
    return [dict(holder.member(m).named_parameters()) for m in range(len(stack))]


@pytest.mark.parametrize("arch", ["burda1", "burda2"])
@pytest.mark.parametrize(
    "estimators",
    [
        [("iwae", 4, "stl"), ("iwae", 4, "dreg"), ("vae", 3, "dreg")],
        [("iwae", 4, "dreg"), ("vae", 4, "stl"), ("iwae", 3, "reparam")],
        [
            ("miwae", 3, "reparam", {"m": 2}),
            ("ciwae", 4, "dreg", {"beta": 0.3}),
            ("piwae", 2, "dreg", {"m": 2}),
            ("iwae", 3, "stl"),
        ],
        [
            ("piwae", 2, "reparam", {"m": 3}),
            ("miwae", 2, "dreg", {"m": 2}),
            ("ciwae", 5, "stl", {"beta": 0.6}),
            ("vae", 4, "reparam"),
        ],
    ],
    ids=["score-free", "mixed", "objectives", "objectives-2"],
)
def test_stacked_estimators_match_the_formulas_draw_by_draw(arch, estimators, one_thread):
    """The training surrogate's gradient (a stack of members with their own objective, k,
    draws per image, padded, and estimator) equals each member's estimator written out
    draw by draw, for every parameter: with two layers STL and DReG keep h1's path through
    q(h2|h1) and weight each path once; PIWAE's networks take their own weights."""
    members = [  # (objective, k, estimator[, hyper-parameters])
        settings(arch=arch, objective=spec[0], k=spec[1], estimator=spec[2], seed=10 + i, **extra)
        for i, spec in enumerate(estimators)
        for extra in [spec[3] if len(spec) > 3 else {}]
    ]
    models = member_models(arch, len(members))
    stack = StackedVAE(models)
    x = (torch.rand(len(members), 3, 784, generator=torch.Generator().manual_seed(1)) < 0.3).to(
        torch.float64
    )
    generators = [torch.Generator().manual_seed(s.seed) for s in members]
    bounds, surrogate = Group(members, torch.device("cpu")).bounds(stack, x, generators)
    surrogate.mean(1).sum().backward()
    for m, (member, grads) in enumerate(zip(members, stack_gradients(stack), strict=True)):
        # The noise the group drew for this member, drawn again.
        g = torch.Generator().manual_seed(member.seed)
        draws = member.training_objective.draws
        eps = torch.randn((draws, 3, models[m].latent_dim), generator=g)
        expected_bounds, weights, expected = reference_gradients(stack.member(m), member, x[m], eps)
        torch.testing.assert_close(bounds[m], expected_bounds, rtol=1e-12, atol=0)
        # Some image's weights are spread: where one draw takes all, DReG would be STL.
        assert weights.max(1).values.min() < 0.9, weights
        for name, grad in grads.items():
            torch.testing.assert_close(
                grad, expected[name], rtol=1e-9, atol=1e-10, msg=f"{member.name}: {name}"
            )


def test_dreg_is_unbiased_for_the_iwae_gradient_of_two_layers_and_stl_is_not(one_thread):
    """burda2, k = 5, one image: over 12,000 sample sets, the mean gradient of q's output
    biases (mean and log-scale units of q(h1|x) and q(h2|h1)) under DReG agrees with the
    plain reparameterised gradient, unbiased for the IWAE bound's; STL's is off by many
    standard errors, so a bias of that size would be seen. Standard errors from 60 chunks."""
    chunks, chunk = 60, 200
    estimators = ["reparam", "dreg", "stl"]
    members = [
        settings(arch="burda2", k=5, estimator=estimator, seed=20 + i)
        for i, estimator in enumerate(estimators)
    ]
    stack = StackedVAE(member_models("burda2", 1) * len(members))
    group = Group(members, torch.device("cpu"))
    image = (torch.rand(784, generator=torch.Generator().manual_seed(2)) < 0.3).to(torch.float64)
    x = image.expand(len(members), chunk, 784)
    generators = [torch.Generator().manual_seed(s.seed) for s in members]
    biases = [stack.encoder_layers[-1], stack.upper_encoder_layers[0][-1]]  # [M, 1, 2 * units]
    rows = []
    for _ in range(chunks):
        stack.zero_grad()
        group.bounds(stack, x, generators)[1].mean(1).sum().backward()
        rows.append(
            torch.cat(
                [biases[0].grad[:, 0, [0, 1, 100, 101]], biases[1].grad[:, 0, [0, 1, 50, 51]]], 1
            )
        )
    mean, se = mean_and_se(torch.stack(rows))
    dreg = (mean[1] - mean[0]).abs() / (se[1] ** 2 + se[0] ** 2).sqrt()
    stl = (mean[2] - mean[0]).abs() / (se[2] ** 2 + se[0] ** 2).sqrt()
    assert (dreg < 4).all(), dreg
    assert stl.max() > 10, stl  # STL's bias, in standard errors
