"""Redaction (common/redaction.py): secrets and personal data masked with typed placeholders, what is masked
configurable, the secrets check, and masking on the way to an OpenAI-compatible server and into logs."""

from collections import Counter

import dagster as dg
import pytest

from reference_arch.common.redaction import (Redactor, configured_types, counts_metadata, find_secrets,
                                             placeholder_counts, redact, secrets_check)
from reference_arch_tests.fake_secrets import (AWS_KEY, EMAIL, GITHUB_TEXT, GITHUB_TOKEN, PHONE, RAW_VALUES,
                                               SLACK_TEXT, SLACK_TOKEN)

PRIVATE_KEY = "\n".join(["-----BEGIN RSA PRIVATE KEY-----", "MIIEowIBAAKCAQEAfakefakefakefake", "bm90IGEga2V5",
                         "-----END RSA PRIVATE KEY-----"])


def test_each_kind_is_masked_with_its_typed_placeholder():
    counts: Counter = Counter()
    masked = Redactor().redact(GITHUB_TEXT, counts)
    assert masked == ("Pushing with https://deploy:[SECRET:basic_auth_credentials]@git.example.com/acme/widgets.git "
                      "fails; my token [SECRET:github_token] and the key [SECRET:aws_access_key] are in the config. "
                      "Mail [EMAIL], phone [PHONE].")
    assert counts == {"secret:basic_auth_credentials": 1, "secret:github_token": 1, "secret:aws_access_key": 1,
                      "email": 1, "phone": 1}
    assert redact(SLACK_TEXT) == "My CI token is [SECRET:slack_token], reach me at [EMAIL] or [PHONE]."
    assert redact(f"key:\n{PRIVATE_KEY}\nafter") == "key:\n[SECRET:private_key]\nafter"  # the whole block
    assert redact('db_password = "Tr0ub4dor&3x"') == 'db_password = "[SECRET:secret_keyword]"'
    two = redact("api_key=\"abcd1234efgh\" and secret = 'xyzzy-plugh'")  # two on one line
    assert two == "api_key=\"[SECRET:secret_keyword]\" and secret = '[SECRET:secret_keyword]'"
    assert redact("or (415) 555-0199 in the US") == "or [PHONE] in the US"


def test_what_is_not_a_secret_or_personal_data_stays():
    text = ("Fixed in 3f786850e387550fdab836ed7e6dc881de23001b (v1.2.3, 2026-06-01 09:00:00, ts 1780304400.000100); "
            "use @property, user@localhost, `password = get_password()` and password = \"${PASSWORD}\".")
    assert redact(text) == text


def test_masking_is_idempotent_and_leaves_no_known_secret():
    once = redact(GITHUB_TEXT + "\n" + SLACK_TEXT)
    assert redact(once) == once
    assert not any(value in once for value in RAW_VALUES)
    assert find_secrets(once) == Counter()
    assert find_secrets(GITHUB_TEXT) == {"secret:basic_auth_credentials": 1, "secret:github_token": 1,
                                         "secret:aws_access_key": 1}
    assert placeholder_counts(once) == {"secret:basic_auth_credentials": 1, "secret:github_token": 1,
                                        "secret:aws_access_key": 1, "secret:slack_token": 1, "email": 2, "phone": 2}


def test_the_types_masked_are_configurable(monkeypatch):
    assert configured_types("") == configured_types("all") == {"secret", "email", "phone"}
    assert configured_types("none") == frozenset()
    monkeypatch.setenv("REFERENCE_ARCH_REDACT", "email, phone")
    kept_secrets = redact(GITHUB_TEXT)
    assert GITHUB_TOKEN in kept_secrets and AWS_KEY in kept_secrets
    assert "deploy:[EMAIL]/acme" in kept_secrets  # password@host reads as an address when secrets are off
    assert EMAIL not in kept_secrets and PHONE not in kept_secrets
    monkeypatch.setenv("REFERENCE_ARCH_REDACT", "secret")
    assert redact(SLACK_TEXT) == f"My CI token is [SECRET:slack_token], reach me at {EMAIL} or {PHONE}."
    monkeypatch.setenv("REFERENCE_ARCH_REDACT", "none")
    assert redact(SLACK_TEXT) == SLACK_TEXT
    assert Redactor(frozenset({"secret"})).fingerprint() != Redactor().fingerprint()
    with pytest.raises(ValueError, match=r"^REFERENCE_ARCH_REDACT='tokens': unknown type\(s\) tokens; use all, none"):
        configured_types("tokens")


def test_phone_regions_decide_national_numbers(monkeypatch):
    uk = "call 020 7946 0958 today"
    assert redact(uk) == uk  # not a valid US number
    monkeypatch.setenv("REFERENCE_ARCH_REDACT_PHONE_REGIONS", "US,GB")
    assert redact(uk) == "call [PHONE] today"


def test_counts_metadata_per_type_and_source():
    metadata = counts_metadata({"slack": Counter({"email": 2}), "github": Counter({"email": 1, "secret:x": 1})})
    assert metadata == {"redacted/total": 4, "redacted/email": 3, "redacted/secret:x": 1,
                        "redacted/github/email": 1, "redacted/github/secret:x": 1, "redacted/slack/email": 2}


def test_secrets_check_fails_on_a_secret_and_says_where(monkeypatch):
    failed = secrets_check({"a": "clean text", "b": f"token {GITHUB_TOKEN}"}, "chunks")
    assert not failed.passed
    assert failed.metadata["chunks_with_secrets"].value == 1 and failed.metadata["found/secret:github_token"].value == 1
    assert failed.metadata["examples"].value == "b" and "secret:github_token" in failed.description
    assert secrets_check({"a": redact(GITHUB_TEXT)}, "chunks").passed
    monkeypatch.setenv("REFERENCE_ARCH_REDACT", "email")
    off = secrets_check({"b": f"token {GITHUB_TOKEN}"}, "chunks")
    assert off.passed and off.metadata["secret_masking"].value == "off"


def test_openai_compatible_server_never_sees_them_and_the_answer_is_masked(tmp_home):
    from reference_arch.common.llm.resource import LLMResource
    from reference_arch_tests.fake_openai import FakeOpenAI

    with FakeOpenAI(answer=f"Use {SLACK_TOKEN} or write to {EMAIL}.") as server:
        llm = LLMResource(provider="openai", base_url=server.base_url, api_key="sk-test", cache=False)
        answer = llm.generate([("system", "Answer."), ("human", GITHUB_TEXT)])
        llm.generate([{"role": "user", "content": SLACK_TEXT}])  # dict messages too
    sent = str([r["body"]["messages"] for r in server.requests])
    assert not any(value in sent for value in RAW_VALUES)
    assert "[SECRET:github_token]" in sent and "[SECRET:slack_token]" in sent
    assert answer == "Use [SECRET:slack_token] or write to [EMAIL]."


def test_a_question_is_masked_before_any_model_metadata_or_log(tmp_home):
    from reference_arch.prompt.defs.prompt import question

    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([question], instance=instance, run_config={
            "ops": {"prompt__question": {"config": {"question": f"Why is {GITHUB_TOKEN} refused? Mail {EMAIL}"}}}})
        value = result.output_for_node("prompt__question").text
        logs = " ".join(str(e.message) + str(e.dagster_event) for e in instance.all_logs(result.run_id))
    assert value == "Why is [SECRET:github_token] refused? Mail [EMAIL]"
    [event] = result.get_asset_materialization_events()
    assert event.materialization.metadata["question"].value == value
    assert event.materialization.metadata["redacted"].value == 2
    assert GITHUB_TOKEN not in logs and EMAIL not in logs and "masked in the question" in logs
