#!/usr/bin/env bash
# Prepare a Raspberry Pi (Raspberry Pi OS / Debian, 64-bit) to run edgekit bundles.
# Makes ~/edgekit-venv with the device packages (../requirements.txt: no torch, no compiler), then prints
# what affects timings: board, governor, temperature, throttling.
#   bash device_runners/raspberry_pi/setup.sh    (on the Pi, with device_runners/ copied there)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
venv="${EDGEKIT_VENV:-$HOME/edgekit-venv}"

arch="$(uname -m)"
if [ "$arch" != aarch64 ]; then
    echo "note: this is $arch, not aarch64; a 32-bit OS has no onnxruntime wheels, install the 64-bit OS" >&2
fi
if ! python3 -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "edgekit needs Python 3.11 or later; this is $(python3 -V 2>&1): Raspberry Pi OS Bookworm or later has it" >&2
    exit 1
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
    echo "python3-venv is missing: sudo apt install python3-venv" >&2
    exit 1
fi
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
"$venv/bin/python" -m pip install -q --upgrade pip
"$venv/bin/python" -m pip install -q --only-binary=:all: -r "$here/../requirements.txt"
"$venv/bin/python" -c 'import onnxruntime, tokenizers, numpy; print("runtimes: onnxruntime", onnxruntime.__version__, "tokenizers", tokenizers.__version__, "numpy", numpy.__version__)'

show() { [ -r "$2" ] && printf '%-10s %s\n' "$1" "$(tr -d '\0' < "$2")"; return 0; }
show board /proc/device-tree/model
show governor /sys/devices/system/cpu/cpu0/cpufreq/scaling_governor
show freq_khz /sys/devices/system/cpu/cpu0/cpufreq/scaling_cur_freq
show temp_mC /sys/class/thermal/thermal_zone0/temp
command -v vcgencmd >/dev/null && vcgencmd get_throttled || true
echo "ready: $venv/bin/python"
