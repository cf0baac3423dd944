"""Every ``REFERENCE_ARCH_*`` setting checked at once, where a user meets them, and their documentation written.

The settings are declared, read and parsed in ``common/settings.py``; this module is the front door.
``load_settings()`` reads them all: the CLI calls it before any command (a bad setting prints one line and exits
2) and every code location before it loads (``location_definitions``), so ``dagster dev``/``dg`` shows the same
line. Besides each value's form (``settings.value``) it checks what only this machine can say: that a folder or
file exists, that a model is installed or published (``local_model_problem``: it needs the model registry and the
packaged models, which need ``settings``, hence a module of its own). A bad value names the variable, the value
and what is allowed:

    REFERENCE_ARCH_RAG_START='yesterday': not a date; use YYYY-MM-DD

and a ``REFERENCE_ARCH_*`` name that is no setting is refused with the closest one, never ignored.

``python -m reference_arch.common.settings_model --markdown`` prints the README's table of settings,
``--env-example`` the ``.env.example`` file, ``--write`` rewrites both (a test holds them equal to the code).
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Callable, Optional

from reference_arch.common.settings import (BY_FIELD, PROJECT_ROOT, SettingsError, env_example, error_line,
                                            expand_path, markdown_table, raw, unknown_name_lines, values)

__all__ = ["SettingsError", "load_settings", "local_model_problem", "readme_with_table"]

README = PROJECT_ROOT / "README.md"
ENV_EXAMPLE = PROJECT_ROOT / ".env.example"
TABLE_START, TABLE_END = "<!-- settings:start -->", "<!-- settings:end -->"


def _hub_online() -> bool:
    # huggingface_hub's own reading of its switch, which settings.apply_offline_env sets while REFERENCE_ARCH_OFFLINE
    # is on (unless the user set it)
    return os.environ.get("HF_HUB_OFFLINE", "0").upper() not in ("1", "ON", "YES", "TRUE")


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
    try:
        path = expand_path(spec)
    except ValueError as err:
        return f"{err}; {allowed}"
    if (path / "config.json").is_file():
        return None
    if path.is_dir():
        return f"a folder without config.json, not a saved model; {allowed}"
    if _hub_online() and re.fullmatch(r"[\w.-]+/[\w.-]+", spec):
        return None  # a hub name, downloaded when the user turned the offline switch off
    return f"no such folder; {allowed}"


# -- what only this machine can say: each check takes the value and every good value, and returns the problem ----

def _folder(path: Path, _: dict) -> Optional[str]:
    if not path.is_dir():
        return f"{'not a folder' if path.exists() else 'no such folder'}; use an existing folder"
    return None


def _home(path: Path, _: dict) -> Optional[str]:
    return "not a folder; use a folder (created when missing)" if path.exists() and not path.is_dir() else None


def _files(paths: tuple[Path, ...], _: dict) -> Optional[str]:
    missing = [str(p) for p in paths if not p.is_file()]
    return f"no such file {', '.join(missing)}; use YAML question-set files, comma-separated" if missing else None


def _chat_model(spec: str, _: dict) -> Optional[str]:
    # An OpenAI-compatible server takes any model name (LLMResource picks it when either is set).
    return None if os.environ.get("OPENAI_API_KEY") or os.environ.get("OPENAI_BASE_URL") else local_model_problem(spec)


def _base_model(spec: str, good: dict) -> Optional[str]:
    return None if good.get("finetune_backend") == "openai" else local_model_problem(spec)


def _is_dir(name: str) -> bool:
    try:
        return expand_path(name).is_dir()
    except ValueError:
        return False


def _embeddings_model(name: str, good: dict) -> Optional[str]:
    hub_name = _hub_online() and re.fullmatch(r"[\w.-]+/[\w.-]+", name)
    if good.get("embeddings_provider") != "openai" and not _is_dir(name) and not hub_name:
        return ("no such folder; use a folder holding a sentence-transformers model (or an OpenAI model name with "
                "REFERENCE_ARCH_EMBEDDINGS_PROVIDER=openai)")
    return None


CHECKS: dict[str, Callable[[Any, dict], Optional[str]]] = {
    "home": _home, "llm_model": _chat_model, "embeddings_model": _embeddings_model, "rag_eval_set": _files,
    "github_export": _folder, "slack_export": _folder, "docs_dir": _folder, "prompt_templates": _folder,
    "finetune_base_model": _base_model, "finetuned_llm_model": _chat_model, "corpus_dir": _folder,
}


def load_settings() -> SimpleNamespace:
    """Every setting from the environment (``settings.value`` of each, by field), or ``SettingsError``: one line
    naming each bad value (the variable, the value, what is allowed) and each ``REFERENCE_ARCH_*`` name that is
    no setting. Secrets scrubbed."""
    from reference_arch.common.secrets import scrub

    good, bad = values()
    lines = []
    for field, setting in BY_FIELD.items():
        if field in bad:
            lines.append(bad[field])
        elif field in CHECKS and good[field] is not None and raw(field) is not None:  # defaults are good values
            problem = CHECKS[field](good[field], good)
            if problem:
                lines.append(error_line(setting.name, raw(field), problem))
    lines += unknown_name_lines()
    if lines:
        raise SettingsError(scrub("; ".join(lines)))
    return SimpleNamespace(**good)


# -- the documentation written from the declarations -------------------------------------------------------------

def readme_with_table(readme: str) -> str:
    """``readme`` with the settings table between its markers replaced by ``settings.markdown_table()``."""
    start, end = readme.index(TABLE_START) + len(TABLE_START), readme.index(TABLE_END)
    return readme[:start] + "\n" + markdown_table() + readme[end:]


def main(argv: list[str]) -> int:
    usage = "usage: python -m reference_arch.common.settings_model --markdown | --env-example | --write"
    if argv == ["--markdown"]:
        print(markdown_table(), end="")
    elif argv == ["--env-example"]:
        print(env_example(), end="")
    elif argv == ["--write"]:
        README.write_text(readme_with_table(README.read_text(encoding="utf-8")), encoding="utf-8")
        ENV_EXAMPLE.write_text(env_example(), encoding="utf-8")
        print(f"wrote the settings table in {README.name} and {ENV_EXAMPLE.name}")
    else:
        print(usage, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
