"""Device facts and memory accounting."""

from __future__ import annotations

import platform
import subprocess
import sys

import pytest

from edgekit import device


def test_peak_rss_is_the_processs_own_not_its_parents() -> None:
    """A runner started by a big process (a benchmark driver, a training job) reports its own peak."""
    big = bytearray(400 * 2**20)
    big[::4096] = b"\x01" * len(big[::4096])  # make every page resident
    assert device.peak_rss_mb() > 400
    code = "from edgekit.device import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    del big
    assert 5 < child < 150


def test_describe_has_the_fields_reports_use() -> None:
    d = device.describe()
    assert {"cpu", "arch", "cores_logical", "memory_mb", "runtimes", "os"} <= d.keys()
    assert d["runtimes"]["python"] == sys.version.split()[0]
    assert "emulated" not in d


def test_cpu_features_name_the_int8_kernels() -> None:
    """Read from the cpuinfo text given, so the same answer on any host."""
    from edgekit.device_runners.raspberry_pi.emulate import PI5_CPUINFO

    no_vnni = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    vnni_amx = "flags\t\t: avx2 avx512f avx512_vnni avx512_bf16 amx_tile amx_int8 amx_bf16\n"
    assert device.cpu_features(no_vnni) == {"cpu_features": ["avx2"], "int8_dot_product": False}
    assert device.cpu_features(vnni_amx) == {
        "cpu_features": ["amx_bf16", "amx_int8", "amx_tile", "avx2", "avx512_bf16", "avx512_vnni", "avx512f"],
        "int8_dot_product": True,
    }
    assert device.cpu_features(PI5_CPUINFO) == {"cpu_features": ["asimd", "asimddp"], "int8_dot_product": True}
    assert set(device.describe()["cpu_features"]) <= set(device.KERNEL_FEATURES)
    assert device.bf16_features(no_vnni) == [] and device.bf16_features(PI5_CPUINFO) == []
    assert device.bf16_features(vnni_amx) == ["avx512_bf16", "amx_bf16"]


def test_desktop_thread_sweep(minilm_bundle, dev_path, tmp_path) -> None:
    import json

    from edgekit.device_runners.desktop.sweep import main

    assert main([str(minilm_bundle.path), "--dataset", str(dev_path), "--out", str(tmp_path), "--limit", "2",
                 "--threads", "1", "2"]) == 0  # fmt: skip
    rows = json.loads((tmp_path / "sweep.json").read_text())["rows"]
    assert [(r["threads"], r["n_questions"]) for r in rows] == [(1, 2), (2, 2)]
    assert rows[0]["f1"] == rows[1]["f1"]  # threads change speed, never answers
    assert (tmp_path / "minilm" / "t1" / "metrics.json").is_file()


CHURN = """
import re, sys
from edgekit import device
if sys.argv[1] == "fixed":
    assert device.keep_large_allocations_mapped()
big = bytearray(16 << 20)
del big  # a mapped block freed: glibc would now serve blocks below 16 MB from its heap
blocks = [bytearray(4 << 20) for _ in range(8)]
pin = bytearray(200_000)  # a block after them keeps the heap's top in use
del blocks
print(int(re.search(r"VmRSS:\\s+(\\d+)", open("/proc/self/status").read()).group(1)) // 1024)
"""


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="a glibc setting (mallopt)")
def test_large_blocks_go_back_to_the_system_when_freed() -> None:
    """The runner's peak counts what the C heap keeps: with the threshold fixed, freed buffers of a few MB leave."""

    def resident(mode: str) -> int:
        return int(
            subprocess.run([sys.executable, "-c", CHURN, mode], capture_output=True, text=True, check=True).stdout
        )

    assert resident("default") - resident("fixed") > 24  # the 32 MB of blocks stay in the default heap only
