"""The token-signing examples of docs/api.md, run as written: the Python one here, the
JavaScript one under Node.js when it is installed; the server's key ring must accept both
tokens, for the user and session they were signed for."""

from __future__ import annotations

import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from serving.auth import KeyFile
from tests.serving.kit import creds

API_MD = Path(__file__).resolve().parents[2] / "docs" / "api.md"


def example(lang: str) -> str:
    blocks = re.findall(rf"```{lang}\n(.*?)```", API_MD.read_text(), re.S)
    signers = [b for b in blocks if "v1.${kid}" in b or "v1.{kid}" in b]
    assert len(signers) == 1, f"docs/api.md: expected one {lang} token example"
    return str(signers[0])


def secret_b64() -> str:
    text = Path(creds().keys_file).read_text()
    found = re.search(r'secret = "([^"]+)"', text)
    assert found is not None
    return found.group(1)


def check(token: str) -> None:
    ring = KeyFile(Path(creds().keys_file)).ring
    claims = ring.claims(token.strip(), int(time.time()))
    assert (claims.user, claims.session) == ("shopper-7", "sess-1")
    assert claims.exp_s > time.time() + 800


def test_the_python_example_signs_a_token_the_server_accepts() -> None:
    scope: dict[str, Any] = {}
    exec(example("python"), scope)  # the documentation's own code
    check(scope["recs_token"](creds().token_kid, secret_b64(), "shopper-7", "sess-1"))


def test_the_javascript_example_signs_a_token_the_server_accepts() -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the JavaScript example is not run")
    script = example("js") + (f"\nconsole.log(recsToken({creds().token_kid!r}, "
                              f"{secret_b64()!r}, 'shopper-7', 'sess-1'));\n")
    out = subprocess.run([node, "-e", script], capture_output=True, text=True, timeout=30,
                         check=True)
    check(out.stdout)
