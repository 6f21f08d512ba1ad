"""Whether flushing denormal floats to zero speeds up CPU training here.

    python benchmarks/denormals.py [--steps 3000]

Two identical ``burda1`` IWAE k = 50 models train from the same seed on real MNIST batches
(torch's Adam at lr 1e-3, batch 20), through the pipeline's own steps
(``benchmarks/throughput.py``'s ``step_timer``), one with ``torch.set_flush_denormal(True)``
and one without, in alternating blocks of 100 steps, one thread; each block's CPU time per
step is printed, and the medians at the end. Early in training a few percent of the
normalised importance weights fall below float32's smallest normal number, where a CPU
without flush-to-zero may compute far slower; flushing changes numbers only below 1.2e-38.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import throughput  # noqa: E402

from riwae.train import TrainSettings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    settings = TrainSettings(
        arch="burda1", objective="iwae", k=50, batch_size=20, lr=1e-3, adam_eps=1e-4,
        schedule="constant", epochs=10, stages=0, seed=0, train_images=60000,
        heldout_images=100,
    )  # fmt: skip
    images = throughput.training_images(settings.train_images)
    device = torch.device("cpu")
    calls = [throughput.step_timer([settings], device, 0, images)[0] for _ in range(2)]
    times = {False: [], True: []}
    for block in range(args.steps // 100):
        for flush, call in zip((False, True), calls, strict=True):
            torch.set_flush_denormal(flush)
            start = time.thread_time()
            for _ in range(100):
                call()
            times[flush].append(10 * (time.thread_time() - start))
        print(
            f"steps {100 * block:5d}-{100 * block + 99:5d}: no flush {times[False][-1]:.1f} ms,"
            f" flush {times[True][-1]:.1f} ms a step",
            flush=True,
        )
    ratios = [a / b for a, b in zip(times[False], times[True], strict=True)]
    print(
        f"median: no flush {statistics.median(times[False]):.1f} ms, flush "
        f"{statistics.median(times[True]):.1f} ms; no flush / flush per block: median "
        f"{statistics.median(ratios):.2f}, {min(ratios):.2f}-{max(ratios):.2f}"
    )


if __name__ == "__main__":
    main()
