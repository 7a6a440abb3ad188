"""The package's folders are layers: each imports only the ones below it, peers never meet, no cycles.

The order is declared once, here (README "Layout and speed" lists the same order). Allowed imports are
derived from it, not listed: a module may import modules of its own folder and of any folder on a
lower level; folders on one level are peers (the wave-2 rooms: ui, tui, integrations, mirror) and
may not import each other; and no import graph may have a cycle, inside a folder included.
Relative and absolute (``tracklog.x``) imports both count, lazy ones inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import tracklog

PKG = Path(tracklog.__file__).parent

# Lowest first. Root modules: BASE sits below every folder, TOP above every folder.
LAYERS: list[list[str]] = [
    ["store"],  # paths, safe opening, locks, artifact blobs
    ["log"],  # segment bytes, the record codec, the frame walk, the segment writer
    ["state"],  # result types, the fold, snapshot and index files
    ["read"],  # load, replay, compact, Store, filters, tail, checks
    ["write"],  # Run, start_run, validation, resume, lifecycle
    ["interop"],  # MLflow, TensorBoard, CSV/JSON
    [
        "ui",
        "tui",
        "integrations",
        "mirror",
    ],  # the wave-2 rooms, peers: web page, terminal app, drop-in APIs, object-store mirror
    ["cli"],  # the command, one module per command
]
BASE = {"errors", "_version"}
TOP = {"__init__", "__main__"}


def _modules(pkg: Path) -> dict[str, Path]:
    """Dotted module name (relative to the package, '' for its __init__) -> file."""
    out = {}
    for path in sorted(pkg.rglob("*.py")):
        parts = list(path.relative_to(pkg).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _imports(name: str, path: Path, modules: dict[str, Path], pkg_name: str) -> set[str]:
    """The package modules that ``name`` imports, by dotted name."""
    is_pkg = path.name == "__init__.py"
    here = name.split(".") if name else []
    package = here if is_pkg else here[:-1]
    found: set[str] = set()

    def add(dotted: list[str], names: list[str]) -> None:
        base = ".".join(dotted)
        for n in names:  # `from x import y` names a submodule y when x.y is a module
            sub = f"{base}.{n}" if base else n
            found.add(sub if sub in modules else base)

    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                up = package[: len(package) - (node.level - 1)] if node.level > 1 else package
                target = up + (node.module.split(".") if node.module else [])
            elif node.module and node.module.split(".")[0] == pkg_name:
                target = node.module.split(".")[1:]
            else:
                continue
            add(target, [a.name for a in node.names])
        elif isinstance(node, ast.Import):
            for a in node.names:
                parts = a.name.split(".")
                if parts[0] == pkg_name:
                    found.add(".".join(parts[1:]))
    found.discard(name)
    return {m for m in found if m in modules}


def _place(name: str, layers: list[list[str]]) -> tuple[float, str]:
    """(level, folder) of a module: BASE below every folder, TOP above them all."""
    head = name.split(".")[0] if name else "__init__"
    if "." not in name and name != "" and head not in {f for level in layers for f in level}:
        if head in BASE:
            return -1, ""
        if head in TOP:
            return len(layers), ""
        raise AssertionError(f"root module {name!r} is in no layer: add it to BASE, TOP or a folder")
    if name == "":
        return len(layers), ""
    for i, level in enumerate(layers):
        if head in level:
            return i, head
    raise AssertionError(f"folder {head!r} is in no layer: add it to LAYERS")


def layer_violations(pkg: Path, layers: list[list[str]]) -> list[str]:
    """Every import that breaks the folder order, every peer import, and every cycle."""
    modules = _modules(pkg)
    graph = {m: _imports(m, p, modules, pkg.name) for m, p in modules.items()}
    bad = []
    for src, targets in graph.items():
        s_level, s_folder = _place(src, layers)
        for tgt in sorted(targets):
            t_level, t_folder = _place(tgt, layers)
            if t_level > s_level:
                bad.append(f"{src or '__init__'} imports {tgt}, a higher layer")
            elif t_level == s_level and t_folder != s_folder:
                bad.append(f"{src} imports {tgt}, a peer folder")
    # Cycles: depth-first search with colours; each cycle reported once by its members.
    colour: dict[str, int] = {}
    stack: list[str] = []
    cycles: set[tuple[str, ...]] = set()

    def visit(m: str) -> None:
        colour[m] = 1
        stack.append(m)
        for t in graph[m]:
            if colour.get(t) == 1:
                cyc = stack[stack.index(t) :]
                cycles.add(tuple(sorted(cyc)))
            elif t not in colour:
                visit(t)
        stack.pop()
        colour[m] = 2

    for m in sorted(graph):
        if m not in colour:
            visit(m)
    bad += [f"import cycle: {' <-> '.join(c)}" for c in sorted(cycles)]
    return bad


def test_the_package_keeps_its_layers() -> None:
    assert layer_violations(PKG, LAYERS) == []


def test_every_folder_is_in_a_layer() -> None:
    folders = {p.name for p in PKG.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    assert folders == {f for level in LAYERS for f in level}


# -- the check itself can fail ------------------------------------------------------------------


def _fake_package(root: Path, files: dict[str, str]) -> Path:
    pkg = root / "tracklog"
    for rel, text in files.items():
        path = pkg / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        for parent in [path.parent, *path.parent.parents]:
            if parent == root:
                break
            (parent / "__init__.py").touch()
        path.write_text(text)
    return pkg


GOOD = {
    "errors.py": "",
    "__init__.py": "from .read.b import B\n",
    "store/a.py": "from ..errors import X\n",
    "read/b.py": "from ..store import a\nfrom . import c\n",
    "read/c.py": "import tracklog.store.a\n",
    "ui/page.py": "from ..read.b import B\n",
    "tui/app.py": "from tracklog.read import b\n",
}
FAKE_LAYERS = [["store"], ["read"], ["ui", "tui"]]


def test_a_clean_fake_package_passes(tmp_path: Path) -> None:
    assert layer_violations(_fake_package(tmp_path, GOOD), FAKE_LAYERS) == []


@pytest.mark.parametrize(
    ("where", "text", "expected"),
    [
        ("store/bad.py", "from ..read.b import B\n", "store.bad imports read.b, a higher layer"),
        (
            "store/bad.py",
            "def f():\n    import tracklog.read.c\n",
            "store.bad imports read.c, a higher layer",
        ),
        ("store/bad.py", "from tracklog.read import b\n", "store.bad imports read.b, a higher layer"),
        ("errors.py", "from .store.a import A\n", "errors imports store.a, a higher layer"),
        ("ui/bad.py", "from ..tui.app import App\n", "ui.bad imports tui.app, a peer folder"),
        ("read/c.py", "from .b import B\n", "import cycle: read.b <-> read.c"),
    ],
)
def test_a_bad_import_is_caught(tmp_path: Path, where: str, text: str, expected: str) -> None:
    pkg = _fake_package(tmp_path, {**GOOD, where: text})
    assert expected in layer_violations(pkg, FAKE_LAYERS)


def test_an_unplaced_folder_is_an_error(tmp_path: Path) -> None:
    pkg = _fake_package(tmp_path, {**GOOD, "mirror/sync.py": ""})
    with pytest.raises(AssertionError, match="mirror"):
        layer_violations(pkg, FAKE_LAYERS)


def test_only_the_codec_imports_msgpack() -> None:
    users = set()
    for path in PKG.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = (
                [a.name for a in node.names]
                if isinstance(node, ast.Import)
                else [node.module or ""]
                if isinstance(node, ast.ImportFrom) and node.level == 0
                else []
            )
            if any(n.split(".")[0] == "msgpack" for n in names):
                users.add(path.relative_to(PKG).as_posix())
    assert users == {"log/codec.py"}
