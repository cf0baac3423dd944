"""Every ``REFERENCE_ARCH_*`` setting, typed in one model and validated once where a user meets it.

``Settings`` (pydantic-settings) holds each variable the project reads, with its type, default and a short
description. ``load_settings()`` validates the environment once: the CLI calls it before any command (a bad
setting prints one line and exits 2) and every code location before it loads (``location_definitions``), so
``dagster dev``/``dg`` shows the same line. A bad value names the variable, the value and what is allowed:

    REFERENCE_ARCH_RAG_START='yesterday': not a date; use YYYY-MM-DD

and a ``REFERENCE_ARCH_*`` name that is no setting is refused with the closest one, never ignored.

Readers still take their values from ``os.environ`` (listed in the module's tests); they move onto the model
one by one. pydantic-settings is imported only here, so a module that imports ``common.settings`` stays quick.
"""

from __future__ import annotations

import difflib
import os
import re
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import AfterValidator, BeforeValidator, Field, NonNegativeInt, PositiveInt, ValidationError, \
    ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PREFIX = "REFERENCE_ARCH_"
# Names the project's tooling sets that are not settings of the package: they are known, not misspellings.
TOOLING_NAMES = {
    "REFERENCE_ARCH_IMAGE": "docker-compose.yml's image",
    "REFERENCE_ARCH_GPU_IMAGE": "docker/compose.gpu.yml's image",
    "REFERENCE_ARCH_REQUIRE_SERVICES": "CI: service-backed tests fail instead of skipping",
    "REFERENCE_ARCH_POOL_TEST_LOG": "the pool tests' step log",
}


class SettingsError(ValueError):
    """The environment holds a bad setting; the message is one line naming each."""


# -- value types: each raises ValueError("<what is wrong>; use <what is allowed>") --------------------------------

def _iso_date(value: Any) -> Any:
    # Dagster's partitions take YYYY-MM-DD; pydantic's own date parsing also takes Unix timestamps.
    if isinstance(value, str):
        try:
            if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value.strip()):
                raise ValueError
            return date.fromisoformat(value.strip())
        except ValueError:
            raise ValueError("not a date; use YYYY-MM-DD") from None
    return value


def _folder(value: Path) -> Path:
    path = value.expanduser()
    if not path.is_dir():
        raise ValueError(f"{'not a folder' if path.exists() else 'no such folder'}; use an existing folder")
    return path


def _home(value: Path) -> Path:
    if value.expanduser().exists() and not value.expanduser().is_dir():
        raise ValueError("not a folder; use a folder (created when missing)")
    return value.expanduser()


def _web_url(value: str) -> str:
    from urllib.parse import urlsplit

    parts = urlsplit(value.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError("not a web address; use http(s)://HOST/...")
    return value.strip()


def _words(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def _repos(value: str) -> str:
    bad = [r for r in _words(value) if not re.fullmatch(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+", r)]
    if bad:
        raise ValueError(f"{', '.join(bad)} not owner/name; use owner/name[,owner/name]")
    return value


def _yaml_files(value: str) -> str:
    missing = [p for p in _words(value) if not Path(p).expanduser().is_file()]
    if missing:
        raise ValueError(f"no such file {', '.join(missing)}; use YAML question-set files, comma-separated")
    return value


def _sources(value: str) -> str:
    from reference_arch.common.settings import SOURCES, parse_name_list

    parse_name_list(value, SOURCES, kind="source", default=frozenset())
    return value


def _redact(value: str) -> str:
    from reference_arch.common.redaction import TYPES
    from reference_arch.common.settings import parse_name_list

    parse_name_list(value, TYPES, kind="type", default=frozenset(), all_word="all")
    return value


def _phone_regions(value: str) -> str:
    import phonenumbers

    unknown = [r for r in _words(value) if r.upper() not in phonenumbers.SUPPORTED_REGIONS]
    if unknown or not _words(value):  # ZZ, phonenumbers' "unknown region", would turn national numbers' masking off
        raise ValueError(f"{'unknown region ' + ', '.join(unknown) if unknown else 'no region'}; use region codes "
                         "such as US, GB or DE, comma-separated")
    return value


def _packages(value: str) -> str:
    from reference_arch.sources.docs.helpers import parse_packages

    try:
        parse_packages(value)
    except ValueError:
        raise ValueError("not a package list; use NAME[:Class,Class][;NAME...], e.g. pandas:Series;numpy") from None
    return value


def _device(value: str) -> str:
    from reference_arch.common.trainer.spec import DEVICE

    if not DEVICE.match(value):
        raise ValueError("not a device; use auto, cpu, mps, cuda or cuda:N")
    return value


def _yes_no(value: Any) -> Any:
    # the words the readers take (sources/docs/helpers.include_examples), not pydantic's wider list
    words = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}
    if isinstance(value, str):
        if value.strip().lower() not in words:
            raise ValueError("not yes or no; use 1, true or yes; 0, false or no")
        return words[value.strip().lower()]
    return value


def _hub_online() -> bool:
    # huggingface_hub's own reading of the switch; common.settings.apply_offline_env sets it unless the user did
    return os.environ.get("HF_HUB_OFFLINE", "1").upper() not in ("1", "ON", "YES", "TRUE")


def local_model_problem(spec: str) -> Optional[str]:
    """Why ``spec`` names no local model (``packaged:NAME``, ``registry:NAME@VERSION`` or a folder holding a
    saved Hugging Face model), or None. Only the form: a registry model may be published later."""
    from reference_arch.common.llm.packaged import PACKAGED, PREFIX as PACKAGED_PREFIX
    from reference_arch.common.registry import PREFIX as REGISTRY

    allowed = (f"use {', '.join(m.spec for m in PACKAGED.values())}, registry:NAME@VERSION or a folder holding a "
               "saved Hugging Face model (config.json)")
    if spec.startswith(PACKAGED_PREFIX):
        return None if spec[len(PACKAGED_PREFIX):] in PACKAGED else f"unknown packaged model; {allowed}"
    if spec.startswith(REGISTRY):
        good = re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*(@(latest|\d+))?", spec[len(REGISTRY):])
        return None if good else f"not registry:NAME@VERSION (VERSION: latest or a number); {allowed}"
    path = Path(spec).expanduser()
    if (path / "config.json").is_file():
        return None
    if path.is_dir():
        return f"a folder without config.json, not a saved model; {allowed}"
    if _hub_online() and re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return None  # a hub name, downloaded when the user turned the offline switch off
    return f"no such folder; {allowed}"


def _llm_model(value: str) -> str:
    # An OpenAI-compatible server takes any model name (LLMResource picks it when either is set).
    problem = None if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL") else \
        local_model_problem(value)
    if problem:
        raise ValueError(problem)
    return value


Date = Annotated[date, BeforeValidator(_iso_date)]
Folder = Annotated[Path, AfterValidator(_folder)]
WebUrl = Annotated[str, AfterValidator(_web_url)]
LLMModel = Annotated[str, AfterValidator(_llm_model)]


def setting(default: Any, description: str, allowed: Optional[str] = None) -> Any:
    """A field: its default, what it does, and (for built-in types) what is allowed, for the error line."""
    return Field(default, description=description, json_schema_extra={"allowed": allowed} if allowed else None)


class Settings(BaseSettings):
    """The project's settings: ``REFERENCE_ARCH_<FIELD>`` in the environment; unset or empty means the default."""

    # The defaults are good values: validating them would import what the checks use on every load.
    model_config = SettingsConfigDict(env_prefix=PREFIX, env_ignore_empty=True, extra="ignore", validate_default=False)

    # -- everywhere
    home: Optional[Annotated[Path, AfterValidator(_home)]] = setting(
        None, "where everything is written (default .reference_arch/ in the project root)")
    llm_model: Optional[LLMModel] = setting(
        None, "the chat LLM: packaged:NAME, registry:NAME@VERSION or a model folder (any name with an "
              "OpenAI-compatible server); default the packaged instruct model")
    embeddings_provider: Optional[Literal["local", "openai"]] = setting(
        None, "embeddings: local MiniLM (default) or openai")
    embeddings_model: Optional[str] = setting(None, "the embeddings model (a folder, or an OpenAI model name)")
    device: Annotated[str, AfterValidator(_device)] = setting(
        "auto", "where training runs: auto, cpu, mps, cuda, cuda:N")
    executor: Optional[Annotated[Literal["k8s", "default"], BeforeValidator(lambda v: v.strip().lower())]] = setting(
        None, "the jobs' executor: k8s (a Kubernetes Job per step) or Dagster's default")
    redact: Optional[Annotated[str, AfterValidator(_redact)]] = setting(
        None, "what is masked: all (default), none, or some of secret, email, phone")
    redact_phone_regions: Annotated[str, AfterValidator(_phone_regions)] = setting(
        "US", "regions whose national phone numbers are masked (region codes, comma-separated)")
    git_url: Optional[WebUrl] = setting(None, "the git repo the UI's code links point to (default local files)")
    git_branch: str = setting("main", "the branch of git_url")
    # -- rag
    rag_start: Date = setting(date(2026, 5, 1), "first day of the GitHub and Slack partitions")
    rag_sources: Optional[Annotated[str, AfterValidator(_sources)]] = setting(
        None, "sources to ingest: github, slack, docs, packages, or none (default: those configured, else all)")
    rag_destination: str = setting("duckdb", "the dlt destination the sources load into")
    rag_eval_set: Optional[Annotated[str, AfterValidator(_yaml_files)]] = setting(
        None, "evaluation question sets (YAML files, comma-separated) replacing the shipped ones")
    rag_answerer: Optional[Literal["extractive", "generative"]] = setting(None, "how RAG answers (default: by model)")
    github_repos: Optional[Annotated[str, AfterValidator(_repos)]] = setting(
        None, "owner/name[,owner/name] to ingest (required with GITHUB_TOKEN)")
    github_export: Optional[Folder] = setting(None, "a GitHub export folder (default the bundled sample)")
    github_api_url: WebUrl = setting("https://api.github.com", "the GitHub API (Enterprise: https://HOST/api/v3)")
    slack_channels: Optional[str] = setting(None, "Slack channel names or ids, comma-separated (default every channel)")
    slack_export: Optional[Folder] = setting(None, "a Slack export folder (default the bundled sample)")
    slack_api_url: WebUrl = setting("https://slack.com/api", "the Slack Web API")
    docs_dir: Optional[Folder] = setting(None, "a folder of Markdown, reST and text docs (default the bundled sample)")
    docs_packages: Annotated[str, AfterValidator(_packages)] = setting(
        "pandas", "packages whose docstrings are documents: NAME[:Class,Class][;NAME...]")
    docs_examples: Annotated[bool, BeforeValidator(_yes_no)] = setting(False, "keep numpydoc Examples sections")
    docs_max_chars: NonNegativeInt = setting(
        800, "characters kept of each docstring (0: no limit)", "a whole number, 0 or more (0: no limit)")
    docs_base_url: Optional[WebUrl] = setting(None, "where the docs folder is published, for source links")
    # -- prompt
    prompt_templates: Optional[Folder] = setting(None, "a folder of extra prompt templates (*.yaml)")
    feedback_start: Date = setting(date(2026, 11, 1), "first day of the feedback partitions")
    # -- finetune
    finetune_start: Date = setting(date(2026, 1, 1), "first month of the fine-tuning Q&A partitions")
    finetune_backend: Optional[Literal["local", "openai"]] = setting(
        None, "fine-tuning: local LoRA (default) or openai")
    finetune_base_model: Optional[str] = setting(
        None, "the model fine-tuned: a local model (as llm_model) or, with openai, an OpenAI model name")
    finetuned_llm_model: Optional[LLMModel] = setting(None, "the finetune location's chat LLM (as llm_model)")
    # -- pretrain
    corpus_dir: Optional[Folder] = setting(None, "Python sources to pretrain on (default the standard library)")
    pretrain_shards: PositiveInt = setting(8, "token shards (static partitions)", "a whole number above 0")
    # -- internal
    trainer_parent_pid: Optional[PositiveInt] = setting(
        None, "set by the trainer for its worker process (internal)", "a process id")

    @field_validator("embeddings_model")
    @classmethod
    def _embeddings_model(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        hub_name = _hub_online() and re.fullmatch(r"[\w.-]+/[\w.-]+", value or "")
        if value and info.data.get("embeddings_provider") != "openai" and not Path(value).expanduser().is_dir() \
                and not hub_name:
            raise ValueError("no such folder; use a folder holding a sentence-transformers model (or an OpenAI "
                             "model name with REFERENCE_ARCH_EMBEDDINGS_PROVIDER=openai)")
        return value

    @field_validator("finetune_base_model")
    @classmethod
    def _base_model(cls, value: Optional[str], info: ValidationInfo) -> Optional[str]:
        problem = value and info.data.get("finetune_backend") != "openai" and local_model_problem(value)
        if problem:
            raise ValueError(problem)
        return value


def known_names() -> list[str]:
    return sorted({PREFIX + name.upper() for name in Settings.model_fields} | set(TOOLING_NAMES))


def unknown_name_lines(environ: Mapping[str, str]) -> list[str]:
    """One line per ``REFERENCE_ARCH_*`` name in ``environ`` that is no setting, with the closest known one."""
    known = known_names()
    lines = []
    for name in sorted(n for n in environ if n.upper().startswith(PREFIX) and n not in known):
        # compared without the prefix every name shares, which would make any name "close"
        close = difflib.get_close_matches(name.upper().removeprefix(PREFIX), [k.removeprefix(PREFIX) for k in known],
                                          n=1, cutoff=0.6)
        hint = (f"did you mean {PREFIX}{close[0]}?" if close
                else "unset it (the settings: reference_arch/common/settings_model.py)")
        lines.append(f"{name} is not a setting: {hint}")
    return lines


def error_line(error: Mapping[str, Any]) -> str:
    """One of pydantic's errors as ``VARIABLE='value': what is wrong; use what is allowed``."""
    name = str(error["loc"][0]) if error["loc"] else ""
    shown = repr(error["input"]) if isinstance(error["input"], str) else repr(str(error["input"]))
    shown = shown if len(shown) <= 80 else shown[:77] + "...'"
    if error["type"] == "value_error":  # ours: the message says what is wrong and what is allowed
        text = str(error["ctx"]["error"])
    else:  # a built-in type's: the field says what is allowed, or the Literal's choices do
        ctx = error.get("ctx") or {}
        field = Settings.model_fields.get(name)
        allowed = (field and (field.json_schema_extra or {}).get("allowed")) or ctx.get("expected")
        problem = {"int_parsing": "not a whole number", "literal_error": "not a choice",
                   "greater_than": f"not above {ctx.get('gt')}", "greater_than_equal": f"less than {ctx.get('ge')}",
                   }.get(error["type"], str(error["msg"]))
        text = f"{problem}; use {allowed}" if allowed else problem
    return f"{PREFIX}{name.upper()}={shown}: {text}"


def load_settings() -> Settings:
    """The settings from the environment, or ``SettingsError``: one line naming each bad value (the variable,
    the value, what is allowed) and each ``REFERENCE_ARCH_*`` name that is no setting. Secrets scrubbed."""
    from reference_arch.common.secrets import scrub

    lines, loaded = [], None
    try:
        loaded = Settings()
    except ValidationError as err:
        lines = [error_line(e) for e in err.errors()]
    lines += unknown_name_lines(os.environ)
    if lines:
        raise SettingsError(scrub("; ".join(lines)))
    return loaded
