# riwae: replication pipeline of "Reinterpreting Importance-Weighted Autoencoders".
# `snakemake --cores all` runs every stage of the default config; see README.md.
from snakemake.utils import min_version

min_version("8.20")


configfile: "config/config.yaml"


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/posterior.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/identity.smk"
include: "workflow/rules/figures.smk"
include: "workflow/rules/exact_loglik.smk"
include: "workflow/rules/report.smk"


rule all:
    default_target: True
    input:
        "resources/mnist.npz",
        ARTIFACTS,
        rules.manifest.output,
        rules.notebook.output,


onsuccess:
    # The Snakemake report of the run, made after every successful run with the same
    # command-line options (configfiles, --config), so that it always matches the results.
    make_report(f"{RUN}/report.html")
