import math

import numpy as np
import pandas as pd
import pytest
import torch

import riwae.train
from riwae.data import BinarizedMNIST
from riwae.evaluate import active_units, evaluate_model, iwae_estimate
from riwae.grid import square_grid
from riwae.models import VAE, StackedVAE
from riwae.optim import BurdaAdam, make_optimizer
from riwae.spec import model_specs, training_groups, training_priorities
from riwae.train import TrainingError, TrainSettings, train_group


def synthetic_images(n: int, seed: int = 0) -> np.ndarray:
    """Digit-like uint8 images: a few random strokes, so there is structure to learn."""
    rng = np.random.default_rng(seed)
    prototypes = (rng.random((4, 784)) < 0.15) * 230 + 10
    images = prototypes[rng.integers(0, 4, n)] + rng.integers(0, 15, (n, 784))
    return images.clip(0, 255).astype(np.uint8)


def settings(**changes) -> TrainSettings:
    base = dict(
        arch="burda1",
        objective="iwae",
        k=5,
        batch_size=50,
        lr=1e-3,
        adam_eps=1e-4,
        schedule="constant",
        epochs=3,
        stages=0,
        seed=0,
        train_images=500,
        heldout_images=100,
    )
    return TrainSettings(**{**base, **changes})


def train_model(settings: TrainSettings, *args, **kwargs) -> tuple[VAE, pd.DataFrame]:
    """Train one model: a group of one."""
    models, histories, _ = train_group([settings], *args, **kwargs)
    return models[0], histories[0]


def interrupted(checkpoint, images, epochs: int = 1, device="cpu", member=None) -> None:
    """Train ``member`` (by default ``settings()``) for ``epochs`` epochs on ``device`` and
    stop, as an interruption would, leaving the checkpoint at ``checkpoint``."""
    train_model(
        member or settings(),
        images,
        images[500:],
        torch.device(device),
        checkpoint,
        stop_after_epochs=epochs,
        progress=False,
    )


@pytest.fixture(autouse=True)
def float32_and_one_thread():
    """Training runs in float32, as in the pipeline (conftest sets float64 for the maths)."""
    default, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float32)
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(default)
    torch.set_num_threads(threads)


def test_burda_schedule_has_3280_epochs_with_decaying_rates():
    rates = settings(schedule="burda", stages=8).learning_rates()
    assert len(rates) == 3280
    assert rates[0] == 1e-3 and rates[1] == pytest.approx(1e-3 * 10 ** (-1 / 7))
    assert rates[-1] == pytest.approx(1e-3 * 10**-1)
    assert rates[1:4] == [pytest.approx(1e-3 * 10 ** (-1 / 7))] * 3  # stage 2: epochs 2-4
    assert rates[4] == pytest.approx(1e-3 * 10 ** (-2 / 7))  # stage 3 starts at epoch 5


def test_a_few_epochs_improve_the_bound(tmp_path):
    images = synthetic_images(600)
    _, history = train_model(
        settings(), images, images[500:], torch.device("cpu"), tmp_path / "c.pt", progress=False
    )
    assert list(history.epoch) == [1, 2, 3]
    assert history.heldout_bound.iloc[-1] > history.heldout_bound.iloc[0] + 5
    assert history.train_bound.is_monotonic_increasing


def check_resume_equals_uninterrupted(tmp_path, device: torch.device, **changes) -> None:
    """Training cut after one epoch and resumed ends with the numbers, to the last bit, of
    training straight through, on ``device``."""
    images = synthetic_images(600)
    member = settings(**changes)
    whole, whole_history = train_model(
        member, images, images[500:], device, tmp_path / "whole.pt", progress=False
    )
    cut = tmp_path / "cut.pt"
    interrupted(cut, images, device=device, member=member)
    resumed, resumed_history = train_model(
        member, images, images[500:], device, cut, progress=False
    )
    columns = ["epoch", "train_bound", "heldout_bound", "lr"]
    assert whole_history[columns].equals(resumed_history[columns])
    for (name, a), (_, b) in zip(
        whole.state_dict().items(), resumed.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_resume_ends_with_the_same_numbers_as_an_uninterrupted_run(tmp_path):
    check_resume_equals_uninterrupted(tmp_path, torch.device("cpu"))


def resumed_optimizer_state(checkpoint, members, device: torch.device) -> list[dict]:
    """Each parameter's optimizer state after resuming ``checkpoint`` (written by
    ``train_group(members, ...)``) on ``device``, as ``train_group`` resumes it."""
    stack = StackedVAE([VAE(s.arch) for s in members]).to(device)
    optimizer = make_optimizer(members[0].optimizer, stack.parameters(), 1e-3, 1e-4)
    # A checkpoint's generator states are of its training device's generators.
    generators = [torch.Generator(device if device.type == "cuda" else "cpu") for _ in members]
    state = riwae.train.load_checkpoint(checkpoint, riwae.train.group_fingerprint(members))
    riwae.train.resume(state, stack, optimizer, generators)
    return list(optimizer.state.values())


@pytest.mark.filterwarnings("ignore:.*to a meta parameter")  # meta holds no data: expected
@pytest.mark.parametrize("optimizer", ["adam", "burda"])
def test_resume_puts_the_step_counters_where_a_step_reads_them(tmp_path, optimizer):
    """Resumed onto another device (here "meta", a device without data), the moments go to
    the parameters' device; torch's (non-capturable) Adam reads its step counters on the
    host, where they stay, and Burda et al.'s reads them on the device, where they go. On a
    GPU, either elsewhere would make every step wait."""
    members = [settings(optimizer=optimizer, epochs=1, train_images=100)]
    images = synthetic_images(200)
    checkpoint = tmp_path / "c.pt"
    train_group(members, images, images[100:], torch.device("cpu"), checkpoint, progress=False)
    # The finished run's last checkpoint: train_group leaves it, the stage deletes it.
    states = resumed_optimizer_state(checkpoint, members, torch.device("meta"))
    counters = {"adam": "cpu", "burda": "meta"}[optimizer]
    assert states and all(state["step"].device.type == counters for state in states)
    moments = [v for state in states for key, v in state.items() if key != "step"]
    assert moments and all(v.device.type == "meta" for v in moments)


def test_checkpoint_of_other_settings_is_not_resumed(tmp_path):
    images = synthetic_images(600)
    device = torch.device("cpu")
    interrupted(tmp_path / "c.pt", images, epochs=2)
    _, history = train_model(
        settings(lr=2e-3, epochs=1), images, images[500:], device, tmp_path / "c.pt", progress=False
    )
    assert list(history.lr) == [2e-3]


def test_non_finite_loss_stops_with_a_message_and_keeps_the_checkpoint(tmp_path, monkeypatch):
    images = synthetic_images(600)
    device = torch.device("cpu")
    checkpoint = tmp_path / "c.pt"
    interrupted(checkpoint, images)
    before = checkpoint.read_bytes()
    bounds = riwae.train.Group.bounds

    def nan_in_one_step(self, *args):  # a single non-finite step in the middle of epoch 2
        nan_in_one_step.calls += 1
        value, surrogate = bounds(self, *args)
        return (value * math.nan, surrogate) if nan_in_one_step.calls == 4 else (value, surrogate)

    nan_in_one_step.calls = 0
    monkeypatch.setattr(riwae.train.Group, "bounds", nan_in_one_step)
    with pytest.raises(
        TrainingError,
        match=r"bound of burda1-iwae-k5 \(seed 0\) became nan in epoch 2.*end of epoch 1",
    ):
        train_model(settings(), images, images[500:], device, checkpoint, progress=False)
    assert checkpoint.read_bytes() == before


def check_group_equals_members_apart(tmp_path, arch: str, device: torch.device) -> None:
    """Stacked training on ``device``, with members of other objectives, k (padded) and
    seeds, equals training each member alone with its own seed, after three epochs: the
    bounds to a relative 1e-5, the weights to 1e-4 (float32 products in other orders)."""
    images = synthetic_images(600)
    members = [
        settings(arch=arch, objective="iwae", k=5, seed=0),
        settings(arch=arch, objective="vae", k=5, seed=1),
        settings(arch=arch, objective="iwae", k=1, seed=2),
        settings(arch=arch, objective="vae", k=3, seed=0),
    ]
    models, histories, timing = train_group(
        members, images, images[500:], device, tmp_path / "group.pt", progress=False
    )
    assert list(timing.epoch) == [1, 2, 3] and (timing.models_in_group == 4).all()
    for member, model, history in zip(members, models, histories, strict=True):
        alone, alone_history = train_model(
            member, images, images[500:], device, tmp_path / f"{member.name}.pt", progress=False
        )
        assert list(history.epoch) == [1, 2, 3]
        columns = ["train_bound", "heldout_bound"]
        np.testing.assert_allclose(history[columns], alone_history[columns], rtol=1e-5)
        for (name, a), (_, b) in zip(
            model.state_dict().items(), alone.state_dict().items(), strict=True
        ):
            worst = (a - b).abs().max().item()
            torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5, msg=f"{name}: {worst:.3g} off")
    # Members really differ: the group is not one model repeated.
    assert histories[0].train_bound.iloc[-1] != histories[1].train_bound.iloc[-1]


@pytest.mark.parametrize("arch", ["burda1", "burda2"])
def test_a_group_trains_to_the_same_numbers_as_its_members_apart(tmp_path, arch):
    check_group_equals_members_apart(tmp_path, arch, torch.device("cpu"))


def test_a_group_resumes_to_the_same_numbers(tmp_path, caplog):
    images = synthetic_images(600)
    device = torch.device("cpu")
    members = [settings(objective="iwae", k=5), settings(objective="vae", k=5)]
    whole, whole_histories, _ = train_group(
        members, images, images[500:], device, tmp_path / "whole.pt", progress=False
    )
    cut = tmp_path / "cut.pt"
    train_group(members, images, images[500:], device, cut, stop_after_epochs=2, progress=False)
    with caplog.at_level("INFO", logger="riwae"):
        resumed, resumed_histories, _ = train_group(
            members, images, images[500:], device, cut, progress=False
        )
    assert "resumed from epoch 2 of 3" in caplog.text
    for a, b in zip(whole_histories, resumed_histories, strict=True):
        assert a.equals(b)
    for a, b in zip(whole, resumed, strict=True):
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y)


def test_a_damaged_checkpoint_is_set_aside_and_training_starts_again(tmp_path, caplog):
    images = synthetic_images(600)
    device = torch.device("cpu")
    checkpoint = tmp_path / "c.pt"
    interrupted(checkpoint, images)
    checkpoint.write_bytes(checkpoint.read_bytes()[:1000])  # truncated
    with caplog.at_level("INFO", logger="riwae"):
        _, history = train_model(
            settings(), images, images[500:], device, checkpoint, progress=False
        )
    assert list(history.epoch) == [1, 2, 3]
    assert (tmp_path / "c.pt.damaged").exists()
    assert "training sets it aside and starts from scratch" in caplog.text


def test_models_of_different_shapes_do_not_group():
    with pytest.raises(ValueError, match="must share architecture and training settings"):
        riwae.train.check_group([settings(), settings(arch="cremer2d")])


def test_two_layer_group_with_stl_and_dreg_trains_to_finite_bounds(tmp_path):
    """The estimators' gradients are checked in test_estimators; here, a training epoch."""
    images = synthetic_images(300)
    members = [
        settings(arch="burda2", estimator="dreg", train_images=200, epochs=1, seed=0),
        settings(arch="burda2", estimator="stl", objective="vae", train_images=200, epochs=1),
        settings(arch="burda2", train_images=200, epochs=1, seed=1),
    ]
    _, histories, _ = train_group(
        members, images, images[200:], torch.device("cpu"), tmp_path / "c.pt", progress=False
    )
    for history in histories:
        assert list(history.epoch) == [1]
        assert np.isfinite(history[["train_bound", "heldout_bound"]].to_numpy()).all()


def tiny_2d_model() -> VAE:
    """A 2D-latent model with a gentle decoder, so that log p(x) is a smooth integral."""
    model = VAE("cremer2d").initialise(torch.Generator().manual_seed(0)).double()
    with torch.no_grad():
        model.decoder.net[-1].weight.mul_(0.05)
        model.encoder.net[-1].weight.mul_(0.1)
    return model


def test_k5000_estimate_agrees_with_quadrature(monkeypatch):
    torch.set_default_dtype(torch.float64)
    model = tiny_2d_model()
    x = BinarizedMNIST(synthetic_images(4)).fixed(seed=0, dtype=torch.float64)
    grid = square_grid(7.0, 281)
    with torch.no_grad():
        z = grid.points[:, None, :]  # [points, 1, 2]
        logits = model.decoder(z)  # [points, 1, 784]
        log_lik = -torch.nn.functional.binary_cross_entropy_with_logits(
            logits.expand(-1, len(x), -1), x.expand(len(grid.points), -1, -1), reduction="none"
        ).sum(-1)  # [points, images]
        log_prior = -0.5 * (math.log(2 * math.pi) * 2 + (grid.points**2).sum(-1))
        exact = torch.stack(
            [torch.tensor(grid.log_integral(log_prior + log_lik[:, i])) for i in range(len(x))]
        )
    g = torch.Generator().manual_seed(0)
    estimates = torch.stack([iwae_estimate(model, x, 5000, g, max_samples=4000) for _ in range(8)])
    mean, se = estimates.mean(0), estimates.std(0) / math.sqrt(8)
    # Within 4 standard errors plus a small allowance for the estimator's downward bias.
    assert ((mean - exact).abs() < 4 * se + 0.02).all(), (mean, exact, se)
    assert (mean <= exact + 4 * se).all()


def test_active_units_counts_dimensions_whose_mean_varies():
    model = VAE("burda1").initialise(torch.Generator().manual_seed(0))
    with torch.no_grad():  # collapse 45 of the 50 mean outputs to a constant
        model.encoder.net[-1].weight[5:50].zero_()
        model.encoder.net[-1].bias[5:50] = 0.7
    x = BinarizedMNIST(synthetic_images(300)).fixed(seed=0)
    (count,), (variances,) = active_units(model, x)
    assert count == 5 and variances.shape == (50,)
    assert (variances[5:] == 0).all() and (variances[:5] > 0.01).all()


def test_active_units_of_two_layers_are_counted_per_layer():
    """Layer 2's activity is that of q(h2|h1)'s mean at h1's mean: collapsing 40 of layer
    1's units leaves layer 2 active; collapsing 46 of layer 2's leaves 4."""
    model = VAE("burda2").initialise(torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.encoder.net[-1].weight[60:100].zero_()
        model.encoder.net[-1].bias[60:100] = 0.7
        model.upper_encoders[0].net[-1].weight[4:50].zero_()
        model.upper_encoders[0].net[-1].bias[4:50] = -0.3
    x = BinarizedMNIST(synthetic_images(300)).fixed(seed=0)
    counts, variances = active_units(model, x, threshold=1e-4)
    assert counts == [60, 4] and [v.shape for v in variances] == [(100,), (50,)]
    assert (variances[0][60:] == 0).all() and (variances[1][4:] == 0).all()
    h1 = model.encoder(x)[0]
    expected = model.upper_encoders[0](h1)[0].double().var(0)
    torch.testing.assert_close(variances[1], expected)


@pytest.mark.parametrize("arch", ["burda1", "burda2"])
def test_evaluate_model_reports_ordered_bounds(arch):
    """The k-sample estimate is below the larger-k one in expectation (over 40 images)."""
    model = VAE(arch).initialise(torch.Generator().manual_seed(0))
    x = BinarizedMNIST(synthetic_images(40)).fixed(seed=0)
    result = evaluate_model(model, x, ll_k=500, bound_ks=[1, 5, 50], seed=0, batch_size=20)
    assert result["test_images"] == 40 and result["ll_k"] == 500
    assert result["iwae_k1"] < result["iwae_k5"] < result["iwae_k50"] < result["log_likelihood"]
    assert result["vae_bound"] == pytest.approx(result["iwae_k1"], abs=3 * result["iwae_k1_se"])
    layers = list(model.arch.latent_dims)
    assert result["latent_dims"] == layers and result["latent_dim"] == sum(layers)
    assert len(result["active_units_per_layer"]) == len(layers)
    assert result["active_units"] == sum(result["active_units_per_layer"])


def test_burda_adam_follows_their_update_rule():
    """Three steps on a fixed gradient against the update written out by hand."""
    p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    optimizer = BurdaAdam([p], lr=0.1, eps=1e-4)
    grad = torch.tensor([0.5, -3.0], dtype=torch.float64)
    expected = p.detach().clone()
    m, v = torch.zeros(2, dtype=torch.float64), torch.ones(2, dtype=torch.float64)
    for t in range(1, 4):
        p.grad = grad.clone()
        optimizer.step()
        m = 0.99 * m + 0.01 * grad
        v = 0.999 * v + 0.001 * grad**2
        expected -= 0.1 * math.sqrt(1 - 0.999**t) / (1 - 0.99**t) * m / (v.sqrt() + 1e-4)
        torch.testing.assert_close(p.detach(), expected, rtol=1e-12, atol=1e-12)
    # Unlike torch's Adam, whose first step is lr * sign(grad).
    torch_p = torch.nn.Parameter(torch.tensor([1.0, -2.0], dtype=torch.float64))
    torch_p.grad = grad.clone()
    torch.optim.Adam([torch_p], lr=0.1, eps=1e-4).step()
    assert not torch.allclose(torch_p.detach(), expected)


def test_burda_code_schedule_rounds_the_rates_as_their_code():
    rates = settings(schedule="burda-code", stages=8).learning_rates()
    assert len(rates) == 3280
    stage_starts = [sum(3**i for i in range(s)) for s in range(8)]
    assert [rates[i] for i in stage_starts] == pytest.approx(
        [1e-3, 7.2e-4, 5.2e-4, 3.7e-4, 2.7e-4, 1.9e-4, 1.4e-4, 1e-4]
    )


def test_fixed_binarisation_shows_the_same_pixels_every_epoch():
    images = synthetic_images(40)
    data = BinarizedMNIST(images)
    fixed = data.fixed(seed=3).bool()
    generator = torch.Generator().manual_seed(0)
    first = torch.cat(list(data.batches(10, generator, shuffle=False, fixed=fixed)))
    second = torch.cat(list(data.batches(10, generator, shuffle=False, fixed=fixed)))
    assert torch.equal(first, second) and torch.equal(first, fixed.float())
    dynamic = torch.cat(list(data.batches(10, generator, shuffle=False)))
    assert not torch.equal(dynamic, first)


def test_burda_optimizer_and_fixed_binarisation_train(tmp_path):
    images = synthetic_images(600)
    _, history = train_model(
        settings(optimizer="burda", binarisation="fixed", batch_size=10),
        images,
        images[500:],
        torch.device("cpu"),
        tmp_path / "c.pt",
        progress=False,
    )
    # Their Adam starts slowly (second moments at ones, beta1 = 0.99), but it does learn.
    assert history.train_bound.is_monotonic_increasing
    assert history.heldout_bound.iloc[-1] > history.heldout_bound.iloc[0] + 2


def training_section(**changes) -> dict:
    """A config's training settings of one architecture, as ``settings()`` has them."""
    fixed = ("seed", "arch", "objective", "k", "estimator")
    return {k: v for k, v in settings(**changes).as_dict().items() if k not in fixed}


def test_every_model_is_trained_from_every_seed_and_the_first_keeps_its_name():
    config = {
        "models": [
            {"arch": "burda1", "objective": "iwae", "k": 5},
            {"arch": "cremer2d", "objective": "iwae", "k": 50, "estimator": "dreg"},
        ],
        "seeds": [3, 0, 7],
        "training": {"burda1": training_section(), "cremer2d": training_section(lr=1e-4)},
    }
    specs = model_specs(config)
    assert [(s.name, s.settings.seed) for s in specs] == [
        ("burda1-iwae-k5", 3),
        ("burda1-iwae-k5-seed0", 0),
        ("burda1-iwae-k5-seed7", 7),
        ("cremer2d-iwae-k50-dreg", 3),
        ("cremer2d-iwae-k50-dreg-seed0", 0),
        ("cremer2d-iwae-k50-dreg-seed7", 7),
    ]
    # Each spec holds everything that determines its model: its architecture's settings too.
    assert specs[2].settings == settings(seed=7)
    assert specs[4].settings.lr == 1e-4 and specs[4].settings.estimator == "dreg"
    assert [s.base_name for s in specs[3:]] == ["cremer2d-iwae-k50-dreg"] * 3
    assert specs[4].architecture.is_2d and not specs[0].architecture.is_2d
    # With device: cuda a model's seeds stack into the group of its architecture and draws;
    # otherwise each is alone, device: auto included, whatever this machine has: the groups
    # name rules.
    assert training_groups(specs, "auto", "cuda") == {
        "burda1-k5": ["burda1-iwae-k5", "burda1-iwae-k5-seed0", "burda1-iwae-k5-seed7"],
        "cremer2d-k50": [
            "cremer2d-iwae-k50-dreg",
            "cremer2d-iwae-k50-dreg-seed0",
            "cremer2d-iwae-k50-dreg-seed7",
        ],
    }
    for device in ("cpu", "auto"):
        alone = training_groups(specs, "auto", device)
        assert list(alone.values()) == [[s.name] for s in specs]


def eager_loop(members, images, epochs: int, device: str = "cpu"):
    """The training loop as it was before its steps ran on static buffers: each epoch's
    minibatches from ``member_batches``, one ``training_step`` at a time. Returns the stack
    and each epoch's summed bounds."""
    device = torch.device(device)
    first = members[0]
    data = BinarizedMNIST(images[: first.train_images], device)
    fixed = [
        data.fixed(seed=s.seed + 3).bool() if s.binarisation == "fixed" else None for s in members
    ]
    generators = [torch.Generator(device=device).manual_seed(s.seed) for s in members]
    mean_pixel = torch.as_tensor(images[: first.train_images], dtype=torch.float32).mean(0) / 255
    stack = StackedVAE(
        [VAE(s.arch).initialise(torch.Generator().manual_seed(s.seed), mean_pixel) for s in members]
    ).to(device)
    group = riwae.train.Group(members, device)
    optimizer = make_optimizer(first.optimizer, stack.parameters(), first.lr, first.adam_eps)
    totals = []
    for _ in range(epochs):
        total = torch.zeros(len(members), device=device)
        for x in riwae.train.member_batches(data, members, generators, fixed):
            total += riwae.train.training_step(stack, group, optimizer, x, generators).sum(1)
        totals.append(total / len(data))
    return stack, totals


@pytest.mark.parametrize("steps_per_call", [0, 7])
def test_the_static_buffer_steps_give_the_eager_loops_bits(tmp_path, steps_per_call):
    """``train_group``'s steps read their minibatches through one static index buffer,
    ``steps_per_call`` at a time (as a CUDA graph replays them; on the CPU they run
    eagerly, and 7 leaves a remainder of single steps): bit for bit the loop they replaced,
    with members of other objectives, estimators and seeds, for both optimizers and
    binarisations."""
    images = synthetic_images(600)
    for optimizer, binarisation in (("adam", "dynamic"), ("burda", "fixed")):
        shared = dict(k=5, batch_size=30, optimizer=optimizer, binarisation=binarisation)
        members = [
            settings(objective="iwae", seed=0, **shared),
            settings(objective="vae", seed=1, **shared),
            settings(objective="iwae", seed=2, estimator="dreg", **shared),
        ]
        reference, totals = eager_loop(members, images, epochs=2)
        models, histories, _ = train_group(
            [replace_epochs(m, 2) for m in members],
            images,
            images[500:],
            torch.device("cpu"),
            tmp_path / f"{optimizer}.pt",
            progress=False,
            cuda_graphs=steps_per_call,
        )
        for m, (model, history) in enumerate(zip(models, histories, strict=True)):
            assert list(history.train_bound) == [float(t[m]) for t in totals]
            expected = reference.member(m).state_dict()
            for name, value in model.state_dict().items():
                assert torch.equal(value, expected[name]), (optimizer, m, name)


def replace_epochs(member: TrainSettings, epochs: int) -> TrainSettings:
    return TrainSettings(**{**member.as_dict(), "epochs": epochs})


def test_checkpoints_are_due_at_stage_ends_and_after_their_interval():
    rates = [1e-3, 5e-4, 5e-4, 5e-4, 2e-4]
    due = riwae.train.checkpoint_due
    assert [due(e, rates, 0.0, 600.0) for e in range(5)] == [True, False, False, True, True]
    assert [due(e, rates, 600.0, 600.0) for e in range(5)] == [True] * 5
    assert all(due(e, rates, 0.0, 0.0) for e in range(5))  # 0: every epoch


def test_checkpoints_by_wall_time_resume_to_the_same_numbers(tmp_path, caplog):
    """With checkpoints at most every hour, only the learning-rate stages' ends write one:
    a run stopped in epoch 3 of Burda et al.'s schedule (1 + 3 epochs) resumes from epoch 1
    and ends with the numbers of an uninterrupted run."""
    images = synthetic_images(300)
    member = settings(schedule="burda", stages=2, epochs=0, train_images=200)
    device, hour = torch.device("cpu"), 3600.0
    whole, whole_history = train_model(
        member, images, images[200:], device, tmp_path / "whole.pt", progress=False
    )
    cut = tmp_path / "cut.pt"
    train_model(
        member,
        images,
        images[200:],
        device,
        cut,
        stop_after_epochs=3,
        progress=False,
        checkpoint_seconds=hour,
    )
    with caplog.at_level("INFO", logger="riwae"):
        resumed, resumed_history = train_model(
            member, images, images[200:], device, cut, progress=False, checkpoint_seconds=hour
        )
    assert "resumed from epoch 1 of 4" in caplog.text
    assert whole_history.equals(resumed_history)
    for a, b in zip(whole.state_dict().values(), resumed.state_dict().values(), strict=True):
        assert torch.equal(a, b)


def test_training_priorities_put_2d_models_first_then_the_longest():
    config = {
        "models": [
            {"arch": "burda1", "objective": "vae", "k": 1},
            {"arch": "burda1", "objective": "iwae", "k": 50},
            {"arch": "cremer2d", "objective": "vae", "k": 1},
            {"arch": "burda2", "objective": "iwae", "k": 5},
        ],
        "seeds": [0],
        "training": {
            "burda1": training_section(),
            "burda2": training_section(epochs=40),  # 40 x 5 draws per image: more than 3 x 50
            "cremer2d": training_section(),
        },
    }
    specs = {spec.name: spec for spec in model_specs(config)}
    groups = training_groups(list(specs.values()), "model", "cpu")
    assert training_priorities(groups, specs) == {
        "cremer2d-vae-k1": 4,
        "burda2-iwae-k5": 3,
        "burda1-iwae-k50": 2,
        "burda1-vae-k1": 1,
    }
