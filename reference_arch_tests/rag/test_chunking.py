"""Chunking in the model's tokens, and the document shapes of GitHub and Slack records."""

import random
import re
import string

from reference_arch.common.vector_store.embeddings import EmbeddingsResource
from reference_arch.rag.chunking import ChunkSettings, chunk_document
from reference_arch.rag.documents import document, github_documents, slack_documents

SETTINGS = ChunkSettings(max_tokens=256, chunk_tokens=192, overlap_tokens=24)


def counters():
    embeddings = EmbeddingsResource(provider="local")
    return embeddings.token_counter(), embeddings.token_counter(special_tokens=True)


def test_no_chunk_exceeds_the_model_limit_whatever_the_text():
    count, full = counters()
    code = "```python\n" + "\n".join(f"value_{i} = compute_something(alpha={i}, beta='{i * 7}')" for i in range(120)) + "\n```"
    long_word = "x" * 5000  # no separator inside at all
    markdown = (f"# Guide\n\nIntro paragraph.\n\n## Section one\n\n{'A sentence about caching. ' * 200}\n\n"
                f"## Code\n\n{code}\n\n## Oddities\n\n{long_word}\n")
    docs = [
        document("docs:guide.md", "docs", "markdown", "A very long guide title " * 30, "guide.md", "", markdown, 0, 0),
        document("docs:x.rst", "docs", "rst", "X", "x.rst", "", "Title\n=====\n\n" + "word " * 3000, 0, 0),
        document("docs:pkg.f", "docs", "docstring", "pkg.f", "pkg.f", "",
                 "pkg.f(a)\n\nSummary.\n\nParameters\n----------\na : int\n    " + "Detail. " * 600, 0, 0),
        document("slack:C1:1", "slack", "markdown", "#help: q", "u", "u", "**Ana** (2026-01-01 10:00): " + "hm " * 900,
                 0, 0),
    ]
    for doc in docs:
        chunks = chunk_document(doc, count, SETTINGS, "test")
        assert chunks, doc["id"]
        for chunk in chunks:
            assert full(chunk["text"]) <= 256 and chunk["tokens"] == full(chunk["text"])
            assert chunk["text"].split("\n\n", 1)[1].strip()  # a body, not just the context line
        assert len({c["id"] for c in chunks}) == len(chunks)
    guide = chunk_document(docs[0], count, SETTINGS, "test")
    assert any("> Code" in c["text"].split("\n\n", 1)[0] for c in guide)  # the section path leads the chunk
    assert all(c["text"].startswith("A very long guide title") for c in guide)


def test_chunk_ids_are_deterministic_and_follow_the_content():
    count, _ = counters()
    doc = document("docs:a.md", "docs", "markdown", "A", "a.md", "", "# A\n\n## One\n\nFirst.\n\n## Two\n\nSecond.", 0, 0)
    first = chunk_document(doc, count, SETTINGS, "test")
    assert [c["id"] for c in first] == [c["id"] for c in chunk_document(doc, count, SETTINGS, "test")]
    assert all(c["id"].startswith("docs:a.md#") for c in first)
    changed = document("docs:a.md", "docs", "markdown", "A", "a.md", "", "# A\n\n## One\n\nFirst.\n\n## Two\n\nNew.", 0, 0)
    second = chunk_document(changed, count, SETTINGS, "test")
    assert first[0]["id"] == second[0]["id"] and first[1]["id"] != second[1]["id"]
    assert first[0]["document_hash"] != second[0]["document_hash"]
    # a repeated identical section is one chunk (ids stay unique)
    twice = document("docs:b.md", "docs", "markdown", "B", "b.md", "", "## S\n\nSame.\n\n## S\n\nSame.", 0, 0)
    assert len(chunk_document(twice, count, SETTINGS, "test")) == 1


def test_github_and_slack_documents():
    issues = [{"id": 1, "number": 7, "repo": "o/r", "title": "Crash on start", "body": "Boom.", "state": "closed",
               "user_login": "ana", "labels": '["bug"]', "is_pull_request": False, "html_url": "https://gh/o/r/issues/7",
               "created_at": "2026-06-01T10:00:00+00:00", "updated_at": "2026-06-01T12:00:00+00:00"}]
    comments = [
        {"id": 11, "issue_id": 1, "body": "Fixed in 1.2.", "user_login": "maya", "author_association": "OWNER",
         "is_bot": False, "created_at": "2026-06-01T11:00:00+00:00", "updated_at": "2026-06-02T09:00:00+00:00"},
        {"id": 12, "issue_id": 1, "body": "Coverage 90%", "user_login": "ci[bot]", "is_bot": True,
         "created_at": "2026-06-01T11:30:00+00:00"},
    ]
    [doc] = github_documents(issues, comments)
    assert doc["id"] == "github:o/r#7" and doc["title"] == "o/r#7: Crash on start" and doc["source"] == doc["url"]
    assert "labels: bug" in doc["text"] and "## maya (owner) replied on 2026-06-01" in doc["text"]
    assert "Coverage" not in doc["text"] and doc["updated_at"].startswith("2026-06-02T09:00")

    messages = [
        {"channel": "C1", "channel_name": "help", "ts": "1780304400.000100", "thread_ts": "1780304400.000100",
         "user": "U1", "text": "Where is the cache? See <https://x.dev/cache|the docs>"},
        {"channel": "C1", "channel_name": "help", "ts": "1780304500.000200", "thread_ts": "1780304400.000100",
         "user": "U2", "text": "<@U1> in ~/.cache, ask in <#C2|dev>"},
        {"channel": "C1", "channel_name": "help", "ts": "1780305000.000000", "thread_ts": None, "user": None,
         "bot_id": "B1", "text": "Release 1.0 is out"},
    ]
    users = [{"id": "U1", "real_name": "Ana Silva"}, {"id": "U2", "name": "maya"}]
    thread, bot = slack_documents(messages, users, [{"id": "C1", "name": "help"}])
    assert thread["id"] == "slack:C1:1780304400.000100" and thread["title"].startswith("#help: Where is the cache?")
    assert "**maya**" in thread["text"] and "@Ana Silva in ~/.cache, ask in #dev" in thread["text"]
    assert "the docs (https://x.dev/cache)" in thread["text"]
    assert thread["url"] == "https://slack.com/archives/C1/p1780304400000100"
    assert bot["text"].startswith("**release bot**")


INDENTED = ("Running the exporter twice loses rows. My script:\n\n"
            "    # load the settings first\n    cfg = load('widgets.toml')\n"
            "    # then export every file\n    for f in files:\n        export(f, cfg)\n\n"
            "What am I doing wrong?")


def test_hash_comments_in_an_indented_code_block_are_code_not_headings():
    """12.6: "#" comment lines of a four-space code block were taken as headings: they left the chunk text
    and split the code. Fenced blocks already worked and still do."""
    count, _ = counters()
    for fence in ("", "```\n", "~~~\n"):
        body = INDENTED if not fence else INDENTED.replace("    ", "").replace("My script:\n\n", f"My script:\n\n{fence}", 1
                                                                               ).replace("\n\nWhat", f"\n{fence}\nWhat")
        [doc] = github_documents([{"id": 1, "number": 3, "repo": "o/r", "title": "Export loses rows", "body": body,
                                   "created_at": "2026-06-01T10:00:00Z", "updated_at": "2026-06-01T10:00:00Z"}], [])
        [chunk] = chunk_document(doc, count, SETTINGS, "test")  # one section: no heading in the code
        assert "# load the settings first" in chunk["text"] and "# then export every file" in chunk["text"]
        assert chunk["text"].split("\n\n", 1)[0] == "o/r#3: Export loses rows"  # no code comment in the path


def test_markdown_headings_come_from_a_parser():
    from reference_arch.common.markdown import sections

    text = "# Guide\n\nIntro.\n\n## Setup\n\n    # not a heading\n    run()\n\nSetext\n------\n\nLast."
    assert sections(text) == [(["Guide"], "Intro."), (["Guide", "Setup"], "    # not a heading\n    run()"),
                              (["Guide", "Setext"], "Last.")]


def test_a_docstring_also_gets_its_name_and_summary_alone_as_a_chunk():
    count, full = counters()
    text = ("pandas.DataFrame.set_index(keys, *, drop=True, append=False, inplace=False, verify_integrity=False)"
            "\n\nSet the DataFrame index using existing columns.\n\nParameters\n----------\nkeys : label\n    "
            + "Detail. " * 300)
    doc = document("docs:pandas.DataFrame.set_index", "docs", "docstring", "pandas.DataFrame.set_index",
                   "pandas.DataFrame.set_index", "", text, 0, 0)
    chunks = chunk_document(doc, count, SETTINGS, "test")
    assert len(chunks) >= 3 and chunks[0]["text"].startswith("pandas.DataFrame.set_index\n\npandas.DataFrame.set_index(")
    assert chunks[-1]["text"] == "pandas.DataFrame.set_index\n\nSet the DataFrame index using existing columns."
    assert all(full(c["text"]) <= 256 for c in chunks)
    # a docstring that starts with a section has no summary; other formats never get one
    bare = document("docs:pkg.g", "docs", "docstring", "pkg.g", "pkg.g", "", "pkg.g()\n\nParameters\n----------\nx", 0, 0)
    assert [c["text"] for c in chunk_document(bare, count, SETTINGS)] == ["pkg.g\n\npkg.g()\n\nParameters\n----------\nx"]
    page = document("docs:a.md", "docs", "markdown", "A", "a.md", "", "# A\n\nFirst.\n\nSecond.", 0, 0)
    assert len(chunk_document(page, count, SETTINGS)) == 1


def test_the_summary_skips_a_docstring_s_own_signature_lines():
    """Compiled callables (numpy's ufuncs, builtins) start their docstring with their signature, once
    or on several lines: the summary chunk is the first paragraph of prose after them, not a signature."""
    import numpy as np

    count, _ = counters()
    for name, obj, prose in (("numpy.absolute", np.absolute, "Calculate the absolute value element-wise."),
                             ("numpy.busday_count", np.busday_count, "Counts the number of valid days between")):
        text = f"{name}(...)\n\n{obj.__doc__.strip()}"  # as the docs source writes it
        doc = document(f"docs:{name}", "docs", "docstring", name, name, "", text, 0, 0)
        summary = chunk_document(doc, count, SETTINGS)[-1]["text"]
        assert summary.startswith(f"{name}\n\n{prose}"), summary
    # a docstring whose signature lines are followed by a section has no summary
    doc = document("docs:pkg.f", "docs", "docstring", "pkg.f", "pkg.f", "",
                   "pkg.f(x)\n\nf(x) -> int\n\nParameters\n----------\nx : int", 0, 0)
    assert not any(c["text"].endswith("f(x) -> int") for c in chunk_document(doc, count, SETTINGS))


def test_a_run_without_spaces_is_split_to_the_chunk_size():
    """A 38,400-character run without spaces inside prose was one 38 KB chunk counted as 46 tokens: MiniLM's
    WordPiece reads a word over 100 characters as one [UNK], so the splitter never cut it."""
    count, full = counters()
    letters = random.Random(0)
    run = "".join(letters.choice(string.ascii_lowercase) for _ in range(38_400))
    body = "Some words before the run of characters. " * 3 + run + " and a few words after it."
    for fmt in ("markdown", "text", "rst", "docstring"):
        chunks = chunk_document(document("docs:run.md", "docs", fmt, "Run", "run.md", "", body, 0, 0), count,
                                SETTINGS, "test")
        assert max(len(c["text"]) for c in chunks) < 2_000, fmt
        assert all(c["tokens"] == full(c["text"]) <= 256 for c in chunks)
        covered = set()  # nothing of the run is lost: its pieces (overlapping) cover it
        for piece in (p for c in chunks for p in re.findall(r"[a-z]{20,}", c["text"])):
            start = run.find(piece)
            assert start >= 0, fmt
            covered.update(range(start, start + len(piece)))
        assert len(covered) == len(run), fmt
    assert full(run) >= len(run) // 4  # the counter sees the run's length, not one [UNK]
