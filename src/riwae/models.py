"""Gaussian encoder and Bernoulli decoder MLPs, with the architectures of the originals."""

from dataclasses import dataclass

import torch
from torch import nn


@dataclass(frozen=True)
class Architecture:
    data_dim: int
    hidden: tuple[int, ...]
    latent_dim: int
    activation: type[nn.Module]
    # The encoder's second output head is log std for burda1 (std = exp(output)) and
    # log variance for cremer2d; logvar = logvar_scale * output covers both.
    logvar_scale: float


ARCHITECTURES = {
    # The paper's 2D model (authors' code): softplus, Xavier-uniform weights, zero biases.
    "cremer2d": Architecture(784, (200, 200), 2, nn.Softplus, 1.0),
    # Burda et al.'s one-stochastic-layer model: tanh, std = exp(linear output).
    "burda1": Architecture(784, (200, 200), 50, nn.Tanh, 2.0),
}


def mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """q(z|x) = N(mean(x), diag(exp(logvar(x))))."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.net = mlp([arch.data_dim, *arch.hidden, 2 * arch.latent_dim], arch.activation)
        self.logvar_scale = arch.logvar_scale

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, log_scale = self.net(x).chunk(2, dim=-1)
        return mean, self.logvar_scale * log_scale


class BernoulliDecoder(nn.Module):
    """p(x|z) = Bernoulli(sigmoid(logits(z))) per pixel."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.net = mlp([arch.latent_dim, *arch.hidden, arch.data_dim], arch.activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class VAE(nn.Module):
    """Encoder, decoder and standard normal prior of one named architecture."""

    def __init__(self, arch_name: str):
        super().__init__()
        if arch_name not in ARCHITECTURES:
            raise ValueError(
                f"Unknown architecture {arch_name!r}; use one of {', '.join(ARCHITECTURES)}."
            )
        self.arch_name = arch_name
        arch = ARCHITECTURES[arch_name]
        self.encoder, self.decoder = GaussianEncoder(arch), BernoulliDecoder(arch)

    @property
    def latent_dim(self) -> int:
        return ARCHITECTURES[self.arch_name].latent_dim

    def initialise(
        self, generator: torch.Generator | None = None, mean_pixel: torch.Tensor | None = None
    ) -> "VAE":
        """Xavier-uniform weights and zero biases, as the originals; with ``mean_pixel``
        (the mean training image), the decoder's output bias starts at its logit."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)
        if mean_pixel is not None:
            with torch.no_grad():
                p = mean_pixel.clamp(1e-3, 1 - 1e-3)
                self.decoder.net[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
        return self


def build_model(name: str, generator: torch.Generator | None = None):
    """Encoder and decoder of a named architecture, Xavier-uniform weights and zero biases."""
    model = VAE(name).initialise(generator)
    return model.encoder, model.decoder
