"""Emptying the docs folder empties the index (a valid state), and the run says so: "no documents", where they
go, not "run `reference-arch materialize rag` first" (the command the user had just run)."""

import shutil

import dagster as dg

from reference_arch.common.questions import question_run_config
from reference_arch.common.vector_store import VectorStoreResource
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.rag.defs import checks, inference, ingestion
from reference_arch.rag.defs.index import open_collection
from reference_arch_tests.rag.conftest import processing_assets, range_tags, resources


def _docs_then_the_rest(instance):
    """What ``reference-arch materialize rag`` runs with docs the only source: the docs partitions, their pages,
    then documents to the answer in one run, with every check of the location."""
    assert dg.materialize([ingestion.docs_partitions], instance=instance).success
    keys = sorted(instance.get_dynamic_partitions("rag_docs"))
    if keys:
        assert dg.materialize([ingestion.docs_assets], instance=instance, tags=range_tags(keys[0], keys[-1])).success
    every_check = [c for c in vars(checks).values() if isinstance(c, dg.AssetChecksDefinition)]
    return dg.materialize([*processing_assets(), *every_check, inference.question, inference.retrieved_sources,
                           inference.answer], instance=instance, resources=resources(), raise_on_error=False,
                          run_config=question_run_config("rag", "Which option changes the chart colours?"))


def test_an_emptied_docs_folder_says_no_documents_and_where_they_go(rag_data, instance, monkeypatch):
    from reference_arch.cli.runs import first_failure

    monkeypatch.setenv("REFERENCE_ARCH_RAG_SOURCES", "docs")
    assert _docs_then_the_rest(instance).success

    shutil.rmtree(rag_data["docs"])
    rag_data["docs"].mkdir()
    result = _docs_then_the_rest(instance)
    collection = open_collection(EmbeddingsResource(provider="local"), VectorStoreResource())
    assert collection.count() == 0  # the index follows the sources: emptied
    line = first_failure(result)
    assert "materialize rag` first" not in line, line
    assert line == ("check rag/vector_index:index_has_documents failed: no documents: the enabled sources (docs) "
                    f"hold none, so the index is empty; add documents to {rag_data['docs']} (REFERENCE_ARCH_DOCS_DIR) "
                    "and run again"), line
    assert not [e for e in result.all_events if e.is_step_failure and "retrieved_sources" in e.step_key]

    # A question asked of that emptied index afterwards says the same, not "materialize rag first".
    asked = dg.materialize([inference.question, inference.retrieved_sources], instance=instance, raise_on_error=False,
                           resources=resources(), run_config=question_run_config("rag", "Which option changes colours?"))
    assert first_failure(asked).endswith("no documents: the enabled sources (docs) hold none, so the index is empty; "
                                         f"add documents to {rag_data['docs']} (REFERENCE_ARCH_DOCS_DIR) and run again")
