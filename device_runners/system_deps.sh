#!/usr/bin/env bash
# Debian packages the device tests use: a real sshd (deploy over ssh), qemu user-mode
# emulation (the arm64 runner), adb (the Android path) and Chromium (the HTML report
# screenshot). Installed when running as root with apt; otherwise listed, and the
# tests that need them skip (or fail, with EDGEKIT_REQUIRE_DEVICE_TOOLS=1, as in CI).
set -euo pipefail
declare -A need=([/usr/sbin/sshd]=openssh-server [/usr/bin/qemu-aarch64-static]=qemu-user-static
                 [/usr/bin/adb]=adb [/usr/bin/chromium]=chromium [/usr/bin/ssh]=openssh-client)
missing=()
for bin in "${!need[@]}"; do [ -x "$bin" ] || missing+=("${need[$bin]}"); done
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "installing Debian packages: ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null \
        || { apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null; }
else
    echo "note: missing Debian packages ${missing[*]}; the tests that need them will skip" >&2
fi
