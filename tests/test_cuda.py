"""What only a GPU can show: the CUDA path gives the CPU's numbers, exactly where it must
(the same test pixels, a resumed run) and within float rounding where the arithmetic
differs (other summation orders). Skipped where no CUDA device is visible;
`python3 benchmarks/gpu_check.py` runs them, with the smoke pipeline on CUDA, whose artifacts
get the CPU run's checks (the `cuda` variants of tests/test_workflow.py)."""

import copy

import pytest
import torch
from test_train import (
    check_group_equals_members_apart,
    check_resume_equals_uninterrupted,
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
def test_resumed_step_counters_stay_on_the_cpu(tmp_path, optimizer):
    member = settings(optimizer=optimizer)
    interrupted(tmp_path / "c.pt", synthetic_images(600), device=CUDA, member=member)
    states = resumed_optimizer_state(tmp_path / "c.pt", [member], CUDA)
    assert states and all(state["step"].device.type == "cpu" for state in states)
    assert all(v.device.type == "cuda" for s in states for k, v in s.items() if k != "step")


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
