"""The prompt graph materialized for real: the packaged instruct model, LangChain templates, the check."""

import json

import dagster as dg
import pytest

from reference_arch.common.llm.resource import LLMResource
from reference_arch.prompt.defs import prompt
from reference_arch.prompt.defs import inference as prompt_inference
from reference_arch.prompt.definitions import defs
from reference_arch.prompt import templates as template_files
from reference_arch.prompt.templates import TEMPLATES, check_format, parse_template, templates_version
from reference_arch_tests.fake_openai import FakeOpenAI

PROMPT_ASSETS = [prompt.question, prompt.prompt, prompt_inference.answer]
ANSWER = dg.AssetKey(["prompt", "answer"])
GOOD = ("A Series is a one-dimensional labeled array. It holds any data type.\n"
        "- https://pandas.pydata.org/docs/reference/api/pandas.Series.html\n"
        "- https://pandas.pydata.org/docs/user_guide/dsintro.html")


def run(question, llm, template=None, instance=None):
    ops = {"prompt__question": {"config": {"question": question}}}
    if template is not None:
        ops["prompt__prompt"] = {"config": {"template": template}}
    return dg.materialize_to_memory(PROMPT_ASSETS, resources={"llm": llm}, raise_on_error=False, instance=instance,
                                    run_config={"ops": ops})


def test_prompt_graph_with_the_local_model(tmp_home):
    """The sources' first question, answered offline by the packaged model: English about pandas, not noise."""
    result = run("What is a series?", LLMResource(max_tokens=64))
    assert result.success
    record = result.asset_value(ANSWER)
    assert record["model"] == "packaged:smollm2-135m-instruct" and record["sources"] == []
    words = record["answer"].split()
    assert len(words) >= 8 and "series" in record["answer"].lower(), record["answer"]
    rendered = result.asset_value(dg.AssetKey(["prompt", "prompt"]))
    assert rendered["template"] == "pandas" and rendered["template_hash"] == TEMPLATES["pandas"].hash
    rendered = rendered["messages"]
    assert rendered[0]["content"].startswith("In the context of the python framework Pandas.")
    assert rendered[0]["content"].endswith("Question: What is a series?")
    meta = result.asset_materializations_for_node("prompt__answer")[0].metadata
    assert meta["llm/calls"].value == 1 and meta["llm/prompt_tokens"].value > 0
    assert meta["template_hash"].value == TEMPLATES["pandas"].hash
    checks = result.get_asset_check_evaluations()
    assert [(c.check_name, c.severity) for c in checks] == [("answer_format", dg.AssetCheckSeverity.WARN)]


def test_answer_check_passes_on_a_well_formed_answer(tmp_home):
    with FakeOpenAI(answer=GOOD) as server:
        result = run("What is a series?", LLMResource(provider="openai", base_url=server.base_url, api_key="k"))
    assert result.success
    [check] = result.get_asset_check_evaluations()
    assert check.passed and check.metadata["links"].value == 2
    assert result.asset_value(ANSWER)["answer"] == GOOD
    assert len(server.requests) == 1


@pytest.mark.parametrize("reply, cause", [
    ("", "returned an empty answer, so nothing was recorded"),
    ("  \n ", "returned an empty answer, so nothing was recorded"),
    ("I'm sorry, but I can't help with that request.", "declined to answer ("),
])
def test_an_empty_or_refused_answer_fails_the_run_in_one_line(tmp_home, reply, cause):
    """The model returns nothing, or declines: the question run fails in one line naming the model and the cause,
    and no answer is recorded (an earlier one stays the newest)."""
    with FakeOpenAI(answer=reply) as server:
        result = run("What is a series?", LLMResource(provider="openai", base_url=server.base_url, api_key="k",
                                                      cache=False))
    assert not result.success
    [event] = [e for e in result.all_events if e.is_step_failure]
    message = event.step_failure_data.user_failure_data.description
    assert message.startswith(f"gpt-4o-mini {cause}") and "\n" not in message
    assert not result.asset_materializations_for_node("prompt__answer")


def test_an_answer_starting_with_a_hash_is_shown_as_text(tmp_home):
    from markdown_it import MarkdownIt

    with FakeOpenAI(answer="# Series\n    s = pd.Series([1])") as server:
        result = run("What is a series?", LLMResource(provider="openai", base_url=server.base_url, api_key="k"))
    meta = result.asset_materializations_for_node("prompt__answer")[0].metadata
    html = MarkdownIt("commonmark").render(meta["answer"].value)
    assert "<h1>" not in html and "<pre>" not in html and "# Series" in html


def test_each_template_from_run_config_gives_its_own_prompt(tmp_home):
    """Every template file renders through the graph, and the answer_format check measures the answer
    against that template's own output format."""
    with FakeOpenAI(answer=GOOD) as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False)
        for name, template in TEMPLATES.items():
            result = run("What is a series?", llm, template=name)
            assert result.success
            meta = result.asset_materializations_for_node("prompt__answer")[0].metadata
            assert meta["template"].value == name and meta["template_hash"].value == template.hash
            [check] = result.get_asset_check_evaluations()
            assert check.passed is not template.code_block  # GOOD has no code block
    sent = {name: r["body"]["messages"] for name, r in zip(TEMPLATES, server.requests)}
    assert len({json.dumps(m) for m in sent.values()}) == len(TEMPLATES)
    assert "```python" in sent["pandas_example"][0]["content"]
    for name, shots in [("pandas", 0), ("pandas_one_shot", 1), ("pandas_few_shot", 3)]:
        assert [m["role"] for m in sent[name]] == ["user", "assistant"] * shots + ["user"]
        assert sent[name][-1] == sent["pandas"][0]  # the variants differ from the seed's by their examples


def test_an_unknown_template_is_refused_with_the_known_ones_before_any_model_call(tmp_home):
    with FakeOpenAI() as server:
        result = run("What is a series?", LLMResource(provider="openai", base_url=server.base_url, api_key="k"),
                     template="pandsa")
    assert not result.success and server.requests == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "prompt__prompt"
    assert failure.step_failure_data.error.message.strip().endswith(
        f"unknown template 'pandsa': choose one of {', '.join(TEMPLATES)}")
    assert "pandas, pandas_example, pandas_few_shot, pandas_one_shot" in failure.step_failure_data.error.message


def test_the_question_job_is_unpartitioned_and_each_template_is_a_partition(tmp_home):
    """The launchpad needs no partition; the catalogue keeps one ``prompt/template`` partition per
    template, each with its hash as data version, upstream of the prompt."""
    job = defs.resolve_job_def("prompt_question_job")
    assert job.partitions_def is None
    assert {n.name for n in job.nodes} == {"prompt__question", "prompt__prompt", "prompt__answer"}
    template_key = dg.AssetKey(["prompt", "template"])
    graph = defs.resolve_asset_graph()
    assert template_key in graph.get(dg.AssetKey(["prompt", "prompt"])).parent_keys
    assert graph.get(template_key).partitions_def.get_partition_keys() == list(TEMPLATES)

    instance = dg.DagsterInstance.ephemeral()
    for name, template in TEMPLATES.items():
        result = dg.materialize([prompt.template], partition_key=name, instance=instance)
        value = result.asset_value(template_key)
        assert value["hash"] == template.hash and value["links"] == template.links
        assert value["messages"][-1]["content"].endswith("Question: {question}")
        assert value["examples"] == len(template.spec.examples) == (len(value["messages"]) - 1) // 2
        [event] = result.get_asset_materialization_events()
        assert event.materialization.tags["dagster/data_version"] == template.hash
    assert instance.get_materialized_partitions(template_key) == set(TEMPLATES)


@pytest.mark.parametrize("question, problem", [("   ", "empty"), ("x" * 4001, "over the limit of 4000")])
def test_bad_questions_are_refused_before_any_model_call(tmp_home, question, problem):
    with FakeOpenAI() as server:
        result = run(question, LLMResource(provider="openai", base_url=server.base_url, api_key="k"))
    assert not result.success and server.requests == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert problem in failure.step_failure_data.error.message


def test_a_question_within_the_limit_stays_within_it_once_masked(tmp_home):
    """The CLI masks a question into the run config; a placeholder longer than the secret it replaces must not
    push it over the limit the asset checks again (the user typed 3,996 characters)."""
    from reference_arch.common.feedback import check_comment
    from reference_arch.common.questions import question_run_config, validate_question
    from reference_arch.common.redaction import redact

    raw = "x" * 3970 + ' password = "Tr0ub4dor&3x"'
    masked = question_run_config("prompt", raw)["ops"]["prompt__question"]["config"]["question"]
    assert len(raw) <= 4000 < len(masked)
    assert validate_question(masked) == masked
    comment = "y" * 1975 + ' password = "Tr0ub4dor&3x"'
    assert check_comment(redact(comment)) == redact(comment)


def test_template_versions_change_with_the_text():
    before = templates_version()
    source = (template_files.TEMPLATES_DIR / "pandas.yaml").read_text()
    edited = parse_template("pandas", source.replace("Question: {question}", "Be brief. Question: {question}"))
    assert edited.hash != TEMPLATES["pandas"].hash
    assert parse_template("pandas", "# a comment\n" + source).hash == TEMPLATES["pandas"].hash
    assert defs.resolve_assets_def(dg.AssetKey(["prompt", "prompt"])).code_versions_by_key[
        dg.AssetKey(["prompt", "prompt"])] == before


def strict_template():
    """The pandas template with ``no_template_syntax`` on its question (the shipped ones leave it off)."""
    return parse_template("strict", (template_files.TEMPLATES_DIR / "pandas.yaml").read_text().replace(
        "    max_length: 4000\n", "    max_length: 4000\n    no_template_syntax: true\n"))


@pytest.mark.parametrize("question, problem", [
    ("What is {question}?", "template 'strict' refuses the question: it holds '{question}', a template placeholder"),
    ("Why does } fail?", "template 'strict' refuses the question: the '}' at character 10 closes no '{' "
                         "(unbalanced braces)"),
])
def test_the_template_rules_refuse_a_question_before_rendering_and_any_model_call(tmp_home, question, problem,
                                                                                  monkeypatch):
    monkeypatch.setitem(TEMPLATES, "strict", strict_template())
    with FakeOpenAI() as server:
        result = run(question, LLMResource(provider="openai", base_url=server.base_url, api_key="k"), "strict")
    assert not result.success and server.requests == []
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "prompt__prompt"
    assert failure.step_failure_data.error.message.strip().splitlines() == [f"dagster._core.definitions.events.Failure: {problem}"]


@pytest.mark.parametrize("question", ['Why does "{name}".format(x=1) raise KeyError?', "Why does f'{' fail?",
                                      "What does {{ df.shape }} print in a Jinja template?"])
def test_a_python_question_with_braces_is_rendered_verbatim_by_the_shipped_templates(question):
    """The shipped templates refused these legitimate questions (no_template_syntax); LangChain inserts the
    value as text, so the prompt holds the question unchanged."""
    ops = {"prompt__question": {"config": {"question": question}}}
    for name in TEMPLATES:
        result = dg.materialize_to_memory([prompt.question, prompt.prompt], run_config={
            "ops": {**ops, "prompt__prompt": {"config": {"template": name}}}})
        content = result.asset_value(dg.AssetKey(["prompt", "prompt"]))["messages"][-1]["content"]
        assert content.endswith(f"Question: {question}"), (name, content)


def test_run_config_fills_a_template_variable_beyond_the_question(tmp_home, monkeypatch):
    """A template with another variable (here ``audience``): ``config.variables`` fills it, its rules apply."""
    audience = parse_template("audience", (template_files.TEMPLATES_DIR / "pandas.yaml").read_text().replace(
        "Question: {question}", "Write for {audience}. Question: {question}").replace(
        "variables:\n", "variables:\n  audience: {max_length: 20}\n"))
    monkeypatch.setitem(TEMPLATES, "audience", audience)

    def rendered(variables):
        ops = {"prompt__question": {"config": {"question": "What is a series?"}},
               "prompt__prompt": {"config": {"template": "audience", "variables": variables}}}
        return dg.materialize_to_memory([prompt.question, prompt.prompt], run_config={"ops": ops}, raise_on_error=False)

    result = rendered({"audience": "new analysts"})
    assert result.asset_value(dg.AssetKey(["prompt", "prompt"]))["messages"][0]["content"].endswith(
        "Write for new analysts. Question: What is a series?")
    for variables, problem in [({"audience": "x" * 21}, "refuses the audience: it is 21 characters long"),
                               ({}, "template 'audience' refuses the audience: it is empty"),
                               ({"question": "?"}, "config.variables may not set 'question'")]:
        result = rendered(variables)
        failure = next(e for e in result.all_events if e.is_step_failure)
        assert problem in failure.step_failure_data.error.message


@pytest.mark.parametrize("text, passed", [
    (GOOD, True),
    ("A Series is an array. It is labeled. It is fast.\nhttps://a.example/x https://b.example/y", False),
    ("A Series is an array.\nhttps://a.example/x", False),
    ("", False),
])
def test_format_check(text, passed):
    assert check_format(TEMPLATES["pandas"], text)[0] is passed


def test_run_config_chooses_the_model_and_the_answer_records_its_cost(tmp_home):
    ops = {"prompt__question": {"config": {"question": "What is a series?", "model": "gpt-4o"}}}
    with FakeOpenAI(answer=GOOD) as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False,
                          models=["gpt-4.1-nano", "gpt-4o"], policy="cheapest")
        result = dg.materialize_to_memory(PROMPT_ASSETS, resources={"llm": llm}, run_config={"ops": ops})
    assert [r["body"]["model"] for r in server.requests] == ["gpt-4o"]
    meta = result.asset_materializations_for_node("prompt__answer")[0].metadata
    assert meta["llm/model"].value == "gpt-4o" and meta["llm/policy"].value == "fixed"
    assert isinstance(meta["llm/cost_usd"], dg.FloatMetadataValue)
    assert meta["llm/cost_usd"].value == pytest.approx((11 * 2.5 + 7 * 10.0) / 1e6)
    assert result.asset_value(ANSWER)["usage"]["cost_usd"] == meta["llm/cost_usd"].value
