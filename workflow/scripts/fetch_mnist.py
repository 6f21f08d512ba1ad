from riwae.data import prepare_mnist
from riwae.io import start_log

log = start_log(snakemake.log[0])
hashes = prepare_mnist(snakemake.params.source, snakemake.params.cache_dir, snakemake.output[0])
for name, digest in hashes.items():
    log.info("%s sha256 %s (verified)", name, digest)
