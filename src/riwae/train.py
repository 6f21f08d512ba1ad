"""Training VAEs and IWAEs in groups: models whose networks have the same shapes train as
one stacked network (``StackedVAE``), one forward, backward and Adam step for all of them,
each with its own objective, k, seed, data order and binarisation draws. A group trains to
the same numbers as its members trained apart; a group of one is the single-model case.

Inside an epoch nothing waits for the host: the bounds are summed on the device and checked
for finiteness at the epoch's end, where the epoch's checkpoint is written. An interrupted
job resumes from that checkpoint to the same numbers."""

import hashlib
import json
import logging
import math
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from riwae.bounds import Members, Objective
from riwae.data import BinarizedMNIST
from riwae.io import DataError, UserError, load_torch, save_torch, set_aside
from riwae.models import VAE, StackedVAE
from riwae.optim import make_optimizer, set_learning_rate

log = logging.getLogger("riwae")


class TrainingError(UserError):
    """Training cannot go on (e.g. a non-finite loss); the message says what to do."""


@dataclass(frozen=True)
class TrainSettings:
    arch: str
    objective: str  # vae | iwae | miwae | ciwae | piwae (riwae.bounds.Objective)
    k: int  # draws per IWAE bound: all draws per image but for miwae and piwae (m x k)
    batch_size: int
    lr: float
    adam_eps: float
    schedule: str  # constant | burda | burda-code
    epochs: int  # constant schedule: number of epochs
    stages: int  # burda schedule: stage i runs 3^(i-1) epochs at lr * 10^(-(i-1)/7)
    seed: int
    train_images: int  # the first n training images (60000: all)
    heldout_images: int  # test images for the per-epoch held-out bound
    estimator: str = "reparam"  # the encoder's gradient: reparam | stl | dreg
    optimizer: str = "adam"  # adam (torch's) | burda (Burda et al.'s code, riwae.optim)
    binarisation: str = "dynamic"  # dynamic (fresh pixels every batch) | fixed (drawn once)
    # The objective's hyper-parameters, None where it has none: a VAE's or an IWAE's settings
    # (``as_dict``), name and fingerprint are those they were before these existed.
    m: int | None = None  # miwae, piwae: IWAE bounds of k draws each
    beta: float | None = None  # ciwae: the weight of the k-sample ELBO

    def __post_init__(self):
        if self.beta is not None:  # one model, one fingerprint: beta 0 and 0.0 alike
            object.__setattr__(self, "beta", float(self.beta))

    @property
    def training_objective(self) -> Objective:
        """The objective with its k and hyper-parameters (a ValueError if they do not fit)."""
        return Objective(self.objective, self.k, self.m, self.beta)

    def as_dict(self) -> dict:
        """The settings as plain data, without the hyper-parameters the objective lacks."""
        return {
            key: value
            for key, value in asdict(self).items()
            if value is not None or key not in ("m", "beta")
        }

    @property
    def base_name(self) -> str:
        """``<arch>-<objective>-k<k>``, with the objective's hyper-parameters before k
        (``-b<beta>`` for ciwae, ``-m<m>`` for miwae and piwae) and ``-<estimator>`` when it is
        not the plain one: ``burda1-iwae-k50``, ``burda1-miwae-m8-k8-dreg``,
        ``burda1-ciwae-b0.05-k64``. beta is written in positional notation, as short as its
        value allows (0.00001, not 1e-05), so names hold only letters, digits, '.' and '-'.
        Made from the fields, never parsed back (``riwae.spec.ModelSpec`` adds the seed)."""
        parts = [self.arch, self.objective]
        if self.beta is not None:
            parts.append("b" + np.format_float_positional(self.beta, trim="-"))
        if self.m is not None:
            parts.append(f"m{self.m}")
        parts.append(f"k{self.k}")
        if self.estimator != "reparam":
            parts.append(self.estimator)
        return "-".join(parts)

    @property
    def name(self) -> str:
        """The model and its training seed, for messages."""
        return f"{self.base_name} (seed {self.seed})"

    def learning_rates(self) -> list[float]:
        """The learning rate of every epoch."""
        if self.schedule == "constant":
            return [self.lr] * self.epochs
        if self.schedule in ("burda", "burda-code"):
            return [self.stage_lr(stage) for stage in range(self.stages) for _ in range(3**stage)]
        raise ValueError(f"Unknown schedule {self.schedule!r}; use constant, burda or burda-code.")

    def stage_lr(self, stage: int) -> float:
        """Stage ``stage + 1``'s rate: lr * 10^(-stage/7) as in Burda et al.'s paper, or with
        their code's rounding (``burda-code``: 1e-4 * round(10^(1 - stage/7), 1) at lr 1e-3)."""
        if self.schedule == "burda-code":
            return self.lr / 10 * round(10 ** (1 - stage / 7), 1)
        return self.lr * 10 ** (-stage / 7)

    def shared(self) -> "TrainSettings":
        """What members of one group must share: all but the objective (with k and its
        hyper-parameters), seed and estimator."""
        return replace(self, objective="", k=0, seed=0, estimator="", m=None, beta=None)

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.as_dict(), sort_keys=True).encode()).hexdigest()


class Group:
    """The members of a group and their stacked bounds."""

    def __init__(self, members: list[TrainSettings], device: torch.device):
        self.members = members
        self.objectives = Members(
            [s.training_objective for s in members], [s.estimator for s in members], device
        )

    def bounds(self, stack: StackedVAE, x: torch.Tensor, generators):
        """Each member's objective per image, from its own draws (m x k for MIWAE and
        PIWAE, else k) from its own generator, and the surrogate whose gradient is its
        estimator's (see ``riwae.bounds.bounds_and_surrogate``).

        ``x``: ``[M, batch, pixels]``; returns two ``[M, batch]`` tensors. Members with
        fewer draws than the most get zero noise for the padding draws, which the bounds
        leave out."""
        counts, most = self.objectives.draws, self.objectives.max_draws
        shape = (x.shape[1], stack.latent_dim)
        draws = [
            torch.randn((count, *shape), generator=g, device=x.device, dtype=x.dtype)
            for count, g in zip(counts, generators, strict=True)
        ]
        if self.objectives.padded:
            draws = [torch.cat([d, d.new_zeros((most - len(d), *shape))]) for d in draws]
        eps = draws[0][None] if len(draws) == 1 else torch.stack(draws)
        return stack.bounds(x, eps, self.objectives)


def check_group(members: list[TrainSettings]) -> None:
    if not members:
        raise ValueError("A group needs at least one model.")
    shared = {s.shared() for s in members}
    if len(shared) != 1:
        raise ValueError(
            "Models of one group must share architecture and training settings; "
            f"got {', '.join(s.name for s in members)} with different ones."
        )


def training_step(stack: StackedVAE, group: Group, optimizer, x, generators) -> torch.Tensor:
    """One step for every member: its bound on its batch (``x``: ``[M, batch, pixels]``),
    backward, Adam. Returns the bounds ``[M, batch]``, detached, on the device."""
    bound, surrogate = group.bounds(stack, x, generators)
    optimizer.zero_grad(set_to_none=True)
    (-surrogate.mean(1).sum()).backward()
    optimizer.step()
    return bound.detach()


# Held-out images per forward pass of the per-epoch held-out bound.
HELDOUT_BATCH = 500


@torch.no_grad()
def heldout_bounds(
    stack: StackedVAE,
    group: Group,
    x: torch.Tensor,
    seeds: list[int],
    batch_size: int = HELDOUT_BATCH,
) -> torch.Tensor:
    """Each member's objective on its fixed held-out images (``[M, n, pixels]``), with a
    fixed seed per member. Shape ``[M]``, on the device."""
    generators = [torch.Generator(device=x.device).manual_seed(s) for s in seeds]
    total = sum(
        group.bounds(stack, batch, generators)[0].sum(1) for batch in x.split(batch_size, dim=1)
    )
    return total / x.shape[1]


def load_checkpoint(path: Path, fingerprint: str) -> dict | None:
    """The checkpoint at ``path`` when it belongs to this group, on the CPU (``resume`` puts
    it in place). A damaged one (truncated, altered, or not plain data) is set aside and
    training starts from scratch."""
    if not path.exists():
        return None
    try:
        state = load_torch(path, "cpu", fix="training sets it aside and starts from scratch")
    except DataError as error:
        log.warning("%s (set aside as %s)", error, set_aside(path))
        return None
    if state.get("fingerprint") != fingerprint:
        log.info("checkpoint %s is of other settings; starting from scratch", path)
        return None
    return state


def resume(state: dict, stack: StackedVAE, optimizer, generators) -> tuple[list, list]:
    """Put a checkpoint (loaded on the CPU) in place; returns its histories and timing.

    ``load_state_dict`` copies the weights and Adam's moments to the parameters' device and
    leaves the step counters on the CPU, where a step reads them without waiting for the
    device (loaded onto the GPU, they would make every step wait)."""
    stack.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    for generator, saved in zip(generators, state["generators"], strict=True):
        generator.set_state(saved)  # generator states live on the CPU
    return state["histories"], state["timing"]


def group_fingerprint(members: list[TrainSettings]) -> str:
    """What a checkpoint must have been written for to be resumed."""
    return hashlib.sha256("".join(s.fingerprint() for s in members).encode()).hexdigest()


def member_batches(data: BinarizedMNIST, members, generators, fixed):
    """One epoch's minibatches of every member, ``[M, batch, pixels]``: each member's own
    order and binarisation draws from its own generator (or slices of its ``fixed``
    pixels), indexed and binarised on the data's device."""
    batches = zip(
        *(
            data.batches(members[0].batch_size, g, fixed=f)
            for g, f in zip(generators, fixed, strict=True)
        ),
        strict=True,
    )
    for xs in batches:
        yield xs[0][None] if len(xs) == 1 else torch.stack(xs)


class TrainingSteps:
    """A group's training steps, ``steps_per_call`` at a time, on static buffers: the
    minibatch indices of the next steps are copied into one buffer, and each step reads its
    members' images through it (binarised there by each member's generator), draws, steps
    the optimizer and adds the bounds to ``total``. So the steps hold no tensor from outside
    but the buffer, and on CUDA, with ``graphs``, they are captured once per learning rate
    as one CUDA graph and replayed (``torch.cuda.graph``, every member's generator
    registered with it). Without ``graphs`` the same steps run eagerly: the same
    operations in the same order, each member's generator consumed as ``member_batches``
    and ``training_step`` consume it."""

    def __init__(self, stack, group, optimizer, data, generators, fixed, steps_per_call, graphs):
        self.stack, self.group, self.optimizer = stack, group, optimizer
        self.data, self.generators, self.fixed = data, generators, fixed
        self.batch_size = group.members[0].batch_size
        members, device = len(group.members), data.device
        self.index = torch.zeros(
            (steps_per_call, members, self.batch_size), dtype=torch.long, device=device
        )
        self.total = torch.zeros(members, device=device)
        self.graphs = graphs and device.type == "cuda"
        self.warm = False  # whether steps ran before a capture
        self.graph, self.graph_lr = None, None  # the graph, captured at learning rate graph_lr

    def step(self, index: torch.Tensor) -> None:
        """One step on the minibatches ``index`` ``[M, batch]`` (rows of the images)."""
        xs = [
            self.data.binarize(self.data.pixels[i], g) if f is None else f[i].float()
            for i, g, f in zip(index, self.generators, self.fixed, strict=True)
        ]
        x = xs[0][None] if len(xs) == 1 else torch.stack(xs)
        bound = training_step(self.stack, self.group, self.optimizer, x, self.generators)
        self.total += bound.sum(1)  # stays on the device: no wait for the host

    def steps(self) -> None:
        for index in self.index:
            self.step(index)

    def epoch_calls(self):
        """One epoch's minibatch indices, ``[steps_per_call, M, batch]`` a call: each
        member's order from its generator (drawn as ``BinarizedMNIST.batches`` draws it),
        then, one step a call, the steps left over (a short last minibatch among them)."""
        data, batch, per_call = self.data, self.batch_size, len(self.index)
        order = torch.stack(
            [torch.randperm(len(data), generator=g, device=data.device) for g in self.generators]
        )
        count = len(data) // batch // per_call
        whole = count * per_call * batch
        calls = order[:, :whole].view(len(order), count, per_call, batch).transpose(0, 1)
        yield from calls.transpose(1, 2)
        for start in range(whole, len(data), batch):
            yield order[None, :, start : start + batch]

    def run(self, indices: torch.Tensor, lr: float) -> None:
        """The steps of ``indices`` ``[steps, M, batch]`` at learning rate ``lr``: through
        the buffer (and the graph) when they fill it, else one by one, eagerly."""
        if indices.shape != self.index.shape:
            for index in indices:
                self.step(index)
            return
        self.index.copy_(indices)
        if not self.graphs:
            self.steps()
        elif not self.warm:
            # The first steps run eagerly on a side stream: they create the optimizer's
            # state and every kernel's workspace before anything is captured.
            side = torch.cuda.Stream()
            side.wait_stream(torch.cuda.current_stream())
            with torch.cuda.stream(side):
                self.steps()
            torch.cuda.current_stream().wait_stream(side)
            self.warm = True
        else:
            if self.graph_lr != lr:
                self._capture(lr)
            self.graph.replay()

    def _capture(self, lr: float) -> None:
        """Capture the steps at ``lr`` (the optimizers read it as a number, which the graph
        keeps): once per learning rate. Capture records without computing, and a replay
        advances each generator as the eager steps would."""
        self.graph = None
        torch.cuda.synchronize()
        graph = torch.cuda.CUDAGraph()
        for generator in self.generators:  # each draw of a replay advances its generator
            graph.register_generator_state(generator)
        with torch.cuda.graph(graph):
            self.steps()
        self.graph, self.graph_lr = graph, lr


@dataclass
class GroupSetup:
    """What training a group starts from: its data on the device, each member's held-out
    images, fixed pixels (or None) and generator, the stacked network and the optimizer."""

    data: BinarizedMNIST
    heldout_x: torch.Tensor
    fixed: list
    generators: list[torch.Generator]
    stack: StackedVAE
    group: Group
    optimizer: torch.optim.Optimizer

    def steps(self, cuda_graphs: int = 0) -> "TrainingSteps":
        """The training steps, ``cuda_graphs`` at a time as one CUDA graph (0: eagerly)."""
        return TrainingSteps(
            self.stack,
            self.group,
            self.optimizer,
            self.data,
            self.generators,
            self.fixed,
            max(1, cuda_graphs),
            cuda_graphs > 0,
        )


def build_group(members: list[TrainSettings], train_images, heldout_images, device) -> GroupSetup:
    first = members[0]
    train_images = train_images[: first.train_images]
    data = BinarizedMNIST(train_images, device)
    heldout = BinarizedMNIST(heldout_images[: first.heldout_images], device)
    heldout_x = torch.stack([heldout.fixed(seed=s.seed + 1) for s in members])
    # Fixed binarisation: each member's training pixels drawn once, from its own seed.
    fixed = [
        data.fixed(seed=s.seed + 3).bool() if s.binarisation == "fixed" else None for s in members
    ]
    generators = [torch.Generator(device=device).manual_seed(s.seed) for s in members]
    # Initialised on the CPU with a CPU generator, so every device starts from the same weights.
    mean_pixel = torch.as_tensor(train_images, dtype=torch.float32).mean(0) / 255
    stack = StackedVAE(
        [VAE(s.arch).initialise(torch.Generator().manual_seed(s.seed), mean_pixel) for s in members]
    ).to(device)
    group = Group(members, device)
    optimizer = make_optimizer(first.optimizer, stack.parameters(), first.lr, first.adam_eps)
    return GroupSetup(data, heldout_x, fixed, generators, stack, group, optimizer)


def checkpoint_due(
    epoch: int, learning_rates: list[float], since_last: float, checkpoint_seconds: float
) -> bool:
    """Whether the end of epoch ``epoch`` (0-based) writes a checkpoint: at the end of every
    learning-rate stage (the last epoch included), and otherwise once ``checkpoint_seconds``
    have passed since the last one (0: every epoch)."""
    if epoch + 1 == len(learning_rates) or learning_rates[epoch + 1] != learning_rates[epoch]:
        return True
    return since_last >= checkpoint_seconds


def train_group(
    members: list[TrainSettings],
    train_images,
    heldout_images,
    device: torch.device,
    checkpoint_path: str | Path,
    stop_after_epochs: int | None = None,
    progress: bool = True,
    checkpoint_seconds: float = 0.0,
    cuda_graphs: int = 0,
) -> tuple[list[VAE], list[pd.DataFrame], pd.DataFrame]:
    """Train a group of models; returns them, their histories (one row per epoch) and the
    group's wall time per epoch.

    Resumes from ``checkpoint_path`` when it holds a checkpoint of the same group, and writes
    one there at the end of every learning-rate stage and of any epoch that ends
    ``checkpoint_seconds`` or more after the last one (0: every epoch). ``stop_after_epochs``
    ends early (as an interruption would), leaving the last checkpoint for a later call to
    resume from. ``cuda_graphs``: on CUDA, capture that many steps as one CUDA graph and
    replay it (0: eager steps; see ``TrainingSteps``).
    """
    check_group(members)
    log.info("training %s together on %s", ", ".join(s.name for s in members), device)
    for member in members:
        log.info("%s: %s", member.name, member)
    first = members[0]
    checkpoint_path = Path(checkpoint_path)
    fingerprint = group_fingerprint(members)
    setup = build_group(members, train_images, heldout_images, device)
    data, heldout_x, generators = setup.data, setup.heldout_x, setup.generators
    stack, group, optimizer = setup.stack, setup.group, setup.optimizer
    learning_rates = first.learning_rates()
    histories: list[list[dict]] = [[] for _ in members]
    timing: list[dict] = []

    state = load_checkpoint(checkpoint_path, fingerprint)
    if state is not None:
        histories, timing = resume(state, stack, optimizer, generators)
        log.info(
            "resumed from epoch %d of %d (%s)", len(timing), len(learning_rates), checkpoint_path
        )
    saved_epoch, saved_at = len(timing), time.perf_counter()

    runner = setup.steps(cuda_graphs)
    steps = math.ceil(len(data) / first.batch_size)
    for epoch in range(len(timing), len(learning_rates)):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            break
        lr = learning_rates[epoch]
        set_learning_rate(optimizer, lr)
        start = time.perf_counter()
        runner.total.zero_()
        with tqdm(
            total=steps,
            disable=not progress,
            desc=f"epoch {epoch + 1}/{len(learning_rates)}",
            mininterval=2,
        ) as bar:
            for indices in runner.epoch_calls():
                runner.run(indices, lr)
                bar.update(len(indices))
        train_bound = (runner.total / len(data)).tolist()  # the epoch's one wait for the host
        for settings, value in zip(members, train_bound, strict=True):
            if not math.isfinite(value):
                last_good = (
                    f"the last good state is in {checkpoint_path} (end of epoch {saved_epoch})"
                    if saved_epoch
                    else "no epoch had finished yet"
                )
                raise TrainingError(
                    f"The training bound of {settings.name} became {value} in epoch "
                    f"{epoch + 1}; {last_good}. Lower the learning rate or raise adam_eps, "
                    f"then run again."
                )
        held = heldout_bounds(stack, group, heldout_x, [s.seed + 2 for s in members]).tolist()
        for rows, train_value, held_value in zip(histories, train_bound, held, strict=True):
            rows.append(
                {
                    "epoch": epoch + 1,
                    "train_bound": train_value,
                    "heldout_bound": held_value,
                    "lr": lr,
                }
            )
        timing.append({"epoch": epoch + 1, "seconds": time.perf_counter() - start})
        since = time.perf_counter() - saved_at
        if checkpoint_due(epoch, learning_rates, since, checkpoint_seconds):
            save_torch(
                checkpoint_path,
                {
                    "fingerprint": fingerprint,
                    "model": dict(stack.state_dict()),
                    "optimizer": optimizer.state_dict(),
                    "generators": [g.get_state() for g in generators],
                    "histories": histories,
                    "timing": timing,
                },
            )
            saved_epoch, saved_at = epoch + 1, time.perf_counter()
    models = [stack.member(m).eval() for m in range(len(members))]
    timing_frame = pd.DataFrame(timing, columns=["epoch", "seconds"]).assign(
        models_in_group=len(members)
    )
    return models, [pd.DataFrame(rows) for rows in histories], timing_frame
