"""What a run or a file was made with, so results can be traced and reproduced."""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version

PACKAGES = ("gail_lightning", "torch", "lightning", "torchrl", "tensordict", "gymnasium", "mujoco", "numpy")


def package_versions() -> dict[str, str]:
    """Versions of Python and of the packages the results depend on."""
    found = {"python": platform.python_version()}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found
