"""What TF32 (``matmul_precision: high``) changes, against the spread over training seeds.

    python benchmarks/precision.py [--device cuda] [--epochs 2] [--images 500] [--csv FILE]

Trains one group, ``burda1-iwae-k5`` from three seeds (``config/paper.yaml``'s settings,
its Adam and rates, on MNIST when ``resources/mnist.npz`` is there), once with float32
products at ``highest`` and once at ``high``, and compares: each seed's held-out bound
after training, the two precisions' difference against the standard deviation over the
seeds; then the seed-0 model trained at ``highest``, evaluated at both precisions on the
same test images and draws: the k = 5000 estimate's mean difference (paired, with its
standard error) and the identity L_IWAE[q] = L_VAE[q_IW] (in float64, as the check runs).
Its last line says whether the precision's effect is below the seeds' spread, which is
what ``paper.yaml`` may use ``high`` for. On a CPU both precisions are full float32.
"""

import argparse
import math
import sys
from dataclasses import replace
from pathlib import Path

import torch

from riwae.checks import model_identity
from riwae.config import load_config
from riwae.data import BinarizedMNIST
from riwae.evaluate import iwae_estimate
from riwae.spec import model_specs
from riwae.train import train_group

sys.path.insert(0, str(Path(__file__).resolve().parent))
from throughput import at_precision, training_images  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-images", type=int, default=60000)
    parser.add_argument("--images", type=int, default=500, help="test images of the estimate")
    parser.add_argument("--ll-k", type=int, default=5000)
    parser.add_argument("--out", type=Path, default=Path("results/precision"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    device = torch.device(args.device)
    config = load_config("config/paper.yaml")
    one_model = {
        **config,
        "models": [{"arch": "burda1", "objective": "iwae", "k": 5}],
        "seeds": [0, 1, 2],
    }
    members = [
        replace(
            spec.settings,
            schedule="constant",
            epochs=args.epochs,
            train_images=args.train_images,
        )
        for spec in model_specs(one_model)
    ]
    images = training_images(60000)
    heldout, models = {}, {}
    for precision in ("highest", "high"):
        checkpoint = args.out / f"{precision}.pt"
        checkpoint.unlink(missing_ok=True)
        trained, histories, _ = at_precision(
            precision,
            lambda path=checkpoint: train_group(
                members, images, images[-1000:], device, path, progress=False
            ),
        )
        heldout[precision] = torch.tensor([h.heldout_bound.iloc[-1] for h in histories])
        models[precision] = trained[0]
    spread = heldout["highest"].std().item()
    effect = (heldout["high"] - heldout["highest"]).abs().max().item()
    print(
        f"held-out bound after {args.epochs} epochs, seeds 0-2: highest "
        f"{[round(v, 3) for v in heldout['highest'].tolist()]}, high "
        f"{[round(v, 3) for v in heldout['high'].tolist()]}; largest difference {effect:.3g} "
        f"nats, sd over seeds {spread:.3g}"
    )
    model = models["highest"]
    x = BinarizedMNIST(images[-args.images :], device).fixed(seed=0)
    estimates = {
        precision: at_precision(
            precision,
            lambda: iwae_estimate(model, x, args.ll_k, torch.Generator(device).manual_seed(1)),
        ).double()
        for precision in ("highest", "high")
    }
    paired = estimates["high"] - estimates["highest"]
    standard_error = paired.std().item() / math.sqrt(len(paired))
    identity = {
        precision: max(
            row["max_abs_diff"]
            for row in at_precision(
                precision,
                lambda: model_identity(model.double(), x[:5].double(), [1, 50, 1000], 5, 1e-10, 0),
            )
        )
        for precision in ("highest", "high")
    }
    model.float()
    print(
        f"the same model's k = {args.ll_k} estimate on {args.images} test images: high - "
        f"highest = {paired.mean().item():.3g} +- {standard_error:.3g} nats (mean "
        f"{estimates['highest'].mean().item():.4g}); identity's largest difference "
        f"{identity['highest']:.3g} (highest), {identity['high']:.3g} (high)"
    )
    below = effect < spread and abs(paired.mean().item()) < spread
    print(
        f"TF32 effect {'below' if below else 'NOT below'} the spread over seeds: "
        f"training {effect:.3g} and estimate {abs(paired.mean().item()):.3g} nats against "
        f"sd {spread:.3g}"
    )


if __name__ == "__main__":
    main()
