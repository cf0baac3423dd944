"""The Pipes message reader the trainer's subprocess writes to: Dagster's temporary-file reader, reading whole
lines only.

Dagster's ``PipesFileMessageReader`` tails the file with ``readline`` and parses what it returns. A line the
trainer is still writing is returned in part (a write that crosses a page boundary becomes visible a page at
a time), its JSON fails to parse, the reader thread dies and the step fails though training went on: a demo
saw ``JSONDecodeError: Expecting ',' delimiter: line 1 column 237`` at step 240 of 800. Here a line is
parsed once its newline has arrived.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import dagster as dg
from dagster_pipes import PipesDefaultMessageWriter

POLL_S = 0.01  # as Dagster's own tail


def whole_lines(path: str, should_stop: Callable[[], bool]) -> Iterator[str]:
    """The lines appended to ``path`` until ``should_stop()`` and no more data, each yielded once complete
    (ending in a newline). A last line without one, left by a writer killed mid-write, is dropped."""
    pending = ""
    with open(path, encoding="utf-8") as stream:
        while True:
            piece = stream.readline()
            if piece:
                pending += piece
                if pending.endswith("\n"):
                    yield pending
                    pending = ""
            elif should_stop():
                return
            else:
                time.sleep(POLL_S)


class WholeLineMessageReader(dg.PipesMessageReader):
    """``PipesTempFileMessageReader``'s protocol (a file path in the bootstrap parameters, one JSON message
    per line), reading whole lines only."""

    @contextmanager
    def read_messages(self, handler) -> Iterator[dict]:
        closed = threading.Event()
        with tempfile.TemporaryDirectory(prefix="pipes-") as folder:
            path = os.path.join(folder, "messages")
            open(path, "w", encoding="utf-8").close()

            def read() -> None:
                try:
                    for line in whole_lines(path, closed.is_set):
                        handler.handle_message(json.loads(line))
                except BaseException:
                    handler.report_pipes_framework_exception(f"{type(self).__name__} reader thread",
                                                             sys.exc_info())
                    raise

            thread = threading.Thread(target=read, name="pipes-messages", daemon=True)
            thread.start()
            try:
                yield {PipesDefaultMessageWriter.FILE_PATH_KEY: path,
                       PipesDefaultMessageWriter.INCLUDE_STDIO_IN_MESSAGES_KEY: False}
            finally:
                closed.set()
                thread.join()

    def no_messages_debug_text(self) -> str:
        return "Attempted to read messages from a local temporary file."
