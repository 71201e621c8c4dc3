"""Run every benchmark script in bench/ in turn (each prints its own Markdown table)."""

import glob
import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

for script in sorted(glob.glob(os.path.join(HERE, "*.py"))):
    if os.path.basename(script) in ("run.py",) or os.path.basename(script).startswith("_"):
        continue
    print(f"\n## {os.path.basename(script)}\n", flush=True)
    subprocess.run([sys.executable, script], check=False)
