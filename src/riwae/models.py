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


ARCHITECTURES = {
    # The paper's 2D model (authors' code): softplus, Xavier-uniform weights, zero biases.
    "cremer2d": Architecture(784, (200, 200), 2, nn.Softplus),
    # Burda et al.'s one-stochastic-layer model: tanh, std = exp(linear output).
    "burda1": Architecture(784, (200, 200), 50, nn.Tanh),
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

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        mean, logvar = self.net(x).chunk(2, dim=-1)
        return mean, logvar


class BernoulliDecoder(nn.Module):
    """p(x|z) = Bernoulli(sigmoid(logits(z))) per pixel."""

    def __init__(self, arch: Architecture):
        super().__init__()
        self.net = mlp([arch.latent_dim, *arch.hidden, arch.data_dim], arch.activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


def build_model(name: str, generator: torch.Generator | None = None):
    """Encoder and decoder of a named architecture, Xavier-uniform weights and zero biases."""
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; use one of {', '.join(ARCHITECTURES)}.")
    arch = ARCHITECTURES[name]
    encoder, decoder = GaussianEncoder(arch), BernoulliDecoder(arch)
    for module in [*encoder.modules(), *decoder.modules()]:
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight, generator=generator)
            nn.init.zeros_(module.bias)
    return encoder, decoder
