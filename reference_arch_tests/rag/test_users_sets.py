"""The real users' question sets (rag/eval_sets/users_*.yaml): questions copied from Stack Overflow and
GitHub issues, each citing its address, each answered by documents the docs source builds."""

from __future__ import annotations

import re

import pytest

from reference_arch.rag.question_sets import SHIPPED_DIR, SPLITS, document_names, load_question_sets

USERS_SETS = {"users_pandas": "pandas", "users_numpy": "numpy"}  # set -> the package whose API answers it
SOURCE = re.compile(r"^https://(stackoverflow\.com/questions/(?P<so>\d+)|github\.com/[\w.-]+/[\w.-]+/issues/\d+)$")


@pytest.fixture(scope="module")
def sets():
    return load_question_sets([SHIPPED_DIR / f"{name}.yaml" for name in USERS_SETS])


def test_every_question_cites_its_source(sets):
    import yaml

    for name in USERS_SETS:
        items = yaml.safe_load((SHIPPED_DIR / f"{name}.yaml").read_text())["questions"]
        assert len(items) == len(sets[name]) >= 30
        for item in items:
            match = SOURCE.match(str(item.get("source") or ""))
            assert match, (name, item["id"], item.get("source"))
            if match["so"]:  # the id names the question it was copied from
                assert item["id"] == f"so/{match['so']}", (item["id"], item["source"])


def test_every_relevant_id_is_a_document_the_index_builds(sets):
    """Resolved against the documents the docs source builds from the installed package, as the index does
    (the default corpus indexes pandas; the bench's also numpy), under any of a shared docstring's names."""
    from reference_arch.rag.documents import docs_documents
    from reference_arch.sources.docs import PackageSpec, docstring_documents

    for name, package in USERS_SETS.items():
        names = document_names(docs_documents(docstring_documents(PackageSpec(package))))
        missing = [(q.id, r) for q in sets[name] for r in q.relevant if r not in names]
        assert not missing, f"{name}: relevant ids no {package} document has: {missing}"


def test_both_sets_have_dev_and_test_questions(sets):
    for name in USERS_SETS:
        parts = {split: [q for q in sets[name] if q.split == split] for split in SPLITS}
        assert all(len(parts[split]) >= 10 for split in SPLITS), {s: len(p) for s, p in parts.items()}
