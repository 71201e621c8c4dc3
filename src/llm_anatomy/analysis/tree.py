"""The module hierarchy: each module with its class name, its own parameters and the total
under it, as transformers builds the model; or, without transformers, from the dotted
tensor names. Also torch's named_children() / named_parameters() of any node."""

from __future__ import annotations

from collections import namedtuple
from math import prod

from ..core.catalog import Catalog, TensorInfo, natural_key
from ..core.errors import ConfigUnavailable, UsageError
from ..hf import skeleton as skeletons  # by module, so tests can stand in for installed_transformers_version

SHOWN_NAMES = 5  # valid names listed when --node names no module


# Named tuples rather than dataclasses, as in catalog.py: `tree` runs on the header-only path.


class TreeParameter(namedtuple("TreeParameter", "name shape canonical")):
    """name: local name on its module ("weight"); shape; canonical: the full name
    named_parameters() shows for it (another module's when the weight is tied)."""

    __slots__ = ()

    @property
    def numel(self) -> int:
        return prod(self.shape)


class TreeNode(namedtuple("TreeNode", "name path class_name parameters total children")):
    """name: local name ("" for the root); path: "model.layers.0.self_attn" ("" for the root);
    class_name: None when built from tensor names; parameters: TreeParameters registered on
    this module itself; total: sum(p.numel() for p in module.parameters()), tied weights
    once; children: TreeNodes in named_children() order."""

    __slots__ = ()

    @property
    def own(self) -> int:
        return sum(p.numel for p in _distinct(self.parameters))


class ModuleTree(namedtuple("ModuleTree", "model root no_class_names_because implied", defaults=("", None))):
    """The tree of one model; no_class_names_because is set when it was built from tensor names;
    implied says so when the checkpoint holds no tensors and the tree is the one its config implies."""

    __slots__ = ()

    @property
    def class_names(self) -> bool:
        return not self.no_class_names_because

    @property
    def notes(self) -> tuple[str, ...]:
        if self.class_names:
            return (f"note: {self.implied}",) if self.implied else ()
        return (
            f"note: no class names ({self.no_class_names_because}); this tree is built from the tensor names, and its counts include every stored tensor (buffers too)",
        )


def _distinct(parameters):
    seen = set()
    for p in parameters:
        if p.canonical not in seen:
            seen.add(p.canonical)
            yield p


def _assemble(paths: list[str], classes: dict[str, str | None], parameters: dict[str, list[TreeParameter]]) -> TreeNode:
    """Nest modules given in pre-order (named_modules() order) under their dotted parents."""
    children: dict[str, list[str]] = {path: [] for path in paths}
    for path in paths[1:]:
        children[path.rpartition(".")[0]].append(path)
    numel = {p.canonical: p.numel for own in parameters.values() for p in own}

    def node(path: str) -> tuple[TreeNode, frozenset[str]]:
        built = [node(child) for child in children[path]]
        own = tuple(parameters.get(path, ()))
        under = frozenset(p.canonical for p in own).union(*(names for _, names in built))
        total = sum(numel[name] for name in under)
        return TreeNode(
            path.rpartition(".")[2], path, classes[path], own, total, tuple(child for child, _ in built)
        ), under

    return node("")[0]


def tree_from_skeleton(skeleton: skeletons.Skeleton) -> TreeNode:
    shapes = {p.name: p.shape for p in skeleton.parameters}
    paths, classes, parameters = [], {}, {}
    for module in skeleton.modules:
        paths.append(module.path)
        classes[module.path] = module.class_name
        prefix = module.path + "." if module.path else ""
        canonical = [skeleton.tied.get(prefix + name, prefix + name) for name in module.parameters]
        parameters[module.path] = [
            TreeParameter(name, shapes[full], full) for name, full in zip(module.parameters, canonical)
        ]
    return _assemble(paths, classes, parameters)


def tree_from_names(tensors: tuple[TensorInfo, ...]) -> TreeNode:
    """Every dotted prefix of a tensor name is a module; every tensor counts (buffers too)."""
    paths: dict[str, None] = {"": None}
    parameters: dict[str, list[TreeParameter]] = {}
    for tensor in sorted(tensors, key=lambda t: natural_key(t.name)):
        parts = tensor.name.split(".")
        for depth in range(1, len(parts)):
            paths.setdefault(".".join(parts[:depth]))
        module = ".".join(parts[:-1])
        parameters.setdefault(module, []).append(TreeParameter(parts[-1], tensor.shape, tensor.name))
    return _assemble(list(paths), dict.fromkeys(paths), parameters)


def build_tree(catalog: Catalog) -> ModuleTree:
    """transformers' module tree when it can be had (cached after the first call), else the names'
    tree (of the logical weights, for a quantized checkpoint: qweight/scales/qzeros become one weight)."""
    from ..quant import view

    qview = view(catalog)
    named = qview.tensors() if qview is not None and qview.scheme is not None else catalog.tensors
    if catalog.config is None and catalog.config_error is None:
        return ModuleTree(catalog.name, tree_from_names(named), "they need a config.json beside the weights")
    if isinstance(catalog.config_error, ConfigUnavailable):
        return ModuleTree(
            catalog.name,
            tree_from_names(named),
            f"transformers has no config for GGUF architecture {catalog.config_error.found}",
        )
    try:
        skeleton = skeletons.load_skeleton(catalog)
    except skeletons.SkeletonUnavailable as exc:
        if skeletons.installed_transformers_version() is None:
            reason = "they need the [transformers] extra: pip install 'llm-anatomy[transformers]'"
        else:
            reason = f"transformers could not build the config: {exc.found}"
        return ModuleTree(catalog.name, tree_from_names(named), reason)
    return ModuleTree(catalog.name, tree_from_skeleton(skeleton), implied=implied_note(catalog))


def implied_note(catalog: Catalog) -> str | None:
    """'the file holds no tensors: this is the model its metadata implies', or None when it holds tensors."""
    where = "only config.json, no weights" if not catalog.files else "the file holds no tensors"
    return f"{where}: this is the model {catalog.implied_by} implies" if catalog.implied_by else None


def find_node(tree: ModuleTree, path: str) -> TreeNode:
    """The module at a dotted path ("" is the root); UsageError naming valid paths nearby."""
    node = tree.root
    for part in path.split(".") if path else ():
        child = next((c for c in node.children if c.name == part), None)
        if child is None:
            names = [c.path for c in node.children] or [node.path or "(the root)"]
            shown = ", ".join(names[:SHOWN_NAMES]) + (", ..." if len(names) > SHOWN_NAMES else "")
            raise UsageError(tree.model, "a module path for --node", repr(path), f"valid names include {shown}")
        node = child
    return node


def named_children(node: TreeNode) -> list[tuple[str, str | None]]:
    """What `node.named_children()` yields, as (name, class name)."""
    return [(child.name, child.class_name) for child in node.children]


def named_parameters(node: TreeNode) -> list[tuple[str, tuple[int, ...]]]:
    """What `node.named_parameters()` yields: module order, names relative to node, tied weights once."""
    seen: set[str] = set()
    listing = []

    def visit(module: TreeNode, prefix: str) -> None:
        for p in module.parameters:
            if p.canonical not in seen:
                seen.add(p.canonical)
                listing.append((prefix + p.name, p.shape))
        for child in module.children:
            visit(child, prefix + child.name + ".")

    visit(node, "")
    return listing


class Run(namedtuple("Run", "first last_name count")):
    """Consecutive numbered siblings with the same structure (layers 0-31), shown once by the first."""

    __slots__ = ()

    @property
    def label(self) -> str:
        return self.first.name if self.count == 1 else f"{self.first.name}-{self.last_name}"


def _structure(node: TreeNode) -> tuple:
    """What makes two blocks identical: class names, parameter names and shapes, all the way down."""
    return (
        node.class_name,
        tuple((p.name, p.shape) for p in node.parameters),
        tuple((c.name, _structure(c)) for c in node.children),
    )


def fold(children: tuple, structure_of=_structure) -> list[Run]:
    """Group consecutive numbered children of identical structure (as structure_of sees it:
    `trace` compares shapes and FLOPs too); others stay one per run."""
    runs: list[Run] = []
    previous_structure = None
    for child in children:
        structure = structure_of(child) if child.name.isdigit() else None
        if runs and structure is not None and structure == previous_structure:
            runs[-1] = Run(runs[-1].first, child.name, runs[-1].count + 1)
        else:
            runs.append(Run(child, child.name, 1))
        previous_structure = structure
    return runs
