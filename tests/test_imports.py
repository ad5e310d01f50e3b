"""The project's import graph: no cycles (module-level and function-level imports alike), and the layering of
shared/design.md (mert below tasks below benchmark; probing never imports the feature cache or the models)."""
from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("mert", "tasks", "benchmark")


def _modules() -> dict[str, Path]:
    out = {}
    for pkg in PACKAGES:
        for p in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(p.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = p
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The project module that ``import name`` loads (the longest known prefix), or None."""
    parts = name.split(".")
    for k in range(len(parts), 0, -1):
        cand = ".".join(parts[:k])
        if cand in modules:
            return cand
    return None


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (functions included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        package = mod if is_pkg else mod.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    up = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                    base = ".".join(up + ([base] if base else []))
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for t in targets:
                r = _resolve(t, modules)
                if r is not None and r != mod:
                    graph[mod].add(r)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def _is_package_init(mod: str) -> bool:
    return mod in PACKAGES or (ROOT / mod.replace(".", "/") / "__init__.py").exists()


def test_no_import_cycle():
    graph = import_graph()
    # a package's __init__ re-exporting its submodules, which import the package's shared names, is the usual
    # Python layout and not a cycle between modules: drop the edges into a package __init__ from its own
    # submodules before looking for cycles
    pruned = {m: {t for t in ts if not (_is_package_init(t) and m.startswith(t + "."))} for m, ts in graph.items()}
    assert _cycles(pruned) == []


def test_layering():
    graph = import_graph()
    rank = {"mert": 0, "tasks": 1, "benchmark": 2}
    upward = [(m, t) for m, ts in graph.items() for t in ts if rank[t.split(".")[0]] > rank[m.split(".")[0]]]
    assert upward == []
    # probing and metrics never reach the model stack or the feature cache (the cache is the boundary)
    for leaf in ("benchmark.probes", "benchmark.heads", "benchmark.metrics"):
        assert not graph[leaf] & {"benchmark.features", "benchmark.representations", "benchmark.registry",
                                  "benchmark.external", "mert.model"}, (leaf, graph[leaf])
    # the pipeline knows nothing about processes; neither driver imports the other
    assert "benchmark.distributed" not in graph["benchmark.pipeline"]
    assert "benchmark.runner" not in graph["benchmark.distributed"]
    assert "benchmark.distributed" not in graph["benchmark.runner"]


# the optional encoder packages (benchmark/encoders, pyproject's extras): only their own family module imports each
OPTIONAL = {"dac": "benchmark.encoders.dac", "audiotools": "benchmark.encoders.dac", "muq": "benchmark.encoders.muq",
            "x_clip": "benchmark.encoders.muq", "laion_clap": "benchmark.encoders.clap",
            "torchlibrosa": "benchmark.encoders.clap", "torchvision": "benchmark.encoders.clap",
            "dasheng": "benchmark.encoders.dasheng"}


def _third_party_imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            out.add(node.module.split(".")[0])
    return out


def test_optional_encoder_packages_stay_in_their_family_module():
    for mod, path in _modules().items():
        for pkg in _third_party_imports(path) & set(OPTIONAL):
            assert OPTIONAL[pkg] == mod, f"{mod} imports the optional package {pkg} (only {OPTIONAL[pkg]} may)"
    graph = import_graph()
    families = {m for m in graph if m.startswith("benchmark.encoders.")}
    # the family modules are loaded by name (importlib) and nothing else imports them; the leaves never reach them
    assert not [m for m, ts in graph.items() if ts & families and m not in families], "a family module is imported"
    for leaf in ("benchmark.probes", "benchmark.heads", "benchmark.metrics"):
        assert "benchmark.encoders" not in graph[leaf]


def test_the_core_loads_no_optional_package():
    """Listing the models and loading a core one imports none of the optional encoder packages."""
    import subprocess
    import sys

    code = ("import sys, io, contextlib\n"
            "from benchmark.__main__ import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    assert main(['list-models']) == 0\n"
            "from benchmark.registry import load_representation\n"
            "load_representation('mfcc')\n"
            f"print(sorted(m for m in {sorted(OPTIONAL)!r} if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[]"
