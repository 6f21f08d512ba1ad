"""Training and evaluation throughput of a config's groups against the GEMM-only floor of
the same shapes, and the whole config's projected wall time.

    python benchmarks/throughput.py [--device cpu|cuda] [--threads N] [--seconds S]
                                    [--config config/paper.yaml] [--csv FILE]

For each training group that the pipeline forms with ``device: <this device>``
(``training_groups`` of the config; ``auto`` is one model per group on a CPU, one group per
architecture on CUDA), what one step of the training loop costs: taking the next minibatch
of every member (indexing the images on the device, binarising them there), every
member's k draws per image, log-weights, bounds, backward, the config's optimizer (Burda
et al.'s Adam where the config names it: six kernels per parameter tensor) and the sum of
the bounds, all the pipeline's own code (``riwae.train``); then only the matrix products
that step performs (forward, and the two products per layer of the backward pass), on
tensors of the same shapes. Their ratio says how much of the step is spent outside the
GEMMs. Each epoch's held-out pass is timed once per group. Evaluation: one batch of
``riwae.evaluate.evaluate_model`` (its own batch size for this device: the k = ll_k
estimate, the bounds and the ELBO's draws) against its forward GEMMs. The last line projects
the config's training and evaluation time from these rates, one job at a time on this
device. Matrix products run at the config's ``matmul_precision``.
"""

import argparse
import math
import platform
import time
from dataclasses import replace

import pandas as pd
import torch

from riwae.config import load_config
from riwae.data import BinarizedMNIST
from riwae.device import set_matmul_precision
from riwae.evaluate import evaluate_model, evaluation_batch_size
from riwae.models import ARCHITECTURES, VAE, StackedVAE
from riwae.numeric import decoder_rows
from riwae.optim import make_optimizer
from riwae.spec import model_specs, training_groups
from riwae.train import (
    Group,
    TrainSettings,
    heldout_bounds,
    member_batches,
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
    """Median seconds per call of ``fn`` over 5 blocks of repeated calls lasting about
    ``seconds`` in all (at least one call a block), after a warm-up."""

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize(device)

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


def random_images(n: int, seed: int = 0) -> torch.Tensor:
    """``n`` uint8 images of random intensities, in place of MNIST (the cost is the same)."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 784), generator=generator, dtype=torch.uint8)


def training_loop(members: list[TrainSettings], device: torch.device):
    """The training loop's work per step for one group, as ``riwae.train.train_group`` does
    it: a callable making one step (restarting the epoch's batches when they run out), and
    one making the group's held-out pass."""
    first = members[0]
    stack = StackedVAE(
        [VAE(s.arch).initialise(torch.Generator().manual_seed(s.seed)) for s in members]
    ).to(device)
    group = Group(members, device)
    optimizer = make_optimizer(first.optimizer, stack.parameters(), first.lr, first.adam_eps)
    generators = [torch.Generator(device=device).manual_seed(s.seed) for s in members]
    data = BinarizedMNIST(random_images(first.train_images), device)
    fixed = [
        data.fixed(seed=s.seed + 3).bool() if s.binarisation == "fixed" else None for s in members
    ]
    heldout = BinarizedMNIST(random_images(first.heldout_images, seed=1), device)
    heldout_x = torch.stack([heldout.fixed(seed=s.seed + 1) for s in members])
    total = torch.zeros(len(members), device=device)
    batches = iter(())

    def step():
        nonlocal batches, total
        x = next(batches, None)
        if x is None:
            batches = member_batches(data, members, generators, fixed)
            x = next(batches)
        total += training_step(stack, group, optimizer, x, generators).sum(1)

    def heldout_pass():
        heldout_bounds(stack, group, heldout_x, [s.seed + 2 for s in members])

    return step, heldout_pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    name = (
        torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else f"{cpu_name()}, {args.threads} thread(s)"
    )
    config = load_config(args.config)
    set_matmul_precision(config["matmul_precision"])
    print(
        f"# torch {torch.__version__}, {device} ({name}), groups of {args.config}, "
        f"matmul_precision {config['matmul_precision']}"
    )
    specs = model_specs(config)
    settings = {spec.name: spec.settings for spec in specs}
    groups = training_groups(specs, config["training_groups"], device.type)
    rows, hours = [], 0.0
    # Groups that differ only in their members' seeds cost the same: timed once, one row.
    alike: dict[tuple, list[str]] = {}
    for group_name, names in groups.items():
        alike.setdefault(tuple(replace(settings[n], seed=0) for n in names), []).append(group_name)
    for members, group_names in alike.items():
        first = members[0]
        step, heldout_pass = training_loop(list(members), device)
        step_seconds = timed(step, args.seconds, device)
        heldout_seconds = timed(heldout_pass, args.seconds / 5, device)
        shapes = layer_shapes(first.arch, first.batch_size, max(s.k for s in members))
        floor = gemm_floor(shapes, len(members), device, args.seconds, backward=True)
        epochs = len(first.learning_rates())
        steps = epochs * math.ceil(first.train_images / first.batch_size)
        group_hours = len(group_names) * (steps * step_seconds + epochs * heldout_seconds) / 3600
        hours += group_hours
        seeds = f" x {len(group_names)} seeds" if len(group_names) > 1 else ""
        rows.append(
            {
                "case": f"train {group_names[0]} ({len(members)} model(s)){seeds}",
                "images*k/s": first.batch_size * sum(s.k for s in members) / step_seconds,
                "step ms": 1e3 * step_seconds,
                "GEMM floor ms": 1e3 * floor,
                "ratio": step_seconds / floor,
                "held-out s": heldout_seconds,
                "steps": steps,
                "hours": group_hours,
            }
        )
    evaluation = config["evaluation"]
    ll_k, bound_k = evaluation["ll_k"], evaluation["bound_k"]
    images = min(evaluation_batch_size(device, ll_k), evaluation["test_images"])
    draws = ll_k + sum(bound_k) + max(bound_k)  # the estimate, the bounds, the ELBO's draws
    for arch in sorted({s.arch for s in settings.values()}):
        model = VAE(arch).initialise(torch.Generator().manual_seed(0)).to(device).eval()
        x = BinarizedMNIST(random_images(images), device).fixed(seed=0)
        batch_seconds = timed(
            lambda m=model, x=x: evaluate_model(m, x, ll_k, bound_k, seed=0), args.seconds, device
        )
        # The forward GEMMs of one chunk of draws, scaled to the batch's draws.
        chunk_images = max(1, decoder_rows(device) // ll_k)
        chunk = layer_shapes(arch, chunk_images, ll_k)
        floor = gemm_floor(chunk, 1, device, args.seconds, backward=False)
        floor *= images * draws / (chunk_images * ll_k)
        models = sum(s.arch == arch for s in settings.values())
        batches = models * math.ceil(evaluation["test_images"] / images)
        eval_hours = batches * batch_seconds / 3600
        hours += eval_hours
        rows.append(
            {
                "case": f"eval {arch} k {ll_k} ({images} images a batch)",
                "images*k/s": images * draws / batch_seconds,
                "step ms": 1e3 * batch_seconds,
                "GEMM floor ms": 1e3 * floor,
                "ratio": batch_seconds / floor,
                "held-out s": math.nan,
                "steps": batches,
                "hours": eval_hours,
            }
        )
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}"))
    print(f"{args.config.split('/')[-1]} projected: {hours:.3g} h on {name}")


if __name__ == "__main__":
    main()
