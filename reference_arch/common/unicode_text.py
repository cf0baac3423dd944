"""User text made valid Unicode at the door, before any tokenizer or client sees it.

Python hands over text that cannot be encoded: command-line bytes that are not UTF-8 arrive as
lone surrogates U+DC80-U+DCFF (PEP 383, "surrogateescape"), and JSON run config may hold an escaped
half of a surrogate pair (``"\\ud83d"``). Tokenizers refuse such strings (``TypeError:
TextEncodeInput must be Union[...]``) and HTTP clients cannot encode them, deep inside a run.
"""

from __future__ import annotations

REPLACEMENT = "\ufffd"


def repair_text(text: str) -> tuple[str, int]:
    """``(text as valid Unicode, how many code points were repaired)``.

    Surrogate pairs split into halves are joined; bytes the command line could not decode are
    decoded as UTF-8 where they form it; what is left (undecodable bytes, lone surrogates) becomes
    U+FFFD, as a UTF-8 decoder with ``errors="replace"`` does.
    """
    try:
        text.encode("utf-8")
        return text, 0
    except UnicodeEncodeError:
        pass
    joined = text.encode("utf-16", "surrogatepass").decode("utf-16", "surrogatepass")
    data = bytearray()
    repaired = 0
    for ch in joined:
        code = ord(ch)
        if 0xDC80 <= code <= 0xDCFF:  # a byte that surrogateescape could not decode
            data.append(code - 0xDC00)
            repaired += 1
        elif 0xD800 <= code <= 0xDFFF:  # half of a surrogate pair, alone
            data += REPLACEMENT.encode()
            repaired += 1
        else:
            data += ch.encode("utf-8")
    return data.decode("utf-8", "replace"), repaired + len(text) - len(joined)


def valid_text(text: str) -> str:
    """``text`` repaired (see :func:`repair_text`), for paths that only need it to be valid."""
    return repair_text(text)[0]
