"""Every ``REFERENCE_ARCH_*`` setting is validated once: a bad one is one line naming the variable, the value
and what is allowed, from the real CLI and from a code location's load; a misspelled name is refused with
the right one (issue 22 item 2, issue 26 item 4)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reference_arch.common.settings import PACKAGE_DIR, PROJECT_ROOT, SettingsError, known_names
from reference_arch.common.settings_model import load_settings
from reference_arch.testkit.environment import SECRETS_AND_SWITCHES

CLI = Path(sys.executable).parent / "reference-arch"
MODELS = "use packaged:smollm2-135m-instruct, registry:NAME@VERSION or a folder holding a saved Hugging Face model"
# (variable, value, the one line the CLI prints), a bad value of each kind from the fault reports
BAD = [
    ("REFERENCE_ARCH_RAG_START", "yesterday",  # a bad date: was 92 lines ending in ValueError
     "REFERENCE_ARCH_RAG_START='yesterday': not a date; use YYYY-MM-DD"),
    ("REFERENCE_ARCH_FEEDBACK_START", "2026-13-45",  # was 86 lines
     "REFERENCE_ARCH_FEEDBACK_START='2026-13-45': not a date; use YYYY-MM-DD"),
    ("REFERENCE_ARCH_EXECUTOR", "k9s",  # an unknown choice: was 34 lines
     "REFERENCE_ARCH_EXECUTOR='k9s': not a choice; use 'k8s' or 'default'"),
    ("REFERENCE_ARCH_LLM_MODEL", "/etc",  # a bad model path: was "Couldn't instantiate the backend tokenizer"
     f"REFERENCE_ARCH_LLM_MODEL='/etc': a folder without config.json, not a saved model; {MODELS} (config.json)"),
    ("REFERENCE_ARCH_REDACT_PHONE_REGIONS", "ZZ",  # a bad region: silently turned national phone masking off
     "REFERENCE_ARCH_REDACT_PHONE_REGIONS='ZZ': unknown region ZZ; use region codes such as US, GB or DE, "
     "comma-separated"),
    ("REFERENCE_ARCH_DOCS_MAX_CHARS", "-5",  # a negative number: silently meant no limit
     "REFERENCE_ARCH_DOCS_MAX_CHARS='-5': less than 0; use a whole number, 0 or more (0: no limit)"),
    ("REFERENCE_ARCH_PRETRAIN_SHARDS", "x",  # not a number
     "REFERENCE_ARCH_PRETRAIN_SHARDS='x': not a whole number; use a whole number above 0"),
    ("REFERENCE_ARCH_RAG_STRAT", "2026-01-01",  # a misspelled name: silently ignored
     "REFERENCE_ARCH_RAG_STRAT is not a setting: did you mean REFERENCE_ARCH_RAG_START?"),
]


def clean_env(tmp_path: Path, **values: str) -> dict[str, str]:
    """This process's environment without any REFERENCE_ARCH_* name, secret or backend switch, on a fresh
    REFERENCE_ARCH_HOME and DAGSTER_HOME, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("REFERENCE_ARCH_") and k not in SECRETS_AND_SWITCHES}
    (tmp_path / "dagster_home").mkdir(exist_ok=True)
    return {**env, "REFERENCE_ARCH_HOME": str(tmp_path / "home"), "DAGSTER_HOME": str(tmp_path / "dagster_home"),
            **values}


@pytest.mark.parametrize("name,value,line", BAD, ids=[f"{n}={v}" for n, v, _ in BAD])
def test_a_bad_setting_is_one_line_from_the_cli(name, value, line, tmp_path):
    done = subprocess.run([str(CLI), "ask", "prompt", "x"], env=clean_env(tmp_path, **{name: value}),
                          capture_output=True, text=True, timeout=300)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {line}\n")
    assert not (tmp_path / "home").exists()  # refused before anything was written


# Each location's load with a bad setting its modules read at import (as `dagster dev` and `dg` load them).
LOADS = {
    "prompt": ("REFERENCE_ARCH_FEEDBACK_START", "2026-13-45"),
    "rag": ("REFERENCE_ARCH_RAG_START", "yesterday"),
    "finetune": ("REFERENCE_ARCH_FINETUNE_START", "2026-13"),
    "pretrain": ("REFERENCE_ARCH_PRETRAIN_SHARDS", "x"),
}
LOAD_SCRIPT = """
import importlib, json, os, sys
name, value = sys.argv[2], sys.argv[3]
os.environ[name] = value
try:
    importlib.import_module(f"reference_arch.{sys.argv[1]}.definitions")
    print(json.dumps(None))
except Exception as err:
    print(json.dumps([type(err).__name__, str(err)]))
"""


@pytest.mark.parametrize("location", list(LOADS))
def test_a_location_load_with_a_bad_setting_fails_with_one_line(location, tmp_path):
    name, value = LOADS[location]
    done = subprocess.run([sys.executable, "-c", LOAD_SCRIPT, location, name, value], env=clean_env(tmp_path),
                          capture_output=True, text=True, timeout=300, cwd=PROJECT_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    kind, message = json.loads(done.stdout.strip().splitlines()[-1])
    assert kind == "SettingsError" and "\n" not in message
    assert message.startswith(f"{name}={value!r}: "), message


def test_names_and_values_that_are_fine(tmp_home, tmp_path, monkeypatch):
    """The forms each setting takes pass, so the checks refuse only what is wrong."""
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    good = {"REFERENCE_ARCH_RAG_START": "2026-02-28", "REFERENCE_ARCH_EXECUTOR": "K8s",
            "REFERENCE_ARCH_LLM_MODEL": str(model), "REFERENCE_ARCH_FINETUNED_LLM_MODEL": "registry:code-lm@latest",
            "REFERENCE_ARCH_FINETUNE_BASE_MODEL": "packaged:smollm2-135m-instruct",
            "REFERENCE_ARCH_REDACT_PHONE_REGIONS": "us, GB", "REFERENCE_ARCH_DOCS_MAX_CHARS": "0",
            "REFERENCE_ARCH_DOCS_PACKAGES": "pandas:Series,DataFrame;numpy", "REFERENCE_ARCH_DOCS_DIR": str(tmp_path),
            "REFERENCE_ARCH_RAG_SOURCES": "docs, packages", "REFERENCE_ARCH_REDACT": "none",
            "REFERENCE_ARCH_DEVICE": "cuda:1", "REFERENCE_ARCH_IMAGE": "x:latest",  # docker-compose.yml's
            "REFERENCE_ARCH_PRETRAIN_SHARDS": ""}  # empty: unset
    for name, value in good.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert settings.pretrain_shards == 8 and settings.docs_max_chars == 0 and settings.executor == "k8s"
    # With an OpenAI-compatible server any model name is the server's; with the openai backend, any base model.
    monkeypatch.setenv("OPENAI_BASE_URL", "http://localhost:11434/v1")
    monkeypatch.setenv("REFERENCE_ARCH_LLM_MODEL", "qwen2.5:0.5b")
    monkeypatch.setenv("REFERENCE_ARCH_FINETUNE_BACKEND", "openai")
    monkeypatch.setenv("REFERENCE_ARCH_FINETUNE_BASE_MODEL", "gpt-4o-mini-2024-07-18")
    assert load_settings().llm_model == "qwen2.5:0.5b"


def test_two_bad_settings_are_one_line_naming_both(tmp_home, monkeypatch):
    monkeypatch.setenv("REFERENCE_ARCH_RAG_ANSWERER", "abstractive")
    monkeypatch.setenv("REFERENCE_ARCH_LLM_MOEDL", "packaged:smollm2-135m-instruct")
    with pytest.raises(SettingsError) as err:
        load_settings()
    assert str(err.value) == ("REFERENCE_ARCH_RAG_ANSWERER='abstractive': not a choice; use 'extractive' or "
                              "'generative'; REFERENCE_ARCH_LLM_MOEDL is not a setting: did you mean "
                              "REFERENCE_ARCH_LLM_MODEL?")


def test_every_setting_the_code_reads_is_in_the_model():
    """A name read anywhere in the package is a field (else setting it would be refused as unknown)."""
    read = {m for path in PACKAGE_DIR.rglob("*.py")
            for m in re.findall(r"REFERENCE_ARCH_[A-Z0-9_]*[A-Z0-9]", path.read_text(encoding="utf-8"))}
    assert read - set(known_names()) == set()
