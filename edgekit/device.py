"""What machine a measurement ran on: CPU, cores, memory, OS, runtimes, and
Raspberry Pi facts (model, temperature, throttling, frequency) where present.

Numbers are only comparable with the machine beside them, so every metrics file
carries this record.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

RUNTIME_PACKAGES = ("numpy", "onnxruntime", "tokenizers", "ai-edge-litert", "tflite-runtime", "psutil")


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace").strip("\x00\n ")
    except OSError:
        return None


def cpu_model() -> str:
    """The CPU's name from /proc/cpuinfo (x86 'model name', ARM 'Model'/'Hardware'), else platform."""
    info = _read("/proc/cpuinfo") or ""
    fields: dict[str, str] = {}
    for line in info.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    for key in ("model name", "model", "hardware", "cpu model"):
        if fields.get(key):
            return fields[key]
    return platform.processor() or platform.machine()


# CPU features that decide which int8 and bf16 kernels a runtime picks, as /proc/cpuinfo names them
# (x86 'flags', ARM 'Features'): without an int8 dot product (VNNI, AMX, ARM dotprod 'asimddp' or i8mm)
# x86 int8 GEMMs sum u8 x s8 pairs into int16 and saturate, so 8-bit weights answer differently there.
INT8_DOT_FEATURES = ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp", "i8mm")
# bfloat16 arithmetic (x86 AVX512-BF16 and AMX, ARM BF16): without one, torch's CPU autocast emulates bf16 and a
# training step under it is many times slower than in fp32 (docs/results.md, "Training time: length-grouped batches and bf16")
BF16_FEATURES = ("avx512_bf16", "amx_bf16", "bf16")
KERNEL_FEATURES = ("avx2", "avx512f", "amx_tile", "asimd", "sve", "sve2", *BF16_FEATURES, *INT8_DOT_FEATURES)


def _cpu_flags(cpuinfo: str | None) -> set[str]:
    flags: set[str] = set()
    for line in (_read("/proc/cpuinfo") if cpuinfo is None else cpuinfo or "").splitlines():
        key, _, value = line.partition(":")
        if key.strip().lower() in ("flags", "features"):
            flags.update(value.split())
    return flags


def cpu_features(cpuinfo: str | None = None) -> dict[str, object]:
    """The int8/bf16-relevant features of this CPU (or of a ``cpuinfo`` text), and whether it has an int8 dot product."""
    flags = _cpu_flags(cpuinfo)
    present = sorted(f for f in KERNEL_FEATURES if f in flags)
    return {"cpu_features": present, "int8_dot_product": any(f in flags for f in INT8_DOT_FEATURES)}


def bf16_features(cpuinfo: str | None = None) -> list[str]:
    """The CPU's bfloat16 instructions (none: ``training.bf16`` would be emulated)."""
    flags = _cpu_flags(cpuinfo)
    return [f for f in BF16_FEATURES if f in flags]


def runtime_versions() -> dict[str, str]:
    # imported when a run's metrics are written, not with the runner: importlib.metadata brings email, zipfile
    # and csv, which a run would otherwise hold beside its model (docs/runner.md, "Memory")
    from importlib import metadata

    versions = {"python": platform.python_version()}
    for name in RUNTIME_PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def pi_facts() -> dict[str, object]:
    """Board model, SoC temperature, throttling flags and CPU frequency, when the OS exposes them."""
    facts: dict[str, object] = {}
    model = _read("/proc/device-tree/model")
    if model:
        facts["board"] = model
    temp = _read("/sys/class/thermal/thermal_zone0/temp")
    if temp and temp.lstrip("-").isdigit():
        facts["cpu_temp_c"] = int(temp) / 1000.0
    throttled = _read("/sys/devices/platform/soc/soc:firmware/get_throttled")
    if throttled:
        facts["throttled"] = throttled
    freq = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq")
    if freq and freq.isdigit():
        facts["cpu_freq_mhz"] = int(freq) / 1000.0
    governor = _read("/sys/devices/system/cpu/cpu0/cpufreq/scaling_governor")
    if governor:
        facts["governor"] = governor
    return facts


def describe() -> dict[str, object]:
    """The device record stored in metrics.json."""
    import psutil  # with its subprocess module: imported when the record is made, as importlib.metadata is

    return {
        "cpu": cpu_model(),
        **cpu_features(),
        "cores_logical": os.cpu_count(),
        "cores_physical": psutil.cpu_count(logical=False),
        "arch": platform.machine(),
        "os": platform.platform(),
        "memory_mb": round(psutil.virtual_memory().total / 2**20),
        "python_executable": sys.executable,
        "runtimes": runtime_versions(),
        **pi_facts(),
        # set by device_runners.raspberry_pi.emulate: the CPU facts above are then the emulated board's,
        # and every time is emulation time, not the board's
        **({"emulated": os.environ["EDGEKIT_EMULATED"]} if os.environ.get("EDGEKIT_EMULATED") else {}),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB.

    Linux: ``VmHWM`` from /proc/self/status, the high-water mark of this address
    space. Not ``getrusage``'s ``ru_maxrss``: that survives ``exec``, so a runner
    started by a large parent (a training job, a benchmark driver) would report the
    parent's peak. Elsewhere ``ru_maxrss`` (bytes on macOS) and the current RSS.
    """
    status = _read("/proc/self/status") or ""
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024.0
    import psutil

    rss = psutil.Process().memory_info().rss
    try:
        import resource

        unit = 1 if sys.platform == "darwin" else 1024
        rss = max(rss, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * unit)
    except (ImportError, AttributeError):
        pass
    return rss / 2**20


# glibc's mallopt parameter for the size from which an allocation gets its own mapping
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_BYTES = 128 * 1024  # glibc's initial value


def keep_large_allocations_mapped() -> bool:
    """Give every allocation of 128 KiB or more its own mapping, returned to the system when freed, for the rest
    of this process (glibc ``mallopt``); False where the C library has no such setting.

    glibc starts so, then raises the threshold to the size of each mapped block freed: after a model has loaded
    (its file parsed, its weights built), buffers of a few MB come from the heap, where freed ones stay resident
    and fragment it; fixed, they go back when freed. With ONNX Runtime's arena on (the default) that costs no
    speed; with it off (``--low-memory``) every call maps its buffers anew (docs/runner.md, "Memory", has both).
    It is a process-wide choice, made by the ``edgekit run`` command, never by the library inside a user's
    application.
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_free_heap() -> bool:
    """Hand the C heap's free pages back to the system (glibc ``malloc_trim``); False where there is none.

    Loading a model parses its whole file into memory before the runtime builds its own weights from it;
    the parse buffers are freed, but glibc keeps the pages, so every later RSS reading (and the peak, which
    a run's predictions raise on top of them) counts them. Other C libraries (Android's bionic, macOS)
    have no ``malloc_trim`` and lose nothing.
    """
    import ctypes

    try:
        trim = ctypes.CDLL(None).malloc_trim  # the symbols already loaded into this process, libc's among them
    except (OSError, AttributeError):
        return False
    trim(0)
    return True


@contextmanager
def captured_output() -> Iterator[None]:
    """Send this process's stdout and stderr (file descriptors 1 and 2, so C++ logs too) to a scratch file.

    Native libraries print notices no user can act on: the TFLite converter and quantizer their stages and
    progress, TensorFlow and LiteRT their C++ logs (oneDNN, absl, the XNNPACK delegate). On failure the
    captured tail is printed, so nothing useful is lost.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
        failed = True
        try:
            yield
            failed = False
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])
            if failed:
                log.seek(0)
                sys.stderr.write(log.read()[-4000:].decode(errors="replace"))
