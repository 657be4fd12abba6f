"""Android: Termux set-up (device_runners/android/termux-setup.sh); deploy via ``edgekit deploy adb``."""
