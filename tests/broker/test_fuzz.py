"""The plugin's fuzz harness (AddressSanitizer, UBSan, leak check), bounded and seeded."""

from __future__ import annotations

import subprocess

from tests.broker.hubauth import PLUGIN_DIR


def test_fuzz_harness_finds_no_failed_invariant() -> None:
    result = subprocess.run(
        [
            "make",
            "-s",
            "-C",
            str(PLUGIN_DIR),
            "fuzz-run",
            "FUZZ_SEED=20261202",
            "FUZZ_INPUTS=100000",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert result.returncode == 0, result.stdout + result.stderr[-4000:]
    assert "100000 inputs" in result.stdout
    assert "0 failed invariant(s)" in result.stdout
