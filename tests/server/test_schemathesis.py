"""schemathesis against the daemon's /openapi.json (real uvicorn, FakeEngine): positive and negative inputs,
no 5xx answer. The schemathesis CLI runs the cases (its pytest plugin does not support this pytest)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path


def test_no_input_gets_a_server_error(fake_daemon):
    schemathesis = Path(sys.executable).parent / "schemathesis"
    command = [
        str(schemathesis),
        "run",
        fake_daemon.url + "/openapi.json",
        "--checks",
        "not_a_server_error",
        "--mode",
        "all",
        "--max-examples",
        "30",
        "--generation-deterministic",
        "--workers",
        "1",
    ]
    result = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "Operations:       6 selected / 6 total" in result.stdout
    generated = re.search(r"(\d+) generated, (\d+) passed", result.stdout)
    assert generated and generated[1] == generated[2] and int(generated[1]) > 100, result.stdout[-2000:]
