"""A ScanResult as text (findings by severity, then one summary line), as JSON whose fields
follow ModelScan's report where they mean the same (summary.total_issues_by_severity,
issues[].description/severity/source/scanner/module/operator, errors), and as SARIF 2.1.0
for code-scanning pages."""

from __future__ import annotations

import json
import os
from urllib.parse import quote

from .._version import __version__
from ..analysis.scan import RULES, SEVERITIES, ScanResult
from ..core.text import escape

# SARIF's three levels, and GitHub's security-severity score (9.0+ critical, 7.0+ high,
# 4.0+ medium, below low), per severity.
SARIF_LEVEL = {"critical": "error", "high": "error", "medium": "warning", "low": "note", "info": "note"}
SECURITY_SEVERITY = {"critical": "9.5", "high": "8.0", "medium": "5.5", "low": "3.0", "info": "0.0"}
SARIF_SCHEMA = "https://json.schemastore.org/sarif-2.1.0.json"


def text(result: ScanResult) -> str:
    """One block per finding, most severe first, then what was inspected. Never "safe": only
    what the checks saw in the files they read."""
    lines = []
    for f in result.sorted_findings():
        lines.append(f"{f.severity:<8}  {f.rule}  {escape(f.file)} ({escape(f.location)}): {escape(f.message)}")
        lines.append(f"          {f.title}; {f.advice}")
    counts = {s: sum(f.severity == s for f in result.findings) for s in SEVERITIES}
    files = f"{len(result.scanned)} file{'s' * (len(result.scanned) != 1)}"
    left = len(result.skipped)
    skipped = f"; {left} file{'s' * (left != 1)} skipped (--json lists {'it' if left == 1 else 'them'})" if left else ""
    if result.findings:
        by = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        lines.append(
            f"{len(result.findings)} finding{'s' * (len(result.findings) != 1)} ({by}) in {files} inspected{skipped}"
        )
    else:
        lines.append(f"no findings in what was inspected ({files}){skipped}")
    return "\n".join(lines) + "\n"


def document(result: ScanResult) -> dict:
    issues = [
        {
            "description": f.message,
            "severity": f.severity.upper(),
            "source": f.file,
            "scanner": "llm-anatomy",
            "module": f.module,
            "operator": f.operator,
            "rule": f.rule,
            "title": f.title,
            "location": f.location,
            "advice": f.advice,
        }
        for f in result.sorted_findings()
    ]
    return {
        "summary": {
            "total_issues_by_severity": {
                s.upper(): sum(f.severity == s for f in result.findings) for s in reversed(SEVERITIES)
            },
            "total_issues": len(result.findings),
            "input_path": result.target,
            "absolute_path": os.path.abspath(result.target),
            "llm_anatomy_version": __version__,
            "scanned": {"total_scanned": len(result.scanned), "scanned_files": result.scanned},
            "skipped": {
                "total_skipped": len(result.skipped),
                "skipped_files": [
                    {"category": c, "description": why, "source": name} for name, c, why in result.skipped
                ],
            },
        },
        "issues": issues,
        "errors": [],
    }


def json_text(result: ScanResult) -> str:
    return json.dumps(document(result), indent=2) + "\n"


def sarif(result: ScanResult) -> dict:
    ids = list(RULES)
    rules = [
        {
            "id": rule.id,
            "shortDescription": {"text": rule.title},
            "help": {"text": rule.advice},
            "defaultConfiguration": {"level": SARIF_LEVEL[rule.severity]},
            "properties": {"security-severity": SECURITY_SEVERITY[rule.severity], "tags": ["security", rule.severity]},
        }
        for rule in RULES.values()
    ]
    results = [
        {
            "ruleId": f.rule,
            "ruleIndex": ids.index(f.rule),
            "level": SARIF_LEVEL[f.severity],
            "message": {"text": f"{f.message}: {f.title}; {f.advice}"},
            "locations": [
                {
                    "physicalLocation": {
                        "artifactLocation": {"uri": quote(f.file.replace(os.sep, "/")), "uriBaseId": "MODEL"}
                    },
                    "logicalLocations": [{"fullyQualifiedName": f.location}],
                }
            ],
        }
        for f in result.sorted_findings()
    ]
    base = os.path.abspath(result.target if os.path.isdir(result.target) else os.path.dirname(result.target) or ".")
    return {
        "$schema": SARIF_SCHEMA,
        "version": "2.1.0",
        "runs": [
            {
                "tool": {"driver": {"name": "llm-anatomy", "version": __version__, "rules": rules}},
                "originalUriBaseIds": {
                    "MODEL": {"uri": "file://" + quote(base.replace(os.sep, "/").rstrip("/") + "/")}
                },
                "results": results,
            }
        ],
    }


def sarif_text(result: ScanResult) -> str:
    return json.dumps(sarif(result), indent=2) + "\n"
