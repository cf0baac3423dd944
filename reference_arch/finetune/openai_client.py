"""OpenAI for the finetune location: ``dagster-openai``'s ``OpenAIResource``, loaded when used.

``dagster_openai`` imports the whole ``openai`` package (~0.7 s, more than ``dagster`` itself), and a
code location must import fast; this resource holds the settings and builds the real
``OpenAIResource`` inside the asset that calls OpenAI.
"""

import contextlib
import os
from typing import Iterator, Optional

import dagster as dg


class OpenAIClientResource(dg.ConfigurableResource):
    """Settings of ``dagster_openai.OpenAIResource``; ``get_client`` yields its client."""

    api_key: Optional[str] = None  # a dg.EnvVar("OPENAI_API_KEY"), never a literal key
    base_url: Optional[str] = None  # any OpenAI-compatible server
    organization: Optional[str] = None
    project: Optional[str] = None
    timeout: float = 60.0  # seconds per request attempt; polling has its own total (poll_timeout_s)
    max_retries: int = 4

    @contextlib.contextmanager
    def get_client(self, context) -> Iterator:
        """The client, bounded by ``timeout`` and ``max_retries``; its errors leave the block as one
        ``dg.Failure`` line that never holds the key (``openai_errors``)."""
        from dagster_openai import OpenAIResource

        from reference_arch.common.openai_errors import openai_errors_explained

        key = self.api_key or os.environ.get("OPENAI_API_KEY")
        if not key:
            raise dg.Failure("the OpenAI backend needs OPENAI_API_KEY (or set the fine_tuning backend to 'local')")
        configured = OpenAIResource(api_key=key, base_url=self.base_url, organization=self.organization,
                                    project=self.project)
        with configured.process_config_and_initialize_cm() as resource, resource.get_client(context) as client:
            # dagster-openai builds the client without these; the client reads them per request.
            client.timeout, client.max_retries = self.timeout, self.max_retries
            with openai_errors_explained(dg.Failure, what="OpenAI fine-tuning", where=self.base_url,
                                         model="the fine-tuning model", timeout=self.timeout,
                                         max_retries=self.max_retries, key=key):
                yield client


def openai_client_resource() -> OpenAIClientResource:
    return OpenAIClientResource(
        api_key=dg.EnvVar("OPENAI_API_KEY") if os.environ.get("OPENAI_API_KEY") else None,
        base_url=os.environ.get("OPENAI_BASE_URL") or None,
    )
