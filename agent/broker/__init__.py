"""A small embedded MQTT broker (3.1.1 and 5) for the demo and small sites.

Used when a gateway configuration names no broker. Production fleets use
Mosquitto; see docs/embedded-broker.md for what this one does and does not do.
"""

from agent.broker.server import EmbeddedBroker

__all__ = ["EmbeddedBroker"]
