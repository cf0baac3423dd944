"""Questions that are not valid Unicode are repaired at the door: bytes the shell passed through
that are not UTF-8 (``printf 'What is a \\xff\\xfe series?'``) and a lone surrogate in run config,
for every question asset and every other way user text reaches a model."""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import pytest

from reference_arch.testkit.tiny_model import TINY_LLM
from reference_arch.cli import main
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.unicode_text import repair_text

# What Python makes of argv bytes b"What is a \xff\xfe series?" (PEP 383).
UNDECODABLE = os.fsdecode(b"What is a \xff\xfe series?")
LONE_SURROGATE = "What is a \ud83d series?"  # the JSON run config {"question": "What is a \\ud83d series?"}


def valid(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def test_repair_text():
    assert repair_text(UNDECODABLE) == ("What is a \ufffd\ufffd series?", 2)
    assert repair_text(LONE_SURROGATE) == ("What is a \ufffd series?", 1)
    assert repair_text(os.fsdecode("café ✓".encode())) == ("café ✓", 0)
    assert repair_text("split pair \ud83d\ude00")[0] == "split pair \U0001f600"
    assert repair_text(os.fsdecode(b"latin-1 caf\xe9")) == ("latin-1 caf\ufffd", 1)


def test_ask_prompt_with_undecodable_bytes_answers(registry_with_tiny_model, capsys):
    assert main(["ask", "prompt", UNDECODABLE, "--json"]) == 0
    out, err = capsys.readouterr()
    assert '"answer"' in out and "2 bytes that are not valid UTF-8" in err and len(err.strip().splitlines()) == 1


def test_the_real_command_line_with_undecodable_bytes(registry_with_tiny_model):
    """The console script, with the bytes as the shell passes them."""
    script = "import sys; from reference_arch.cli import main; sys.exit(main(sys.argv[1:]))"
    done = subprocess.run([sys.executable, "-c", script, "ask", "prompt", b"What is a \xff\xfe series?"],
                          capture_output=True, timeout=300, env={**os.environ})
    assert done.returncode == 0, done.stderr.decode(errors="replace")[-2000:]
    assert b"TypeError" not in done.stderr


@pytest.mark.parametrize("location", ["prompt", "rag", "finetune"])
def test_every_question_asset_repairs_run_config(tmp_home, location):
    """All three question assets: the lone surrogate never leaves the door."""
    from reference_arch.common.questions import question_run_config
    from reference_arch.finetune.defs import inference as finetune_inference
    from reference_arch.prompt.defs import prompt as prompt_assets
    from reference_arch.rag.defs import inference as rag_inference

    asset = {"prompt": prompt_assets.question, "rag": rag_inference.question,
             "finetune": finetune_inference.question}[location]
    result = dg.materialize_to_memory([asset], run_config=question_run_config(location, LONE_SURROGATE))
    value = result.asset_value(dg.AssetKey([location, "question"])).text
    assert value == "What is a \ufffd series?" and valid(value)
    [materialization] = result.get_asset_materialization_events()
    assert materialization.materialization.metadata["repaired_characters"].value == 1


def test_prompt_graph_with_a_lone_surrogate_in_run_config(registry_with_tiny_model):
    from reference_arch.prompt.defs import prompt
    from reference_arch.prompt.defs import inference as prompt_inference

    result = dg.materialize_to_memory(
        [prompt.question, prompt.prompt, prompt_inference.answer], resources={"llm": LLMResource(model=TINY_LLM)},
        run_config={"ops": {"prompt__question": {"config": {"question": LONE_SURROGATE}}}}, raise_on_error=False)
    assert result.success
    assert result.asset_value(dg.AssetKey(["prompt", "prompt"]))["messages"][0]["content"].endswith("What is a \ufffd series?")


def test_model_calls_repair_text_from_any_source(registry_with_tiny_model):
    """A system prompt (fine-tuning config) or a retrieved source holding a lone surrogate."""
    from reference_arch.common.vector_store.embeddings import EmbeddingsResource

    assert isinstance(LLMResource(model=TINY_LLM).generate([("system", "Be upbeat \udc80"), ("human", LONE_SURROGATE)]), str)
    assert EmbeddingsResource(provider="local").embed_array([LONE_SURROGATE]).shape == (1, 384)
