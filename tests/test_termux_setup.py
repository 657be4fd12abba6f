"""The Termux set-up script's generated commands, as far as a machine without a phone can check them.

``pkg`` and ``proot-distro`` exist only inside Termux, so they are replaced by programs that
record their argument vectors; the script itself runs unchanged under the real bash. What is
checked is what the script would ask of them: the packages, the one device requirements list
bound into the Debian userland, and the ``edgekit-python`` launcher that ``edgekit deploy
--remote-python`` calls, with every argument passed through intact.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "device_runners" / "android" / "termux-setup.sh"
RECORDER = """#!{python}
import json, os, sys
with open(os.environ["RECORD"], "a") as fh:
    fh.write(json.dumps([os.path.basename(sys.argv[0]), *sys.argv[1:]]) + "\\n")
"""


def recorded(path: Path) -> list[list[str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_termux_setup_and_its_launcher(tmp_path) -> None:
    bin_dir, home, record = tmp_path / "bin", tmp_path / "home", tmp_path / "calls.jsonl"
    bin_dir.mkdir()
    home.mkdir()
    for tool in ("pkg", "proot-distro"):
        (bin_dir / tool).write_text(RECORDER.format(python=sys.executable))
        (bin_dir / tool).chmod(0o755)
    env = {"PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "HOME": str(home), "RECORD": str(record)}
    proc = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    calls = recorded(record)
    assert calls[0] == ["pkg", "install", "-y", "openssh", "proot-distro"]
    assert calls[1] == ["proot-distro", "install", "debian"]
    login = calls[2]
    bind = login[login.index("--bind") + 1]
    assert bind == f"{ROOT / 'device_runners' / 'requirements.txt'}:/root/edgekit-requirements.txt"
    assert login[login.index("--") + 1 : login.index("--") + 3] == ["bash", "-c"]
    assert "pip install -q --only-binary=:all: -r /root/edgekit-requirements.txt" in login[-1]

    launcher = home / "edgekit-python"
    assert os.access(launcher, os.X_OK)
    record.unlink()
    work = tmp_path / "device dir"
    work.mkdir()
    args = ["-m", "edgekit.cli", "run", "bundles/x y", "--out", "it's here"]
    subprocess.run(["bash", str(launcher), *args], env=env, cwd=work, check=True, timeout=60)
    [call] = recorded(record)
    assert call == [
        "proot-distro", "login", "debian", "--bind", f"{home}:{home}", "--work-dir", str(work),
        "--", "/root/edgekit-venv/bin/python", *args,
    ]  # fmt: skip
