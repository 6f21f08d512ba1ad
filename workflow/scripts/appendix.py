from riwae.appendix import appendix_arrays
from riwae.io import start_log, write_npz

log = start_log(snakemake.log[0])
settings = snakemake.params.appendix
arrays = appendix_arrays(
    settings["k"],
    settings["steps"],
    settings["sample_sets"],
    settings["lr"],
    settings["draws"],
    snakemake.params.seed,
)
write_npz(snakemake.output[0], arrays)
for key in sorted(k for k in arrays if k.endswith("_q")):
    log.info("%s: mean %.3f, log-variance %.3f", key, *arrays[key])
