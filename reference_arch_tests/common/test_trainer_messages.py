"""The trainer's Pipes messages are parsed only once a line is whole: a demo's training step failed when
Dagster's reader parsed a line the trainer was still writing (``JSONDecodeError ... column 237``)."""

from __future__ import annotations

import json
import threading
import time


def _write_in_two_pieces(path, message: dict, written: threading.Event) -> None:
    line = json.dumps(message) + "\n"
    with open(path, "a", encoding="utf-8") as stream:
        stream.write(line[:236])
        stream.flush()  # the reader sees the first piece alone, as it saw a page of a longer write
        time.sleep(0.3)
        stream.write(line[236:])
    written.set()


def _read_all(tail, path, written: threading.Event) -> list[str]:
    return list(tail(str(path), lambda: written.is_set()))


def test_a_line_is_read_once_whole(tmp_path):
    from reference_arch.common.trainer.messages import whole_lines

    path = tmp_path / "messages"
    path.write_text("")
    message = {"__dagster_pipes_version": "0.1", "method": "report_custom_message",
               "params": {"payload": {"step": 240, "loss": 4.98, "note": "x" * 300}}}
    written = threading.Event()
    writer = threading.Thread(target=_write_in_two_pieces, args=(path, message, written))
    writer.start()
    lines = _read_all(whole_lines, path, written)
    writer.join()
    assert [json.loads(line) for line in lines] == [message]


def test_dagsters_own_tail_returns_the_piece(tmp_path):
    """Why the reader is the project's own: Dagster's tail yields the unfinished piece (if this starts to
    fail, Dagster fixed it and its reader can come back)."""
    from dagster._utils import tail_file

    path = tmp_path / "messages"
    path.write_text("")
    written = threading.Event()
    writer = threading.Thread(target=_write_in_two_pieces, args=(path, {"params": "y" * 300}, written))
    writer.start()
    lines = _read_all(tail_file, path, written)
    writer.join()
    assert len(lines) == 2 and not lines[0].endswith("\n")

