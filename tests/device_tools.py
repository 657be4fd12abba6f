"""Real device-side tools for tests: sshd on loopback, qemu, adb.

A test that needs a Debian package that is missing skips locally, but fails when
``EDGEKIT_REQUIRE_DEVICE_TOOLS=1`` (``.ci/run`` installs the packages and sets it), so
CI can never pass by skipping them.
"""

from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from edgekit.device_runners.deploy import SshTarget


def require(tool: str, package: str) -> str:
    found = shutil.which(tool) or (tool if os.path.isabs(tool) and os.path.exists(tool) else None)
    if found:
        return found
    message = f"{tool} not found (Debian package {package})"
    if os.environ.get("EDGEKIT_REQUIRE_DEVICE_TOOLS") == "1":
        pytest.fail(message)
    pytest.skip(message)


def installed_closure(requirements: Iterable[str]) -> list[metadata.Distribution]:
    """The installed distributions that ``requirements`` need, dependencies included (markers evaluated here)."""
    seen: dict[str, metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker and not req.marker.evaluate({"extra": ""}):
            continue
        key = canonicalize_name(req.name)
        if key in seen:
            continue
        seen[key] = dist = metadata.distribution(req.name)
        todo += [Requirement(r) for r in dist.requires or []]
    return list(seen.values())


def link_site(requirements: Iterable[str], site: Path) -> Path:
    """A site directory holding only ``requirements`` and what they need, as links into this environment's copies.

    What a device's venv would hold after ``pip install -r device_runners/requirements.txt``, without
    downloading it again: a subprocess given only this directory cannot import anything else installed here.
    """
    site.mkdir(parents=True, exist_ok=True)
    for dist in installed_closure(requirements):
        root = Path(dist.locate_file(""))
        for top in {Path(f).parts[0] for f in dist.files or []} - {"..", "__pycache__"}:
            if not (site / top).exists() and (root / top).exists():
                (site / top).symlink_to(root / top)
    return site


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def loopback_sshd(work: Path) -> Iterator[SshTarget]:
    """A real OpenSSH server on a free loopback port with throwaway host and client keys."""
    sshd = require("/usr/sbin/sshd", "openssh-server")
    keygen = require("ssh-keygen", "openssh-client")
    work.mkdir(parents=True, exist_ok=True)
    for name in ("host_key", "client_key"):
        subprocess.run([keygen, "-q", "-t", "ed25519", "-N", "", "-f", str(work / name)], check=True)
    (work / "authorized_keys").write_text((work / "client_key.pub").read_text())
    (work / "authorized_keys").chmod(0o600)
    port = free_port()
    config = work / "sshd_config"
    config.write_text(
        "\n".join(
            [
                "ListenAddress 127.0.0.1",
                f"Port {port}",
                f"HostKey {work / 'host_key'}",
                f"AuthorizedKeysFile {work / 'authorized_keys'}",
                f"PidFile {work / 'sshd.pid'}",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                "PermitRootLogin prohibit-password",
                "UsePAM no",
                "StrictModes no",
                "LogLevel ERROR",
                "",
            ]
        )
    )
    if os.geteuid() == 0:
        Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # privilege-separation directory
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=open(work / "sshd.log", "wb"))
    try:
        deadline = time.monotonic() + 10
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"sshd did not start: {(work / 'sshd.log').read_text()}")
            time.sleep(0.05)
        yield SshTarget(
            host="127.0.0.1",
            user=getpass.getuser(),
            port=port,
            identity=work / "client_key",
            options=(f"UserKnownHostsFile={work / 'known_hosts'}",),
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)
