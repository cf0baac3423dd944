"""The resources every location shares, configured from the environment.

Exporting ``OPENAI_API_KEY`` (or ``OPENAI_BASE_URL``) switches the LLM to OpenAI or an OpenAI-compatible
server, ``REFERENCE_ARCH_EMBEDDINGS_PROVIDER=openai`` (and only it) the embeddings, ``WEAVIATE_URL`` the
vector store to Weaviate; keys reach Dagster as ``EnvVar``s, never as config values.
"""

from __future__ import annotations

import os

import dagster as dg

from reference_arch.common import settings
from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.common.llm.resource import LLMResource
from reference_arch.common.trainer.resource import TrainerResource


def _env(name: str):
    return dg.EnvVar(name) if os.environ.get(name) else None


def llm_resource(**overrides) -> LLMResource:
    config = dict(
        api_key=_env("OPENAI_API_KEY"),
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        model=settings.value("llm_model"),
    )
    return LLMResource(**{**config, **overrides})


def embeddings_resource(**overrides) -> EmbeddingsResource:
    """Local MiniLM unless ``REFERENCE_ARCH_EMBEDDINGS_PROVIDER=openai``; the key and base URL are the
    LLM's (``OPENAI_API_KEY``, ``OPENAI_BASE_URL``) and are used only by the openai provider."""
    config = dict(
        api_key=_env("OPENAI_API_KEY"),
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
        provider=settings.value("embeddings_provider"),
        model=settings.value("embeddings_model"),
    )
    return EmbeddingsResource(**{**config, **overrides})


def trainer_resource(**overrides) -> TrainerResource:
    """Where training runs, from ``REFERENCE_ARCH_DEVICE`` and ``REFERENCE_ARCH_TRAINER_LAUNCHER``,
    ``_PROCESSES`` and ``_IMAGE``, and where it reports (``_REPORT_TO``): the assets that train are the same
    whichever launcher runs them."""
    from reference_arch.common.trainer.remote import K8sTrainerPod

    image = settings.value("trainer_image")
    config = dict(device=settings.value("device"), launcher=settings.value("trainer_launcher"),
                  nproc_per_node=settings.value("trainer_processes"), report_to=settings.value("trainer_report_to"),
                  pod=K8sTrainerPod(image=image) if image else None)
    return TrainerResource(**{**config, **overrides})
