"""The skeletons shipped in the package (layouts/skeletons/) are what the installed
transformers builds from their replicas' configs (transformers' version aside), and
without transformers the views show them as they would show a freshly built one.

After a change of transformers' output, regenerate them: python tests/hf/test_shipped_skeleton.py"""

import json
import os
import sys
import tempfile

import pytest

from llm_anatomy import replicas
from llm_anatomy.hf import skeleton
from llm_anatomy.locate import open_catalog


def shipped_entry(name, folder):
    """What layouts/skeletons/NAME.json holds: the replica's config and weights dtype (what
    the lookup matches) and the skeleton transformers builds from them."""
    replicas.write_layout(folder, replicas.published_config(name))
    catalog = open_catalog(folder)
    dtype = skeleton.weights_dtype(catalog)
    return {"config": catalog.config, "weights_dtype": dtype, **skeleton._build(catalog.config_file, dtype).to_json()}


def without_version(entry):
    """The entry with transformers' version (also printed in config_text) replaced by a mark."""
    text = json.dumps(entry, sort_keys=True)
    # The bare version: in config_text it stands between escaped quotes (\"5.24.0\").
    return json.loads(text.replace(entry["transformers_version"], "<transformers version>"))


@pytest.mark.parametrize("name", skeleton.SHIPPED)
def test_shipped_skeleton_is_what_transformers_builds(name, tmp_path):
    with open(skeleton.shipped_path(name), encoding="utf-8") as handle:
        shipped = json.load(handle)
    built = shipped_entry(name, str(tmp_path / name))
    assert (
        '"transformers_version": "%s"' % built["transformers_version"] in built["config_text"]
    )  # what the mark replaces
    assert without_version(shipped) == without_version(built), "regenerate: python tests/hf/test_shipped_skeleton.py"


@pytest.mark.parametrize("view", [("tree",), ("tree", "--style", "torch"), ("config",), ("params", "--style", "torch")])
def test_without_transformers_the_views_of_the_replica_are_the_built_ones(published, cli, monkeypatch, view):
    folder = published("Llama-2-7b-chat-hf")
    built = cli(view[0], folder, *view[1:])
    assert built.code == 0, built.err
    installed = skeleton.installed_transformers_version()
    with open(skeleton.shipped_path("Llama-2-7b-chat-hf"), encoding="utf-8") as handle:
        shipped_version = json.load(handle)["transformers_version"]
    monkeypatch.setattr(skeleton, "installed_transformers_version", lambda: None)
    shipped = cli(view[0], folder, *view[1:])
    assert (shipped.code, shipped.err) == (0, "")
    assert shipped.out == built.out.replace(installed, shipped_version)


def test_a_config_that_differs_gets_no_shipped_skeleton(tmp_path, cli, monkeypatch):
    config = dict(replicas.published_config("Llama-2-7b-chat-hf"), num_hidden_layers=2)
    replicas.write_layout(str(tmp_path), config)
    monkeypatch.setattr(skeleton, "installed_transformers_version", lambda: None)
    result = cli("tree", tmp_path)
    assert result.code == 0
    assert (
        "note: no class names (they need the [transformers] extra: pip install 'llm-anatomy[transformers]')"
        in result.out
    )


if __name__ == "__main__":
    for name in skeleton.SHIPPED:
        with tempfile.TemporaryDirectory() as folder:
            entry = shipped_entry(name, os.path.join(folder, name))
        with open(skeleton.shipped_path(name), "w", encoding="utf-8") as handle:
            json.dump(entry, handle, indent=1)
            handle.write("\n")
        print(f"wrote {skeleton.shipped_path(name)} (transformers {entry['transformers_version']})", file=sys.stderr)
