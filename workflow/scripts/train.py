import sys
from pathlib import Path

import torch

from riwae.data import load_mnist
from riwae.io import start_log, write_csv
from riwae.train import TrainingError, TrainSettings, resolve_device, save_model, train_model

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = TrainSettings(**snakemake.params.settings)
try:
    device = resolve_device(snakemake.params.device)
    data = load_mnist(snakemake.input[0])
    log.info("training %s on %s: %s", snakemake.wildcards.model, device, settings)
    model, history = train_model(
        settings, data["train_images"], data["test_images"], device, snakemake.params.checkpoint
    )
except TrainingError as error:
    log.error(str(error))
    sys.exit(1)
log.info("history:\n%s", history.to_string(index=False))
write_csv(snakemake.output.history, history)
save_model(snakemake.output.model, model, settings, device)
Path(snakemake.params.checkpoint).unlink()  # the finished model replaces the checkpoint
