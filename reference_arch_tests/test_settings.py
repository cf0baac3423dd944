"""Every ``REFERENCE_ARCH_*`` setting is validated once: a bad one is one line naming the variable, the value
and what is allowed, from the real CLI and from a code location's load; a misspelled name is refused with
the right one (issue 22 item 2, issue 26 item 4)."""

from __future__ import annotations

import ast
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
     "REFERENCE_ARCH_PRETRAIN_SHARDS='x': not a whole number; use a whole number, 1 or more"),
    ("REFERENCE_ARCH_DOCS_DIR", "~nosuchuser/docs",  # a home folder of no user: was a RuntimeError traceback
     "REFERENCE_ARCH_DOCS_DIR='~nosuchuser/docs': ~nosuchuser is no user's home folder here; use an existing folder"),
    ("REFERENCE_ARCH_LLM_MODEL", "~nosuchuser/m",
     f"REFERENCE_ARCH_LLM_MODEL='~nosuchuser/m': ~nosuchuser is no user's home folder here; {MODELS} (config.json)"),
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


# -- one settings module: every reader goes through common/settings.py (issue "The first hour") ----------------

# A bad value of each kind, read where the code reads it: one line naming the variable, the value and what is
# allowed (the old readers took -5 as "no limit", and said other things for the others).
READS = [
    ("REFERENCE_ARCH_DOCS_MAX_CHARS", "many", "reference_arch.sources.docs.helpers:max_chars",  # not a number
     "REFERENCE_ARCH_DOCS_MAX_CHARS='many': not a whole number; use a whole number, 0 or more (0: no limit)"),
    ("REFERENCE_ARCH_DOCS_MAX_CHARS", "-5", "reference_arch.sources.docs.helpers:max_chars",  # negative
     "REFERENCE_ARCH_DOCS_MAX_CHARS='-5': less than 0; use a whole number, 0 or more (0: no limit)"),
    ("REFERENCE_ARCH_EXECUTOR", "k9s", "reference_arch.common.executors:executor_from_env",  # an unknown choice
     "REFERENCE_ARCH_EXECUTOR='k9s': not a choice; use 'k8s' or 'default'"),
    ("REFERENCE_ARCH_RAG_SOURCES", "docs,confluence", "reference_arch.common.settings:enabled_sources",
     "REFERENCE_ARCH_RAG_SOURCES='docs,confluence': unknown source(s) confluence; use none or any of github, "
     "slack, docs, packages"),
    ("REFERENCE_ARCH_RAG_START", "2026-02-30", "reference_arch.rag.config:start_date",
     "REFERENCE_ARCH_RAG_START='2026-02-30': not a date; use YYYY-MM-DD"),
]


@pytest.mark.parametrize("name,value,reader,line", READS, ids=[f"{n}={v}" for n, v, _, _ in READS])
def test_a_bad_value_read_by_the_code_is_one_line(name, value, reader, line, monkeypatch):
    import importlib

    module, function = reader.split(":")
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as err:
        getattr(importlib.import_module(module), function)()
    assert str(err.value) == line


def test_the_code_reads_the_environment_at_call_time(monkeypatch):
    from reference_arch.common.settings import value
    from reference_arch.sources.docs.helpers import max_chars

    monkeypatch.delenv("REFERENCE_ARCH_DOCS_MAX_CHARS", raising=False)
    assert max_chars() == 800
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_MAX_CHARS", "120")
    assert max_chars() == 120
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_MAX_CHARS", "")  # empty: the default
    assert max_chars() == 800
    monkeypatch.setenv("REFERENCE_ARCH_DOCS_PACKAGES", "")  # the one setting where empty means something: none
    assert value("docs_packages") == ()


def _table_in(readme: str) -> str:
    from reference_arch.common.settings_model import TABLE_END, TABLE_START

    assert readme.count(TABLE_START) == 1 and readme.count(TABLE_END) == 1, "the README's settings markers"
    return readme.split(TABLE_START)[1].split(TABLE_END)[0].strip("\n") + "\n"


def test_the_readme_table_and_env_example_are_the_settings_module():
    """Regenerate both with `python -m reference_arch.common.settings_model --write`."""
    from reference_arch.common.settings import SETTINGS, env_example, markdown_table

    table = _table_in((PROJECT_ROOT / "README.md").read_text(encoding="utf-8"))
    assert table == markdown_table(), "README.md's settings table is stale: run python -m " \
                                      "reference_arch.common.settings_model --write"
    assert all(f"| `{s.name}` |" in table for s in SETTINGS)
    assert "| `REFERENCE_ARCH_OFFLINE` |" in table
    example = (PROJECT_ROOT / ".env.example").read_text(encoding="utf-8")
    assert example == env_example(), ".env.example is stale: run python -m reference_arch.common.settings_model --write"
    for s in SETTINGS:  # every setting a user may set, commented out, at its default
        assert (f"# {s.name}={s.default or ''}\n" in example) != s.internal, s.name


def test_the_table_is_printed_by_the_settings_module():
    from reference_arch.common.settings import markdown_table

    done = subprocess.run([sys.executable, "-m", "reference_arch.common.settings_model", "--markdown"],
                          capture_output=True, text=True, timeout=120, cwd=PROJECT_ROOT)
    assert (done.returncode, done.stdout, done.stderr) == (0, markdown_table(), "")


# -- nothing but the settings module reads a REFERENCE_ARCH_* variable from the environment ----------------------

def _is_environ(node: ast.AST) -> bool:
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or (
        isinstance(node, ast.Name) and node.id == "environ")


def _names_a_setting(key: ast.AST, constants: set[str]) -> bool:
    """Whether ``key`` is a ``REFERENCE_ARCH_*`` name: a literal, a constant bound to one, or built from one."""
    if isinstance(key, ast.Constant):
        return isinstance(key.value, str) and key.value.startswith("REFERENCE_ARCH_")
    if isinstance(key, ast.Name):
        return key.id in constants
    if isinstance(key, ast.Attribute):
        return key.attr in constants
    if isinstance(key, ast.BinOp):
        return _names_a_setting(key.left, constants)
    if isinstance(key, ast.JoinedStr) and key.values:
        first = key.values[0]
        return _names_a_setting(first.value if isinstance(first, ast.FormattedValue) else first, constants)
    return False


def setting_constants(trees: list[ast.AST]) -> set[str]:
    """The names bound anywhere to a ``REFERENCE_ARCH_*`` string (``START_ENV = "REFERENCE_ARCH_RAG_START"``)."""
    return {target.id for tree in trees for node in ast.walk(tree) if isinstance(node, ast.Assign)
            and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)
            and node.value.value.startswith("REFERENCE_ARCH_")
            for target in node.targets if isinstance(target, ast.Name)}


def environment_reads(tree: ast.AST, constants: set[str]) -> list[int]:
    """The lines that read a ``REFERENCE_ARCH_*`` variable from the environment: ``os.environ.get(K)``,
    ``os.environ[K]``, ``os.getenv(K)``, ``K in os.environ``. Writes (``os.environ[K] = v``, ``setdefault``,
    ``pop``, an environment built for a child process) are no reads."""
    lines = []
    for node in ast.walk(tree):
        key = None
        if isinstance(node, ast.Call) and node.args:
            func = node.func
            if (isinstance(func, ast.Attribute) and func.attr == "get" and _is_environ(func.value)) or (
                    isinstance(func, ast.Attribute) and func.attr == "getenv") or (
                    isinstance(func, ast.Name) and func.id == "getenv"):
                key = node.args[0]
        elif isinstance(node, ast.Subscript) and isinstance(node.ctx, ast.Load) and _is_environ(node.value):
            key = node.slice
        elif isinstance(node, ast.Compare) and any(_is_environ(c) for c in node.comparators):
            key = node.left
        if key is not None and _names_a_setting(key, constants):
            lines.append(node.lineno)
    return sorted(set(lines))


def test_the_reader_scan_sees_each_form_of_read():
    source = ('import os\nfrom os import environ, getenv\nSTART_ENV = "REFERENCE_ARCH_RAG_START"\n'
              'a = os.environ.get("REFERENCE_ARCH_HOME")\nb = os.environ[START_ENV]\nc = os.getenv(START_ENV, "x")\n'
              'd = "REFERENCE_ARCH_DEVICE" in os.environ\ne = environ.get(f"{PREFIX}HOME")\n'
              'f = getenv(config.START_ENV)\n'
              'os.environ["REFERENCE_ARCH_HOME"] = "/tmp"\nos.environ.setdefault("REFERENCE_ARCH_HOME", "/tmp")\n'
              'env = {**os.environ, "REFERENCE_ARCH_HOME": "/tmp"}\ng = os.environ.get("OPENAI_API_KEY")\n')
    tree = ast.parse(source)
    assert environment_reads(tree, setting_constants([tree]) | {"PREFIX"}) == [4, 5, 6, 7, 8, 9]


def test_only_the_settings_module_reads_project_settings_from_the_environment():
    """Every ``REFERENCE_ARCH_*`` variable is read through ``common/settings.py`` (``settings.value``), where it is
    typed, defaulted and validated; the testkit may set variables for tests, and any module may write them for a
    child process."""
    allowed = {PACKAGE_DIR / "common" / "settings.py"}
    trees = {path: ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
             for path in sorted(PACKAGE_DIR.rglob("*.py"))}
    constants = setting_constants(list(trees.values())) | {"PREFIX"}
    reads = [f"{path.relative_to(PROJECT_ROOT)}:{line}" for path, tree in trees.items() if path not in allowed
             for line in environment_reads(tree, constants)]
    assert not reads, f"read a REFERENCE_ARCH_* variable from os.environ; use common.settings.value: {reads}"


# -- .env and the offline switch ---------------------------------------------------------------------------------

def test_the_cli_reads_dot_env_in_the_current_directory_and_the_environment_wins(tmp_path):
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / ".env").write_text("# a user's settings\nREFERENCE_ARCH_RAG_START=yesterday\n"
                                  "REFERENCE_ARCH_EXECUTOR=k8s\n")
    env = clean_env(tmp_path, REFERENCE_ARCH_EXECUTOR="k9s")  # set in the environment: wins over .env's k8s
    done = subprocess.run([str(CLI), "ask", "prompt", "x"], env=env, cwd=workdir, capture_output=True, text=True,
                          timeout=300)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("error: REFERENCE_ARCH_EXECUTOR='k9s': not a choice; use 'k8s' or 'default'; "
                           "REFERENCE_ARCH_RAG_START='yesterday': not a date; use YYYY-MM-DD\n")


OFFLINE_PROBE = "import json, os, reference_arch; print(json.dumps({k: os.environ.get(k) for k in %r}))"


@pytest.mark.parametrize("switch,expected", [(None, "1"), ("yes", "1"), ("0", None), ("no", None)])
def test_the_offline_switch_is_a_setting(switch, expected, tmp_path):
    from reference_arch.common.settings import HUB_OFFLINE_ENV

    env = {k: v for k, v in clean_env(tmp_path).items() if k not in HUB_OFFLINE_ENV}
    if switch is not None:
        env["REFERENCE_ARCH_OFFLINE"] = switch
    done = subprocess.run([sys.executable, "-c", OFFLINE_PROBE % (HUB_OFFLINE_ENV,)], env=env, capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {k: expected for k in HUB_OFFLINE_ENV}


def test_dot_env_can_turn_the_offline_switch_off_and_a_users_hub_switch_stays(tmp_path, monkeypatch):
    from reference_arch.common.settings import HUB_OFFLINE_ENV, apply_offline_env, load_env_file

    for name in (*HUB_OFFLINE_ENV, "REFERENCE_ARCH_OFFLINE"):
        monkeypatch.setenv(name, "x")  # so that monkeypatch puts back the value before the test, or none
        monkeypatch.delenv(name)
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "0")  # the user's own
    apply_offline_env()  # as at import
    assert [os.environ.get(k) for k in HUB_OFFLINE_ENV] == ["1", "1", "0"]
    (tmp_path / ".env").write_text("REFERENCE_ARCH_OFFLINE=no\n")
    assert load_env_file(tmp_path) == ["REFERENCE_ARCH_OFFLINE"]
    assert [os.environ.get(k) for k in HUB_OFFLINE_ENV] == [None, None, "0"]


@pytest.mark.parametrize("users, expected", [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_torch_threads_sleep_while_they_wait_unless_the_user_says(users, expected, tmp_path):
    """Beside a second torch process, spinning OpenMP threads made the packaged model 3.8x slower
    (bench/bench_threads.py); the policy is read when torch loads, so ``import reference_arch`` sets it first."""
    env = {k: v for k, v in clean_env(tmp_path).items() if k != "OMP_WAIT_POLICY"}
    if users is not None:
        env["OMP_WAIT_POLICY"] = users
    done = subprocess.run([sys.executable, "-c", OFFLINE_PROBE % (("OMP_WAIT_POLICY",),)], env=env,
                          capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout) == {"OMP_WAIT_POLICY": expected}
