"""Network settings for a gateway and how each first-boot mechanism wants them.

cloud-init images read netplan v2 from `network-config`; older images get
NetworkManager keyfiles installed by setup.sh. The Wi-Fi passphrase is turned
into the WPA PSK here, so the passphrase itself never lands on the card.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re

from .errors import FlashError

COUNTRY = re.compile(r"^[A-Z]{2}$")


def wpa_psk(ssid: str, passphrase: str) -> str:
    """The 64-hex-digit WPA2 pre-shared key, as wpa_passphrase computes it."""
    return hashlib.pbkdf2_hmac("sha1", passphrase.encode(), ssid.encode(), 4096, 32).hex()


class NetworkSettings:
    def __init__(
        self,
        wifi_ssid: str = "",
        wifi_passphrase: str = "",
        wifi_country: str = "",
        wifi_hidden: bool = False,
        eth_address: str = "",
        eth_gateway: str = "",
        dns: list[str] | None = None,
    ) -> None:
        self.wifi_ssid = wifi_ssid
        self.wifi_country = wifi_country.upper()
        self.wifi_hidden = wifi_hidden
        self.eth_address = eth_address
        self.eth_gateway = eth_gateway
        self.dns = list(dns or [])
        self.wifi_psk = ""
        if wifi_ssid:
            if not 8 <= len(wifi_passphrase) <= 63:
                raise FlashError(
                    f"the Wi-Fi passphrase for {wifi_ssid!r} must be 8 to 63 characters", "check the passphrase (given with --wifi-psk-file or EDGE_WIFI_PSK)"
                )
            if len(wifi_ssid.encode()) > 32:
                raise FlashError(f"Wi-Fi name {wifi_ssid!r} is longer than 32 bytes", "check --wifi-ssid")
            if not COUNTRY.match(self.wifi_country):
                raise FlashError(
                    "Wi-Fi needs the country the gateway operates in (regulatory domain)", "add --wifi-country with a two-letter code such as DE, GB or FR"
                )
            self.wifi_psk = wpa_psk(wifi_ssid, wifi_passphrase)
        if eth_address:
            try:
                iface = ipaddress.ip_interface(eth_address)
            except ValueError as exc:
                raise FlashError(f"--eth-address {eth_address!r} is not an address with prefix length", "write it like 192.168.10.21/24") from exc
            if iface.network.prefixlen == iface.max_prefixlen:
                raise FlashError(f"--eth-address {eth_address!r} has no prefix length", "write it like 192.168.10.21/24")
            try:
                if eth_gateway and ipaddress.ip_address(eth_gateway) not in iface.network:
                    raise FlashError(f"gateway {eth_gateway} is outside {iface.network}", "check --eth-gateway")
                for server in self.dns:
                    ipaddress.ip_address(server)
            except ValueError as exc:
                raise FlashError(f"invalid address in the Ethernet settings: {exc}", "use plain IP addresses for --eth-gateway and --dns") from exc

    def summary(self) -> str:
        eth = f"static {self.eth_address} via {self.eth_gateway or '-'}" if self.eth_address else "DHCP"
        wifi = f"Wi-Fi {self.wifi_ssid!r} ({self.wifi_country})" if self.wifi_ssid else "no Wi-Fi"
        return f"Ethernet {eth}; {wifi}"

    def network_config(self) -> str:
        """netplan v2 for cloud-init's network-config file (JSON scalars are valid YAML)."""
        q = json.dumps
        lines = ["# Written by edge-flash. netplan v2, read by cloud-init at first boot.", "network:", "  version: 2", "  ethernets:", "    eth0:"]
        if self.eth_address:
            lines += [f"      addresses: [{q(self.eth_address)}]"]
            if self.eth_gateway:
                lines += ["      routes:", "        - to: default", f"          via: {q(self.eth_gateway)}"]
            if self.dns:
                lines += ["      nameservers:", f"        addresses: [{', '.join(q(s) for s in self.dns)}]"]
        else:
            lines += ["      dhcp4: true"]
        lines += ["      optional: true"]
        if self.wifi_ssid:
            lines += [
                "  wifis:",
                "    wlan0:",
                "      dhcp4: true",
                "      optional: true",
                f"      regulatory-domain: {q(self.wifi_country)}",
                "      access-points:",
                f"        {q(self.wifi_ssid)}:",
                f"          password: {q(self.wifi_psk)}",
            ]
            if self.wifi_hidden:
                lines += ["          hidden: true"]
        return "\n".join(lines) + "\n"

    def nm_keyfiles(self) -> dict[str, str]:
        """NetworkManager profiles for images without cloud-init (Bookworm)."""
        files: dict[str, str] = {}
        if self.wifi_ssid:
            files["edge-wifi.nmconnection"] = "\n".join(
                [
                    "[connection]",
                    "id=edge-wifi",
                    "type=wifi",
                    "autoconnect=true",
                    "",
                    "[wifi]",
                    "mode=infrastructure",
                    f"ssid={self.wifi_ssid}",
                    f"hidden={'true' if self.wifi_hidden else 'false'}",
                    "",
                    "[wifi-security]",
                    "key-mgmt=wpa-psk",
                    f"psk={self.wifi_psk}",
                    "",
                    "[ipv4]",
                    "method=auto",
                    "",
                    "[ipv6]",
                    "method=auto",
                    "",
                ]
            )
        if self.eth_address:
            ipv4 = ["[ipv4]", "method=manual", f"address1={self.eth_address}" + (f",{self.eth_gateway}" if self.eth_gateway else "")]
            if self.dns:
                ipv4.append("dns=" + ";".join(self.dns) + ";")
            files["edge-eth0.nmconnection"] = "\n".join(
                ["[connection]", "id=edge-eth0", "type=ethernet", "interface-name=eth0", "autoconnect=true", "autoconnect-priority=10", "", "[ethernet]", ""]
                + ipv4
                + ["", "[ipv6]", "method=auto", ""]
            )
        return files
