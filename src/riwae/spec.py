"""The models of a run: what determines each one (``ModelSpec``), its name, which models
train together, and its model file.

A model's name is made from its spec's fields (``TrainSettings.base_name``, and the seed),
never parsed back: whatever needs a model's architecture, objective, k or estimator reads
its spec, or the columns the tables carry. What an architecture is (its layers, whether its
latent space is a plane) comes from ``riwae.models.Architecture``.
"""

import logging
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd
import torch

from riwae.io import DataError, load_torch, save_torch, write_csv
from riwae.models import VAE, Architecture, architecture
from riwae.train import TrainSettings

log = logging.getLogger("riwae")

# The fix for a model file that is not the model its job expects.
RETRAIN = "delete it and run snakemake again to retrain the model"


@dataclass(frozen=True)
class ModelSpec:
    """One trained model of a run: everything that determines it (``settings``: the
    architecture, the objective with its k and hyper-parameters, the estimator, the training
    seed and the architecture's training settings), and whether its seed is the first of the
    config's ``seeds`` (that model keeps the plain name, and every figure and check uses it)."""

    settings: TrainSettings
    first_seed: bool = True

    @property
    def base_name(self) -> str:
        """The model's name without its seed (``TrainSettings.base_name``)."""
        return self.settings.base_name

    @property
    def name(self) -> str:
        """``base_name``, and ``-seed<s>`` for the models of the other seeds."""
        suffix = "" if self.first_seed else f"-seed{self.settings.seed}"
        return self.base_name + suffix

    @property
    def architecture(self) -> Architecture:
        return architecture(self.settings.arch)

    def as_dict(self) -> dict:
        """Plain data (for Snakemake's params, which it compares as text)."""
        return {"first_seed": self.first_seed, **self.settings.as_dict()}

    @classmethod
    def of(cls, spec: "ModelSpec | dict") -> "ModelSpec":
        """A spec from ``as_dict``'s plain data (a spec is taken as it is)."""
        if isinstance(spec, ModelSpec):
            return spec
        settings = {key: value for key, value in spec.items() if key != "first_seed"}
        return cls(TrainSettings(**settings), spec.get("first_seed", True))


def model_specs(config: dict) -> list[ModelSpec]:
    """Every model to train: each entry of the config's ``models`` once per training seed of
    ``seeds``, with its architecture's ``training`` settings."""
    training = config["training"]
    return [
        ModelSpec(TrainSettings(**entry, **training[entry["arch"]], seed=seed), i == 0)
        for entry in config["models"]
        for i, seed in enumerate(config["seeds"])
    ]


def spec_table(specs) -> pd.DataFrame:
    """A row per model: its ``model`` name and its settings' columns, as the tables carry them."""
    specs = [ModelSpec.of(spec) for spec in specs]
    return pd.DataFrame([{"model": spec.name, **spec.settings.as_dict()} for spec in specs])


def training_groups(specs: list[ModelSpec], policy: str, device: str) -> dict[str, list[str]]:
    """Model names by training group.

    ``model``: every model alone; ``k``: models of one architecture and draws per image
    (k, or m x k for MIWAE and PIWAE); ``arch``: all models of one architecture, fewer draws
    padded to the most. Measured on a 2-core CPU (``benchmarks/throughput.py``), stacking
    gains nothing per model and padding costs up to 2.7x, while separate jobs use every
    core, so ``auto`` is ``model`` on the CPU. On a GPU a small step's cost is its kernel
    launches, which stacking shares, while padding k = 1 and 5 members to k = 50 doubles the
    matrix work of ``paper.yaml``'s groups, so ``auto`` is ``k`` with ``device: cuda``: every
    member computes only the draws it uses, and a model's seeds, which differ only in their
    draws, stack.

    Decided from the config alone (``device`` as the config names it, not the machine): the
    groups name the rules, and every machine that reads the workflow (a cluster's compute
    node too) must find the same ones. So ``device: auto`` groups as the CPU does.
    """
    if policy == "auto":
        policy = "k" if device == "cuda" else "model"
    keys = {
        "model": lambda spec: spec.name,
        "k": lambda spec: f"{spec.settings.arch}-k{spec.settings.training_objective.draws}",
        "arch": lambda spec: spec.settings.arch,
    }
    groups: dict[str, list[str]] = {}
    for spec in specs:
        groups.setdefault(keys[policy](spec), []).append(spec.name)
    return groups


def training_priorities(
    groups: dict[str, list[str]], specs: dict[str, ModelSpec]
) -> dict[str, int]:
    """Snakemake priorities (higher runs first, 1 to the number of groups) of the training
    groups (``training_groups``; ``specs`` by name): groups with a 2D model first, whose
    models most stages wait for (exact log p(x), the marginal q_IW, the objectives), then
    the longest, by draws over the epochs (each member's draws per image x training images
    x epochs), so that long jobs do not start last beside an idle core."""

    def order(group: str) -> tuple[bool, int]:
        members = [specs[name] for name in groups[group]]
        draws = sum(
            spec.settings.training_objective.draws
            * spec.settings.train_images
            * spec.settings.epochs
            for spec in members
        )
        return any(spec.architecture.is_2d for spec in members), draws

    ranked = sorted(groups, key=order)
    return {group: rank + 1 for rank, group in enumerate(ranked)}


def save_model(path: str | Path, model: VAE, settings: TrainSettings, device: torch.device):
    """A trained model with the settings it was trained with, which ``load_model`` checks.
    Plain content only (tensors, strings, numbers, dicts), so it loads with weights_only."""
    save_torch(
        path,
        {
            "arch": model.arch_name,
            "settings": settings.as_dict(),
            "device": str(device),
            "model": dict(model.state_dict()),
        },
    )


def save_group(paths: dict, members: list[TrainSettings], trained, histories, timing, device):
    """A trained group's files, at ``paths`` (the training rule's outputs: ``models``,
    ``histories``, ``timings``, in the members' order): each member's model and history, and
    the group's wall times per epoch beside each."""
    log.info("wall time per epoch:\n%s", timing.to_string(index=False))
    outputs = zip(paths["models"], paths["histories"], paths["timings"], strict=True)
    for (model_path, history_path, timing_path), settings, model, history in zip(
        outputs, members, trained, histories, strict=True
    ):
        log.info("%s history:\n%s", settings.name, history.to_string(index=False))
        write_csv(history_path, history)
        write_csv(timing_path, timing)
        save_model(model_path, model, settings, device)


def settings_difference(recorded: dict, expected: dict) -> str:
    """Where two settings dicts differ, in words: ``objective is vae (not iwae), k is 1
    (not 5)``."""
    keys = [f.name for f in fields(TrainSettings)]
    return ", ".join(
        f"{key} is {recorded.get(key)} (not {expected.get(key)})"
        for key in keys
        if recorded.get(key) != expected.get(key)
    )


def load_model(path: str | Path, spec: ModelSpec | dict, device: str | torch.device = "cpu") -> VAE:
    """The model in ``path``, after checking that it is the one ``spec`` names: the settings
    recorded in the file (architecture, objective and its hyper-parameters, k, estimator,
    seed, training settings) must be the spec's. Anything else (a file copied in from
    another model, one trained with other settings) raises ``DataError`` in one sentence."""
    spec = ModelSpec.of(spec)
    state = load_torch(path, device, fix=RETRAIN)
    expected = spec.settings.as_dict()
    recorded = state.get("settings")
    if recorded != expected:
        difference = (
            settings_difference(recorded, expected)
            if isinstance(recorded, dict)
            else "no settings are recorded"
        )
        raise DataError(
            f"{path} is not the model {spec.name} that its folder names: its {difference}; "
            f"{RETRAIN}."
        )
    model = VAE(state["arch"]).to(device)
    model.load_state_dict(state["model"])
    return model.eval()


def load_models(paths, specs, device: str | torch.device = "cpu") -> dict[ModelSpec, VAE]:
    """``load_model`` of each path with its spec, by spec, in order."""
    specs = [ModelSpec.of(spec) for spec in specs]
    return {spec: load_model(path, spec, device) for path, spec in zip(paths, specs, strict=True)}


def training_device(path: str | Path) -> str:
    """The device a model file was trained on (as recorded in it)."""
    return load_torch(path, fix=RETRAIN)["device"]
