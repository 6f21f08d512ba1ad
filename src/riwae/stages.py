"""The pipeline's stages: what each Snakemake rule reads, computes and writes. Each rule's
`run:` block calls the function of its name here with the rule's named inputs, outputs and
params, its log file and, for the heavy ones, its thread count.

A stage reads its inputs (every artifact checked against the SHA-256 recorded when it was
written, ``riwae.io``; every model file checked to be the model its spec names,
``riwae.spec.load_model``), calls one function of the library, which owns every computation,
and writes its outputs (each with its SHA-256 recorded). How a job runs (its log, threads,
device and precision) and how it fails are settled once, by ``stage``.

The Snakefile imports this module on every Snakemake call, dry runs included, so each stage
imports the heavy libraries (torch, pandas, matplotlib) itself, when it runs.
"""

import contextlib
import functools
import inspect
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from snakemake.exceptions import WorkflowError

from riwae.html_tables import frame_page, markdown_page
from riwae.io import (
    UserError,
    read_csv,
    read_json,
    read_npz,
    read_npz_list,
    start_log,
    verify_artifacts,
    write_artifact,
    write_csv,
    write_json,
    write_npz,
    write_npz_list,
    write_text,
)

log = logging.getLogger("riwae")


def stage(function):
    """A stage, run as a job: its log goes to ``log_file`` (and standard error), the
    process keeps the memory its tensors free (``riwae.device.reuse_freed_memory``), its
    matrix products run on ``threads`` CPU threads at ``matmul_precision``, and a stage that takes
    ``device`` gets it as a ``torch.device``, on CUDA one of the ``jobs_per_gpu`` slots of a
    GPU, held for the job's lifetime (``riwae.device.claim_device``, locks under
    ``gpu_locks``). A stage that names ``log_file`` among its own
    parameters gets it too.

    A problem the user can fix (``UserError``: a damaged, edited or missing input, a model
    file of another model, a failed check, a non-finite training bound, a full disk) stops
    the stage with its one sentence, in the stage's log and in Snakemake's error, without a
    traceback."""
    wants_log_file = "log_file" in inspect.signature(function).parameters

    @functools.wraps(function)
    def run(
        *args,
        log_file,
        threads=None,
        matmul_precision=None,
        gpu_locks=None,
        jobs_per_gpu=1,
        **kwargs,
    ):
        try:
            with contextlib.ExitStack() as job:
                start_log(log_file)
                from riwae.device import reuse_freed_memory

                reuse_freed_memory()
                if threads is not None:
                    import torch

                    torch.set_num_threads(threads)
                if matmul_precision is not None:
                    from riwae.device import set_matmul_precision

                    set_matmul_precision(matmul_precision)
                if "device" in kwargs:
                    from riwae.device import claim_device

                    kwargs["device"] = job.enter_context(
                        claim_device(kwargs["device"], gpu_locks, jobs_per_gpu)
                    )
                if wants_log_file:
                    kwargs["log_file"] = log_file
                return function(*args, **kwargs)
        except UserError as error:
            # In the stage's log file (on standard error when the log cannot be written, as
            # on a full disk); Snakemake shows it to the user once, as its error.
            try:
                with open(log_file, "a") as log_text:
                    log_text.write(f"{error}\n")
            except OSError:
                print(error, file=sys.stderr)
            raise WorkflowError(str(error)) from None

    return run


def write_markdown(markdown, html, text: str, title: str) -> None:
    """A stage's pipe tables ``text`` as markdown and as the report's HTML page ``title``,
    and in the stage's log."""
    write_text(markdown, text)
    write_text(html, markdown_page(text, title))
    log.info("\n%s", text)


@stage
def fetch_mnist(mnist, source, cache_dir):
    from riwae.data import prepare_mnist

    for name, digest in prepare_mnist(source, cache_dir, mnist).items():
        log.info("%s sha256 %s (verified)", name, digest)


@stage
def train(
    mnist,
    models,
    histories,
    timings,
    settings,
    checkpoint,
    device,
    checkpoint_minutes=0,
    cuda_graphs=0,
):
    """C4's models: one group of models trained as one stacked network (riwae.train)."""
    from riwae.data import load_mnist
    from riwae.io import delete_artifact
    from riwae.spec import save_group
    from riwae.train import TrainSettings, train_group

    members = [TrainSettings(**member) for member in settings]
    data = load_mnist(mnist)
    trained, member_histories, timing = train_group(
        members,
        data["train_images"],
        data["test_images"],
        device,
        checkpoint,
        checkpoint_seconds=60 * checkpoint_minutes,
        cuda_graphs=cuda_graphs,
    )
    paths = {"models": models, "histories": histories, "timings": timings}
    save_group(paths, members, trained, member_histories, timing, device)
    delete_artifact(checkpoint)  # the finished models replace the checkpoint


@stage
def posterior_grid(arrays, distances, distances_html, settings, seed):
    """Figure 1's data: q_IW of the synthetic target on a grid, and its distance to the
    posterior for each k."""
    from riwae.posterior import synthetic_posterior_grid

    grid_arrays, table = synthetic_posterior_grid(settings, seed)
    log.info("q_IW against the true posterior on the grid:\n%s", table.to_string(index=False))
    write_npz(arrays, grid_arrays)
    write_csv(distances, table)
    title = "Distance from q_IW to the true posterior (synthetic 2D target)"
    write_text(distances_html, frame_page(table, title))


@stage
def posterior_figure(arrays, png, pdf, figure_k, style):
    from riwae.plots import posterior_panels, save_figure

    save_figure(posterior_panels(read_npz(arrays), figure_k, style), [png, pdf], style["dpi"])


@stage
def identity(data, models, qiw_distances, check, table, table_html, settings, specs, seed):
    """C3: both sides of the identity per sample set, on the synthetic target and on every
    trained model; a difference above the tolerance fails the stage, before it writes."""
    from riwae.checks import identity_check, identity_failure, identity_report
    from riwae.data import binarized_test_images
    from riwae.spec import load_models

    images = binarized_test_images(data, seed, settings["model_images"])
    result = identity_check(load_models(models, specs), images, settings, seed)
    markdown = identity_report(result, read_csv(qiw_distances))
    log.info("\n%s", markdown)
    failure = identity_failure(result)
    if failure:
        raise UserError(failure)
    write_json(check, result)
    write_text(table, "# L_IWAE[q] = L_VAE[q_IW]\n\n" + markdown)
    write_text(table_html, markdown_page(markdown, "L_IWAE[q] = L_VAE[q_IW], per sample set"))


@stage
def marginal(data, models, table, over_seeds, markdown, html, settings, specs, seed):
    """C3: the marginal q_IW among the bounds, for the synthetic target and test digits
    under each 2D model (every training seed)."""
    from riwae.data import binarized_test_images, chosen_images
    from riwae.marginal import marginal_markdown, marginal_over_seeds, marginal_table
    from riwae.spec import load_models

    test = binarized_test_images(data, seed)
    indices = chosen_images(settings["digits"], len(test), seed)
    result = marginal_table(load_models(models, specs), test[indices], indices, settings, seed)
    spread = marginal_over_seeds(result)
    write_csv(table, result)
    write_csv(over_seeds, spread)
    text = marginal_markdown(result, spread)
    write_markdown(markdown, html, text, "The marginal q_IW among the bounds")


@stage
def marginal_figure(table, png, pdf, specs, style):
    """The synthetic target and the first-seed models (``specs``)."""
    from riwae.plots import marginal_bounds, model_looks, save_figure
    from riwae.spec import spec_table

    looks = model_looks(spec_table(specs))
    cases = read_csv(table)
    shown = cases[(cases.image < 0) | cases.case.isin(list(looks))]
    figure = marginal_bounds(shown, looks, style)
    save_figure(figure, [png, pdf], style["dpi"])


@stage
def evaluate(data, model, result, spec, settings, seed, device):
    """C4: the test log-likelihood, the IWAE bounds and the active units of one model."""
    from riwae.data import binarized_test_images
    from riwae.evaluate import evaluation_record
    from riwae.spec import ModelSpec, load_model

    spec = ModelSpec.of(spec)
    vae = load_model(model, spec, device)
    x = binarized_test_images(data, seed, settings["test_images"], device)
    record = evaluation_record(spec, vae, x, settings, seed)
    shown = {key: value for key, value in record.items() if key != "posterior_mean_variances"}
    log.info("%s", shown)
    write_json(result, record)


@stage
def evaluation_tables(
    evaluations,
    histories,
    timings,
    evaluation,
    evaluation_html,
    burda,
    burda_markdown,
    burda_html,
    history,
    training_times,
    specs,
):
    """C4: every model's evaluation in one table, beside Burda et al.'s Table 1."""
    from riwae.evaluate import read_evaluations
    from riwae.spec import ModelSpec
    from riwae.tables import evaluation_tables as tables

    specs = list(map(ModelSpec.of, specs))
    records = read_evaluations(evaluations, specs)
    made = tables(records, list(map(read_csv, histories)), list(map(read_csv, timings)), specs)
    write_csv(evaluation, made["evaluation"])
    write_text(evaluation_html, made["evaluation_html"])
    write_csv(history, made["history"])
    write_csv(training_times, made["training_times"])
    write_csv(burda, made["burda"])
    write_text(burda_markdown, made["burda_markdown"])
    write_text(burda_html, made["burda_html"])
    table = made["evaluation"].to_string(index=False)
    log.info("evaluation:\n%s\n\n%s", table, made["burda_markdown"])


@stage
def training_figures(evaluation, history, curves, curves_pdf, bounds, bounds_pdf, style):
    from riwae.plots import save_figure, training_figures

    curves_figure, bounds_figure = training_figures(read_csv(evaluation), read_csv(history), style)
    save_figure(curves_figure, [curves, curves_pdf], style["dpi"])
    save_figure(bounds_figure, [bounds, bounds_pdf], style["dpi"])


@stage
def reconstruct(
    data, models, arrays, metric, metric_over_seeds, metric_html, settings, specs, seed
):
    """C2: decodes of q and q_IW draws for Figure 2, and the metric over the test set for
    every trained 2D model, and over its seeds."""
    from riwae.data import binarized_test_images
    from riwae.reconstruct import reconstructions
    from riwae.spec import load_models

    test = binarized_test_images(data, seed)
    table, summary, figure_arrays = reconstructions(
        load_models(models, specs), test, settings, seed
    )
    log.info("reconstruction metric over the test set:\n%s", table.to_string(index=False))
    log.info("over seeds:\n%s", summary.to_string(index=False))
    write_csv(metric, table)
    write_csv(metric_over_seeds, summary)
    title = "Decodes of draws from q and from q_IW over the test set (mean over seeds)"
    write_text(metric_html, frame_page(summary, title))
    write_npz(arrays, figure_arrays)


@stage
def reconstruction_figure(arrays, png, pdf, style):
    from riwae.plots import reconstructions, save_figure

    figure_arrays = read_npz(arrays)
    figure = reconstructions(
        figure_arrays["real"], figure_arrays["from_q"], figure_arrays["from_qiw"], style
    )
    save_figure(figure, [png, pdf], style["dpi"])


@stage
def digit_posteriors(data, model, arrays, spec, settings, ks, seed):
    """True posteriors and q_IW of test digits under one 2D model, each on its own grid."""
    from riwae.data import binarized_test_images
    from riwae.posterior import digit_posterior_arrays
    from riwae.spec import load_model

    test = binarized_test_images(data, seed)
    digits = digit_posterior_arrays(load_model(model, spec), test, ks, settings, seed)
    write_npz_list(arrays, digits)
    log.info("posteriors of test images %s on their grids", [int(d["index"]) for d in digits])


@stage
def digit_posteriors_table(arrays, table, over_seeds, markdown, html, specs, ks):
    """How close q_IW comes to the true posterior of real digits under each 2D model (every
    training seed): total variation distances per digit and k, and over seeds."""
    from riwae.posterior import (
        digit_distances,
        digit_distances_markdown,
        digit_distances_over_seeds,
    )
    from riwae.spec import ModelSpec

    digits = {
        ModelSpec.of(spec): read_npz_list(path) for spec, path in zip(specs, arrays, strict=True)
    }
    distances = digit_distances(digits, ks)
    spread = digit_distances_over_seeds(distances)
    write_csv(table, distances)
    write_csv(over_seeds, spread)
    text = digit_distances_markdown(spread)
    write_markdown(markdown, html, text, "q_IW against the true posterior of test digits")


@stage
def digit_posteriors_figure(arrays, png, pdf, ks, style, model_name):
    from riwae.plots import digit_posterior_panels, save_figure

    title = f"{model_name}: true posterior and $q_{{IW}}$ of test digits"
    figure = digit_posterior_panels(read_npz_list(arrays), ks, title, style)
    save_figure(figure, [png, pdf], style["dpi"])


@stage
def latent_space(data, model, arrays, spec, manifold_size, seed):
    """The 2D latent space of one model: posterior means of the test images, and decodes
    over the region they cover."""
    from riwae.data import binarized_test_images, load_mnist
    from riwae.reconstruct import latent_space_arrays
    from riwae.spec import load_model

    x = binarized_test_images(data, seed)
    labels = load_mnist(data)["test_labels"]
    space = latent_space_arrays(load_model(model, spec), x, labels, manifold_size)
    write_npz(arrays, space)
    log.info("latent region %s", space["extent"])


@stage
def latent_space_figure(arrays, png, pdf, style, model_name):
    from riwae.plots import latent_space_panels, save_figure

    space = read_npz(arrays)
    figure = latent_space_panels(
        space["means"],
        space["labels"],
        space["manifold"],
        tuple(space["extent"]),
        f"{model_name}: the 2D latent space",
        style,
    )
    save_figure(figure, [png, pdf], style["dpi"])


@stage
def appendix(arrays, settings, seed):
    """C5: SVI and W-SVI fits to the trimodal 1D posterior, and q_IW samples of each."""
    from riwae.appendix import appendix_arrays

    fits = appendix_arrays(
        settings["k"],
        settings["steps"],
        settings["sample_sets"],
        settings["lr"],
        settings["draws"],
        seed,
    )
    write_npz(arrays, fits)
    log.info("fits (mean, log-variance): %s", {k: v for k, v in fits.items() if k.endswith("_q")})


@stage
def appendix_figure(arrays, png, pdf, style):
    from riwae.plots import appendix_1d, save_figure

    save_figure(appendix_1d(read_npz(arrays), style), [png, pdf], style["dpi"])


@stage
def estimator_comparison(evaluation, reconstruction, posteriors, table, markdown, html, models_2d):
    """Models that differ only in their gradient estimator, side by side (riwae.tables)."""
    from riwae.tables import estimator_markdown, estimator_table

    digits = dict(zip(models_2d, map(read_npz_list, posteriors), strict=True))
    metric = read_csv(reconstruction) if reconstruction else None
    compared = estimator_table(read_csv(evaluation), metric, digits)
    text = estimator_markdown(compared)
    write_csv(table, compared)
    write_text(markdown, text)
    write_text(html, frame_page(compared, "Gradient estimators compared"))
    log.info("gradient estimators compared:\n%s", text)


@stage
def exact_loglik(
    data,
    models,
    evaluations,
    table,
    over_seeds,
    markdown,
    html,
    per_image,
    arrays,
    settings,
    test_images,
    specs,
    seed,
    device,
):
    """log p(x) of every 2D model (every training seed) on the evaluation's test images, by
    quadrature (riwae.exact), beside the k = 5000 estimate of the evaluate stage."""
    from riwae.data import binarized_test_images
    from riwae.evaluate import read_evaluations
    from riwae.exact import exact_loglik_tables, summary_markdown
    from riwae.spec import ModelSpec, load_models

    specs = list(map(ModelSpec.of, specs))
    x = binarized_test_images(data, seed, test_images, device)
    every_image, summary, spread, panels = exact_loglik_tables(
        load_models(models, specs, device), read_evaluations(evaluations, specs), x, settings
    )
    write_csv(per_image, every_image)
    write_csv(table, summary)
    write_csv(over_seeds, spread)
    write_npz_list(arrays, panels)
    text = summary_markdown(summary, spread)
    write_markdown(markdown, html, text, "Exact log p(x) of the 2D models and the estimate")


@stage
def exact_loglik_figure(per_image, arrays, png, pdf, models, style):
    """The figure of the first-seed models (``models``, by name)."""
    from riwae.plots import exact_loglik_panels, save_figure

    every_image = read_csv(per_image)
    shown = every_image[every_image.model.isin(models)]
    figure = exact_loglik_panels(shown, read_npz_list(arrays), style)
    save_figure(figure, [png, pdf], style["dpi"])


@stage
def run_config(resolved, config):
    """The run's config as Snakemake resolved it: every config file and --config merged."""
    import yaml

    write_text(resolved, yaml.safe_dump(config, sort_keys=False))
    log.info("wrote %s", resolved)


@stage
def manifest(data, models, artifacts, manifest, config):
    """The run's provenance and the SHA-256 of every artifact, each checked against the hash
    recorded when it was written (riwae.provenance)."""
    from riwae.provenance import build_manifest

    record = build_manifest(config, Path(manifest).parent, data, models, artifacts)
    write_json(manifest, record)
    log.info("manifest of %d artifacts, commit %s", len(record["artifacts"]), record["git"])


def run_tool(command: list[str], what: str, log_file, **options) -> None:
    """Run another program of the environment; its output goes to the stage's log, and a
    failure is one sentence naming ``what`` failed, with the output's last lines."""
    result = subprocess.run(command, capture_output=True, text=True, **options)
    Path(log_file).write_text(f"{' '.join(command)}\n\n{result.stdout}{result.stderr}")
    if result.returncode != 0:
        lines = [line.strip() for line in result.stderr.splitlines() if line.strip()]
        raise UserError(f"{what}: {' '.join(lines[-4:])} (the whole output is in {log_file}).")


@stage
def notebook(notebook, manifest, html, log_file):
    """The exploration notebook executed on the run folder, as HTML; it reads the manifest
    and the artifacts the manifest lists, each checked first against its recorded hash."""
    run_dir = Path(html).parent
    verify_artifacts(read_json(manifest)["artifacts"])
    with tempfile.TemporaryDirectory(dir=run_dir, prefix=".notebook.") as executed:
        command = [
            sys.executable,  # the environment that runs Snakemake has nbconvert
            *("-m", "jupyter", "nbconvert", "--to", "html", "--execute", notebook),
            *("--output-dir", executed, "--output", Path(html).stem),
        ]
        environment = {**os.environ, "RIWAE_RUN_DIR": str(run_dir.resolve())}
        what = f"Executing {notebook} on {run_dir} failed"
        run_tool(command, what, log_file, env=environment)
        write_artifact(html, (Path(executed) / Path(html).name).read_bytes())


@stage
def html_report(report, resolved_config, artifacts, snakefile, log_file):
    """Snakemake's self-contained HTML report of the run, made by Snakemake itself from the
    run's resolved config, once every artifact it shows is checked against its recorded
    hash. A report that cannot be made fails the stage, naming the cause."""
    verify_artifacts([resolved_config, *artifacts])
    with tempfile.TemporaryDirectory(dir=Path(report).parent, prefix=".report.") as made:
        draft = Path(made) / Path(report).name
        command = [
            *(sys.executable, "-m", "snakemake", "--snakefile", snakefile),
            *("--configfile", resolved_config, "--report", str(draft), "--nolock"),
        ]
        run_tool(command, f"Could not write the report {report}", log_file)
        write_artifact(report, draft.read_bytes())


@stage
def gradient_snr(data, model, table, spec, settings, seed, device):
    """The signal-to-noise ratio of the encoder's and the decoder's gradient of the IWAE
    bound at a trained model's weights, for each k and estimator (riwae.snr)."""
    from riwae.data import binarized_test_images
    from riwae.snr import model_snr
    from riwae.spec import ModelSpec, load_model

    spec = ModelSpec.of(spec)
    x = binarized_test_images(data, seed, settings["images"], device)
    result = model_snr(load_model(model, spec, device), x, settings, seed)
    result.insert(0, "model", spec.name)
    log.info("\n%s", result.to_string(index=False))
    write_csv(table, result)


@stage
def gradient_snr_tables(tables, table, markdown, html, slopes):
    """Every model's gradient SNR in one table, its markdown and the slopes in k."""
    import pandas as pd

    from riwae.snr import snr_markdown, snr_slopes

    every = pd.concat([read_csv(path) for path in tables], ignore_index=True)
    write_csv(table, every)
    write_csv(slopes, snr_slopes(every))
    write_markdown(markdown, html, snr_markdown(every), "Gradient signal-to-noise ratio against k")


@stage
def gradient_snr_figure(table, png, pdf, style):
    from riwae.plots import gradient_snr, save_figure

    save_figure(gradient_snr(read_csv(table), style), [png, pdf], style["dpi"])


@stage
def through_qiw(
    data, models, exact, reconstruction, per_image, table, markdown, html, settings,
    test_images, specs, seed, device
):  # fmt: skip
    """Each 2D model's q and q_IW measured exactly (riwae.through_qiw): log p(x) and the
    posterior's area from the exact_loglik stage's quadrature, the ELBO, KL(q || p(z|x))
    per image, L_IWAE - ELBO at its sample budget, q's area against the posterior's, and
    the reconstruction gain; over every seed."""
    from riwae.data import binarized_test_images
    from riwae.spec import load_models
    from riwae.through_qiw import objectives_markdown, objectives_tables

    x = binarized_test_images(data, seed, test_images, device)
    metric = read_csv(reconstruction)
    gains = metric[metric.source == "q_IW - q"].set_index("model").log_p_x_given_z
    every_image, summary = objectives_tables(
        load_models(models, specs, device), x, read_csv(exact), gains, settings, seed
    )
    write_csv(per_image, every_image)
    write_csv(table, summary)
    text = objectives_markdown(summary)
    write_markdown(markdown, html, text, "Each objective's q and q_IW on the 2D models")


@stage
def through_qiw_posteriors(data, models, arrays, specs, figure_k, settings, seed):
    """One test digit's posterior with q and q_IW under each 2D model (the first digit of
    the digit_posteriors stage), for the objectives figure."""
    from riwae.data import binarized_test_images
    from riwae.posterior import digit_posterior_arrays
    from riwae.spec import load_models

    test = binarized_test_images(data, seed)
    one_digit = {**settings, "posterior_digits": 1}
    digits = [
        {**digit, "label": spec.name}
        for spec, model in load_models(models, specs).items()
        for digit in digit_posterior_arrays(model, test, figure_k, one_digit, seed)
    ]
    write_npz_list(arrays, digits)
    log.info("test image %s under each 2D model", int(digits[0]["index"]))


@stage
def through_qiw_figure(arrays, png, pdf, figure_k, style):
    from riwae.plots import digit_posterior_panels, save_figure

    digits = read_npz_list(arrays)
    title = f"test image {int(digits[0]['index'])}: q and q_IW under each objective"
    figure = digit_posterior_panels(digits, figure_k, title, style)
    save_figure(figure, [png, pdf], style["dpi"])
