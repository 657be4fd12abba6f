#!/data/data/com.termux/files/usr/bin/bash
# Prepare an Android phone (Termux, from F-Droid) to run edgekit bundles over ssh.
# Copy device_runners/ to the phone and run:  bash device_runners/android/termux-setup.sh
# Termux's own Python links against Android's libc (bionic), so PyPI's manylinux wheels
# (onnxruntime, tokenizers, ai-edge-litert) do not install there. A Debian userland under
# proot-distro has glibc, so the same aarch64 wheels as on a Raspberry Pi install unchanged,
# from the same list (device_runners/requirements.txt).
# Not run on a real phone here: see README "On devices" for what was and was not tested.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
requirements="$(cd "$here/.." && pwd)/requirements.txt"
[ -r "$requirements" ] || { echo "$requirements is missing: copy all of device_runners/ to the phone" >&2; exit 1; }
pkg install -y openssh proot-distro
proot-distro install debian || true     # already installed is fine
proot-distro login debian --bind "$requirements:/root/edgekit-requirements.txt" -- bash -c '
  apt-get update -q && apt-get install -y -q python3 python3-venv
  python3 -m venv /root/edgekit-venv
  /root/edgekit-venv/bin/pip install -q --only-binary=:all: -r /root/edgekit-requirements.txt
'
# the interpreter `edgekit deploy` calls: Debian's Python, with the Termux home visible at the same path
cat > "$HOME/edgekit-python" <<'EOS'
#!/data/data/com.termux/files/usr/bin/bash
exec proot-distro login debian --bind "$HOME:$HOME" --work-dir "$PWD" -- /root/edgekit-venv/bin/python "$@"
EOS
chmod +x "$HOME/edgekit-python"
echo "start the ssh server with: sshd   (port 8022; add your key to ~/.ssh/authorized_keys)"
echo "then on the workstation:   edgekit deploy adb BUNDLE --remote-python '~/edgekit-python' --out DIR"
