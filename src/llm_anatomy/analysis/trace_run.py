"""`trace --run`: the real forward pass of a small model on CPU, on a text tokenized by the
model's own tokenizer. Per layer, the residual stream as it leaves the layer (forward hooks on
the decoder layers): its norm, its largest activations and their channels ("massive
activations", Sun et al. 2024), each head's attention entropy, and for causal LMs the logit
lens (nostalgebraist 2020): the model's final norm and output head applied to the stream after
each layer, at the last position."""

from __future__ import annotations

import contextlib
import io
import os
import stat
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

from ..hf import skeleton as skeletons
from ..core.catalog import Catalog
from ..core.errors import AnatomyError, UsageError
from ..core.extras import require
from ..core.notice import announced
from ..io.sources import kind_of

# Weights load as float32 (CPU matrix products in bf16 are slow, in fp16 partly missing; GGUF
# dequantizes to float32 anyway), so a model needs parameters x 4 bytes, and loading may
# briefly hold a second copy: the limit is the smaller of 4 GB and half the available memory.
BYTES_PER_PARAMETER = 4
RUN_LIMIT = 4 * 10**9
# output_attentions keeps layers x heads x tokens x tokens probabilities: 512 tokens on a
# 16-layer, 32-head model are 0.5 GB.
MAX_TOKENS = 512
TOP_ACTIVATIONS = 3  # the largest |activations| shown per layer
LENS_TOP = 5  # tokens the logit lens shows per layer
# The final norm of the base model, by the names transformers' decoders give it.
FINAL_NORM_NAMES = ("norm", "ln_f", "final_layer_norm", "final_layernorm", "norm_f")
EMBEDDINGS = "embeddings"  # the label of the stream entering the first layer
# A folder holds a tokenizer when it holds one of these (transformers' fast, sentencepiece,
# BPE and WordPiece files); a GGUF when its metadata has the first key of its tokenizer.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "tokenizer.model",
    "spiece.model",
    "vocab.json",
    "vocab.txt",
)
GGUF_TOKENIZER_KEY = "tokenizer.ggml.model"
# The files transformers' tokenizers read whole, by the names its tokenizer classes ask for
# (tokenizers parses tokenizer.json in memory, sentencepiece loads its model, the slow ones
# read vocab and merges): capped before transformers sees them, as config files are. The
# largest real ones are ~33 MB (Gemma 3's tokenizer.json, 262k tokens), and loading a 35 MB
# tokenizer.json (a 1.5M-word vocabulary) peaks at 0.86 GB: 128 MiB leaves real tokenizers
# room to grow 4-fold and holds a hostile one to about 3 GB, below the 4 GB trace --run
# allows the weights (256 MiB would allow ~6 GB).
MAX_TOKENIZER_BYTES = 128 * 2**20
TOKENIZER_READS = TOKENIZER_FILES + (
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.json",
    "chat_template.jinja",
    "merges.txt",
    "sentencepiece.bpe.model",
    "sentencepiece.model",
    "spm.model",
    "bpe.codes",
)
# from_pretrained also reads generation_config.json whole, GGUF or not; real ones are under 4 KB.
MAX_GENERATION_CONFIG_BYTES = 2**20


class Activation(namedtuple("Activation", "value position channel")):
    """One activation of the residual stream: its value (signed), token position and channel."""

    __slots__ = ()


class Prediction(namedtuple("Prediction", "token_id text probability")):
    """A token the model (or the logit lens) predicts next: id, decoded text, softmax probability."""

    __slots__ = ()


class LayerRun(namedtuple("LayerRun", "label norm_last norm_mean median_abs top entropy lens")):
    """The residual stream after one layer (label: its index, or "embeddings" for the stream
    entering the first layer). norm_last: L2 norm at the last position; norm_mean: the L2 norm
    per position, averaged; median_abs: torch.median of |h| over positions and channels (the
    lower middle value); top: the TOP_ACTIVATIONS largest |h| as Activations; entropy: per head,
    the attention entropy in nats (-sum p ln p over keys) averaged over query positions, () for
    the embeddings; lens: the LENS_TOP Predictions of the logit lens at the last position, ()
    without a lens."""

    __slots__ = ()


class RunTrace(
    namedtuple(
        "RunTrace",
        "model model_class transformers_version text token_ids tokens params layers_path layer_class layers lens_norm lens_norm_class lens_head softcap prediction modules notes",
    )
):
    """One real forward pass. tokens: each token id decoded; params: the loaded model's
    parameters; layers_path: the ModuleList hooked ("model.layers"); layers: LayerRuns, the
    embeddings first; lens_norm, lens_head: paths of the modules the logit lens applies (None:
    no lens, notes say why), lens_norm_class: the norm's class name; softcap: the final logit
    soft-capping the lens applies as the model does, or None; prediction: the model's own top LENS_TOP next tokens (None for an
    encoder); modules: ModuleRuns, every module's output; notes: what could not be shown, and why."""

    __slots__ = ()


def mem_available() -> int | None:
    """MemAvailable from /proc/meminfo in bytes, or None where there is none (not Linux)."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def check_size(catalog: Catalog, available: int | None) -> None:
    """Refuse a model whose float32 weights exceed RUN_LIMIT or half the available memory."""
    params = catalog.total_numel
    needed = params * BYTES_PER_PARAMETER
    limit, why = RUN_LIMIT, "4 GB"
    if available is not None and available // 2 < limit:
        limit, why = available // 2, f"half of MemAvailable {available:,} bytes"
    if needed > limit:
        raise AnatomyError(
            catalog.name,
            f"a model whose float32 weights fit trace --run's limit of {limit:,} bytes ({why})",
            f"{params:,} parameters x {BYTES_PER_PARAMETER} bytes = {needed:,} bytes",
            "trace without --run shows the forward pass of any size from the config alone",
        )


def _place(catalog: Catalog) -> tuple[str, dict[str, Any]]:
    """The folder from_pretrained reads, and its keyword arguments: never the network, never a
    checkpoint's own code."""
    kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
    if catalog.format == "gguf":
        folder, name = os.path.split(catalog.files[0])
        kwargs["gguf_file"] = name
        return folder or ".", kwargs
    return catalog.root, kwargs


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _check_tokenizer(catalog: Catalog, folder: str) -> None:
    """Refuse up front, in words of our own, a model that carries no tokenizer at all."""
    if catalog.format == "gguf":
        if GGUF_TOKENIZER_KEY not in catalog.metadata:
            raise AnatomyError(
                catalog.files[0],
                f"the model's own tokenizer (the {GGUF_TOKENIZER_KEY} metadata and its vocabulary)",
                "none",
                "trace --run tokenizes with the model's tokenizer; use a GGUF converted with its vocabulary",
            )
    elif not any(os.path.isfile(os.path.join(folder, name)) for name in TOKENIZER_FILES):
        raise AnatomyError(
            folder,
            f"the model's own tokenizer ({', '.join(TOKENIZER_FILES)})",
            "none of them",
            "trace --run tokenizes with the model's tokenizer; copy its tokenizer files next to config.json",
        )


def _files_read_whole(catalog: Catalog) -> list[tuple[str, int, str, str, str]]:
    """(name, cap, what it is, what trace --run reads, what to do when too large) of each file
    beside the weights that transformers reads whole: a GGUF's vocabulary is in its metadata,
    which its reader caps, but its generation config is a file like any model's."""
    tokenizer = [
        (
            name,
            MAX_TOKENIZER_BYTES,
            "a tokenizer file",
            "the model's tokenizer files",
            f"real tokenizers are under 40 MB; fix or re-download {name}",
        )
        for name in (TOKENIZER_READS if catalog.format != "gguf" else ())
    ]
    generation = (
        "generation_config.json",
        MAX_GENERATION_CONFIG_BYTES,
        "a generation config",
        "the model's generation_config.json",
        "real ones are under 4 KB; fix, re-download or delete generation_config.json",
    )
    return [*tokenizer, generation]


def _check_files_read_whole(catalog: Catalog, folder: str) -> None:
    """Refuse a file transformers reads whole (_files_read_whole) over its cap, or a fifo or
    device in its place (which transformers would wait on or read forever), by its size alone:
    nothing of it is read."""
    for name, cap, what, reads, todo in _files_read_whole(catalog):
        path = os.path.join(folder, name)
        try:
            info = os.stat(path)
        except OSError:
            continue  # absent: transformers does without it; unreadable: transformers says so
        if stat.S_ISDIR(info.st_mode):
            continue  # transformers looks for files only
        if not stat.S_ISREG(info.st_mode):
            raise AnatomyError(
                path,
                "a regular file",
                kind_of(info.st_mode),
                f"trace --run reads {reads}; put the file itself there",
            )
        if info.st_size > cap:
            raise AnatomyError(path, f"{what} of at most {cap} bytes", f"{info.st_size} bytes", todo)


def _tokenize(catalog: Catalog, folder: str, kwargs: dict[str, Any], text: str) -> tuple[Any, list[int]]:
    import transformers

    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(folder, **kwargs)
        ids = list(tokenizer(text)["input_ids"])
    except Exception as exc:  # tokenizer files transformers cannot read: many exception types
        raise AnatomyError(
            catalog.files[0] if catalog.format == "gguf" else folder,
            "a tokenizer transformers can load",
            _first_line(exc),
            "trace --run tokenizes with the model's own tokenizer",
        ) from exc
    if not ids or len(ids) > MAX_TOKENS:
        raise UsageError(
            catalog.name,
            f"a --run text of 1 to {MAX_TOKENS} tokens",
            f"{len(ids)} tokens",
            "give a shorter text" if ids else "give a non-empty text",
        )
    return tokenizer, ids


def _load(catalog: Catalog, folder: str, kwargs: dict[str, Any]) -> Any:
    import torch
    import transformers

    try:
        # The GGUF loader's tqdm bar ignores transformers' switch for progress bars.
        with contextlib.redirect_stderr(io.StringIO()):
            config = transformers.AutoConfig.from_pretrained(folder, **kwargs)
            model_class = skeletons.model_class_for(config)
            # eager attention: the other implementations return no attention probabilities.
            return model_class.from_pretrained(
                folder, config=config, dtype=torch.float32, attn_implementation="eager", **kwargs
            ).eval()
    except Exception as exc:  # transformers fails on checkpoints in many ways
        raise AnatomyError(
            catalog.name,
            "weights transformers loads without remote code",
            _first_line(exc),
            "trace --run runs models transformers can load from local files",
        ) from exc


def _layers(model: Any, count: int | None) -> tuple[str, Any] | None:
    """The decoder layers: the ModuleList of num_hidden_layers modules (the first such, so a
    vision tower's list after it is not taken), as (path, ModuleList)."""
    import torch

    for path, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) and len(module) == count:
            return path, module
    return None


def _final_norm(model: Any) -> tuple[str, Any] | None:
    base = model.base_model
    prefix = model.base_model_prefix if base is not model else ""
    for name in FINAL_NORM_NAMES:
        module = getattr(base, name, None)
        if module is not None:
            return (f"{prefix}.{name}" if prefix else name), module
    return None


def _first_tensor(value: Any) -> Any:
    """The first tensor in a module's output (tuples, lists and ModelOutputs walked), or None."""
    import torch

    if isinstance(value, torch.Tensor):
        return value
    items = value.values() if isinstance(value, dict) else value if isinstance(value, (tuple, list)) else ()
    return next((t for t in map(_first_tensor, items) if t is not None), None)


def _stream_stats(h: Any) -> tuple[float, float, float, tuple[Activation, ...]]:
    """Norms, median |h| and the largest |h| of one [tokens, hidden] residual stream, in float64."""
    import torch

    h = h.double()
    norms = torch.linalg.vector_norm(h, dim=-1)
    magnitude = h.abs().flatten()
    top = torch.topk(magnitude, min(TOP_ACTIVATIONS, magnitude.numel()))
    width = h.shape[-1]
    activations = tuple(
        Activation(h.flatten()[i].item(), int(i) // width, int(i) % width) for i in top.indices.tolist()
    )
    return norms[-1].item(), norms.mean().item(), magnitude.median().item(), activations


def entropy_per_head(probabilities: Any) -> tuple[float, ...]:
    """[heads, queries, keys] attention probabilities -> each head's entropy in nats, averaged
    over query positions (masked keys have p = 0, which adds 0)."""
    import torch

    p = probabilities.double()
    return tuple(torch.special.entr(p).sum(-1).mean(-1).tolist())


def _predictions(logits: Any, tokenizer: Any) -> tuple[Prediction, ...]:
    import torch

    probabilities = torch.softmax(logits.double(), dim=-1)
    top = torch.topk(probabilities, min(LENS_TOP, probabilities.numel()))
    return tuple(Prediction(i, tokenizer.decode([i]), p) for i, p in zip(top.indices.tolist(), top.values.tolist()))


def _softcapped(logits: Any, softcap: float | None) -> Any:
    import torch

    return logits if not softcap else torch.tanh(logits / softcap) * softcap


class ModuleRun(namedtuple("ModuleRun", "path class_name calls shape norm_last norm_mean max_abs")):
    """One module's output in the real forward pass (its first tensor, at its first call), in
    named_modules() order. calls: how often forward ran it (0: never, then the rest is empty);
    shape: of that tensor; norm_last, norm_mean: L2 norms over its last dimension at the last
    token and averaged over tokens, when it is [1, tokens, width] (else None); max_abs: max |x|."""

    __slots__ = ()


def _module_stats(path: str, module: Any, calls: int, output: Any, tokens: int) -> ModuleRun:
    import torch

    if output is None:
        return ModuleRun(path, type(module).__name__, calls, None, None, None, None)
    x = output.detach().double()
    shape = tuple(output.shape)
    norm_last = norm_mean = None
    if x.dim() == 3 and shape[:2] == (1, tokens):
        norms = torch.linalg.vector_norm(x[0], dim=-1)
        norm_last, norm_mean = norms[-1].item(), norms.mean().item()
    max_abs = x.abs().max().item() if x.numel() else None
    return ModuleRun(path, type(module).__name__, calls, shape, norm_last, norm_mean, max_abs)


def _forward(model: Any, layers: Any, ids: list[int]) -> tuple[list[Any], Any, tuple[ModuleRun, ...]]:
    """Run the model once; the residual stream entering the first layer and leaving each layer
    (batch row 0, as [tokens, hidden]), the model's output, and every module's output."""
    import torch

    streams: list[Any] = []
    stats: dict[str, ModuleRun] = {}
    calls: dict[str, int] = {}

    def before_first(module: Any, args: tuple, kwargs: dict) -> None:
        streams.append((args[0] if args else kwargs["hidden_states"])[0].detach())

    def after(module: Any, args: tuple, output: Any) -> None:
        stream = _first_tensor(output)
        if stream is None:
            raise TypeError(f"{type(module).__name__} returned {type(output).__name__}, no tensor")
        streams.append(stream[0].detach())

    def recorder(path: str):
        def record(module: Any, args: tuple, output: Any) -> None:
            calls[path] = calls.get(path, 0) + 1
            if path not in stats:  # now, so that no module's output outlives the forward
                stats[path] = _module_stats(path, module, 1, _first_tensor(output), len(ids))

        return record

    handles = [layers[0].register_forward_pre_hook(before_first, with_kwargs=True)]
    handles += [layer.register_forward_hook(after) for layer in layers]
    handles += [module.register_forward_hook(recorder(path)) for path, module in model.named_modules()]
    try:
        with torch.no_grad():
            output = model(input_ids=torch.tensor([ids]), output_attentions=True)
    finally:
        for handle in handles:
            handle.remove()
    modules = tuple(
        stats[path]._replace(calls=calls[path]) if path in stats else _module_stats(path, module, 0, None, len(ids))
        for path, module in model.named_modules()
    )
    return streams, output, modules


def _quiet_transformers() -> Any:
    """Silence transformers' loading chatter and progress bars; returns the undo."""
    import transformers

    verbosity = transformers.logging.get_verbosity()
    bars = transformers.utils.logging.is_progress_bar_enabled()
    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()

    def undo() -> None:
        transformers.logging.set_verbosity(verbosity)
        if bars:
            transformers.utils.logging.enable_progress_bar()

    return undo


def run_trace(catalog: Catalog, text: str, available: int | None = -1) -> RunTrace:
    """Load the weights on CPU (float32), tokenize text, run one forward pass and record each
    layer. available: the memory the size limit weighs against (-1: read MemAvailable)."""
    catalog.require_config()
    # A GGUF needs [all] (transformers' GGUF loader), named first so that one install is enough.
    if catalog.format == "gguf":
        require("all", "trace --run", "to load a GGUF's weights with transformers")
    require("transformers", "trace --run", "to run the model")
    if not catalog.tensors:
        raise AnatomyError(
            catalog.name, "weights to run", "none (only a config)", "trace without --run needs only the config"
        )
    check_size(catalog, mem_available() if available == -1 else available)
    folder, kwargs = _place(catalog)
    if not all(os.path.isfile(file) for file in catalog.files):
        raise AnatomyError(
            catalog.name,
            "weights on this machine",
            "a model read over the network",
            "download it first (huggingface-cli download), then trace its folder",
        )
    _check_tokenizer(catalog, folder)
    _check_files_read_whole(catalog, folder)
    undo = _quiet_transformers()
    try:
        return _trace(catalog, folder, kwargs, text)
    finally:
        undo()


def _trace(catalog: Catalog, folder: str, kwargs: dict[str, Any], text: str) -> RunTrace:
    with announced("load"):  # importing torch and transformers, then the weights: most of the wait
        import transformers
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

        tokenizer, ids = _tokenize(catalog, folder, kwargs, text)
        model = _load(catalog, folder, kwargs)
    text_config = model.config.get_text_config()
    found = _layers(model, getattr(text_config, "num_hidden_layers", None))
    if found is None:
        raise AnatomyError(
            catalog.name,
            f"a list of num_hidden_layers decoder layers in {type(model).__name__}",
            "none",
            "trace --run needs the layers to hook",
        )
    layers_path, layers = found
    try:
        with announced("run"):
            streams, output, modules = _forward(model, layers, ids)
    except Exception as exc:  # a model's forward can fail in many ways on odd weights or configs
        raise AnatomyError(catalog.name, "a forward pass transformers can run", _first_line(exc), "") from exc
    notes = []
    attentions = getattr(output, "attentions", None) or ()
    if len(attentions) != len(layers):
        notes.append(
            f"no attention entropy: {type(model).__name__} returned {len(attentions)} attention maps for {len(layers)} layers"
        )
        attentions = ()
    causal = type(model).__name__ in set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.values())
    norm = _final_norm(model) if causal else None
    head = model.get_output_embeddings() if causal else None
    softcap = getattr(text_config, "final_logit_softcapping", None) if causal else None
    lens = norm is not None and head is not None
    if not causal:
        notes.append(f"no logit lens: {type(model).__name__} is not a causal language model")
    elif not lens:
        notes.append(
            f"no logit lens: no final norm ({', '.join(FINAL_NORM_NAMES)}) or output head found in {type(model).__name__}"
        )
    lensed: list[tuple[Prediction, ...]] = [()] * len(streams)
    if lens:
        import torch

        with torch.no_grad():
            last = torch.stack([h[-1] for h in streams])
            logits = _softcapped(head(norm[1](last)), softcap)
        lensed = [_predictions(row, tokenizer) for row in logits]
    rows = []
    for index, h in enumerate(streams):
        norm_last, norm_mean, median_abs, top = _stream_stats(h)
        entropy = entropy_per_head(attentions[index - 1][0]) if index and attentions else ()
        rows.append(
            LayerRun(
                EMBEDDINGS if index == 0 else str(index - 1),
                norm_last,
                norm_mean,
                median_abs,
                top,
                entropy,
                lensed[index],
            )
        )
    logits = getattr(output, "logits", None)
    prediction = _predictions(logits[0, -1], tokenizer) if causal and logits is not None else None
    return RunTrace(
        catalog.name,
        type(model).__name__,
        transformers.__version__,
        text,
        tuple(ids),
        tuple(tokenizer.decode([i]) for i in ids),
        sum(p.numel() for p in model.parameters()),
        layers_path,
        type(layers[0]).__name__,
        tuple(rows),
        norm[0] if lens else None,
        type(norm[1]).__name__ if lens else None,
        _module_path(model, head) if lens else None,
        softcap,
        prediction,
        modules,
        tuple(notes),
    )


def _module_path(model: Any, module: Any) -> str:
    return next(path for path, m in model.named_modules() if m is module)
