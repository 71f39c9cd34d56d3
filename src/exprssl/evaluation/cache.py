"""Stage 3, the output directory: checked, and a resumed run's settings, data fingerprints and
splits compared with the recorded ones before anything is written."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict
from pathlib import Path

from .. import __version__
from ..errors import ConfigError
from ..outputs import check_output
from ..utils import atomic_write_text
from .cohort import Cohort
from .config import BenchmarkConfig
from .planning import Plan
from .schema import Layout

log = logging.getLogger("exprssl")

# options a rerun may change: they add cells or only change how results are summarised
_RESUMABLE = {
    "out",
    "methods",
    "baselines",
    "fractions",
    "n_fractions",
    "seeds",
    "splits",
    "jobs",
    "scheduler",  # where cells run: the numbers are the same (a local run resumes on a cluster)
    "accelerator",  # hardware, as jobs: where the cells run, not what they compute
    "devices",
    "bootstrap",
    "min_test_per_class",
    "min_model_coverage",  # only refuses a model; the model's weights hash is in the fingerprint
    "attributions",
}

# the output directory's layout: 3 since 0.3 (the default protocol's train/test split, the
# ``split`` option's parts per protocol); a directory without it was written by 0.2
LAYOUT = 3


def _settings(cfg: BenchmarkConfig, cohort: Cohort) -> dict:
    settings = json.loads(
        json.dumps({k: v for k, v in asdict(cfg).items() if k not in _RESUMABLE}, default=str)
    )
    settings["exprssl_version"] = __version__  # another release may score differently
    settings["fingerprint"] = cohort.fingerprint
    settings["layout"] = LAYOUT
    return settings


def check_benchmark_output(cfg: BenchmarkConfig) -> Path:
    """The output rules (``outputs.check_output``) for ``cfg.out``, after its recorded settings:
    damaged ones are named (the rules would call the directory "not a benchmark"), in a
    directory that holds a run's other records (a user's own settings.json is the rules')."""
    layout = Layout(Path(cfg.out))
    if any(p.exists() for p in (layout.splits, layout.results, layout.shared_cache)):
        _recorded_settings(layout.settings)
    return check_output(cfg.out, "benchmark", inputs=[cfg.data, cfg.labels, *cfg.pretrain_data])


def prepare_output(cfg: BenchmarkConfig, cohort: Cohort, plan: Plan, write: bool = True) -> Path:
    """Refuse an output directory that is not a benchmark (or empty), or whose finished cells used
    other settings or other data; then record settings and splits (unless ``write`` is False: a
    dry run). Nothing is written before."""
    out = check_benchmark_output(cfg)
    settings = _settings(cfg, cohort)
    settings_file, split_file = Layout(out).settings, Layout(out).splits
    if settings_file.exists():
        before = _recorded_settings(settings_file)
        if before.get("layout") != LAYOUT:
            raise ConfigError(
                f"{out}: a benchmark directory of exprssl "
                f"{before.get('exprssl_version', '< 0.3')}, whose protocol split the labels "
                "differently; use a new --out directory (`--protocol paper` reproduces 0.2's "
                "split)"
            )
        changed = sorted(k for k in set(before) | set(settings) if before.get(k) != settings.get(k))
        if changed:
            raise ConfigError(
                f"{out}: holds results run with other settings "
                f"({_describe_changes(before, settings, changed)}); "
                "rerun with the same settings to resume, or use a new --out directory"
            )
    splits = {
        str(s.index): {
            "pretrain": s.pretrain.tolist(),
            "finetune": s.finetune.tolist(),
            "test": s.test.tolist(),
            "pool": s.pool.tolist(),
        }
        for s in plan.splits
    }
    if split_file.exists():
        recorded = _recorded_splits(split_file, cohort.adata.n_obs)
        if any(recorded.get(k, v) != v for k, v in splits.items()):
            raise ConfigError(
                f"{out}: holds results of different splits; use a new --out directory"
            )
        splits = {**recorded, **splits}
    if not write:
        return out
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(settings_file, json.dumps(settings, indent=2))
    atomic_write_text(split_file, json.dumps(splits))
    return out


def _read_json(path: Path) -> dict | None:
    """A JSON object exprssl wrote, or None when it is damaged (cut short, garbled)."""
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def _recorded_settings(path: Path) -> dict | None:
    """``settings.json`` as recorded (None: there is none), refused in one line when it is
    damaged: it defines the run, so it is never guessed."""
    if not path.is_file():
        return None
    recorded = _read_json(path)
    if recorded is None or "exprssl_version" not in recorded:
        raise ConfigError(
            f"{path}: damaged (cut short or garbled: not the settings of an exprssl benchmark), "
            "and a run's results cannot be resumed without them; restore the file, or use a "
            "new --out directory"
        )
    return recorded


def _recorded_splits(path: Path, n_samples: int) -> dict:
    """``splits.json`` as recorded, or nothing when it is damaged (not JSON, parts that are not
    lists of row numbers of the cohort): the settings, already found equal, draw the same
    splits again, and the file is rewritten from them (said in one line)."""
    recorded = _read_json(path)
    parts = (None,) if recorded is None else recorded.values()
    if all(
        isinstance(p, dict)
        and all(
            isinstance(rows, list) and all(type(i) is int and 0 <= i < n_samples for i in rows)
            for rows in p.values()
        )
        for p in parts
    ):
        return recorded
    log.warning("%s was damaged: written again from the settings (the same splits)", path)
    return {}


def _describe_changes(before: dict, after: dict, changed: list[str]) -> str:
    parts = []
    for k in changed:
        if k == "fingerprint":
            b, a = before.get(k) or {}, after.get(k) or {}
            what = sorted(x for x in set(a) | set(b) if a.get(x) != b.get(x))
            parts.append("contents changed: " + ", ".join(what))
        else:
            parts.append(f"{k}: {before.get(k)!r} -> {after.get(k)!r}")
    return "; ".join(parts)
