"""The paper's appendix in 1D: q fitted by the plain ELBO (SVI) or by the IWAE bound
(W-SVI) to a trimodal posterior, and the q_IW that SIR makes from each."""

import numpy as np
import torch

from riwae.bounds import iwae_bound, vae_bound
from riwae.qiw import sir_sample
from riwae.targets import DiagGaussian, GaussianMixtureTarget


def trimodal_target(dtype=torch.float64) -> GaussianMixtureTarget:
    """Modes near -2, 0 and 4 (the original mixture is not known; this one is ours):
    0.3 N(-2, 0.6^2) + 0.3 N(0, 0.9^2) + 0.4 N(4, 0.7^2), total mass 1."""
    means = torch.tensor([[-2.0], [0.0], [4.0]], dtype=dtype)
    stds = torch.tensor([[0.6], [0.9], [0.7]], dtype=dtype)
    return GaussianMixtureTarget(
        means, 2 * stds.log(), torch.tensor([0.3, 0.3, 0.4], dtype=dtype).log()
    )


def fit_gaussian(
    target,
    objective: str,
    k: int,
    steps: int,
    sample_sets: int,
    lr: float,
    generator: torch.Generator,
) -> DiagGaussian:
    """Fit q = N(mean, exp(logvar)) by stochastic gradient ascent with Adam on the plain
    ELBO (``objective`` vae: SVI) or the k-sample IWAE bound (iwae: W-SVI), using
    reparameterised draws, ``sample_sets`` sets of k per step; q starts at N(0, 1). The
    learning rate decays to 0 (cosine), so the fit settles instead of wandering with the
    gradient noise."""
    mean = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    logvar = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([mean, logvar], lr=lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(steps, 1))
    reduce = {"vae": vae_bound, "iwae": iwae_bound}[objective]
    for _ in range(steps):
        eps = torch.randn(k, sample_sets, 1, generator=generator, dtype=torch.float64)
        z = mean + torch.exp(0.5 * logvar) * eps
        q = DiagGaussian(mean, logvar)
        loss = -reduce(target.log_joint(z) - q.log_prob(z)).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        schedule.step()
    return DiagGaussian(mean.detach(), logvar.detach())


def qiw_samples(target, q: DiagGaussian, k: int, draws: int, generator) -> torch.Tensor:
    """``draws`` samples of q_IW: each a SIR pick from k fresh draws of q. Shape [draws]."""
    z = q.sample((k, draws), generator)
    return sir_sample(z, target.log_joint(z) - q.log_prob(z), generator)[:, 0]


def appendix_arrays(
    ks: list[int], steps: int, sample_sets: int, lr: float, draws: int, seed: int
) -> dict[str, np.ndarray]:
    """For each k: the SVI q (fitted once, by the ELBO) and the W-SVI q (fitted by the
    k-sample IWAE bound), and q_IW samples at k from each; plus the true density on a line."""
    generator = torch.Generator().manual_seed(seed)
    target = trimodal_target()
    z = torch.linspace(-8, 8, 801, dtype=torch.float64)[:, None]
    arrays = {"z": z[:, 0].numpy(), "log_posterior": target.log_joint(z).numpy()}
    svi = fit_gaussian(target, "vae", 1, steps, sample_sets, lr, generator)
    for k in ks:
        for method, q in (
            ("svi", svi),
            ("wsvi", fit_gaussian(target, "iwae", k, steps, sample_sets, lr, generator)),
        ):
            arrays[f"{method}_k{k}_q"] = np.array([float(q.mean), float(q.logvar)])
            arrays[f"{method}_k{k}_samples"] = qiw_samples(target, q, k, draws, generator).numpy()
    arrays["ks"] = np.array(ks)
    return arrays
