"""Running the operator's commands (`hub events`, `hub sessions`, `hub check`) as a
subprocess on a test stack's settings, as an operator beside `hub up` would."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

from tests.support.stack import ROOT, Stack, api_env

HUB = [sys.executable, "-m", "api.cli"]


def hub_env(stack: Stack, **extra: str) -> dict[str, str]:
    """The api's HUB_* settings (data directory, database, broker), nothing else."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return {**env, **api_env(stack.broker, stack.db, stack.jwt_secret), **extra}


def hub(
    stack: Stack, *args: str, timeout: float = 60, **env: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*HUB, *args],
        env=hub_env(stack, **env),
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=timeout,
    )


def json_lines(text: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]
