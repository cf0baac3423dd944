"""One prompt template file: its schema, its version, the rules its variables obey, and its rendering.

A file ``<name>.yaml`` holds ``description``, ``messages`` (``role``: system, human or ai; ``text``: a
LangChain f-string template), ``variables`` (each with its rules), ``output`` (the format the
``answer_format`` check verifies) and, optionally, ``examples`` (few-shot: each example gives every
variable and the ``answer``). Its version is the hash of its parsed content: comments, whitespace, YAML
style and key order do not change it.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")  # the file's stem: a partition key and a run-config value
_VARIABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# A placeholder a renderer would fill: {name} or {{ name }} (f-string, Jinja2, mustache), or a Jinja2 tag.
_PLACEHOLDER = re.compile(r"\{\s*[A-Za-z_]\w*\s*\}|\{%.*?%\}", re.S)
_ROLES = {"human": "user", "ai": "assistant", "system": "system"}  # LangChain's message types, as chat roles


class TemplateError(ValueError):
    """A template file that cannot be used; the message is one line naming the file and the problem."""


class TemplateInputError(ValueError):
    """A variable's value refused by its template's rules, before anything is rendered."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class Message(_Strict):
    role: Literal["system", "human", "ai"]
    text: str = Field(min_length=1)


class VariableRules(_Strict):
    required: bool = True  # refuse an empty (or blank) value
    min_length: int = Field(0, ge=0)
    max_length: Optional[int] = Field(None, ge=1)
    no_template_syntax: bool = False  # refuse unbalanced braces and {placeholders} in the value


class OutputFormat(_Strict):
    max_sentences: int = Field(ge=1)  # the answer's prose, code blocks and link lines aside
    links: int = Field(ge=0)  # how many links the answer must give
    code_block: bool = False  # whether the answer must hold a ``` code block


class TemplateFile(_Strict):
    description: str = Field(min_length=1)
    messages: list[Message] = Field(min_length=1)
    variables: dict[str, VariableRules] = Field(min_length=1)
    output: OutputFormat
    examples: list[dict[str, str]] = []


@dataclass(frozen=True, eq=False)
class PromptTemplate:
    name: str
    spec: TemplateFile
    hash: str  # content_hash of the file's parsed content: the template's version
    file: str = ""  # where it was read from, as error messages name it

    @property
    def max_sentences(self) -> int:
        return self.spec.output.max_sentences

    @property
    def links(self) -> int:
        return self.spec.output.links

    @property
    def code_block(self) -> bool:
        return self.spec.output.code_block

    @property
    def variables(self) -> dict[str, VariableRules]:
        return self.spec.variables


def content_hash(content) -> str:
    """The version of parsed template content: its canonical JSON, hashed."""
    canonical = json.dumps(content, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:12]


class _UniqueKeyLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key given twice in one mapping (it would keep the last silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def parse_template(name: str, text: str, file: str = "") -> PromptTemplate:
    """The template called ``name`` from a file's ``text``; ``TemplateError`` (one line) when it is unusable."""
    try:
        content = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        raise TemplateError(_yaml_problem(err)) from None
    if not isinstance(content, dict):
        raise TemplateError("the file must hold a mapping with description, messages, variables and output")
    try:
        spec = TemplateFile.model_validate(content)
    except ValidationError as err:
        raise TemplateError(_schema_problem(err)) from None
    template = PromptTemplate(name, spec, content_hash(content), file)
    _check(template)
    return template


def load_template(path: Path, shown: str | None = None) -> PromptTemplate:
    """The template in ``path``, named after the file; every problem is ``TemplateError``: one line
    ``prompt template <file>: <problem>``."""
    shown = shown or path.name
    try:
        if not NAME.match(path.stem):
            raise TemplateError("the file name must be lower-case letters, digits, '_' or '-' (it is the "
                                "template's name and partition key)")
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as err:
            raise TemplateError(f"not UTF-8 text ({err.reason} at byte {err.start})") from None
        return parse_template(path.stem, text, shown)
    except TemplateError as err:
        raise TemplateError(f"prompt template {shown}: {err}") from None


def _yaml_problem(err: yaml.YAMLError) -> str:
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    return f"invalid YAML{where}: {getattr(err, 'problem', None) or err}"


def _schema_problem(err: ValidationError) -> str:
    first = err.errors()[0]
    where = ".".join(str(part) for part in first["loc"])
    if first["type"] == "missing":
        problem = f"missing field '{where}'"
    elif first["type"] == "extra_forbidden":
        problem = f"unknown field '{where}'"
    else:
        problem = f"{where}: {first['msg']}"
    more = err.error_count() - 1
    return problem + (f" (and {more} more problem{'s' * (more > 1)})" if more else "")


def _placeholders(texts) -> set[str]:
    """The ``{name}`` placeholders of f-string templates (LangChain's default format, Python's own syntax:
    ``{{`` is a literal brace). The standard library parses it, so loading the location imports no LangChain."""
    import string

    names = {name for text in texts for _, name, _, _ in string.Formatter().parse(text) if name is not None}
    for name in names:  # LangChain refuses attribute and index access ("{a.b}", "{a[0]}") and positional "{}"
        if not _VARIABLE.match(name):
            raise ValueError(f"{{{name}}} is not a plain variable: write {{name}} with letters, digits and '_'")
    return names


def _check(template: PromptTemplate) -> None:
    """What the schema cannot say: the text and the declared variables agree, the examples fit."""
    spec = template.spec
    for name, rules in spec.variables.items():
        if not _VARIABLE.match(name):
            raise TemplateError(f"variable {name!r} is not a valid name (letters, digits and '_')")
        if rules.max_length is not None and rules.min_length > rules.max_length:
            raise TemplateError(f"variable {name!r}: min_length {rules.min_length} is over max_length {rules.max_length}")
    if "question" not in spec.variables:
        raise TemplateError("variables must declare 'question': the prompt location fills {question}")
    try:
        used = _placeholders(m.text for m in spec.messages)
    except ValueError as err:
        raise TemplateError(f"messages: {err}") from None
    if unknown := sorted(used - set(spec.variables)):
        raise TemplateError(f"the text uses {{{unknown[0]}}}, which variables does not declare")
    if unused := sorted(set(spec.variables) - used):
        raise TemplateError(f"variable {unused[0]!r} is declared but the text never uses it")
    if spec.examples and spec.messages[-1].role != "human":
        raise TemplateError("a template with examples must end with a human message (each example repeats it)")
    expected = set(spec.variables) | {"answer"}
    for i, example in enumerate(spec.examples):
        if set(example) != expected:
            raise TemplateError(f"examples[{i}] must give exactly {', '.join(sorted(expected))} "
                                f"(it gives {', '.join(sorted(example)) or 'nothing'})")
        try:
            validate_values(template, {k: v for k, v in example.items() if k != "answer"})
        except TemplateInputError as err:
            raise TemplateError(f"examples[{i}]: {err}") from None
    try:  # an f-string may fail only when formatted ("{0}", "{a.b}"): format each message as LangChain will
        for message in spec.messages:
            message.text.format(**{name: name for name in spec.variables})
    except (ValueError, KeyError, IndexError, AttributeError) as err:
        raise TemplateError(f"messages: {err}") from None


def validate_values(template: PromptTemplate, values: dict[str, str]) -> dict[str, str]:
    """``values`` checked against the template's variable rules; ``TemplateInputError`` (one line) for
    the first refused value. Variables that are not required and not given are rendered empty."""
    if unknown := sorted(set(values) - set(template.variables)):
        raise TemplateInputError(f"template {template.name!r} has no variable {unknown[0]!r} "
                                 f"(it has {', '.join(template.variables)})")
    checked = {}
    for name, rules in template.variables.items():
        value = values.get(name) or ""
        problem = _refusal(value, rules)
        if problem:
            raise TemplateInputError(f"template {template.name!r} refuses the {name}: {problem}")
        checked[name] = value
    return checked


def _refusal(value: str, rules: VariableRules) -> str | None:
    if not value.strip():
        return "it is empty" if rules.required else None
    if len(value) < rules.min_length:
        return f"it is {len(value)} characters long, under its min_length of {rules.min_length}"
    if rules.max_length is not None and len(value) > rules.max_length:
        return f"it is {len(value)} characters long, over its max_length of {rules.max_length}"
    return _template_syntax(value) if rules.no_template_syntax else None


def _template_syntax(value: str) -> str | None:
    """Why ``value`` reads as template syntax (no_template_syntax), or None."""
    depth = 0
    for i, char in enumerate(value, 1):
        if char == "{":
            depth += 1
        elif char == "}":
            if depth == 0:
                return f"the '}}' at character {i} closes no '{{' (unbalanced braces)"
            depth -= 1
    if depth:
        return f"{depth} '{{' never closed (unbalanced braces)"
    if found := _PLACEHOLDER.search(value):
        return f"it holds {found.group()!r}, a template placeholder"
    return None


def chat_prompt(template: PromptTemplate):
    """The template as a LangChain ``ChatPromptTemplate``. With examples: the leading system messages,
    then a ``FewShotChatMessagePromptTemplate`` (each example as the template's remaining messages and
    the ai's answer), then the remaining messages with the caller's values."""
    from langchain_core.prompts import ChatPromptTemplate, FewShotChatMessagePromptTemplate

    pairs = [(m.role, m.text) for m in template.spec.messages]
    if not template.spec.examples:
        return ChatPromptTemplate.from_messages(pairs)
    lead = next((i for i, (role, _) in enumerate(pairs) if role != "system"), len(pairs))
    shots = FewShotChatMessagePromptTemplate(
        examples=[dict(e) for e in template.spec.examples],
        example_prompt=ChatPromptTemplate.from_messages([*pairs[lead:], ("ai", "{answer}")]),
    )
    return ChatPromptTemplate.from_messages([*pairs[:lead], shots, *pairs[lead:]])


def render(template: PromptTemplate, values: dict[str, str], *, check: bool = True) -> list[dict[str, str]]:
    """The template rendered with ``values`` (validated first unless ``check=False``): chat messages
    ``[{"role": "system" | "user" | "assistant", "content": ...}]``."""
    if check:
        values = validate_values(template, values)
    messages = chat_prompt(template).format_messages(**values)
    return [{"role": _ROLES.get(m.type, m.type), "content": str(m.content)} for m in messages]
