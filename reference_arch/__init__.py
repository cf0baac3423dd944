"""reference-arch: prompt engineering, RAG, fine-tuning and pretraining as Dagster asset graphs."""

from reference_arch.common.settings import apply_offline_env

# Before torch, transformers, datasets or dlt load anywhere in the process.
apply_offline_env()
