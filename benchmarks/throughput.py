"""Training and evaluation throughput against the GEMM-only floor of the same shapes.

    python benchmarks/throughput.py [--threads N] [--device cpu|cuda] [--seconds S]

For each case, one full training step (k draws per image, log-weights, bound, backward,
Adam) is timed, then only the matrix multiplications that step performs (forward, and the
two products per layer of the backward pass), on tensors of the same shapes. Their ratio
says how much of the step is spent outside the GEMMs. Evaluation: the k=5000 log-likelihood
estimate (forward only) against its forward GEMMs.
"""

import argparse
import platform
import time

import pandas as pd
import torch

from riwae.bounds import iwae_bound, log_weights
from riwae.evaluate import iwae_estimate
from riwae.models import ARCHITECTURES, VAE

CASES = [("burda1", 20, 1), ("burda1", 20, 5), ("burda1", 20, 50), ("cremer2d", 100, 50)]


def timed(fn, seconds: float, device: torch.device) -> float:
    """Median seconds per call of ``fn`` over repeated blocks lasting about ``seconds``."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    for _ in range(3):
        fn()
    sync()
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 5:
        fn()
        calls += 1
    sync()
    per_block = max(1, calls)
    blocks = []
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_block):
            fn()
        sync()
        blocks.append((time.perf_counter() - start) / per_block)
    return sorted(blocks)[2]


def layer_shapes(arch_name: str, batch: int, k: int) -> list[tuple[int, int, int, bool]]:
    """(rows, in, out, first layer?) of every linear layer in one step: the encoder on the
    batch, the decoder on the k x batch latent draws."""
    arch = ARCHITECTURES[arch_name]
    shapes = []
    for rows, sizes in (
        (batch, [784, *arch.hidden, 2 * arch.latent_dim]),
        (k * batch, [arch.latent_dim, *arch.hidden, 784]),
    ):
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        shapes += [(rows, a, b, i == 0) for i, (a, b) in enumerate(pairs)]
    return shapes


def gemm_floor(shapes, device, seconds: float, backward: bool) -> float:
    """Seconds for only the GEMMs: y = x W^T, and for backward dx = dy W, dW = dy^T x
    (dx is skipped for the first layer of each network, which has no input gradient)."""
    tensors = []
    for rows, n_in, n_out, first in shapes:
        x, w = torch.randn(rows, n_in, device=device), torch.randn(n_out, n_in, device=device)
        tensors.append((x, w, torch.randn(rows, n_out, device=device), first))

    def run():
        for x, w, dy, first in tensors:
            torch.mm(x, w.T)
            if backward:
                torch.mm(dy.T, x)
                if not first:
                    torch.mm(dy, w)

    return timed(run, seconds, device)


def training_step(arch: str, batch: int, k: int, device: torch.device):
    model = VAE(arch).initialise(torch.Generator().manual_seed(0)).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    generator = torch.Generator(device=device).manual_seed(0)
    x = (torch.rand(batch, 784, device=device) < 0.3).float()

    def step():
        log_w, _, _ = log_weights(model.encoder, model.decoder, x, k, generator)
        loss = -iwae_bound(log_w).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--eval-images", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        f"# torch {torch.__version__}, {device}, {args.threads} thread(s), "
        f"{platform.processor() or platform.machine()}"
    )
    rows = []
    for arch, batch, k in CASES:
        shapes = layer_shapes(arch, batch, k)
        step = timed(training_step(arch, batch, k, device), args.seconds, device)
        floor = gemm_floor(shapes, device, args.seconds, backward=True)
        rows.append(
            {
                "case": f"train {arch} batch {batch} k {k}",
                "images*k/s": batch * k / step,
                "step ms": 1e3 * step,
                "GEMM floor ms": 1e3 * floor,
                "ratio": step / floor,
            }
        )
    for arch in ("burda1", "cremer2d"):
        model = VAE(arch).initialise(torch.Generator().manual_seed(0)).to(device).eval()
        generator = torch.Generator(device=device).manual_seed(0)
        x = (torch.rand(args.eval_images, 784, device=device) < 0.3).float()
        estimate = timed(
            lambda m=model, x=x, g=generator: iwae_estimate(m, x, 5000, g), args.seconds, device
        )
        floor = gemm_floor(
            layer_shapes(arch, args.eval_images, 5000), device, args.seconds, backward=False
        )
        rows.append(
            {
                "case": f"eval {arch} k 5000 ({args.eval_images} images)",
                "images*k/s": args.eval_images * 5000 / estimate,
                "step ms": 1e3 * estimate,
                "GEMM floor ms": 1e3 * floor,
                "ratio": estimate / floor,
            }
        )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))


if __name__ == "__main__":
    main()
