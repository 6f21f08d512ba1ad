"""Training and evaluation throughput of config/paper.yaml's groups against the GEMM-only
floor of the same shapes, and the whole config's projected wall time.

    python benchmarks/throughput.py [--device cpu|cuda] [--threads N] [--seconds S]
                                    [--config config/paper.yaml]

For each training group that the pipeline would form on this device (``training_groups``
of the config; ``auto`` is one model per group on a CPU, one group per architecture on a
GPU), one full training step (every member's k draws per image, log-weights, bounds,
backward, Adam: the pipeline's own ``training_step``) is timed, then only the matrix
products that step performs (forward, and the two products per layer of the backward
pass), on tensors of the same shapes. Their ratio says how much of the step is spent outside
the GEMMs. Evaluation: the k=5000 log-likelihood estimate (forward only, the pipeline's own
chunk size for this device) against its forward GEMMs. The last line projects the config's
training and evaluation time from these rates, with one job at a time on this device.
"""

import argparse
import math
import platform
import time
from dataclasses import replace

import pandas as pd
import torch

from riwae.config import load_config
from riwae.evaluate import chunk_rows, iwae_estimate
from riwae.models import ARCHITECTURES, VAE, StackedVAE
from riwae.train import (
    Group,
    TrainSettings,
    group_models,
    model_replicates,
    replicate_settings,
    training_step,
)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(
                line.split(":", 1)[1].strip() for line in f if line.startswith("model name")
            )
    except (OSError, StopIteration):
        return platform.processor() or platform.machine()


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
    """(rows, in, out, input without gradient?) of every linear layer in one step: q(h1|x)
    on the batch, the networks above it and every decoder on the k x batch latent draws.
    Only the data has no gradient: the latents carry the reparameterised path to q."""
    arch = ARCHITECTURES[arch_name]
    networks = [(batch, arch.encoder_sizes(0))]
    networks += [(k * batch, arch.encoder_sizes(layer)) for layer in range(1, arch.layers)]
    networks += [(k * batch, arch.decoder_sizes(layer)) for layer in range(arch.layers)]
    shapes = []
    for network, (rows, sizes) in enumerate(networks):
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        shapes += [(rows, a, b, network == 0 and i == 0) for i, (a, b) in enumerate(pairs)]
    return shapes


def gemm_floor(shapes, models: int, device, seconds: float, backward: bool) -> float:
    """Seconds for only the (batched, ``models`` deep) GEMMs: y = x W^T, and for backward
    dx = dy W, dW = dy^T x (dx is skipped for the layer on the data, which has no input
    gradient)."""
    tensors = []
    for rows, n_in, n_out, first in shapes:
        x = torch.randn(models, rows, n_in, device=device)
        w = torch.randn(models, n_out, n_in, device=device)
        tensors.append((x, w, torch.randn(models, rows, n_out, device=device), first))

    def run():
        for x, w, dy, first in tensors:
            torch.bmm(x, w.transpose(1, 2))
            if backward:
                torch.bmm(dy.transpose(1, 2), x)
                if not first:
                    torch.bmm(dy, w)

    return timed(run, seconds, device)


def group_step(members: list[TrainSettings], device: torch.device):
    """The pipeline's training step for one group, on random binary images."""
    stack = StackedVAE(
        [VAE(s.arch).initialise(torch.Generator().manual_seed(s.seed)) for s in members]
    ).to(device)
    group = Group(members, device)
    optimizer = torch.optim.Adam(stack.parameters(), lr=1e-4)
    generators = [torch.Generator(device=device).manual_seed(s.seed) for s in members]
    x = (torch.rand(len(members), members[0].batch_size, 784, device=device) < 0.3).float()
    return lambda: training_step(stack, group, optimizer, x, generators)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--eval-images", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {args.threads} thread(s)"
    )
    config = load_config(args.config)
    print(f"# torch {torch.__version__}, {device} ({name}), groups of {args.config}")
    replicates = model_replicates(config["models"], config["seeds"])
    settings = {
        spec["name"]: TrainSettings(**replicate_settings(spec, config["training"]))
        for spec in replicates
    }
    groups = group_models(replicates, config["training_groups"], device.type == "cuda")
    rows, hours = [], 0.0
    # Groups that differ only in their members' seeds cost the same: timed once, one row.
    alike: dict[tuple, list[str]] = {}
    for group_name, names in groups.items():
        alike.setdefault(tuple(replace(settings[n], seed=0) for n in names), []).append(group_name)
    for members, group_names in alike.items():
        first = members[0]
        step = timed(group_step(list(members), device), args.seconds, device)
        shapes = layer_shapes(first.arch, first.batch_size, max(s.k for s in members))
        floor = gemm_floor(shapes, len(members), device, args.seconds, backward=True)
        steps = len(first.learning_rates()) * math.ceil(first.train_images / first.batch_size)
        hours += len(group_names) * steps * step / 3600
        seeds = f" x {len(group_names)} seeds" if len(group_names) > 1 else ""
        rows.append(
            {
                "case": f"train {group_names[0]} ({len(members)} model(s)){seeds}",
                "images*k/s": first.batch_size * sum(s.k for s in members) / step,
                "step ms": 1e3 * step,
                "GEMM floor ms": 1e3 * floor,
                "ratio": step / floor,
                "steps": steps,
                "hours": len(group_names) * steps * step / 3600,
            }
        )
    evaluation = config["evaluation"]
    for arch in sorted({s.arch for s in settings.values()}):
        model = VAE(arch).initialise(torch.Generator().manual_seed(0)).to(device).eval()
        generator = torch.Generator(device=device).manual_seed(0)
        images = max(args.eval_images, chunk_rows(device) // 5000)
        x = (torch.rand(images, 784, device=device) < 0.3).float()
        estimate = timed(
            lambda m=model, x=x, g=generator: iwae_estimate(m, x, 5000, g), args.seconds, device
        )
        floor = gemm_floor(layer_shapes(arch, images, 5000), 1, device, args.seconds, False)
        models = sum(s.arch == arch for s in settings.values())
        # The estimate at ll_k, plus the bounds at bound_k and the ELBO's draws.
        draws = evaluation["ll_k"] + sum(evaluation["bound_k"]) + max(evaluation["bound_k"])
        eval_hours = models * evaluation["test_images"] / images * draws / 5000 * estimate / 3600
        hours += eval_hours
        rows.append(
            {
                "case": f"eval {arch} k 5000 ({images} images)",
                "images*k/s": images * 5000 / estimate,
                "step ms": 1e3 * estimate,
                "GEMM floor ms": 1e3 * floor,
                "ratio": estimate / floor,
                "steps": models * math.ceil(evaluation["test_images"] / images),
                "hours": eval_hours,
            }
        )
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"{args.config.split('/')[-1]} projected: {hours:.3g} h on {name}")


if __name__ == "__main__":
    main()
