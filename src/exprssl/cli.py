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
from typer.core import TyperGroup

from .config_file import check_mapping, check_single_values, parse_set_value, read_config
from .errors import ConfigError, ExprsslError
from .flags import FieldFlagsCommand, Flag, field_flags, stated_default
from .signals import Terminated, handle_signals
from .text import literal


class _Commands(TyperGroup):
    """The command group: a renamed flag's old spelling still works for one release, with a
    warning (``RENAMED_FLAGS``; the warning is logged once logging is set up, in ``_main``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for cmd in self.commands.values():
            for param in cmd.params:
                state_default(param)

    def resolve_command(self, ctx, args):
        name, cmd, rest = super().resolve_command(ctx, args)
        if cmd is not None:
            rest, renamed = renamed_flags(rest, {o for p in cmd.params for o in p.opts})
            ctx.meta["exprssl.renamed"] = renamed
        return name, cmd, rest


def state_default(param) -> None:
    """Every option's help says its default: typer shows none for None or a false flag, and
    ``[default: progress]`` for a true ``--progress/--no-progress``. Help filled in later
    (``FieldFlagsCommand``) or already stating it is left alone."""
    text = getattr(param, "help", None)
    if not text or param.required or getattr(param, "hidden", False):
        return
    if "[default:" in text or param.name == "help":
        return
    if getattr(param, "is_flag", False) and isinstance(param.default, bool):
        on, off = param.opts[0], (param.secondary_opts or [None])[0]
        said = on if param.default else off or "off"
    elif param.default is None:
        text, said = stated_default(text)
        said = said or "none"
    else:
        return  # typer shows it
    param.show_default = False
    param.help = shown(text, said)


def renamed_flags(args: list[str], known: set[str]) -> tuple[list[str], list[str]]:
    """``args`` with each old flag spelling of ``RENAMED_FLAGS`` (``--labels x``,
    ``--labels=x``) replaced by its new one where the command has it, and the old ones used."""
    out, used = [], []
    for i, arg in enumerate(args):
        if arg == "--":
            return out + args[i:], used
        old, eq, value = arg.partition("=") if isinstance(arg, str) else (arg, "", "")
        new = RENAMED_FLAGS.get(old)
        if new in known:
            used.append(old)
            arg = new + eq + value
        out.append(arg)
    return out, used


app = typer.Typer(
    cls=_Commands,
    name="exprssl",
    help="Self-supervised representation learning on bulk gene-expression data.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)


class _StdoutClosed(Exception):
    """Whoever read our output went away (``exprssl methods | head -n 1``): not an error."""


def _silence_stdout() -> None:
    """Python's recipe for a closed pipe (the signal module's SIGPIPE note): stdout to devnull,
    so that the interpreter's last flush does not fail on it again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a test runner)
        pass


def _end_on_closed_stdout(self: Console) -> None:
    """rich's hook for a closed stdout (its own exits 1), for every console of the process: ours,
    and typer's help and ``--version`` output (``exprssl --help | head -n 1``). ``main`` ends
    the run quietly with exit 0."""
    self.quiet = True
    _silence_stdout()
    raise _StdoutClosed


def _stdout_reader_gone() -> bool:
    """Whether the process's stdout is a pipe whose reader left (a BrokenPipeError may also come
    from a child's pipe, which is an error)."""
    import select

    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), 0)
        return any(event & select.POLLERR for _, event in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no real file descriptor (a test runner)
        return False


class _StdoutConsole(Console):
    on_broken_pipe = _end_on_closed_stdout


console = _StdoutConsole(soft_wrap=True)
err_console = Console(stderr=True)

REQUIRED = escape("[required]")


def shown(help: str, default: str) -> str:
    """``help`` with its default in words (typer's own shows nothing for None or a false flag,
    and ``[default: progress]`` for ``--progress/--no-progress``)."""
    return f"{help} {escape(f'[default: {default}]')}"


DataOpt = Annotated[
    str,
    typer.Option(
        "--data",
        "-d",
        help="Expression file (h5ad, csv/tsv[.gz], parquet, gct, "
        "ARCHS4 .h5) or a bundled dataset name (see `exprssl datasets`).",
    ),
]
SHEET = "--sample-sheet"  # not --labels: one letter from --label, the column to predict
RENAMED_FLAGS = {"--labels": SHEET}  # old spelling -> new, accepted with a warning until 0.5
LabelsOpt = Annotated[
    Path | None,
    typer.Option(
        SHEET,
        help=shown(
            "Sample sheet (csv/tsv/parquet) joined on sample id; --labels is its deprecated name.",
            "none",
        ),
        show_default=False,
    ),
]
LabelIdOpt = Annotated[
    str | None,
    typer.Option(
        "--label-id-column",
        help=shown(f"Sample-id column of {SHEET}.", "its first column"),
        show_default=False,
    ),
]
OrientOpt = Annotated[
    str,
    typer.Option(
        "--orientation",
        help="For csv/tsv/parquet: auto (the way round "
        f"{SHEET} names the samples, else the longer axis as genes), "
        "samples_in_rows or genes_in_rows.",
    ),
]
LayerOpt = Annotated[
    str | None,
    typer.Option(
        "--layer",
        help="For AnnData (.h5ad): the layer holding the values, e.g. counts (default: X).",
    ),
]
StreamOpt = Annotated[
    bool | None,
    typer.Option(
        "--stream/--no-stream",
        help=shown(
            "Read an .h5ad from disk in blocks instead of loading it. A store always streams.",
            "when it would not fit comfortably in memory",
        ),
        show_default=False,
    ),
]
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help=shown(
            "YAML file with any of this command's options (required ones too); flags given on "
            "the command line win.",
            "none",
        ),
        show_default=False,
    ),
]


def _fail(message: str) -> None:
    err_console.print(
        f"[bold red]exprssl: error:[/] {literal(message)}", highlight=False, soft_wrap=True
    )
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
        except BrokenPipeError as e:  # print() or a library's write to a stdout nobody reads
            if not _stdout_reader_gone():
                _fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
            _silence_stdout()
            raise _StdoutClosed from None
        except OSError as e:  # a disk that filled up, a permission that changed mid-run
            _fail(f"{e.filename + ': ' if e.filename else ''}{e.strerror or e}")
        except KeyboardInterrupt as e:  # Ctrl-C, or SIGTERM (signals.Terminated)
            err_console.print("terminated" if isinstance(e, Terminated) else "interrupted")
            raise typer.Exit(getattr(e, "exit_code", 130)) from None
        except (typer.Exit, _StdoutClosed):
            raise
        except Exception as e:  # a bug, not the user's input: one line, the traceback on request
            if os.environ.get("EXPRSSL_DEBUG"):
                raise
            err_console.print(
                f"[bold red]exprssl: internal error:[/] {type(e).__name__}: "
                f"{literal(str(e).strip().splitlines()[0]) if str(e).strip() else ''} (a bug: "
                "please report "
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


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        console.print(f"exprssl {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def _main(
    ctx: typer.Context,
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help=shown("More log output.", "off"))
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print exprssl's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
):
    _setup_logging(verbose)
    import warnings

    warnings.showwarning = _warning_to_log
    for old in ctx.meta.pop("exprssl.renamed", []):
        logging.getLogger("exprssl").warning(
            "%s is deprecated: use %s (%s differs from --label, the column to predict, by one "
            "letter); %s goes in 0.5",
            old,
            RENAMED_FLAGS[old],
            old,
            old,
        )
    try:
        _check_environment()
    except ExprsslError as e:
        _fail(str(e))


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
    out = {}
    for pair in pairs or []:
        if "=" not in pair:
            raise ConfigError(f"--set expects key=value, got '{pair}'")
        key, value = pair.split("=", 1)
        out[key.strip().replace("-", "_")] = parse_set_value(key.strip(), value)
    return out


def _load(
    data: str,
    labels: Path | None = None,
    label_id_column: str | None = None,
    orientation: str = "auto",
    layer: str | None = None,
):
    from .sources import ExpressionSource

    return ExpressionSource.load(
        data,
        labels=str(labels) if labels else None,
        label_id_column=label_id_column,
        orientation=orientation,
        layer=layer,
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
    layer: LayerOpt = None,
    label: Annotated[
        str | None,
        typer.Option(help="The label column to check for a benchmark (default: the likely one)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
):
    """Shape, value range and scale, label columns with class counts and missing labels, the
    classes too small for the default protocol, and the benchmark command to run."""
    from .overview import describe, info_lines

    adata = _load(data, labels, label_id_column, orientation, layer)
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
        help=shown(
            "Replace an existing exprssl output of the same kind (never anything else).", "off"
        ),
    ),
]


def _split_options(options: dict) -> tuple[dict, dict]:
    """Config/flag options -> (the training loop's, the method's): method options may sit at the
    top level of a YAML file or come from --set, next to the training options."""
    from .training import TrainConfig

    train_keys = set(TrainConfig.__dataclass_fields__)
    key = "method_params" if "method_params" in options else "method_config"
    method_params = check_mapping(options.pop(key, None), key, "pretrain")
    options.pop("method_config", None)
    train = {}
    for key, value in options.items():
        (train if key in train_keys else method_params)[key] = value
    return train, method_params


# TrainConfig's fields as `exprssl pretrain` flags; their help, defaults and allowed values come
# from TrainConfig (exprssl.flags)
TRAIN_FLAGS = {
    "epochs": Flag(int),
    "batch_size": Flag(int),
    "optimizer": Flag(str),
    "lr": Flag(float),
    "weight_decay": Flag(float),
    "val_fraction": Flag(float),
    "patience": Flag(int),
    "seed": Flag(int),
    "accelerator": Flag(str),
    "devices": Flag(str),
    "num_nodes": Flag(int),
    "strategy": Flag(str),
    "precision": Flag(str),
    "num_workers": Flag(int),
    "progress": Flag(bool),
    "log_dir": Flag(str),
}
TopGenesOpt = Annotated[
    int | None,
    typer.Option(
        help=shown(
            "Keep the N most variable genes (chosen on the pretraining data: in a benchmark, each "
            "split's pool); 5000 of 28k genes ran a small cohort 2.7x faster. Sets "
            "preprocessing's top_k_variance.",
            "all genes",
        ),
        show_default=False,
    ),
]


@app.command(cls=FieldFlagsCommand)
@user_errors
@field_flags("exprssl.training:TrainConfig", TRAIN_FLAGS, panel="Training", own_first=True)
def pretrain(
    given: dict,
    method: Annotated[
        str | None,
        typer.Option("--method", "-m", help=f"An SSL method (see `exprssl methods`). {REQUIRED}"),
    ] = None,
    data: Annotated[
        str | None,
        typer.Option("--data", "-d", help=f"Expression file or bundled dataset name. {REQUIRED}"),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(
            "--out",
            "-o",
            help="Model directory to write (new, empty, or an exprssl model with --overwrite). "
            + REQUIRED,
        ),
    ] = None,
    top_genes: TopGenesOpt = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set",
            help=shown(
                "Method option key=value, repeatable "
                "(e.g. --set corruption_rate=0.5; see `exprssl methods`).",
                "the method's defaults",
            ),
            show_default=False,
        ),
    ] = None,
    config: ConfigOpt = None,
    orientation: OrientOpt = "auto",
    layer: LayerOpt = None,
    stream: StreamOpt = None,
    overwrite: OverwriteOpt = False,
):
    """Pretrain an encoder with a self-supervised method and save it to a model directory.
    Required options may come from --config instead of the command line."""
    from .model import SSLModel
    from .outputs import _same_or_inside, check_output
    from .training import check_hardware_options
    from .validation import check_top_genes

    cfg = merge(read_config(config), method=method, data=data, out=str(out) if out else None)
    cfg.update(given)
    cfg.update(parse_sets(set_))
    check_single_values(cfg, ("method", "data", "out"), "pretrain")
    for key in ("method", "data", "out"):
        if not cfg.get(key):
            raise ConfigError(f"--{key} is required (on the command line or in --config)")
    prep = _preprocessing(cfg.pop("preprocessing", None), top_genes)
    name, data_path, out_dir = cfg.pop("method"), cfg.pop("data"), Path(cfg.pop("out"))
    train, method_params = _split_options(cfg)
    model = SSLModel(name, method_params=method_params, preprocessor=prep or None, **train)
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

    source = ExpressionSource.resolve(data_path, stream, layer=layer, orientation=orientation)
    check_top_genes((prep or {}).get("top_k_variance"), source.shape[1], data_path)
    what = f"{literal(source.describe())} from {literal(data_path)}"
    console.print(f"pretraining [bold]{literal(name)}[/] on {what}", highlight=False)
    model.fit(source)
    model.save(out_dir, overwrite=overwrite)
    if _rank() == 0:
        console.print(_fit_summary(model, out_dir), highlight=False, markup=False)
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
    layer: LayerOpt = None,
    key: Annotated[str | None, typer.Option(help="obsm key (default X_<method>).")] = None,
    stream: StreamOpt = None,
    overwrite: OverwriteOpt = False,
):
    """Embed expression data with a pretrained model (genes aligned by name)."""
    from .io import add_labels, write_h5ad
    from .model import SSLModel
    from .outputs import check_output
    from .sources import ExpressionSource
    from .validation import check_key, check_keys

    if out.suffix != ".h5ad":
        raise ConfigError(f"{out}: --out must end in .h5ad")
    if key is not None:
        check_key(key)  # before any work; transform checks it again, in the same words
    check_output(out, "embedding", overwrite=overwrite, inputs=[data, model, labels])
    m = SSLModel.load(model)
    source = ExpressionSource.resolve(
        data,
        stream,
        layer=layer,
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
    check_keys(result)  # a sheet's column '.' or '_index': one line, not HDF5's error
    write_h5ad(result, out)
    key = key or f"X_{m.method}"
    Z = result.obsm[key]
    console.print(
        f"wrote {Z.shape[0]} x {Z.shape[1]} embeddings to {out} (obsm['{key}'])",
        highlight=False,
        markup=False,
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
        markup=False,
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
                "(gene, class, approach, split, fraction, attribution, rank), or a directory to "
                "write it into; a self-contained page with its table and plots goes beside it "
                "(attributions.html)."
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
    from .report.explain_page import check_page_output, page_path, write_explain_page

    if top < 1 or head not in HEADS or splits < 1:
        raise ConfigError(
            f"--top and --splits must be >= 1 and --head one of {', '.join(HEADS)}, got "
            f"{top}, {splits} and '{head}'"
        )
    page = None
    if out is not None:
        if out.is_dir() or (not out.exists() and out.suffix.lower() != ".csv"):
            out = out / "attributions.csv"  # a directory: the table and its page go in it
        check_output(out, "attributions", overwrite=overwrite, inputs=[data, model, labels])
        page = check_page_output(page_path(out), overwrite=overwrite)
    m = SSLModel.load(model)
    table = explain_model(
        m, _load(data, labels, label_id_column, orientation), label, head=head, splits=splits
    )
    if out is not None:
        write_attributions(table, out, overwrite=overwrite, inputs=[data, model, labels])
        write_explain_page(table, page, title=f"exprssl explain: {model} — {label}", k=top)
    best = top_genes(table, top)
    shared = overlap(table, "logreg", top).set_index(["approach", "class"]).iloc[:, 0]
    steady = stability(table, top).set_index(["approach", "class"])
    n = table["split"].nunique()
    t = Table(
        title=f"top {top} genes per class ({literal(label)}; "
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
            literal(cls),
            literal(approach),
            literal(", ".join(part["gene"])),
            f"{shared.get((approach, cls), float('nan')):.0%}" if approach != "logreg" else "",
            "" if s["n_splits"] < 2 else f"rho {s['spearman']:.2f}, Jaccard {s.iloc[-1]:.2f}",
        )
    console.print(t)
    if out is not None:
        console.print(
            f"wrote {len(table)} rows to {out}, and {page}", highlight=False, markup=False
        )


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
                tasks[stage] = bar.add_task(f"{stage} {literal(src.name)}", total=total)
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
        markup=False,
    )


@app.command()
@user_errors
def methods(
    method: Annotated[
        str | None, typer.Argument(help=shown("One method.", "every method"), show_default=False)
    ] = None,
):
    """The SSL methods: each one's summary, the options every method shares (once), and each
    method's own options: default, allowed values, meaning."""
    from .methods import available, describe_options

    names = [method] if method else available()
    rows = {name: describe_options(name) for name in names}  # an unknown name: one line
    for name in names:
        console.print(f"[bold]{name}[/]: {escape(method_summary(name))}", highlight=False)
    shared = [r for r in rows[names[0]] if len(names) > 1 and all(r in rows[n] for n in names)]
    if shared:
        _print_options("shared by every method", shared)
    for name in names:
        own = [r for r in rows[name] if r not in shared]
        if own:
            _print_options(f"{name}: its own options" if shared else name, own)


def method_summary(name: str) -> str:
    """A method's one-line summary, whole: its module docstring's first paragraph (the class's
    docstring starts with the loss parts)."""
    import sys

    from .methods import get_method

    cls = get_method(name)
    doc = sys.modules[cls.__module__].__doc__ or cls.__doc__ or ""
    return " ".join(doc.strip().split("\n\n")[0].split())


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
# BenchmarkConfig's fields as `exprssl benchmark` flags; their help, defaults and allowed values
# come from BenchmarkConfig (exprssl.flags)
BENCHMARK_FLAGS = {
    "data": Flag(str, "--data", "-d", required=True),
    "label": Flag(str, "--label", "-l", required=True),
    "out": Flag(str, "--out", "-o", required=True),
    "labels": Flag(str, SHEET),
    "label_id_column": Flag(str),
    "methods": Flag(list[str]),
    "models": Flag(list[str], "--model", repeat=True),
    "min_model_coverage": Flag(float),
    "baselines": Flag(list[str]),
    "fractions": Flag(list[float]),
    "n_fractions": Flag(int),
    "splits": Flag(int),
    "seeds": Flag(int),
    "pretrain_seeds": Flag(int),
    "group": Flag(str),
    "pretrain_data": Flag(list[str], repeat=True),
    "pool_scaling": Flag(str),
    "transductive": Flag(bool, off="--inductive"),
    "protocol": Flag(str),
    "split": Flag(dict),
    "split_seed": Flag(int),
    "min_class_size": Flag(int),
    "epochs": Flag(int),
    "batch_size": Flag(int),
    "patience": Flag(int),
    "method_options": Flag(dict),
    "encoder": Flag(dict),
    "preprocessing": Flag(dict),
    "finetune": Flag(dict),
    "tune": Flag(bool),
    "main_metric": Flag(str),
    "min_test_per_class": Flag(float),
    "attributions": Flag(bool),
    "bootstrap": Flag(int),
    "jobs": Flag(int),
    "scheduler": Flag(str),
    "accelerator": Flag(str),
    "devices": Flag(str),
    "orientation": Flag(str),
    "layer": Flag(str),
}
ProgressOpt = Annotated[
    bool, typer.Option(help=shown("Show progress.", "--progress"), show_default=False)
]


@app.command(cls=FieldFlagsCommand)
@user_errors
@field_flags("exprssl.evaluation.config:BenchmarkConfig", BENCHMARK_FLAGS)
def benchmark(
    given: dict,
    top_genes: TopGenesOpt = None,
    config: ConfigOpt = None,
    progress: ProgressOpt = True,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            help=shown(
                "Check everything, print the plan (pretrainings, cells, the estimated time per "
                "stage and learner on this machine) and exit; nothing is trained or written.",
                "off",
            ),
        ),
    ] = False,
):
    """Label-efficiency benchmark: SSL methods vs tuned supervised baselines, with a report.
    Required options may come from --config instead of the command line; YAML-valued options
    (--split, --encoder, ...) take flow text such as "{train: 0.75, test: 0.25}"."""
    from .evaluation.config import BenchmarkConfig

    cfg = merge(read_config(config), **given)
    for key, flag in BENCHMARK_FLAGS.items():
        if flag.required and not cfg.get(key):
            raise ConfigError(
                f"{flag.spellings(key)[0]} is required (on the command line or in --config)"
            )
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
    progress: ProgressOpt = True,
):
    """The benchmark on the bundled real dataset (all_leukemia, molecular subtype), in minutes
    on a CPU."""
    from dataclasses import replace

    from .evaluation.config import demo_config

    _run_benchmark(replace(demo_config(str(out)), jobs=jobs), progress)


def _run_benchmark(cfg, progress: bool) -> None:
    from .api import benchmark
    from .report import answer, summary_matrix

    run = benchmark(config=cfg, progress=progress)
    metric = run.manifest.setting("main_metric")
    table = summary_matrix(run.summary, ci=False, plain=True)
    t = Table(
        title=f"{literal(cfg.data)}: {literal(cfg.label)} — {metric.replace('_', ' ')} on the test "
        "set, mean over splits x seeds (intervals and verdicts in the report)"
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
        markup=False,
    )


def _print_whole(renderable) -> None:
    """Print to a terminal at its width; to a file or pipe (a log) at the renderable's own width:
    rich assumes 80 columns there and cut the summary table's columns."""
    if console.is_terminal:
        console.print(renderable)
        return
    from rich.measure import Measurement

    width = Measurement.get(console, console.options.update(width=10_000), renderable).maximum
    _StdoutConsole(width=max(80, width), soft_wrap=True).print(renderable)


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
    handle_signals()  # SIGTERM ends the run as Ctrl-C does (workers too); SIGXFSZ is an error
    Console.on_broken_pipe = _end_on_closed_stdout  # typer's help consoles too: `| head` is fine
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        code = app(args=args, prog_name="exprssl", standalone_mode=False)
    except usage_error as e:
        if type(e).__name__ != "NoArgsIsHelpError":  # bare `exprssl`: click printed the help
            where = e.ctx.command_path if e.ctx is not None else _command_path(args)
            message = f"{e.format_message().rstrip('.')} (see '{where} --help')"
            err_console.print(
                f"[bold red]exprssl: error:[/] {literal(message)}", highlight=False, soft_wrap=True
            )
        code = 2
    except typer.Abort as e:
        err_console.print("aborted", highlight=False)
        code = getattr(e.__cause__, "exit_code", 130)  # 143 for SIGTERM (signals.Terminated)
    except (_StdoutClosed, BrokenPipeError):  # a reader that stopped early: nothing to say
        _silence_stdout()
        code = 0
    if code == Terminated.exit_code:  # a scheduler is waiting: skip the teardown's collection
        import gc

        gc.freeze()
    from .utils import hdf5_left_open

    if code and hdf5_left_open():  # a write out of room: HDF5's own clean-up would crash
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
