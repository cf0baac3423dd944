"""An in-process Weaviate for tests: the REST and gRPC APIs the v4 Python client speaks.

No Weaviate binary runs on the test machines, so this server stands in for one, the way
``fake_openai`` stands in for OpenAI. It implements what ``WeaviateCollection`` uses, with real
semantics over an in-memory store (objects: uuid, properties, one vector):

* REST (``http.server``): ``/v1/meta``, ``/v1/.well-known/{ready,live,openid-configuration}``,
  ``/v1/schema`` (create, list) and ``/v1/schema/{Class}`` (get, delete), with Weaviate's
  defaults filled in and its naming rules (``id`` is reserved) enforced.
* gRPC (the client's own ``weaviate.proto.v1`` stubs): ``Search`` (list with offset or ``after``
  cursor, ``near_vector`` by cosine / dot / l2-squared distance, ``bm25`` (BM25 with k1/b from the
  schema, per-property tokenization, English stopwords), ``hybrid`` (relative-score or ranked
  fusion of the two, weighted by ``alpha``)), ``BatchObjects`` (upserts; per-object errors for
  unknown properties and vector-length mismatches), ``BatchDelete`` and ``Aggregate`` (count,
  count per group of a text property).
* Filters: ``Equal``, ``NotEqual``, ``ContainsAny``, ``ContainsAll``, ``And``, ``Or`` on text
  properties (matched through the property's tokenization, as Weaviate does) and on ``_id``.
* ``QUERY_MAXIMUM_RESULTS`` (``max_results``): ``offset + limit`` beyond it fails, and one batch
  delete removes at most that many objects, as in Weaviate.
* API-key auth (``Authorization: Bearer <key>``) on REST (401) and gRPC (UNAUTHENTICATED).

Anything else fails loudly: an unknown REST route answers 501, a request field the fake does not
implement answers gRPC UNIMPLEMENTED, naming the field. ``calls`` records what was hit.
"""

from __future__ import annotations

import json
import math
import re
import socket
import struct
import threading
import time
import uuid as uuid_lib
from collections import Counter
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Callable, Iterable

import grpc
from google.protobuf import json_format
from weaviate.proto.v1 import (
    aggregate_pb2,
    base_pb2,
    base_search_pb2,
    batch_delete_pb2,
    batch_pb2,
    properties_pb2,
    search_get_pb2,
    weaviate_pb2_grpc,
)

VERSION = "1.32.0"  # >= 1.29: the client aggregates over gRPC and sends vectors as typed bytes
RESERVED = {"id", "_id", "_additional"}
# Lucene's classic English stop set, close to the core of Weaviate's "en" preset.
STOPWORDS = set("a an and are as at be but by for if in into is it no not of on or such that the their then "
                "there these they this to was will with".split())
HNSW_DEFAULTS = {"skip": False, "cleanupIntervalSeconds": 300, "maxConnections": 32, "efConstruction": 128,
                 "ef": -1, "dynamicEfMin": 100, "dynamicEfMax": 500, "dynamicEfFactor": 8,
                 "vectorCacheMaxObjects": 1_000_000_000_000, "flatSearchCutoff": 40_000, "distance": "cosine"}
DISTANCES: dict[str, Callable[[list[float], list[float]], float]] = {
    "cosine": lambda a, b: 1.0 - _dot(a, b) / ((_norm(a) * _norm(b)) or 1.0),
    "dot": lambda a, b: -_dot(a, b),
    "l2-squared": lambda a, b: sum((x - y) ** 2 for x, y in zip(a, b)),
}
Op = base_pb2.Filters


def _dot(a, b) -> float:
    return sum(x * y for x, y in zip(a, b))


def _norm(a) -> float:
    return math.sqrt(_dot(a, a))


class Unsupported(Exception):
    """A request the fake does not implement (UNIMPLEMENTED / 501)."""


class Invalid(Exception):
    """A request Weaviate itself would refuse (INVALID_ARGUMENT / 422)."""


def tokenize(text: str, tokenization: str) -> list[str]:
    """Weaviate's tokenizations for text (the ones without language models)."""
    if tokenization == "word":
        return [t for t in re.split(r"[^0-9A-Za-z]+", text.lower()) if t]
    if tokenization == "lowercase":
        return text.lower().split()
    if tokenization == "whitespace":
        return text.split()
    if tokenization == "field":
        return [text.strip()] if text.strip() else []
    raise Unsupported(f"tokenization {tokenization!r} not implemented by the fake Weaviate")


def _only(message, allowed: Iterable[str], where: str) -> None:
    """Refuse any set field outside ``allowed``: silently ignoring one would give wrong answers."""
    extra = sorted(f.name for f, _ in message.ListFields() if f.name not in set(allowed))
    if extra:
        raise Unsupported(f"{where}: {', '.join(extra)} not implemented by the fake Weaviate")


class Collection:
    def __init__(self, schema: dict):
        self.schema = schema
        self.props = {p["name"]: p for p in schema["properties"]}
        (self.vector_name, vector_config), = schema["vectorConfig"].items()
        self.distance = DISTANCES[vector_config["vectorIndexConfig"]["distance"]]
        self.objects: dict[str, dict] = {}  # uuid -> {properties, vector, created, updated}; insertion = docID order
        self.dimension: int | None = None

    def prop(self, name: str, need: str = "") -> dict:
        if name not in self.props:
            raise Invalid(f"no such prop with name '{name}' found in class '{self.schema['class']}' in the schema")
        prop = self.props[name]
        if need and not prop.get(need):
            raise Invalid(f"property '{name}' of class '{self.schema['class']}' has {need} disabled")
        return prop


class FakeWeaviate:
    """``with FakeWeaviate() as server: server.url, server.grpc_port``."""

    def __init__(self, api_key: str | None = None, max_results: int = 10_000, default_limit: int = 10):
        self.api_key, self.max_results, self.default_limit = api_key, max_results, default_limit
        self.collections: dict[str, Collection] = {}
        self.calls: Counter[str] = Counter()  # "GET /v1/meta", "grpc Search", ...
        self.lock = threading.RLock()
        self._http: ThreadingHTTPServer | None = None
        self._grpc: grpc.Server | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> "FakeWeaviate":
        self._http = ThreadingHTTPServer(("127.0.0.1", 0), _rest_handler(self))
        self._http.daemon_threads = True
        threading.Thread(target=self._http.serve_forever, args=(0.05,), daemon=True, name="fake-weaviate-rest").start()
        self._grpc = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        weaviate_pb2_grpc.add_WeaviateServicer_to_server(_Servicer(self), self._grpc)
        self.grpc_port = self._grpc.add_insecure_port("127.0.0.1:0")
        self._grpc.start()
        self.http_port = self._http.server_address[1]
        return self

    def stop(self) -> None:
        if self._grpc is not None:
            self._grpc.stop(grace=None)
        if self._http is not None:
            self._http.shutdown()
            self._http.server_close()
        self._grpc = self._http = None

    def __enter__(self) -> "FakeWeaviate":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def authorized(self, header: str | None) -> bool:
        return self.api_key is None or header == f"Bearer {self.api_key}"

    def collection(self, name: str) -> Collection:
        if name not in self.collections:
            raise Invalid(f"class {name} not found")
        return self.collections[name]

    # -- schema ------------------------------------------------------------------------------
    def create_collection(self, body: dict) -> dict:
        name = body.get("class", "")
        if not re.fullmatch(r"[A-Z][_0-9A-Za-z]*", name):
            raise Invalid(f"'{name}' is not a valid class name")
        if name in self.collections:
            raise Invalid(f"class name {name} already exists")
        unknown = set(body) - {"class", "description", "properties", "vectorConfig", "invertedIndexConfig",
                               "replicationConfig", "shardingConfig", "multiTenancyConfig"}
        if unknown:
            raise Unsupported(f"schema fields {sorted(unknown)} not implemented by the fake Weaviate")
        properties = []
        for prop in body.get("properties", []):
            if prop["name"] in RESERVED or not re.fullmatch(r"[_A-Za-z][_0-9A-Za-z]*", prop["name"]):
                raise Invalid(f"'{prop['name']}' is a reserved or invalid property name")
            if prop.get("dataType") != ["text"]:
                raise Unsupported(f"property {prop['name']}: only dataType text is implemented by the fake")
            prop = {"indexFilterable": True, "indexSearchable": True, "indexRangeFilters": False,
                    "tokenization": "word", **prop}
            tokenize("", prop["tokenization"])  # unknown tokenizations refused now, not at query time
            properties.append(prop)
        vectors = body.get("vectorConfig") or {}
        if len(vectors) != 1:
            raise Unsupported("the fake Weaviate implements exactly one named vector per collection")
        (vector_name, vector), = vectors.items()
        if vector.get("vectorizer") != {"none": {}} or vector.get("vectorIndexType", "hnsw") != "hnsw":
            raise Unsupported("the fake Weaviate implements self-provided vectors in an hnsw index only")
        index = {**HNSW_DEFAULTS, **vector.get("vectorIndexConfig", {})}
        if index["distance"] not in DISTANCES:
            raise Unsupported(f"distance {index['distance']!r} not implemented by the fake Weaviate")
        inverted = body.get("invertedIndexConfig", {})
        schema = {
            "class": name, "description": body.get("description"), "properties": properties,
            "vectorConfig": {vector_name: {"vectorizer": {"none": {}}, "vectorIndexType": "hnsw",
                                           "vectorIndexConfig": index}},
            "invertedIndexConfig": {"bm25": {"b": 0.75, "k1": 1.2, **inverted.get("bm25", {})},
                                    "cleanupIntervalSeconds": 60,
                                    "stopwords": {"preset": "en", "additions": None, "removals": None,
                                                  **inverted.get("stopwords", {})}},
            "multiTenancyConfig": {"enabled": False, "autoTenantCreation": False, "autoTenantActivation": False},
            "replicationConfig": {"factor": 1, "asyncEnabled": False, "deletionStrategy": "NoAutomatedResolution"},
            "shardingConfig": {"virtualPerPhysical": 128, "desiredCount": 1, "actualCount": 1,
                               "desiredVirtualCount": 128, "actualVirtualCount": 128, "key": "_id",
                               "strategy": "hash", "function": "murmur3"},
        }
        self.collections[name] = Collection(schema)
        return schema


# -- REST --------------------------------------------------------------------------------------

def _rest_handler(server: FakeWeaviate):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # the client keeps connections alive: every reply has a length

        def setup(self) -> None:
            super().setup()
            # Headers and body go out in separate writes: without this, Nagle's algorithm and the
            # client's delayed ACK add ~40 ms to every keep-alive request.
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

        def log_message(self, *args) -> None:  # quiet
            pass

        def _send(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def _handle(self, method: str) -> None:
            path = self.path.split("?", 1)[0].rstrip("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = json.loads(self.rfile.read(length) or b"null") if length else None
            server.calls[f"{method} {path}"] += 1
            if path in ("/v1/.well-known/ready", "/v1/.well-known/live"):
                return self._send(200)
            if path == "/v1/.well-known/openid-configuration":
                return self._send(404)  # no OIDC: API keys only
            if not server.authorized(self.headers.get("Authorization")):
                return self._send(401, {"code": 401, "message": "unauthorized: invalid or missing api key"})
            try:
                with server.lock:
                    return self._route(method, path, body)
            except Invalid as e:
                return self._send(422, {"error": [{"message": str(e)}]})
            except Unsupported as e:
                return self._send(501, {"error": [{"message": str(e)}]})

        def _route(self, method: str, path: str, body: Any) -> None:
            match = re.fullmatch(r"/v1/schema/([^/]+)", path)
            if method == "GET" and path == "/v1/meta":
                return self._send(200, {"hostname": "http://[::]:8080", "version": VERSION, "modules": {},
                                        "grpcMaxMessageSize": 104858000})
            if method == "GET" and path == "/v1/schema":
                return self._send(200, {"classes": [c.schema for c in server.collections.values()]})
            if method == "POST" and path == "/v1/schema":
                return self._send(200, server.create_collection(body or {}))
            if match and method == "GET":
                found = server.collections.get(match.group(1))
                return self._send(200, found.schema) if found else self._send(404)
            if match and method == "DELETE":  # Weaviate answers 200 for a missing class too
                server.collections.pop(match.group(1), None)
                return self._send(200)
            raise Unsupported(f"{method} {path} not implemented by the fake Weaviate")

        def do_GET(self):
            self._handle("GET")

        def do_POST(self):
            self._handle("POST")

        def do_PUT(self):
            self._handle("PUT")

        def do_DELETE(self):
            self._handle("DELETE")

        def do_HEAD(self):
            self._handle("HEAD")

        def do_PATCH(self):
            self._handle("PATCH")

    return Handler


# -- gRPC --------------------------------------------------------------------------------------

def _rpc(method):
    """Auth, the store lock, call counting, and exceptions mapped to gRPC status codes."""
    def wrapper(self: "_Servicer", request, context):
        server = self.server
        server.calls[f"grpc {method.__name__}"] += 1
        metadata = dict(context.invocation_metadata())
        if not server.authorized(metadata.get("authorization")):
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "unauthorized: invalid or missing api key")
        try:
            with server.lock:
                return method(self, request, context)
        except Unsupported as e:
            context.abort(grpc.StatusCode.UNIMPLEMENTED, str(e))
        except Invalid as e:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(e))
    wrapper.__name__ = method.__name__
    return wrapper


def _unpack(data: bytes) -> list[float]:
    return list(struct.unpack(f"<{len(data) // 4}f", data))


def _query_vector(message, where: str) -> list[float] | None:
    """The single vector of a NearVector / Hybrid message (raw bytes, or one typed entry)."""
    if message.vector_bytes:
        return _unpack(message.vector_bytes)
    if len(message.vectors) == 1 and message.vectors[0].type in (
            base_pb2.Vectors.VECTOR_TYPE_UNSPECIFIED, base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32):
        return _unpack(message.vectors[0].vector_bytes)
    if len(message.vector):
        return list(message.vector)
    if len(message.vectors):
        raise Unsupported(f"{where}: multi-vectors not implemented by the fake Weaviate")
    return None


def _check_target(collection: Collection, message) -> None:
    targets = list(message.target_vectors) + (list(message.targets.target_vectors)
                                              if message.HasField("targets") else [])
    if any(t != collection.vector_name for t in targets):
        raise Invalid(f"target vector(s) {targets} not found: the collection has '{collection.vector_name}'")


class _Servicer(weaviate_pb2_grpc.WeaviateServicer):
    def __init__(self, server: FakeWeaviate):
        self.server = server

    # filters ----------------------------------------------------------------------------
    def _matcher(self, collection: Collection, f: base_pb2.Filters) -> Callable[[str, dict], bool]:
        _only(f, {"operator", "on", "filters", "target", "value_text", "value_text_array"}, "filter")
        if f.operator in (Op.OPERATOR_AND, Op.OPERATOR_OR):
            parts = [self._matcher(collection, sub) for sub in f.filters]
            combine = all if f.operator == Op.OPERATOR_AND else any
            return lambda uid, obj: combine(p(uid, obj) for p in parts)
        if f.HasField("target"):
            if f.target.WhichOneof("target") != "property":
                raise Unsupported("filters on references or counts not implemented by the fake Weaviate")
            name = f.target.property
        else:
            name = f.on[0] if len(f.on) == 1 else ""
        values = [f.value_text] if f.HasField("value_text") else list(f.value_text_array.values)
        if name == "_id":  # uuids compare as uuids, whatever their spelling
            wanted = {str(uuid_lib.UUID(v)) for v in values}
            value_of, tokens_of = (lambda uid, obj: uid), (lambda s: [s])
            wanted_tokens = [[w] for w in wanted]
        else:
            prop = collection.prop(name, need="indexFilterable")
            tokens_of = lambda s, t=prop["tokenization"]: tokenize(s, t)  # noqa: E731
            value_of = lambda uid, obj: obj["properties"].get(name) or ""  # noqa: E731
            wanted_tokens = [tokens_of(v) for v in values]
        op = f.operator
        if op in (Op.OPERATOR_EQUAL, Op.OPERATOR_NOT_EQUAL):
            # Equal on tokenized text: every token of the value occurs in the property.
            def equal(uid, obj):
                have = set(tokens_of(value_of(uid, obj)))
                return bool(wanted_tokens[0]) and set(wanted_tokens[0]) <= have
            return equal if op == Op.OPERATOR_EQUAL else (lambda uid, obj: not equal(uid, obj))
        if op in (Op.OPERATOR_CONTAINS_ANY, Op.OPERATOR_CONTAINS_ALL):
            flat = {t for ts in wanted_tokens for t in ts}
            if op == Op.OPERATOR_CONTAINS_ANY:
                return lambda uid, obj: bool(flat & set(tokens_of(value_of(uid, obj))))
            return lambda uid, obj: flat <= set(tokens_of(value_of(uid, obj)))
        raise Unsupported(f"filter operator {Op.Operator.Name(op)} not implemented by the fake Weaviate")

    def _filtered(self, collection: Collection, request, field: str = "filters") -> list[tuple[str, dict]]:
        items = list(collection.objects.items())
        if request.HasField(field):
            match = self._matcher(collection, getattr(request, field))
            items = [(uid, obj) for uid, obj in items if match(uid, obj)]
        return items

    def _page(self, limit: int, offset: int) -> int:
        limit = limit or self.server.default_limit
        if offset + limit > self.server.max_results:
            raise Invalid("explorer: list class: search: invalid pagination params: query maximum results exceeded")
        return limit

    # searches ---------------------------------------------------------------------------
    def _vector_ranked(self, collection, items, vector, max_distance=None) -> list[tuple[str, dict, float]]:
        if collection.dimension is not None and len(vector) != collection.dimension:
            raise Invalid(f"vector search: knn search: vector lengths don't match: {len(vector)} vs "
                          f"{collection.dimension}")
        ranked = sorted(((uid, obj, collection.distance(vector, obj["vector"])) for uid, obj in items),
                        key=lambda r: r[2])
        return [r for r in ranked if max_distance is None or r[2] <= max_distance]

    def _bm25_ranked(self, collection, items, query: str, properties, operator=None) -> list[tuple[str, dict, float]]:
        names = list(properties) or [n for n, p in collection.props.items() if p["indexSearchable"]]
        if any("^" in n for n in names):
            raise Unsupported("property boosts (name^weight) not implemented by the fake Weaviate")
        props = [collection.prop(n, need="indexSearchable") for n in names]
        config = collection.schema["invertedIndexConfig"]
        k1, b = config["bm25"]["k1"], config["bm25"]["b"]
        stop = (STOPWORDS | set(config["stopwords"]["additions"] or ())) - set(config["stopwords"]["removals"] or ())
        # Corpus statistics (N, document frequencies, mean lengths) over the whole collection, as
        # Weaviate's inverted index keeps them; only the filtered objects are scored.
        docs = {uid: {p["name"]: tokenize(obj["properties"].get(p["name"]) or "", p["tokenization"]) for p in props}
                for uid, obj in collection.objects.items()}
        terms = sorted({t for p in props for t in tokenize(query, p["tokenization"])} - stop)
        n = len(docs) or 1
        avg = {p["name"]: (sum(len(d[p["name"]]) for d in docs.values()) / n) or 1.0 for p in props}
        df = {t: sum(any(t in tokens for tokens in d.values()) for d in docs.values()) for t in terms}
        need = 1  # operator OR (the default): any term
        if operator is not None and operator.operator == base_search_pb2.SearchOperatorOptions.OPERATOR_AND:
            need = len(terms)
        elif operator is not None and operator.HasField("minimum_or_tokens_match"):
            need = operator.minimum_or_tokens_match
        ranked = []
        for uid, obj in items:
            score, matched = 0.0, 0
            for t in terms:
                idf = math.log(1 + (n - df[t] + 0.5) / (df[t] + 0.5))
                hit = False
                for name, tokens in docs[uid].items():
                    tf = tokens.count(t)
                    if tf:
                        hit = True
                        score += idf * tf * (k1 + 1) / (tf + k1 * (1 - b + b * len(tokens) / avg[name]))
                matched += hit
            if matched and matched >= need:
                ranked.append((uid, obj, score))
        return sorted(ranked, key=lambda r: -r[2])

    def _hybrid_ranked(self, collection, items, h: base_search_pb2.Hybrid, want: int):
        _only(h, {"query", "properties", "alpha", "fusion_type", "vector_bytes", "vectors", "vector",
                  "target_vectors", "targets", "vector_distance", "bm25_search_operator"}, "hybrid")
        _check_target(collection, h)
        alpha, pool = h.alpha, max(want, 100)  # each sub-search keeps its best `pool` (Weaviate: >= 100)
        vector = _query_vector(h, "hybrid")
        if vector is None and alpha > 0:
            raise Invalid("hybrid: no vector given and the collection has no vectorizer (vectorizer: none)")
        operator = h.bm25_search_operator if h.HasField("bm25_search_operator") else None
        keyword = self._bm25_ranked(collection, items, h.query, h.properties, operator)[:pool] if alpha < 1 else []
        dense = self._vector_ranked(collection, items, vector,
                                    h.vector_distance if h.HasField("vector_distance") else None)[:pool] \
            if alpha > 0 else []
        fused: dict[str, list] = {}
        if h.fusion_type == base_search_pb2.Hybrid.FUSION_TYPE_RANKED:
            for weight, ranked in ((alpha, dense), (1 - alpha, keyword)):
                for rank, (uid, obj, _) in enumerate(ranked):
                    fused.setdefault(uid, [obj, 0.0])[1] += weight / (rank + 60)
        else:  # relative score (Weaviate's default): min-max normalise each list, higher = better
            for weight, ranked, sign in ((alpha, dense, -1.0), (1 - alpha, keyword, 1.0)):
                scores = [sign * s for _, _, s in ranked]
                low, high = (min(scores), max(scores)) if scores else (0.0, 0.0)
                for (uid, obj, _), s in zip(ranked, scores):
                    normalised = (s - low) / (high - low) if high > low else 1.0
                    fused.setdefault(uid, [obj, 0.0])[1] += weight * normalised
        return sorted(((uid, obj, score) for uid, (obj, score) in fused.items()), key=lambda r: -r[2])

    @_rpc
    def Search(self, request: search_get_pb2.SearchRequest, context):
        _only(request, {"collection", "consistency_level", "properties", "metadata", "limit", "offset", "after",
                        "filters", "near_vector", "bm25_search", "hybrid_search",
                        "uses_123_api", "uses_125_api", "uses_127_api"}, "search")
        collection = self.server.collection(request.collection)
        limit = self._page(request.limit, request.offset)
        items = self._filtered(collection, request)
        distance_of: dict[str, float] = {}
        score_of: dict[str, float] = {}
        if request.HasField("near_vector"):
            nv = request.near_vector
            _only(nv, {"vector_bytes", "vectors", "vector", "distance", "certainty", "target_vectors", "targets"},
                  "near_vector")
            _check_target(collection, nv)
            max_distance = nv.distance if nv.HasField("distance") else (
                2 * (1 - nv.certainty) if nv.HasField("certainty") else None)
            ranked = self._vector_ranked(collection, items, _query_vector(nv, "near_vector"), max_distance)
            distance_of = {uid: d for uid, _, d in ranked}
        elif request.HasField("bm25_search"):
            bm = request.bm25_search
            _only(bm, {"query", "properties", "search_operator"}, "bm25")
            ranked = self._bm25_ranked(collection, items, bm.query, bm.properties,
                                       bm.search_operator if bm.HasField("search_operator") else None)
            score_of = {uid: s for uid, _, s in ranked}
        elif request.HasField("hybrid_search"):
            ranked = self._hybrid_ranked(collection, items, request.hybrid_search, request.offset + limit)
            score_of = {uid: s for uid, _, s in ranked}
        elif request.after:
            if request.HasField("filters") or request.offset:
                raise Invalid("cursor api: invalid 'after' parameter: offset and where filter cannot be set "
                              "with after")
            after = str(uuid_lib.UUID(request.after))
            ranked = [(uid, obj, 0.0) for uid, obj in sorted(items) if uid > after]
        elif request.HasField("filters"):
            ranked = [(uid, obj, 0.0) for uid, obj in items]  # filtered lists come in docID (insertion) order
        else:
            ranked = [(uid, obj, 0.0) for uid, obj in sorted(items)]  # unfiltered lists walk the uuid-keyed store
        page = ranked[request.offset:request.offset + limit]
        return search_get_pb2.SearchReply(took=0.0, results=[
            self._result(collection, request, uid, obj, distance_of.get(uid), score_of.get(uid))
            for uid, obj, _ in page])

    def _result(self, collection, request, uid, obj, distance, score) -> search_get_pb2.SearchResult:
        props = request.properties
        if request.HasField("properties"):
            _only(props, {"non_ref_properties", "return_all_nonref_properties"}, "return properties")
        names = (list(collection.props) if not request.HasField("properties") or props.return_all_nonref_properties
                 else list(props.non_ref_properties))
        values = {n: properties_pb2.Value(text_value=obj["properties"][n]) for n in names
                  if obj["properties"].get(n) is not None}
        m = request.metadata
        if request.HasField("metadata"):
            _only(m, {"uuid", "vector", "vectors", "distance", "certainty", "score", "creation_time_unix",
                      "last_update_time_unix", "is_consistent"}, "return metadata")
        meta = search_get_pb2.MetadataResult(id=uid, id_as_bytes=uuid_lib.UUID(uid).bytes)
        if m.distance and distance is not None:
            meta.distance, meta.distance_present = distance, True
        if m.certainty and distance is not None and collection.distance is DISTANCES["cosine"]:
            meta.certainty, meta.certainty_present = 1 - distance / 2, True
        if m.score and score is not None:
            meta.score, meta.score_present = score, True
        if m.creation_time_unix:
            meta.creation_time_unix, meta.creation_time_unix_present = obj["created"], True
        if m.last_update_time_unix:
            meta.last_update_time_unix, meta.last_update_time_unix_present = obj["updated"], True
        if m.is_consistent:
            meta.is_consistent, meta.is_consistent_present = True, True
        packed = struct.pack(f"<{len(obj['vector'])}f", *obj["vector"])
        if m.vector:
            meta.vector_bytes = packed
        for name in m.vectors:
            if name != collection.vector_name:
                raise Invalid(f"vector '{name}' not found: the collection has '{collection.vector_name}'")
            meta.vectors.append(base_pb2.Vectors(name=name, vector_bytes=packed,
                                                 type=base_pb2.Vectors.VECTOR_TYPE_SINGLE_FP32))
        return search_get_pb2.SearchResult(
            metadata=meta, properties=search_get_pb2.PropertiesResult(
                target_collection=collection.schema["class"], non_ref_props=properties_pb2.Properties(fields=values)))

    # writes -----------------------------------------------------------------------------
    @_rpc
    def BatchObjects(self, request: batch_pb2.BatchObjectsRequest, context):
        _only(request, {"objects", "consistency_level"}, "batch")
        errors = []
        for index, obj in enumerate(request.objects):
            _only(obj, {"uuid", "collection", "properties", "vector_bytes", "vectors", "vector"}, "batch object")
            if obj.HasField("properties"):
                _only(obj.properties, {"non_ref_properties"}, "batch object properties")
            try:
                self._upsert(obj)
            except Invalid as e:  # per object, as Weaviate reports them
                errors.append(batch_pb2.BatchObjectsReply.BatchError(index=index, error=str(e)))
        return batch_pb2.BatchObjectsReply(took=0.0, errors=errors)

    def _upsert(self, obj: batch_pb2.BatchObject) -> None:
        collection = self.server.collection(obj.collection)
        properties = json_format.MessageToDict(obj.properties.non_ref_properties)
        for name, value in properties.items():
            collection.prop(name)
            if not isinstance(value, str):
                raise Invalid(f"invalid text property '{name}' on class '{obj.collection}': not a string, "
                              f"but {type(value).__name__}")
        vectors = {v.name or collection.vector_name: v for v in obj.vectors}
        if set(vectors) - {collection.vector_name}:
            raise Invalid(f"unknown vector(s) {sorted(set(vectors) - {collection.vector_name})}")
        vector = _unpack(obj.vector_bytes) if obj.vector_bytes else (
            _unpack(vectors[collection.vector_name].vector_bytes) if vectors else list(obj.vector))
        if not vector:
            raise Invalid("no vector given and the collection has no vectorizer (vectorizer: none)")
        if collection.dimension is not None and len(vector) != collection.dimension:
            raise Invalid(f"insert to vector index: new node has a vector with length {len(vector)}. "
                          f"Existing nodes have vectors with length {collection.dimension}")
        uid = str(uuid_lib.UUID(obj.uuid))
        now = int(time.time() * 1000)
        old = collection.objects.pop(uid, None)  # an update gets a new docID: it moves to the end
        collection.objects[uid] = {"properties": properties, "vector": vector,
                                   "created": old["created"] if old else now, "updated": now}
        collection.dimension = len(vector)

    @_rpc
    def BatchDelete(self, request: batch_delete_pb2.BatchDeleteRequest, context):
        _only(request, {"collection", "filters", "verbose", "dry_run", "consistency_level"}, "batch delete")
        collection = self.server.collection(request.collection)
        if not request.HasField("filters"):
            raise Invalid("batch delete needs a where filter")
        matches = [uid for uid, _ in self._filtered(collection, request)][:self.server.max_results]
        if not request.dry_run:
            for uid in matches:
                del collection.objects[uid]
        return batch_delete_pb2.BatchDeleteReply(
            took=0.0, matches=len(matches), failed=0, successful=0 if request.dry_run else len(matches),
            objects=[batch_delete_pb2.BatchDeleteObject(uuid=uuid_lib.UUID(uid).bytes, successful=True)
                     for uid in matches] if request.verbose else [])

    # aggregates -------------------------------------------------------------------------
    @_rpc
    def Aggregate(self, request: aggregate_pb2.AggregateRequest, context):
        _only(request, {"collection", "objects_count", "group_by", "limit", "filters"}, "aggregate")
        collection = self.server.collection(request.collection)
        items = self._filtered(collection, request)
        reply = aggregate_pb2.AggregateReply(took=0.0)
        if not request.HasField("group_by"):
            single = reply.single_result
            single.SetInParent()
            if request.objects_count:
                single.objects_count = len(items)
            return reply
        prop = request.group_by.property
        collection.prop(prop)
        counts = Counter(obj["properties"].get(prop) for _, obj in items)
        counts.pop(None, None)  # objects without the property form no group
        groups = counts.most_common(request.limit if request.HasField("limit") else None)
        reply.grouped_results.SetInParent()
        for value, count in groups:
            group = reply.grouped_results.groups.add(
                grouped_by=aggregate_pb2.AggregateReply.Group.GroupedBy(path=[prop], text=value))
            if request.objects_count:
                group.objects_count = count
        return reply

    @_rpc
    def TenantsGet(self, request, context):
        raise Unsupported("multi-tenancy not implemented by the fake Weaviate")
