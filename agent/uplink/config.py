"""[uplink] section: the MQTT session to the hub."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from drivers.config import StrictModel


class TlsConfig(StrictModel):
    ca_file: str = Field("", description="CA bundle that signed the broker's certificate; empty uses the system store.")
    cert_file: str = Field("", description="Client certificate (mutual TLS).")
    key_file: str = Field("", description="Client private key (mutual TLS); must not be readable by others.")

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError("mutual TLS needs both cert_file and key_file (or neither)")
        return self


class UplinkConfig(StrictModel):
    broker: Literal["embedded", "external"] = Field(
        "embedded", description="`embedded`: start a local broker on loopback (demo, bench); `external`: connect to host:port."
    )
    host: str = Field("127.0.0.1", description="Broker host name or address.")
    port: int = Field(0, ge=0, le=65535, description="Broker port; 0 picks 8883 with TLS, 1883 without (or a free port for the embedded broker).")
    protocol: Literal["auto", "mqttv5", "mqttv311"] = Field("auto", description="`auto` tries MQTT 5 and falls back to 3.1.1.")
    topic_prefix: str = Field(
        "city", pattern=r"^[A-Za-z0-9_-]+(/[A-Za-z0-9_-]+)*$", description="First topic level(s); topics are <prefix>/<site>/<gateway>/..."
    )
    client_id: str = Field("", description="MQTT client id; empty uses the gateway id.")
    username: str = ""
    password_file: str = Field("", description="File holding the MQTT password (kept out of the config so bundles never carry it).")
    tls: TlsConfig | None = None
    keepalive: int = Field(30, ge=5, le=3600, description="Seconds; paho measures it on the monotonic clock, so wall-clock steps never break the session.")
    connect_timeout: float = Field(10.0, gt=0, le=120, description="Seconds to wait for the TCP/TLS handshake and the broker's CONNACK.")
    reconnect_initial: float = Field(
        1.0, gt=0, description="Upper bound of the first reconnect wait; each failure doubles it (full jitter: the wait is random between 0 and the bound)."
    )
    reconnect_max: float = Field(300.0, gt=0, description="Cap of the reconnect bound, in seconds.")
    stable_after: float = Field(30.0, ge=0, description="A connection that lasted this many seconds resets the reconnect backoff.")
    batch_max_readings: int = Field(1000, ge=1, le=100_000, description="Readings per MQTT message at most.")
    batch_max_bytes: int = Field(
        128 * 1024, ge=1024, le=16 * 1024 * 1024, description="Payload size per MQTT message at most (bytes); a single larger reading is sent alone."
    )
    inflight_max: int = Field(16, ge=1, le=1000, description="QoS 1 messages published and not yet acknowledged (PUBACK) at most.")
    health_interval: float = Field(60.0, gt=0, description="Seconds between health messages (buffer depth, oldest unsent age, drops, reconnects, devices).")

    @model_validator(mode="after")
    def _bounds(self) -> UplinkConfig:
        if self.reconnect_max < self.reconnect_initial:
            raise ValueError("reconnect_max must be at least reconnect_initial")
        return self
