"""docs/architecture.md's import graph is the code's: regenerated, it is the same text."""

from __future__ import annotations

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _import_graph():  # docs/import_graph.py is a script, not a module of the package
    spec = importlib.util.spec_from_file_location("import_graph", ROOT / "docs" / "import_graph.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_import_graph_in_architecture_md_is_current() -> None:
    graph = _import_graph()
    text = graph.DOC.read_text(encoding="utf-8")
    expected = graph.current_doc(text, graph.render(graph.graph()))
    assert text == expected, (
        "run `python docs/import_graph.py --write` and commit docs/architecture.md"
    )


def test_every_module_has_a_layer() -> None:
    graph = _import_graph()
    for module in graph.modules():
        graph.layer_of(module)  # raises for a module that no layer names
