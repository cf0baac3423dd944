"""The retrieval-variants part of ``bench_rag_quality``: its near-duplicate merge and its adoption rule."""

from bench.rag_variants import bootstrap_win_rate, near_duplicates


def docstring(doc_id: str, text: str) -> dict:
    return {"id": doc_id, "format": "docstring", "text": f"{doc_id[5:]}()\n\n{text}"}


ISNA = ("Detect missing values. Return a boolean same-sized object indicating if the values are NA. NA values, "
        "such as None or numpy.NaN, get mapped to True values. Everything else gets mapped to False values. "
        "Characters such as empty strings or numpy.inf are not considered NA values.")


def test_near_duplicates_merge_an_alias_into_the_shorter_name_and_keep_distinct_docstrings():
    docs = [docstring("docs:pandas.Series.isna", ISNA),
            docstring("docs:pandas.Series.isnull", "Series.isnull is an alias for Series.isna. " + ISNA),
            docstring("docs:pandas.Series.clip", "Trim values at input threshold(s). Assigns values outside "
                                                 "boundary to boundary values."),
            {"id": "docs:faq.md", "format": "markdown", "text": ISNA}]  # only docstrings are merged
    assert near_duplicates(docs, 0.6) == {"docs:pandas.Series.isnull": "docs:pandas.Series.isna"}
    assert near_duplicates(docs, 0.9) == {}  # the alias sentence: 0.85 alike


def test_a_variant_is_adopted_only_when_it_wins_most_resamples_of_the_dev_questions():
    same = {"a": {"dense": [1.0, 0.0, 1.0, 0.5], "v": [1.0, 0.0, 1.0, 0.5]}}
    assert bootstrap_win_rate(same, "v") == 0.0
    better = {"a": {"dense": [0.0] * 6 + [1.0] * 4, "v": [1.0] * 10},
              "b": {"dense": [0.5, 0.5], "v": [0.5, 0.5]}}
    assert bootstrap_win_rate(better, "v") > 0.95
    # one question of thirty better: resampling often drops it, so it is not a win to act on
    one = {"a": {"dense": [0.0] + [1.0] * 29, "v": [1.0] * 30}}
    assert 0.5 < bootstrap_win_rate(one, "v") < 0.95
