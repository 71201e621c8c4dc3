"""`scan --engine ray`: a Ray cluster of 2 CPUs, started inside a private network namespace
(Ray binds every interface; `unshare -rn` gives it a loopback of its own), makes the same
rows as the local engine, into the same --out file; without the extra, one line."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys

import pytest

from test_inventory import tree  # noqa: F401 (a fixture: models/{sharded,single,gguf/tiny.Q8_0.gguf})

from llm_anatomy.cli.main import main

# In the namespace: bring loopback up, then a Ray of 2 CPUs that this process starts, and
# the CLI joined to it. The rows must come from Ray's workers: row_of is taken away here,
# in the driver (the workers import the module afresh).
CHILD = """
import sys, ray
ray.init(num_cpus=2, include_dashboard=False)
from llm_anatomy.analysis import inventory
from llm_anatomy.cli.main import main
del inventory.row_of
code = main(["scan", *sys.argv[1:], "--engine", "ray", "--workers", "3"])
ray.shutdown()
sys.exit(code)
"""


def _namespace_problem():
    """Why a Ray cluster cannot be started here, or None."""
    if importlib.util.find_spec("ray") is None:
        return "ray is not installed (pip install 'llm-anatomy[ray]')"
    if shutil.which("unshare") is None or shutil.which("ip") is None:
        return "unshare or ip (util-linux, iproute2) missing: Ray would bind every interface"
    probe = subprocess.run(["unshare", "-rn", "ip", "link", "set", "lo", "up"], capture_output=True)
    if probe.returncode != 0:
        return "no private network namespace (unshare -rn refused): Ray would bind every interface"
    return None


@pytest.mark.slow  # a Ray cluster starts (~15 s) and runs the tasks (~15 s)
def test_ray_rows_equal_local_rows(tree, tmp_path):  # noqa: F811
    problem = _namespace_problem()
    if problem is not None:
        pytest.skip(problem)
    local, remote = tmp_path / "local.jsonl", tmp_path / "ray.jsonl"
    assert main(["scan", str(tree), "--out", str(local)]) == 0
    env = dict(os.environ, RAY_ADDRESS="", RAY_USAGE_STATS_ENABLED="0")
    script = f'ip link set lo up && exec "$0" -c {_quoted(CHILD)} "$@"'
    result = subprocess.run(
        ["unshare", "-rn", "sh", "-c", script, sys.executable, str(tree), "--out", str(remote)],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = local.read_text().splitlines()
    assert len(lines) == 3 and all(json.loads(line)["error"] is None for line in lines)
    # the same rows, in the order each engine finished them
    assert sorted(remote.read_text().splitlines()) == sorted(lines)


def _quoted(text):
    return "'" + text.replace("'", "'\\''") + "'"


def test_ray_needs_its_extra(tree, tmp_path, monkeypatch, capsys):  # noqa: F811
    monkeypatch.setitem(sys.modules, "ray", None)  # find_spec: not installed
    out = tmp_path / "rows.jsonl"
    assert main(["scan", str(tree), "--engine", "ray", "--out", str(out)]) == 1
    assert capsys.readouterr() == (
        "",
        "llm-anatomy: --engine ray: expected ray to run the inventory on a Ray cluster, found ray is not installed; pip install 'llm-anatomy[ray]'\n",
    )
    assert not out.exists()  # refused before the out file is opened


def test_ray_address_goes_with_engine_ray(tree, capsys):  # noqa: F811
    assert main(["scan", str(tree), "--ray-address", "ray://head:10001"]) == 2
    assert capsys.readouterr() == (
        "",
        "llm-anatomy: --ray-address: expected --engine ray with it, found --engine local; add --engine ray\n",
    )
