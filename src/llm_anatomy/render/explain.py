"""Render an Explanation: each field with its value and explanation, then the derived
facts, in English or Chinese; or as JSON. derived_facts() is shared with other views."""

from __future__ import annotations

import json

from ..analysis.architecture import Architecture, Finding
from ..analysis.explain import OPAQUE_OBJECTS, Explanation
from ..core.text import escape
from .text import printed, to_json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Mapping

VALUE_WIDTH = 80

# Every sentence the explain view prints, per language ({names} are filled in).
TEXT: dict[str, dict[str, str]] = {
    "en": {
        "title": "{model}: the {count} fields of config.json, explained",
        "title.derived": "{model}: the {count} fields of the config derived from the checkpoint's metadata, explained",
        "title.adapter": "{model}: the {count} fields of adapter_config.json (a PEFT adapter), explained",
        "title.mlx_adapter": "{model}: the {count} fields of adapter_config.json (an mlx-lm adapter), explained",
        "title.lora_gguf": "{model}: the {count} key/values of a LoRA GGUF (llama.cpp's adapter format), explained",
        "no_entry": "(no glossary entry)",
        "unexplained": "{missing} of {count} fields have no glossary entry.",
        "derived": "Derived from the config:",
        "findings": "Findings:",
        "colon": ": ",
        "unknown": "unknown (see findings)",
        "head_dim": "head_dim",
        "head_dim.config": "{value} ({field} in config.json)",
        "head_dim.config_differs": "{value} ({field} in config.json; {source} would give {naive})",
        "head_dim.computed": "{value} ({source} = {hidden} / {heads})",
        "head_dim.MLA": "{value} for queries and keys (qk_nope_head_dim {nope} + qk_rope_head_dim {rope}), {v} for values (v_head_dim)",
        "attention": "attention",
        "attention.MHA": "MHA (multi-head): {heads} query heads, each with its own key/value head",
        "attention.GQA": "GQA (grouped-query): {heads} query heads share {kv} key/value heads, {group} per group",
        "attention.MQA": "MQA (multi-query): {heads} query heads share 1 key/value head",
        "attention.MLA": "MLA (multi-head latent): {heads} query heads; keys and values are cached as a {rank}-dim latent plus a {rope}-dim RoPE key per token",
        "kv_heads": "KV heads",
        "kv_heads.MLA": "none (MLA caches one latent per token)",
        "full_layers": "full-attention layers",
        "full_layers.value": "head_dim {dim}, KV heads {kv}",
        "full_layers.k_eq_v": "; keys are also the values (no v_proj)",
        "kv_shared": "shared KV",
        "kv_shared.value": "the last {shared} of {layers} layers reuse earlier layers' keys and values and cache none",
        "layers": "layers",
        "ffn": "feed-forward",
        "ffn.dense": "dense, inner size {size} ({matrices})",
        "ffn.gated": "gate, up, down",
        "ffn.ungated": "up, down",
        "ffn.moe": "MoE: {experts} experts, {per_token} per token, inner size {size} each",
        "ffn.shared": "; shared experts with inner size {size} in all",
        "ffn.moe_layers": "; experts in {moe} of {layers} layers, the others dense",
        "ffn.beside": "; beside a dense MLP with inner size {size} in every layer",
        "ffn.double": "; dense MLPs twice as wide ({size}) in the {count} KV-sharing layers",
        "vocab": "vocabulary",
        "vocab.value": "{vocab} tokens",
        "context": "context",
        "context.value": "{context} tokens",
        "effective": "effective context",
        "effective.value": "{effective} tokens after RoPE scaling {rope} ({source})",
        "effective.dynamic": "{effective} tokens; past that, dynamic NTK scaling raises the RoPE base, with no fixed limit",
        "tied": "embeddings",
        "tied.yes": "tied: the output head reuses the embedding matrix",
        "tied.no": "untied: separate embedding and output head matrices",
        "tied.headless": "no output head to tie (architectures names a model without one)",
        "sliding": "sliding window",
        "sliding.value": "{window} tokens, in {count} of {layers} layers",
        "sliding.none": "none (every layer attends to the whole context)",
        "dtype": "weights dtype",
    },
    "zh": {
        "title": "{model}：config.json 的 {count} 个字段及其含义",
        "title.derived": "{model}：由检查点元数据推导出的配置的 {count} 个字段及其含义",
        "title.adapter": "{model}：adapter_config.json（PEFT 适配器）的 {count} 个字段及其含义",
        "title.mlx_adapter": "{model}：adapter_config.json（mlx-lm 适配器）的 {count} 个字段及其含义",
        "title.lora_gguf": "{model}：LoRA GGUF（llama.cpp 的适配器格式）的 {count} 个键值及其含义",
        "no_entry": "（术语表中没有此字段）",
        "unexplained": "{count} 个字段中有 {missing} 个在术语表中没有条目。",
        "derived": "由配置推导出的信息：",
        "findings": "发现的问题：",
        "colon": "：",
        "unknown": "未知（见发现的问题）",
        "head_dim": "每个头的维度",
        "head_dim.config": "{value}（config.json 中的 {field}）",
        "head_dim.config_differs": "{value}（config.json 中的 {field}；按 {source} 计算会得到 {naive}）",
        "head_dim.computed": "{value}（{source} = {hidden} / {heads}）",
        "head_dim.MLA": "查询和键为 {value}（qk_nope_head_dim {nope} + qk_rope_head_dim {rope}），值为 {v}（v_head_dim）",
        "attention": "注意力",
        "attention.MHA": "MHA（多头注意力）：{heads} 个查询头，每个头有自己的键/值头",
        "attention.GQA": "GQA（分组查询注意力）：{heads} 个查询头共享 {kv} 个键/值头，每组 {group} 个",
        "attention.MQA": "MQA（多查询注意力）：{heads} 个查询头共享 1 个键/值头",
        "attention.MLA": "MLA（多头潜在注意力）：{heads} 个查询头；每个词元的键和值缓存为一个 {rank} 维潜在向量加一个 {rope} 维 RoPE 键",
        "kv_heads": "键/值头数",
        "kv_heads.MLA": "无（MLA 每个词元只缓存一个潜在向量）",
        "full_layers": "全注意力层",
        "full_layers.value": "head_dim {dim}，键/值头数 {kv}",
        "full_layers.k_eq_v": "；键同时用作值（没有 v_proj）",
        "kv_shared": "共享键值",
        "kv_shared.value": "{layers} 层中的最后 {shared} 层复用前面层的键和值，自己不缓存",
        "layers": "层数",
        "ffn": "前馈网络",
        "ffn.dense": "稠密，中间维度 {size}（{matrices}）",
        "ffn.gated": "gate、up、down",
        "ffn.ungated": "up、down",
        "ffn.moe": "混合专家（MoE）：{experts} 个专家，每个词元使用 {per_token} 个，每个专家中间维度 {size}",
        "ffn.shared": "；共享专家的中间维度合计 {size}",
        "ffn.moe_layers": "；{layers} 层中有 {moe} 层使用专家，其余为稠密层",
        "ffn.beside": "；每层另有一个中间维度为 {size} 的稠密 MLP",
        "ffn.double": "；共享键值的 {count} 层中稠密 MLP 宽度加倍（{size}）",
        "vocab": "词表",
        "vocab.value": "{vocab} 个词元",
        "context": "上下文长度",
        "context.value": "{context} 个词元",
        "effective": "有效上下文",
        "effective.value": "RoPE 缩放（{rope}）后为 {effective} 个词元（{source}）",
        "effective.dynamic": "{effective} 个词元；超过后动态 NTK 缩放会增大 RoPE 底数，没有固定上限",
        "tied": "嵌入",
        "tied.yes": "共享：输出头复用嵌入矩阵",
        "tied.no": "不共享：嵌入矩阵与输出头是两个矩阵",
        "tied.headless": "没有可共享的输出头（architectures 表明模型不含输出头）",
        "sliding": "滑动窗口",
        "sliding.value": "{window} 个词元，{layers} 层中的 {count} 层使用",
        "sliding.none": "无（每一层都关注整个上下文）",
        "dtype": "权重精度",
    },
}


def language_from_locale(environ: Mapping[str, str]) -> str:
    """zh when the first set of LC_ALL, LC_MESSAGES, LANG (POSIX precedence) starts with zh."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = environ.get(name)
        if value:
            return "zh" if value.lower().startswith("zh") else "en"
    return "en"


def _head_dim(arch: Architecture, t: dict[str, str]) -> str:
    f = arch.fields
    if arch.head_dim is None:
        return t["unknown"]
    if arch.attention == "MLA":
        return t["head_dim.MLA"].format(
            value=arch.head_dim, nope=arch.qk_nope_head_dim, rope=arch.qk_rope_head_dim, v=arch.v_head_dim
        )
    if arch.head_dim_source != f"{f.get('hidden_size')} / {f.get('num_heads')}":
        naive = arch.hidden_size // arch.num_heads if arch.hidden_size and arch.num_heads else None
        if naive is not None and naive != arch.head_dim:
            return t["head_dim.config_differs"].format(
                value=arch.head_dim,
                field=arch.head_dim_source,
                source=f"{f['hidden_size']} / {f['num_heads']}",
                naive=naive,
            )
        return t["head_dim.config"].format(value=arch.head_dim, field=arch.head_dim_source)
    return t["head_dim.computed"].format(
        value=arch.head_dim, source=arch.head_dim_source, hidden=arch.hidden_size, heads=arch.num_heads
    )


def _attention(arch: Architecture, t: dict[str, str]) -> str:
    if arch.attention is None:
        return t["unknown"]
    return t[f"attention.{arch.attention}"].format(
        heads=arch.num_heads,
        kv=arch.num_kv_heads,
        group=arch.query_group_size,
        rank=arch.kv_lora_rank,
        rope=arch.qk_rope_head_dim,
    )


def _ffn(arch: Architecture, t: dict[str, str]) -> str:
    matrices = t["ffn.gated"] if arch.gated_ffn else t["ffn.ungated"]
    if arch.ffn != "MoE":
        if not arch.intermediate_size:
            return t["unknown"]
        return t["ffn.dense"].format(size=arch.intermediate_size, matrices=matrices) + _double_wide(arch, t)
    text = t["ffn.moe"].format(
        experts=arch.num_experts,
        per_token=arch.experts_per_token or "?",
        size=arch.moe_intermediate_size or arch.intermediate_size,
    )
    if arch.shared_intermediate_size:
        text += t["ffn.shared"].format(size=arch.shared_intermediate_size)
    if arch.num_layers and len(arch.moe_layers) != arch.num_layers:
        text += t["ffn.moe_layers"].format(moe=len(arch.moe_layers), layers=arch.num_layers)
    if arch.dense_mlp_sizes:  # Gemma 4: a dense MLP beside the experts
        text += t["ffn.beside"].format(size=arch.intermediate_size) + _double_wide(arch, t)
    return text


def _double_wide(arch: Architecture, t: dict[str, str]) -> str:
    wide = [size for size in arch.dense_mlp_sizes if size != arch.intermediate_size]
    return t["ffn.double"].format(size=wide[0], count=len(wide)) if wide else ""


def _layer_rows(arch: Architecture, t: dict[str, str]) -> list[tuple[str, str]]:
    """Where layers differ (Gemma 4): the full-attention layers' own sizes, the KV-sharing layers."""
    full = next(
        (layer for i, layer in enumerate(arch.layer_attention) if i not in arch.sliding_layers and layer.keys), None
    )
    rows = []
    if full is not None and (full.head_dim, full.kv_heads, full.values) != (arch.head_dim, arch.num_kv_heads, True):
        rows.append(
            (
                t["full_layers"],
                t["full_layers.value"].format(dim=full.head_dim, kv=full.kv_heads)
                + ("" if full.values else t["full_layers.k_eq_v"]),
            )
        )
    shared = sum(not layer.keys for layer in arch.layer_attention)
    if shared:
        rows.append((t["kv_shared"], t["kv_shared.value"].format(shared=shared, layers=arch.num_layers)))
    return rows


def _effective(arch: Architecture, t: dict[str, str]) -> str:
    if arch.effective_context is None:
        return t["unknown"]
    if arch.rope_type == "dynamic":
        return t["effective.dynamic"].format(effective=arch.effective_context)
    return t["effective.value"].format(
        effective=arch.effective_context, rope=arch.rope_type, source=arch.effective_context_source
    )


def _tied(arch: Architecture, t: dict[str, str]) -> str:
    # tie_word_embeddings defaults to true even for a base model (BertModel), which has no head.
    if arch.has_output_head is False:
        return t["tied.headless"]
    return t["tied.yes"] if arch.tied_embeddings else t["tied.no"]


def _known(value: object, template: str, t: dict[str, str], **names: object) -> str:
    return template.format(**names) if value is not None else t["unknown"]


def derived_facts(arch: Architecture, lang: str) -> list[tuple[str, str]]:
    """(label, text) for each fact derived from the config, in `lang`."""
    t = TEXT[lang]
    rows = [
        (t["head_dim"], _head_dim(arch, t)),
        (t["attention"], _attention(arch, t)),
        (
            t["kv_heads"],
            t["kv_heads.MLA"] if arch.attention == "MLA" else _known(arch.num_kv_heads, "{v}", t, v=arch.num_kv_heads),
        ),
        *_layer_rows(arch, t),
        (t["layers"], _known(arch.num_layers, "{v}", t, v=arch.num_layers)),
        (t["ffn"], _ffn(arch, t)),
        (t["vocab"], _known(arch.vocab_size, t["vocab.value"], t, vocab=arch.vocab_size)),
        (t["context"], _known(arch.context_length, t["context.value"], t, context=arch.context_length)),
    ]
    if arch.rope_type not in (
        None,
        "default",
        "proportional",
    ):  # proportional (Gemma 4) rotates part of each head, no scaling
        rows.append((t["effective"], _effective(arch, t)))
    rows.append((t["tied"], _tied(arch, t)))
    window = (
        t["sliding.value"].format(window=arch.sliding_window, count=len(arch.sliding_layers), layers=arch.num_layers)
        if arch.sliding_window
        else t["sliding.none"]
    )
    rows.append((t["sliding"], window))
    if arch.dtype:
        rows.append((t["dtype"], arch.dtype))
    return rows


def value_text(value: object, path: str = "") -> str:
    """A value as config.json spells it (null, true, 1e-05), cut at VALUE_WIDTH; an object
    as {...}, since its fields are listed after it, unless it is one of OPAQUE_OBJECTS."""
    if isinstance(value, dict) and path.rsplit(".", 1)[-1] not in OPAQUE_OBJECTS:
        return "{...}"
    text = escape(json.dumps(value, ensure_ascii=False))
    return text if len(text) <= VALUE_WIDTH else text[: VALUE_WIDTH - 3] + "..."


def _title(explanation: Explanation) -> str:
    """GGUF metadata and Meta's params.json give a derived config, not a config.json; an
    adapter's config describes no model (and has no derived facts)."""
    t = TEXT[explanation.lang]
    return (
        (
            t["title.lora_gguf"]
            if not explanation.config_file
            else t["title.mlx_adapter"]
            if any(f.path == "lora_parameters" for f in explanation.fields)
            else t["title.adapter"]
        )
        if explanation.architecture is None
        else t["title"]
        if explanation.config_file
        else t["title.derived"]
    )


def text(explanation: Explanation) -> str:
    t = TEXT[explanation.lang]
    title = _title(explanation)
    lines = [title.format(model=escape(explanation.model), count=len(explanation.fields)), ""]
    for field in explanation.fields:
        indent = "  " * field.depth
        lines.append(f"{indent}{escape(field.path)} = {value_text(field.value, field.path)}")
        lines.append(f"{indent}    {field.text if field.text is not None else t['no_entry']}")
    missing = len(explanation.unexplained)
    if missing:
        lines += ["", t["unexplained"].format(missing=missing, count=len(explanation.fields))]
    if explanation.architecture is None:
        return "\n".join(lines) + "\n"
    lines += ["", t["derived"]]
    lines += [
        f"  {label}{t['colon']}{value}" for label, value in derived_facts(explanation.architecture, explanation.lang)
    ]
    findings = explanation.architecture.findings
    if findings and explanation.lang != "en":
        from .wording import labels, worded  # the report's sentences; read only when needed

        lines += ["", t["findings"]] + [f"  {worded(finding, labels()[explanation.lang])[0]}" for finding in findings]
    elif findings:
        lines += ["", t["findings"]] + [f"  {finding.line()}" for finding in findings]
    return "\n".join(lines) + "\n"


def json_text(explanation: Explanation) -> str:
    arch = explanation.architecture
    if arch is None:
        return (
            to_json(
                {
                    "model": explanation.model,
                    "lang": explanation.lang,
                    "fields": [{"path": f.path, "value": f.value, "explanation": f.text} for f in explanation.fields],
                    "derived": [],
                    "architecture": None,
                    "findings": [],
                }
            )
            + "\n"
        )
    return (
        to_json(
            {
                "model": explanation.model,
                "lang": explanation.lang,
                "fields": [{"path": f.path, "value": f.value, "explanation": f.text} for f in explanation.fields],
                "derived": [{"label": label, "text": value} for label, value in derived_facts(arch, explanation.lang)],
                "architecture": plain(arch),
                "findings": [f.line() for f in arch.findings],
            }
        )
        + "\n"
    )


def plain(value: object) -> object:
    """An analysis result as JSON data: namedtuples as objects, tuples as lists, findings as their lines."""
    if isinstance(value, Finding):
        return value.line()
    if hasattr(value, "_asdict"):
        return {key: plain(item) for key, item in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [plain(item) for item in value]
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    return value


class NotebookExplanation(Explanation):
    """The Explanation Model.explain() returns: print() shows what `llm-anatomy config --explain`
    prints, Jupyter a table of the fields and one of the derived facts."""

    __slots__ = ()

    def __str__(self) -> str:
        return printed(text(self))

    def __repr__(self) -> str:
        return (
            f"<Explanation {self.model}: {len(self.fields)} fields, {len(self.unexplained)} unexplained, {self.lang}>"
        )

    def _repr_html_(self) -> str:
        return html(self)


def html(explanation: Explanation) -> str:
    """The explained config as tables: field, value, meaning (nested fields indented), then the derived facts."""
    from .html import element, esc, notebook, table

    t = TEXT[explanation.lang]
    title = _title(explanation)
    indent = "\u00a0\u00a0"
    rows = [
        (
            element("code", esc(indent * f.depth + f.path)),
            element("code", esc(value_text(f.value, f.path))),
            esc(f.text) if f.text is not None else element("span", esc(t["no_entry"]), class_="missing"),
        )
        for f in explanation.fields
    ]
    parts = [
        element("p", esc(title.format(model=explanation.model, count=len(explanation.fields)))),
        element("div", table(("field", "value", "meaning"), rows), class_="explain"),
    ]
    if explanation.architecture is None:
        return notebook("".join(parts))
    facts = [(esc(label), esc(value)) for label, value in derived_facts(explanation.architecture, explanation.lang)]
    parts += [element("h3", esc(t["derived"])), table(("", ""), facts)]
    if explanation.architecture.findings:
        parts += [
            element("h3", esc(t["findings"])),
            element("ul", "".join(element("li", esc(f.line())) for f in explanation.architecture.findings)),
        ]
    return notebook("".join(parts))
