"""Square 2D grids for densities that can be evaluated pointwise, and quadrature on them."""

import math
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Grid2D:
    axis: torch.Tensor  # [size], the coordinates along each axis
    points: torch.Tensor  # [size * size, 2], row-major: points[i * size + j] = (axis[j], axis[i])

    @property
    def size(self) -> int:
        return self.axis.shape[0]

    @property
    def cell_area(self) -> float:
        return float(self.axis[1] - self.axis[0]) ** 2

    def image(self, values: torch.Tensor) -> torch.Tensor:
        """Reshape per-point values to ``[size, size]`` with rows along the second axis."""
        return values.reshape(self.size, self.size)

    def log_integral(self, log_density: torch.Tensor) -> float:
        """log of the integral of exp(log_density) by the midpoint rule over the grid."""
        return float(torch.logsumexp(log_density, 0)) + math.log(self.cell_area)

    def total_variation(self, log_p: torch.Tensor, log_q: torch.Tensor) -> float:
        """(1/2) integral |p - q| over the grid (densities given as logs, not renormalised)."""
        return 0.5 * float((log_p.exp() - log_q.exp()).abs().sum()) * self.cell_area


def square_grid(limit: float, size: int, dtype=torch.float64, device=None) -> Grid2D:
    """A size x size grid of points over [-limit, limit]^2, edges included."""
    axis = torch.linspace(-limit, limit, size, dtype=dtype, device=device)
    y, x = torch.meshgrid(axis, axis, indexing="ij")
    return Grid2D(axis, torch.stack([x.reshape(-1), y.reshape(-1)], dim=-1))
