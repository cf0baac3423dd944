"""The RAG code location: GitHub, Slack and docs ingested with dlt -> documents -> chunks -> embeddings ->
vector index -> retrieval evaluation, and ``rag_question_job`` answering with cited sources."""

from reference_arch.common.locations import location_definitions
from reference_arch.common.resources import embeddings_resource, llm_resource
from reference_arch.common.vector_store import vector_store_resource
from reference_arch.rag import answers, automation, checks, evaluation, ingestion, processing

defs = location_definitions(
    assets=[ingestion.docs_partitions, ingestion.github_assets, ingestion.slack_assets, ingestion.docs_assets,
            processing.documents, processing.chunks, processing.chunk_embeddings, processing.vector_index,
            evaluation.retrieval_evaluation, answers.question, answers.retrieved_sources, answers.answer],
    asset_checks=[checks.chunks_within_token_limit, checks.chunk_ids_unique, checks.index_matches_chunks],
    jobs=[answers.rag_question_job, automation.rag_daily_ingestion_job, automation.rag_github_job,
          automation.rag_docs_job, automation.rag_index_job],
    schedules=[automation.rag_daily_schedule],
    sensors=[automation.rag_github_sensor, automation.rag_docs_sensor, automation.rag_automation_sensor],
    resources={"llm": llm_resource(), "embeddings": embeddings_resource(), "vector_store": vector_store_resource()},
)
