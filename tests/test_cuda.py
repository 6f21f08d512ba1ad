"""What only a GPU can show: the CUDA path gives the CPU's numbers, exactly where it must
(the same test pixels, a resumed run) and within float rounding where the arithmetic
differs (other summation orders). Skipped where no CUDA device is visible;
`python3 benchmarks/gpu_check.py` runs them, with the smoke pipeline on CUDA, whose artifacts
get the CPU run's checks (the `cuda` variants of tests/test_workflow.py)."""

import copy
import time

import pytest
import torch
from test_train import (
    check_group_equals_members_apart,
    check_resume_equals_uninterrupted,
    eager_loop,
    float32_and_one_thread,  # noqa: F401 (autouse: training runs in float32)
    interrupted,
    resumed_optimizer_state,
    settings,
    synthetic_images,
)

from conftest import needs_cuda
from riwae.bounds import gaussian_log_density, iwae_bound, vae_bound
from riwae.checks import identity_terms, model_identity
from riwae.data import BinarizedMNIST
from riwae.evaluate import iwae_estimate
from riwae.models import VAE
from riwae.train import train_group

pytestmark = needs_cuda
CPU, CUDA = torch.device("cpu"), torch.device("cuda")
ARCHS = ["cremer2d", "burda1", "burda2"]


def test_fixed_binarisation_gives_the_cpus_pixels():
    images = synthetic_images(300)
    for seed in (0, 7):
        on_cuda = BinarizedMNIST(images, CUDA).fixed(seed)
        assert on_cuda.device.type == "cuda"
        assert torch.equal(on_cuda.cpu(), BinarizedMNIST(images).fixed(seed))


@pytest.mark.parametrize("arch", ["burda1", "burda2"])
def test_a_group_trains_to_the_same_numbers_as_its_members_apart(tmp_path, arch):
    check_group_equals_members_apart(tmp_path, arch, CUDA)


@pytest.mark.parametrize("optimizer", ["adam", "burda"])
def test_resume_ends_with_the_numbers_of_an_uninterrupted_run(tmp_path, optimizer):
    check_resume_equals_uninterrupted(tmp_path, CUDA, optimizer=optimizer)


@pytest.mark.parametrize("optimizer", ["adam", "burda"])
def test_resumed_optimizer_state_is_on_the_gpu(tmp_path, optimizer):
    """Both optimizers read their step counters on the GPU on CUDA (torch's Adam is
    capturable there): resumed, every part of their state is on the GPU."""
    member = settings(optimizer=optimizer)
    interrupted(tmp_path / "c.pt", synthetic_images(600), device=CUDA, member=member)
    states = resumed_optimizer_state(tmp_path / "c.pt", [member], CUDA)
    assert states and all(v.device.type == "cuda" for s in states for v in s.values())


def log_weights_on(model: VAE, x: torch.Tensor, eps: torch.Tensor, device) -> torch.Tensor:
    """log w of ``model`` on ``device`` for the given noise ``eps`` [k, images, latent],
    500 draws at a time; on the CPU."""
    model = copy.deepcopy(model).to(device)
    parts = []
    with torch.no_grad():
        for noise in eps.split(500):
            log_joint, z, mean, logvar, _ = model.draw(x.to(device), noise.to(device))
            parts.append((log_joint - gaussian_log_density(z, mean, logvar)).cpu())
    return torch.cat(parts)


@pytest.mark.parametrize("arch", ARCHS)
def test_cpu_and_cuda_agree_on_the_bounds_and_the_k5000_estimate(arch):
    """The same weights, images and draws give, in float32, log-weights (about -550 nats)
    within 1e-5 relative and 1e-3 nats, and so the bounds at every k and the k = 5000
    estimate: TF32 products (about 1e-3 relative per logit) would miss by tenths of a nat."""
    model = VAE(arch).initialise(torch.Generator().manual_seed(0)).float()
    x = BinarizedMNIST(synthetic_images(20)).fixed(seed=0)
    eps = torch.randn((5000, 20, model.latent_dim), generator=torch.Generator().manual_seed(1))
    cpu, cuda = log_weights_on(model, x, eps, CPU), log_weights_on(model, x, eps, CUDA)
    torch.testing.assert_close(cuda, cpu, rtol=1e-5, atol=1e-3)
    for k in (1, 5, 50, 5000):
        torch.testing.assert_close(iwae_bound(cuda[:k]), iwae_bound(cpu[:k]), rtol=0, atol=1e-3)
        torch.testing.assert_close(vae_bound(cuda[:k]), vae_bound(cpu[:k]), rtol=0, atol=1e-3)
    # The pipeline's own estimate, with each device's draws (and chunk size): the same
    # quantity, so the paired differences over the images centre on zero.
    estimates = [
        iwae_estimate(copy.deepcopy(model).to(d), x.to(d), 5000, torch.Generator(d).manual_seed(2))
        for d in (CPU, CUDA)
    ]
    difference = (estimates[1].cpu() - estimates[0]).double()
    assert difference.mean().abs() <= 4 * difference.std() / 20**0.5 + 1e-3


@pytest.mark.parametrize("arch", ARCHS)
def test_cpu_and_cuda_agree_on_the_identity(arch):
    """In float64, both sides of the identity from the same draws agree between the devices
    to 1e-9 nats, and the check itself passes at 1e-10 on CUDA."""
    model = VAE(arch).initialise(torch.Generator().manual_seed(0)).double()
    x = BinarizedMNIST(synthetic_images(3)).fixed(seed=0, dtype=torch.float64)
    generator = torch.Generator().manual_seed(1)
    eps = torch.randn((100, 3, model.latent_dim), generator=generator, dtype=torch.float64)

    def terms(device):
        on_device = copy.deepcopy(model).to(device)
        with torch.no_grad():
            log_joint, z, mean, logvar, _ = on_device.draw(x.to(device), eps.to(device))
        log_q = gaussian_log_density(z, mean, logvar)
        return [t.cpu() for t in identity_terms(log_joint, log_q)]

    for on_cpu, on_cuda in zip(terms(CPU), terms(CUDA), strict=True):
        torch.testing.assert_close(on_cuda, on_cpu, rtol=0, atol=1e-9)
    rows = model_identity(model.to(CUDA), x.to(CUDA), [1, 10, 1000], 5, 1e-10, seed=0)
    assert all(row["passed"] for row in rows), rows


@pytest.mark.parametrize("optimizer", ["adam", "burda"])
@pytest.mark.parametrize("steps_per_graph", [1, 10])
def test_graph_replays_give_the_eager_steps_bits(
    tmp_path, optimizer, steps_per_graph, record_property
):
    """The training steps captured as CUDA graphs (1 or 10 steps a replay, captured again
    when the learning rate changes) and replayed end with the bits of the same steps run
    eagerly, and of the loop they replaced, after two epochs (of Burda et al.'s schedule,
    whose rate changes after the first)."""
    images = synthetic_images(700)
    shared = dict(k=5, batch_size=25, optimizer=optimizer, train_images=600)
    shared |= dict(schedule="burda", stages=2, epochs=0)
    members = [
        settings(objective="iwae", seed=0, **shared),
        settings(objective="vae", seed=1, **shared),
        settings(objective="iwae", seed=2, estimator="dreg", **shared),
    ]
    runs = {}
    for graphs in (0, steps_per_graph):
        start = time.perf_counter()
        models, histories, _ = train_group(
            members,
            images,
            images[600:],
            CUDA,
            tmp_path / f"{graphs}.pt",
            stop_after_epochs=2,
            progress=False,
            cuda_graphs=graphs,
        )
        runs[graphs] = models, histories, time.perf_counter() - start
    (eager, eager_histories, eager_s), (replayed, replayed_histories, graph_s) = runs.values()
    record_property("seconds eager vs graphs", f"{eager_s:.2f} vs {graph_s:.2f}")
    for a, b in zip(eager_histories, replayed_histories, strict=True):
        assert a.equals(b)
    for a, b in zip(eager, replayed, strict=True):
        for (name, x), y in zip(a.state_dict().items(), b.state_dict().values(), strict=True):
            assert torch.equal(x, y), name
    reference, totals = eager_loop(members, images, epochs=1, device="cuda")
    assert [float(t) for t in totals[0]] == [h.train_bound.iloc[0] for h in replayed_histories]


def test_capturable_adam_against_torchs_default_adam(record_property):
    """On CUDA torch's Adam is capturable (its counters and bias corrections on the GPU),
    which rounds the step size otherwise than the host's float64: how far 300 steps of
    the same gradients drift apart, recorded, and small."""
    generator = torch.Generator(device=CUDA).manual_seed(0)
    shapes = [(200, 784), (1, 200), (784,)]
    start = [torch.randn(s, device=CUDA, generator=generator) for s in shapes]
    gradients = [
        [torch.randn(s, device=CUDA, generator=generator) for s in shapes] for _ in range(300)
    ]
    results = []
    for capturable in (True, False):
        params = [torch.nn.Parameter(p.clone()) for p in start]
        optimizer = torch.optim.Adam(params, lr=1e-3, eps=1e-4, capturable=capturable)
        for step in gradients:
            for p, g in zip(params, step, strict=True):
                p.grad = g.clone()
            optimizer.step()
        results.append(params)
    moved = max((p - s).abs().max().item() for p, s in zip(results[1], start, strict=True))
    drift = max((a - b).abs().max().item() for a, b in zip(*results, strict=True))
    largest = max(p.abs().max().item() for p in results[1])
    record_property(
        "capturable Adam drift after 300 steps",
        f"{drift:.3g}, parameters moved up to {moved:.3g}, largest {largest:.3g}",
    )
    # A few float32 roundings of the largest parameter, no more.
    assert drift <= 16 * torch.finfo(torch.float32).eps * largest


def test_the_triton_likelihood_is_as_close_to_float64_as_torchs_on_cuda(record_property):
    from test_bounds import likelihood_case, likelihood_errors

    from riwae.bounds import triton_usable

    logits, x, grad = likelihood_case(torch.float32)
    logits, x, grad = logits.to(CUDA), x.to(CUDA), grad.to(CUDA)
    assert triton_usable(logits, x.expand_as(logits))
    (value, gradient), (old_value, old_gradient) = likelihood_errors(logits, x, grad)
    record_property(
        "likelihood's largest error, Triton (torch's formula)",
        f"{value:.3g} ({old_value:.3g}) nats, gradient {gradient:.3g} ({old_gradient:.3g})",
    )
    assert value <= 2 * old_value + 1e-5 and gradient <= 2 * old_gradient + 1e-7
