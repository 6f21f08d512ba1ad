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


class StackedVAE(nn.Module):
    """M models of one architecture as one network: every layer's weights stacked ``[M, ...]``
    and applied with batched matrix products, so M models take one forward, one backward and
    one optimizer step. Member m computes exactly what ``VAE`` m computes."""

    def __init__(self, members: list[VAE]):
        super().__init__()
        names = {member.arch_name for member in members}
        if len(names) != 1:
            raise ValueError(f"A stack holds models of one architecture, not {sorted(names)}.")
        self.arch_name = names.pop()
        arch = ARCHITECTURES[self.arch_name]
        self.activation, self.logvar_scale = arch.activation(), arch.logvar_scale
        self.encoder_layers = self._stack([m.encoder.net for m in members])
        self.decoder_layers = self._stack([m.decoder.net for m in members])

    @staticmethod
    def _stack(nets: list[nn.Sequential]) -> nn.ParameterList:
        """[weight, bias, weight, bias, ...]: weight ``[M, out, in]``, bias ``[M, 1, out]``."""
        linears = [[layer for layer in net if isinstance(layer, nn.Linear)] for net in nets]
        params = []
        for layers in zip(*linears, strict=True):
            params.append(nn.Parameter(torch.stack([layer.weight.detach() for layer in layers])))
            params.append(
                nn.Parameter(torch.stack([layer.bias.detach()[None] for layer in layers]))
            )
        return nn.ParameterList(params)

    def __len__(self) -> int:
        return self.encoder_layers[0].shape[0]

    def _mlp(self, layers: nn.ParameterList, h: torch.Tensor) -> torch.Tensor:
        """``h``: ``[M, rows, in]`` -> ``[M, rows, out]``."""
        count = len(layers) // 2
        for i in range(count):
            h = torch.baddbmm(layers[2 * i + 1], h, layers[2 * i].transpose(1, 2))
            if i < count - 1:
                h = self.activation(h)
        return h

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x``: ``[M, batch, pixels]`` -> mean and logvar, ``[M, batch, latent]`` each."""
        mean, log_scale = self._mlp(self.encoder_layers, x).chunk(2, dim=-1)
        return mean, self.logvar_scale * log_scale

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z``: ``[M, ..., latent]`` -> Bernoulli logits ``[M, ..., pixels]``."""
        flat = z.reshape(z.shape[0], -1, z.shape[-1])
        return self._mlp(self.decoder_layers, flat).reshape(*z.shape[:-1], -1)

    def member(self, m: int) -> VAE:
        """Member ``m`` as a plain ``VAE`` (a copy of its weights)."""
        model = VAE(self.arch_name).to(self.encoder_layers[0].device)
        for net, layers in (
            (model.encoder.net, self.encoder_layers),
            (model.decoder.net, self.decoder_layers),
        ):
            linears = [layer for layer in net if isinstance(layer, nn.Linear)]
            with torch.no_grad():
                for i, linear in enumerate(linears):
                    linear.weight.copy_(layers[2 * i][m])
                    linear.bias.copy_(layers[2 * i + 1][m, 0])
        return model
