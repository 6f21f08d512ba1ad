"""VAEs with one or more stochastic layers of Gaussian units above Bernoulli pixels, with the
architectures of the originals, one by one (``VAE``) or stacked for group training
(``StackedVAE``). Both compute draws and log-densities with the same code
(``StochasticLayers``); a one-layer model is the case L = 1."""

from dataclasses import dataclass

import torch
from torch import nn

from riwae.bounds import (
    Members,
    bernoulli_log_likelihood,
    bounds_and_surrogate,
    gaussian_log_density,
    standard_normal_log_density,
)


@dataclass(frozen=True)
class Architecture:
    """Stochastic layers h1 (next to the data x = h0), ..., hL: q(z|x) = q(h1|x) q(h2|h1) ...,
    p(x, z) = p(hL) ... p(h1|h2) p(x|h1) with p(hL) = N(0, I). Every conditional is an MLP:
    Gaussian (mean and a log-scale head) for the latents, Bernoulli logits for the pixels."""

    data_dim: int
    latent_dims: tuple[int, ...]  # units of h1, ..., hL
    encoder_hidden: tuple[tuple[int, ...], ...]  # hidden sizes of q(h1|x), q(h2|h1), ...
    decoder_hidden: tuple[tuple[int, ...], ...]  # hidden sizes of p(x|h1), p(h1|h2), ...
    activation: type[nn.Module]
    # The second output head of a Gaussian layer is log std for Burda et al.'s models
    # (std = exp(output)) and log variance for cremer2d; logvar = logvar_scale * output.
    logvar_scale: float
    # Burda et al.'s own architecture: their Table 1 has its test log-likelihoods (by
    # number of stochastic layers), which the Burda table sets ours beside.
    burda_table1: bool = False

    @property
    def layers(self) -> int:
        return len(self.latent_dims)

    @property
    def is_2d(self) -> bool:
        """One stochastic layer of two units: its posterior lives on the plane, where grids
        and quadrature reach it (the 2D figures and checks are made for these models)."""
        return self.latent_dims == (2,)

    @property
    def latent_dim(self) -> int:
        """Units of the joint latent z = (h1, ..., hL)."""
        return sum(self.latent_dims)

    def encoder_sizes(self, layer: int) -> list[int]:
        """Layer sizes of q(h_{layer+1} | h_layer): mean and log-scale of each unit."""
        units = (self.data_dim, *self.latent_dims)
        return [units[layer], *self.encoder_hidden[layer], 2 * units[layer + 1]]

    def decoder_sizes(self, layer: int) -> list[int]:
        """Layer sizes of p(h_layer | h_{layer+1}): pixel logits for layer 0, else the mean
        and log-scale of each unit."""
        units = (self.data_dim, *self.latent_dims)
        outputs = units[layer] if layer == 0 else 2 * units[layer]
        return [units[layer + 1], *self.decoder_hidden[layer], outputs]


ARCHITECTURES = {
    # The paper's 2D model (authors' code): softplus, Xavier-uniform weights, zero biases.
    "cremer2d": Architecture(784, (2,), ((200, 200),), ((200, 200),), nn.Softplus, 1.0),
    # Burda et al.'s one-stochastic-layer model: tanh, std = exp(linear output).
    "burda1": Architecture(784, (50,), ((200, 200),), ((200, 200),), nn.Tanh, 2.0, True),
    # Their two-stochastic-layer model: q 784-200-200-(100+100), 100-100-100-(50+50);
    # p 50-100-100-(100+100), 100-200-200-784. (Their code lists p's hidden sizes from the
    # top, [[100, 100], [200, 200]]; here every list starts next to the data.)
    "burda2": Architecture(
        784, (100, 50), ((200, 200), (100, 100)), ((200, 200), (100, 100)), nn.Tanh, 2.0, True
    ),
}


def architecture(name: str) -> Architecture:
    if name not in ARCHITECTURES:
        raise ValueError(f"Unknown architecture {name!r}; use one of {', '.join(ARCHITECTURES)}.")
    return ARCHITECTURES[name]


def mlp(sizes: list[int], activation: type[nn.Module]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (n_in, n_out) in enumerate(zip(sizes[:-1], sizes[1:], strict=True)):
        layers.append(nn.Linear(n_in, n_out))
        if i < len(sizes) - 2:
            layers.append(activation())
    return nn.Sequential(*layers)


def gaussian_head(output: torch.Tensor, logvar_scale: float) -> tuple[torch.Tensor, torch.Tensor]:
    """An MLP's output as the mean and log variance of a diagonal Gaussian."""
    mean, log_scale = output.chunk(2, dim=-1)
    return mean, logvar_scale * log_scale


class GaussianMLP(nn.Module):
    """N(mean(h), diag(exp(logvar(h)))): q(h_l | h_{l-1}), or p(h_l | h_{l+1}) for l >= 1."""

    def __init__(self, sizes: list[int], activation: type[nn.Module], logvar_scale: float):
        super().__init__()
        self.net = mlp(sizes, activation)
        self.logvar_scale = logvar_scale

    def forward(self, h: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return gaussian_head(self.net(h), self.logvar_scale)


class BernoulliMLP(nn.Module):
    """p(x|h1) = Bernoulli(sigmoid(logits(h1))) per pixel."""

    def __init__(self, sizes: list[int], activation: type[nn.Module]):
        super().__init__()
        self.net = mlp(sizes, activation)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.net(h)


def side_by_side(parts: list[torch.Tensor]) -> torch.Tensor:
    """Layers' tensors concatenated along the last dimension, broadcast over the others."""
    if len(parts) == 1:
        return parts[0]
    shape = torch.broadcast_shapes(*(part.shape[:-1] for part in parts))
    return torch.cat([part.expand(*shape, part.shape[-1]) for part in parts], dim=-1)


class StochasticLayers(nn.Module):
    """Draws from q(z|x) and log p(x, z) of a stack of stochastic layers, given each layer's
    networks: ``encode(l, h)``, the mean and log variance of q(h_{l+1} | h_l), and
    ``decode(l, h)``, p(h_l | h_{l+1}) (pixel logits for l = 0, else mean and log variance).
    Shared by a model (``VAE``) and M stacked models (``StackedVAE``, leading dim M)."""

    arch_name: str

    @property
    def arch(self) -> Architecture:
        return ARCHITECTURES[self.arch_name]

    @property
    def latent_dim(self) -> int:
        return self.arch.latent_dim

    def draw(self, x: torch.Tensor, eps: torch.Tensor, stopped_q: bool = False):
        """Draws z = (h1, ..., hL) from q(z|x), made from standard normal noise, and log p(x, z).

        ``x``: ``[..., batch, pixels]``; ``eps``: ``[..., k, batch, latent_dim]``. Returns
        ``(log_joint [..., k, batch], z [..., k, batch, latent_dim], mean, logvar, stopped)``:
        q's mean and log variance of every unit given the layer below, so that
        log q(z|x) = ``gaussian_log_density(z, mean, logvar)`` (broadcast over k for one layer);
        ``stopped``, with ``stopped_q`` (else None): the same with q's parameters held fixed
        and z live, also as the input of q(h_{l+1} | h_l), from which STL and DReG take log q
        (``bounds_and_surrogate``).

        log p(x, z) and log q are evaluated at ``z``, an autograd node apart from the draws h_l
        that the layers above are drawn from: the gradient that reaches ``z`` is that of log w
        with respect to its inputs alone, so DReG's weighting there acts once on every path
        from q's parameters (weighting h1's whole gradient would weight the part that came
        through h2 twice). For one layer ``z`` is the draw itself.
        """
        h, draws, means, logvars = x, [], [], []
        for layer, noise in enumerate(eps.split(self.arch.latent_dims, dim=-1)):
            mean, logvar = self.encode(layer, h)
            if layer == 0:  # q(h1|x) is the same for all k draws
                mean, logvar = mean.unsqueeze(-3), logvar.unsqueeze(-3)
            h = mean + torch.exp(0.5 * logvar) * noise
            draws.append(h)
            means.append(mean)
            logvars.append(logvar)
        z = side_by_side(draws)
        # One split of z for log p and q's upper layers: their gradients meet in it.
        latents = self.latents(z)
        log_joint = self.log_joint(x, z, latents)
        mean, logvar = side_by_side(means), side_by_side(logvars)
        if not stopped_q:
            return log_joint, z, mean, logvar, None
        # Layer 1's input x carries no gradient, so its mean and log variance detached are q's
        # with fixed parameters; the layers above take z's live h_{l-1} as input.
        stopped = [(means[0].detach(), logvars[0].detach())]
        stopped += [
            self.encode(layer, latents[layer - 1], detached=True)
            for layer in range(1, len(latents))
        ]
        stopped_means, stopped_logvars = zip(*stopped, strict=True)
        stopped = side_by_side(list(stopped_means)), side_by_side(list(stopped_logvars))
        return log_joint, z, mean, logvar, stopped

    def latents(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The joint latent z as its layers' units [h1, ..., hL]."""
        return z.split(self.arch.latent_dims, dim=-1) if self.arch.layers > 1 else [z]

    def log_joint(
        self, x: torch.Tensor, z: torch.Tensor, latents: list[torch.Tensor] | None = None
    ) -> torch.Tensor:
        """log p(x, z) of images ``x`` ``[..., batch, pixels]`` and joint latents ``z``
        ``[..., k, batch, latent_dim]``: shape ``[..., k, batch]``. ``latents``: z split
        already (``latents(z)``)."""
        latents = self.latents(z) if latents is None else latents
        log_joint = standard_normal_log_density(latents[-1])
        for layer in range(len(latents) - 1, 0, -1):
            log_joint = log_joint + gaussian_log_density(
                latents[layer - 1], *self.decode(layer, latents[layer])
            )
        return log_joint + bernoulli_log_likelihood(self.decode(0, latents[0]), x.unsqueeze(-3))

    def bounds(self, x: torch.Tensor, eps: torch.Tensor, members: Members):
        """Each member's objective per image from the draws made from noise ``eps``, and the
        surrogate whose gradient is its estimator's (``riwae.bounds.bounds_and_surrogate``).

        ``x``: ``[M, batch, pixels]``; ``eps``: ``[M, max_draws, batch, latent_dim]``;
        ``members``: the objectives and estimators of the M models of a stack (or of M sets
        of draws of one model). Returns two ``[M, batch]`` tensors."""
        gradient = torch.is_grad_enabled()
        stopped_q = any(members.score_free) and gradient  # only where STL or DReG need it
        log_joint, z, mean, logvar, stopped = self.draw(x, eps, stopped_q)
        # PIWAE's decoder takes other weights than its encoder: log p once more, z fixed.
        fixed_z = self.log_joint(x, z.detach()) if "piwae" in members.names and gradient else None
        return bounds_and_surrogate(log_joint, z, mean, logvar, members, stopped, fixed_z)


class VAE(StochasticLayers):
    """The networks and standard normal prior of one named architecture."""

    def __init__(self, arch_name: str):
        super().__init__()
        arch = architecture(arch_name)
        self.arch_name = arch_name

        def gaussian(sizes):
            return GaussianMLP(sizes, arch.activation, arch.logvar_scale)

        # The first stochastic layer: q(h1|x) and p(x|h1); of a one-layer model, q(z|x), p(x|z).
        self.encoder = gaussian(arch.encoder_sizes(0))
        self.decoder = BernoulliMLP(arch.decoder_sizes(0), arch.activation)
        # The layers above, l = 2..L: q(h_l | h_{l-1}) and p(h_{l-1} | h_l).
        upper = range(1, arch.layers)
        self.upper_encoders = nn.ModuleList(gaussian(arch.encoder_sizes(i)) for i in upper)
        self.upper_decoders = nn.ModuleList(gaussian(arch.decoder_sizes(i)) for i in upper)

    def encode(
        self, layer: int, h: torch.Tensor, detached: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """q(h_{layer+1} | h_layer)'s mean and log variance; ``detached``: with the network's
        parameters held fixed (no gradient to them), ``h``'s gradient kept."""
        network = self.encoder if layer == 0 else self.upper_encoders[layer - 1]
        if not detached:
            return network(h)
        fixed = {name: p.detach() for name, p in network.named_parameters()}
        return torch.func.functional_call(network, fixed, (h,))

    def decode(self, layer: int, h: torch.Tensor):
        return (self.decoder if layer == 0 else self.upper_decoders[layer - 1])(h)

    def log_weights(
        self, x: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """log w = log p(x, z) - log q(z|x) for k draws z ~ q(z|x) per image ``x [batch,
        pixels]``, z the joint latent of all layers. Returns ``(log_w, log_q, z)`` with shapes
        ``[k, batch]``, ``[k, batch]``, ``[k, batch, latent_dim]``."""
        eps = torch.randn(
            (k, x.shape[0], self.latent_dim), generator=generator, device=x.device, dtype=x.dtype
        )
        log_joint, z, mean, logvar, _ = self.draw(x, eps)
        log_q = gaussian_log_density(z, mean, logvar)
        return log_joint - log_q, log_q, z

    def initialise(
        self, generator: torch.Generator | None = None, mean_pixel: torch.Tensor | None = None
    ) -> "VAE":
        """Xavier-uniform weights and zero biases, as the originals; with ``mean_pixel``
        (the mean training image), the pixel logits' bias starts at its logit."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight, generator=generator)
                nn.init.zeros_(module.bias)
        if mean_pixel is not None:
            with torch.no_grad():
                p = mean_pixel.clamp(1e-3, 1 - 1e-3)
                self.decoder.net[-1].bias.copy_(torch.log(p) - torch.log1p(-p))
        return self


def linears(module: nn.Module) -> list[nn.Linear]:
    return [layer for layer in module.net if isinstance(layer, nn.Linear)]


class StackedVAE(StochasticLayers):
    """M models of one architecture as one network: every layer's weights stacked ``[M, ...]``
    and applied with batched matrix products, so M models take one forward, one backward and
    one optimizer step. Member m computes exactly what ``VAE`` m computes."""

    def __init__(self, members: list[VAE]):
        super().__init__()
        names = {member.arch_name for member in members}
        if len(names) != 1:
            raise ValueError(f"A stack holds models of one architecture, not {sorted(names)}.")
        self.arch_name = names.pop()
        self.activation = self.arch.activation()
        # Named as the VAE's networks: encoder_layers stacks the members' encoder, and so on.
        self.encoder_layers = self._stack([m.encoder for m in members])
        self.decoder_layers = self._stack([m.decoder for m in members])
        upper = range(self.arch.layers - 1)
        self.upper_encoder_layers = nn.ModuleList(
            self._stack([m.upper_encoders[i] for m in members]) for i in upper
        )
        self.upper_decoder_layers = nn.ModuleList(
            self._stack([m.upper_decoders[i] for m in members]) for i in upper
        )

    @staticmethod
    def _stack(networks: list[nn.Module]) -> nn.ParameterList:
        """[weight, bias, weight, bias, ...]: weight ``[M, out, in]``, bias ``[M, 1, out]``."""
        params = []
        for layers in zip(*(linears(network) for network in networks), strict=True):
            params.append(nn.Parameter(torch.stack([layer.weight.detach() for layer in layers])))
            params.append(
                nn.Parameter(torch.stack([layer.bias.detach()[None] for layer in layers]))
            )
        return nn.ParameterList(params)

    def _encoders(self) -> list[nn.ParameterList]:
        return [self.encoder_layers, *self.upper_encoder_layers]

    def _decoders(self) -> list[nn.ParameterList]:
        return [self.decoder_layers, *self.upper_decoder_layers]

    def __len__(self) -> int:
        return self.encoder_layers[0].shape[0]

    def _mlp(self, layers: nn.ParameterList | list[torch.Tensor], h: torch.Tensor) -> torch.Tensor:
        """``h``: ``[M, ..., in]`` -> ``[M, ..., out]``."""
        out = h.reshape(h.shape[0], -1, h.shape[-1])
        count = len(layers) // 2
        for i in range(count):
            out = torch.baddbmm(layers[2 * i + 1], out, layers[2 * i].transpose(1, 2))
            if i < count - 1:
                out = self.activation(out)
        return out.reshape(*h.shape[:-1], -1)

    def encode(
        self, layer: int, h: torch.Tensor, detached: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor]:
        layers = self._encoders()[layer]
        if detached:  # parameters held fixed, h's gradient kept
            layers = [p.detach() for p in layers]
        return gaussian_head(self._mlp(layers, h), self.arch.logvar_scale)

    def decode(self, layer: int, h: torch.Tensor):
        output = self._mlp(self._decoders()[layer], h)
        return output if layer == 0 else gaussian_head(output, self.arch.logvar_scale)

    def member(self, m: int) -> VAE:
        """Member ``m`` as a plain ``VAE`` (a copy of its weights)."""
        model = VAE(self.arch_name).to(self.encoder_layers[0].device)
        networks = [model.encoder, *model.upper_encoders, model.decoder, *model.upper_decoders]
        with torch.no_grad():
            for network, layers in zip(
                networks, [*self._encoders(), *self._decoders()], strict=True
            ):
                for i, linear in enumerate(linears(network)):
                    linear.weight.copy_(layers[2 * i][m])
                    linear.bias.copy_(layers[2 * i + 1][m, 0])
        return model
