"""The prompt templates: one YAML file (``<name>.yaml``) per template in this folder (``template.py`` says what a file
holds), plus those of the folder named by ``REFERENCE_ARCH_PROMPT_TEMPLATES`` when it is set.

Adding a template is adding a file: its name (the file's stem) becomes a partition of ``prompt/template``
and a value of ``ops.prompt__prompt.config.template``. Every file is read and checked when the module is
imported, so a bad file stops the prompt location from loading with one line naming the file and the
problem. Templates are versioned by content: ``template_hash`` (the hash of the file's parsed content) is
each ``prompt/template`` partition's data version and metadata, and ``templates_version()`` the code
version of the template and prompt assets, so editing a template marks the prompts and answers built
from it as stale.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from reference_arch.common import settings
from reference_arch.prompt.templates.answer_format import check_format
from reference_arch.prompt.templates.template import (
    PromptTemplate, TemplateError, TemplateInputError, chat_prompt, content_hash, load_template, parse_template,
    render, validate_values,
)

__all__ = [
    "DEFAULT_TEMPLATE", "EXTRA_TEMPLATES_ENV", "TEMPLATES", "TEMPLATES_DIR", "PromptTemplate", "TemplateError",
    "TemplateInputError", "chat_prompt", "check_format", "content_hash", "load_template", "load_templates",
    "parse_template", "render", "template_named", "templates_version", "validate_values",
]

TEMPLATES_DIR = Path(__file__).resolve().parent
EXTRA_TEMPLATES_ENV = "REFERENCE_ARCH_PROMPT_TEMPLATES"
DEFAULT_TEMPLATE = "pandas"


def load_templates(*folders: Path) -> dict[str, PromptTemplate]:
    """Every ``*.yaml`` file of ``folders``, by name (file names sorted within a folder); ``TemplateError``
    for the first bad file, a ``*.yml`` file (one spelling: the one the package data ships) or a name
    loaded twice."""
    templates: dict[str, PromptTemplate] = {}
    for folder in folders:
        if not folder.is_dir():
            raise TemplateError(f"prompt templates folder {folder}: no such folder")
        for path in sorted(p for p in folder.iterdir() if p.suffix in (".yaml", ".yml")):
            shown = path.name if folder == TEMPLATES_DIR else str(path)
            if path.suffix == ".yml":
                raise TemplateError(f"prompt template {shown}: name template files <name>.yaml")
            template = load_template(path, shown)
            if template.name in templates:
                raise TemplateError(f"prompt template {shown}: a template named {template.name!r} is already "
                                    f"loaded from {templates[template.name].file}")
            templates[template.name] = template
    return templates


def _folders() -> list[Path]:
    extra = settings.value("prompt_templates")
    return [TEMPLATES_DIR, *([extra] if extra else [])]


TEMPLATES: dict[str, PromptTemplate] = load_templates(*_folders())
if DEFAULT_TEMPLATE not in TEMPLATES:
    raise TemplateError(f"prompt templates: no {DEFAULT_TEMPLATE}.yaml, the default template, in {TEMPLATES_DIR}")


def template_named(name: str) -> PromptTemplate:
    """The template called ``name``; ``ValueError`` with one line listing the known templates."""
    try:
        return TEMPLATES[name]
    except KeyError:
        raise ValueError(f"unknown template {name!r}: choose one of {', '.join(TEMPLATES)}") from None


def templates_version() -> str:
    """One hash over every template's name and version: the prompt assets' code version."""
    return hashlib.sha256("".join(f"{n}:{t.hash};" for n, t in TEMPLATES.items()).encode()).hexdigest()[:12]
