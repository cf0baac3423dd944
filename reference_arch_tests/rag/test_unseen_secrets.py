"""Secrets the masker used not to see (issue 22): a JWT in a docs page, a GitHub comment and a Slack message,
and a GitHub token split over two lines, come out masked whole in documents, chunks and the index; and when
the masker misses a secret, the blocking check catches it with its own detector and the chunks are not
embedded."""

from __future__ import annotations

import json
import random

import dagster as dg

from reference_arch.rag.defs.processing import chunks_path, documents_path, read_rows
from reference_arch_tests.common.secret_corpus import _jwt, _r
from reference_arch_tests.rag.conftest import (DAY1, REPO, checks_passed, processing_assets, resources,
                                               run_ingestion, run_processing)

RNG = random.Random(22)
JWTS = [_jwt(RNG) for _ in range(3)]  # built at run time: no literal credential in the repository
TOKEN = "ghp_" + _r(RNG, 36)
SPLIT_TOKEN = f"{TOKEN[:22]}\n{TOKEN[22:]}"  # 'ghp_' and 18 characters, a newline, the rest
PIECES = [p for jwt in JWTS for p in jwt.split(".")] + [TOKEN[:22], TOKEN[22:]]


def add_unseen_secrets(paths) -> None:
    (paths["docs"] / "guides" / "auth.md").write_text(
        f"# Auth\n\n## Tokens\n\nCall the API with `Authorization: Bearer` and a token such as {JWTS[0]} "
        "from the login endpoint.\n")
    comments_file = paths["github"] / REPO / "comments.json"
    comments = json.loads(comments_file.read_text())
    comments.append({"id": 9005, "issue_url": f"https://api.github.com/repos/{REPO}/issues/1",
                     "user": {"login": "ana", "type": "User"}, "author_association": "NONE",
                     "body": f"Same with my session {JWTS[1]} and my token\n{SPLIT_TOKEN}\nas the log shows.",
                     "created_at": f"{DAY1}T11:45:00Z", "updated_at": f"{DAY1}T11:45:00Z"})
    comments_file.write_text(json.dumps(comments))
    day_file = paths["slack"] / "help" / f"{DAY1}.json"
    messages = json.loads(day_file.read_text())
    messages.append({"type": "message", "user": "U1", "text": f"try this one: {JWTS[2]}", "ts": "1780304700.000400",
                     "thread_ts": "1780304400.000100"})
    day_file.write_text(json.dumps(messages))


def stored_texts() -> list[str]:
    from reference_arch.rag.defs.index import open_collection

    collection = open_collection(resources()["embeddings"], resources()["vector_store"])
    try:
        indexed = list(collection.texts().values())
    finally:
        collection.close()
    return [d["text"] for d in read_rows(documents_path())] + [c["text"] for c in read_rows(chunks_path())] + indexed


def test_jwts_and_a_split_token_are_masked_whole_everywhere(rag_data, instance):
    add_unseen_secrets(rag_data)
    run_ingestion(instance)
    result = run_processing(instance)
    assert result.success
    assert checks_passed(result)["no_secrets_in_chunks"] and checks_passed(result)["no_secrets_in_index"]
    texts = stored_texts()
    assert not [p for p in PIECES if any(p in t for t in texts)]
    joined = "\n".join(texts)
    assert joined.count("[SECRET:json_web_token]") >= 3 * 3  # each in its document, chunk and index row
    assert "my token\n[SECRET:github_token]\nas the log shows" in joined
    # The warehouse keeps the raw text (the source of truth); no other file under the home does: dlt's loaded
    # packages (gzipped) and staging tables are emptied once loaded.
    assert not raw_copies_outside_the_warehouse()


def raw_copies_outside_the_warehouse() -> list[str]:
    import gzip

    from reference_arch.common.settings import home

    found = []
    for path in home().rglob("*"):
        if not path.is_file() or path.name.startswith("warehouse.duckdb"):
            continue
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        found += [f"{path}: {p[:6]}..." for p in PIECES if p.encode() in data]
    return found


def test_a_secret_the_masker_misses_fails_the_blocking_check(rag_data, instance, monkeypatch):
    """A fault: the masker's known formats find nothing. The check's own detector (random-looking strings)
    still sees the JWTs and the token in the chunks, and the chunks are not embedded."""
    from reference_arch.common import redaction

    add_unseen_secrets(rag_data)
    run_ingestion(instance)
    monkeypatch.setattr(redaction, "secret_spans", lambda text: [])
    result = dg.materialize(processing_assets(), instance=instance, resources=resources(), raise_on_error=False)
    assert not result.success
    [check] = [e for e in result.get_asset_check_evaluations() if e.check_name == "no_secrets_in_chunks"]
    assert not check.passed and check.metadata["found/secret:random_string"].value >= 4
    assert "random-looking string" in check.description
    assert not [p for p in PIECES if p in check.description + str(check.metadata)]  # names ids, not secrets
    assert {e.asset_key.path[-1] for e in result.get_asset_materialization_events()} == {"documents", "chunks"}
