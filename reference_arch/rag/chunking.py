"""Chunking documents with langchain-text-splitters, sized in the embedding model's own tokens.

Markdown (docs pages, GitHub threads, Slack threads) is first cut at its ``#``/``##`` headings, so a
chunk never straddles two comments or two sections; reStructuredText, numpydoc docstrings and plain
text are cut at their own section boundaries, paragraphs, lines, then words. Code fences are kept
whole where they fit.

Every chunk starts with a context line, the document's title and the chunk's section path
(``pandas.Series.rename``, ``Configuration > The !env tag``), because a chunk that says "pass
``storage_options``" means little without knowing which page it came from. The chunk's size counts
that line and the model's special tokens, so no chunk exceeds what the model reads
(all-MiniLM-L6-v2 truncates at 256 tokens).

A docstring also gets a **summary chunk**: its dotted name and the docstring's first paragraph, alone.
The other chunks mix that sentence with a long signature and parameter lists; a short question ("make
a column the row labels") matches the one-line summary best. Chosen on the dev parts of the question
sets (pandas_dataframe dev recall@5 0.63 -> 0.74, samples 0.93 -> 0.94; ``rag/question_sets.py``).
Compiled callables (numpy's ufuncs, builtins) repeat their signature at the top of their docstring;
the summary skips those lines (on samples + the pandas and numpy APIs, 464 of 3,277 summaries were a
signature; numpy dev recall@5 0.736 -> 0.750, the other sets unchanged).

A chunk's id is its document's id and the hash of its text: deterministic, and unchanged exactly when
the text is, which is what lets the index skip re-embedding it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable


# Where each format is best cut, most meaningful boundary first (regular expressions).
DOCSTRING_SEPARATORS = [r"\n\n(?=[A-Z][A-Za-z ]+\n-{3,}\n)", r"\n\n", r"\n", r" ", r""]
TEXT_SEPARATORS = [r"\n\n", r"\n", r"(?<=[.!?]) ", r" ", r""]
# A paragraph that is call signatures (one or several lines): ``absolute(x, /, out=None, ...)``,
# ``str(object='') -> str``, or the ``__text_signature__`` form ``bool(value=False, /)\n--``; not a summary.
SIGNATURE = re.compile(r"[A-Za-z_][\w.]*\(.*\)(\s*->[^\n]*)?(\n--)?", re.DOTALL)
MARKDOWN_LEVELS = 2  # sections at # and ## headings
CHUNK_FIELDS = ("id", "document_id", "source_type", "source", "title", "url", "text", "created_at", "updated_at",
                "position", "tokens", "text_hash", "document_hash", "chunker")


@dataclass(frozen=True)
class ChunkSettings:
    max_tokens: int = 256  # the model's limit, special tokens included
    chunk_tokens: int = 192  # target size of a chunk's body
    overlap_tokens: int = 24
    special_tokens: int = 2  # [CLS] and [SEP]

    def fingerprint(self, model: str) -> str:
        """Changes when re-chunking would give different chunks."""
        # v3: Markdown sections from a CommonMark parser (code blocks' "#" lines are no headings),
        # and a summary chunk per docstring; v4: the summary skips a docstring's own signature lines;
        # v5: a word too long for WordPiece counts its characters (``embeddings.count_tokens``), so it is cut
        return f"{model}|{self.max_tokens}|{self.chunk_tokens}|{self.overlap_tokens}|v5"


def _separators(fmt: str) -> list[str]:
    from langchain_text_splitters import Language, RecursiveCharacterTextSplitter

    if fmt == "markdown":
        return RecursiveCharacterTextSplitter.get_separators_for_language(Language.MARKDOWN)
    if fmt == "rst":
        return RecursiveCharacterTextSplitter.get_separators_for_language(Language.RST)
    if fmt == "docstring":
        return DOCSTRING_SEPARATORS
    return TEXT_SEPARATORS


def sections(doc: dict) -> list[tuple[str, str]]:
    """``(section path, text)`` pieces of a document: Markdown split at its ``#``/``##`` headings as a
    CommonMark parser finds them (a ``#`` comment in a fenced or indented code block is code, not a
    heading; langchain's MarkdownHeaderTextSplitter knows only fences), others whole."""
    if doc["format"] != "markdown":
        return [("", doc["text"])]
    from reference_arch.common.markdown import sections as markdown_sections

    out = []
    for headings, body in markdown_sections(doc["text"], max_level=MARKDOWN_LEVELS):
        path = " > ".join(h for h in headings if h.strip() and h.strip() not in doc["title"])
        out.append((path, body))
    return out or [("", doc["text"])]


def _fit(text: str, limit: int, count: Callable[[str], int]) -> str:
    """``text`` cut (at a word) to at most ``limit`` tokens."""
    while text and count(text) > limit:
        text = text[: int(len(text) * 0.8)].rsplit(" ", 1)[0]
    return text


def summary_chunk(doc: dict, count: Callable[[str], int], room: int) -> list[str]:
    """``[title + the docstring's first paragraph of prose]`` (after the signature line, and after the
    docstring's own signature lines, which compiled callables such as numpy's ufuncs start with), cut
    to ``room`` tokens; none when the docstring has no paragraph of prose before its first section."""
    for paragraph in doc["text"].split("\n\n")[1:]:
        paragraph = paragraph.strip()
        if not paragraph or SIGNATURE.fullmatch(paragraph):
            continue
        if "\n---" in paragraph:  # a numpydoc section: no summary
            return []
        return [_fit(f"{doc['title']}\n\n{paragraph}", room, count)]
    return []


def chunk_document(doc: dict, count: Callable[[str], int], settings: ChunkSettings, chunker: str = "") -> list[dict]:
    """The chunks of one document, in order; ``count`` counts tokens without special tokens."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    room = settings.max_tokens - settings.special_tokens
    texts: list[str] = []
    for path, body in sections(doc):
        if not body.strip():
            continue
        # a long title or heading is cut so the body keeps most of the room
        context = _fit(doc["title"], room // 6, count) + (f" > {_fit(path, room // 8, count)}" if path else "")
        budget = room - count(context + "\n\n")
        size = max(16, min(settings.chunk_tokens, budget))
        pending = [body]
        while pending:
            splitter = RecursiveCharacterTextSplitter(
                separators=_separators(doc["format"]), is_separator_regex=True, keep_separator=True,
                chunk_size=size, chunk_overlap=min(settings.overlap_tokens, size // 4), length_function=count)
            for piece in splitter.split_text(pending.pop(0)):
                if piece.strip() in ("", doc["title"], path):  # a heading alone (an rst title) says nothing new
                    continue
                text = f"{context}\n\n{piece.strip()}"
                if count(text) <= room:
                    texts.append(text)
                else:  # the splitter's estimate ran over (tokens do not add up exactly): cut again, smaller
                    pending.append(piece)
                    size = max(8, size * 3 // 4)
    if doc["format"] == "docstring":
        texts += summary_chunk(doc, count, room)
    chunks, seen = [], set()
    for text in texts:
        digest = hashlib.sha256(text.encode()).hexdigest()
        if digest in seen:  # the same text twice in one document adds nothing (and would share an id)
            continue
        seen.add(digest)
        chunks.append({
            "id": f"{doc['id']}#{digest[:16]}", "document_id": doc["id"], "source_type": doc["source_type"],
            "source": doc["source"], "title": doc["title"], "url": doc["url"], "text": text,
            "created_at": doc["created_at"], "updated_at": doc["updated_at"], "position": len(chunks),
            "tokens": count(text) + settings.special_tokens, "text_hash": digest,
            "document_hash": doc["content_hash"], "chunker": chunker,
        })
    return chunks
