"""An emulated Raspberry Pi: Debian bookworm's arm64 Python under ``qemu-aarch64-static``.

No chroot and no root: the arm64 ``python3.11`` and the libraries it and the
runtime wheels need are fetched with a private apt configuration (architecture
arm64, own lists and cache) and unpacked with ``dpkg-deb -x``; the device's packages
(``device_runners/requirements.txt``, the list a real Pi installs) are installed as aarch64
wheels by the host's pip with ``--target`` and the manylinux aarch64 platform tags.
``QEMU_LD_PREFIX`` points the emulator at the unpacked tree.

Nothing of this checkout is on the emulated Python's path: it runs the ``edgekit/``
files that ``edgekit deploy`` ships (``device_runners.deploy.stage_code``, or a deploy over ssh with
:meth:`EmulatedPython.write_launcher` as the remote Python), so a test of it proves
what a Pi would run.

Two traps handled here: onnxruntime's CPU probe
reads ``/proc/cpuinfo``, which under user-mode emulation is the host's x86 file and
crashes it, so an aarch64 cpuinfo (a Raspberry Pi 5's) is placed in the rootfs,
where qemu's path lookup finds it first; and ``QEMU_CPU=cortex-a76`` (the Pi 5's
core) keeps results bit-identical to real ARM kernels' choice of instructions.

Emulated floating point is many times slower than the host (docs/runner.md, "The emulated
Raspberry Pi", has what was measured): use this for correctness, and never quote its latency as a Pi's.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from edgekit.device import cpu_model
from edgekit.device_runners import device_requirements
from edgekit.errors import EdgekitError

DEBIAN_MIRROR = "http://deb.debian.org/debian"
SUITE = "bookworm"
# python3.11 brings libc6 and the stdlib through its dependencies; libstdc++6 is for
# onnxruntime and tokenizers' native code.
DEB_PACKAGES = ("python3.11", "libstdc++6")
PYTHON_TAG = "3.11"
PLATFORM_TAGS = tuple(f"manylinux_2_{v}_aarch64" for v in (17, 24, 27, 28, 31, 34, 35, 36))

# /proc/cpuinfo of a Raspberry Pi 5 (4 x Cortex-A76), trimmed to what CPU probes read.
PI5_CPUINFO = (
    "".join(
        f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp "
        "asimdhp cpuid asimdrdm lrcpc dcpop asimddp\nCPU implementer\t: 0x41\nCPU architecture: 8\n"
        "CPU variant\t: 0x4\nCPU part\t: 0xd0b\nCPU revision\t: 1\n\n"
        for i in range(4)
    )
    + "Revision\t: d04170\nSerial\t\t: 0000000000000000\nModel\t\t: Raspberry Pi 5 Model B Rev 1.0\n"
)


def default_cache() -> Path:
    """Where the arm64 rootfs and wheels are kept between runs: ``EDGEKIT_ARM64_CACHE`` or ``~/.cache/edgekit/arm64``."""
    return Path(os.environ.get("EDGEKIT_ARM64_CACHE", Path.home() / ".cache" / "edgekit" / "arm64"))


def add_cache_argument(p: argparse.ArgumentParser) -> None:
    """``--cache``, for every command that starts the emulated Pi."""
    p.add_argument(
        "--cache",
        type=Path,
        default=default_cache(),
        help="where the arm64 rootfs and wheels are kept between runs (default: %(default)s)",
    )


@dataclass(frozen=True)
class EmulatedPython:
    """How to start the arm64 interpreter: the argv prefix and the environment it needs."""

    rootfs: Path
    site: Path

    @property
    def argv(self) -> list[str]:
        return [qemu_binary(), str(self.rootfs / "usr/bin/python3.11")]

    def env(self, code: Path | None = None) -> dict[str, str]:
        """The emulator's settings; ``code`` (a directory holding ``edgekit/``) ahead of the aarch64 wheels."""
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
        env.update(
            QEMU_LD_PREFIX=str(self.rootfs),
            QEMU_CPU="cortex-a76",
            PYTHONPATH=os.pathsep.join([*([str(code)] if code else []), str(self.site)]),
            PYTHONNOUSERSITE="1",
            EDGEKIT_EMULATED=EMULATED_NOTE,
        )
        return env

    def edgekit(self, args: list[str], code: Path, **kwargs) -> subprocess.CompletedProcess:
        """Run the ``edgekit`` command line (e.g. ``["run", BUNDLE, ...]``) from ``code`` on the emulated Pi."""
        return subprocess.run([*self.argv, "-m", "edgekit.cli", *args], env=self.env(code), **kwargs)

    def write_launcher(self, path: Path) -> Path:
        """A shell script that starts this Python as a device's ``python`` would be started.

        Give it to ``edgekit deploy --remote-python``: the deploy's own ``PYTHONPATH=code``
        (the shipped ``edgekit/``) comes first, then the aarch64 wheels; nothing else.
        """
        env = self.env()
        settings = " ".join(
            f"{k}={shlex.quote(env[k])}" for k in ("QEMU_LD_PREFIX", "QEMU_CPU", "PYTHONNOUSERSITE", "EDGEKIT_EMULATED")
        )
        script = (
            "#!/bin/sh\n# the emulated Raspberry Pi's python3.11 (device_runners/raspberry_pi/emulate.py)\n"
            f'PYTHONPATH="${{PYTHONPATH:+$PYTHONPATH:}}"{shlex.quote(str(self.site))}\n'
            f"export PYTHONPATH {settings}\n"
            f'exec {" ".join(shlex.quote(a) for a in self.argv)} "$@"\n'
        )
        path.write_text(script)
        path.chmod(0o755)
        return path


EMULATED_NOTE = (
    f"qemu user-mode emulation (QEMU_CPU=cortex-a76) on {platform.machine()} host '{cpu_model()}': "
    "latencies are emulation time, not a Raspberry Pi's"
)


def qemu_binary() -> str:
    found = shutil.which("qemu-aarch64-static") or shutil.which("qemu-aarch64")
    if not found:
        raise EdgekitError("qemu-aarch64-static not found: install Debian's qemu-user-static package")
    return found


def _apt_config(root: Path) -> Path:
    """A private apt configuration that resolves arm64 packages without touching the host's apt state."""
    for d in ("lists/partial", "archives/partial", "etc/sources.list.d", "etc/preferences.d"):
        (root / d).mkdir(parents=True, exist_ok=True)
    (root / "status").touch()
    (root / "etc/sources.list").write_text(
        f"deb [arch=arm64 signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] {DEBIAN_MIRROR} {SUITE} main\n"
    )
    conf = root / "apt.conf"
    conf.write_text(
        "\n".join(
            [
                'APT::Architecture "arm64";',
                'APT::Architectures { "arm64"; };',
                f'Dir::State "{root}";',
                f'Dir::State::Lists "{root}/lists";',
                f'Dir::State::status "{root}/status";',
                f'Dir::Cache "{root}";',
                f'Dir::Cache::archives "{root}/archives";',
                f'Dir::Etc::SourceList "{root}/etc/sources.list";',
                f'Dir::Etc::SourceParts "{root}/etc/sources.list.d";',
                f'Dir::Etc::Preferences "{root}/etc/preferences.d";',
                f'Dir::Etc::PreferencesParts "{root}/etc/preferences.d";',
                'APT::Install-Recommends "false";',
                "",
            ]
        )
    )
    return conf


def build_rootfs(rootfs: Path, apt_dir: Path | None = None) -> Path:
    """Download Debian's arm64 python3.11 (with its dependency closure) and unpack it into ``rootfs``."""
    python = rootfs / "usr/bin/python3.11"
    if python.exists():
        return rootfs
    apt_dir = apt_dir or rootfs.with_name(rootfs.name + "-apt")
    env = {**os.environ, "APT_CONFIG": str(_apt_config(apt_dir)), "DEBIAN_FRONTEND": "noninteractive"}
    quiet = {"env": env, "check": True, "capture_output": True, "text": True}
    try:
        subprocess.run(["apt-get", "update", "-q"], **quiet)
        subprocess.run(["apt-get", "install", "-y", "-q", "--download-only", *DEB_PACKAGES], **quiet)
    except subprocess.CalledProcessError as exc:
        raise EdgekitError(f"fetching arm64 packages failed: {exc.stderr.strip()[-500:]}") from None
    tmp = rootfs.with_name(rootfs.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    for deb in sorted((apt_dir / "archives").glob("*.deb")):
        subprocess.run(["dpkg-deb", "-x", str(deb), str(tmp)], check=True)
    (tmp / "proc").mkdir(exist_ok=True)
    (tmp / "proc/cpuinfo").write_text(PI5_CPUINFO)
    tmp.rename(rootfs)  # all or nothing: a half-unpacked tree is never taken for a finished one
    return rootfs


def install_wheels(site: Path, packages: tuple[str, ...] | None = None) -> Path:
    """Install aarch64 CPython 3.11 wheels for ``packages`` (default: the device's list) into ``site``."""
    packages = packages or device_requirements()
    marker = site / ".edgekit-installed"
    if marker.exists() and marker.read_text() == "\n".join(packages):
        return site
    tmp = site.with_name(site.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    platforms = [a for tag in PLATFORM_TAGS for a in ("--platform", tag)]
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--target", str(tmp), "--only-binary=:all:"]
    cmd += ["--python-version", PYTHON_TAG, "--implementation", "cp", "--abi", "cp311", *platforms, *packages]
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise EdgekitError(f"installing aarch64 wheels failed: {proc.stderr.strip()[-800:]}")
    (tmp / ".edgekit-installed").write_text("\n".join(packages))
    shutil.rmtree(site, ignore_errors=True)
    tmp.rename(site)
    return site


def emulated_python(cache_dir: Path, packages: tuple[str, ...] | None = None) -> EmulatedPython:
    """The emulated Pi's Python with the runner's wheels, built once under ``cache_dir``."""
    qemu_binary()
    rootfs = build_rootfs(cache_dir / "rootfs", cache_dir / "apt")
    site = install_wheels(cache_dir / "site", packages)
    return EmulatedPython(rootfs, site)
