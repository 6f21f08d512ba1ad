import sys

from riwae.data import DataError, prepare_mnist
from riwae.io import start_log

log = start_log(snakemake.log[0])
try:
    hashes = prepare_mnist(snakemake.params.source, snakemake.params.cache_dir, snakemake.output[0])
except DataError as error:
    log.error(str(error))
    sys.exit(1)
for name, digest in hashes.items():
    log.info("%s sha256 %s (verified)", name, digest)
