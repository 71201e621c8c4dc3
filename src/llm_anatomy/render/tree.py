"""Render a module tree: box-drawn with parameter counts (repeated blocks folded), as JSON
(unfolded), or as torch's named_children() / named_parameters() printouts."""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs ~3 ms to import; annotations are strings here
if TYPE_CHECKING:
    from typing import Any

from ..analysis.tree import ModuleTree, TreeNode, fold, named_children, named_parameters
from ..core.text import escape
from .text import human_count, shape_text, table, thousands, to_json

BRANCH, LAST_BRANCH, PIPE, SPACE = "├── ", "└── ", "│   ", "    "


def _count(n: int) -> str:
    return thousands(n) if n else "-"


def _label(name: str, class_name: str | None) -> str:
    return f"{name}: {class_name}" if class_name else name


def _folded_summary(node: TreeNode) -> str:
    """'32 x LlamaDecoderLayer' when a container's numbered children fold into one block."""
    if (
        not node.children
        or not all(c.name.isdigit() for c in node.children)
        or len(fold(node.children)) == len(node.children)
    ):
        return ""
    classes = {c.class_name for c in node.children}
    kind = f" x {next(iter(classes))}" if len(classes) == 1 and None not in classes else " blocks"
    return f"  {len(node.children)}{kind}"


def _tied_summary(node: TreeNode) -> str:
    """'  tied to model.embed_tokens.weight' for a module whose parameter is another module's
    (a tied output head), as named_parameters() names it; each such parameter by name when
    the module has more than one (table() escapes the names)."""
    tied = [p for p in node.parameters if p.canonical != f"{node.path}.{p.name}"]
    if not tied:
        return ""
    if len(node.parameters) == 1:
        return f"  tied to {tied[0].canonical}"
    return "  " + ", ".join(f"{p.name} tied to {p.canonical}" for p in tied)


def _rows(node: TreeNode, indent: str, depth: int | None, params: bool) -> list[tuple[str, str, str]]:
    if depth == 0:
        return []
    entries: list[tuple[str, Any]] = []
    if params:
        entries += [("param", p) for p in node.parameters]
    entries += [("run", run) for run in fold(node.children)]
    rows = []
    for i, (kind, entry) in enumerate(entries):
        last = i == len(entries) - 1
        branch = indent + (LAST_BRANCH if last else BRANCH)
        if kind == "param":
            full_name = f"{node.path}.{entry.name}" if node.path else entry.name
            tied = f" (tied to {entry.canonical})" if entry.canonical != full_name else ""
            rows.append((f"{branch}{entry.name}  {shape_text(entry.shape)}{tied}", thousands(entry.numel), ""))
            continue
        child = entry.first
        each = " (each)" if entry.count > 1 else ""
        tied = "" if params else _tied_summary(child)  # with --params, each parameter's row says it
        rows.append(
            (
                branch + _label(entry.label, child.class_name) + each + _folded_summary(child) + tied,
                _count(child.own),
                _count(child.total),
            )
        )
        rows += _rows(child, indent + (SPACE if last else PIPE), None if depth is None else depth - 1, params)
    return rows


def text(tree: ModuleTree, node: TreeNode, depth: int | None = None, params: bool = False) -> str:
    """The box-drawn tree under node, down to depth levels (None: all)."""
    root_label = _label(node.path, node.class_name) if node.path else (node.class_name or "(root)")
    rows = [
        (
            root_label + _folded_summary(node) + ("" if params else _tied_summary(node)),
            _count(node.own),
            _count(node.total),
        )
    ]
    rows += _rows(node, "", depth, params)
    lines = table(("module", "own params", "total params"), rows, right=(1, 2))
    lines.append(f"{thousands(node.total)} parameters ({human_count(node.total)})")
    return "\n".join(lines + [escape(note) for note in tree.notes]) + "\n"


def _node_json(node: TreeNode, depth: int | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": node.name,
        "path": node.path,
        "class": node.class_name,
        "own": node.own,
        "total": node.total,
        "parameters": [
            {"name": p.name, "shape": list(p.shape), "numel": p.numel, "canonical": p.canonical}
            for p in node.parameters
        ],
    }
    if depth != 0:
        data["children"] = [_node_json(c, None if depth is None else depth - 1) for c in node.children]
    return data


def json_text(tree: ModuleTree, node: TreeNode, depth: int | None = None) -> str:
    """Unfolded, so each module keeps its own path; `children` is absent below --depth."""
    return (
        to_json(
            {
                "model": tree.model,
                "class_names": tree.class_names,
                "node": _node_json(node, depth),
                "notes": list(tree.notes),
            }
        )
        + "\n"
    )


def torch_children(node: TreeNode) -> str:
    """`for name, module in X.named_children(): print(f"{name}: {module.__class__.__name__}")`."""
    return "".join(f"{escape(name)}: {class_name}\n" for name, class_name in named_children(node))


def torch_parameters(node: TreeNode) -> str:
    """`for name, param in X.named_parameters(): print(f"{name}: {param.shape}")`."""
    return "".join(f"{escape(name)}: torch.Size({list(shape)})\n" for name, shape in named_parameters(node))
