"""prompt/template_evaluation: templates scored on the evaluation set against the local OpenAI-compatible
server, the local MiniLM embeddings, and the blocking check that stops a worse template version."""

import dagster as dg
import pytest

from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.prompt.defs.evaluation import template_evaluation
from reference_arch.prompt.evaluation_set import load_evaluation_set, split_of
from reference_arch.prompt.templates import TEMPLATES, TEMPLATES_DIR, parse_template
from reference_arch_tests.fake_openai import FakeOpenAI

GOOD = ("A DataFrame is a two-dimensional labeled table with columns of different types.\n"
        "- https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.html\n"
        "- https://pandas.pydata.org/docs/user_guide/dsintro.html")


def evaluate(instance, answer, partition="pandas", limit=2):
    with FakeOpenAI(answer=answer) as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="k", cache=False)
        result = dg.materialize([template_evaluation], partition_key=partition, instance=instance,
                                resources={"llm": llm, "embeddings": EmbeddingsResource()}, raise_on_error=False,
                                run_config={"ops": {"prompt__template_evaluation": {"config": {"limit": limit}}}})
    return result, server


def test_the_split_is_by_sha256_of_the_id():
    dev, test = load_evaluation_set("dev"), load_evaluation_set("test")
    assert dev and test and not {q.id for q in dev} & {q.id for q in test}
    assert all(split_of(q.id) == "test" for q in test) and split_of("series") == "test"
    with pytest.raises(ValueError, match="unknown split 'train'"):
        load_evaluation_set("train")


def test_a_worse_template_version_is_blocked(instance, monkeypatch):
    first, server = evaluate(instance, GOOD)
    assert first.success and len(server.requests) == 2
    body = server.requests[0]["body"]
    assert body.get("max_completion_tokens", body.get("max_tokens")) == 128  # the evaluation's own small limit
    meta = first.asset_materializations_for_node("prompt__template_evaluation")[0].metadata
    assert meta["format_compliance_rate"].value == 1.0 and meta["mean_similarity"].value > 0.5
    assert meta["cost_usd"].value == pytest.approx(2 * (11 * 0.15 + 7 * 0.60) / 1e6)
    assert meta["template_hash"].value == TEMPLATES["pandas"].hash and "note" not in meta
    [check] = first.get_asset_check_evaluations()
    assert check.passed and "no previous version" in check.description
    assert "previous_score" not in check.metadata and check.metadata["previous"].value.startswith("none")

    # A new version of the template (its text changed) whose answers are worse: the check blocks it.
    text = (TEMPLATES_DIR / "pandas.yaml").read_text().replace("Answer the questions", "Answer the question")
    changed = parse_template("pandas", text)
    assert changed.hash != TEMPLATES["pandas"].hash
    monkeypatch.setitem(TEMPLATES, "pandas", changed)
    worse, _ = evaluate(instance, "I do not know.")
    [check] = worse.get_asset_check_evaluations()
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert check.metadata["previous_score"].value == meta["score"].value > check.metadata["score"].value
    spec = next(iter(template_evaluation.check_specs))
    assert spec.blocking

    # The same worse version evaluated again compares with the first version still, and is still blocked;
    # a version as good as the first passes.
    again, _ = evaluate(instance, "I do not know.")
    assert not again.get_asset_check_evaluations()[0].passed
    better, _ = evaluate(instance, GOOD)
    assert better.get_asset_check_evaluations()[0].passed


def test_offline_the_packaged_model_runs_and_the_note_names_it(tmp_home, instance):
    result = dg.materialize([template_evaluation], partition_key="pandas_few_shot", instance=instance,
                            resources={"llm": LLMResource(), "embeddings": EmbeddingsResource()},
                            run_config={"ops": {"prompt__template_evaluation": {"config": {"limit": 1,
                                                                                           "max_tokens": 16}}}})
    meta = result.asset_materializations_for_node("prompt__template_evaluation")[0].metadata
    assert meta["note"].value.startswith(
        "local model: packaged:smollm2-135m-instruct (SmolLM2-135M-Instruct, 135M parameters, Q4_1 GGUF, Apache-2.0)")
    assert meta["cost_usd"].value == 0.0 and meta["questions"].value == 1 and meta["max_tokens"].value == 16
