"""Raspberry Pi (64-bit ARM): set-up script, notes, and an emulated Pi for tests."""
