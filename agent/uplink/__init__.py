"""MQTT uplink to the hub: paho adapter, batching, birth and will; see docs/telemetry.md."""

from agent.uplink.uplink import Uplink

# the config models (pydantic) are in agent.uplink.config: the running agent never imports them
__all__ = ["Uplink"]
