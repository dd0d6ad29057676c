"""The documentation stands on its own: every relative link in README.md and docs/*.md
points at a file of the repository (and, with `#anchor`, at a heading of it), and no
tracked text file points outside the repository (a clone has nothing beside it)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# Built from parts so that this file does not match itself.
OUTSIDE_POINTERS = ("../" + "shared", "/" + "work/")
TEXT_SUFFIXES = {".md", ".py", ".yaml", ".yml", ".toml", ".txt", ".sh", ".json", ".cfg", ".ini"}

_FENCE = re.compile(r"^\s*(```|~~~)")
_INLINE_CODE = re.compile(r"`[^`]*`")
# [text](target) and ![alt](target); the target ends at whitespace or ')'.
_LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")


def markdown_links(text: str) -> list[tuple[int, str]]:
    """(line number, target) of every inline link outside code blocks and code spans."""
    links = []
    in_fence = False
    for number, line in enumerate(text.splitlines(), start=1):
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if in_fence:
            continue
        for match in _LINK.finditer(_INLINE_CODE.sub("", line)):
            links.append((number, match.group(1)))
    return links


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lowercase, punctuation dropped, spaces to '-'."""
    text = _INLINE_CODE.sub(lambda m: m.group(0)[1:-1], heading)
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", text)  # a link keeps its text
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """The anchors of every heading of a markdown text (duplicates get -1, -2, ...)."""
    seen: dict[str, int] = {}
    out = set()
    in_fence = False
    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        match = None if in_fence else _HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            out.add(base if count == 0 else f"{base}-{count}")
    return out


def broken_links(doc: Path, root: Path) -> list[str]:
    """Every relative link of `doc` whose file (or heading) does not exist inside `root`."""
    problems = []
    text = doc.read_text(encoding="utf-8")
    for number, target in markdown_links(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, mailto:, ...
            continue
        path_part, _, anchor = target.partition("#")
        where = f"{doc.relative_to(root)}:{number}: {target}"
        if path_part:
            resolved = (doc.parent / path_part).resolve()
            if not resolved.is_relative_to(root):
                problems.append(f"{where} (outside the repository)")
                continue
            if not resolved.exists():
                problems.append(f"{where} (no such file)")
                continue
        else:
            resolved = doc
        if (
            anchor
            and resolved.suffix == ".md"
            and resolved.is_file()
            and anchor not in anchors(resolved.read_text(encoding="utf-8"))
        ):
            problems.append(f"{where} (no heading with that anchor)")
    return problems


def documents(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md"))]


def tracked_text_files(root: Path) -> list[Path]:
    try:
        out = subprocess.run(
            ["git", "ls-files", "-z"], cwd=root, capture_output=True, check=True
        ).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    names = [name for name in out.split("\0") if name]
    return [root / name for name in names if Path(name).suffix in TEXT_SUFFIXES]


def outside_pointers(paths: list[Path], root: Path) -> list[str]:
    hits = []
    for path in paths:
        if not path.is_file():
            continue  # deleted in the work tree, not yet in the index
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            for pointer in OUTSIDE_POINTERS:
                if pointer in line:
                    hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return hits


# ---- the repository ------------------------------------------------------------------


def test_the_documents_exist() -> None:
    for doc in documents(ROOT):
        assert doc.is_file(), doc
    assert (ROOT / "docs" / "semantics.md").is_file()
    assert (ROOT / "docs" / "compatibility.md").is_file()


def test_every_relative_link_resolves_inside_the_repository() -> None:
    problems = [p for doc in documents(ROOT) for p in broken_links(doc, ROOT)]
    assert problems == [], "\n".join(problems)


def test_no_tracked_text_file_points_outside_the_repository() -> None:
    hits = outside_pointers(tracked_text_files(ROOT), ROOT)
    assert hits == [], "\n".join(hits)


# ---- the checks themselves can fail ----------------------------------------------------


def test_a_missing_file_an_escaping_link_and_a_wrong_anchor_are_reported(tmp_path: Path) -> None:
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "b.md").write_text("# Title\n\n## The `run.json` manifest\n")
    doc = tmp_path / "README.md"
    doc.write_text(
        "See [b](docs/b.md), [m](docs/b.md#the-runjson-manifest), [top](#readme) and\n"
        "[web](https://example.com/x.md).\n"
        "[gone](docs/missing.md) [out](../" + "shared/SPEC.md) [bad](docs/b.md#nope)\n"
        "```\n[in code](nowhere.md)\n```\n"
        "`[in a code span](nowhere.md)`\n"
        "# Readme\n"
    )
    problems = broken_links(doc, tmp_path)
    assert [p.split(": ", 1)[1] for p in problems] == [
        "docs/missing.md (no such file)",
        "../" + "shared/SPEC.md (outside the repository)",
        "docs/b.md#nope (no heading with that anchor)",
    ]


def test_a_pointer_outside_the_repository_is_reported(tmp_path: Path) -> None:
    good = tmp_path / "good.py"
    good.write_text('"""See docs/semantics.md."""\n')
    bad = tmp_path / "bad.yaml"
    bad.write_text("# Fields: " + "../" + "shared/SEMANTICS.md\n")
    assert outside_pointers([good, bad], tmp_path) == [
        "bad.yaml:1: # Fields: " + "../" + "shared/SEMANTICS.md"
    ]


def test_slugs_follow_github() -> None:
    assert slug("Truth layer (`paths`)") == "truth-layer-paths"
    assert slug("`run.json`: the manifest") == "runjson-the-manifest"
    assert slug("Replay, one bar at a time") == "replay-one-bar-at-a-time"
