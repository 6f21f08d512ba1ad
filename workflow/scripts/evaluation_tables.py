from riwae.io import start_log, write_csv, write_text
from riwae.tables import burda_comparison, burda_markdown, evaluation_table, training_times

log = start_log(snakemake.log[0])
evaluation, histories = evaluation_table(snakemake.input.evaluations, snakemake.input.histories)
burda = burda_comparison(evaluation)
write_csv(snakemake.output.evaluation, evaluation)
write_csv(snakemake.output.histories, histories)
times = training_times(snakemake.params.models, snakemake.input.timings)
write_csv(snakemake.output.training_times, times)
write_csv(snakemake.output.burda, burda)
markdown = burda_markdown(burda)
write_text(snakemake.output.burda_markdown, markdown)
log.info("evaluation:\n%s\n\n%s", evaluation.to_string(index=False), markdown)
