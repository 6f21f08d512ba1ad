from pathlib import Path

from riwae.data import ARRAY_SHA256
from riwae.io import start_log, write_json
from riwae.provenance import build_manifest

log = start_log(snakemake.log[0])
manifest = build_manifest(
    snakemake.params.config,
    Path(snakemake.output[0]).parent,
    snakemake.input.data,
    snakemake.input.models,
    snakemake.input.artifacts,
)
manifest["data"]["arrays_sha256"] = ARRAY_SHA256  # verified whenever the data are loaded
write_json(snakemake.output[0], manifest)
log.info("manifest of %d artifacts, commit %s", len(manifest["artifacts"]), manifest["git"])
