"""A corpus of secret formats, and the recall of the masker and of the secrets checks on it per format.

Formats: one per detect-secrets plugin (its own list, the two entropy plugins included), JWTs, private key
blocks, URLs with passwords, base64-encoded keys, keys split over lines, Authorization headers, OpenAI and Anthropic keys; plus text
that is no secret, for false positives. Every value is drawn at run time from a seeded generator, so that no
file of the repository holds a literal credential (as ``fake_secrets``).

Per format, over ``DRAWS`` draws:

- masked: the masker (``redact``) leaves no piece of the secret (no 12-character window of it);
- flagged: the checks' detector (``find_secrets``) sees the raw text;
- escapes: the masker leaves a piece and the check passes the masked text (what reaches the index unseen).

    .venv/bin/python -m reference_arch_tests.common.secret_corpus [--before GIT_REV]

prints the table for the working tree's ``common/redaction.py``, and with ``--before`` the same for that
revision's, side by side (``test_secret_recall`` holds the floors).
"""

from __future__ import annotations

import base64
import json
import random
import string
from dataclasses import dataclass
from types import ModuleType

DRAWS = 20
ALNUM = string.ascii_letters + string.digits
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"
LOWER_HEX = "0123456789abcdef"
UPPER_DIGITS = string.ascii_uppercase + string.digits
WINDOW = 12


@dataclass(frozen=True)
class Sample:
    group: str
    format: str
    text: str
    secret: str  # whitespace-separated pieces, each of which must not survive masking


def _r(rng: random.Random, n: int, alphabet: str = ALNUM) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _b64url_json(value: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(value, separators=(",", ":")).encode()).decode().rstrip("=")


def _jwt(rng: random.Random) -> str:
    header = _b64url_json({"alg": "HS256", "typ": "JWT"})
    payload = _b64url_json({"sub": _r(rng, 6, string.digits), "name": _r(rng, 8, string.ascii_lowercase)})
    return f"{header}.{payload}.{_r(rng, 43, B64URL)}"


def _pem(rng: random.Random, kind: str) -> tuple[str, str]:
    body = "\n".join(_r(rng, 64, B64) for _ in range(6))
    return f"-----BEGIN {kind}-----\n{body}\n-----END {kind}-----", body


def _split(value: str, at: int, joint: str = "\n") -> str:
    return value[:at] + joint + value[at:]


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def draw(rng: random.Random) -> list[Sample]:
    """One draw of every format."""
    ghp = "ghp_" + _r(rng, 36)
    aws = rng.choice(["AKIA", "ASIA"]) + _r(rng, 16, UPPER_DIGITS)
    aws_secret = _r(rng, 40, B64)
    slack = f"xoxb-{_r(rng, 12, string.digits)}-{_r(rng, 13, string.digits)}-{_r(rng, 24)}"
    jwt = _jwt(rng)
    password = _r(rng, 14)
    key32 = base64.b64encode(bytes(rng.getrandbits(8) for _ in range(32))).decode()
    openai = f"sk-proj-{_r(rng, 20)}T3BlbkFJ{_r(rng, 20)}"
    pem, pem_body = _pem(rng, "RSA PRIVATE KEY")
    p = "detect-secrets plugin"
    samples = [
        Sample(p, "Artifactory Credentials", f"artifactory key: AKCp8{(v := _r(rng, 64))}\n", "AKCp8" + v),
        Sample(p, "AWS Access Key", f"export AWS_ACCESS_KEY_ID={aws}", aws),
        Sample(p, "AWS secret key", f'aws_secret_access_key = "{aws_secret}"', aws_secret),
        Sample(p, "Azure Storage Account key", f"AccountKey={(v := _r(rng, 86, B64) + '==')};Endpoint", v),
        Sample(p, "Basic Auth Credentials", f"clone https://ci:{password}@git.example.com/a.git", password),
        Sample(p, "Cloudant Credentials", f'cloudant_password = "{(v := _r(rng, 64, LOWER_HEX))}"', v),
        Sample(p, "Discord Bot Token", f"bot token {(v := 'M' + _r(rng, 23) + '.' + _r(rng, 6) + '.' + _r(rng, 27))}",
               v),
        Sample(p, "GitHub Token", f"my token {ghp} fails", ghp),
        Sample(p, "GitLab Token", f"use {(v := 'glpat-' + _r(rng, 20))} to push", v),
        Sample(p, "Base64 High Entropy String", f'signing_salt: "{(v := _r(rng, 40, B64))}"', v),
        Sample(p, "Hex High Entropy String", f'seed: "{(v := _r(rng, 40, LOWER_HEX))}"', v),
        Sample(p, "IBM Cloud IAM Key", f'ibm_cloud_iam_key = "{(v := _r(rng, 44, B64URL))}"', v),
        Sample(p, "IBM COS HMAC Credentials", f'cos_hmac_secret_access_key = "{(v := _r(rng, 48, LOWER_HEX))}"', v),
        Sample(p, "JSON Web Token", f"the token {jwt} expired", jwt.replace(".", " ")),
        Sample(p, "Secret Keyword", f'db_password = "{password}"', password),
        Sample(p, "Mailchimp Access Key", f"mailchimp {(v := _r(rng, 32, LOWER_HEX) + '-us12')}", v),
        Sample(p, "NPM tokens", f"//registry.npmjs.org/:_authToken=npm_{(v := _r(rng, 36))}", v),
        Sample(p, "OpenAI Token", f"OPENAI_API_KEY={openai}", openai),
        Sample(p, "Private Key", f"the key:\n{pem}\nthanks", pem_body),
        Sample(p, "PyPI Token", f"token: {(v := 'pypi-AgEIcHlwaS5vcmc' + _r(rng, 80, B64URL))}", v),
        Sample(p, "SendGrid API Key", f"key {(v := 'SG.' + _r(rng, 22) + '.' + _r(rng, 43))} here", v),
        Sample(p, "Slack Token", f"bot token {slack} here", slack),
        Sample(p, "SoftLayer Credentials", f'softlayer_api_key = "{(v := _r(rng, 64, string.ascii_lowercase))}"', v),
        Sample(p, "Square OAuth Secret", f"secret {(v := 'sq0csp-' + _r(rng, 43))}", v),
        Sample(p, "Stripe Access Key", f"stripe {(v := 'sk_live_' + _r(rng, 24))}", v),
        Sample(p, "Telegram Bot Token", f"bot {(v := _r(rng, 9, string.digits) + ':' + _r(rng, 35))}", v),
        Sample(p, "Twilio API Key", f"twilio {(v := 'SK' + _r(rng, 32, LOWER_HEX))}", v),
    ]
    samples += [
        Sample("JWT", "JWT in prose", f"curl with {jwt} fails", jwt.replace(".", " ")),
        Sample("JWT", "JWT in a JSON field", json.dumps({"id_token": jwt}), jwt.replace(".", " ")),
        Sample("JWT", "JWT in a URL query", f"open https://app.example.com/cb?token={jwt}&x=1", jwt.replace(".", " ")),
        Sample("JWT", "Authorization: Bearer JWT", f"Authorization: Bearer {jwt}", jwt.replace(".", " ")),
    ]
    for kind in ("RSA PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY", "ENCRYPTED PRIVATE KEY",
                 "PGP PRIVATE KEY BLOCK"):
        block, body = _pem(rng, kind)
        samples.append(Sample("private key", f"PEM {kind}", f"key:\n{block}\n", body))
    samples.append(Sample("private key", "PEM in a JSON string (escaped newlines)",
                          json.dumps({"private_key": pem + "\n"}), pem_body))
    samples += [
        Sample("URL password", "https user:password", f"https://ana:{password}@example.com/x", password),
        Sample("URL password", "postgres password with $ and !",
               f"postgresql://app:{(v := _r(rng, 6) + '$!' + _r(rng, 6))}@db:5432/prod", v),
        Sample("URL password", "redis password, no user", f"redis://:{password}@cache:6379/0", password),
        Sample("URL password", "mongodb+srv", f"mongodb+srv://svc:{password}@cluster0.example.net/db", password),
        # Raw reserved characters, as people paste them: the password runs to the last @ before the host.
        Sample("URL password", "password with a slash", f"postgres://app:{(v := _r(rng, 12) + '/' + _r(rng, 12))}@db/prod",
               v),
        Sample("URL password", "password with # and no user", f"redis://:{(v := _r(rng, 10) + '#' + _r(rng, 12))}@cache:6379/0",
               v),
        Sample("URL password", "password with @ and $", f"amqp://guest:{(v := _r(rng, 4) + '@' + _r(rng, 3) + '$' + _r(rng, 8))}@rabbit/",
               v),
    ]
    samples += [
        Sample("base64-encoded", "base64 of a GitHub token", f"token: {(v := _b64(ghp))}", v),
        Sample("base64-encoded", "base64 of a .env line", f"data: {(v := _b64('DB_PASSWORD=' + password))}", v),
        Sample("base64-encoded", "base64 of a Slack token (k8s secret)", f"  slack: {(v := _b64(slack))}", v),
        Sample("base64-encoded", "base64 of a PEM private key", f"tls.key: {(v := _b64(pem))}", v),
        Sample("base64-encoded", "random 32-byte key (openssl rand -base64 32)", f"SECRET_KEY is {key32}", key32),
        Sample("base64-encoded", "base64url of a GitHub token", f"t={(v := base64.urlsafe_b64encode(ghp.encode()).decode())}",
               v),
    ]
    samples += [
        Sample("split over lines", "GitHub token 18+rest (the issue's input)", f"token {_split(ghp, 22)} here",
               _split(ghp, 22, " ")),
        Sample("split over lines", "GitHub token, indented continuation", f"  token {_split(ghp, 20, chr(10) + '    ')}",
               _split(ghp, 20, " ")),
        Sample("split over lines", "JWT wrapped in its signature", f"jwt:\n{_split(jwt, len(jwt) - 20)}\nend",
               _split(jwt, len(jwt) - 20, " ").replace(".", " ")),
        Sample("split over lines", "AWS key 10+10", f"key {_split(aws, 10)} ok", _split(aws, 10, " ")),
        Sample("split over lines", "Slack token wrapped", f"{_split(slack, 26)}\n", _split(slack, 26, " ")),
        Sample("split over lines", "random 32-byte key wrapped", f"key:\n{_split(key32, 22)}\n", _split(key32, 22, " ")),
    ]
    samples += [
        Sample("other", "Authorization: Basic header", f"Authorization: Basic {(v := _b64('ci:' + password))}", v),
        Sample("other", "random 24-char API key, no prefix", f"api key {(v := _r(rng, 24))} please", v),
        Sample("other", "random 40-char API key, no prefix", f"use {(v := _r(rng, 40))} to log in", v),
    ]
    # From a generator of their own (seeded by this draw's token), so that the draws above stay as they were.
    rng = random.Random(ghp)
    samples += [
        Sample("LLM provider keys", "OpenAI project key (sk-proj-, with - and _)",
               f"OPENAI_API_KEY={(v := 'sk-proj-' + _r(rng, 124, B64URL))}", v),
        Sample("LLM provider keys", "OpenAI service-account key", f"key {(v := 'sk-svcacct-' + _r(rng, 96, B64URL))} ok", v),
        Sample("LLM provider keys", "OpenAI admin key", f"admin: {(v := 'sk-admin-' + _r(rng, 96, B64URL))}", v),
        Sample("LLM provider keys", "OpenAI legacy key, 48 characters", f"use {(v := 'sk-' + _r(rng, 48))} here", v),
        Sample("LLM provider keys", "Anthropic key", f"ANTHROPIC_API_KEY={(v := 'sk-ant-api03-' + _r(rng, 93, B64URL) + 'AA')}",
               v),
    ]
    return samples


# Text that holds no secret: what neither the masker nor the check may take for one.
NOT_SECRETS = [
    "Fixed in 3f786850e387550fdab836ed7e6dc881de23001b; run 0f8fad5b-d9cb-469f-a165-70867728950e.",
    "Raise InvalidBase64CharactersDefect or DefaultAsyncHttpx2Client from pandas.core.arrays.IntegerArray.",
    "See /home/ana/.cache/pypoetry/virtualenvs/widgets-Xy12AbCd-py3.11/lib/python3.11/site-packages.",
    "Models: cross-encoder/ms-marco-MiniLM-L6-v2, HuggingFaceTB/SmolLM2-135M-Instruct, intfloat/e5-base-v2.",
    "Open https://drive.google.com/drive/folders/1DOkD5OUjFa0r5Ik3SgywJLJtEo2qLxO or https://github.com/a/b/blob/"
    "e77fd93598cb6e7dc1b8b1f53c00e5aa410c201a/README.md.",
    "The alphabet is ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/ as in RFC 4648.",
    "An icon: data:image/png;base64,iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNkYPhfDwAChwGA60e6kg",
    "Use `password = get_password()` and password = \"${PASSWORD}\"; see Bearer authentication in RFC 6750.",
    "DataFrame.groupby(by=None, axis=0, level=None, as_index=True, sort=True, group_keys=True, dropna=True)",
    "pandas 2.2.3 (2026-06-01 09:00:00, ts 1780304400.000100), numpy>=1.26.4,<2.0, torch==2.5.1+cu121.",
    "integrity sha512-Q8mZ6nqhfpiB8h0J5JDEr7S7Kq0mVwNlRq2vM7m0bqx1Qq0y9bYwV5RZvYfJ0w9K3R1Xq2T8lP0aZ1e4z7c6Ag==",
    "Install sk-learn-compatible-estimators (sk-learn-style fit/predict), unlike risk-adjusted-returns-model.",
    "Reach the maintainers on the tracker; the configuration\ndocumentation explains the\nAuthenticationManager.",
]


def _leaked(secret: str, masked: str) -> bool:
    for piece in secret.split():
        size = min(WINDOW, len(piece))
        if any(piece[i:i + size] in masked for i in range(len(piece) - size + 1)):
            return True
    return False


def measure(module: ModuleType, draws: int = DRAWS, seed: int = 0) -> dict[str, dict]:
    """``{format: {group, n, masked, flagged, escapes}}`` for a redaction module (``redact``,
    ``find_secrets``), plus ``"(no secret)"``: how many of ``NOT_SECRETS`` it changes or flags."""
    rng = random.Random(seed)
    rows: dict[str, dict] = {}
    for _ in range(draws):
        for sample in draw(rng):
            row = rows.setdefault(sample.format, {"group": sample.group, "n": 0, "masked": 0, "flagged": 0,
                                                  "escapes": 0})
            masked = module.redact(sample.text)
            leaked = _leaked(sample.secret, masked)
            row["n"] += 1
            row["masked"] += not leaked
            row["flagged"] += bool(module.find_secrets(sample.text))
            row["escapes"] += leaked and not module.find_secrets(masked)
    rows["(no secret)"] = {"group": "false positives", "n": len(NOT_SECRETS),
                           "masked": sum(module.redact(t) != t for t in NOT_SECRETS),
                           "flagged": sum(bool(module.find_secrets(t)) for t in NOT_SECRETS), "escapes": 0}
    return rows


def table(after: dict[str, dict], before: dict[str, dict] | None = None) -> str:
    """A Markdown table: per format the masked/flagged/escaping shares, before -> after when given."""
    def cell(key: str, fmt: str) -> str:
        now = after[fmt][key] / after[fmt]["n"]
        return f"{before[fmt][key] / before[fmt]['n']:.0%} → {now:.0%}" if before else f"{now:.0%}"

    lines = ["| group | format | n | masked | check flags raw | escapes both |", "|---|---|---|---|---|---|"]
    for fmt, row in after.items():
        lines.append(f"| {row['group']} | {fmt} | {row['n']} | {cell('masked', fmt)} | {cell('flagged', fmt)} | "
                     f"{cell('escapes', fmt)} |")
    return "\n".join(lines)


def module_at(revision: str) -> ModuleType:
    """``reference_arch/common/redaction.py`` as it was at a git revision, as a module."""
    import subprocess
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    source = subprocess.run(["git", "show", f"{revision}:reference_arch/common/redaction.py"], cwd=root,
                            check=True, capture_output=True, text=True).stdout
    import sys

    module = sys.modules.setdefault(f"redaction_at_{revision}", ModuleType(f"redaction_at_{revision}"))
    exec(compile(source, f"redaction.py@{revision}", "exec"), module.__dict__)  # noqa: S102 - our own file
    return module


def main(argv: list[str] | None = None) -> None:
    import argparse

    from reference_arch.common import redaction

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", help="a git revision whose redaction.py to compare with")
    parser.add_argument("--draws", type=int, default=DRAWS)
    args = parser.parse_args(argv)
    before = measure(module_at(args.before), args.draws) if args.before else None
    print(table(measure(redaction, args.draws), before))


if __name__ == "__main__":
    main()
