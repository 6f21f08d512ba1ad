import sys

from riwae.checks import identity_markdown, synthetic_identity
from riwae.io import start_log, write_json, write_text
from riwae.targets import cremer2d_target

log = start_log(snakemake.log[0])
settings = snakemake.params.identity
target, proposal = cremer2d_target()
rows = synthetic_identity(
    target,
    proposal,
    settings["k"],
    settings["sample_sets"],
    settings["tolerance"],
    snakemake.params.seed,
)
passed = all(row["passed"] for row in rows)
write_json(
    snakemake.output.json,
    {
        "target": "cremer2d synthetic",
        "log_evidence": target.log_evidence,
        "passed": passed,
        "rows": rows,
    },
)
table = identity_markdown(rows, target.log_evidence)
write_text(snakemake.output.markdown, table)
log.info("L_IWAE[q] = L_VAE[q_IW] on the synthetic target:\n%s", table)
if not passed:
    failed = [row["k"] for row in rows if not row["passed"]]
    log.error(
        "Identity check failed on the synthetic target for k = %s: the largest difference "
        "exceeds the tolerance %g.",
        failed,
        settings["tolerance"],
    )
    sys.exit(1)
