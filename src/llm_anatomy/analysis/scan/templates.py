"""Chat templates (Jinja) as `scan` checks them: by their syntax tree for dunder and private
attributes, then rendered in jinja2's ImmutableSandboxedEnvironment, as transformers renders
them, with the message shapes chat models are given, within bounds of size, output and loop
steps. Never rendered outside the sandbox: where a template would act differently there, the
dunder and private attributes it names are what would differ."""

from __future__ import annotations

import re

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ...core.text import escape
from .rules import Finding

MAX_TEMPLATE_CHARS = 1_000_000  # real chat templates are a few KB; the largest known ~30 KB
MAX_OUTPUT_CHARS = 1_000_000  # what one render may produce
MAX_RANGE_STEPS = 1_000_000  # range() items over one render: nested loops end here
MAX_POWER = 64  # exponent of ** in a template; a chat template needs none
# The shapes of conversation loaders pass (transformers' apply_chat_template, llama.cpp's server).
SHAPES: dict[str, list[dict[str, Any]]] = {
    "a user message": [{"role": "user", "content": "Hello"}],
    "system, user and assistant messages": [
        {"role": "system", "content": "You are helpful."},
        {"role": "user", "content": "Hello"},
        {"role": "assistant", "content": "Hi!"},
        {"role": "user", "content": "What is 2+2?"},
    ],
    "a tool call and its result": [
        {"role": "user", "content": "Weather in Paris?"},
        {
            "role": "assistant",
            "content": "",
            "tool_calls": [{"type": "function", "function": {"name": "weather", "arguments": {"city": "Paris"}}}],
        },
        {"role": "tool", "name": "weather", "content": "sunny"},
    ],
}
CONTEXT = {"bos_token": "<s>", "eos_token": "</s>", "add_generation_prompt": True}
# Without jinja2: the template's text, by the same two patterns the syntax tree is read for.
DUNDER_TEXT = re.compile(r"(__[A-Za-z0-9_]*__)")
PRIVATE_TEXT = re.compile(r"(?:\.\s*|attr\(\s*['\"])(_[A-Za-z]\w*)")


class _Bounds(Exception):
    """A render went past MAX_OUTPUT_CHARS, MAX_RANGE_STEPS or a size of * or **."""


def check(source: str, file: str, where: str, out: list[Finding]) -> None:
    """The findings for one template; `where` names it in its file (a key, a field, or '')."""
    at = f"{where}, " if where else ""
    if len(source) > MAX_TEMPLATE_CHARS:
        out.append(
            Finding(
                "LA-TEMPLATE-004",
                file,
                where or "template",
                f"a template of {len(source)} characters, more than {MAX_TEMPLATE_CHARS}; not rendered",
            )
        )
        return
    try:
        import jinja2  # noqa: F401  (installed with transformers and torch; scan needs no extra)
    except ImportError:
        _check_text(source, file, at, out)
        out.append(Finding("LA-TEMPLATE-006", file, where or "template", "checked by its text only"))
        return
    _check_tree(source, file, at, out)


def _check_text(source: str, file: str, at: str, out: list[Finding]) -> None:
    for rule, pattern in (("LA-TEMPLATE-001", DUNDER_TEXT), ("LA-TEMPLATE-003", PRIVATE_TEXT)):
        first: dict[str, int] = {}
        for match in pattern.finditer(source):
            first.setdefault(match.group(1), match.start(1))
        for name, start in first.items():
            out.append(
                Finding(rule, file, f"{at}line {source.count(chr(10), 0, start) + 1}", escape(f"attribute {name}"))
            )


def _environment(steps: list[int]) -> Any:
    from jinja2.exceptions import TemplateError
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Bounded(ImmutableSandboxedEnvironment):
        """The sandbox transformers renders chat templates in, with * and ** bounded: the
        sandbox itself caps range() but not "x" * 10**9."""

        intercepted_binops = frozenset({"*", "**"})

        def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
            if operator == "**" and isinstance(right, int) and abs(right) > MAX_POWER:
                raise _Bounds(f"a power of {right}")
            if operator == "*":
                for sized, count in ((left, right), (right, left)):
                    if (
                        isinstance(sized, (str, list, tuple))
                        and isinstance(count, int)
                        and len(sized) * count > MAX_OUTPUT_CHARS
                    ):
                        raise _Bounds(f"a repetition to {len(sized) * count} items")
            return super().call_binop(context, operator, left, right)

    def bounded_range(*args: Any) -> range:
        items = range(*args)
        steps[0] += len(items)
        if steps[0] > MAX_RANGE_STEPS:
            raise _Bounds(f"more than {MAX_RANGE_STEPS} loop steps over range()")
        return items

    def raise_exception(message: str) -> None:
        raise TemplateError(message)

    env = Bounded(trim_blocks=True, lstrip_blocks=True, extensions=["jinja2.ext.loopcontrols"])
    env.globals.update(range=bounded_range, raise_exception=raise_exception, strftime_now=lambda fmt: "07 Dec 2026")
    return env


def _check_tree(source: str, file: str, at: str, out: list[Finding]) -> None:
    from jinja2 import nodes
    from jinja2.exceptions import TemplateSyntaxError

    steps = [0]
    env = _environment(steps)
    try:
        tree = env.parse(source)
    except TemplateSyntaxError as exc:
        out.append(Finding("LA-TEMPLATE-005", file, f"{at}line {exc.lineno}", escape(str(exc.message))[:200]))
        return
    seen = set()
    for node in tree.find_all((nodes.Getattr, nodes.Getitem, nodes.Filter)):
        if isinstance(node, nodes.Getattr):
            name = node.attr
        elif isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            name = node.arg.value
        elif (
            isinstance(node, nodes.Filter)
            and node.name == "attr"
            and node.args
            and isinstance(node.args[0], nodes.Const)
        ):
            name = node.args[0].value
        else:
            continue
        if not isinstance(name, str) or not name.startswith("_") or name in seen:
            continue
        seen.add(name)
        rule = "LA-TEMPLATE-001" if name.startswith("__") else "LA-TEMPLATE-003"
        out.append(Finding(rule, file, f"{at}line {node.lineno}", escape(f"attribute {name}")))
    _render(env, source, file, at, out, steps)


def _render(env: Any, source: str, file: str, at: str, out: list[Finding], steps: list[int]) -> None:
    from jinja2.sandbox import SecurityError

    template = env.from_string(source)
    reported = set()
    for shape, messages in SHAPES.items():
        steps[0] = 0
        finding = None
        try:
            produced = 0
            for chunk in template.generate(messages=messages, **CONTEXT):
                produced += len(chunk)
                if produced > MAX_OUTPUT_CHARS:
                    raise _Bounds(f"more than {MAX_OUTPUT_CHARS} characters of output")
        except SecurityError as exc:
            finding = ("LA-TEMPLATE-002", escape(str(exc))[:200])
        except _Bounds as exc:
            finding = ("LA-TEMPLATE-004", str(exc))
        except Exception:  # raise_exception, a missing key, a type error: a template's own refusals, not a risk
            continue
        if finding and finding not in reported:
            reported.add(finding)
            rule, message = finding
            out.append(Finding(rule, file, f"{at}rendered with {shape}", message))
