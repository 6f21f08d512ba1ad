"""Posteriors as functions of z: synthetic ones with known densities (the paper's 2D target
and its fixed q), and a trained model's posterior of real images."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F

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
    """The posterior of a trained model of one stochastic layer given binarised images x, as
    a function of z: log p(x, z) = log N(z; 0, I) + log p(x | z), with the model's q(z|x) as
    proposal. One class for one image (``x``: ``[pixels]``) and for many (``[images,
    pixels]``, or any leading dims that broadcast against z's).

    A model of several stochastic layers is refused: its log p(x, z) has a term for every
    layer (``riwae.models.StochasticLayers.log_joint``), and its joint latent is no plane."""

    model: torch.nn.Module  # a riwae.models.VAE
    x: torch.Tensor  # [..., pixels]

    def __post_init__(self):
        layers = self.model.arch.layers
        if layers != 1:
            raise ValueError(
                f"ModelPosterior is the posterior of a model of one stochastic layer, and "
                f"{self.model.arch_name} has {layers}; use its log_weights for its bounds."
            )

    @torch.no_grad()
    def log_joint(self, z: torch.Tensor) -> torch.Tensor:
        """At latents ``z`` ``[..., dim]``, against ``x`` broadcast over z's leading dims."""
        return standard_normal_log_density(z) + bernoulli_log_likelihood(
            self.model.decoder(z), self.x
        )

    @torch.no_grad()
    def on_shared_points(self, z: torch.Tensor) -> torch.Tensor:
        """At the same points ``z`` ``[points, dim]`` for every image of ``x`` ``[images,
        pixels]``: ``[images, points]``. One decoder pass for all images: log p(x|z) =
        x . logits - sum softplus(logits)."""
        logits = self.model.decoder(z)
        return self.x @ logits.T - F.softplus(logits).sum(-1) + standard_normal_log_density(z)

    def on_points(self, z: torch.Tensor, images: torch.Tensor) -> torch.Tensor:
        """At each image's own points ``z`` ``[len(images), points, dim]`` (``images``:
        indices into ``x``): ``[len(images), points]``."""
        return ModelPosterior(self.model, self.x[images, None, :]).log_joint(z)

    @torch.no_grad()
    def proposal(self) -> DiagGaussian:
        """q(z|x), its mean and log variance ``[..., dim]``."""
        mean, logvar = self.model.encoder(self.x)
        return DiagGaussian(mean, logvar)
