"""hub_env reads the endpoint, the token and the user agent's parts as huggingface_hub
does: each case runs both in a fresh process (huggingface_hub reads its settings at
import) and compares."""

import json
import os
import subprocess
import sys

import pytest

COMPARE = """
import json
from huggingface_hub import constants, hf_hub_url
from huggingface_hub.utils import build_hf_headers, get_token
from llm_anatomy.hub import settings as hub_env

theirs_headers, our_headers = build_hf_headers(), hub_env.headers()
print(json.dumps({
    "token": [hub_env.token(), get_token()],
    "authorization": [our_headers.get("authorization"), theirs_headers.get("authorization")],
    "endpoint": [hub_env._Settings().endpoint, constants.ENDPOINT],
    "offline": [hub_env.offline(), constants.HF_HUB_OFFLINE],
    "hub cache": [hub_env.hub_cache(), constants.HF_HUB_CACHE],
    "url": [hub_env.resolve_url("org/m", "refs/pr/1", "q4 dir/m+1.gguf"), hf_hub_url("org/m", "q4 dir/m+1.gguf", revision="refs/pr/1")],
    "user agent": [our_headers["user-agent"].split("; ")[1:], theirs_headers["user-agent"].split("; ")[2:]],  # after hf_hub/VERSION
}))
"""


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as handle:
        handle.write(text)


CASES = {
    "no token anywhere": ({}, {}),
    "HF_TOKEN, spaces and newline around it": ({"HF_TOKEN": " hf_env\n"}, {}),
    "HF_TOKEN empty, the legacy variable set": ({"HF_TOKEN": "", "HUGGING_FACE_HUB_TOKEN": "hf_legacy"}, {}),
    "HF_TOKEN over the token file": ({"HF_TOKEN": "hf_env"}, {"home/.cache/huggingface/token": "hf_file"}),
    "the token file in ~/.cache/huggingface": ({}, {"home/.cache/huggingface/token": "hf_file\r\n"}),
    "the token file under XDG_CACHE_HOME": ({"XDG_CACHE_HOME": "{tmp}/xdg"}, {"xdg/huggingface/token": "hf_xdg"}),
    "the token file under HF_HOME with ~": ({"HF_HOME": "~/hf home"}, {"home/hf home/token": "hf_home"}),
    "HF_TOKEN_PATH with a variable": ({"HF_TOKEN_PATH": "$HOME/my-token"}, {"home/my-token": "hf_path"}),
    "an empty token file": ({}, {"home/.cache/huggingface/token": " \n"}),
    "a browser login's token, not due": (
        {},
        {
            "home/.cache/huggingface/token": "hf_oauth",
            "home/.cache/huggingface/stored_tokens": "[web]\nhf_token = hf_oauth\nrefresh_token = r\nexpires_at = 99999999999\n",
        },
    ),
    "HF_HUB_DISABLE_IMPLICIT_TOKEN": ({"HF_HUB_DISABLE_IMPLICIT_TOKEN": "1", "HF_TOKEN": "hf_env"}, {}),
    "HF_ENDPOINT with a slash, an origin, no telemetry": (
        {
            "HF_ENDPOINT": "http://mirror.example:8080/",
            "HF_HUB_USER_AGENT_ORIGIN": "spaces",
            "HF_HUB_DISABLE_TELEMETRY": "1",
        },
        {},
    ),
    "staging": ({"HUGGINGFACE_CO_STAGING": "1"}, {}),
    "HF_HUB_OFFLINE": ({"HF_HUB_OFFLINE": "yes"}, {}),
    "HF_HUB_CACHE with ~ and a variable": ({"HF_HUB_CACHE": "~/$USER_DIR/hub", "USER_DIR": "me"}, {}),
    "the legacy HUGGINGFACE_HUB_CACHE": ({"HUGGINGFACE_HUB_CACHE": "{tmp}/legacy"}, {}),
    "HF_HUB_CACHE over the legacy variable": (
        {"HF_HUB_CACHE": "{tmp}/new", "HUGGINGFACE_HUB_CACHE": "{tmp}/legacy"},
        {},
    ),
    "HF_HOME with a variable": ({"HF_HOME": "$HOME/hf"}, {}),
    "HF_HUB_OFFLINE empty, TRANSFORMERS_OFFLINE set": ({"HF_HUB_OFFLINE": "", "TRANSFORMERS_OFFLINE": "1"}, {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_what_is_sent_equals_huggingface_hubs(case, tmp_path):
    env_vars, files = CASES[case]
    for path, text in files.items():
        write(str(tmp_path / path), text)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING", "XDG_", "TRANSFORMERS_"))}
    env.update({k: v.replace("{tmp}", str(tmp_path)) for k, v in env_vars.items()}, HOME=str(tmp_path / "home"))
    env.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")  # else huggingface_hub adds the torch version, which we leave out
    result = subprocess.run([sys.executable, "-c", COMPARE], capture_output=True, text=True, env=env)
    assert result.returncode == 0, result.stderr
    for what, (ours, theirs) in json.loads(result.stdout).items():
        assert ours == theirs, what
