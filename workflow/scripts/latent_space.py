import numpy as np
import torch

from riwae.data import BinarizedMNIST, load_mnist
from riwae.io import start_log, write_npz
from riwae.reconstruct import decode_means
from riwae.train import load_model

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
data = load_mnist(snakemake.input.data)
x = BinarizedMNIST(data["test_images"]).fixed(seed=snakemake.params.seed)
model = load_model(snakemake.input.model)[0]
with torch.no_grad():
    means = model.encoder(x)[0].numpy()
# The region holding all but 0.5% of the posterior means at each end, on both axes.
low, high = np.percentile(means, [0.5, 99.5], axis=0)
size = snakemake.params.figures["manifold_size"]
z1 = np.linspace(low[0], high[0], size)
z2 = np.linspace(high[1], low[1], size)  # top row at high z_2, as the scatter plot shows it
grid = torch.tensor(np.stack(np.meshgrid(z1, z2), axis=-1), dtype=torch.float32)
write_npz(
    snakemake.output[0],
    {
        "means": means,
        "labels": data["test_labels"],
        "manifold": decode_means(model, grid).numpy(),
        "extent": np.array([low[0], high[0], low[1], high[1]]),
    },
)
log.info("latent region %s to %s", low, high)
