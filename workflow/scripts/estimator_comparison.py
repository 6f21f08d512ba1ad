import numpy as np
import pandas as pd

from riwae.io import start_log, write_csv, write_text
from riwae.posterior import unflatten_digits
from riwae.tables import estimator_comparison, estimator_markdown

log = start_log(snakemake.log[0])
evaluation = pd.read_csv(snakemake.input.evaluation)
reconstruction = (
    pd.read_csv(snakemake.input.reconstruction)
    if snakemake.input.reconstruction
    else pd.DataFrame(columns=["model", "source", "log_p_x_given_z"])
)
posteriors = {}
for name, path in zip(snakemake.params.models_2d, snakemake.input.posteriors, strict=True):
    with np.load(path) as arrays:
        posteriors[name] = unflatten_digits({key: arrays[key] for key in arrays.files})
table = estimator_comparison(evaluation, reconstruction, posteriors)
markdown = estimator_markdown(table)
write_csv(snakemake.output.table, table)
write_text(snakemake.output.markdown, markdown)
log.info("gradient estimators compared:\n%s", markdown)
