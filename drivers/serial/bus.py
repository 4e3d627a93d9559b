"""The `serial` bus type: one local serial port (USB adapter, UART, RS-232).

Streaming sensors (particulate, GPS, ultrasonic) own their port: each device
on a `serial` bus gets a PortReader that opens the port with these settings,
re-opens it when an adapter is unplugged and plugged back, and feeds what it
reads to the device's codec.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

import serial

from drivers.base import Bus

if TYPE_CHECKING:
    from drivers.serial.config import SerialBusConfig

PARITIES = {
    "none": serial.PARITY_NONE,
    "even": serial.PARITY_EVEN,
    "odd": serial.PARITY_ODD,
    "mark": serial.PARITY_MARK,
    "space": serial.PARITY_SPACE,
}


class SerialBus(Bus):
    """Holds the port settings; PortReader does the opening and reading."""

    config_model = "drivers.serial.config:SerialBusConfig"
    max_devices = 1  # the reader locks the port exclusively

    def __init__(self, config: SerialBusConfig, log: logging.Logger) -> None:  # type: ignore[override]
        super().__init__(config, log)
        self.config: SerialBusConfig = config
        self.reader: Any = None  # the PortReader of the device on this port, once one attaches

    def open_port(self) -> serial.Serial:
        """Open the port non-blocking (timeout=0) so reads never stall the loop.

        Raises serial.SerialException (or OSError) when the port is missing or busy.
        """
        c = self.config
        port = serial.Serial(
            port=c.port,
            baudrate=c.baudrate,
            bytesize=c.bytesize,
            parity=PARITIES[c.parity],
            stopbits=c.stopbits,
            timeout=0,
            exclusive=True,
        )
        return port

    def status(self) -> dict[str, Any]:
        c = self.config
        out = {**super().status(), "port": c.port, "settings": f"{c.baudrate} {c.bytesize}{c.parity[0].upper()}{c.stopbits}"}
        if self.reader is not None:
            out["reader"] = self.reader.stats()
        return out
