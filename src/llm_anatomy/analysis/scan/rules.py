"""The rules `scan` applies, as one table: a stable id, a severity, a title and the advice
a finding carries. Checks name a rule by id; what a rule means and weighs lives here only."""

from __future__ import annotations

from dataclasses import dataclass

SEVERITIES = ("critical", "high", "medium", "low", "info")  # most severe first
RANK = {name: len(SEVERITIES) - at for at, name in enumerate(SEVERITIES)}  # critical 5 ... info 1


@dataclass(frozen=True)
class Rule:
    id: str
    severity: str
    title: str
    advice: str


NO_PICKLE = "do not load it with torch.load(weights_only=False), pickle or joblib; ask for safetensors, or convert it where nothing of value can be reached"
_RULES = (
    # Pickles: the allowlist is the one restricted_pickle.ALLOWED loads with; anything else is reported.
    Rule("LA-PICKLE-001", "critical", "a global outside the allowlist is called when the pickle is loaded", NO_PICKLE),
    Rule(
        "LA-PICKLE-002",
        "high",
        "a global outside the allowlist is imported when the pickle is loaded (named, not called)",
        NO_PICKLE,
    ),
    Rule(
        "LA-PICKLE-003",
        "low",
        "a plain data type outside the state-dict allowlist (torch's weights_only loader accepts it)",
        "nothing runs through it; llm-anatomy's readers still refuse the file, so convert it to a plain state dict",
    ),
    Rule(
        "LA-PICKLE-004",
        "high",
        "a global whose name is computed while loading, or looked up in the extension registry",
        NO_PICKLE,
    ),
    Rule("LA-PICKLE-005", "high", "object state set on something that is not a dict (BUILD)", NO_PICKLE),
    Rule(
        "LA-PICKLE-006",
        "medium",
        "bytes after the pickle's STOP that another reader may load",
        "a loader that reads on past STOP sees what this scan reports after it; keep only files whose pickle ends the data",
    ),
    Rule(
        "LA-PICKLE-007",
        "high",
        "a pickle that cannot be followed to its end",
        "a loader may read it differently from this scan; do not load it",
    ),
    Rule(
        "LA-PICKLE-008",
        "high",
        "a pickle of more operations than any state dict needs",
        "it is a memory or time bomb, or not a checkpoint; do not load it",
    ),
    Rule(
        "LA-PICKLE-009",
        "medium",
        "a byte string in the pickle holding another pickle or zip",
        "code in the pickle can load it (torch.load of bytes); its own findings follow",
    ),
    Rule(
        "LA-PICKLE-010",
        "high",
        "a dict key that a loader hashes at unbounded cost (a tuple, or an integer of 2**61 or more)",
        "a time bomb for torch.load and pickle alike; do not load it",
    ),
    # Zip archives (torch.save since 1.6).
    Rule(
        "LA-ZIP-001",
        "high",
        "a zip entry name appears twice",
        "readers pick different copies (the first or the last); do not load it",
    ),
    Rule(
        "LA-ZIP-002",
        "high",
        "a zip entry name escapes the archive (absolute, '..' or a drive)",
        "an extracting tool writes outside its folder; do not extract or load it",
    ),
    Rule(
        "LA-ZIP-003",
        "high",
        "a zip that cannot be read",
        "a loader may read it differently from this scan; download it again",
    ),
    # Code a loader runs.
    Rule(
        "LA-CODE-001",
        "high",
        "auto_map: from_pretrained(trust_remote_code=True) imports Python files from the repo",
        "read the named files before passing trust_remote_code=True, or load the architecture from transformers itself",
    ),
    Rule(
        "LA-CODE-002",
        "medium",
        "a Python file in the model folder",
        "it runs only when imported (trust_remote_code, a custom pipeline): read it before you allow that",
    ),
    Rule(
        "LA-CODE-003",
        "high",
        "custom_pipelines: transformers' pipeline() imports a class from the repo",
        "read the named file before passing trust_remote_code=True",
    ),
    # Files.
    Rule(
        "LA-FILE-001",
        "high",
        "a file type no model loader reads (native code or a script) beside the weights",
        "nothing in a checkpoint needs it; find out who put it there before running anything from the folder",
    ),
    Rule(
        "LA-FILE-002",
        "high",
        "a symbolic link that leads out of the model folder",
        "a loader reads whatever it points to; replace the link with the file",
    ),
    Rule(
        "LA-FILE-003",
        "medium",
        "the index names a file that is not there",
        "loading fails or picks up a file dropped in later; download the checkpoint again",
    ),
    Rule(
        "LA-FILE-004",
        "low",
        "a weights file that the index does not name",
        "loaders that follow the index ignore it, tools that glob read it; remove it or find out what it is",
    ),
    Rule(
        "LA-FILE-005",
        "high",
        "a file its reader refuses",
        "the reader's reason follows; a loader may read it differently, so do not load it",
    ),
    # safetensors (the format's one-page spec; the safetensors library refuses the same).
    Rule(
        "LA-ST-001",
        "high",
        "tensor data that overlaps another tensor's",
        "two names share bytes: writing one changes the other; the safetensors library refuses it",
    ),
    Rule(
        "LA-ST-002",
        "medium",
        "bytes between tensors that no tensor covers",
        "a place to hide data; the safetensors library refuses it; convert the file again",
    ),
    Rule(
        "LA-ST-003",
        "medium",
        "bytes after the last tensor",
        "a place to hide data; the safetensors library refuses it; convert the file again",
    ),
    Rule(
        "LA-ST-004",
        "info",
        "tensor data in another order than the header's",
        "harmless for loaders; noted because writers keep the two in step",
    ),
    Rule(
        "LA-ST-005",
        "medium",
        "a header within 10% of the 100 MB limit",
        "no checkpoint needs that much header; look at what the header holds",
    ),
    Rule(
        "LA-ST-006",
        "medium",
        "a metadata string with terminal control characters",
        "printed as is it can rewrite what a terminal shows; read it escaped",
    ),
    # GGUF.
    Rule(
        "LA-GGUF-001",
        "high",
        "tensor data that overlaps another tensor's",
        "two names share bytes; convert the model again",
    ),
    Rule(
        "LA-GGUF-002",
        "medium",
        "a metadata string with terminal control characters",
        "printed as is it can rewrite what a terminal shows; read it escaped",
    ),
    # Tensor data (scan --deep: statistics of every value, analysis/inventory_deep.py).
    Rule(
        "LA-DATA-001",
        "high",
        "a tensor with NaN or Inf values",
        "every output it touches is NaN or Inf; the file was damaged or saved from a diverged run: download it again or take an earlier checkpoint",
    ),
    Rule(
        "LA-DATA-002",
        "low",
        "a tensor whose values are all zero",
        "fine for a bias or a fresh adapter, a sign of a lost or failed save for a weight: compare it with the source",
    ),
    Rule(
        "LA-DATA-003",
        "low",
        "values beyond float16's range (65504) in a wider floating-point tensor",
        "a float16 copy turns them into Inf: serve it in bfloat16 or float32",
    ),
    # Chat templates (Jinja), rendered only in jinja2's ImmutableSandboxedEnvironment.
    Rule(
        "LA-TEMPLATE-001",
        "critical",
        "a chat template that reaches dunder attributes such as __class__ or __globals__",
        "the shape of a template-injection exploit (CVE-2024-34359): render it only in jinja2's sandbox, or replace the template",
    ),
    Rule(
        "LA-TEMPLATE-002",
        "high",
        "a chat template the sandbox refuses to render",
        "it tries what a chat template never needs: render it only in jinja2's sandbox, or replace the template",
    ),
    Rule(
        "LA-TEMPLATE-003",
        "high",
        "a chat template that reaches private attributes (cycler, joiner, namespace internals)",
        "render it only in jinja2's sandbox, or replace the template",
    ),
    Rule(
        "LA-TEMPLATE-004",
        "medium",
        "a chat template beyond the rendering bounds (size, output or loop steps)",
        "a renderer without bounds can hang or run out of memory on it; replace the template",
    ),
    Rule("LA-TEMPLATE-005", "low", "a chat template that does not parse", "loaders fail on it; replace the template"),
    Rule(
        "LA-TEMPLATE-006",
        "info",
        "a chat template checked by its text only (jinja2 is not installed)",
        "install jinja2 (pip install jinja2) for the sandboxed rendering",
    ),
)
RULES = {rule.id: rule for rule in _RULES}


@dataclass(frozen=True)
class Finding:
    """One thing found: the rule, the file (relative to what was scanned), the place inside it
    (a pickle opcode offset, a GGUF key, a tensor name, a config field) and what it is."""

    rule: str
    file: str
    location: str
    message: str
    module: str = ""  # a pickle global's module and name (ModelScan's module and operator)
    operator: str = ""

    @property
    def severity(self) -> str:
        return RULES[self.rule].severity

    @property
    def title(self) -> str:
        return RULES[self.rule].title

    @property
    def advice(self) -> str:
        return RULES[self.rule].advice


@dataclass
class ScanResult:
    """What a scan found, and which files it inspected or skipped: (file, category, why),
    categories as ModelScan names them where it has one (SCAN_NOT_SUPPORTED)."""

    target: str
    findings: list[Finding]
    scanned: list[str]
    skipped: list[tuple[str, str, str]]

    def sorted_findings(self) -> list[Finding]:
        """Most severe first; within a severity by file, then in the order found (a pickle's by offset)."""
        return sorted(self.findings, key=lambda f: (-RANK[f.severity], f.file))

    def at_or_above(self, severity: str) -> list[Finding]:
        return [f for f in self.findings if RANK[f.severity] >= RANK[severity]]
