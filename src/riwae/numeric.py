"""What every estimate of the library shares: Monte Carlo means with their standard errors,
and work split into chunks of bounded size.

Each budget below is the largest amount of work one pass holds where it is used; the
numbers are part of the results (a chunk's draws come from the generator in one call, so
another chunking draws other numbers), so change one only on purpose.
"""

import math
from collections.abc import Iterator

import torch

# Rows (latent draws x images) of one decoder pass in the k-sample estimates of the
# evaluation. On a CPU small chunks are fastest: the decoder's [rows, 784] outputs stay in
# cache (measured: about twice the throughput at 2^12 rows as at 2^16). On a GPU large
# chunks keep it busy; 2^18 rows of 784 float32 logits are 0.8 GB.
CPU_DECODER_ROWS = 2**12
GPU_DECODER_ROWS = 2**18

# Draws of one pass of the posterior figures and checks: q_IW on a grid, the identity on a
# trained model, the bounds beside the marginal q_IW (a model's decoder in float64: 2^13
# rows of 784 values are 50 MB). Points of one pass of the exact quadrature.
POSTERIOR_DRAWS = 2**13
QUADRATURE_POINTS = 2**12

# Draws of one pass on a synthetic target (a few mixture components per draw).
SYNTHETIC_DRAWS = 2**20

# Values (sets of other samples x grid points) of one pass of the marginal q_IW density.
GRID_VALUES = 2**24


def decoder_rows(device: torch.device | str) -> int:
    """Rows of one decoder pass of the evaluation on ``device``."""
    return CPU_DECODER_ROWS if torch.device(device).type == "cpu" else GPU_DECODER_ROWS


def in_chunks(count: int, cost: int, budget: int) -> Iterator[tuple[int, int]]:
    """``(start, stop)`` of consecutive chunks of ``count`` items, each item costing ``cost``
    (draws, points, values), as many items a chunk as ``budget`` allows, at least one."""
    step = max(1, budget // max(cost, 1))
    for start in range(0, count, step):
        yield start, min(start + step, count)


def mean_and_se(values: torch.Tensor) -> tuple[float, float]:
    """Mean and Monte Carlo standard error of i.i.d. values (computed in float64)."""
    values = values.double()
    n = values.numel()
    se = float(values.std(correction=1) / math.sqrt(n)) if n > 1 else math.nan
    return float(values.mean()), se
