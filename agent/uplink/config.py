"""[uplink] section: the MQTT session to the hub."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from drivers.base import StrictModel


class TlsConfig(StrictModel):
    ca_file: str = Field("", description="CA bundle that signed the broker's certificate; empty uses the system store.")
    cert_file: str = Field("", description="Client certificate (mutual TLS).")
    key_file: str = Field("", description="Client private key (mutual TLS); must not be readable by others.")


class UplinkConfig(StrictModel):
    broker: Literal["embedded", "external"] = Field("embedded", description="`embedded`: start a local broker on loopback (demo, bench); `external`: connect to host:port.")
    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(0, ge=0, le=65535, description="Broker port; 0 picks 8883 with TLS, 1883 without (or a free port for the embedded broker).")
    protocol: Literal["auto", "mqttv5", "mqttv311"] = Field("auto", description="`auto` tries MQTT 5 and falls back to 3.1.1.")
    topic_prefix: str = Field("city", description="First topic level; topics are <prefix>/<site>/<gateway>/...")
    client_id: str = Field("", description="MQTT client id; empty uses the gateway id.")
    username: str = ""
    password_file: str = Field("", description="File holding the MQTT password (kept out of the config so bundles never carry it).")
    tls: TlsConfig | None = None
    keepalive: int = Field(30, ge=5, le=3600)
