"""Training and evaluation speed of a config's groups against three floors measured in the
same run, and the whole config's projected wall time.

    python benchmarks/throughput.py [--device cpu|cuda] [--threads N] [--seconds S]
        [--config config/paper.yaml] [--only GROUP ...] [--cuda-graphs N]
        [--compare-precision high] [--jobs-per-gpu J] [--sharing-slowdown F] [--csv FILE]

For each training group that the pipeline forms with ``device: <this device>``
(``riwae.spec.training_groups``: each model alone on a CPU, one group per architecture and
number of draws on CUDA), the pipeline's own steps (``riwae.train.build_group`` and
``TrainingSteps``, as ``train_group`` runs them): each member's next minibatch indexed on
the device and binarised there, from real MNIST (``resources/mnist.npz`` when it is there;
random images otherwise), changing every step; draws, bounds, backward, the config's
optimizer, the sum of the bounds. Timed with CUDA events on a GPU, as the thread's CPU
time on a CPU (one thread, as the jobs run; other work on a shared machine then slows it
less), as the median of 5 blocks after a warm-up. Beside it:

- ``--cuda-graphs N``: the same steps captured N at a time as a CUDA graph and replayed;
- ``--compare-precision P``: the steps with float32 products at P (e.g. ``high``, TF32);
- three floors of the same step's shapes: its matrix products alone (forward, and both
  backward products per layer) at full float32 and at the config's ``matmul_precision``,
  and its elementwise traffic over the device's measured memory bandwidth: the logits
  read forward and backward and their gradient written (3 x), every hidden activation
  read and written forward and backward (4 x) and the optimizer's pass over parameters,
  gradients and moments (7 x), the least that fused kernels would move.

Each group's held-out pass (every epoch's end) is timed once, and one batch of
``riwae.evaluate.evaluate_model`` per architecture. The projection places every training
and evaluation job on the device's job slots as Snakemake would run them (``--jobs-per-gpu``,
default the config's ``jobs_per_gpu``, on CUDA; one at a time on a CPU), longest first,
each slowed by ``--sharing-slowdown`` (how much slower a job runs beside others, measured by
running copies of this script at once: ``benchmarks/gpu_check.py``), and says how far it is
from one hour and from the floor (the faster floor of each step, one job at a time).
"""

import argparse
import heapq
import math
import platform
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from riwae.config import load_config
from riwae.data import BinarizedMNIST
from riwae.device import reuse_freed_memory, set_matmul_precision
from riwae.evaluate import evaluate_model, evaluation_batch_size
from riwae.models import ARCHITECTURES, VAE
from riwae.numeric import decoder_rows
from riwae.spec import model_specs, training_groups
from riwae.train import (
    TrainSettings,
    build_group,
    heldout_bounds,
)

ROOT = Path(__file__).resolve().parents[1]
MNIST = ROOT / "resources/mnist.npz"


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
    ``seconds`` in all (at least one call a block), after a warm-up: CUDA events on a GPU,
    the thread's CPU time elsewhere."""
    cuda = device.type == "cuda"
    clock = time.perf_counter if cuda else time.thread_time
    for _ in range(3):
        fn()
    if cuda:
        torch.cuda.synchronize(device)
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds / 5:
        fn()
        calls += 1
    if cuda:
        torch.cuda.synchronize(device)
    per_block = max(1, calls)
    blocks = []
    for _ in range(5):
        if cuda:
            begin, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            begin.record()
            for _ in range(per_block):
                fn()
            end.record()
            end.synchronize()
            blocks.append(begin.elapsed_time(end) / 1e3 / per_block)
        else:
            begin = clock()
            for _ in range(per_block):
                fn()
            blocks.append((clock() - begin) / per_block)
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
    gradient), at the current float32 matmul precision."""
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


def at_precision(precision: str, fn):
    """``fn()`` with float32 products at ``precision``, then the previous one back."""
    before = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision(precision)
    try:
        return fn()
    finally:
        torch.set_float32_matmul_precision(before)


def elementwise_bytes(arch_name: str, members: int, batch: int, k: int, parameters: int) -> int:
    """The least elementwise traffic of a step (see the module's docstring), in bytes."""
    arch = ARCHITECTURES[arch_name]
    logits = members * k * batch * arch.data_dim
    hidden = 0
    for rows, _, n_out, _ in layer_shapes(arch_name, batch, k):
        if n_out != arch.data_dim:  # every layer's output but the logits is activated
            hidden += members * rows * n_out
    return 4 * (3 * logits + 4 * hidden + 7 * parameters)


def bandwidth(device: torch.device, seconds: float) -> float:
    """Bytes per second of a large copy on ``device`` (read and write counted)."""
    source = torch.empty(2**26 if device.type == "cuda" else 2**23, device=device)
    target = torch.empty_like(source)
    return 2 * source.numel() * 4 / timed(lambda: target.copy_(source), seconds, device)


def training_images(count: int) -> np.ndarray:
    """The first ``count`` MNIST training images, or random ones where MNIST is not here
    (the steps cost the same; the denormal numbers of real training may not)."""
    if MNIST.exists():
        return np.load(MNIST)["train_images"][:count]
    generator = np.random.default_rng(0)
    return generator.integers(0, 256, (count, 784), dtype=np.uint8)


def step_timer(members: list[TrainSettings], device, cuda_graphs: int, images: np.ndarray):
    """A call making the group's next ``max(1, cuda_graphs)`` training steps, as
    ``train_group`` makes them (new epochs as the batches run out), and the set-up."""
    setup = build_group(members, images, images, device)
    runner = setup.steps(cuda_graphs)
    lr = members[0].lr
    calls = iter(())

    def call():
        nonlocal calls
        indices = next(calls, None)
        if indices is None or len(indices) != len(runner.index):  # the epoch's leftovers
            calls = runner.epoch_calls()
            indices = next(calls)
        runner.run(indices, lr)

    return call, len(runner.index), setup


def schedule_hours(durations: list[float], slots: int) -> float:
    """Wall hours of jobs placed on ``slots`` parallel slots, longest first."""
    finish = [0.0] * slots
    for duration in sorted(durations, reverse=True):
        heapq.heappush(finish, heapq.heappop(finish) + duration)
    return max(finish, default=0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--config", default="config/paper.yaml")
    parser.add_argument("--only", nargs="+", help="time only these groups (and no evaluation)")
    parser.add_argument("--cuda-graphs", type=int, default=0, help="also time N-step graphs")
    parser.add_argument("--compare-precision", help="also time the steps at this precision")
    parser.add_argument("--jobs-per-gpu", type=int, help="default: the config's")
    parser.add_argument("--sharing-slowdown", type=float, default=1.0)
    parser.add_argument("--csv", help="also write the table to this CSV file")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    cuda = device.type == "cuda"
    name = torch.cuda.get_device_name(device) if cuda else f"{cpu_name()}, {args.threads} thread"
    config = load_config(args.config)
    precision = config["matmul_precision"]
    set_matmul_precision(precision)
    reuse_freed_memory()  # as every job of the pipeline
    slots = (args.jobs_per_gpu or config["jobs_per_gpu"]) if cuda else 1
    images = training_images(max(s["train_images"] for s in config["training"].values()))
    print(
        f"# torch {torch.__version__}, {device} ({name}), groups of {args.config}, "
        f"matmul_precision {precision}, {'MNIST' if MNIST.exists() else 'random images'}"
    )
    specs = model_specs(config)
    settings = {spec.name: spec.settings for spec in specs}
    groups = training_groups(specs, config["training_groups"], device.type)
    per_second = bandwidth(device, args.seconds / 5)
    rows, jobs, floor_hours = [], [], 0.0
    # Groups that differ only in their members' seeds cost the same: timed once, one row.
    alike: dict[tuple, list[str]] = {}
    for group_name, names in groups.items():
        if args.only and group_name not in args.only:
            continue
        alike.setdefault(tuple(replace(settings[n], seed=0) for n in names), []).append(group_name)
    for members, group_names in alike.items():
        members, first = list(members), members[0]
        k = max(s.training_objective.draws for s in members)
        call, per_call, setup = step_timer(members, device, 0, images)
        row = {"case": f"train {group_names[0]} ({len(members)} model(s))"}
        if len(group_names) > 1:
            row["case"] += f" x {len(group_names)} seeds"
        step = timed(call, args.seconds, device)
        row["step ms"] = 1e3 * step
        if args.cuda_graphs:
            graph_call, per_call, _ = step_timer(members, device, args.cuda_graphs, images)
            row["graphs ms"] = 1e3 * timed(graph_call, args.seconds, device) / per_call
        if args.compare_precision:
            other = args.compare_precision
            row[f"{other} ms"] = 1e3 * at_precision(
                other, lambda call=call: timed(call, args.seconds, device)
            )
            if args.cuda_graphs:  # captured (in its first timed calls) at the other precision
                graph_call, per_call, _ = step_timer(members, device, args.cuda_graphs, images)
                row[f"graphs {other} ms"] = (
                    1e3
                    * at_precision(other, lambda c=graph_call: timed(c, args.seconds, device))
                    / per_call
                )
        shapes = layer_shapes(first.arch, first.batch_size, k)

        def floor(shapes=shapes, count=len(members)):  # noqa: B008 (bound per group)
            return gemm_floor(shapes, count, device, args.seconds, True)

        row["GEMM f32 ms"] = 1e3 * at_precision("highest", floor)
        row[f"GEMM {precision} ms"] = 1e3 * floor()
        if args.compare_precision:
            row[f"GEMM {args.compare_precision} ms"] = 1e3 * at_precision(
                args.compare_precision, floor
            )
        parameters = sum(p.numel() for p in setup.stack.parameters())
        traffic = elementwise_bytes(first.arch, len(members), first.batch_size, k, parameters)
        row["elementwise ms"] = 1e3 * traffic / per_second
        seeds = [s.seed + 2 for s in members]
        heldout = timed(
            lambda s=setup, seeds=seeds: heldout_bounds(s.stack, s.group, s.heldout_x, seeds),
            args.seconds / 5,
            device,
        )
        # At the config's precision: the eager steps or the graphs, whichever is faster.
        fastest = min(v for key, v in row.items() if key in ("step ms", "graphs ms"))
        epochs = len(first.learning_rates())
        steps = epochs * math.ceil(first.train_images / first.batch_size)
        hours = (steps * fastest / 1e3 + epochs * heldout) / 3600
        least = min(row["GEMM f32 ms"], row[f"GEMM {precision} ms"]) + row["elementwise ms"]
        row |= {
            "ratio": fastest / least,
            "held-out s": heldout,
            "steps": steps,
            "hours": hours * len(group_names),
        }
        rows.append(row)
        jobs += [hours] * len(group_names)
        floor_hours += len(group_names) * steps * least / 1e3 / 3600
    evaluation = config["evaluation"]
    ll_k, bound_k = evaluation["ll_k"], evaluation["bound_k"]
    batch = min(evaluation_batch_size(device, ll_k), evaluation["test_images"])
    draws = ll_k + sum(bound_k) + max(bound_k)  # the estimate, the bounds, the ELBO's draws
    test = BinarizedMNIST(images[:batch], device).fixed(seed=0)
    for arch in sorted({s.arch for s in settings.values()}) if not args.only else []:
        model = VAE(arch).initialise(torch.Generator().manual_seed(0)).to(device).eval()
        batch_seconds = timed(
            lambda m=model: evaluate_model(m, test, ll_k, bound_k, seed=0), args.seconds, device
        )
        # The forward GEMMs of one chunk of draws, scaled to the batch's draws.
        chunk_images = max(1, decoder_rows(device) // ll_k)
        chunk = layer_shapes(arch, chunk_images, ll_k)
        floor = gemm_floor(chunk, 1, device, args.seconds, backward=False)
        floor *= batch * draws / (chunk_images * ll_k)
        models = sum(s.arch == arch for s in settings.values())
        batches = math.ceil(evaluation["test_images"] / batch)
        hours = batches * batch_seconds / 3600
        rows.append(
            {
                "case": f"eval {arch} k {ll_k} ({batch} images a batch) x {models}",
                "step ms": 1e3 * batch_seconds,
                f"GEMM {precision} ms": 1e3 * floor,
                "ratio": batch_seconds / floor,
                "steps": batches,
                "hours": hours * models,
            }
        )
        jobs += [hours] * models
        floor_hours += models * batches * floor / 3600
    table = pd.DataFrame(rows)
    if args.csv:
        table.to_csv(args.csv, index=False)
    print(table.to_string(index=False, float_format=lambda v: f"{v:.3g}", na_rep=""))
    print(f"memory bandwidth {per_second / 1e9:.3g} GB/s")
    for count in sorted({1, slots}):
        slowdown = args.sharing_slowdown if count > 1 else 1.0
        hours = schedule_hours([job * slowdown for job in jobs], count)
        jobs_text = f"{count} job(s) at once" + (
            f", each {slowdown:.3g}x slower beside the others" if count > 1 else ""
        )
        print(
            f"{Path(args.config).name} projected: {hours:.3g} h on {name}, {jobs_text} "
            f"({hours:.2g}x the 1-hour goal; floor {floor_hours:.3g} h, one job at a time)"
        )


if __name__ == "__main__":
    main()
