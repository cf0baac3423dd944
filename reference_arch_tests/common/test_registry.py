import json

import pytest

from reference_arch.common.registry import ModelNotFoundError, ModelRegistry


def test_publish_versions_and_resolve(tmp_home, tiny_model_dir):
    registry = ModelRegistry()
    first = registry.publish("code-lm", tiny_model_dir, {"metrics": {"perplexity": 12.0}})
    second = registry.publish("code-lm", tiny_model_dir, {"metrics": {"perplexity": 9.0}})
    assert (first.version, second.version) == (1, 2)
    assert registry.resolve("registry:code-lm@latest").path == second.path
    assert registry.resolve("registry:code-lm@1").card["metrics"]["perplexity"] == 12.0
    assert registry.resolve("code-lm").version == 2
    card = json.loads((second.path / "card.json").read_text())
    assert card["name"] == "code-lm" and card["version"] == 2 and "published_at" in card
    assert (second.path / "config.json").exists()


def test_latest_is_the_newest_of_any_name(tmp_home, tiny_model_dir):
    registry = ModelRegistry()
    registry.publish("code-lm", tiny_model_dir)
    registry.publish("code-lm-github", tiny_model_dir)
    assert registry.latest().name == "code-lm-github"
    assert [m.spec for m in registry.list()] == ["registry:code-lm@1", "registry:code-lm-github@1"]


def test_errors_name_the_problem(tmp_home, tmp_path):
    registry = ModelRegistry()
    with pytest.raises(ModelNotFoundError, match="empty"):
        registry.latest()
    with pytest.raises(ModelNotFoundError, match="no model named 'nope'"):
        registry.resolve("registry:nope@latest")
    with pytest.raises(ValueError, match="not a saved Hugging Face model"):
        registry.publish("code-lm", tmp_path)
    with pytest.raises(ValueError, match="invalid model name"):
        registry.publish("../escape", tmp_path)
    assert not any(registry.root.iterdir())  # nothing half-written left behind


@pytest.mark.timeout(60)
def test_publishing_after_a_damaged_version_takes_the_next_number(tmp_home, tiny_model_dir):
    """A version whose card cannot be read keeps its number: publishing goes past it (it used to retry
    that number forever, since the damaged version is not listed but its folder blocks the rename)."""
    registry = ModelRegistry()
    registry.publish("code-lm", tiny_model_dir)
    (registry.root / "code-lm" / "1" / "card.json").write_text("{trunc")
    damaged = sorted(p.name for p in (registry.root / "code-lm" / "1").iterdir())
    model = registry.publish("code-lm", tiny_model_dir, {"kind": "after"})
    assert model.spec == "registry:code-lm@2" and model.card["kind"] == "after"
    assert sorted(p.name for p in (registry.root / "code-lm" / "1").iterdir()) == damaged  # left as it was
    assert sorted(p.name for p in (registry.root / "code-lm").iterdir()) == ["1", "2"]  # no staging left
