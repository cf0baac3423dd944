"""Where the project writes, and the environment it runs in.

Everything the project writes lives under one home, ``REFERENCE_ARCH_HOME`` (default
``.reference_arch/`` in the project root), so a user can delete it to start over. Every ``REFERENCE_ARCH_*``
setting is typed and validated in ``settings_model.py``.
"""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SAMPLES_DIR = PACKAGE_DIR / "samples"

# Set before any hub-aware library loads: nothing may reach a hub at run time, and
# a hub name looked up without these hangs ~45 s before failing offline.
OFFLINE_ENV = {
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "HF_DATASETS_OFFLINE": "1",
    "HF_HUB_DISABLE_TELEMETRY": "1",
    "DAGSTER_DISABLE_TELEMETRY": "1",
    "RUNTIME__DLTHUB_TELEMETRY": "false",
    # The warehouse is the one raw copy of what was ingested: dlt drops a load package's files once loaded and
    # empties the staging tables of merged loads, rather than keep second raw copies (secrets included).
    "LOAD__DELETE_COMPLETED_JOBS": "true",
    "LOAD__TRUNCATE_STAGING_DATASET": "true",
    "TOKENIZERS_PARALLELISM": "false",
    # Quiet: the CLI prints its own progress.
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
}


def apply_offline_env() -> None:
    """Set the offline switches unless the user set them explicitly."""
    for key, value in OFFLINE_ENV.items():
        os.environ.setdefault(key, value)


def home() -> Path:
    """The project's home directory (created on first use)."""
    root = Path(os.environ.get("REFERENCE_ARCH_HOME") or PROJECT_ROOT / ".reference_arch")
    root.mkdir(parents=True, exist_ok=True)
    return root.resolve()


def home_path(*parts: str) -> Path:
    """A directory under the home, created on first use."""
    path = home().joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def dlt_pipelines_dir() -> str:
    return str(home_path("dlt"))


def duckdb_path() -> str:
    return str(home() / "warehouse.duckdb")


# The repo's dagster.yaml keys that hold paths relative to the repo root (for plain `dagster dev`
# there, see dagster.yaml); a DAGSTER_HOME keeps these under itself instead, Dagster's default.
RELATIVE_STORAGE_KEYS = ("storage", "local_artifact_storage", "compute_logs")


def write_instance_config(dagster_home_dir: Path) -> Path:
    """Write ``dagster.yaml`` into ``dagster_home_dir``: the repo's, without its relative storage
    paths, so the instance stores everything under ``dagster_home_dir``."""
    import yaml

    config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text()) or {}
    for key in RELATIVE_STORAGE_KEYS:
        config.pop(key, None)
    from reference_arch.common.atomic import write_text

    return write_text(Path(dagster_home_dir) / "dagster.yaml",
                      "# Written by reference-arch from the repo's dagster.yaml.\n" + yaml.safe_dump(config, sort_keys=False))


def dagster_home() -> Path:
    """``DAGSTER_HOME``, defaulting to ``.dagster_home/``; writes its dagster.yaml when missing."""
    path = Path(os.environ.get("DAGSTER_HOME") or PROJECT_ROOT / ".dagster_home").resolve()
    path.mkdir(parents=True, exist_ok=True)
    if not (path / "dagster.yaml").exists() and (PROJECT_ROOT / "dagster.yaml").exists():
        with dagster_home_lock(path):
            if not (path / "dagster.yaml").exists():
                write_instance_config(path)
    os.environ["DAGSTER_HOME"] = str(path)
    return path


DAGSTER_HOME_LOCK = ".reference_arch.lock"
DAGSTER_HOME_LOCK_WAIT_S = 300.0


def dagster_home_lock(path: Path):
    """The inter-process lock held while a process sets up the Dagster home at ``path`` (its dagster.yaml,
    the storage schema, the pool limits): two commands started at once on a fresh home otherwise both
    create the SQLite tables and stamp their schema version, leaving two alembic heads that break every
    later command. Not reentrant: take it once per set-up."""
    from filelock import FileLock

    return FileLock(str(Path(path) / DAGSTER_HOME_LOCK), timeout=DAGSTER_HOME_LOCK_WAIT_S)


def openai_configured() -> bool:
    return bool(os.environ.get("OPENAI_API_KEY"))


# -- which sources the rag location ingests ---------------------------------------------------------------------
SOURCES_ENV = "REFERENCE_ARCH_RAG_SOURCES"
SOURCES = ("github", "slack", "docs", "packages")
# The variables that point a source at the user's own data. Setting any of them turns the bundled samples off:
# only the sources configured are ingested. GITHUB_TOKEN is not among them: it is often exported for other
# tools, and the API needs REFERENCE_ARCH_GITHUB_REPOS anyway.
SOURCE_SETTINGS = {
    "github": ("REFERENCE_ARCH_GITHUB_EXPORT", "REFERENCE_ARCH_GITHUB_REPOS"),
    "slack": ("REFERENCE_ARCH_SLACK_EXPORT", "REFERENCE_ARCH_SLACK_CHANNELS", "SLACK_BOT_TOKEN"),
    "docs": ("REFERENCE_ARCH_DOCS_DIR",),
    "packages": ("REFERENCE_ARCH_DOCS_PACKAGES",),
}


def parse_name_list(raw: str, choices: tuple[str, ...], *, kind: str, default: frozenset[str],
                    all_word: str | None = None) -> frozenset[str]:
    """The names ``raw`` holds: comma-separated names from ``choices``, ``none`` (no name), or ``all_word`` when
    given (every choice); blank gives ``default``. ``ValueError`` names an unknown one and what is allowed."""
    names = {n.strip().lower() for n in raw.split(",") if n.strip()}
    if not names:
        return default
    if names == {"none"}:
        return frozenset()
    if all_word is not None and names == {all_word}:
        return frozenset(choices)
    unknown = sorted(names - set(choices))
    if unknown:
        words = ", ".join(w for w in (all_word, "none") if w)
        raise ValueError(f"unknown {kind}(s) {', '.join(unknown)}; use {words} or any of {', '.join(choices)}")
    return frozenset(names)


def name_list_setting(env: str, choices: tuple[str, ...], *, kind: str, default: frozenset[str],
                      all_word: str | None = None, value: str | None = None) -> frozenset[str]:
    """``parse_name_list`` of ``env`` (or ``value``); unset gives ``default``. ``ValueError`` names the variable."""
    raw = (os.environ.get(env, "") if value is None else value).strip()
    try:
        return parse_name_list(raw, choices, kind=kind, default=default, all_word=all_word)
    except ValueError as err:
        raise ValueError(f"{env}={raw!r} names {err}") from None


def enabled_sources() -> frozenset[str]:
    """The sources to ingest: ``REFERENCE_ARCH_RAG_SOURCES`` (comma-separated names from ``SOURCES``, or
    ``none``) when set; else those the user configured (``SOURCE_SETTINGS``); else all of them, on the
    bundled samples (the tidepool exports and docs, and the pandas API). ``ValueError`` names an unknown one."""
    configured = {name for name, keys in SOURCE_SETTINGS.items() if any(os.environ.get(k) for k in keys)}
    return name_list_setting(SOURCES_ENV, SOURCES, kind="source", default=frozenset(configured or SOURCES))


def source_enabled(name: str) -> bool:
    return name in enabled_sources()
