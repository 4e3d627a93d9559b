"""`diag mqtt check`: the uplink's connection, one step at a time.

DNS, TCP, TLS handshake (with the broker's certificate details), MQTT
authentication, then a QoS 1 publish and its PUBACK. Each step is timed; the
first failing one is named with what to do, and the steps after it are not
tried. The TLS context and MQTT session are the uplink's own
(agent.uplink.paho_adapter), so the check fails exactly where the agent would.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
import ssl
import time
from typing import Any

from agent.diag.facts import certificate_facts, describe_certificate


class Step:
    def __init__(self, name: str) -> None:
        self.name = name
        self.ok = False
        self.detail = ""
        self.hint = ""
        self.ms = 0.0
        self.facts: dict[str, Any] = {}

    def as_dict(self) -> dict[str, Any]:
        return {
            "step": self.name,
            "ok": self.ok,
            "ms": round(self.ms, 1),
            "detail": self.detail,
            "hint": self.hint,
            **({"facts": self.facts} if self.facts else {}),
        }


class Failed(Exception):
    pass


class Checker:
    def __init__(self, config: Any, host: str, port: int, timeout: float = 10.0) -> None:
        self.cfg = config  # the gateway config
        self.up = config.uplink
        self.host, self.port, self.timeout = host, port, timeout
        self.steps: list[Step] = []
        self._addr: Any = None

    def _step(self, name: str) -> Step:
        st = Step(name)
        self.steps.append(st)
        return st

    def run(self) -> list[dict[str, Any]]:
        try:
            self.local_files()
            self.dns()
            self.tcp()
            if self.up.tls is not None:
                self.tls()
            asyncio.run(self.mqtt())
        except Failed:
            pass
        return [s.as_dict() for s in self.steps]

    def _timed(self, st: Step, started: float, ok: bool, detail: str, hint: str = "") -> None:
        st.ms = (time.monotonic() - started) * 1000
        st.ok, st.detail, st.hint = ok, detail, hint
        if not ok:
            raise Failed(st.name)

    # -- steps ----------------------------------------------------------------
    def local_files(self) -> None:
        tls = self.up.tls
        files = [("password_file", self.up.password_file)] + (
            [("ca_file", tls.ca_file), ("cert_file", tls.cert_file), ("key_file", tls.key_file)] if tls else []
        )
        files = [(k, v) for k, v in files if v]
        if not files:
            return
        st = self._step("files")
        t0 = time.monotonic()
        for key, path in files:
            if not os.access(path, os.R_OK):
                self._timed(
                    st,
                    t0,
                    False,
                    f"cannot read uplink {key} {path}",
                    "check the path in [uplink], and that the file is readable by the agent's user (run diag as that user or with sudo)",
                )
        if tls and tls.cert_file:
            facts = certificate_facts(tls.cert_file)
            st.facts["client_certificate"] = facts
            if facts.get("days_left", 1) < 0:
                self._timed(
                    st,
                    t0,
                    False,
                    f"the client certificate {tls.cert_file} expired {-facts['days_left']:.0f} days ago ({facts.get('subject')})",
                    "install a renewed client certificate (re-provision the gateway) and restart the agent",
                )
        self._timed(st, t0, True, f"{len(files)} file(s) readable")

    def dns(self) -> None:
        st = self._step("dns")
        t0 = time.monotonic()
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            self._timed(
                st,
                t0,
                False,
                f"cannot resolve {self.host!r}: {exc.strerror}",
                "check [uplink] host for typos and the gateway's DNS (/etc/resolv.conf, the router or APN); an IP address avoids DNS",
            )
        self._addr = infos[0][4]
        self._timed(st, t0, True, f"{self.host} -> {self._addr[0]}")

    def tcp(self) -> None:
        st = self._step("tcp")
        t0 = time.monotonic()
        try:
            with socket.create_connection(self._addr[:2], timeout=self.timeout):
                pass
        except ConnectionRefusedError:
            self._timed(
                st,
                t0,
                False,
                f"{self._addr[0]}:{self.port} refused the connection: no broker listens there",
                "the broker is down or the port is wrong ([uplink] port; 8883 is MQTT over TLS, 1883 plain)",
            )
        except TimeoutError:
            self._timed(
                st,
                t0,
                False,
                f"no answer from {self._addr[0]}:{self.port} within {self.timeout:g} s",
                "a firewall or the mobile network drops the traffic: check the router, APN and that the hub allows this gateway's address",
            )
        except OSError as exc:
            self._timed(
                st,
                t0,
                False,
                f"cannot reach {self._addr[0]}:{self.port}: {exc.strerror or exc}",
                "check the network link (ip addr, ip route) and the default gateway",
            )
        self._timed(st, t0, True, f"connected to {self._addr[0]}:{self.port}")

    def tls(self) -> None:
        from agent.uplink.paho_adapter import tls_context

        st = self._step("tls")
        t0 = time.monotonic()
        try:
            ctx = tls_context(self.up.tls)
        except (OSError, ssl.SSLError) as exc:
            self._timed(
                st, t0, False, f"cannot load the TLS files: {exc}", "check uplink.tls ca_file, cert_file and key_file (the key must match the certificate)"
            )
        try:
            with socket.create_connection(self._addr[:2], timeout=self.timeout) as raw, ctx.wrap_socket(raw, server_hostname=self.host) as tls:
                der = tls.getpeercert(binary_form=True)
                st.facts["broker_certificate"] = self._describe(der)
                st.facts["tls_version"] = tls.version()
        except ssl.SSLCertVerificationError as exc:
            st.facts["broker_certificate"] = self._peek_certificate()
            self._timed(
                st, t0, False, f"the broker's certificate is not accepted: {exc.verify_message}", self._verify_hint(exc, st.facts["broker_certificate"])
            )
        except ssl.SSLError as exc:
            self._timed(
                st,
                t0,
                False,
                f"TLS handshake failed: {exc.reason or exc}",
                "the broker may require a client certificate (uplink.tls cert_file/key_file) or refused ours; or the port is not a TLS port",
            )
        except (OSError, TimeoutError) as exc:
            self._timed(st, t0, False, f"TLS handshake failed: {exc}", "the port may not speak TLS (1883 is plain MQTT)")
        cert = st.facts["broker_certificate"]
        self._timed(
            st,
            t0,
            True,
            f"{st.facts['tls_version']}, broker certificate {cert.get('subject')} by {cert.get('issuer')}, expires in {cert.get('days_left', 0):.0f} days",
        )

    def _describe(self, der: bytes | None) -> dict[str, Any]:
        if not der:
            return {}
        from cryptography import x509

        cert = x509.load_der_x509_certificate(der)
        facts = describe_certificate(cert)
        facts["days_left"] = round((facts["not_after"] - time.time()) / 86400, 1)
        try:
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            facts["names"] = [str(n.value) for n in san]
        except x509.ExtensionNotFound:
            facts["names"] = []
        return facts

    def _peek_certificate(self) -> dict[str, Any]:
        """The broker's certificate without verifying it, only to explain a rejection."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            with socket.create_connection(self._addr[:2], timeout=self.timeout) as raw, ctx.wrap_socket(raw, server_hostname=self.host) as tls:
                return self._describe(tls.getpeercert(binary_form=True))
        except (OSError, ssl.SSLError):
            return {}

    def _verify_hint(self, exc: ssl.SSLCertVerificationError, cert: dict[str, Any]) -> str:
        msg = (exc.verify_message or "").lower()
        if "expired" in msg:
            when = time.strftime("%Y-%m-%d", time.gmtime(cert["not_after"])) if cert.get("not_after") else "?"
            return f"the broker's certificate expired on {when}: the hub operators must renew it (and check the gateway's clock: `timedatectl`)"
        if "not yet valid" in msg:
            return "the gateway's clock is probably wrong (no NTP yet): check `timedatectl`"
        if "hostname" in msg or "ip address mismatch" in msg:
            return f"connect by a name the certificate holds ({', '.join(cert.get('names', [])) or cert.get('subject')}) in [uplink] host"
        return f"uplink.tls.ca_file does not hold the CA that signed the broker's certificate (issuer: {cert.get('issuer', '?')}); install the hub's CA bundle"

    async def mqtt(self) -> None:
        from agent.uplink.paho_adapter import ConnectError, MqttSession

        password = None
        if self.up.password_file:
            with open(self.up.password_file, encoding="utf-8") as fh:
                password = fh.read().rstrip("\r\n")
        st = self._step("auth")
        acks: asyncio.Queue[tuple[int, bool, str]] = asyncio.Queue()
        client_id = f"{self.up.client_id or self.cfg.gateway.id}-diag-{os.getpid()}"
        protocols = ["mqttv5", "mqttv311"] if self.up.protocol == "auto" else [self.up.protocol]
        session = None
        t0 = time.monotonic()
        for proto in protocols:
            session = MqttSession(
                client_id=client_id, protocol=proto, keepalive=30, username=self.up.username, password=password, tls=self.up.tls,
                on_publish=lambda mid, ok, reason: acks.put_nowait((mid, ok, reason)), on_message=lambda t, p: None, on_disconnect=lambda r: None,
                log=logging.getLogger("edge_agent.diag.mqtt"),
            )  # fmt: skip
            try:
                await session.connect(self.host, self.port, self.timeout)
                st.facts["protocol"] = proto
                break
            except ConnectError as exc:
                if exc.kind == "protocol" and proto != protocols[-1]:
                    continue
                hints = {
                    "auth": "the broker refused the credentials: check uplink.username and the password file, or that the client certificate is registered at the hub",
                    "tls": "see the tls step; a client certificate may be missing, expired or not trusted by the broker",
                    "timeout": "the broker accepted TCP but sent no CONNACK: it may be overloaded, or a proxy is in the way",
                    "refused": "the broker refused the client: check the client id rules and that the gateway is registered at the hub",
                }
                self._timed(st, t0, False, str(exc), hints.get(exc.kind, "see the detail; `diag status` shows the agent's own last error"))
        self._timed(st, t0, True, f"CONNACK accepted as {self.up.username or '(no user name)'} with {st.facts.get('protocol')}")
        assert session is not None
        try:
            await self._publish(session, acks)
        finally:
            await session.close()

    async def _publish(self, session: Any, acks: asyncio.Queue[tuple[int, bool, str]]) -> None:
        from agent.uplink.payload import Topics

        st = self._step("publish")
        topic = Topics(self.up.topic_prefix, self.cfg.gateway.site, self.cfg.gateway.id).base + "/diag/check"
        t0 = time.monotonic()
        try:
            mid = session.publish(topic, json.dumps({"check": "diag", "time": time.time()}).encode(), qos=1)
            while True:
                got, ok, reason = await asyncio.wait_for(acks.get(), self.timeout)
                if got == mid:
                    break
        except TimeoutError:
            self._timed(
                st,
                t0,
                False,
                f"no PUBACK for {topic} within {self.timeout:g} s",
                "the broker accepted the connection but not the message: check its ACL for this gateway's topics",
            )
        except ConnectionError as exc:
            self._timed(st, t0, False, str(exc), "the connection dropped right after connecting: the broker's ACL or client-id rules may refuse this client")
        if not ok:
            self._timed(
                st, t0, False, f"the broker refused the publish to {topic}: {reason}", f"allow {topic.rsplit('/', 2)[0]}/# for this gateway in the broker's ACL"
            )
        self._timed(st, t0, True, f"QoS 1 publish to {topic} acknowledged")
