"""edge-agent: the edge-gateway agent for municipal sensors and cameras."""

__version__ = "0.1.0"
