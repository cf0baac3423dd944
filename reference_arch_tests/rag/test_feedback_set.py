"""An approved RAG answer becomes a retrieval regression case: a real question run on a tiny index, judged
``up`` through the CLI's feedback function, written by ``prompt/feedback_eval_cases``, then scored by
``rag/retrieval_evaluation`` as the ``feedback`` question set against the documents the answer cited."""

from __future__ import annotations

import dagster as dg

from reference_arch_tests.rag.conftest import metadata, resources, run_ingestion, run_processing


def test_an_approved_rag_answer_is_scored_by_the_retrieval_evaluation(rag_data):
    from reference_arch.cli.answers import ask
    from reference_arch.cli.feedback import give_feedback
    from reference_arch.common.feedback_cases import regression_cases
    from reference_arch.prompt.definitions import defs as prompt_defs
    from reference_arch.rag.defs import evaluation

    with dg.DagsterInstance.ephemeral() as instance:
        run_ingestion(instance)
        assert run_processing(instance).success
        record = ask("rag", "How do I install it?", instance)
        assert record["sources"] and record["answerer"] == "extractive"
        recorded = give_feedback(record["run_id"], "up", "", instance)
        assert (recorded["target"], recorded["up"], recorded["approval_rate"]) == ("rag", 1, 1.0)
        # run as every CLI run is: a later command fails it if this process is killed outright
        from reference_arch.common.pools import IN_PROCESS_TAG

        assert instance.get_run_by_id(recorded["feedback_run_id"]).tags.get(IN_PROCESS_TAG) == "true"
        assert prompt_defs.resolve_job_def("feedback_eval_cases_job").execute_in_process(instance=instance).success
        (case,) = regression_cases("rag")
        cited = list(dict.fromkeys(s["document_id"] for s in record["sources"]))
        assert case["relevant"] == cited and case["reference"] == record["answer"]

        result = dg.materialize([evaluation.retrieval_evaluation], instance=instance, resources=resources(),
                                run_config={"ops": {"rag__retrieval_evaluation": {"config": {"baseline": False}}}})
        meta = metadata(result, "retrieval_evaluation")
        assert meta["feedback/dev/judged"] + meta["feedback/test/judged"] == 1
        split = "dev" if meta["feedback/dev/judged"] else "test"
        # the mode that answered finds every document it cited again: the case holds while retrieval does
        assert meta[f"feedback/{split}/{record['mode']}/recall@5"] == 1.0
