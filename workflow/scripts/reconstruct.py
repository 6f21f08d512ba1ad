import numpy as np
import pandas as pd
import torch

from riwae.data import BinarizedMNIST, chosen_images, load_mnist
from riwae.io import start_log, write_csv, write_npz
from riwae.reconstruct import decode_means, q_and_qiw_draws, reconstruction_metric
from riwae.train import load_model

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings, seed = snakemake.params.figures, snakemake.params.seed
test = BinarizedMNIST(load_mnist(snakemake.input.data)["test_images"]).fixed(seed=seed)
k = settings["reconstruction_k"]
indices = torch.tensor(chosen_images(settings["reconstruction_digits"], len(test), seed))
rows, arrays = [], {}
for name, path in zip(snakemake.params.models, snakemake.input.models, strict=True):
    model = load_model(path)[0]
    metric = reconstruction_metric(model, test, k, settings["metric_draws"], seed)
    rows += [{"model": name, "k": k, "test_images": len(test), **row} for row in metric]
    if name == settings["reconstruction_model"]:
        generator = torch.Generator().manual_seed(seed)
        z_q, z_qiw = q_and_qiw_draws(
            model, test[indices], settings["reconstruction_draws"], k, generator
        )
        arrays = {
            "real": test[indices].reshape(-1, 28, 28).numpy(),
            "from_q": decode_means(model, z_q).transpose(0, 1).numpy(),
            "from_qiw": decode_means(model, z_qiw).transpose(0, 1).numpy(),
            "indices": indices.numpy(),
            "model": np.array(name),
        }
table = pd.DataFrame(rows)
log.info("reconstruction metric over the test set:\n%s", table.to_string(index=False))
write_csv(snakemake.output.metric, table)
write_npz(snakemake.output.arrays, arrays)
