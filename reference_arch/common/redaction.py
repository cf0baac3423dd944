"""Redaction: secrets and personal data masked with typed placeholders before text leaves the warehouse.

What is masked, by type (``REFERENCE_ARCH_REDACT``: ``all``, the default, ``none``, or a comma-separated
list of these):

- ``secret``: credentials found by detect-secrets' plugins (Yelp), each placeholder named after the plugin's
  secret type: ``[SECRET:github_token]``, ``[SECRET:aws_access_key]``, ``[SECRET:slack_token]``,
  ``[SECRET:json_web_token]``, ``[SECRET:basic_auth_credentials]`` (the password of
  ``https://user:password@host``), ``[SECRET:private_key]`` (the whole PEM block),
  ``[SECRET:secret_keyword]`` (``password = "..."``), and ``EXTRA_PATTERNS`` for what the plugins miss
  (``[SECRET:authorization_header]``, any PEM private key, a URL password with any character or no user).
  The plugins' own patterns run over the whole text (their ``denylist``), the keyword plugin over the lines
  that name a keyword, with detect-secrets' heuristic filters for templated and indirect values. A match is
  masked to the token's last character (a JWT's signature, a Slack token's mixed-case tail), and the
  patterns also run over two views of the text: its long token runs joined across line breaks (a key
  wrapped over lines) and its base64 runs decoded (a base64-encoded key or ``.env`` line). Its two entropy
  plugins and its public-IP plugin are not used: they guess (commit SHAs, checksums, version numbers would
  be masked). The checks over stored text (``secrets_check``) add a second, independent detector,
  ``common.random_strings``, so that a key this masking misses fails them.
- ``email``: ``[EMAIL]``, an address that email-validator accepts (syntax only, no DNS).
- ``phone``: ``[PHONE]``, a number that Google's libphonenumber (``phonenumbers``) finds valid, in
  international form or national form of ``REFERENCE_ARCH_REDACT_PHONE_REGIONS`` (default ``US``).

Each type runs on the text the previous one left, so a placeholder is never matched again and masking is
idempotent. Nothing here reaches the network.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache

from reference_arch.common import settings

REDACT_ENV = "REFERENCE_ARCH_REDACT"
PHONE_REGIONS_ENV = "REFERENCE_ARCH_REDACT_PHONE_REGIONS"
TYPES = settings.REDACT_TYPES
# detect-secrets plugins left out: guesses by entropy, and an IP address is not a credential.
UNUSED_PLUGINS = frozenset({"Base64HighEntropyString", "HexHighEntropyString", "IPPublicDetector"})
PLACEHOLDER = re.compile(r"\[(SECRET:[a-z0-9_]+|EMAIL|PHONE)\]")
# A candidate address: a run of characters that may form one, around an @ (email-validator decides).
_EMAIL_CANDIDATE = re.compile(r"[^\s<>()\[\]{}\"'`,;:|/\\]+@[^\s<>()\[\]{}\"'`,;:|/\\]+")
_PEM_END = re.compile(r"-----END [A-Z0-9 ]*-----")
_BLANK_LINE = re.compile(r"\n[ \t]*\n")
# Formats detect-secrets' plugins miss, or match only in part: any PEM private key (the plugin lists eight
# headers, not "ENCRYPTED PRIVATE KEY"); a URL password holding characters RFC 3986 reserves (people write
# them raw) or with no user (redis://:pw@host); OpenAI and Anthropic keys of today's forms; an HTTP Authorization header's credentials (a digit in them:
# "Bearer authentication" is prose).
EXTRA_PATTERNS = (
    ("private_key", re.compile(r"BEGIN [A-Z0-9 ]{0,40}PRIVATE KEY")),
    # The password runs to the last @ that a host follows: raw / ? # @ $ stay inside it.
    ("basic_auth_credentials", re.compile(r"://[^\s:/?#@]*:(?!\[SECRET:[a-z0-9_]+\]@)(\S+?)@(?![^\s@]*@[^\s@]*(?:[/?#:\s]|$))"
                                          r"(?=[A-Za-z0-9.\-_\[\]]+(?:[/?#:\s]|$))")),
    # OpenAI's project, service-account and admin keys (sk-proj-..., with - and _): the plugin knows only the
    # legacy form holding "T3BlbkFJ". A digit in the run: "sk-learn-style-..." slugs are words.
    ("openai_token", re.compile(r"(?<![A-Za-z0-9_\-])sk-(?!ant-)(?:(?:proj|svcacct|admin)-)?"
                                r"(?=[A-Za-z0-9_\-]{32})(?=[A-Za-z_\-]*[0-9])[A-Za-z0-9_\-]+")),
    ("anthropic_api_key", re.compile(r"(?<![A-Za-z0-9_\-])sk-ant-[a-z]+[0-9]*-(?=[A-Za-z0-9_\-]{32})[A-Za-z0-9_\-]+")),
    ("authorization_header", re.compile(r"(?i)\b(?:authorization:\s*(?:basic|bearer|token)|bearer)\s+"
                                        r"((?=[A-Za-z0-9._~+/\-]{8})[A-Za-z0-9._~+/\-]*[0-9][A-Za-z0-9._~+/\-]*=*)")),
)
# A token's characters: a match is masked on to the last of them (the JWT plugin's pattern stops before the
# signature, the Slack one at the first capital).
_TOKEN_TAIL = re.compile(r"[A-Za-z0-9_\-+/=]*")
# A line break between two runs of 8+ token characters, one of them token-like (prose lines ending and
# starting with words are not joined): where a key wrapped over lines is joined again.
_BREAK_IN_TOKEN = re.compile(r"(?<![A-Za-z0-9_\-+/=.])([A-Za-z0-9_\-+/=.]{8,}+)"  # from a run's start: linear
                             r"[ \t]*\r?\n[ \t]*(?=([A-Za-z0-9_\-+/=.]{8,}))")
# A run that reads as part of a token, not a word: it holds a digit, or is all capitals (AWS key ids are
# A-Z and 2-7: one cut into two runs of letters only is 1 in 10 of them).
_TOKEN_LIKE = re.compile(r"[0-9]|^[A-Z]+$")
_BASE64 = re.compile(r"(?<![A-Za-z0-9+/_\-])[A-Za-z0-9+/_\-]{16,}={0,2}")


def counted_length(text: str) -> int:
    """The length of ``text`` with each placeholder counted as one character: limits apply to what a person
    wrote, and masking may lengthen it (``x1`` after ``password=`` becomes ``[SECRET:secret_keyword]``)."""
    return len(PLACEHOLDER.sub("#", text))


def configured_types(text: str | None = None) -> frozenset[str]:
    """The types to mask from ``REFERENCE_ARCH_REDACT`` (or ``text`` written as it would be): ``all`` (the
    default), ``none`` or names from ``TYPES``; ``SettingsError`` (a ``ValueError``) names an unknown one."""
    return settings.value("redact") if text is None or not text.strip() else settings.parse("redact", text)


def phone_regions(text: str | None = None) -> tuple[str, ...]:
    """The regions from ``REFERENCE_ARCH_REDACT_PHONE_REGIONS`` (or ``text``), upper case; default ``US``."""
    if text is None or not text.strip():
        return settings.value("redact_phone_regions")
    return settings.parse("redact_phone_regions", text)


def slug(secret_type: str) -> str:
    """``'GitHub Token'`` -> ``'github_token'``."""
    return re.sub(r"[^a-z0-9]+", "_", secret_type.lower()).strip("_")


# -- detectors ------------------------------------------------------------------------------------

@lru_cache(maxsize=1)
def _secret_plugins():
    """``([(label, pattern)], keyword plugin, (keyword regex, keyword literals))`` from detect-secrets'
    plugin registry."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.keyword import DENYLIST, KeywordDetector

    patterns, keyword = [], None
    for secret_type, plugin_class in get_mapping_from_secret_type_to_class().items():
        if plugin_class.__name__ in UNUSED_PLUGINS:
            continue
        plugin = plugin_class()
        if isinstance(plugin, KeywordDetector):
            keyword = plugin
        patterns += [(slug(secret_type), regex) for regex in getattr(plugin, "denylist", ())]
    patterns += list(EXTRA_PATTERNS)
    # Each word of the plugin's list is literals joined by optional underscores ("api_?key"): a line holds
    # the last literal wherever it holds the word, a quick test before the regex.
    literals = [w.split("_?")[-1] for w in DENYLIST]
    if not all(re.fullmatch(r"[^\\^$.|?*+()\[\]{}]+", w) for w in literals):
        literals = [""]  # a word list of another shape: every line goes to the regex
    return patterns, keyword, (re.compile("|".join(DENYLIST), re.IGNORECASE), tuple(sorted(set(literals))))


def _secret_span(match: re.Match, text: str, label: str) -> tuple[int, int]:
    """What to mask of a plugin's match: a private key's whole PEM block; the captured value when the
    pattern captures one after some context (the password of ``://user:password@``, a quoted key after
    ``aws_secret=``); else the whole match (a group at its start names the token kind, as ``ghp``); either
    on to the token's last character."""
    if label == "private_key":  # to its END line, else the end of its paragraph, else of the text
        start = match.start() - 5 if text[max(0, match.start() - 5):match.start()] == "-----" else match.start()
        end = _PEM_END.search(text, match.end()) or _BLANK_LINE.search(text, match.end())
        return start, end.end() if end else len(text)
    start, end = match.span()
    shortest = 1 if label == "basic_auth_credentials" else 4  # a URL's password is one however short
    for group in range(1, (match.re.groups or 0) + 1):
        if match.start(group) > match.start() and match.end(group) - match.start(group) >= shortest:
            start, end = match.span(group)
            break
    return start, _TOKEN_TAIL.match(text, end).end()


def _keyword_spans(text: str, config: bool = False) -> list[tuple[int, int, str]]:
    """``password = "..."``-style values, on the lines holding one of the keyword plugin's words (the
    plugin's patterns, and its word list as one case-insensitive regex, are slow over a whole text); with
    ``config``, unquoted ones too (``DB_PASSWORD=...``: the plugin's rules for config files, for decoded
    base64, which prose is not)."""
    from detect_secrets.filters.heuristic import (is_indirect_reference, is_prefixed_with_dollar_sign,
                                                  is_templated_secret)
    from detect_secrets.plugins.keyword import CONFIG_DENYLIST_REGEX_TO_GROUP

    _, keyword, (hint, words) = _secret_plugins()
    spans, offset = [], 0
    for line in text.splitlines(keepends=True) if keyword is not None else ():
        lowered = line.lower()
        if any(w in lowered for w in words) and hint.search(line) and not is_indirect_reference(line):
            for value in set(keyword.analyze_string(line, CONFIG_DENYLIST_REGEX_TO_GROUP if config else None)):
                at = line.find(value) if value else -1
                if at >= 0 and not is_templated_secret(value) and not is_prefixed_with_dollar_sign(value):
                    spans.append((offset + at, offset + at + len(value), "secret_keyword"))
        offset += len(line)
    return spans


def _pattern_spans(text: str) -> list[tuple[int, int, str]]:
    patterns, _, _ = _secret_plugins()
    return [(*_secret_span(match, text, label), label) for label, regex in patterns for match in regex.finditer(text)]


def _decoded(run: str) -> str | None:
    """The text a base64 or base64url run encodes, when it is printable UTF-8."""
    import base64
    import binascii

    body = run.rstrip("=")
    urlsafe = "-" in body or "_" in body
    if len(body) % 4 == 1 or (urlsafe and ("+" in body or "/" in body)):
        return None
    try:
        raw = base64.b64decode(body + "=" * (-len(body) % 4), altchars=b"-_" if urlsafe else None, validate=True)
        text = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return text if all(c.isprintable() or c in "\n\r\t" for c in text) else None


def _encoded_spans(text: str) -> list[tuple[int, int, str]]:
    """Base64 runs whose decoded text holds a known secret, labelled as that secret."""
    spans = []
    for match in _BASE64.finditer(text):
        decoded = _decoded(match.group())
        found = (_pattern_spans(decoded) + _keyword_spans(decoded, config=True)) if decoded else []
        if found:
            spans.append((*match.span(), min(found)[2]))
    return spans


def _unwrapped(text: str):
    """``(joined, back)``: ``text`` with the line breaks inside long token runs removed, and a function
    giving a span of ``joined`` as its span of ``text`` when the span crosses a removed break (else None)."""
    from bisect import bisect_left, bisect_right

    cuts, shifts, pieces, last = [], [], [], 0  # cuts: positions in `joined` where a break was removed
    for match in _BREAK_IN_TOKEN.finditer(text):
        if not (_TOKEN_LIKE.search(match.group(1)) or _TOKEN_LIKE.search(match.group(2))):
            continue
        start = match.end(1)  # the break itself
        pieces.append(text[last:start])
        cuts.append(start - (shifts[-1] if shifts else 0))
        shifts.append((shifts[-1] if shifts else 0) + match.end() - start)
        last = match.end()

    def back(start: int, end: int) -> tuple[int, int] | None:
        if bisect_right(cuts, start) == bisect_left(cuts, end):  # no cut strictly inside
            return None
        shift = lambda at: shifts[bisect_right(cuts, at) - 1] if bisect_right(cuts, at) else 0  # noqa: E731
        return start + shift(start), end + shift(end - 1)

    return "".join(pieces) + text[last:], back


def _merged(spans: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping spans as one (the first's label), so a secret found twice counts once."""
    out: list[tuple[int, int, str]] = []
    for start, end, label in sorted(spans, key=lambda s: (s[0], -s[1])):
        if out and start < out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end), out[-1][2])
        else:
            out.append((start, end, label))
    return out


def secret_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, label)`` of every known secret in ``text``: the patterns over the text as it is, over
    its base64 runs decoded, and over the text with keys wrapped over lines joined again."""
    spans = _pattern_spans(text) + _keyword_spans(text) + _encoded_spans(text)
    joined, back = _unwrapped(text)
    if joined != text:
        for start, end, label in _pattern_spans(joined) + _encoded_spans(joined):
            if (span := back(start, end)) is not None:
                spans.append((*span, label))
    return _merged(spans)


def email_spans(text: str) -> list[tuple[int, int, str]]:
    from email_validator import EmailNotValidError, validate_email

    spans = []
    for match in _EMAIL_CANDIDATE.finditer(text):
        candidate = match.group().rstrip(".")
        try:
            validate_email(candidate, check_deliverability=False, test_environment=True)
        except EmailNotValidError:
            continue
        spans.append((match.start(), match.start() + len(candidate), "email"))
    return spans


def phone_spans(text: str, regions: tuple[str, ...]) -> list[tuple[int, int, str]]:
    import phonenumbers

    if not any(c.isdigit() for c in text):
        return []
    return [(m.start, m.end, "phone") for region in regions
            for m in phonenumbers.PhoneNumberMatcher(text, region, leniency=phonenumbers.Leniency.VALID)]


# -- masking --------------------------------------------------------------------------------------

def placeholder(label: str) -> str:
    return f"[{label.upper()}]" if label in ("email", "phone") else f"[SECRET:{label}]"


def count_key(label: str) -> str:
    """The metadata name of a label: ``email``, ``phone`` or ``secret:<type>``."""
    return label if label in ("email", "phone") else f"secret:{label}"


def mask(text: str, spans: list[tuple[int, int, str]], counts: Counter) -> str:
    """``text`` with each span replaced by its placeholder; overlapping spans merge into the first."""
    out, last = [], 0
    for start, end, label in sorted(spans, key=lambda s: (s[0], -s[1])):
        if start < last:  # overlaps one already masked: widen it
            last = max(last, end)
            continue
        out += [text[last:start], placeholder(label)]
        counts[count_key(label)] += 1
        last = end
    return "".join(out) + text[last:]


@dataclass(frozen=True)
class Redactor:
    """Masks the configured types; ``redact`` adds what it masked to ``counts``."""

    types: frozenset[str] = frozenset(TYPES)
    regions: tuple[str, ...] = ("US",)
    counts: Counter = field(default_factory=Counter, compare=False, hash=False)

    def redact(self, text: str | None, counts: Counter | None = None) -> str:
        counts = self.counts if counts is None else counts
        text = text or ""
        if "secret" in self.types:
            spans = secret_spans(text)
            text = mask(text, spans, counts)
            for _ in range(8):  # the keyword plugin finds one value per pattern and line: look again
                if not any(label == "secret_keyword" for _, _, label in spans):
                    break
                spans = _keyword_spans(text)
                text = mask(text, spans, counts)
        if "email" in self.types and "@" in text:
            text = mask(text, email_spans(text), counts)
        if "phone" in self.types:
            text = mask(text, phone_spans(text, self.regions), counts)
        return text

    def fingerprint(self) -> str:
        """What a derived text depends on besides its source: part of content hashes."""
        return f"redact:{','.join(sorted(self.types)) or 'none'};phone:{','.join(self.regions)}"


def redactor() -> Redactor:
    """A redactor configured from the environment (``REDACT_ENV``, ``PHONE_REGIONS_ENV``)."""
    return Redactor(configured_types(), phone_regions())


def redact(text: str | None) -> str:
    """``text`` masked as the environment configures."""
    return redactor().redact(text)


def find_secrets(text: str) -> Counter:
    """``{secret:<type>: count}`` of the secrets the checks see in ``text``: the known ones the masker masks
    (``secret_spans``) and, by a detector independent of it, random-looking strings
    (``common.random_strings``, as ``secret:random_string``): a key the masker misses still fails a check."""
    from reference_arch.common.random_strings import random_string_spans

    text = text or ""
    spans = secret_spans(text) + [(start, end, "random_string") for start, end in random_string_spans(text)]
    return Counter(count_key(label) for _, _, label in _merged(spans))


def placeholder_counts(text: str) -> Counter:
    """``{type: count}`` of the placeholders ``text`` already holds."""
    return Counter(m.group(1).lower() if m.group(1) in ("EMAIL", "PHONE") else "secret:" + m.group(1)[7:]
                   for m in PLACEHOLDER.finditer(text or ""))


def counts_metadata(by_source: dict[str, Counter], prefix: str = "redacted") -> dict[str, int]:
    """``{redacted/<type>: n, redacted/<source>/<type>: n}``, and ``redacted/total``."""
    total: Counter = Counter()
    metadata = {}
    for source, counts in sorted(by_source.items()):
        total.update(counts)
        metadata.update({f"{prefix}/{source}/{key}": n for key, n in sorted(counts.items()) if n})
    return {f"{prefix}/total": sum(total.values()),
            **{f"{prefix}/{key}": n for key, n in sorted(total.items()) if n}, **metadata}


def secrets_check(texts: dict[str, str], what: str):
    """A ``dg.AssetCheckResult``: passed when none of ``texts`` (``{id: text}``) holds a secret
    (``find_secrets``: a known one, or a random-looking string); the types found and the first ids otherwise
    (never the secrets). Passes, saying so, when secrets are not masked (``REFERENCE_ARCH_REDACT`` leaves
    ``secret`` out)."""
    import dagster as dg

    if "secret" not in configured_types():
        return dg.AssetCheckResult(passed=True, metadata={what: len(texts), "secret_masking": "off"},
                                   description=f"secrets are not masked ({REDACT_ENV} leaves 'secret' out)")
    found: Counter = Counter()
    holding = []
    for key, text in texts.items():
        secrets = find_secrets(text)
        if secrets:
            found.update(secrets)
            holding.append(key)
    return dg.AssetCheckResult(
        passed=not holding,
        metadata={what: len(texts), f"{what}_with_secrets": len(holding), **{f"found/{k}": n for k, n in found.items()},
                  "examples": dg.MetadataValue.text(", ".join(sorted(holding)[:5]) or "none")},
        description=None if not holding else
        f"{len(holding)} {what} hold a secret ({', '.join(sorted(found))}): " + (
            "a random-looking string the masking does not know (a key of another format, or a piece of one): "
            "remove it at its source, or give its format to common/redaction.py"
            if set(found) == {"secret:random_string"} else
            "re-materialize from the warehouse with secret masking on"),
    )
