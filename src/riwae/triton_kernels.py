"""The Bernoulli log-likelihood of ``riwae.bounds.FusedBernoulliLogLikelihood`` on CUDA as
two Triton kernels, each one pass over the logits: the forward pass reads the logits and
the pixels and writes one sum per row; the backward pass reads them again and writes the
gradient. Per pixel, with u = logits * (2x - 1): log sigmoid(u) = log sigmoid(max(u, -S))
+ min(u + S, 0), exact to within e^-S (S = ``riwae.bounds.SATURATION``), and its derivative
sigmoid(-u) * (2x - 1). Float32 only; other dtypes, and machines without Triton, take
torch's operations.

``riwae.bounds`` imports this module only for a CUDA tensor (or under the interpreter).
With ``TRITON_INTERPRET=1`` the kernels run on CPU tensors too (Triton's interpreter),
which is how they are tested without a GPU (``tests/test_bounds.py``).
"""

import os

import torch

from riwae.bounds import SATURATION

LEADING = 3  # leading dimensions of the logits the kernels index: [M, k, batch, pixels]


try:
    import triton
    import triton.language as tl
except ImportError:  # torch's operations do the work (riwae.bounds)
    triton = None

if triton is not None:

    @triton.jit
    def _row(logits_ptr, x_ptr, r, D1, D2, xs0, xs1, xs2, P, S, BLOCK: tl.constexpr):
        """Row r's u = logits * sign, sign = 2x - 1; x's row is found through its strides
        (0 along the dimensions it is broadcast over)."""
        i2 = r % D2
        i1 = (r // D2) % D1
        i0 = r // (D1 * D2)
        columns = tl.arange(0, BLOCK)
        inside = columns < P
        logits = tl.load(logits_ptr + r * P + columns, mask=inside, other=0.0)
        x = tl.load(x_ptr + i0 * xs0 + i1 * xs1 + i2 * xs2 + columns, mask=inside, other=0.0)
        sign = 2.0 * x - 1.0
        return columns, inside, sign, logits * sign

    @triton.jit
    def _forward(logits_ptr, x_ptr, out_ptr, D1, D2, xs0, xs1, xs2, P, S, BLOCK: tl.constexpr):
        r = tl.program_id(0).to(tl.int64)
        _, inside, _, u = _row(logits_ptr, x_ptr, r, D1, D2, xs0, xs1, xs2, P, S, BLOCK)
        log_p = tl.log(tl.sigmoid(tl.maximum(u, -S))) + tl.minimum(u + S, 0.0)
        term = tl.where(inside, log_p, 0.0)
        tl.store(out_ptr + r, tl.sum(term, axis=0))

    @triton.jit
    def _backward(
        logits_ptr, x_ptr, grad_ptr, out_ptr, D1, D2, xs0, xs1, xs2, P, S, BLOCK: tl.constexpr
    ):
        r = tl.program_id(0).to(tl.int64)
        columns, inside, sign, u = _row(logits_ptr, x_ptr, r, D1, D2, xs0, xs1, xs2, P, S, BLOCK)
        grad = tl.load(grad_ptr + r)
        tl.store(out_ptr + r * P + columns, tl.sigmoid(-u) * sign * grad, mask=inside)


def interpreted() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def usable(logits: torch.Tensor, x: torch.Tensor) -> bool:
    """Whether the kernels take these tensors: float32 on CUDA (or anywhere under Triton's
    interpreter), contiguous logits with at most three leading dimensions, pixels contiguous
    along the last one, and Triton importable."""
    return (
        (logits.is_cuda or interpreted())
        and logits.dtype == x.dtype == torch.float32
        and logits.device == x.device
        and logits.dim() <= LEADING + 1
        and logits.is_contiguous()
        and x.stride(-1) == 1
        and logits.numel() > 0
        and triton is not None
    )


def _layout(logits: torch.Tensor, x: torch.Tensor):
    """Rows, pixels, and the leading sizes and x's strides as [M, k, batch] (ones in front)."""
    pad = LEADING + 1 - logits.dim()
    shape = (1,) * pad + tuple(logits.shape)
    strides = (0,) * pad + x.expand_as(logits).stride()
    rows = shape[0] * shape[1] * shape[2]
    return rows, shape[3], (shape[1], shape[2], *strides[:3])


def bernoulli_forward(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Sum over pixels of log Bernoulli(x; sigmoid(logits)), shape ``logits.shape[:-1]``."""
    rows, pixels, layout = _layout(logits, x)
    out = torch.empty(logits.shape[:-1], device=logits.device, dtype=logits.dtype)
    block = triton.next_power_of_2(pixels)
    _forward[(rows,)](logits, x, out, *layout, pixels, SATURATION, BLOCK=block)
    return out


def bernoulli_backward(logits: torch.Tensor, x: torch.Tensor, grad: torch.Tensor) -> torch.Tensor:
    """The gradient of ``bernoulli_forward`` with respect to the logits, given ``grad``."""
    rows, pixels, layout = _layout(logits, x)
    out = torch.empty_like(logits)
    block = triton.next_power_of_2(pixels)
    _backward[(rows,)](logits, x, grad.contiguous(), out, *layout, pixels, SATURATION, BLOCK=block)
    return out
