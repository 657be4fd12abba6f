"""Device set-up and deploy: the workstation side of running bundles on a Raspberry Pi, a phone, a desktop."""

from __future__ import annotations

from pathlib import Path

REQUIREMENTS = Path(__file__).resolve().parent / "requirements.txt"


def device_requirements() -> tuple[str, ...]:
    """The device's packages (``requirements.txt`` beside this file, also the ``runner`` extra), one per entry."""
    lines = (line.split("#", 1)[0].strip() for line in REQUIREMENTS.read_text().splitlines())
    return tuple(line for line in lines if line)
