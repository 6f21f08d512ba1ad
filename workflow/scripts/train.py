import sys

import torch

from riwae.data import load_mnist
from riwae.io import delete_torch, start_log, write_csv
from riwae.train import TrainingError, TrainSettings, resolve_device, save_model, train_group

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
members = [TrainSettings(**settings) for settings in snakemake.params.settings]
try:
    device = resolve_device(snakemake.params.device)
    data = load_mnist(snakemake.input[0])
    log.info("training %s together on %s", ", ".join(s.name for s in members), device)
    for settings in members:
        log.info("%s: %s", settings.name, settings)
    models, histories, timing = train_group(
        members, data["train_images"], data["test_images"], device, snakemake.params.checkpoint
    )
except TrainingError as error:
    log.error(str(error))
    sys.exit(1)
log.info("wall time per epoch:\n%s", timing.to_string(index=False))
for i, (settings, model, history) in enumerate(zip(members, models, histories, strict=True)):
    log.info("%s history:\n%s", settings.name, history.to_string(index=False))
    write_csv(snakemake.output.histories[i], history)
    write_csv(snakemake.output.timings[i], timing)
    save_model(snakemake.output.models[i], model, settings, device)
delete_torch(snakemake.params.checkpoint)  # the finished models replace the checkpoint
