"""The README: its config reference against the CLI's own ``--print_config``, and its size."""

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]


def documented(group: str) -> dict[str, object]:
    """The README table after "`--<group>.*`": each key and its default, a row naming
    several keys (`a`, `b` | `1`, `2`) split into one entry per key."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"`--{group}.*`"))
    table = []
    for line in lines[start + 1:]:
        if line.startswith("|"):
            table.append(line)
        elif table:
            break
    out = {}
    for row in table[2:]:
        keys, defaults = (re.findall(r"`([^`]*)`", cell) for cell in row.split("|")[1:3])
        assert len(keys) == len(defaults), row
        for key, default in zip(keys, defaults):
            value = yaml.safe_load(default)
            out[key] = float(value) if isinstance(value, str) and re.fullmatch(r"[-+\d.]+e[-+]?\d+", value) else value
    return out


def flatten(config: dict, prefix: str = "") -> dict[str, object]:
    out = {}
    for key, value in config.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out


@pytest.fixture(scope="module")
def printed() -> dict:
    proc = subprocess.run([sys.executable, "train.py", "fit", "--print_config"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300, check=True)
    return yaml.safe_load(proc.stdout)


@pytest.mark.parametrize("group", ["model", "data", "eval", "last_checkpoint"])
def test_the_config_reference_lists_every_key_with_its_default(printed, group):
    actual = flatten(printed[group]["init_args"] if group == "model" else printed[group])
    assert documented(group) == actual


def test_the_readme_is_a_reference_not_a_record():
    """At most 300 lines; in-depth pages and the experiment record live apart from it."""
    lines = (ROOT / "README.md").read_text().splitlines()
    assert len(lines) <= 300
    for linked in ("docs/design.md", "docs/demonstrations.md", "benchmarks/RESULTS.md"):
        assert any(linked in line for line in lines) and (ROOT / linked).is_file(), linked
