"""Prompt templates as files: the packaged ones, their versions, bad files refused at load, variable rules."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import yaml

from reference_arch.prompt.templates import (
    TEMPLATES, TEMPLATES_DIR, TemplateError, TemplateInputError, check_format, content_hash, load_templates,
    parse_template, render, validate_values,
)

GOOD = """\
description: A test template.
messages:
  - role: system
    text: You answer questions about pandas for {audience}.
  - role: human
    text: "Question: {question}"
variables:
  question: {max_length: 100, no_template_syntax: true}
  audience: {required: false}
output: {max_sentences: 2, links: 1}
"""


def test_the_packaged_templates_are_the_folder_and_render():
    files = sorted(p.stem for p in TEMPLATES_DIR.glob("*.yaml"))
    assert sorted(TEMPLATES) == files
    assert {"pandas", "pandas_example", "pandas_one_shot", "pandas_few_shot"} <= set(files)
    for name, template in TEMPLATES.items():
        assert template.hash == content_hash(yaml.safe_load((TEMPLATES_DIR / f"{name}.yaml").read_text()))
        messages = render(template, {"question": "What is a series?"})
        assert messages[-1]["role"] == "user" and messages[-1]["content"].endswith("Question: What is a series?")
        assert len(messages) == 1 + 2 * len(template.spec.examples)
        for example, (asked, answered) in zip(template.spec.examples, zip(messages[:-1:2], messages[1:-1:2])):
            assert asked["content"].endswith(f"Question: {example['question']}")
            assert answered == {"role": "assistant", "content": example["answer"]}
            assert check_format(template, example["answer"])[0], (name, example["question"])


def test_the_shot_variants_differ_from_the_seed_template_only_by_their_examples():
    """Issue 14 compares zero-, one- and few-shot: same messages, variables and output format."""
    seed = TEMPLATES["pandas"].spec
    assert seed.examples == []
    for name, shots in [("pandas_one_shot", 1), ("pandas_few_shot", 3)]:
        variant = TEMPLATES[name].spec
        assert variant.model_dump(exclude={"description", "examples"}) == seed.model_dump(
            exclude={"description", "examples"})
        assert len(variant.examples) == shots


def test_the_version_is_the_parsed_content():
    same = """\
# comments, key order, quoting and YAML style are not content
output:
    links: 1
    max_sentences: 2
variables: {audience: {required: false}, question: {no_template_syntax: true, max_length: 100}}
messages: [{text: 'You answer questions about pandas for {audience}.', role: system},
           {role: human, text: "Question: {question}"}]
description: "A test template."
"""
    assert parse_template("t", GOOD).hash == parse_template("t", same).hash
    assert parse_template("t", GOOD).hash != parse_template("t", GOOD.replace("Question:", "Q:")).hash
    assert parse_template("t", GOOD).hash != parse_template("t", GOOD.replace("links: 1", "links: 2")).hash


def _swap(old, new):
    assert old in GOOD
    return GOOD.replace(old, new)


@pytest.mark.parametrize("name, text, problem", [
    ("broken", GOOD + "  - [unclosed\n", "invalid YAML at line"),
    ("listed", "- a\n- b\n", "the file must hold a mapping"),
    ("no_output", GOOD.split("output:")[0], "missing field 'output'"),
    ("typo", GOOD + "exmaples: []\n", "unknown field 'exmaples'"),
    ("bad_rule", _swap("max_length: 100", "max_length: many"), "variables.question.max_length: Input should be"),
    ("bad_role", _swap("role: system", "role: robot"), "messages.0.role: Input should be"),
    ("twice", GOOD + "description: again\n", "duplicate key 'description'"),
    ("unknown_var", _swap("Question: {question}", "Question: {question} for {level}"),
     "the text uses {level}, which variables does not declare"),
    ("unused_var", _swap("for {audience}", "for analysts"), "variable 'audience' is declared but the text never"),
    ("braces", _swap("Question: {question}", "Question: {question"), "messages: "),
    ("attribute", _swap("Question: {question}", "Question: {question.upper}"), "messages: "),
    ("no_question", GOOD.replace("{question}", "{audience}").replace(
        "  question: {max_length: 100, no_template_syntax: true}\n", ""), "variables must declare 'question'"),
    ("bad_example", GOOD + "examples: [{question: 'What is a DataFrame?'}]\n",
     "examples[0] must give exactly answer, audience, question (it gives question)"),
    ("refused_example", GOOD + "examples: [{question: 'What is {x}?', audience: a, answer: b}]\n",
     "examples[0]: template 'refused_example' refuses the question: it holds '{x}'"),
    ("Upper", GOOD, "the file name must be lower-case"),
])
def test_a_bad_file_fails_at_load_with_one_line_naming_it(tmp_path, name, text, problem):
    (tmp_path / "fine.yaml").write_text(GOOD)
    (tmp_path / f"{name}.yaml").write_text(text)
    with pytest.raises(TemplateError) as raised:
        load_templates(tmp_path)
    message = str(raised.value)
    assert "\n" not in message and message.startswith(f"prompt template {tmp_path / name}.yaml: ")
    assert problem in message


def test_a_name_loaded_twice_or_a_yml_file_is_refused(tmp_path):
    (tmp_path / "pandas.yaml").write_text(GOOD)
    with pytest.raises(TemplateError, match=r"pandas.yaml: a template named 'pandas' is already loaded from pandas.yaml$"):
        load_templates(TEMPLATES_DIR, tmp_path)
    (tmp_path / "pandas.yaml").rename(tmp_path / "house.yml")
    with pytest.raises(TemplateError, match=r"house.yml: name template files <name>.yaml$"):
        load_templates(tmp_path)


@pytest.mark.parametrize("question, problem", [
    ("", "it is empty"),
    ("x" * 101, "it is 101 characters long, over its max_length of 100"),
    ("What is {question}?", "it holds '{question}', a template placeholder"),
    ("What is {{ x }}?", "it holds '{ x }', a template placeholder"),
    ("What is {% if x %}?", "it holds '{% if x %}', a template placeholder"),
    ("Why does f'{' fail?", "1 '{' never closed (unbalanced braces)"),
    ("Why does } fail?", "the '}' at character 10 closes no '{' (unbalanced braces)"),
])
def test_variable_rules_refuse_a_bad_value_with_one_line(question, problem):
    template = parse_template("t", GOOD)
    with pytest.raises(TemplateInputError) as raised:
        render(template, {"question": question})
    assert str(raised.value) == f"template 't' refuses the question: {problem}"


def test_variable_rules_let_python_through_and_refuse_unknown_variables():
    template = parse_template("t", GOOD)
    question = "What does pd.DataFrame({'a': [1, 2]}) return?"
    messages = render(template, {"question": question})  # audience: not required, rendered empty
    assert messages == [{"role": "system", "content": "You answer questions about pandas for ."},
                        {"role": "user", "content": f"Question: {question}"}]
    with pytest.raises(TemplateInputError, match="^template 't' has no variable 'level' "):
        validate_values(template, {"question": "ok", "level": "beginner"})


SCRIPT = """
import json, dagster as dg
from reference_arch.prompt.definitions import defs
from reference_arch.prompt.defs import prompt
keys = defs.resolve_asset_graph().get(dg.AssetKey(["prompt", "template"])).partitions_def.get_partition_keys()
ops = {"prompt__question": {"config": {"question": "What is a series?"}},
       "prompt__prompt": {"config": {"template": "house_style", "variables": {"audience": "new analysts"}}}}
result = dg.materialize_to_memory([prompt.question, prompt.prompt], run_config={"ops": ops})
print(json.dumps({"keys": keys, "prompt": result.asset_value(dg.AssetKey(["prompt", "prompt"]))}))
"""


def _load_location(folder, tmp_home):
    env = {**os.environ, "REFERENCE_ARCH_PROMPT_TEMPLATES": str(folder), "PYTHONPATH": os.getcwd()}
    return subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)


def test_adding_a_file_adds_a_partition_selectable_in_run_config(tmp_path, tmp_home):
    (tmp_path / "house_style.yaml").write_text(GOOD)
    done = _load_location(tmp_path, tmp_home)
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert out["keys"] == [*TEMPLATES, "house_style"]
    assert out["prompt"]["template"] == "house_style" and out["prompt"]["template_hash"] == content_hash(yaml.safe_load(GOOD))
    assert out["prompt"]["messages"][0]["content"] == "You answer questions about pandas for new analysts."


def test_a_bad_file_stops_the_location_loading_with_its_one_line(tmp_path, tmp_home):
    (tmp_path / "house_style.yaml").write_text(textwrap.dedent(GOOD).replace("{question}", "{question} {level}"))
    done = _load_location(tmp_path, tmp_home)
    assert done.returncode != 0
    assert done.stderr.strip().splitlines()[-1] == (
        f"reference_arch.prompt.templates.template.TemplateError: prompt template {tmp_path}/house_style.yaml: "
        "the text uses {level}, which variables does not declare")
