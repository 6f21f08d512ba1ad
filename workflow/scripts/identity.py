import sys

import pandas as pd
import torch

from riwae.checks import (
    identity_markdown,
    model_identity,
    off_by_one_markdown,
    synthetic_identity,
)
from riwae.data import BinarizedMNIST, load_mnist
from riwae.io import start_log, write_json, write_text
from riwae.targets import cremer2d_target
from riwae.train import load_model

log = start_log(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
settings, seed = snakemake.params.identity, snakemake.params.seed
target, proposal = cremer2d_target()
sections = [
    {
        "case": "synthetic 2D target",
        "log_evidence": target.log_evidence,
        "rows": synthetic_identity(
            target, proposal, settings["k"], settings["sample_sets"], settings["tolerance"], seed
        ),
    }
]
test = load_mnist(snakemake.input.data)["test_images"][: settings["model_images"]]
images = BinarizedMNIST(test).fixed(seed=seed)
for name, path in zip(snakemake.params.models, snakemake.input.models, strict=True):
    model, _ = load_model(path)
    rows = model_identity(
        model, images, settings["k"], settings["model_sample_sets"], settings["tolerance"], seed
    )
    sections.append({"case": name, "rows": rows})
    log.info("%s done", name)

failures = [(s["case"], r["k"]) for s in sections for r in s["rows"] if not r["passed"]]
write_json(snakemake.output.json, {"passed": not failures, "sections": sections})
markdown = "\n".join(
    f"## {s['case']}\n\n{identity_markdown(s['rows'], s.get('log_evidence'))}" for s in sections
)
markdown += "\n" + off_by_one_markdown(pd.read_csv(snakemake.input.qiw_distances))
write_text(snakemake.output.markdown, "# L_IWAE[q] = L_VAE[q_IW]\n\n" + markdown)
log.info("\n%s", markdown)
if failures:
    log.error(
        "Identity check failed for %s: the largest difference exceeds the tolerance %g.",
        ", ".join(f"{case} at k = {k}" for case, k in failures),
        settings["tolerance"],
    )
    sys.exit(1)
