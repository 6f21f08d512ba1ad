"""Rectangular 2D grids for densities that can be evaluated pointwise, and quadrature."""

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Grid2D:
    x_axis: torch.Tensor  # [nx], coordinates along z_1
    y_axis: torch.Tensor  # [ny], coordinates along z_2
    points: torch.Tensor  # [ny * nx, 2], row-major: points[i * nx + j] = (x_axis[j], y_axis[i])

    @property
    def cell_area(self) -> float:
        return float(self.x_axis[1] - self.x_axis[0]) * float(self.y_axis[1] - self.y_axis[0])

    def image(self, values: torch.Tensor) -> torch.Tensor:
        """Per-point values as a ``[ny, nx]`` image (rows along z_2)."""
        return values.reshape(len(self.y_axis), len(self.x_axis))

    def log_integral(self, log_density: torch.Tensor) -> float:
        """log of the integral of exp(log_density) by the midpoint rule over the grid."""
        return float(torch.logsumexp(log_density, 0)) + math.log(self.cell_area)

    def normalise(self, log_density: torch.Tensor) -> torch.Tensor:
        """The log density rescaled to integrate to 1 over the grid."""
        return log_density - self.log_integral(log_density)

    def total_variation(self, log_p: torch.Tensor, log_q: torch.Tensor) -> float:
        """(1/2) integral |p - q| over the grid (densities given as logs, not renormalised)."""
        return 0.5 * float((log_p.exp() - log_q.exp()).abs().sum()) * self.cell_area

    def elbo(self, log_q: torch.Tensor, log_joint: torch.Tensor) -> float:
        """E_q[log p(x, z) - log q(z)] by quadrature, with q renormalised on the grid."""
        log_q = self.normalise(log_q)
        q = log_q.exp()
        # 0 log 0 = 0: points where q underflows contribute nothing.
        terms = torch.where(q > 0, q * (log_joint - log_q), torch.zeros_like(q))
        return float(terms.sum()) * self.cell_area

    def one_sigma_area(self, log_density: torch.Tensor) -> float:
        """pi sqrt(det Sigma) of the density (not renormalised), its covariance Sigma by the
        midpoint rule: the area of its one-standard-deviation ellipse, were it Gaussian."""
        mass = torch.softmax(log_density, 0)  # the density's mass per cell
        points = self.points.to(mass.dtype)
        centred = points - mass @ points
        covariance = (mass[:, None] * centred).T @ centred
        return math.pi * float(torch.linalg.det(covariance).clamp(min=0).sqrt())


def box_grid(
    lower: tuple[float, float],
    upper: tuple[float, float],
    size: int,
    dtype=torch.float64,
    device=None,
) -> Grid2D:
    """A size x size grid of points over [lower, upper] (per axis), edges included."""
    x_axis = torch.linspace(lower[0], upper[0], size, dtype=dtype, device=device)
    y_axis = torch.linspace(lower[1], upper[1], size, dtype=dtype, device=device)
    return grid_of_axes(x_axis, y_axis)


def grid_of_axes(x_axis: torch.Tensor, y_axis: torch.Tensor) -> Grid2D:
    """The grid of every (x, y) of two evenly spaced axes (e.g. a saved figure's)."""
    y, x = torch.meshgrid(y_axis, x_axis, indexing="ij")
    return Grid2D(x_axis, y_axis, torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1))


def square_grid(limit: float, size: int, dtype=torch.float64, device=None) -> Grid2D:
    """A size x size grid of points over [-limit, limit]^2, edges included."""
    return box_grid((-limit, -limit), (limit, limit), size, dtype, device)


def fitted_grid(
    log_densities: list[Callable[[torch.Tensor], torch.Tensor]],
    limit: float,
    size: int,
    coarse_size: int = 201,
    log_ratio: float = 25.0,
) -> Grid2D:
    """A fine grid over the box where any of the densities matters.

    Each density is evaluated on a coarse grid over [-limit, limit]^2; the box covers every
    point within ``log_ratio`` nats of that density's maximum (mass beyond it is below
    about e^-25 of the peak's), widened by one coarse cell on each side.
    """
    coarse = square_grid(limit, coarse_size)
    keep = torch.zeros(len(coarse.points), dtype=torch.bool)
    for log_density in log_densities:
        values = log_density(coarse.points)
        keep |= values > values.max() - log_ratio
    inside = coarse.points[keep]
    step = float(coarse.x_axis[1] - coarse.x_axis[0])
    lower = (inside.min(0).values - step).clamp(min=-limit).tolist()
    upper = (inside.max(0).values + step).clamp(max=limit).tolist()
    return box_grid(tuple(lower), tuple(upper), size)
