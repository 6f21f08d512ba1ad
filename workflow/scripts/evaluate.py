import torch

from riwae.data import evaluation_images
from riwae.evaluate import evaluate_model
from riwae.io import start_log, write_json
from riwae.train import load_model, resolve_device

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings = snakemake.params.evaluation
device = resolve_device(snakemake.params.device)
model, state = load_model(snakemake.input.model, device)
# The test images binarised once with a fixed seed: every model sees the same ones.
x = evaluation_images(snakemake.input.data, settings["test_images"], snakemake.params.seed, device)
result = evaluate_model(model, x, settings["ll_k"], settings["bound_k"], snakemake.params.seed)
result = {"model": snakemake.wildcards.model, **state["settings"], "device": str(device), **result}
log.info("%s", {key: value for key, value in result.items() if key != "posterior_mean_variances"})
write_json(snakemake.output[0], result)
