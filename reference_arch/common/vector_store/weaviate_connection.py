"""Reaching Weaviate: the client for a ``VectorStoreResource``, its API key, and one clear line for
a call that timed out or a key the server refused."""

from __future__ import annotations

import functools
import os
from typing import TYPE_CHECKING, Optional

from reference_arch.common.vector_store.collection import VectorStoreError

if TYPE_CHECKING:
    from reference_arch.common.vector_store.resource import VectorStoreResource


def api_key(store: VectorStoreResource) -> Optional[str]:
    """The resource's key (its ``EnvVar`` resolved), else ``WEAVIATE_API_KEY``."""
    import dagster as dg

    key = store.api_key
    if isinstance(key, dg.EnvVar):  # a resource used outside a Dagster run holds the EnvVar, i.e. its *name*
        key = key.get_value()
    return key or os.environ.get("WEAVIATE_API_KEY")


def connect(store: VectorStoreResource):
    """A connected ``weaviate`` client for the resource's URL, gRPC port, key and timeouts."""
    from urllib.parse import urlparse

    import weaviate
    from weaviate.classes.init import AdditionalConfig, Auth, Timeout
    from weaviate.exceptions import UnexpectedStatusCodeError

    url = urlparse(store._weaviate_url())
    secure = url.scheme == "https"
    grpc_port = store.grpc_port or int(os.environ.get("WEAVIATE_GRPC_PORT", "50051"))
    key, timeout = api_key(store), store.timeout_s
    try:
        return weaviate.connect_to_custom(
            http_host=url.hostname, http_port=url.port or (443 if secure else 80), http_secure=secure,
            grpc_host=url.hostname, grpc_port=grpc_port, grpc_secure=secure,
            auth_credentials=Auth.api_key(key) if key else None,
            additional_config=AdditionalConfig(timeout=Timeout(init=min(10, timeout), query=timeout,
                                                               insert=2 * timeout)),
            skip_init_checks=True,
        )
    except UnexpectedStatusCodeError as e:
        if e.status_code not in (401, 403):
            raise
        # from None: the client's error carries the request along, its Authorization header too.
        where = f"Weaviate at {store.location()}"
        raise VectorStoreError(f"{where} refused the API key (HTTP {e.status_code}): check WEAVIATE_API_KEY"
                               if key else f"{where} needs an API key: set WEAVIATE_API_KEY") from None


def weaviate_errors(method):
    """One line for a Weaviate call that timed out; any error text holding a secret is scrubbed
    (the client's errors can carry the request, its Authorization header too)."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        from reference_arch.common.secrets import scrubbed

        try:
            with scrubbed(api_key(self.store), error=VectorStoreError):
                return method(self, *args, **kwargs)
        except Exception as err:  # noqa: BLE001 - timeouts translated, the rest re-raised
            from weaviate.exceptions import WeaviateTimeoutError

            text = f"{type(err).__name__}: {err}"
            if isinstance(err, (WeaviateTimeoutError, TimeoutError)) or any(
                    t in text for t in ("DEADLINE_EXCEEDED", "ReadTimeout", "ConnectTimeout", "timed out")):
                raise VectorStoreError(
                    f"Weaviate at {self.store.location()} timed out ({method.__name__}): no answer within "
                    f"{self.store.timeout_s:g} s (raise the vector store's timeout_s for a slow server)") from None
            raise
    return wrapper


def cosine():
    from weaviate.classes.config import VectorDistances

    return VectorDistances.COSINE
