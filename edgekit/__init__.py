"""edgekit: ship small, fast extractive-QA students to edge devices.

This package is the device side: everything here imports without torch, so the
same code runs on a desktop, a Raspberry Pi and Android (Termux).
"""

__version__ = "0.1.0"
