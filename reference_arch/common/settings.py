"""The project's settings: every ``REFERENCE_ARCH_*`` variable, where the project writes, the environment it runs in.

**Settings.** ``Settings`` (pydantic-settings) declares each variable once, as a field: its type, its kind (how
the text is read and what is allowed, the ``Setting`` marker), its default and what it does. Code reads a setting
with ``value("rag_start")`` (the variable without its prefix, lower case), never from ``os.environ``: the
environment is read at call time (a test's ``monkeypatch.setenv`` is seen by the next read) and validated once per
distinct environment. A bad value is a ``SettingsError``, one line naming the variable, the value and what is
allowed::

    REFERENCE_ARCH_DOCS_MAX_CHARS='-5': less than 0; use a whole number, 0 or more (0: no limit)

Unset or empty means the default (one exception, ``REFERENCE_ARCH_DOCS_PACKAGES``: empty means no package).
``common/settings_model.py`` checks them all at once where a user meets them (the CLI, each code location's
load), against this machine too (folders, files, models), and writes the README's table and ``.env.example``
from ``SETTINGS`` (``python -m reference_arch.common.settings_model --write``).

**Home.** Everything the project writes lives under one home, ``REFERENCE_ARCH_HOME`` (default
``.reference_arch/`` in the project root), so a user can delete it to start over.

Light on purpose (the standard library and pydantic-settings, which Dagster's pydantic makes cheap, at import): ``import reference_arch`` reads the offline switch here.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, replace
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import Annotated, Any, Callable, Mapping, NamedTuple, Optional

from pydantic_settings import BaseSettings, SettingsConfigDict

from reference_arch.common.trainer.spec import DEVICE, REPORT_TO

PROJECT_ROOT = Path(__file__).resolve().parents[2]
PACKAGE_DIR = Path(__file__).resolve().parents[1]
SAMPLES_DIR = PACKAGE_DIR / "samples"
PREFIX = "REFERENCE_ARCH_"


class SettingsError(ValueError):
    """The environment holds a bad setting; the message is one line naming each."""


# -- kinds of value: how a value is read, and what is allowed --------------------------------------------------

class Kind(NamedTuple):
    """``parse`` turns the variable's text into the value, or raises ``ValueError`` saying what is wrong (the
    line adds ``; use <allowed>``); ``label`` is what the README's table shows."""

    label: str
    allowed: str
    parse: Callable[[str], Any]


def words(text: str) -> tuple[str, ...]:
    """The comma-separated items of ``text``, stripped, blanks dropped."""
    return tuple(item.strip() for item in text.split(",") if item.strip())


def _text(text: str) -> str:
    return text


def _iso_date(text: str) -> date:
    # Dagster's partitions take YYYY-MM-DD
    try:
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text.strip()):
            raise ValueError
        return date.fromisoformat(text.strip())
    except ValueError:
        raise ValueError("not a date") from None


def whole_number(minimum: int, allowed: str) -> Kind:
    def parse(text: str) -> int:
        if not re.fullmatch(r"\s*[+-]?\d+\s*", text):
            raise ValueError("not a whole number")
        number = int(text)
        if number < minimum:
            raise ValueError(f"less than {minimum}")
        return number

    return Kind(allowed.removeprefix("a "), allowed, parse)  # the table says what the error line says


def choice(*options: str, fold_case: bool = False) -> Kind:
    shown = [repr(o) for o in options]
    allowed = " or ".join([", ".join(shown[:-1]), shown[-1]] if len(shown) > 1 else shown)

    def parse(text: str) -> str:
        picked = text.strip().lower() if fold_case else text
        if picked not in options:
            raise ValueError("not a choice")
        return picked

    return Kind(" or ".join(f"`{o}`" for o in options), allowed, parse)


_YES_NO = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


def _yes_no(text: str) -> bool:
    if text.strip().lower() not in _YES_NO:
        raise ValueError("not yes or no")
    return _YES_NO[text.strip().lower()]


def expand_path(text: str) -> Path:
    """``text`` as a path, ``~`` expanded; ``ValueError`` names a ``~name`` of no user on this machine."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~name of no user on this machine
        raise ValueError(f"{text.split('/')[0]} is no user's home folder here") from None


def _paths(text: str) -> tuple[Path, ...]:
    return tuple(expand_path(item) for item in words(text))


def _web_url(text: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(text.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not a web address")
    return text.strip()


def _repos(text: str) -> tuple[str, ...]:
    bad = [r for r in words(text) if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", r)]
    if bad:
        raise ValueError(f"{', '.join(bad)} not owner/name")
    return words(text)


def name_list(choices: tuple[str, ...], *, kind: str, all_word: Optional[str] = None) -> Kind:
    """Comma-separated names from ``choices``, ``none`` (no name), or ``all_word`` when given (every choice)."""
    allowed = f"{', '.join(w for w in (all_word, 'none') if w)} or any of {', '.join(choices)}"

    def parse(text: str) -> frozenset[str]:
        names = {n.lower() for n in words(text)}
        if names == {"none"}:
            return frozenset()
        if all_word is not None and names == {all_word}:
            return frozenset(choices)
        unknown = sorted(names - set(choices))
        if unknown or not names:
            raise ValueError(f"unknown {kind}(s) {', '.join(unknown)}" if unknown else f"no {kind}")
        return frozenset(names)

    return Kind(f"{' or '.join(f'`{w}`' for w in (all_word, 'none') if w)}, or some of "
                f"{', '.join(f'`{c}`' for c in choices)} (comma-separated)", allowed, parse)


def _phone_regions(text: str) -> tuple[str, ...]:
    import phonenumbers

    regions = tuple(r.upper() for r in words(text))
    unknown = [r for r in regions if r not in phonenumbers.SUPPORTED_REGIONS]
    if unknown or not regions:  # ZZ, phonenumbers' "unknown region", would turn national numbers' masking off
        raise ValueError(f"unknown region {', '.join(unknown)}" if unknown else "no region")
    return regions


def _packages(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    specs = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        name, _, classes = part.partition(":")
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.]*", name.strip()):
            raise ValueError(f"invalid package name {name.strip()!r}")
        specs.append((name.strip(), words(classes)))
    return tuple(specs)


def _device(text: str) -> str:
    if not DEVICE.match(text):
        raise ValueError("not a device")
    return text


# The sources the rag location ingests, and the types of text redaction masks.
SOURCES = ("github", "slack", "docs", "packages")
REDACT_TYPES = ("secret", "email", "phone")

TEXT = Kind("text", "any text", _text)
DATE = Kind("date `YYYY-MM-DD`", "YYYY-MM-DD", _iso_date)
YES_NO = Kind("yes or no (`1`, `true`, `yes` / `0`, `false`, `no`)", "1, true or yes; 0, false or no", _yes_no)
FOLDER = Kind("folder", "an existing folder", expand_path)
WEB_URL = Kind("`http(s)://` address", "http(s)://HOST/...", _web_url)
MODEL = Kind("model: `packaged:NAME`, `registry:NAME@VERSION` or a folder", "a model", _text)
PROVIDER = choice("local", "openai")


@dataclass(frozen=True)
class Setting:
    """One ``REFERENCE_ARCH_*`` variable, as the ``Annotated`` marker of its ``Settings`` field: ``kind`` parses
    the variable's text (pydantic runs it before the field's type), ``help`` is what it does. The field's default
    is written as the variable would be (None: unset, which ``unset`` explains); ``empty``, when given, is what an
    empty value means instead of the default. ``name``, ``field`` and ``default`` are filled in from the field."""

    kind: Kind
    help: str
    unset: str = ""
    empty: str = ""
    internal: bool = False  # set by the project for its own processes, not by a user
    name: str = ""
    field: str = ""
    default: Optional[str] = None

    def _parse(self, text: Any) -> Any:
        if not isinstance(text, str):  # None, the default of an unset-by-default setting
            return text
        if not text.strip() and not self.empty:
            from pydantic_core import PydanticUseDefault

            raise PydanticUseDefault()  # blank means the default, which pydantic then parses like a value
        return self.kind.parse(text)

    def __get_pydantic_core_schema__(self, source: Any, handler: Any) -> Any:
        from pydantic_core import core_schema

        return core_schema.no_info_before_validator_function(self._parse, handler(source))


class Settings(BaseSettings):
    """Every ``REFERENCE_ARCH_*`` variable, read from the environment by pydantic-settings (``REFERENCE_ARCH_`` +
    the field's name in capitals). Read one with ``value(field)``, all with ``values()``; they build this model."""

    model_config = SettingsConfigDict(env_prefix=PREFIX, case_sensitive=False, extra="ignore",
                                      validate_default=True, enable_decoding=False)

    # -- everywhere
    home: Annotated[Optional[Path], Setting(
        FOLDER, "where everything is written (created when missing)",
        unset="`.reference_arch/` in the project root")] = None
    offline: Annotated[bool, Setting(
        YES_NO, "no network at run time: sets `HF_HUB_OFFLINE`, `TRANSFORMERS_OFFLINE` and `HF_DATASETS_OFFLINE` "
        "(unless you set them) so nothing reaches the Hugging Face Hub; `no` lets hub model names be downloaded")] = "yes"
    llm_model: Annotated[Optional[str], Setting(
        MODEL, "the chat LLM (with `OPENAI_API_KEY` or `OPENAI_BASE_URL`: any name the server knows)",
        unset="the packaged instruct model")] = None
    embeddings_provider: Annotated[Optional[str], Setting(
        PROVIDER, "embeddings: local MiniLM or OpenAI", unset="`local`")] = None
    embeddings_model: Annotated[Optional[str], Setting(
        TEXT, "the embeddings model: a sentence-transformers folder, or an OpenAI model name",
        unset="all-MiniLM-L6-v2 (`text-embedding-3-small` with `openai`)")] = None
    device: Annotated[str, Setting(
        Kind("`auto`, `cpu`, `mps`, `cuda` or `cuda:N`", "auto, cpu, mps, cuda or cuda:N", _device),
        "where training runs")] = "auto"
    trainer_launcher: Annotated[str, Setting(
        choice("subprocess", "torchrun", "k8s"),
        "how training runs: a process here, `torchrun` across this node's GPUs, or a Kubernetes pod "
        "(`PipesK8sClient`; needs `REFERENCE_ARCH_TRAINER_IMAGE`)")] = "subprocess"
    trainer_processes: Annotated[int, Setting(
        whole_number(1, "a whole number, 1 or more"),
        "training processes per node under `torchrun` (one per GPU); the GPUs of a `k8s` pod")] = "1"
    trainer_image: Annotated[Optional[str], Setting(
        TEXT, "the image of the `k8s` training pod (the project's image built with CUDA torch)", unset="none")] = None
    trainer_report_to: Annotated[str, Setting(
        choice(*REPORT_TO), "where training sends its logs (the Hugging Face Trainer's `report_to`; install the "
        "integration's package and set its own variables, such as `MLFLOW_TRACKING_URI`)")] = "none"
    executor: Annotated[Optional[str], Setting(
        choice("k8s", "default", fold_case=True), "the jobs' executor: a Kubernetes Job per step, or Dagster's "
        "default", unset="`default`")] = None
    redact: Annotated[frozenset[str], Setting(
        name_list(REDACT_TYPES, kind="type", all_word="all"),
        "what is masked in ingested text, questions and answers")] = "all"
    redact_phone_regions: Annotated[tuple[str, ...], Setting(
        Kind("region codes, comma-separated", "region codes such as US, GB or DE, comma-separated", _phone_regions),
        "regions whose national phone numbers are masked")] = "US"
    git_url: Annotated[Optional[str], Setting(
        WEB_URL, "the git repo the UI's code links point to", unset="local files")] = None
    git_branch: Annotated[str, Setting(TEXT, "the branch of `REFERENCE_ARCH_GIT_URL`")] = "main"
    # -- rag
    rag_start: Annotated[date, Setting(DATE, "first day of the GitHub and Slack partitions")] = "2026-05-01"
    rag_sources: Annotated[Optional[frozenset[str]], Setting(
        name_list(SOURCES, kind="source"), "the sources rag ingests",
        unset="those configured (the variables below), else all four on the samples")] = None
    rag_destination: Annotated[str, Setting(
        TEXT, "the dlt destination the sources load into (any dlt destination, configured the dlt way)")] = "duckdb"
    rag_eval_set: Annotated[Optional[tuple[Path, ...]], Setting(
        Kind("YAML files, comma-separated", "YAML question-set files, comma-separated", _paths),
        "evaluation question sets, replacing the shipped ones", unset="`rag/eval_sets/*.yaml`")] = None
    rag_answerer: Annotated[Optional[str], Setting(
        choice("extractive", "generative"), "how rag answers",
        unset="`generative` with an OpenAI-compatible LLM, else `extractive` (the packaged model's measured "
              "choice)")] = None
    github_repos: Annotated[Optional[tuple[str, ...]], Setting(
        Kind("`owner/name`, comma-separated", "owner/name[,owner/name]", _repos),
        "the repos ingested (required with `GITHUB_TOKEN`)", unset="every repo in the export")] = None
    github_export: Annotated[Optional[Path], Setting(
        FOLDER, "a GitHub export folder", unset="the bundled sample")] = None
    github_api_url: Annotated[str, Setting(
        WEB_URL, "the GitHub API (Enterprise: `https://HOST/api/v3`)")] = "https://api.github.com"
    slack_channels: Annotated[Optional[tuple[str, ...]], Setting(
        Kind("channel names or ids, comma-separated", "channel names or ids, comma-separated", words),
        "the Slack channels ingested", unset="every channel")] = None
    slack_export: Annotated[Optional[Path], Setting(
        FOLDER, "a Slack export folder", unset="the bundled sample")] = None
    slack_api_url: Annotated[str, Setting(WEB_URL, "the Slack Web API")] = "https://slack.com/api"
    docs_dir: Annotated[Optional[Path], Setting(
        FOLDER, "a folder of Markdown, reST and text docs", unset="the bundled sample")] = None
    docs_packages: Annotated[tuple[tuple[str, tuple[str, ...]], ...], Setting(
        Kind("`NAME[:Class,Class][;NAME...]`", "NAME[:Class,Class][;NAME...], e.g. pandas:Series;numpy", _packages),
        "packages whose docstrings are documents", empty="no package")] = "pandas"
    docs_examples: Annotated[bool, Setting(YES_NO, "keep numpydoc Examples sections of docstrings")] = "no"
    docs_max_chars: Annotated[int, Setting(
        whole_number(0, "a whole number, 0 or more (0: no limit)"),
        "characters kept of each docstring (0: no limit)")] = "800"
    docs_base_url: Annotated[Optional[str], Setting(
        WEB_URL, "where the docs folder is published, for source links", unset="no links")] = None
    # -- prompt
    prompt_templates: Annotated[Optional[Path], Setting(
        FOLDER, "a folder of extra prompt templates (`*.yaml`)", unset="the shipped templates only")] = None
    feedback_start: Annotated[date, Setting(DATE, "first day of the feedback partitions")] = "2026-11-01"
    # -- finetune
    finetune_start: Annotated[date, Setting(DATE, "first month of the fine-tuning Q&A partitions")] = "2026-01-01"
    finetune_backend: Annotated[Optional[str], Setting(
        PROVIDER, "fine-tuning: local LoRA or an OpenAI job", unset="`local`")] = None
    finetune_base_model: Annotated[Optional[str], Setting(
        MODEL, "the model fine-tuned (with `openai`: an OpenAI model name)",
        unset="the packaged instruct model (`gpt-4o-mini-2024-07-18` with `openai`)")] = None
    finetuned_llm_model: Annotated[Optional[str], Setting(
        MODEL, "the finetune location's chat LLM", unset="the published fine-tuned model")] = None
    # -- pretrain
    corpus_dir: Annotated[Optional[Path], Setting(
        FOLDER, "Python sources to pretrain on", unset="the running Python's standard library")] = None
    pretrain_engine: Annotated[str, Setting(
        choice("local", "ray"), "where the corpus is cleaned and tokenized: in the asset's process, or on Ray Data "
        "(`RAY_ADDRESS` names the cluster; unset, one starts on this machine)")] = "local"
    pretrain_shards: Annotated[int, Setting(
        whole_number(1, "a whole number, 1 or more"), "token shards (static partitions)")] = "8"
    # -- internal
    trainer_parent_pid: Annotated[Optional[int], Setting(
        whole_number(1, "a process id"), "the training process's parent, which it dies with", unset="none",
        internal=True)] = None


def _declared() -> tuple[Setting, ...]:
    found = []
    for field, info in Settings.model_fields.items():
        marker = next(m for m in info.metadata if isinstance(m, Setting))
        found.append(replace(marker, name=PREFIX + field.upper(), field=field, default=info.default))
    return tuple(found)


SETTINGS: tuple[Setting, ...] = _declared()
BY_FIELD = {s.field: s for s in SETTINGS}
# Names the project's tooling sets that are not settings of the package: they are known, not misspellings.
TOOLING_NAMES = {
    "REFERENCE_ARCH_IMAGE": "docker-compose.yml's image",
    "REFERENCE_ARCH_GPU_IMAGE": "docker/compose.gpu.yml's image",
    "REFERENCE_ARCH_REQUIRE_SERVICES": "CI: service-backed tests fail instead of skipping",
    "REFERENCE_ARCH_POOL_TEST_LOG": "the pool tests' step log",
}


# -- reading them ------------------------------------------------------------------------------------------------

def shown(text: str) -> str:
    """A value as an error line shows it: quoted, at most 80 characters."""
    quoted = repr(text)
    return quoted if len(quoted) <= 80 else quoted[:77] + "...'"


def error_line(name: str, text: str, problem: str) -> str:
    """``VARIABLE='value': what is wrong; use what is allowed`` (``problem`` says both)."""
    return f"{name}={shown(text)}: {problem}"


@lru_cache(maxsize=64)
def _read(environment: tuple[Optional[str], ...]) -> tuple[dict[str, Any], dict[str, str]]:
    # ``environment``: the variables' texts, the cache key, so a changed variable is read afresh.
    from pydantic import ValidationError

    try:
        return Settings().model_dump(), {}
    except ValidationError as err:
        bad = {problem["loc"][0]: _problem_line(BY_FIELD[problem["loc"][0]], problem)
               for problem in err.errors(include_url=False)}
        # the good ones: read again with each bad one at its default (init values win over the environment)
        good = Settings(**{field: BY_FIELD[field].default for field in bad}).model_dump()
        return {f: v for f, v in good.items() if f not in bad}, bad


def _problem_line(setting: Setting, problem: dict) -> str:
    from reference_arch.common.secrets import scrub

    why = problem.get("ctx", {}).get("error", problem["msg"])
    return scrub(error_line(setting.name, str(problem["input"]), f"{why}; use {setting.kind.allowed}"))


@lru_cache(maxsize=None)
def _adapter(field: str) -> Any:
    from pydantic import TypeAdapter

    info = Settings.model_fields[field]
    return TypeAdapter(Annotated[(info.annotation, *info.metadata)])


def parse(field: str, text: str) -> Any:
    """Setting ``field``'s value were its variable ``text``; ``SettingsError`` (one line) when ``text`` is bad."""
    from pydantic import ValidationError

    try:
        return _adapter(field).validate_python(text)
    except ValidationError as err:
        raise SettingsError(_problem_line(BY_FIELD[field], err.errors(include_url=False)[0])) from None


def values() -> tuple[dict[str, Any], dict[str, str]]:
    """Every setting from the environment now: ``({field: value}, {field: error line})``, the bad ones in the
    second (parsed once per distinct environment; a test's ``monkeypatch.setenv`` is seen by the next read)."""
    good, bad = _read(tuple(os.environ.get(s.name) for s in SETTINGS))
    return dict(good), dict(bad)


def raw(field: str) -> Optional[str]:
    """The text the environment holds for setting ``field``, or None when it means the default (unset, or blank
    unless empty means something of its own)."""
    setting = BY_FIELD[field]
    text = os.environ.get(setting.name)
    return None if text is None or (not text.strip() and not setting.empty) else text


def is_set(field: str) -> bool:
    """Whether the user set ``field`` to a value of their own (not empty)."""
    return bool(os.environ.get(BY_FIELD[field].name))


def value(field: str) -> Any:
    """The setting ``field`` (``"rag_start"`` for ``REFERENCE_ARCH_RAG_START``) from the environment now: parsed,
    or the default (None for a setting whose default is unset). ``SettingsError`` (one line) when bad."""
    if field not in BY_FIELD:
        raise KeyError(f"no setting {field!r}: the settings are {', '.join(BY_FIELD)}")
    good, bad = _read(tuple(os.environ.get(s.name) for s in SETTINGS))
    if field in bad:
        raise SettingsError(bad[field])
    return good[field]


def env_name(field: str) -> str:
    return BY_FIELD[field].name


def known_names() -> list[str]:
    return sorted({s.name for s in SETTINGS} | set(TOOLING_NAMES))


def unknown_name_lines(environ: Optional[Mapping[str, str]] = None) -> list[str]:
    """One line per ``REFERENCE_ARCH_*`` name in the environment that is no setting, with the closest known one."""
    import difflib

    environ = os.environ if environ is None else environ
    known = known_names()
    lines = []
    for name in sorted(n for n in environ if n.upper().startswith(PREFIX) and n not in known):
        # compared without the prefix every name shares, which would make any name "close"
        close = difflib.get_close_matches(name.upper().removeprefix(PREFIX), [k.removeprefix(PREFIX) for k in known],
                                          n=1, cutoff=0.6)
        hint = (f"did you mean {PREFIX}{close[0]}?" if close
                else "unset it (the settings: reference_arch/common/settings.py)")
        lines.append(f"{name} is not a setting: {hint}")
    return lines


def load_env_file(folder: Optional[Path] = None) -> list[str]:
    """Set the variables of ``folder``'s ``.env`` file (default the current directory), as ``dagster dev`` reads
    one, except those already set: the environment wins (``dagster dev`` lets the file win). Returns the names set."""
    path = Path(folder or Path.cwd()) / ".env"
    if not path.is_file():
        return []
    from dotenv import dotenv_values

    added = {k: v for k, v in dotenv_values(path).items() if v is not None and k not in os.environ}
    os.environ.update(added)
    apply_offline_env()  # the file may turn REFERENCE_ARCH_OFFLINE off
    return sorted(added)


# -- documenting them ---------------------------------------------------------------------------------------------

def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def default_text(setting: Setting) -> str:
    shown_default = f"`{setting.default}`" if setting.default is not None else setting.unset
    return shown_default + (f"; empty: {setting.empty}" if setting.empty else "")


def markdown_table() -> str:
    """The README's table of settings, one row per variable."""
    rows = ["| variable | type / allowed values | default | what it does |", "|---|---|---|---|"]
    for s in SETTINGS:
        what = s.help + (" (internal: set by the project)" if s.internal else "")
        rows.append(f"| `{s.name}` | {_cell(s.kind.label)} | {_cell(default_text(s))} | {_cell(what)} |")
    return "\n".join(rows) + "\n"


def env_example() -> str:
    """``.env.example``: every setting a user may set, commented out, at its default."""
    lines = ["# reference-arch settings: copy to .env and uncomment what you change. `reference-arch` reads .env from",
             "# the current directory, as `dagster dev` does, but a variable already set in the environment wins",
             "# (under `dagster dev`, .env wins).",
             "# Written from reference_arch/common/settings.py by `python -m reference_arch.common.settings_model "
             "--write`.",
             ""]
    for s in SETTINGS:
        if s.internal:
            continue
        note = f"{s.help}. Allowed: {s.kind.label.replace('`', '')}."
        if s.default is None:
            note += f" Unset: {s.unset.replace('`', '')}."
        if s.empty:
            note += f" Empty: {s.empty}."
        lines += [f"# {note}", f"# {s.name}={s.default or ''}", ""]
    return "\n".join(lines)


# -- the environment the project runs in ------------------------------------------------------------------------

# Set before any hub-aware library loads. The first three are the offline switch (REFERENCE_ARCH_OFFLINE): nothing
# may reach a hub at run time, and a hub name looked up without them hangs ~45 s before failing offline.
HUB_OFFLINE_ENV = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE")
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
    # torch's OpenMP threads sleep, not spin, while they wait: beside a second torch process (a trainer, another
    # step) the packaged model decoded at 317 ms a token under libgomp's default and 84 under this, and alone at
    # 79 and 80 (bench/results/bench_threads.json).
    "OMP_WAIT_POLICY": "PASSIVE",
    # Quiet: the CLI prints its own progress.
    "TRANSFORMERS_VERBOSITY": "error",
    "HF_HUB_DISABLE_PROGRESS_BARS": "1",
    "TQDM_DISABLE": "1",
}
_SET_HERE: set[str] = set()  # the hub switches this module set (not the user): what turning offline off unsets


def offline() -> bool:
    """``REFERENCE_ARCH_OFFLINE``; a bad value reads as the default here (the CLI and the code locations refuse it
    in one line before they start)."""
    try:
        return value("offline")
    except SettingsError:
        return True


def apply_offline_env() -> None:
    """Set ``OFFLINE_ENV`` unless the user set them; the hub switches only while ``REFERENCE_ARCH_OFFLINE`` is on."""
    on = offline()
    for key, setting in OFFLINE_ENV.items():
        if key in HUB_OFFLINE_ENV and not on:
            if key in _SET_HERE and os.environ.get(key) == setting:  # still ours: the user has not set it since
                del os.environ[key]
            _SET_HERE.discard(key)
        elif key not in os.environ:
            os.environ[key] = setting
            if key in HUB_OFFLINE_ENV:
                _SET_HERE.add(key)


def home() -> Path:
    """The project's home directory (created on first use)."""
    root = Path(value("home") or PROJECT_ROOT / ".reference_arch")
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
# The variables that point a source at the user's own data. Setting any of them turns the bundled samples off:
# only the sources configured are ingested. GITHUB_TOKEN is not among them: it is often exported for other
# tools, and the API needs REFERENCE_ARCH_GITHUB_REPOS anyway.
SOURCE_SETTINGS = {
    "github": ("REFERENCE_ARCH_GITHUB_EXPORT", "REFERENCE_ARCH_GITHUB_REPOS"),
    "slack": ("REFERENCE_ARCH_SLACK_EXPORT", "REFERENCE_ARCH_SLACK_CHANNELS", "SLACK_BOT_TOKEN"),
    "docs": ("REFERENCE_ARCH_DOCS_DIR",),
    "packages": ("REFERENCE_ARCH_DOCS_PACKAGES",),
}


def _configured(name: str) -> bool:
    return is_set(name[len(PREFIX):].lower()) if name.startswith(PREFIX) else bool(os.environ.get(name))


def enabled_sources() -> frozenset[str]:
    """The sources to ingest: ``REFERENCE_ARCH_RAG_SOURCES`` (comma-separated names from ``SOURCES``, or
    ``none``) when set; else those the user configured (``SOURCE_SETTINGS``); else all of them, on the
    bundled samples (the tidepool exports and docs, and the pandas API). ``SettingsError`` names an unknown one."""
    chosen = value("rag_sources")
    if chosen is not None:
        return chosen
    configured = {name for name, keys in SOURCE_SETTINGS.items() if any(_configured(k) for k in keys)}
    return frozenset(configured or SOURCES)


def source_enabled(name: str) -> bool:
    return name in enabled_sources()
