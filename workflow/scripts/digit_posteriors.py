import torch

from riwae.data import BinarizedMNIST, chosen_images, load_mnist
from riwae.io import start_log, write_npz
from riwae.posterior import digit_posterior_arrays, flatten_digits
from riwae.train import load_model

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings, seed = snakemake.params.figures, snakemake.params.seed
test = load_mnist(snakemake.input.data)["test_images"]
indices = chosen_images(settings["posterior_digits"], len(test), seed)
images = BinarizedMNIST(test).fixed(seed=seed)[indices].double()
model = load_model(snakemake.input.model)[0].double()
digits = digit_posterior_arrays(
    model,
    images,
    indices,
    snakemake.params.ks,
    settings["posterior_grid_limit"],
    settings["posterior_grid_size"],
    settings["posterior_sample_sets"],
    torch.Generator().manual_seed(seed),
)
write_npz(snakemake.output[0], flatten_digits(digits))
log.info("posteriors of test images %s on their grids", indices)
