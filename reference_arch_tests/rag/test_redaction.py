"""Redaction between the warehouse and the index: a Slack message and a GitHub comment carrying fake tokens,
an e-mail address and a phone number come out masked in documents, chunks and the index, while the
warehouse keeps them; the blocking secrets checks fail on chunks or an index that hold one."""

from __future__ import annotations

import json

import dagster as dg

from reference_arch.rag.defs import checks
from reference_arch.rag.defs.processing import chunks_path, documents_path, read_rows, write_rows
from reference_arch_tests.fake_secrets import (EMAIL, GITHUB_TEXT, GITHUB_TOKEN, RAW_VALUES, SLACK_TEXT,
                                               SLACK_TOKEN)
from reference_arch_tests.rag.conftest import (DAY1, REPO, checks_passed, metadata, processing_assets,
                                               resources, run_ingestion, run_processing)


def add_leaky_messages(paths) -> None:
    """A maintainer's GitHub comment and a Slack reply, both on day 1, carrying secrets and personal data."""
    comments_file = paths["github"] / REPO / "comments.json"
    comments = json.loads(comments_file.read_text())
    comments.append({"id": 9004, "issue_url": f"https://api.github.com/repos/{REPO}/issues/1",
                     "user": {"login": "ana", "type": "User"}, "author_association": "NONE", "body": GITHUB_TEXT,
                     "created_at": f"{DAY1}T11:40:00Z", "updated_at": f"{DAY1}T11:40:00Z"})
    comments_file.write_text(json.dumps(comments))
    day_file = paths["slack"] / "help" / f"{DAY1}.json"
    messages = json.loads(day_file.read_text())
    messages.append({"type": "message", "user": "U1", "text": SLACK_TEXT, "ts": "1780304600.000300",
                     "thread_ts": "1780304400.000100"})
    day_file.write_text(json.dumps(messages))


def test_masked_in_documents_chunks_and_index_kept_in_the_warehouse(rag_data, instance):
    from reference_arch.rag.defs.index import open_collection
    from reference_arch.rag.warehouse import read_table

    add_leaky_messages(rag_data)
    run_ingestion(instance)
    result = run_processing(instance)
    assert result.success
    assert checks_passed(result)["no_secrets_in_chunks"] and checks_passed(result)["no_secrets_in_index"]

    # The warehouse is the source of truth: it keeps the raw text.
    assert any(GITHUB_TOKEN in (c.get("body") or "") for c in read_table("github", "comments"))
    assert any(SLACK_TOKEN in (m.get("text") or "") for m in read_table("slack", "messages"))

    docs = {d["id"]: d["text"] for d in read_rows(documents_path())}
    chunks = read_rows(chunks_path())
    collection = open_collection(resources()["embeddings"], resources()["vector_store"])
    indexed = collection.texts()
    for texts in (docs.values(), [c["text"] for c in chunks], indexed.values()):
        joined = "\n".join(texts)
        assert not [value for value in RAW_VALUES if value in joined]
    github = docs[f"github:{REPO}#1"]
    for placeholder in ("[SECRET:github_token]", "[SECRET:aws_access_key]", "[SECRET:basic_auth_credentials]",
                        "[EMAIL]", "[PHONE]"):
        assert placeholder in github
        assert any(placeholder in text for text in indexed.values())
    assert "My CI token is [SECRET:slack_token], reach me at [EMAIL] or [PHONE]." in docs["slack:C1:1780304400.000100"]

    documents = metadata(result, "documents")
    assert documents["redacted/github/secret:github_token"] == 1 and documents["redacted/github/email"] == 1
    assert documents["redacted/slack/secret:slack_token"] == 1 and documents["redacted/slack/phone"] == 1
    assert documents["redacted/total"] == 8 and documents["redaction"] == "redact:email,phone,secret;phone:US"
    chunk_counts = metadata(result, "chunks")
    assert chunk_counts["redacted/github/secret:aws_access_key"] >= 1 and chunk_counts["redacted/slack/email"] >= 1


def test_the_checks_fail_on_an_index_or_chunks_holding_a_secret(rag_data, instance):
    from reference_arch.rag.defs.index import open_collection

    run_ingestion(instance)
    assert run_processing(instance).success
    env = resources()
    collection = open_collection(env["embeddings"], env["vector_store"])
    row = read_rows(chunks_path())[0]
    leaked = {**row, "id": row["id"] + "-leak", "text": f"{row['text']} token {GITHUB_TOKEN}"}
    vector = env["embeddings"].embed_array([leaked["text"]])[0]
    stored = [c for c, d in collection.chunk_ids().items() if d == row["document_id"]]
    collection.replace_documents([row["document_id"]], [{**leaked, "vector": vector}], keep_ids=stored)
    assert any(GITHUB_TOKEN in text for text in collection.texts().values())

    result = dg.materialize(processing_assets(), instance=instance, resources=env, raise_on_error=False,
                            selection=dg.AssetSelection.checks(checks.no_secrets_in_index))
    [evaluation] = result.get_asset_check_evaluations()
    assert not evaluation.passed
    assert evaluation.metadata["found/secret:github_token"].value == 1
    assert evaluation.metadata["examples"].value == leaked["id"]

    # Documents written before redaction (or by hand) hold a token: the blocking chunks check fails and the
    # run stops before the chunks are embedded (with OpenAI embeddings, before they leave the machine).
    docs = read_rows(documents_path())
    docs[0] = {**docs[0], "text": docs[0]["text"] + f"\n\ntoken {GITHUB_TOKEN}", "content_hash": "changed"}
    write_rows(documents_path(), docs, list(docs[0]))

    from reference_arch.rag.defs import processing

    result = dg.materialize(processing_assets(), instance=instance, resources=env, raise_on_error=False,
                            selection=dg.AssetSelection.assets(processing.chunks, processing.chunk_embeddings)
                            | dg.AssetSelection.checks(checks.no_secrets_in_chunks))
    assert not checks_passed(result)["no_secrets_in_chunks"]
    assert any(GITHUB_TOKEN in r["text"] for r in read_rows(chunks_path()))
    materialized = {e.asset_key.path[-1] for e in result.get_asset_materialization_events()}
    assert materialized == {"chunks"}  # embeddings were blocked
    assert not result.success
