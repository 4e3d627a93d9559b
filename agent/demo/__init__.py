"""The demo: emulated devices, the real agent, and a live view of the hub.

This is the one place in agent/ that imports the emulators in hil_tests/; it
runs from a clone of the repository (./tools/demo.sh), not from an installed
wheel.
"""
