"""A corpus of bad input files a user could plausibly feed exprssl, for table-driven tests.

Not a test module: ``tests/test_io_bad_inputs.py`` runs the corpus through the Python API, and the
CLI tests can run the same files through every command. Each case says which reader it targets:

- ``"data"``: an expression file (``exprssl.read_file`` / ``load_dataset``; ``exprssl info PATH``);
- ``"labels"``: a sample sheet joined to the good expression file ``case.data``
  (``exprssl.add_labels``; ``exprssl info DATA --labels PATH``);
- ``"convert"``: a source for ``exprssl.store.convert`` (``exprssl convert PATH --out OUT``).

Every case must raise ``case.error`` (an ``ExprsslError`` subclass) with a one-line message that
names ``case.path`` and contains ``case.expect``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from pathlib import Path
from typing import NamedTuple

import anndata as ad
import h5py
import numpy as np
import pandas as pd

from exprssl.errors import (
    DataFileError,
    DuplicateSamplesError,
    ExprsslError,
    InvalidValuesError,
    LabelColumnError,
    LabelMatchError,
    NonNumericError,
    TruncatedFileError,
    UnknownFormatError,
)

KINDS = ("data", "labels", "convert")


class BadInput(NamedTuple):
    path: Path
    kind: str
    error: type[ExprsslError]
    expect: str
    data: Path | None = None  # the good expression file a "labels" sheet is joined to


def good_counts(n_samples: int = 30, n_genes: int = 60, seed: int = 0) -> pd.DataFrame:
    """The issue's reference table: Poisson(150) counts, samples S0.. x genes G0.."""
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        rng.poisson(150, (n_samples, n_genes)),
        index=pd.Index([f"S{i}" for i in range(n_samples)], name="sample"),
        columns=[f"G{i}" for i in range(n_genes)],
    )


def _binary(n: int = 4096, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def _write_archs4(
    path: Path, n_genes: int = 20, n_samples: int = 30, gene_ids: int | None = None
) -> None:
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as f:
        f.create_dataset(
            "data/expression",
            data=rng.integers(0, 500, (n_genes, n_samples)).astype(np.uint32),
            chunks=(n_genes, 5),
            compression="gzip",
        )
        f.create_dataset(
            "meta/genes/symbol",
            data=np.array([f"G{i}" for i in range(gene_ids or n_genes)], dtype="S"),
        )
        f.create_dataset(
            "meta/samples/geo_accession",
            data=np.array([f"GSM{i}" for i in range(n_samples)], dtype="S"),
        )


def _corrupt_middle(path: Path) -> None:
    """Overwrite the middle third with garbage, keeping the file's length and header."""
    data = bytearray(path.read_bytes())
    third = len(data) // 3
    data[third : 2 * third] = _binary(third, seed=7)
    path.write_bytes(bytes(data))


def _truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def bad_input_corpus(tmp_path: Path) -> dict[str, BadInput]:
    """Write every bad input under ``tmp_path`` (plus the good ``good.csv`` that sheets join to)."""
    tmp = Path(tmp_path)
    frame = good_counts()
    good = tmp / "good.csv"
    frame.to_csv(good)
    text = good.read_text()
    cases: dict[str, BadInput] = {}

    def data(name: str, error, expect: str, kind: str = "data") -> Path:
        p = tmp / kind / name
        p.parent.mkdir(exist_ok=True)
        cases[f"{kind}:{name}"] = BadInput(
            p, kind, error, expect, good if kind == "labels" else None
        )
        return p

    # ---------------------------------------------------------------- expression files
    data("missing.csv", DataFileError, "no such file")
    data("empty.csv", DataFileError, "file is empty").write_bytes(b"")
    data("directory.csv", DataFileError, "is a directory").mkdir()
    data("binary.csv", DataFileError, "not a text file").write_bytes(_binary())
    data("utf16_no_bom.tsv", DataFileError, "not a text file").write_bytes(
        frame.to_csv(sep="\t").encode("utf-16-le")
    )
    data("latin1.csv", DataFileError, "not UTF-8").write_bytes(
        text.replace("G5,", "Gène5,").encode("latin-1")
    )
    data("not_gzip.csv.gz", TruncatedFileError, "gzip").write_text(text)
    truncated_gz = data("truncated.csv.gz", TruncatedFileError, "truncated")
    pd.DataFrame(np.random.default_rng(0).random((200, 300))).to_csv(
        truncated_gz, compression="gzip"
    )
    _truncate(truncated_gz)
    data("empty.csv.gz", DataFileError, "file is empty").write_bytes(gzip.compress(b""))
    data("gzip_named.csv", DataFileError, "looks like gzip-compressed data").write_bytes(
        gzip.compress(text.encode())
    )
    data("excel_named.csv", DataFileError, "Excel workbook").write_bytes(
        b"PK\x03\x04" + _binary(200)
    )
    data("blank_first_line.csv", DataFileError, "first line is empty").write_text("\n" + text)
    data("whitespace_only.tsv", DataFileError, "first line is empty").write_text("  \n\n \n")
    data("header_unclosed_quote.csv", DataFileError, "could not parse").write_text('"' + text)
    data("unnamed_column.csv", DataFileError, "no name").write_text(text.replace(",G3,", ",,", 1))
    data("header_only.csv", DataFileError, "no data rows").write_text(text.splitlines()[0] + "\n")
    data("only_ids.csv", DataFileError, "no value columns").write_text(
        "sample\n" + "\n".join(frame.index) + "\n"
    )
    lines = text.splitlines()
    data("ragged_long.csv", DataFileError, "fields").write_text(
        "\n".join(lines[:4] + [lines[4] + ",7,8"] + lines[5:]) + "\n"
    )
    data("ragged_short.csv", InvalidValuesError, "sample S3").write_text(
        "\n".join(lines[:4] + [lines[4].rsplit(",", 2)[0]] + lines[5:]) + "\n"
    )
    data("unclosed_quote.csv", DataFileError, "could not parse").write_text(
        "\n".join(lines[:3] + ['S2,"12,13'] + lines[4:]) + "\n"
    )
    bad = frame.astype(object)
    bad.iloc[3, 7] = "high"
    bad.to_csv(data("non_numeric.csv", NonNumericError, "'high' at row 'S3', column 'G7'"))
    bad = frame.astype(float)
    bad.iloc[2, 5] = np.nan
    bad.to_csv(data("nan.csv", InvalidValuesError, "sample S2, gene G5"))
    dup = frame.copy()
    dup.index = [*frame.index[:-1], "S1"]
    dup.T.to_csv(data("dup_samples_in_header.csv", DuplicateSamplesError, "S1"))
    dup.to_csv(data("dup_samples_in_column.csv", DuplicateSamplesError, "S1"))
    data("fake.parquet", TruncatedFileError, "not a readable parquet").write_text(text)
    pd.DataFrame(index=pd.RangeIndex(3)).to_parquet(
        data("no_columns.parquet", DataFileError, "no data")
    )
    data("unknown.xlsx", UnknownFormatError, "unknown format").write_text(text)
    data("no_extension", UnknownFormatError, "unknown format").write_text(text)

    gct_body = frame.T.copy()
    gct_body.insert(0, "Description", "na")
    gct_text = gct_body.to_csv(sep="\t", index_label="Name")
    data("binary.gct", DataFileError, "not a text file").write_bytes(_binary())
    data("header_only.gct", DataFileError, "no data rows").write_text(
        f"#1.2\n60\t30\n{gct_text.splitlines()[0]}\n"
    )
    data("version_only.gct", DataFileError, "dimension line").write_text("#1.2\n")
    data("bad_quote.gct", DataFileError, "could not parse").write_text(
        f"#1.2\n60\t30\n{gct_text.replace('na', chr(34) + 'na', 1)}"
    )
    data("wrong_dims.gct", DataFileError, "dimension line says 50 genes x 30 samples").write_text(
        f"#1.2\n50\t30\n{gct_text}"
    )
    data("bad_dims_line.gct", DataFileError, "dimension line").write_text(
        f"#1.2\nrows cols\n{gct_text}"
    )

    with h5py.File(data("not_anndata.h5ad", DataFileError, "not an AnnData"), "w") as f:
        f.create_dataset("matrix", data=np.ones((3, 3)))
    data("text.h5ad", TruncatedFileError, "not a readable h5ad").write_text(text)
    h5ad = data("truncated.h5ad", TruncatedFileError, "truncated")
    ad.AnnData(frame.astype(np.float32)).write_h5ad(h5ad)
    _truncate(h5ad)
    with h5py.File(data("not_archs4.h5", DataFileError, "ARCHS4"), "w") as f:
        f.create_dataset("matrix", data=np.ones((3, 3)))
    data("text.h5", TruncatedFileError, "not a readable HDF5").write_text(text)
    _write_archs4(
        data("archs4_gene_count_mismatch.h5", DataFileError, "does not match"), gene_ids=15
    )
    archs4 = data("archs4_corrupt_chunks.h5", TruncatedFileError, "corrupt")
    _write_archs4(archs4, n_genes=400, n_samples=200)
    _corrupt_middle(archs4)

    # round three (issue 21): what is not a regular file, tables without ids, cells that are not
    # counts, featureCounts layouts, ids that only look distinct
    def special(name: str, error, expect: str, kind: str = "data") -> Path:
        return data(name, error, expect, kind=kind)

    fifo = special("fifo.csv", DataFileError, "named pipe")
    os.mkfifo(fifo)
    special("urandom.csv", DataFileError, "character device").symlink_to("/dev/urandom")
    special("dangling_link.csv", DataFileError, "symbolic link to a missing file").symlink_to(
        tmp / "nowhere.csv"
    )
    loop = special("link_loop.csv", DataFileError, "symbolic link loop")
    loop.symlink_to(loop)
    frame.T.to_csv(data("no_id_column.csv", DataFileError, "no id column"), index=False)
    flags = frame.astype(object)
    flags["G5"] = ["true", "false"] * 15
    flags.to_csv(data("true_false.csv", NonNumericError, "true/false value 'true'"))
    inf = frame.astype(object)
    inf.iloc[2, 3] = "Inf"
    inf.to_csv(
        data(
            "text_inf.csv", InvalidValuesError, "infinite values (first inf at sample S2, gene G3)"
        )
    )
    inf.iloc[2, 3] = "1e39"
    inf.to_csv(
        data(
            "overflow_1e39.csv",
            InvalidValuesError,
            "1e+39 at row 'S2', column 'G3' is beyond float32",
        )
    )
    data("comments_only.csv", DataFileError, "only '#' comment lines").write_text(
        "# exported\n# by hand\n"
    )
    fc = frame.T.iloc[:, :0].assign(Chr="chr1", Start=1, End=90, Strand="+", Length=90)
    fc.rename_axis("Geneid").to_csv(
        data("fc_annotation_only.txt", DataFileError, "only annotation columns"), sep="\t"
    )
    fc = frame.T.iloc[:, :4].set_axis(
        [f"/run{i % 2}/S{i // 2}.sorted.bam" for i in range(4)], axis=1
    )
    fc.insert(0, "Length", 90)
    fc.rename_axis("Geneid").to_csv(
        data("fc_same_bam_names.txt", DuplicateSamplesError, "S0"), sep="\t"
    )
    spaced = frame.copy()
    spaced.index = [*frame.index[:-1], " S1 "]
    spaced.to_csv(data("ids_equal_but_spaces.csv", DuplicateSamplesError, "S1"))
    spaced.index = [*frame.index[:-1], "   "]
    spaced.to_csv(data("blank_id.csv", DataFileError, "sample 30 has a blank id"))
    euro = frame.astype(object)
    euro.iloc[3, 7] = "hoch"
    euro.to_csv(
        data("semicolon_text_cell.csv", NonNumericError, "'hoch' at row 'S3', column 'G7'"), sep=";"
    )
    thousands = (
        (frame * 10).astype(object).map(lambda v: f"{v // 1000},{v % 1000:03d}" if v >= 1000 else v)
    )
    thousands.to_csv(
        data("thousands_separators.tsv", DataFileError, "could have a thousands separator"),
        sep="\t",
    )
    dup_h5ad = ad.AnnData(frame.astype(np.float32))
    dup_h5ad.obs_names = [*frame.index[:-1], "S1"]
    dup_h5ad.write_h5ad(data("dup_samples.h5ad", DuplicateSamplesError, "S1"))
    ad.AnnData((frame > 150).to_numpy()).write_h5ad(
        data("bool_matrix.h5ad", NonNumericError, "true/false")
    )

    # ---------------------------------------------------------------- sample sheets
    sheet = pd.DataFrame({"sample": frame.index, "tissue": ["lung", "liver"] * 15})
    sheet_text = sheet.to_csv(index=False)

    def labels(name: str, error, expect: str) -> Path:
        return data(name, error, expect, kind="labels")

    labels("missing.csv", DataFileError, "no such file")
    labels("empty.csv", DataFileError, "file is empty").write_bytes(b"")
    labels("directory.tsv", DataFileError, "is a directory").mkdir()
    labels("binary.csv", DataFileError, "not a text file").write_bytes(_binary())
    labels("binary.tsv", DataFileError, "not a text file").write_bytes(_binary(seed=3))
    labels("utf16_no_bom.csv", DataFileError, "not a text file").write_bytes(
        sheet_text.encode("utf-16-le")
    )
    labels("fake.parquet", TruncatedFileError, "not a readable parquet").write_text(sheet_text)
    pd.DataFrame(index=pd.RangeIndex(3)).to_parquet(
        labels("no_columns.parquet", DataFileError, "no data")
    )
    labels("not_gzip.csv.gz", TruncatedFileError, "gzip").write_text(sheet_text)
    sheet_lines = sheet_text.splitlines()
    labels("unclosed_quote.csv", DataFileError, "could not parse").write_text(
        "\n".join(sheet_lines[:3] + ['S2,"lung'] + sheet_lines[4:]) + "\n"
    )
    labels("unclosed_quote.tsv", DataFileError, "could not parse").write_text(
        "\n".join(sheet_lines[:3] + ['S2\t"lung'] + sheet_lines[4:]).replace(",", "\t") + "\n"
    )
    labels("header_only.csv", DataFileError, "no data rows").write_text("sample,tissue\n")
    labels("blank_first_line.csv", DataFileError, "first line is empty").write_text(
        "\n" + sheet_text
    )
    labels("hdf5_named.csv", DataFileError, "looks like an HDF5 file").write_bytes(
        b"\x89HDF\r\n\x1a\n" + _binary(64)
    )
    labels("no_id_column.csv", LabelMatchError, "no sample id matches").write_text(
        sheet[["tissue"]].assign(stage="I").to_csv(index=False)
    )
    labels("duplicate_column.csv", LabelColumnError, "'tissue'").write_text(
        sheet.assign(t2=sheet["tissue"]).to_csv(index=False).replace("t2", "tissue", 1)
    )
    conflicting = pd.concat([sheet, pd.DataFrame({"sample": ["S4"], "tissue": ["skin"]})])
    labels("conflicting_ids.csv", LabelColumnError, "S4").write_text(
        conflicting.to_csv(index=False)
    )
    labels("unknown.xlsx", UnknownFormatError, "unknown format").write_text(sheet_text)
    ad.AnnData(frame.astype(np.float32)).write_h5ad(
        labels("sheet.h5ad", UnknownFormatError, "csv, parquet or tsv")
    )
    os.mkfifo(labels("fifo.csv", DataFileError, "named pipe"))
    loop = labels("link_loop.csv", DataFileError, "symbolic link loop")
    loop.symlink_to(loop)
    labels("comments_only.tsv", DataFileError, "only '#' comment lines").write_text("# sheet\n")
    sheet.assign(sample=sheet["sample"].str.lower()).to_csv(
        labels("ids_differ_in_case.csv", LabelMatchError, "differ only in upper/lower case"),
        index=False,
    )

    # ---------------------------------------------------------------- exprssl convert sources
    def source(name: str, error, expect: str) -> Path:
        return data(name, error, expect, kind="convert")

    source("missing.h5", DataFileError, "no such file")
    h5ad = source("truncated.h5ad", TruncatedFileError, "truncated")
    ad.AnnData(frame.astype(np.float32)).write_h5ad(h5ad)
    _truncate(h5ad)
    source("text.h5ad", TruncatedFileError, "not a readable h5ad").write_text(text)
    with h5py.File(source("not_anndata.h5ad", DataFileError, "not an AnnData"), "w") as f:
        f.create_dataset("matrix", data=np.ones((3, 3)))
    with h5py.File(source("not_archs4.h5", DataFileError, "ARCHS4"), "w") as f:
        f.create_dataset("matrix", data=np.ones((3, 3)))
    source("text.h5", TruncatedFileError, "not a readable HDF5").write_text(text)
    _write_archs4(
        source("archs4_gene_count_mismatch.h5", DataFileError, "does not match"), gene_ids=15
    )
    archs4 = source("archs4_corrupt_chunks.h5", TruncatedFileError, "corrupt")
    _write_archs4(archs4, n_genes=400, n_samples=200)
    _corrupt_middle(archs4)
    source("binary.csv", DataFileError, "not a text file").write_bytes(_binary())
    source("directory.csv", DataFileError, "is a directory").mkdir()
    with gzip.open(source("truncated.tsv.gz", TruncatedFileError, "truncated"), "wt") as fh:
        fh.write(frame.T.to_csv(sep="\t") * 20)
    _truncate(cases["convert:truncated.tsv.gz"].path)
    os.mkfifo(source("fifo.tsv", DataFileError, "named pipe"))
    frame.T.to_csv(source("no_id_column.csv", DataFileError, "no id column"), index=False)
    flags.to_csv(source("true_false.tsv", NonNumericError, "true/false"), sep="\t")
    return cases


# ============================================================================ round four (issue 28)
# Hostile names, config files that lie, output names that break the format, labels as real sheets
# write them and a closed pipe. Tables, not files: tests/test_io_bad_inputs.py runs the names and
# labels through the library, tests/test_cli_bad_inputs.py the rest through the commands.

# user text that is markup somewhere: rich ([...]), matplotlib ($...$, a legend's leading _),
# Markdown and HTML; each must be shown as written
HOSTILE_NAMES = (
    "[bold]A",
    "weight [kg]",
    "$\\mathrm{x$",
    "$x$ and $y$",
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "_hidden",
    "data[/x].csv",
    "back\\slash\\",
    "T&NK_[1]*",
)

# (command, YAML body, what the one line says): every value is checked by type, the loader
# refuses an alias bomb or a document that contains itself before anything walks it
_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]\n" for i in range(1, 10)
)
LYING_CONFIGS = (
    ("pretrain", "data: [a.csv, b.csv]\n", "pretrain: data must be a single name or path"),
    ("pretrain", "out: 2024\n", "out must be a single name or path (quote it in YAML"),
    ("pretrain", "method: {name: scarf}\n", "method must be a single name or path"),
    ("pretrain", "method_params: [1, 2]\n", "method_params must be a mapping of option: value"),
    ("pretrain", _BOMB, "aliases expand to more than 100,000 values"),
    ("pretrain", "loop: &a [*a]\n", "refers to the value that contains it"),
    ("benchmark", "data: [a.csv]\n", "benchmark: data must be a single name or path"),
    ("benchmark", "labels: 5\n", "labels must be a single name or path"),
    ("benchmark", "method_options: {scarf: [1]}\n", "method_options must be a mapping of method"),
    ("benchmark", "models: {a: 1}\n", "models must be a list of names"),
    ("benchmark", _BOMB, "aliases expand to more than 100,000 values"),
)

# (label values as a sheet writes them, the classes they are, values read as missing)
SHEET_LABELS = (
    (["lung", "lung\u200b", "liver", "liver"], ["liver", "lung"], 0),
    (["côlon", "co\u0302lon", "lung", "lung"], ["côlon", "lung"], 0),  # NFC and NFD
    (["\ufefflung", "lung\u2060", " lung\u00a0", "skin"], ["lung", "skin"], 0),
    (["lung", "[Not Available]", "skin", "[Discrepancy]"], ["lung", "skin"], 2),
    (["lung", "[Not Evaluated]", "[Unknown]", "[Not Applicable]"], ["lung"], 3),
    (["a\u200c", "a", "b\u200d", "b"], ["a", "b"], 0),
)

# embed/benchmark names that would write or read the wrong thing: (argument, what the line says)
# (embed --key, or SSLModel.transform's key=: the same check, the same line)
BAD_KEYS = (
    ("X_scarf/v2", "cannot hold '/'"),
    ("/X", "cannot hold '/'"),
    ("X/", "cannot hold '/'"),
    (" ", "must be a non-empty name"),
    ("", "must be a non-empty name"),
    (".", "a name h5py or anndata reserves"),
)
BAD_PYTHON_KEYS = (  # what a command line cannot carry
    ("a\x00b", "a name h5py or anndata reserves"),
    (3, "must be a non-empty name"),
)
# sample-sheet columns that become obs columns of `embed --sample-sheet`'s .h5ad
BAD_SHEET_COLUMNS = (
    (".", "obs column '.' cannot be written"),
    ("_index", "obs column '_index' cannot be written"),
)
# a reader that leaves before the first byte (`exprssl --help | head -n 1`): every output, typer's
# help and --version included, ends quietly with exit 0
CLOSED_PIPE_COMMANDS = (
    ("methods",),
    ("options",),
    ("datasets",),
    ("--help",),
    ("--version",),
    ("benchmark", "--help"),
    ("embed", "--help"),
    ("info", "--help"),
)
BAD_MODELS = (  # LOOP and DANGLING are made by the test
    ("LOOP", "a symbolic link loop, not a model directory"),
    ("DANGLING", "a symbolic link to a missing target"),
    ("hf:/org/x", "a hub id starts with hf://"),
    ("HF://org/x", "a hub id starts with hf://"),
)


# =============================================================================================
# round four (issue 28), disks, resumes and pools: writes that run out of room, result files
# damaged between two runs, pretraining sources that are the cohort or say nothing
# =============================================================================================


class NoRoom(NamedTuple):
    """An exception as a library raises it when a write runs out of room, and the cause
    ``exprssl.utils.no_room_cause`` must read from it (None: not a lack of room)."""

    error: BaseException
    cause: str | None


def _chained(outer: BaseException, inner: BaseException) -> BaseException:
    outer.__cause__ = inner
    return outer


NO_ROOM_CASES = {
    "oserror_enospc": NoRoom(OSError(28, "No space left on device"), "no space left on device"),
    "oserror_efbig": NoRoom(OSError(27, "File too large"), "file too large"),
    "oserror_edquot": NoRoom(OSError(122, "Disk quota exceeded"), "disk quota exceeded"),
    "hdf5_errno_text": NoRoom(
        RuntimeError("Set slist enabled failed (file write failed: errno = 27, error message"),
        "file too large",
    ),
    "safetensors_os_error": NoRoom(
        Exception("Error while serializing: I/O error: No space left on device (os error 28)"),
        "no space left on device",
    ),
    "chained_from_oserror": NoRoom(
        _chained(RuntimeError("unexpected pos 4544 vs 4438"), OSError(28, "No space")),
        "no space left on device",
    ),
    "permission_is_not_room": NoRoom(PermissionError(13, "Permission denied"), None),
    "unrelated_error": NoRoom(ValueError("could not convert string to float"), None),
}


class DiskFull(NamedTuple):
    """A command that writes, run under a file-size limit (``ulimit -f``, in KiB) that its
    output exceeds: it must fail in one line naming ``out`` and leave no partial file, and the
    same command without the limit must succeed. ``{data}``, ``{labels}``, ``{model}`` and
    ``{out}`` are filled in by the test."""

    args: tuple[str, ...]
    out: str
    limit_kib: int


DISK_FULL_CASES = {
    "pretrain": DiskFull(
        (
            "pretrain", "--method", "scarf", "--epochs", "1", "--data", "{data}",
            "--orientation", "samples_in_rows", "--set", "hidden_dims=[64]", "--no-progress",
            "--out", "{out}",
        ),
        "model",
        24,
    ),
    "embed": DiskFull(
        (
            "embed", "--model", "{model}", "--data", "{data}", "--orientation",
            "samples_in_rows", "--out", "{out}",
        ),
        "emb.h5ad",
        4,
    ),
    "convert": DiskFull(("convert", "{data}", "--out", "{out}"), "store.h5ad", 12),
    "explain": DiskFull(
        (
            "explain", "--model", "{model}", "--data", "{data}", "--labels", "{labels}",
            "--label", "tissue", "--orientation", "samples_in_rows", "--out", "{out}",
        ),
        "attributions.csv",
        4,
    ),
    "benchmark": DiskFull(
        (
            "benchmark", "--data", "{data}", "--labels", "{labels}", "--label", "tissue",
            "--orientation", "samples_in_rows", "--methods", "none", "--baselines", "logreg",
            "--splits", "1", "--seeds", "1", "--fractions", "1", "--no-attributions",
            "--no-progress", "--out", "{out}",
        ),
        "bench",
        24,
    ),
}  # fmt: skip


def _cut_in_half(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _cut_in_a_number(path: Path) -> None:
    """The last line cut inside its number: what remains still parses as a (wrong) number."""
    text = path.read_text()
    path.write_text(text.rstrip("\n")[:-3])


def _drop_column(name: str):
    def damage(path: Path) -> None:
        pd.read_csv(path).drop(columns=name).to_csv(path, index=False)

    return damage


def _predictions_row_dropped(path: Path) -> None:
    frame = pd.read_parquet(path)
    frame.drop(index=frame.index[-1]).to_parquet(path, index=False)


def _predictions_row_doubled(path: Path) -> None:
    frame = pd.read_parquet(path)
    pd.concat([frame, frame.iloc[-1:]]).to_parquet(path, index=False)


def _tuning_params_cut(path: Path) -> None:
    frame = pd.read_csv(path)
    frame.loc[frame.index[-1], "params"] = '{"C": 0.0'
    frame.to_csv(path, index=False)


def _garbage(path: Path) -> None:
    path.write_bytes(_binary(512, seed=5))


class DamagedResult(NamedTuple):
    """A finished benchmark's result file damaged between two runs (``file`` in the output
    directory, ``damage(path)``); ``lost`` is how many finished cells must then be recomputed
    (None: every cell recorded in that file's part)."""

    file: str
    damage: object
    lost: int | None


# a finished tiny run has 2 cells (fractions 0.5 and 1, one baseline, one split, one seed)
DAMAGED_RESULT_CASES = {
    "results_cut_in_half": DamagedResult("results.csv", _cut_in_half, 2),
    "results_cut_in_a_number": DamagedResult("results.csv", _cut_in_a_number, 1),
    "results_no_value_column": DamagedResult("results.csv", _drop_column("value"), 2),
    "results_garbage": DamagedResult("results.csv", _garbage, 2),
    "predictions_truncated": DamagedResult("predictions.parquet", _cut_in_half, 2),
    "predictions_garbage": DamagedResult("predictions.parquet", _garbage, 2),
    "predictions_row_missing": DamagedResult("predictions.parquet", _predictions_row_dropped, 1),
    "predictions_row_twice": DamagedResult("predictions.parquet", _predictions_row_doubled, 1),
    "tuning_params_cut": DamagedResult("tuning.csv", _tuning_params_cut, 1),
    "tuning_cut_in_half": DamagedResult("tuning.csv", _cut_in_half, 2),
}


class PoolSource(NamedTuple):
    """A ``--pretrain-data`` table made from the cohort ``frame`` (samples x genes):
    ``kept`` profiles of it must reach the pools, or ``error`` names it with ``expect``."""

    make: object
    kept: int | None = None
    error: type[ExprsslError] | None = None
    expect: str = ""


def _renamed(frame: pd.DataFrame, prefix: str = "copy") -> pd.DataFrame:
    return frame.set_axis([f"{prefix}{i}" for i in range(len(frame))], axis=0)


def _fresh(frame: pd.DataFrame, n: int, seed: int = 9) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    values = rng.poisson(150, (n, frame.shape[1]))
    return pd.DataFrame(values, index=[f"new{i}" for i in range(n)], columns=frame.columns)


POOL_SOURCE_CASES = {
    "cohort_copy_renamed": PoolSource(lambda f: _renamed(f), kept=0),
    "cohort_copy_same_ids": PoolSource(lambda f: f.copy(), kept=0),
    "cohort_copy_as_floats": PoolSource(lambda f: _renamed(f.astype(np.float64)), kept=0),
    "cohort_same_ids_reprocessed": PoolSource(lambda f: np.log1p(f).astype(np.float32), kept=0),
    "cohort_part_and_new": PoolSource(
        lambda f: pd.concat([_renamed(f.iloc[:10]), _fresh(f, 20)]), kept=20
    ),
    "new_profiles_only": PoolSource(lambda f: _fresh(f, 25), kept=25),
    "all_zero": PoolSource(
        lambda f: _fresh(f, 20) * 0, error=DataFileError, expect="every value on the shared"
    ),
    "constant": PoolSource(
        lambda f: _fresh(f, 20) * 0 + 7, error=DataFileError, expect="every value on the shared"
    ),
    "one_profile_repeated": PoolSource(
        lambda f: pd.DataFrame(
            np.repeat(_fresh(f, 1).to_numpy(), 20, axis=0),
            index=[f"r{i}" for i in range(20)],
            columns=f.columns,
        ),
        error=DataFileError,
        expect="all 20 profiles are the same",
    ),
}


def _splits_out_of_range(path: Path) -> None:
    """Valid JSON, but row numbers the cohort does not have."""
    import json

    splits = json.loads(path.read_text())
    path.write_text(
        json.dumps(
            {k: {p: [i + 10_000 for i in v] for p, v in s.items()} for k, s in splits.items()}
        )
    )


def _splits_not_rows(path: Path) -> None:
    path.write_text('{"0": {"test": ["S1", "S2"], "pool": 3}}')


def _json_list(path: Path) -> None:
    path.write_text("[1, 2, 3]")


class DamagedRun(NamedTuple):
    """A benchmark directory interrupted after pretraining (its result files gone, so the rerun
    computes every cell from the caches) with ``file`` (a glob in it) damaged: the rerun either
    recomputes the part and says ``expect`` in one warning, its results equal to an
    uninterrupted run's, or, for what defines the run, refuses in one line saying ``expect``
    and changes nothing."""

    file: str
    damage: object
    refused: bool
    expect: str


DAMAGED_RUN_CASES = {
    "settings_cut_in_half": DamagedRun(
        "settings.json", _cut_in_half, True, "settings.json: damaged"
    ),
    "settings_garbage": DamagedRun("settings.json", _garbage, True, "settings.json: damaged"),
    "settings_not_an_object": DamagedRun(
        "settings.json", _json_list, True, "settings.json: damaged"
    ),
    "splits_cut_in_half": DamagedRun("splits.json", _cut_in_half, False, "splits.json was damaged"),
    "splits_garbage": DamagedRun("splits.json", _garbage, False, "splits.json was damaged"),
    "splits_out_of_range": DamagedRun(
        "splits.json", _splits_out_of_range, False, "splits.json was damaged"
    ),
    "splits_not_row_numbers": DamagedRun(
        "splits.json", _splits_not_rows, False, "splits.json was damaged"
    ),
    "model_weights_cut_in_half": DamagedRun(
        "models/split0/scarf/weights.safetensors",
        _cut_in_half,
        False,
        "1 pretrained model(s) damaged",
    ),
    "model_weights_garbled": DamagedRun(
        "models/split0/scarf/weights.safetensors",
        _corrupt_middle,
        False,
        "1 pretrained model(s) damaged",
    ),
    "model_config_garbage": DamagedRun(
        "models/split0/scarf/config.json", _garbage, False, "1 pretrained model(s) damaged"
    ),
    "features_cut_in_half": DamagedRun("cache/split0/X.npy", _cut_in_half, False, ""),
    "embeddings_cache_garbage": DamagedRun("cache/split0/Z_scarf_0.npy", _garbage, False, ""),
}


def snapshot(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes: what must not change."""
    return {
        str(p.relative_to(root)): hashlib.sha1(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def tiny_cohort(root: Path) -> Path:
    """The resume tests' cohort: 60 seeded synthetic profiles x 30 genes, 3 classes, as .h5ad."""
    from exprssl.datasets import synthetic
    from exprssl.io import write_h5ad

    data = root / "syn.h5ad"
    write_h5ad(synthetic(60, 30, 3, seed=0, n_informative=10, module_size=5), data)
    return data
