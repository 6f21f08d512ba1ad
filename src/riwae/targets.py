"""Synthetic posteriors with known densities: the paper's 2D target and its fixed q."""

from dataclasses import dataclass

import torch

from riwae.bounds import (
    bernoulli_log_likelihood,
    gaussian_log_density,
    sample_gaussian,
    standard_normal_log_density,
)


@dataclass(frozen=True)
class DiagGaussian:
    """A diagonal Gaussian, used as the fixed proposal q(z|x) of a synthetic target."""

    mean: torch.Tensor  # [dim]
    logvar: torch.Tensor  # [dim]

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        return gaussian_log_density(z, self.mean, self.logvar)

    def sample(self, shape: tuple[int, ...], generator: torch.Generator | None = None):
        """Draws of shape ``[*shape, dim]``."""
        flat = sample_gaussian(self.mean, self.logvar, int(torch.Size(shape).numel()), generator)
        return flat.reshape(*shape, self.mean.shape[-1])


@dataclass(frozen=True)
class GaussianMixtureTarget:
    """An unnormalised joint p(x, z) as a function of z: sum_c mass_c N(z; mean_c, var_c).

    Its normaliser, log p(x) = log sum_c mass_c, is known exactly.
    """

    means: torch.Tensor  # [components, dim]
    logvars: torch.Tensor  # [components, dim]
    log_masses: torch.Tensor  # [components]

    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        per_component = gaussian_log_density(z[..., None, :], self.means, self.logvars)
        return torch.logsumexp(per_component + self.log_masses, dim=-1)

    @property
    def log_evidence(self) -> float:
        return float(torch.logsumexp(self.log_masses, 0))


def cremer2d_target(dtype=torch.float64) -> tuple[GaussianMixtureTarget, DiagGaussian]:
    """The 2D posterior of the paper's Figure 1 and its fixed q (from the authors' code):
    8 unit-mass Gaussians (total mass 8, so log p(x) = log 8) and q = N(0, e * I)."""
    narrow = [(1, 3), (3, 0), (1, 1), (-3, -1), (-1, -3)]  # log-variance 0.01 per axis
    wide = [(2, 2), (-2, -2), (0, 0)]  # log-variance 1 per axis
    means = torch.tensor(narrow + wide, dtype=dtype)
    logvars = torch.tensor([[0.01, 0.01]] * len(narrow) + [[1.0, 1.0]] * len(wide), dtype=dtype)
    target = GaussianMixtureTarget(means, logvars, torch.zeros(len(means), dtype=dtype))
    proposal = DiagGaussian(torch.zeros(2, dtype=dtype), torch.ones(2, dtype=dtype))
    return target, proposal


@dataclass(frozen=True)
class ModelPosterior:
    """The posterior of a trained model for one binarised image x, as a function of z:
    log p(x, z) = log N(z; 0, I) + log p(x | z), with the model's q(z|x) as proposal."""

    model: torch.nn.Module  # a riwae.models.VAE
    x: torch.Tensor  # [pixels]

    @torch.no_grad()
    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        return standard_normal_log_density(z) + bernoulli_log_likelihood(
            self.model.decoder(z), self.x
        )

    @torch.no_grad()
    def proposal(self) -> DiagGaussian:
        mean, logvar = self.model.encoder(self.x)
        return DiagGaussian(mean, logvar)
