"""MQTT uplink to the hub: paho adapter, batching, birth and will; see docs/telemetry.md."""

from agent.uplink.config import TlsConfig, UplinkConfig
from agent.uplink.uplink import Uplink

__all__ = ["TlsConfig", "Uplink", "UplinkConfig"]
