"""The package's layers (DESIGN.md "Layers"): every import in src/llm_anatomy, function-level and
TYPE_CHECKING ones included, goes down the layers below or stays in its own package; no
two modules import each other, however long the way round; the package root holds only
the façade, the version, the API and locate. Read with the ast, nothing imported.

An edge is what an import statement names: `from .x import y` is an edge to x (or to x.y
when y is a module); importing a.b runs a/__init__.py too, but that is not counted, or
every module would sit in a circle with its package's __init__. An import by name at run
time, importlib.import_module(f"{__package__}.{name}") or f"{__name__}.{name}" (commands,
format readers, dequantizers), counts as an import of every module of that package whose
name the importing module spells out in a string (its table of commands, readers, schemes)."""

import ast
import functools
import os

import llm_anatomy

PACKAGE = "llm_anatomy"
ROOT = os.path.dirname(llm_anatomy.__file__)

# Bottom to top: a module may import its own package and the packages of the layers below;
# packages on one layer do not import each other.
LAYERS = (
    ("core", "glossary", "_version"),  # records and rules, data; standard library only
    ("io", "replicas"),  # bytes on this machine; the demo replicas written with them
    ("formats", "decode", "hf"),  # bytes -> Catalog; bytes -> values; transformers' view
    ("quant", "hub"),  # stored -> logical weights; the Hugging Face Hub
    ("locate",),  # what the user typed -> model files
    ("analysis",),
    ("render",),
    ("api",),
    ("cli",),
    ("",),  # llm_anatomy/__init__.py, the façade: nothing imports it
)
ROOT_MODULES = {"__init__", "_version", "api", "locate"}

LAYER = {package: level for level, packages in enumerate(LAYERS) for package in packages}


@functools.cache
def parsed(path: str) -> ast.Module:
    """One parse per file for every check here (each walks the whole package)."""
    return ast.parse(open(path, encoding="utf-8").read(), path)


@functools.cache
def modules() -> dict[str, str]:
    """Dotted name -> file, for every module of the package."""
    found = {}
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(files):
            if name.endswith(".py"):
                parts = os.path.relpath(os.path.join(folder, name), ROOT)[:-3].split(os.sep)
                if parts[-1] == "__init__":
                    parts = parts[:-1]
                found[".".join([PACKAGE, *parts])] = os.path.join(folder, name)
    return found


def imports(module: str, path: str, known: dict[str, str]) -> list[tuple[str, int]]:
    """(imported module of ours, line) for every import in one file."""
    package = module if path.endswith("__init__.py") else module.rpartition(".")[0]
    tree = parsed(path)
    named = {
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and f"{package}.{node.value}" in known
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.append((sub if sub in known else base, node.lineno))
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("importlib.import_module", "import_module")
            and node.args
        ):
            first = node.args[0]
            if (
                isinstance(first, ast.JoinedStr)
                and first.values
                and ast.unparse(first.values[0]) in ("{__package__}", "{__name__}")
            ):
                found += [(f"{package}.{name}", node.lineno) for name in named]
    return sorted(
        {(name, line) for name, line in found if name in known and name != module}, key=lambda edge: (edge[1], edge[0])
    )


@functools.cache
def graph() -> dict[str, list[tuple[str, int]]]:
    known = modules()
    return {module: imports(module, path, known) for module, path in known.items()}


def package_of(module: str) -> str:
    """The top-level part of llm_anatomy a module belongs to ("" for the façade)."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def where(module: str, line: int) -> str:
    return f"{os.path.relpath(modules()[module], os.path.dirname(ROOT))}:{line}"


def test_every_package_has_a_layer():
    unplaced = sorted({package_of(module) for module in modules()} - set(LAYER))
    assert unplaced == [], f"packages or root modules with no layer in LAYERS: {unplaced}"


def test_package_root_holds_only_the_four():
    extra = sorted(name for name in os.listdir(ROOT) if name.endswith(".py") and name[:-3] not in ROOT_MODULES)
    assert extra == [], (
        f"modules in src/llm_anatomy/ besides {sorted(ROOT_MODULES)}: {extra}; move each into its layer's package"
    )


def test_imports_only_go_down():
    edges = graph()
    upward = []
    for module, targets in edges.items():
        mine = package_of(module)
        for target, line in targets:
            theirs = package_of(target)
            if mine == theirs or mine not in LAYER or theirs not in LAYER:
                continue
            if LAYER[theirs] >= LAYER[mine]:
                upward.append(
                    f"{where(module, line)}: {module} ({mine or PACKAGE}, layer {LAYER[mine]}) -> {target} ({theirs or PACKAGE}, layer {LAYER[theirs]})"
                )
    assert upward == [], "imports that go up or sideways between layers:\n" + "\n".join(upward)


def test_no_import_circles():
    edges = graph()
    line_of = {(module, target): line for module, targets in edges.items() for target, line in targets}
    # Tarjan's strongly connected components, iteratively (no recursion limit to meet).
    index, low, on_stack, stack, components, counter = {}, {}, set(), [], [], [0]
    for start in sorted(edges):
        if start in index:
            continue
        work = [(start, iter(sorted({t for t, _ in edges[start]})))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            for child in children:
                if child not in index:
                    index[child] = low[child] = counter[0]
                    counter[0] += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted({t for t, _ in edges[child]}))))
                    break
                if child in on_stack:
                    low[node] = min(low[node], index[child])
            else:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == node:
                            break
                    if len(component) > 1:
                        components.append(sorted(component))
    circles = []
    for component in sorted(components):
        inside = set(component)
        circles.append("circle of " + ", ".join(component) + ":")
        circles += [
            f"  {where(a, line)}: {a} -> {b}" for (a, b), line in sorted(line_of.items()) if a in inside and b in inside
        ]
    assert circles == [], "modules that import each other (counting function-level imports):\n" + "\n".join(circles)


def test_the_check_sees_function_level_and_type_checking_imports(tmp_path):
    """The walk is not fooled by where an import sits."""
    source = tmp_path / "m.py"
    source.write_text(
        "TYPE_CHECKING = False\nif TYPE_CHECKING:\n    from .a import X\n\ndef f():\n    from ..b import c\n"
    )
    known = {"llm_anatomy.p.m": str(source), "llm_anatomy.p.a": "", "llm_anatomy.b": "", "llm_anatomy.b.c": ""}
    assert imports("llm_anatomy.p.m", str(source), known) == [("llm_anatomy.p.a", 3), ("llm_anatomy.b.c", 6)]


def test_tests_mirror_the_package():
    """Each test file lives in the folder of the package part it tests (tests/hub/ for
    llm_anatomy/hub/, tests/api/ for api.py), or in tests/project/ for what spans the project
    (docs, install, layers); tests/ itself holds only the shared helpers."""
    from repo import TESTS

    parts = {entry.name for entry in os.scandir(ROOT) if entry.is_dir() and not entry.name.startswith("_")} | {
        "api",
        "locate",
    }
    folders = {entry.name for entry in os.scandir(TESTS) if entry.is_dir() and not entry.name.startswith(("_", "."))}
    assert folders - parts == {"project"}
    assert [name for name in os.listdir(TESTS) if name.startswith("test_")] == []


# Module state that the code sets at run time (DESIGN.md habit 11: no global mutable state),
# allowed only where a process must hold it, each for its reason. Caches of pure functions
# (functools.cache) and tables built once are not set through `global` and need no entry.
GLOBAL_STATE_ALLOWED = {
    "llm_anatomy.io.parallel": "the job a forked worker runs and its resources: set by each worker's initializer in the worker process, never in the caller (the job is inherited through fork, so the work function need not pickle)",
}


def global_state(path: str) -> list[tuple[int, str]]:
    """(line, what) for each module-level name a function rebinds (`global NAME`), and each
    attribute of one of our modules assigned from outside it (`errors.note_sink = f`)."""
    tree = parsed(path)
    ours = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith(PACKAGE))
        for alias in node.names
    }
    found = [
        (node.lineno, f"global {', '.join(node.names)}") for node in ast.walk(tree) if isinstance(node, ast.Global)
    ]
    for node in ast.walk(tree):
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, (ast.AugAssign, ast.AnnAssign))
            else []
        )
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id in ours
                and target.value.id[:1].islower()
            ):
                found.append((node.lineno, f"{ast.unparse(target)} = ..."))
    return sorted(found)


def test_no_module_state_is_set_at_run_time():
    found = [
        f"{where(module, line)}: {what}"
        for module, path in modules().items()
        if module not in GLOBAL_STATE_ALLOWED
        for line, what in global_state(path)
    ]
    assert found == [], (
        "module-level state set at run time (pass it, or use a context variable as core.notice does):\n"
        + "\n".join(found)
    )


def test_the_state_check_sees_globals_and_assigned_module_attributes(tmp_path):
    source = tmp_path / "m.py"
    source.write_text(
        "from ..core import errors\nfrom .x import Thing\n_n = 0\n\ndef f(thing):\n    global _n\n    _n = 1\n    errors.note_sink = print\n    thing.size = 2\n    Thing.x = 3\n"
    )
    assert global_state(str(source)) == [(6, "global _n"), (8, "errors.note_sink = ...")]
