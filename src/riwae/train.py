"""Training a VAE or an IWAE: Adam, a learning-rate schedule, dynamic binarisation,
per-epoch checkpoints that make an interrupted job resume to the same numbers."""

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pandas as pd
import torch
from tqdm import tqdm

from riwae.bounds import iwae_bound, log_weights, vae_bound
from riwae.data import BinarizedMNIST
from riwae.io import atomic_path, load_torch, save_torch
from riwae.models import VAE

OBJECTIVES = {"vae": vae_bound, "iwae": iwae_bound}


class TrainingError(RuntimeError):
    """Training cannot go on (e.g. a non-finite loss); the message says what to do."""


@dataclass(frozen=True)
class TrainSettings:
    arch: str
    objective: str  # vae | iwae
    k: int
    batch_size: int
    lr: float
    adam_eps: float
    schedule: str  # constant | burda
    epochs: int  # constant schedule: number of epochs
    stages: int  # burda schedule: stage i runs 3^(i-1) epochs at lr * 10^(-(i-1)/7)
    seed: int
    train_images: int  # the first n training images (60000: all)
    heldout_images: int  # test images for the per-epoch held-out bound

    def learning_rates(self) -> list[float]:
        """The learning rate of every epoch."""
        if self.schedule == "constant":
            return [self.lr] * self.epochs
        if self.schedule == "burda":
            return [
                self.lr * 10 ** (-stage / 7)
                for stage in range(self.stages)
                for _ in range(3**stage)
            ]
        raise ValueError(f"Unknown schedule {self.schedule!r}; use constant or burda.")

    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()


def resolve_device(device: str) -> torch.device:
    """``auto`` picks CUDA when present and the CPU otherwise."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cuda" and not torch.cuda.is_available():
        raise TrainingError(
            "device: cuda was asked for but no CUDA device is visible; set device: auto or cpu."
        )
    return torch.device(device)


def objective_bound(model: VAE, x: torch.Tensor, objective: str, k: int, generator):
    log_w, _, _ = log_weights(model.encoder, model.decoder, x, k, generator)
    return OBJECTIVES[objective](log_w)


@torch.no_grad()
def heldout_bound(
    model: VAE, x: torch.Tensor, objective: str, k: int, seed: int, batch_size: int = 500
) -> float:
    """The training objective on fixed held-out images, with a fixed seed."""
    generator = torch.Generator(device=x.device).manual_seed(seed)
    total = sum(
        float(objective_bound(model, batch, objective, k, generator).sum())
        for batch in x.split(batch_size)
    )
    return total / len(x)


def save_checkpoint(path: Path, **state) -> None:
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def train_model(
    settings: TrainSettings,
    train_images,
    heldout_images,
    device: torch.device,
    checkpoint_path: str | Path,
    stop_after_epochs: int | None = None,
    progress: bool = True,
) -> tuple[VAE, pd.DataFrame]:
    """Train one model; returns it with its history (one row per epoch).

    Resumes from ``checkpoint_path`` when it holds a checkpoint of the same settings, and
    writes one there after every epoch. ``stop_after_epochs`` ends early (as an interruption
    would), leaving the checkpoint for a later call to resume from.
    """
    checkpoint_path = Path(checkpoint_path)
    train_images = train_images[: settings.train_images]
    data = BinarizedMNIST(train_images, device)
    heldout = BinarizedMNIST(heldout_images[: settings.heldout_images], device).fixed(
        seed=settings.seed + 1
    )
    generator = torch.Generator(device=device).manual_seed(settings.seed)
    # Initialised on the CPU with a CPU generator, so every device starts from the same weights.
    mean_pixel = torch.as_tensor(train_images, dtype=torch.float32).mean(0) / 255
    model = VAE(settings.arch).initialise(torch.Generator().manual_seed(settings.seed), mean_pixel)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr, eps=settings.adam_eps)
    learning_rates = settings.learning_rates()
    rows: list[dict] = []

    if checkpoint_path.exists():
        state = torch.load(checkpoint_path, map_location=device, weights_only=False)
        if state["fingerprint"] == settings.fingerprint():
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            generator.set_state(state["generator"].cpu())  # generator states live on the CPU
            rows = state["history"]

    for epoch in range(len(rows), len(learning_rates)):
        if stop_after_epochs is not None and epoch >= stop_after_epochs:
            break
        for group in optimizer.param_groups:
            group["lr"] = learning_rates[epoch]
        start, total, count = time.perf_counter(), 0.0, 0
        batches = tqdm(
            data.batches(settings.batch_size, generator),
            total=math.ceil(len(data) / settings.batch_size),
            disable=not progress,
            desc=f"epoch {epoch + 1}/{len(learning_rates)}",
            mininterval=2,
        )
        for x in batches:
            bound = objective_bound(model, x, settings.objective, settings.k, generator).mean()
            value = bound.item()  # one device-to-host copy per step, for the check and the mean
            if not math.isfinite(value):
                last_good = (
                    f"the last good state is in {checkpoint_path} (end of epoch {epoch})"
                    if epoch
                    else "no epoch had finished yet"
                )
                raise TrainingError(
                    f"The training bound became {value} in epoch {epoch + 1}; {last_good}. "
                    f"Lower the learning rate or raise adam_eps, then run again."
                )
            optimizer.zero_grad(set_to_none=True)
            (-bound).backward()
            optimizer.step()
            total += value * len(x)
            count += len(x)
            batches.set_postfix(bound=f"{total / count:.2f}", refresh=False)
        seconds = time.perf_counter() - start
        rows.append(
            {
                "epoch": epoch + 1,
                "train_bound": total / count,
                "heldout_bound": heldout_bound(
                    model, heldout, settings.objective, settings.k, seed=settings.seed + 2
                ),
                "lr": learning_rates[epoch],
                "seconds": seconds,
            }
        )
        save_checkpoint(
            checkpoint_path,
            fingerprint=settings.fingerprint(),
            model=model.state_dict(),
            optimizer=optimizer.state_dict(),
            generator=generator.get_state(),
            history=rows,
        )
    return model, pd.DataFrame(rows)


def save_model(path: str | Path, model: VAE, settings: TrainSettings, device: torch.device):
    # Plain content only (tensors, strings, numbers, dicts), so it loads with weights_only.
    save_torch(
        path,
        {
            "arch": model.arch_name,
            "settings": asdict(settings),
            "device": str(device),
            "model": dict(model.state_dict()),
        },
    )


def load_model(path: str | Path, device: str | torch.device = "cpu") -> tuple[VAE, dict]:
    state = load_torch(path, device, fix="delete it and run snakemake again to retrain the model")
    model = VAE(state["arch"]).to(device)
    model.load_state_dict(state["model"])
    return model.eval(), state
