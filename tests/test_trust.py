"""Files are data, never code; damaged files and bad values stop with one sentence; a run
stays in its folder; identical runs give identical artifacts."""

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from conftest import ROOT, SNAKEMAKE, copy_workflow, snakemake
from riwae.config import (
    ConfigError,
    check_config_files,
    check_values,
    configfile_arguments,
    load_config,
    merge,
)
from riwae.data import load_mnist
from riwae.io import (
    DataError,
    delete_artifact,
    load_torch,
    read_npz,
    recorded_sha256_path,
    save_torch,
    set_aside,
    sha256_file,
    write_npz,
)
from riwae.models import VAE
from riwae.plots import save_figure
from riwae.provenance import is_timing
from riwae.spec import ModelSpec, load_model, save_model

SMOKE = "results/smoke"


class Payload:
    """Unpickling this runs a shell command that creates ``marker``."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def plant(path: Path, marker: Path, forge_hash: bool) -> None:
    """A torch file whose pickle would run code, as a hostile or careless hand could leave
    it in a run folder; with ``forge_hash`` its recorded SHA-256 matches too."""
    torch.save({"model": Payload(marker), "device": "cpu"}, path)
    if forge_hash:
        recorded_sha256_path(path).write_text(f"{sha256_file(path)}  {path.name}\n")


def one_sentence(message: str, *parts: str) -> bool:
    return "\n" not in message and message.endswith(".") and all(p in message for p in parts)


def damage(path: Path, how: str) -> None:
    """Damage a file in place, keeping its modification time (so Snakemake sees no change)."""
    stat = path.stat()
    data = bytearray(path.read_bytes())
    if how == "truncated":
        data = data[: len(data) // 2]
    elif how == "emptied":
        data = bytearray()
    elif how == "flipped":
        data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))
    os.utime(path, (stat.st_atime, stat.st_mtime))


def smoke_config() -> dict:
    """The smoke run's config as the pipeline sees it (config/config.yaml under it)."""
    return load_config("config/smoke.yaml", root=ROOT)


# Torch files -------------------------------------------------------------------------------


def test_save_torch_writes_the_same_bytes_and_records_their_hash(tmp_path):
    state = {"weights": torch.arange(6.0).reshape(2, 3), "name": "m", "epochs": [1, 2.5]}
    save_torch(tmp_path / "a" / "model.pt", state)
    save_torch(tmp_path / "b" / "model.pt", state)
    first = (tmp_path / "a" / "model.pt").read_bytes()
    assert first == (tmp_path / "b" / "model.pt").read_bytes()
    assert b".model" not in first and str(tmp_path).encode() not in first  # no temporary name
    record = (tmp_path / "a" / "model.pt.sha256").read_text()
    assert record == f"{sha256_file(tmp_path / 'a' / 'model.pt')}  model.pt\n"
    loaded = load_torch(tmp_path / "a" / "model.pt")
    assert torch.equal(loaded["weights"], state["weights"]) and loaded["epochs"] == [1, 2.5]
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == ["model.pt", "model.pt.sha256"]


@pytest.mark.parametrize("how", ["missing", "emptied", "truncated", "flipped", "no hash"])
def test_damaged_torch_file_stops_with_one_sentence(tmp_path, how):
    path = tmp_path / "checkpoint.pt"
    save_torch(path, {"weights": torch.randn(50, 50)})
    if how == "missing":
        delete_artifact(path)
    elif how == "no hash":
        recorded_sha256_path(path).unlink()
    else:
        damage(path, how)
    with pytest.raises(DataError) as error:
        load_torch(path, fix="rerun `snakemake --forcerun train`")
    assert one_sentence(str(error.value), str(path), "; rerun `snakemake --forcerun train`.")


@pytest.mark.parametrize("name", ["model.pt", "checkpoint.pt"])
@pytest.mark.parametrize("forge_hash", [False, True])
def test_planted_pickle_is_never_run(tmp_path, name, forge_hash):
    path, marker = tmp_path / name, tmp_path / "code-ran"
    plant(path, marker, forge_hash)
    with pytest.raises(DataError) as error:
        load_torch(path)
    assert one_sentence(str(error.value), str(path))
    assert not marker.exists()
    # The plant is live: loading it the old way runs the command.
    torch.load(path, weights_only=False)
    assert marker.exists()


def test_planted_model_file_is_refused_by_load_model(tmp_path):
    from test_train import settings

    path, marker = tmp_path / "model.pt", tmp_path / "code-ran"
    plant(path, marker, forge_hash=True)
    with pytest.raises(DataError) as error:
        load_model(path, ModelSpec(settings()))
    assert one_sentence(str(error.value), str(path), "retrain the model")
    assert not marker.exists()


def test_planted_checkpoint_is_set_aside_and_training_starts_afresh(tmp_path, caplog):
    """A checkpoint whose pickle would run code, even with a forged hash, is never run:
    training says so in the log, sets it aside and trains from scratch."""
    from test_train import settings, synthetic_images, train_model

    images = synthetic_images(300)
    path, marker = tmp_path / "checkpoint.pt", tmp_path / "code-ran"
    plant(path, marker, forge_hash=True)
    torch.set_default_dtype(torch.float32)  # training runs in float32, as in the pipeline
    try:
        with caplog.at_level("INFO", logger="riwae"):
            _, history = train_model(
                settings(epochs=1, train_images=200),
                images,
                images[200:],
                torch.device("cpu"),
                path,
                progress=False,
            )
    finally:
        torch.set_default_dtype(torch.float64)
    assert not marker.exists()
    assert list(history.epoch) == [1]
    assert (tmp_path / "checkpoint.pt.damaged").exists()
    assert str(path) in caplog.text and "sets it aside and starts from scratch" in caplog.text


def test_saved_model_is_plain_data_and_loads_back(tmp_path):
    from test_train import settings

    model, spec = VAE("cremer2d"), ModelSpec(settings(arch="cremer2d"))
    save_model(tmp_path / "model.pt", model, spec.settings, torch.device("cpu"))
    state = torch.load(tmp_path / "model.pt", weights_only=True)  # no code needed to read it
    assert state["settings"]["k"] == 5 and state["device"] == "cpu"
    loaded = load_model(tmp_path / "model.pt", spec)
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor)


@pytest.mark.parametrize(
    ("changes", "difference"),
    [
        (dict(objective="vae", k=1), "its objective is vae (not iwae), k is 1 (not 5)"),
        (dict(seed=1), "its seed is 1 (not 0)"),
        (dict(lr=1e-4), "its lr is 0.0001 (not 0.001)"),
    ],
)
def test_a_model_file_of_another_model_is_refused_in_one_sentence(tmp_path, changes, difference):
    """The settings recorded in model.pt must be those of the spec that loads it, whatever
    the file's name and its recorded hash say."""
    from test_train import settings

    path = tmp_path / "cremer2d-iwae-k5" / "model.pt"
    other = settings(arch="cremer2d", **changes)
    save_model(path, VAE("cremer2d"), other, torch.device("cpu"))  # with its own record
    with pytest.raises(DataError) as error:
        load_model(path, ModelSpec(settings(arch="cremer2d")))
    assert one_sentence(
        str(error.value),
        f"{path} is not the model cremer2d-iwae-k5 that its folder names: {difference}",
        "; delete it and run snakemake again to retrain the model.",
    )


def test_set_aside_moves_the_file_and_its_hash(tmp_path):
    path = tmp_path / "checkpoint.pt"
    save_torch(path, {"epoch": 3})
    aside = set_aside(path)
    assert not path.exists() and not recorded_sha256_path(path).exists()
    assert load_torch(aside) == {"epoch": 3}


# Every artifact, whatever its format ---------------------------------------------------------


def written_artifacts(folder: Path) -> dict:
    """One artifact of each format the pipeline writes, by path, and how to read it back."""
    import pandas as pd

    from riwae.io import (
        read_csv,
        read_json,
        read_npz,
        read_npz_list,
        read_text,
        write_csv,
        write_json,
        write_npz_list,
        write_text,
    )

    files = {
        folder / "eval.json": (write_json, {"model": "m", "log_likelihood": -90.5}, read_json),
        folder / "history.csv": (write_csv, pd.DataFrame({"epoch": [1, 2]}), read_csv),
        folder / "table.md": (write_text, "| a |\n|---|\n| 1 |\n", read_text),
        folder / "arrays.npz": (write_npz, {"a": np.arange(5.0)}, read_npz),
        folder / "digits.npz": (write_npz_list, [{"a": np.ones(3)}], read_npz_list),
        folder / "model.pt": (save_torch, {"weights": torch.ones(3)}, load_torch),
    }
    for path, (write, content, _) in files.items():
        write(path, content)
    return {path: read for path, (_, _, read) in files.items()}


def test_every_format_is_written_with_its_hash_and_read_back_only_as_written(tmp_path):
    import pandas as pd

    readers = written_artifacts(tmp_path)
    for path, read in readers.items():
        assert recorded_sha256_path(path).read_text() == f"{sha256_file(path)}  {path.name}\n"
        read(path)  # as written: read back
    # A hand edit that keeps the format valid: a number in a history and in an evaluation.
    history = tmp_path / "history.csv"
    history.write_text(history.read_text().replace("2", "3"))
    evaluation = tmp_path / "eval.json"
    evaluation.write_text(evaluation.read_text().replace("-90.5", "-42"))
    damage(tmp_path / "arrays.npz", "flipped")
    damage(tmp_path / "model.pt", "truncated")
    damage(tmp_path / "digits.npz", "emptied")
    recorded_sha256_path(tmp_path / "table.md").unlink()
    for path, read in readers.items():
        with pytest.raises(DataError) as error:
            read(path)
        message = str(error.value)
        assert one_sentence(message, str(path), "delete it and run snakemake again"), message
    assert isinstance(pd.read_csv(history), pd.DataFrame)  # the edit itself reads fine


def test_a_file_with_its_record_rewritten_that_does_not_parse_is_one_sentence(tmp_path):
    """Bytes that match their record but do not parse (a record rewritten by hand after a
    truncation): named with the file and the fix, never a parser's traceback."""
    from riwae.io import read_csv, read_json, write_artifact

    for name, read, kind in (("eval.json", read_json, "JSON"), ("history.csv", read_csv, "CSV")):
        path = tmp_path / name
        write_artifact(path, b'{"model": "m", "log_lik' if kind == "JSON" else b"")
        with pytest.raises(DataError) as error:
            read(path)
        assert one_sentence(str(error.value), f"{path} cannot be read as {kind}", "delete it")


def test_the_manifest_the_notebook_and_the_report_refuse_an_edited_artifact(tmp_path):
    """None of them takes a file changed since the pipeline wrote it, before any work."""
    from snakemake.exceptions import WorkflowError

    from riwae import stages
    from riwae.io import write_json
    from riwae.provenance import build_manifest

    readers = written_artifacts(tmp_path / "results/x")
    edited = tmp_path / "results/x/history.csv"
    edited.write_text("epoch\n1\n7\n")
    with pytest.raises(DataError, match=f"{edited} has SHA-256 .* so it is damaged or was changed"):
        build_manifest({"run": "x"}, tmp_path / "results/x", edited, [], list(readers))
    manifest = tmp_path / "results/x/manifest.json"
    write_json(manifest, {"artifacts": {str(path): "" for path in readers}})
    log = tmp_path / "stage.log"
    runs = {
        "notebook": dict(notebook="none.ipynb", manifest=manifest, html=tmp_path / "n.html"),
        "html_report": dict(
            report=tmp_path / "results/x/report.html",
            resolved_config=manifest,
            artifacts=list(readers),
            snakefile="none",
        ),
    }
    for name, arguments in runs.items():
        with pytest.raises(WorkflowError) as error:
            getattr(stages, name)(**arguments, log_file=log)
        assert one_sentence(str(error.value), str(edited), "was changed; delete it"), name
        assert not (tmp_path / "n.html").exists()
        assert not (tmp_path / "results/x/report.html").exists()


# Arrays and figures ------------------------------------------------------------------------


def test_npz_files_hold_no_time_of_writing(tmp_path):
    arrays = {"a": np.arange(12.0).reshape(3, 4), "d0/labels": np.array([1, 2], np.uint8)}
    write_npz(tmp_path / "one.npz", arrays)
    write_npz(tmp_path / "two.npz", arrays)
    assert (tmp_path / "one.npz").read_bytes() == (tmp_path / "two.npz").read_bytes()
    with zipfile.ZipFile(tmp_path / "one.npz") as archive:
        assert {member.date_time for member in archive.infolist()} == {(1980, 1, 1, 0, 0, 0)}
    with np.load(tmp_path / "one.npz") as stored:  # readable by plain numpy
        assert stored.files == ["a", "d0/labels"] and np.array_equal(stored["a"], arrays["a"])


@pytest.mark.parametrize("how", ["emptied", "truncated", "flipped"])
def test_damaged_npz_stops_with_one_sentence(tmp_path, how):
    path = tmp_path / "posterior_synthetic.npz"
    write_npz(path, {"a": np.arange(10_000.0)})
    damage(path, how)
    with pytest.raises(DataError) as error:
        read_npz(path)
    assert one_sentence(str(error.value), str(path), "delete it and run snakemake again")


def test_figures_carry_no_creation_date(tmp_path):
    import matplotlib.pyplot as plt

    def draw():
        fig, ax = plt.subplots()
        ax.plot([0, 1], [1, 0])
        return fig

    save_figure(draw(), [tmp_path / "one.pdf", tmp_path / "one.png"], 100)
    save_figure(draw(), [tmp_path / "two.pdf", tmp_path / "two.png"], 100)
    assert b"CreationDate" not in (tmp_path / "one.pdf").read_bytes()
    for suffix in ("pdf", "png"):
        one, two = (tmp_path / f"{name}.{suffix}" for name in ("one", "two"))
        assert one.read_bytes() == two.read_bytes(), suffix


# MNIST -------------------------------------------------------------------------------------


@pytest.mark.parametrize("how", ["emptied", "truncated", "flipped"])
def test_damaged_mnist_names_the_file_and_a_fix_that_works(smoke_run, tmp_path, how):
    path = tmp_path / "resources" / "mnist.npz"
    path.parent.mkdir()
    shutil.copy(smoke_run / "resources" / "mnist.npz", path)
    damage(path, how)
    with pytest.raises(DataError) as error:
        load_mnist(path)
    message = str(error.value)
    assert one_sentence(message, str(path), f"delete {path} and run snakemake again")
    assert "wheel" not in message and "downloads" not in message


# Stages ------------------------------------------------------------------------------------


def failed_stage(workdir, rule: str, *targets: str) -> str:
    """Rerun ``rule`` for ``targets`` on the smoke config in ``workdir``; it must fail without
    a traceback. Returns Snakemake's output."""
    result = snakemake(
        workdir,
        *targets,
        "--configfile=config/smoke.yaml",
        "--keep-going",
        "--forcerun",
        rule,
        check=False,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0 and "Traceback" not in output, output[-3000:]
    return output


def test_damaged_or_planted_model_stops_its_stage_with_one_sentence(smoke_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(smoke_run, workdir)
    marker = tmp_path / "code-ran"
    planted = workdir / SMOKE / "models/cremer2d-vae-k1/model.pt"
    stat = planted.stat()
    plant(planted, marker, forge_hash=True)
    os.utime(planted, (stat.st_atime, stat.st_mtime))
    damage(workdir / SMOKE / "models/burda1-vae-k1/model.pt", "flipped")
    output = failed_stage(
        workdir,
        "evaluate",
        f"{SMOKE}/models/cremer2d-vae-k1/eval.json",
        f"{SMOKE}/models/burda1-vae-k1/eval.json",
    )
    assert "rule train" not in output  # the damaged models were not retrained in silence
    for name in ("cremer2d-vae-k1", "burda1-vae-k1"):
        path = f"{SMOKE}/models/{name}/model.pt"
        sentence = [line for line in output.splitlines() if path in line and "retrain" in line]
        assert len(sentence) == 1, output[-3000:]
        log = (workdir / SMOKE / f"logs/evaluate/{name}.log").read_text()
        assert path in log and "Traceback" not in log
    assert not marker.exists()


def test_damaged_mnist_stops_a_stage_with_one_sentence_and_the_fix_works(smoke_run, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(smoke_run, workdir)
    data = workdir / "resources" / "mnist.npz"
    damage(data, "truncated")
    output = failed_stage(
        workdir, "latent_space", f"{SMOKE}/figures/latent_space_cremer2d-vae-k1.npz"
    )
    fix = "delete resources/mnist.npz and run snakemake again"
    assert len([line for line in output.splitlines() if fix in line]) == 1, output[-3000:]
    # The fix: without the file, Snakemake fetches it afresh (from the checked download).
    data.unlink()
    snakemake(workdir, "resources/mnist.npz", "--configfile=config/smoke.yaml")
    load_mnist(data)


# Run names and config values ---------------------------------------------------------------


def config_sentences(result: subprocess.CompletedProcess) -> list[str]:
    output = result.stdout + result.stderr
    return [line for line in output.splitlines() if line.startswith("Invalid config")]


@pytest.mark.parametrize(
    "name", ["..", ".", "a/b", "../outside", "/tmp/x", "-n", "...", ".hidden", "r" * 101]
)
def test_run_name_outside_results_is_refused(tmp_path, name):
    workdir = copy_workflow(tmp_path / "workflow")
    before = sorted(p for p in workdir.rglob("*") if ".snakemake" not in p.parts)
    result = snakemake(
        workdir,
        "appendix_figure",
        "--configfile=config/smoke.yaml",
        "--config",
        f"run={name}",
        check=False,
    )
    assert result.returncode != 0
    sentences = config_sentences(result)
    assert len(sentences) == 1 and f"Invalid config at run: {name!r} is not allowed" in sentences[0]
    assert "inside results/" in sentences[0]
    after = sorted(p for p in workdir.rglob("*") if ".snakemake" not in p.parts)
    assert after == before and not (tmp_path / "figures").exists()


def edited(config: dict, path: tuple, value) -> dict:
    parent = config
    for key in path[:-1]:
        parent = parent[key]
    parent[path[-1]] = value
    return config


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        (
            ("training", "burda1", "epochs"),
            0,
            "training.burda1.epochs: 0 epochs with schedule: constant trains nothing",
        ),
        (("training", "cremer2d", "lr"), float("nan"), "training.cremer2d.lr: nan is not a finite"),
        (("identity", "tolerance"), float("inf"), "identity.tolerance: inf is not a finite"),
        (("plot", "panel_size"), float("inf"), "plot.panel_size: inf is not a finite"),
        (
            ("models", 1, "k"),
            1_000_000_000,
            "lower models[1].k or training.burda1.batch_size",
        ),
        (("models", 1, "k"), 5.0, "models[1].k: 5.0 is not an integer; write it as 5."),
        (("evaluation", "ll_k"), 50.0, "evaluation.ll_k: 50.0 is not an integer; write it as 50."),
        (
            ("models", 1),
            {"arch": "burda1", "objective": "iwae", "k": 1},
            "models[1]: it trains the same model as models[0]",
        ),
    ],
)
def test_bad_value_is_refused_before_any_work(tmp_path, path, value, fragment):
    workdir = copy_workflow(tmp_path / "workflow")
    (workdir / "bad.yaml").write_text(yaml.safe_dump(edited(smoke_config(), path, value)))
    result = snakemake(workdir, "--configfile=bad.yaml", check=False)
    assert result.returncode != 0
    sentences = config_sentences(result)
    assert len(sentences) == 1 and fragment in sentences[0], result.stderr[-2000:]
    assert not (workdir / "results").exists() and not (workdir / "resources").exists()


def schema() -> dict:
    return yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())


@pytest.mark.parametrize(
    ("models", "same"),
    [
        ([{"objective": "vae", "k": 1}, {"objective": "iwae", "k": 1}], True),
        ([{"objective": "iwae", "k": 5}, {"objective": "iwae", "k": 5}], True),
        (
            [
                {"objective": "vae", "k": 5, "estimator": "dreg"},
                {"objective": "vae", "k": 5, "estimator": "stl"},
            ],
            True,
        ),
        (
            [
                {"objective": "iwae", "k": 5, "estimator": "dreg"},
                {"objective": "iwae", "k": 5, "estimator": "stl"},
            ],
            False,
        ),
        ([{"objective": "vae", "k": 5}, {"objective": "iwae", "k": 5}], False),
        ([{"objective": "vae", "k": 1}, {"objective": "iwae", "k": 1, "estimator": "stl"}], False),
        ([{"objective": "iwae", "k": 8}, {"objective": "miwae", "m": 1, "k": 8}], True),
        ([{"objective": "vae", "k": 8}, {"objective": "miwae", "m": 8, "k": 1}], True),
        ([{"objective": "iwae", "k": 8}, {"objective": "piwae", "m": 1, "k": 8}], True),
        ([{"objective": "iwae", "k": 8}, {"objective": "ciwae", "beta": 0, "k": 8}], True),
        ([{"objective": "vae", "k": 8}, {"objective": "ciwae", "beta": 1.0, "k": 8}], True),
        ([{"objective": "vae", "k": 1}, {"objective": "ciwae", "beta": 0.5, "k": 1}], True),
        ([{"objective": "miwae", "m": 2, "k": 4}, {"objective": "piwae", "m": 2, "k": 4}], False),
        ([{"objective": "iwae", "k": 8}, {"objective": "ciwae", "beta": 0.5, "k": 8}], False),
    ],
)
def test_two_entries_that_train_the_same_model_are_refused(models, same):
    config = smoke_config()
    config["models"] = [{"arch": "burda1", **spec} for spec in models]
    if not same:
        check_values(config, memory=10**12, schema=schema())
        return
    with pytest.raises(ConfigError) as error:
        check_values(config, memory=10**12, schema=schema())
    assert one_sentence(str(error.value), "models[1]: it trains the same model as models[0]")


def test_integral_floats_are_refused_only_where_an_integer_is_asked_for():
    config = edited(smoke_config(), ("training", "cremer2d", "lr"), 1.0)  # a number: fine
    check_values(config, memory=10**12, schema=schema())
    config = edited(config, ("seeds",), [0, 1.0])
    with pytest.raises(ConfigError, match=r"at seeds\[1\]: 1.0 is not an integer; write it as 1."):
        check_values(config, memory=10**12, schema=schema())


def test_burda_schedule_with_no_stages_is_refused():
    config = edited(smoke_config(), ("training", "cremer2d", "schedule"), "burda")
    with pytest.raises(ConfigError, match=r"training.cremer2d.stages: 0 stages .* trains nothing"):
        check_values(config, memory=10**12)


@pytest.mark.parametrize(
    ("path", "value", "lower"),
    [
        (("evaluation", "bound_k"), [1, 10**7], "lower evaluation.bound_k."),
        (("identity", "k"), [1, 10**8], "lower identity.k."),
        (("marginal", "grid_size"), 10**5, "lower marginal.grid_size."),
        (("figures", "reconstruction_k"), 10**6, "lower figures.reconstruction_k."),
        (("appendix", "k"), [10**10], "lower appendix.k."),
    ],
)
def test_work_beyond_the_machine_names_the_value_to_lower(path, value, lower):
    config = edited(smoke_config(), path, value)
    check_values(smoke_config(), memory=10**10)
    with pytest.raises(ConfigError) as error:
        check_values(config, memory=10**10)
    message = str(error.value)
    assert one_sentence(message, "GB of memory, more than the 10 GB of this machine", lower)


def test_training_memory_is_checked_against_the_gpu_when_there_is_one():
    config = edited(smoke_config(), ("models", 0, "k"), 10**5)  # 10^7 rows: about 157 GB
    check_values(config, memory=10**12)
    with pytest.raises(ConfigError, match="more than the 80 GB of this machine's GPU"):
        check_values(config, memory=10**12, gpu=80 * 10**9)


def test_a_gpu_groups_held_out_pass_is_counted():
    """config/paper.yaml's burda1 models as one group on CUDA: 18 models (6 x 3 seeds) at
    k = 50, whose held-out pass takes 500 images at once: 450,000 rows, about 7 GB."""
    config = edited(load_config("config/paper.yaml", ROOT), ("training_groups",), "arch")
    check_values(config, memory=10**12, gpu=12 * 10**9)
    with pytest.raises(ConfigError) as error:
        check_values(config, memory=10**12, gpu=6 * 10**9)
    assert one_sentence(
        str(error.value),
        "Invalid config at training_groups: training group burda1 (18 models x k = 50 x 500 "
        "images in the held-out pass = 450000 rows) needs about 7.06 GB of memory, more than "
        "the 6 GB of this machine's GPU",
        "lower training_groups (to k or model) or training.burda1.heldout_images.",
    )


def test_the_gpus_evaluation_chunk_is_counted():
    config = edited(smoke_config(), ("device",), "cuda")
    check_values(config, memory=10**12, gpu=5 * 10**9)
    with pytest.raises(ConfigError) as error:
        check_values(config, memory=10**12, gpu=3 * 10**9)
    assert one_sentence(
        str(error.value),
        "Invalid config at device: a chunk of 262144 draws of the evaluation on a GPU needs",
        "more than the 3 GB of this machine's GPU",
    )


@pytest.mark.parametrize(
    "name", ["config/config.yaml", "config/smoke.yaml", "config/paper.yaml", "config/seeds.yaml"]
)
def test_shipped_configs_pass_the_checks(name):
    check_values(load_config(name, ROOT), memory=16 * 10**9, gpu=16 * 10**9, schema=schema())


def test_the_paper_scale_2d_config_passes_the_checks():
    config = merge(
        load_config("config/paper.yaml", ROOT),
        yaml.safe_load((ROOT / "config/paper-2d.yaml").read_text()),
    )
    check_values(config, memory=16 * 10**9, gpu=16 * 10**9, schema=schema())


def test_configfile_arguments_as_snakemake_reads_them():
    args = ["out.png", "--configfile=a.yaml", "b.yaml", "--configfile", "c.yaml", "d.yaml"]
    assert configfile_arguments([*args, "--config", "x=1", "--configfiles", "e.yaml"]) == [
        "a.yaml",
        "c.yaml",
        "d.yaml",
        "e.yaml",
    ]


def test_missing_or_broken_config_file_is_named(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("run: x\nseed: [1\n")
    with pytest.raises(ConfigError) as error:
        check_config_files([ROOT / "config/smoke.yaml", broken])
    assert one_sentence(str(error.value), f"Config file {broken} is not valid YAML at line 3")
    result = subprocess.run(
        [sys.executable, "-m", "riwae.config", "--cores", "1", "--configfile", "missing.yaml"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "Config file missing.yaml cannot be read (No such file or directory); check the path "
        "given to --configfile."
    )


# Identical runs ----------------------------------------------------------------------------


def test_timing_files_are_told_apart():
    assert is_timing("results/x/benchmarks/train/m.tsv")
    assert is_timing("results/x/models/m/timing.csv")
    assert is_timing("results/x/tables/training_times.csv")
    assert not is_timing("results/x/models/m/history.csv")


def test_two_runs_of_the_same_config_give_identical_artifacts(smoke_run, tmp_path):
    workdir = copy_workflow(tmp_path / "again")
    shutil.copytree(smoke_run / "resources" / "downloads", workdir / "resources" / "downloads")
    snakemake(workdir, "--configfile=config/smoke.yaml")
    first, second = (
        json.loads((root / SMOKE / "manifest.json").read_text()) for root in (smoke_run, workdir)
    )
    assert first["data"]["sha256"] == second["data"]["sha256"]
    assert first["timing_files"].keys() == second["timing_files"].keys()
    assert len(first["artifacts"]) > 40 and first["artifacts"].keys() == second["artifacts"].keys()
    different = {
        path for path, digest in first["artifacts"].items() if digest != second["artifacts"][path]
    }
    assert different == set()


# One run at a time ----------------------------------------------------------------------


def locked(path: Path):
    """``path`` opened and locked as the pipeline locks a run folder; close it to release."""
    import fcntl

    path.parent.mkdir(parents=True, exist_ok=True)
    handle = open(path, "a")  # noqa: SIM115
    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    return handle


def test_a_second_process_on_the_same_run_is_refused_whatever_happened_to_snakemakes_locks(
    tmp_path,
):
    """Snakemake 9 deletes its whole lock folder when any instance in the folder ends; the
    run's own lock still refuses a second process on the same run, and releases itself when
    its holder ends, without any unlocking."""
    workdir = copy_workflow(tmp_path / "workflow")
    # Held here as another Snakemake process would hold it.
    holder = locked(workdir / SMOKE / "locks/run.lock")
    shutil.rmtree(workdir / ".snakemake" / "locks", ignore_errors=True)
    result = snakemake(workdir, "appendix", "--configfile=config/smoke.yaml", check=False)
    assert result.returncode != 0
    output = result.stdout + result.stderr
    sentences = [line for line in output.splitlines() if "Another Snakemake process" in line]
    assert len(sentences) == 1 and "Traceback" not in output, output[-2000:]
    assert "wait for it to end, or give this config another run name" in sentences[0]
    assert not (workdir / SMOKE / "figures").exists()
    # Another run name runs beside it; a dry run of the locked one is not refused.
    snakemake(workdir, "appendix", "--configfile=config/smoke.yaml", "--config", "run=beside")
    snakemake(workdir, "appendix", "--configfile=config/smoke.yaml", "--dry-run")
    holder.close()  # the holder ends: the run is free again
    snakemake(workdir, "appendix", "--configfile=config/smoke.yaml")
    assert (workdir / SMOKE / "figures/appendix_1d.npz").exists()


def flock_holders(path: Path) -> set[int]:
    """PIDs holding a flock on ``path``, read from /proc/locks without touching the lock."""
    inode = path.stat().st_ino
    holders = set()
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "FLOCK" in fields and fields[-3].split(":")[-1] == str(inode):
            holders.add(int(fields[-4]))
    return holders


def test_a_running_instance_holds_the_run_until_it_ends(tmp_path):
    """A real first instance: while it runs, its own process holds the run's lock; once it
    has ended, nobody does."""
    workdir = copy_workflow(tmp_path / "workflow")
    first = subprocess.Popen(
        [*SNAKEMAKE, "--cores", "1", "appendix", "--configfile=config/smoke.yaml"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    lock = workdir / SMOKE / "locks/run.lock"
    seen = set()
    while first.poll() is None and not seen:
        seen = flock_holders(lock) if lock.exists() else set()
    assert first.wait() == 0 and seen == {first.pid}
    assert not flock_holders(lock)


# A full disk -------------------------------------------------------------------------------


@pytest.fixture
def full_disk(tmp_path):
    """A 256 kB file system, filled up; skipped where mounting one is not allowed."""
    folder = tmp_path / "small"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a small file system here: {mounted.stderr.decode()[-200:]}")
    try:
        filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
        with pytest.raises(OSError):
            while True:
                os.write(filler, b"\0" * 4096)
        os.close(filler)
        yield folder
    finally:
        import logging

        for handler in logging.getLogger("riwae").handlers:  # a stage's log file there
            handler.close()
        subprocess.run(["umount", str(folder)], check=True)


def test_a_full_disk_is_one_sentence_naming_the_folder_and_the_size(full_disk):
    from riwae.io import DiskFullError, write_bytes

    with pytest.raises(DiskFullError) as error:
        write_bytes(full_disk / "model.pt", b"x" * 300_000)
    assert one_sentence(
        str(error.value),
        f"No space was left on the disk of {full_disk} to write model.pt (0.3 MB)",
        "free space there and run again",
    )
    assert sorted(p.name for p in full_disk.iterdir()) == ["filler"]  # nothing half-written


def test_a_stage_on_a_full_disk_ends_with_its_sentence_on_stderr(full_disk, capfd):
    from snakemake.exceptions import WorkflowError

    from riwae import stages

    with pytest.raises(WorkflowError) as error:
        stages.run_config(
            resolved=full_disk / "config.yaml",
            config=smoke_config(),
            log_file=full_disk / "logs/run_config.log",
        )
    sentence = str(error.value)
    assert one_sentence(sentence, f"No space was left on the disk of {full_disk}", "config.yaml")
    assert sentence in capfd.readouterr().err  # the log could not take it
    assert not (full_disk / "config.yaml").exists()
