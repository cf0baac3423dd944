"""Grounded training examples (finetune/grounding.py): what the model learns to say is what its source shows."""

import json
from pathlib import Path

import reference_arch
from reference_arch.finetune.grounding import SOURCE_CHARS, _sentences, grounded_target, reply_source

COMMENTS = Path(reference_arch.__file__).parent / "samples/github/tidepool-data/tidepool/comments.json"


def test_every_target_sentence_is_in_its_source():
    replies = [c["body"] for c in json.loads(COMMENTS.read_text()) if c.get("body")]
    targets = 0
    for reply in replies:
        source = reply_source({"question": "q", "answer": reply})["text"]
        assert len(source) <= SOURCE_CHARS
        target = grounded_target(reply, 2)
        if target is None:  # only a reply whose first sentence after its thanks does not fit the source
            first = _sentences(reply)[:1]
            assert not first or len(first[0]) > SOURCE_CHARS or len(first[0]) < 8, (reply, first)
            continue
        targets += 1
        sentences = [s.strip() for s in target.split(" [2]") if s.strip()]
        assert 1 <= len(sentences) <= 2 and target.endswith(" [2]")
        assert all(s in source for s in sentences), (source, target)
    # 83 of the sample's 94: the 11 others' first sentence after the thanks is over SOURCE_CHARS (their thanks
    # alone were learned before, the bug of test_opening_thanks_are_not_shown_or_learned)
    assert targets >= 0.85 * len(replies)


def test_code_is_not_shown_or_learned():
    reply = "Set `null_values` instead. ```python\nread(null_values=['NA'])\n``` That fixes it."
    assert reply_source({"question": "q", "answer": reply})["text"] == "Set `null_values` instead. That fixes it."
    assert grounded_target(reply, 1) == "Set `null_values` instead. [1] That fixes it. [1]"


def test_opening_thanks_are_not_shown_or_learned():
    """A demo's tuned model answered a CSV question "Thank you for the clear report, Hannah! [2]": 37 of the
    sample's 94 replies open with thanks, and the target was the reply's first sentence."""
    reply = "Thanks for the clear report, Hannah! Great catch. Pass `sep=';'` to `read_csv`. It then parses."
    assert reply_source({"question": "q", "answer": reply})["text"] == "Pass `sep=';'` to `read_csv`. It then parses."
    assert grounded_target(reply, 1) == "Pass `sep=';'` to `read_csv`. [1] It then parses. [1]"
    assert grounded_target("Thanks, `sep=';'` fixes it.", 1) == "Thanks, `sep=';'` fixes it. [1]"  # an answer
    replies = [c["body"] for c in json.loads(COMMENTS.read_text()) if c.get("body")]
    openings = [grounded_target(r, 1) for r in replies]
    assert not [t for t in openings if t and t.lower().startswith(("thank", "great", "good catch", "hi ", "happy",
                                                                    "love", "absolutely", "nice"))]
