"""The README's map of the tree ("Where things live") agrees with the tree: every package under
``reference_arch/`` and every top-level folder has its line, and every line names a folder that exists.
A map line is a folder name ending in ``/`` indented two spaces per level under its parent, then what
lives there."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEADING = "## Where things live"
# Folders other branches of issue 13 are adding: mapped already, absent until they land.
COMING: set[str] = set()  # folders the map may name before they exist (none now)
LINE = re.compile(r"^(?P<indent> *)(?P<name>[\w.-]+)/ +(?P<what>\S.*)$")


def map_lines(readme: str) -> list[str]:
    """The lines of the first fenced block after the map's heading."""
    assert HEADING in readme, f"README.md has no map: no `{HEADING}` heading"
    section = readme.split(HEADING, 1)[1]
    assert section.count("```") >= 2, f"README.md's `{HEADING}` has no fenced block holding the map"
    block = section.split("```", 2)[1]
    return [line for line in block.splitlines()[1:] if line.strip()]  # [0] is the fence's language


def mapped_folders(lines: list[str]) -> list[str]:
    """Each line's folder as a path from the repository root; a malformed line is an error naming it."""
    folders: list[str] = []
    parents: list[str] = []
    for line in lines:
        match = LINE.match(line)
        assert match, f"map line not `<indent>name/  what lives there`: {line!r}"
        depth, rest = divmod(len(match["indent"]), 2)
        assert not rest and depth <= len(parents), f"map line indented off its parent: {line!r}"
        parents[depth:] = [match["name"]]
        folders.append("/".join(parents))
    return folders


def top_level_folders() -> set[str]:
    """The top-level folders git keeps or would add (tracked, or untracked and not ignored); without git
    (an unpacked copy), the visible folders that .gitignore does not name."""
    try:
        listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                                capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        patterns = [p.strip().rstrip("/") for p in (ROOT / ".gitignore").read_text().splitlines()]
        return {p.name for p in ROOT.iterdir() if p.is_dir() and not p.name.startswith(".")
                and not any(q and not q.startswith("#") and fnmatch.fnmatch(p.name, q) for q in patterns)}
    return {path.split("/", 1)[0] for path in listed if "/" in path and (ROOT / path).exists()}


def real_folders() -> set[str]:
    """Every package under reference_arch/ and every top-level folder."""
    packages = {str(p.parent.relative_to(ROOT)) for p in (ROOT / "reference_arch").rglob("__init__.py")}
    return packages | top_level_folders()


def test_map_lines_parse_into_paths():
    lines = ["reference_arch/   the product", "  common/  shared", "    llm/  the LLM", "  rag/  a location",
             "bench/  benchmarks"]
    assert mapped_folders(lines) == ["reference_arch", "reference_arch/common", "reference_arch/common/llm",
                                     "reference_arch/rag", "bench"]
    for bad in (["  common/  shared"], ["reference_arch/"], ["reference_arch/  x", "   odd/  three spaces"]):
        try:
            mapped_folders(bad)
        except AssertionError:
            continue
        raise AssertionError(f"accepted a malformed map: {bad}")


def test_the_readme_map_and_the_tree_agree():
    folders = mapped_folders(map_lines((ROOT / "README.md").read_text()))
    repeated = sorted({f for f in folders if folders.count(f) > 1})
    assert not repeated, f"folders mapped twice: {repeated}"
    real = real_folders()
    unmapped = sorted(real - set(folders))
    assert not unmapped, f"folders missing from the README's map ({HEADING}): {unmapped}"
    gone = sorted(f for f in folders if not (ROOT / f).is_dir() and f not in COMING)
    assert not gone, f"the README's map names folders that do not exist: {gone}"
