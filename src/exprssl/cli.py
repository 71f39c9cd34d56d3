"""The `exprssl` command line. Every user-facing problem is one line on stderr and exit code 2."""

from __future__ import annotations

import functools
import json
import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from .errors import ConfigError, ExprsslError

app = typer.Typer(
    name="exprssl",
    help="Self-supervised representation learning on bulk gene-expression data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(soft_wrap=True)
err_console = Console(stderr=True)

DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Expression file (h5ad, csv/tsv[.gz], parquet, gct, "
        "ARCHS4 .h5) or a bundled dataset name (see `exprssl datasets`).",
    ),
]
LabelsOpt = Annotated[
    Path | None,
    typer.Option("--labels", help="Sample sheet (csv/tsv/parquet) joined on sample id."),
]
LabelIdOpt = Annotated[
    str | None,
    typer.Option(
        "--label-id-column", help="Sample-id column of --labels (default: its first column)."
    ),
]
OrientOpt = Annotated[
    str,
    typer.Option(
        "--orientation",
        help="For csv/tsv/parquet: auto (the way round "
        "--labels names the samples, else the longer axis as genes), "
        "samples_in_rows or genes_in_rows.",
    ),
]
StreamOpt = Annotated[
    bool | None,
    typer.Option(
        "--stream/--no-stream",
        help="Read an .h5ad from disk in "
        "blocks instead of loading it (default: when it would not fit "
        "comfortably in memory). A store always streams.",
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="YAML file with any of this command's options; flags given on the command line win.",
    ),
]


def _fail(message: str) -> None:
    err_console.print(f"[bold red]exprssl: error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


def user_errors(fn):
    """Turn exprssl's own exceptions (and missing files) into one line and exit 2, no traceback."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except ExprsslError as e:
            _fail(str(e))
        except FileNotFoundError as e:
            _fail(f"{e.filename or e}: no such file")
        except OSError as e:  # a disk that filled up, a permission that changed mid-run
            _fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None
        except typer.Exit:
            raise
        except Exception as e:  # a bug, not the user's input: one line, the traceback on request
            if os.environ.get("EXPRSSL_DEBUG"):
                raise
            err_console.print(
                f"[bold red]exprssl: internal error:[/] {type(e).__name__}: "
                f"{str(e).strip().splitlines()[0] if str(e).strip() else ''} (a bug: please report "
                "it; EXPRSSL_DEBUG=1 shows the traceback)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1) from None

    return wrapper


class _OneLine(logging.Formatter):
    """``exprssl: warning: <message>`` on one line, however wide the terminal."""

    def format(self, record: logging.LogRecord) -> str:
        text = " ".join(super().format(record).split())
        return (
            text
            if record.levelno < logging.WARNING
            else f"exprssl: {record.levelname.lower()}: {text}"
        )


def _setup_logging(verbose: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLine("%(message)s"))
    logger = logging.getLogger("exprssl")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.setLevel(
        logging.DEBUG if verbose else logging.INFO
    )  # info (label matches) is shown by default
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logging.getLogger(name).setLevel(logging.WARNING if verbose else logging.ERROR)


def _warning_to_log(message, category, filename, lineno, file=None, line=None) -> None:
    """Python warnings (numpy, scikit-learn, anndata) as one ``exprssl: warning:`` line through
    the same logger, without the source path and code line Python prints."""
    logging.getLogger("exprssl").warning("%s", message)


def _check_environment() -> None:
    """What would fail obscurely later: a working directory removed from under the shell (oneMKL
    aborts on it), a thread count that is not a positive integer."""
    from .threads import user_threads

    try:
        os.getcwd()
    except FileNotFoundError:
        raise ConfigError(
            "the current working directory no longer exists (removed after this shell entered "
            "it); cd to an existing directory and run again"
        ) from None
    user_threads()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="More log output.")] = False,
):
    _setup_logging(verbose)
    import warnings

    warnings.showwarning = _warning_to_log
    try:
        _check_environment()
    except ExprsslError as e:
        _fail(str(e))


def read_config(path: Path | None) -> dict:
    if path is None:
        return {}
    import yaml

    if path.is_dir():
        raise ConfigError(f"{path}: is a directory; --config takes a YAML file")
    if not path.exists():
        raise ConfigError(f"{path}: config file not found")
    if not path.is_file():
        raise ConfigError(
            f"{path}: not a regular file (a pipe or device); --config takes a YAML file"
        )
    try:
        cfg = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as e:
        raise ConfigError(
            f"{path}: not UTF-8 text (invalid byte 0x{e.object[e.start]:02x} at offset {e.start}); "
            "save the YAML file as UTF-8"
        ) from None
    except yaml.YAMLError as e:
        raise ConfigError(
            f"{path}: not valid YAML ({e.__class__.__name__}: {' '.join(str(e).split())})"
        ) from None
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path}: expected a mapping of option: value at the top level")
    return {str(k).replace("-", "_"): v for k, v in cfg.items()}


def merge(config: dict, **flags: Any) -> dict:
    """Config-file values overridden by the flags that were actually given (not None)."""
    out = dict(config)
    out.update({k: v for k, v in flags.items() if v is not None})
    return out


def _preprocessing(prep: Any, top_genes: int | None) -> dict:
    """A config's preprocessing mapping, with ``--top-genes`` applied."""
    from .preprocessing import OPTIONS

    prep = prep or {}
    if not isinstance(prep, dict):
        raise ConfigError(
            f"preprocessing must be a mapping of options ({', '.join(OPTIONS)}), got {prep!r}"
        )
    return {**prep, "top_k_variance": top_genes} if top_genes is not None else prep


def parse_sets(pairs: list[str] | None) -> dict:
    """`--set key=value` pairs, values parsed as YAML scalars/lists (0.3, true, [512, 256])."""
    import yaml

    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = yaml.safe_load(value)
    return out


def _load(
    data: str,
    labels: Path | None = None,
    label_id_column: str | None = None,
    orientation: str = "auto",
):
    from .sources import ExpressionSource

    return ExpressionSource.load(
        data,
        labels=str(labels) if labels else None,
        label_id_column=label_id_column,
        orientation=orientation,
    ).data


# --------------------------------------------------------------------------- datasets / info
@app.command()
@user_errors
def datasets():
    """List the bundled datasets (they load offline by name with --data NAME)."""
    from . import datasets as ds

    table = Table(title="Bundled datasets", show_lines=False)
    for col in ("name", "samples x features", "labels (classes)", "licence"):
        table.add_column(col)
    for name in ds.names():
        info = ds.info(name)
        labels = ", ".join(f"{c} ({len(v)})" for c, v in info.get("label_columns", {}).items())
        table.add_row(
            name,
            f"{info['n_samples']} x {info['n_genes']} {info.get('feature_kind', 'genes')}",
            labels,
            str(info.get("license", "")),
        )
    console.print(table)


@app.command()
@user_errors
def info(
    data: Annotated[str, typer.Argument(help="A file or a bundled dataset name.")],
    labels: LabelsOpt = None,
    label_id_column: LabelIdOpt = None,
    orientation: OrientOpt = "auto",
    label: Annotated[
        str | None,
        typer.Option(help="The label column to check for a benchmark (default: the likely one)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
):
    """Shape, value range and scale, label columns with class counts and missing labels, the
    classes too small for the default protocol, and the benchmark command to run."""
    from .overview import describe, info_lines

    adata = _load(data, labels, label_id_column, orientation)
    s = describe(
        adata, data, label, labels=labels, label_id_column=label_id_column, orientation=orientation
    )
    if as_json:
        console.print_json(json.dumps(s, default=str))
        return
    for line in info_lines(s, data):
        console.print(line, highlight=False, markup=False)


# --------------------------------------------------------------------------- pretrain / embed
OverwriteOpt = Annotated[
    bool,
    typer.Option(
        "--overwrite",
        help="Replace an existing exprssl output of the same kind (never anything else).",
    ),
]


def _split_options(options: dict) -> tuple[dict, dict]:
    """Config/flag options -> (the training loop's, the method's): method options may sit at the
    top level of a YAML file or come from --set, next to the training options."""
    from .training import TrainConfig

    train_keys = set(TrainConfig.__dataclass_fields__)
    method_params = dict(
        options.pop("method_params", None) or options.pop("method_config", None) or {}
    )
    train = {}
    for key, value in options.items():
        (train if key in train_keys else method_params)[key] = value
    return train, method_params


@app.command()
@user_errors
def pretrain(
    method: Annotated[
        str | None, typer.Option("--method", "-m", help="An SSL method (see `exprssl methods`).")
    ] = None,
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Expression file or bundled dataset name.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Model directory to write (new, empty, or an exprssl model with --overwrite).",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Maximum epochs.")] = None,
    batch_size: Annotated[int | None, typer.Option(help="Samples per batch.")] = None,
    lr: Annotated[float | None, typer.Option(help="Learning rate (default: the method's).")] = None,
    optimizer: Annotated[str | None, typer.Option(help="adam, adamw, sgd or rmsprop.")] = None,
    weight_decay: Annotated[float | None, typer.Option(help="Weight decay.")] = None,
    val_fraction: Annotated[
        float | None, typer.Option(help="Held-out fraction for early stopping.")
    ] = None,
    patience: Annotated[
        int | None, typer.Option(help="Early-stopping patience in epochs (0: off).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
    top_genes: Annotated[int | None, typer.Option(help="Keep the N most variable genes.")] = None,
    devices: Annotated[
        str | None, typer.Option(help="Lightning devices (auto, 1, 2, ...).")
    ] = None,
    num_nodes: Annotated[int | None, typer.Option(help="Lightning nodes.")] = None,
    num_workers: Annotated[
        int | None,
        typer.Option(
            help="Processes that read and preprocess a streamed "
            "store or h5ad while training runs (default 0)."
        ),
    ] = None,
    strategy: Annotated[
        str | None, typer.Option(help="Lightning strategy (auto, ddp, ...).")
    ] = None,
    precision: Annotated[
        str | None, typer.Option(help="Lightning precision, e.g. bf16-mixed.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help="Method option key=value, repeatable "
            "(e.g. --set corruption_rate=0.5; see `exprssl methods`).",
        ),
    ] = None,
    config: ConfigOpt = None,
    orientation: OrientOpt = "auto",
    stream: StreamOpt = None,
    overwrite: OverwriteOpt = False,
    progress: Annotated[bool, typer.Option(help="Show a progress bar.")] = True,
):
    """Pretrain an encoder with a self-supervised method and save it to a model directory."""
    from .model import SSLModel
    from .outputs import _same_or_inside, check_output
    from .training import check_hardware_options
    from .validation import check_top_genes

    cfg = merge(
        read_config(config),
        method=method,
        data=data,
        out=str(out) if out else None,
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        optimizer=optimizer,
        weight_decay=weight_decay,
        val_fraction=val_fraction,
        patience=patience,
        seed=seed,
        devices=_devices(devices),
        num_nodes=num_nodes,
        strategy=strategy,
        precision=precision,
        num_workers=num_workers,
    )
    cfg.update(parse_sets(set_))
    for key in ("method", "data", "out"):
        if not cfg.get(key):
            raise ConfigError(f"--{key} is required (on the command line or in --config)")
    prep = _preprocessing(cfg.pop("preprocessing", None), top_genes)
    name, data_path, out_dir = cfg.pop("method"), cfg.pop("data"), Path(cfg.pop("out"))
    train, method_params = _split_options(cfg)
    model = SSLModel(
        name, method_params=method_params, preprocessor=prep or None, progress=progress, **train
    )
    params = model.check_params()  # every option, before data is read or anything written
    check_hardware_options(params.train)
    check_output(out_dir, "model", overwrite=overwrite, inputs=[data_path, config])
    if params.train.log_dir:  # the CSV logger's files and checkpoints follow the same rules
        log_dir = Path(params.train.log_dir)
        if _same_or_inside(log_dir, out_dir):
            raise ConfigError(
                f"{log_dir}: log_dir must lie outside the model directory --out {out_dir} (the "
                "model "
                "directory holds exprssl's model files only)"
            )
        check_output(log_dir, "log", inputs=[data_path, config, out_dir])
    from .sources import ExpressionSource

    source = ExpressionSource.resolve(data_path, stream, orientation=orientation)
    check_top_genes((prep or {}).get("top_k_variance"), source.shape[1], data_path)
    console.print(
        f"pretraining [bold]{name}[/] on {source.describe()} from {data_path}", highlight=False
    )
    model.fit(source)
    model.save(out_dir, overwrite=overwrite)
    if _rank() == 0:
        console.print(_fit_summary(model, out_dir), highlight=False)
    _end_distributed()


def _fit_summary(model, out_dir: Path) -> str:
    summary = f"saved {model!r} to {out_dir}"
    h = model.history_
    if len(h):
        last = h.iloc[-1]
        summary += f" after {int(last['epoch'])} epochs (train loss {last['train_loss']:.4f}"
        summary += (
            f", val loss {last['val_loss']:.4f})" if last["val_loss"] == last["val_loss"] else ")"
        )
    return summary


def _end_distributed() -> None:
    """Tear the process group down before exit: left to the interpreter, gloo's threads can abort
    a rank at shutdown ('terminate called without an active exception')."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()


def _rank() -> int:
    import torch.distributed as dist

    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _devices(value: str | None):
    if value is None or value == "auto":
        return value
    try:
        return int(value)
    except ValueError:
        return value


@app.command()
@user_errors
def embed(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Model directory written by `exprssl pretrain`, "
            "or a hub id hf://org/name[@revision].",
        ),
    ],
    data: DataOpt,
    out: Annotated[
        Path,
        typer.Option(
            "--out", "-o", help="Output .h5ad (input obs kept, embeddings in obsm['X_<method>'])."
        ),
    ],
    labels: LabelsOpt = None,
    label_id_column: LabelIdOpt = None,
    orientation: OrientOpt = "auto",
    key: Annotated[str | None, typer.Option(help="obsm key (default X_<method>).")] = None,
    stream: StreamOpt = None,
    overwrite: OverwriteOpt = False,
):
    """Embed expression data with a pretrained model (genes aligned by name)."""
    from .io import add_labels, write_h5ad
    from .model import SSLModel
    from .outputs import check_output
    from .sources import ExpressionSource

    if out.suffix != ".h5ad":
        raise ConfigError(f"{out}: --out must end in .h5ad")
    if key is not None and not key.strip():
        raise ConfigError("--key must be a non-empty obsm name (default X_<method>)")
    check_output(out, "embedding", overwrite=overwrite, inputs=[data, model, labels])
    m = SSLModel.load(model)
    source = ExpressionSource.resolve(
        data,
        stream,
        labels=str(labels) if labels else None,
        label_id_column=label_id_column,
        orientation=orientation,
    )
    if source.streamed:  # block by block: only the embeddings are held in memory
        from rich.progress import Progress

        with Progress(console=err_console, transient=True) as bar:
            task = bar.add_task("embedding", total=source.n_samples)
            result = m.transform(
                source,
                key=key,
                return_anndata=True,
                progress=lambda done, total: bar.update(task, completed=done),
            )
        if labels:  # a store's obs come with the embeddings; the sheet is joined to them
            result = add_labels(result, labels, id_column=label_id_column)
    else:
        result = m.transform(source, key=key, return_anndata=True)
    write_h5ad(result, out)
    key = key or f"X_{m.method}"
    Z = result.obsm[key]
    console.print(
        f"wrote {Z.shape[0]} x {Z.shape[1]} embeddings to {out} (obsm['{key}'])", highlight=False
    )


@app.command()
@user_errors
def push(
    model_dir: Annotated[Path, typer.Argument(help="Model directory (with its model card).")],
    repo_id: Annotated[str, typer.Argument(help="Hub repo id, org/name (or hf://org/name).")],
    private: Annotated[bool, typer.Option(help="Create the repo as private.")] = False,
    token: Annotated[
        str | None,
        typer.Option(
            envvar="HF_TOKEN", help="Hub token (default: the saved login).", show_default=False
        ),
    ] = None,
):
    """Publish a saved model to the Hugging Face Hub (needs huggingface_hub: the hub extra)."""
    from .hub import push_to_hub

    url = push_to_hub(model_dir, repo_id, token=token, private=private)
    console.print(
        f"pushed {model_dir} to {url}; load it with SSLModel.load('hf://{repo_id.removeprefix('hf://')}')",
        highlight=False,
    )


@app.command()
@user_errors
def explain(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            help="Model directory written by `exprssl pretrain`, or a hub id (hf://org/name).",
        ),
    ],
    data: DataOpt,
    label: Annotated[
        str,
        typer.Option("--label", "-l", help="obs / sample-sheet column whose classes to explain."),
    ],
    labels: LabelsOpt = None,
    label_id_column: LabelIdOpt = None,
    orientation: OrientOpt = "auto",
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help=(
                "attributions.csv to write "
                "(gene, class, approach, split, fraction, attribution, rank)."
            ),
        ),
    ] = None,
    top: Annotated[int, typer.Option(help="Genes shown per class.")] = 20,
    head: Annotated[
        str, typer.Option(help="linear_probe (logistic probe on the embedding) or finetune.")
    ] = "linear_probe",
    splits: Annotated[
        int,
        typer.Option(
            help="Heads fit on the training parts of a stratified K-fold, for "
            "the genes' stability across splits (1: one head on every label)."
        ),
    ] = 1,
    overwrite: OverwriteOpt = False,
):
    """Which genes carry the prediction of each class: integrated gradients through the encoder
    and a head fit on the labels, beside logistic regression's coefficients on the same genes."""
    from .attributions import HEADS, overlap, stability, top_genes, write_attributions
    from .attributions import explain as explain_model
    from .model import SSLModel
    from .outputs import check_output

    if top < 1 or head not in HEADS or splits < 1:
        raise ConfigError(
            f"--top and --splits must be >= 1 and --head one of {', '.join(HEADS)}, got "
            f"{top}, {splits} and '{head}'"
        )
    if out is not None:
        check_output(out, "attributions", overwrite=overwrite, inputs=[data, model, labels])
    m = SSLModel.load(model)
    table = explain_model(
        m, _load(data, labels, label_id_column, orientation), label, head=head, splits=splits
    )
    if out is not None:
        write_attributions(table, out, overwrite=overwrite, inputs=[data, model, labels])
    best = top_genes(table, top)
    shared = overlap(table, "logreg", top).set_index(["approach", "class"]).iloc[:, 0]
    steady = stability(table, top).set_index(["approach", "class"])
    n = table["split"].nunique()
    t = Table(
        title=f"top {top} genes per class ({label}; "
        + (
            f"the genes of split 0, overlap and stability over {n} splits)"
            if n > 1
            else "one head on every label)"
        ),
        show_lines=True,
    )
    for col in ("class", "approach", "genes (best first)", f"in logreg's top {top}", "stability"):
        t.add_column(col, overflow="fold")
    for (cls, approach), part in best[best["split"] == 0].groupby(["class", "approach"], sort=True):
        s = steady.loc[(approach, cls)]
        t.add_row(
            str(cls),
            approach,
            ", ".join(part["gene"]),
            f"{shared.get((approach, cls), float('nan')):.0%}" if approach != "logreg" else "",
            "" if s["n_splits"] < 2 else f"rho {s['spearman']:.2f}, Jaccard {s.iloc[-1]:.2f}",
        )
    console.print(t)
    if out is not None:
        console.print(f"wrote {len(table)} rows to {out}", highlight=False)


@app.command()
@user_errors
def convert(
    src: Annotated[
        Path, typer.Argument(help="ARCHS4 .h5, .h5ad, or a table (csv/tsv/parquet/gct).")
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Store to write (.h5ad).")],
    genes: Annotated[
        Path | None, typer.Option(help="Keep only the genes listed in this file (one id a line).")
    ] = None,
    top_genes: Annotated[
        int | None,
        typer.Option(
            help="Keep the N most variable genes (of the listed "
            "ones), chosen in one extra pass over the source."
        ),
    ] = None,
    chunk_rows: Annotated[int, typer.Option(help="Samples per on-disk chunk.")] = 256,
    block: Annotated[
        int | None,
        typer.Option(
            help="Samples held in memory while converting (default: "
            "about 256 MB of values, rounded to whole chunks)."
        ),
    ] = None,
    codec: Annotated[
        str,
        typer.Option(
            help="Compression: blosc-zstd (compact, fast), blosc-lz4 (faster, "
            "larger), gzip-1 (readable without hdf5plugin), lzf or none."
        ),
    ] = "blosc-zstd",
    orientation: OrientOpt = "auto",
    overwrite: OverwriteOpt = False,
):
    """Rewrite a large matrix once as a compressed, row-chunked AnnData store (.h5ad) for
    out-of-core pretraining (`exprssl pretrain --data STORE.h5ad ...` then streams it in bounded
    memory; anndata/scanpy open it with backed="r"). An interrupted conversion resumes when run
    again with the same options."""
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    from .outputs import check_output
    from .store import ExpressionStore
    from .store import convert as convert_store

    if chunk_rows < 1 or (block is not None and block < 1):
        raise ConfigError(f"--chunk-rows and --block must be >= 1, got {chunk_rows} and {block}")
    check_output(out, "store", overwrite=overwrite, inputs=[src, genes])
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=err_console, transient=True) as bar:
        tasks: dict[str, int] = {}

        def progress(done: int, total: int, stage: str) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(f"{stage} {src.name}", total=total)
            bar.update(tasks[stage], completed=done, total=total)

        convert_store(
            src,
            out,
            genes=genes,
            top_genes=top_genes,
            chunk_rows=chunk_rows,
            block_samples=block,
            codec=codec,
            orientation=orientation,
            progress=progress,
        )
    s = ExpressionStore(out)
    console.print(
        f"wrote {out}: {s.n_samples} samples x {len(s.genes)} genes, {s.chunk_rows} samples per "
        f"chunk, {codec}, {out.stat().st_size / 1e6:.1f} MB",
        highlight=False,
    )


@app.command()
@user_errors
def methods(
    method: Annotated[str | None, typer.Argument(help="One method (default: all).")] = None,
):
    """The SSL methods and each one's options: default, allowed values, meaning."""
    from .methods import available, describe_options, get_method

    for name in [method] if method else available():
        doc = (get_method(name).__doc__ or "").strip().splitlines()
        _print_options(f"{name}: {doc[0] if doc else ''}", describe_options(name))


@app.command()
@user_errors
def options(
    section: Annotated[
        str | None,
        typer.Argument(
            help="One section: benchmark, training, finetune, preprocessing or a method "
            "(default: all)."
        ),
    ] = None,
):
    """Every option a config file or Python call accepts, by section: default, allowed values,
    meaning (the YAML keys of `exprssl benchmark --config`, `training:`, ...)."""
    import exprssl.evaluation.config  # noqa: F401  (each module declares its options class)
    import exprssl.evaluation.heads  # noqa: F401
    import exprssl.methods  # noqa: F401
    import exprssl.preprocessing  # noqa: F401
    import exprssl.training  # noqa: F401

    from .options import describe, options_classes

    by_where = {where: cls for cls, where in options_classes().items()}
    if section is not None and section not in by_where:
        raise ConfigError(
            f"unknown options section '{section}'; choose from {', '.join(sorted(by_where))}"
        )
    order = [*_SECTIONS, *sorted(set(by_where) - set(_SECTIONS))]  # then the methods
    for where in order if section is None else [section]:
        title = _SECTIONS.get(
            where,
            "an SSL method (pretrain: --set name=value or top-level YAML keys; "
            f"benchmark: method_options: {{{where}: ...}})",
        )
        _print_options(f"{where}: {title}", describe(by_where[where]))


_SECTIONS = {
    "benchmark": "exprssl benchmark (flags, or top-level keys of its --config YAML)",
    "training": "the pretraining loop (exprssl pretrain: flags or top-level YAML keys)",
    "preprocessing": "the Preprocessor (a preprocessing: mapping in either YAML)",
    "finetune": "the fine-tuning recipe of heads (the benchmark's finetune: mapping)",
}


def _print_options(title: str, rows: list[dict]) -> None:
    table = Table(title=title, title_justify="left", show_lines=False)
    for col in ("option", "default", "allowed", "meaning"):
        table.add_column(col, overflow="fold")
    for o in rows:
        table.add_row(
            o["name"], repr(o["default"]), str(o.get("allowed") or o.get("type", "")), o["help"]
        )
    console.print(table)


# --------------------------------------------------------------------------- benchmark / demo
@app.command()
@user_errors
def benchmark(
    data: Annotated[
        str | None, typer.Option("--data", "-d", help="Expression file or bundled dataset.")
    ] = None,
    label: Annotated[
        str | None, typer.Option("--label", "-l", help="obs / sample-sheet column to predict.")
    ] = None,
    out: Annotated[
        Path | None, typer.Option("--out", "-o", help="Output directory (reruns resume).")
    ] = None,
    labels: LabelsOpt = None,
    label_id_column: LabelIdOpt = None,
    methods: Annotated[
        str | None, typer.Option(help="Comma-separated SSL methods (default: all).")
    ] = None,
    baselines: Annotated[
        str | None, typer.Option(help="Comma-separated baselines (default: all).")
    ] = None,
    fractions: Annotated[
        str | None, typer.Option(help="Comma-separated label fractions in (0, 1].")
    ] = None,
    splits: Annotated[
        int | None,
        typer.Option(help="Outer splits (default: 5 below 1,000 labelled profiles, else 1)."),
    ] = None,
    seeds: Annotated[int | None, typer.Option(help="Label subsets per split and fraction.")] = None,
    pretrain_seeds: Annotated[
        int | None,
        typer.Option(
            help="SSL pretrainings per method and split (<= seeds): "
            "CIs then include pretraining variance."
        ),
    ] = None,
    group: Annotated[
        str | None, typer.Option(help="Column grouping samples (patient, study).")
    ] = None,
    min_class_size: Annotated[
        int | None,
        typer.Option(
            help="Classes with fewer samples leave the task (their "
            "profiles still pretrain; noted in the report)."
        ),
    ] = None,
    pretrain_data: Annotated[
        list[str] | None,
        typer.Option(
            help="More unlabeled profiles for the pretraining "
            "pool (repeatable; genes aligned by name)."
        ),
    ] = None,
    model: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            help="A pretrained encoder (model directory "
            "or hf://org/name) evaluated beside the SSL methods "
            "(repeatable; --methods none: only the models).",
        ),
    ] = None,
    min_model_coverage: Annotated[
        float | None,
        typer.Option(help="Refuse a model with fewer of its genes in the cohort (default 0.5)."),
    ] = None,
    pool_scaling: Annotated[
        str | None,
        typer.Option(
            help="standardize (default), quantile or none: each "
            "--pretrain-data source and the cohort scaled on their "
            "own before pooling."
        ),
    ] = None,
    transductive: Annotated[
        bool | None,
        typer.Option(
            "--transductive/--inductive",
            help="Let the test profiles (never their labels) join the pretraining pool.",
        ),
    ] = None,
    tune: Annotated[
        bool | None,
        typer.Option(
            "--tune/--no-tune",
            help="Inner-CV hyperparameters for every baseline and head (default: on).",
        ),
    ] = None,
    protocol: Annotated[
        str | None,
        typer.Option(
            help="default (every non-test label used) or paper (0.2's "
            "disjoint pretrain / fine-tune / test parts)."
        ),
    ] = None,
    attributions: Annotated[
        bool | None,
        typer.Option(
            "--attributions/--no-attributions",
            help="Gene attributions of the best approaches (default: on).",
        ),
    ] = None,
    epochs: Annotated[int | None, typer.Option(help="Pretraining epochs.")] = None,
    top_genes: Annotated[
        int | None,
        typer.Option(
            help="Keep the N most variable genes (chosen on each split's "
            "pretraining pool); 5000 of 28k genes ran a small cohort "
            "2.7x faster."
        ),
    ] = None,
    jobs: Annotated[
        int | None, typer.Option(help="Single-threaded worker processes (default: one per core).")
    ] = None,
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Run pretraining and cells on a Dask cluster: its scheduler's address "
            "(tcp://host:8786) or scheduler file (.json); the output directory must be on a "
            "filesystem every worker sees. Needs pip install 'exprssl[dask]'."
        ),
    ] = None,
    orientation: Annotated[
        str | None,
        typer.Option(
            "--orientation",
            help="For csv/tsv/parquet: auto (the way "
            "round the sample sheet names, else longer axis = genes), "
            "samples_in_rows or genes_in_rows.",
        ),
    ] = None,
    config: ConfigOpt = None,
    progress: Annotated[bool, typer.Option(help="Show progress.")] = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help="Check everything, print the plan (pretrainings, cells, the estimated time "
            "per stage and learner on this machine) and exit; nothing is trained or written.",
        ),
    ] = False,
):
    """Label-efficiency benchmark: SSL methods vs tuned supervised baselines, with a report."""
    from .evaluation.config import BenchmarkConfig

    cfg = merge(
        read_config(config),
        data=data,
        label=label,
        out=str(out) if out else None,
        labels=str(labels) if labels else None,
        label_id_column=label_id_column,
        methods=_csv(methods),
        baselines=_csv(baselines),
        fractions=_csv(fractions, float),
        splits=splits,
        seeds=seeds,
        pretrain_seeds=pretrain_seeds,
        group=group,
        min_class_size=min_class_size,
        pretrain_data=pretrain_data or None,
        models=model or None,
        min_model_coverage=min_model_coverage,
        pool_scaling=pool_scaling,
        transductive=transductive,
        tune=tune,
        protocol=protocol,
        epochs=epochs,
        jobs=jobs,
        scheduler=scheduler,
        orientation=orientation,
        attributions=attributions,
    )
    for key in ("data", "label", "out"):
        if not cfg.get(key):
            raise ConfigError(f"--{key} is required (on the command line or in --config)")
    if top_genes is not None:
        cfg["preprocessing"] = _preprocessing(cfg.get("preprocessing"), top_genes)
    cfg = BenchmarkConfig.from_dict(cfg)
    if dry_run:
        from .api import benchmark as run

        for line in run(config=cfg, progress=False, dry_run=True).describe():
            console.print(line, highlight=False, markup=False)
        return
    _run_benchmark(cfg, progress)


@app.command()
@user_errors
def demo(
    out: Annotated[Path, typer.Option("--out", "-o", help="Output directory.")] = Path(
        "demo_report"
    ),
    jobs: Annotated[
        int | None, typer.Option(help="Single-threaded worker processes (default: one per core).")
    ] = None,
    progress: Annotated[bool, typer.Option(help="Show progress.")] = True,
):
    """The benchmark on the bundled real dataset (all_leukemia, molecular subtype), in minutes
    on a CPU."""
    from dataclasses import replace

    from .evaluation.config import demo_config

    _run_benchmark(replace(demo_config(str(out)), jobs=jobs), progress)


def _csv(value: str | None, cast=str):
    if value is None:
        return None
    try:
        values = [cast(v.strip()) for v in value.split(",") if v.strip()]
    except ValueError:
        raise ConfigError(
            f"could not parse '{value}' as a comma-separated list of numbers"
        ) from None
    if not values:
        raise ConfigError(
            f"'{value}' lists nothing; give comma-separated values, or leave the option out"
        )
    return values


def _run_benchmark(cfg, progress: bool) -> None:
    from .api import benchmark
    from .report import answer, summary_matrix

    run = benchmark(config=cfg, progress=progress)
    metric = run.manifest.setting("main_metric")
    table = summary_matrix(run.summary, ci=False, plain=True)
    t = Table(
        title=f"{cfg.data}: {cfg.label} — {metric.replace('_', ' ')} on the test set, mean over "
        "splits x seeds (intervals and verdicts in the report)"
    )
    for col in table.columns:  # "12% (n=7)" on two lines keeps 5-6 fractions within 80 columns
        t.add_column(str(col).replace(" (", "\n("), no_wrap=True)
    for row in table.itertuples(index=False):
        t.add_row(*[Text(str(v)) for v in row])  # Text: a name like "[x]" is not rich markup
    _print_whole(t)
    for line in answer(run.summary, run.manifest, metric, plain=True):
        if not line.startswith("- "):  # the answer, transfer, what 100% is, labels saved
            console.print(line, highlight=False, markup=False)
    console.print(
        f"report: {run.out / 'report.html'} (also report.md, summary.csv, results.csv, plots)",
        highlight=False,
    )


def _print_whole(renderable) -> None:
    """Print to a terminal at its width; to a file or pipe (a log) at the renderable's own width:
    rich assumes 80 columns there and cut the summary table's columns."""
    if console.is_terminal:
        console.print(renderable)
        return
    from rich.measure import Measurement

    width = Measurement.get(console, console.options.update(width=10_000), renderable).maximum
    Console(width=max(80, width), soft_wrap=True).print(renderable)


def _command_path(args: list[str]) -> str:
    """``exprssl <command>`` of a command line whose error click raised without a context."""
    commands = typer.main.get_command(app).commands
    first = next((a for a in args if not a.startswith("-")), None)
    return f"exprssl {first}" if first in commands else "exprssl"


def main(argv: list[str] | None = None) -> None:
    """The console script: click's own usage errors (an unknown option, a missing value) are
    one line on stderr and exit 2, like every other bad input (not a boxed message)."""
    # click's UsageError, whether typer vendors click (>= 0.2x) or uses it
    usage_error = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = app(args=args, prog_name="exprssl", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ != "NoArgsIsHelpError":  # bare `exprssl`: click printed the help
            where = e.ctx.command_path if e.ctx is not None else _command_path(args)
            message = f"{e.format_message().rstrip('.')} (see '{where} --help')"
            err_console.print(
                f"[bold red]exprssl: error:[/] {escape(message)}", highlight=False, soft_wrap=True
            )
        code = 2
    except typer.Abort:
        err_console.print("aborted", highlight=False)
        code = 130
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
