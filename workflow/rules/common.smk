from snakemake.exceptions import WorkflowError
from snakemake.utils import validate

from riwae.config import validation_sentence

try:
    validate(config, "../schemas/config.schema.yaml")
except WorkflowError as error:
    # Snakemake raises this while handling jsonschema's ValidationError: say it in one sentence.
    cause = error.__cause__ or error.__context__
    if not hasattr(cause, "absolute_path"):
        raise
    raise WorkflowError(validation_sentence(cause)) from None

# Every artifact of a run lives under results/<run>/.
RUN = f"results/{config['run']}"
