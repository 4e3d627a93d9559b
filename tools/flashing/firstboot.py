"""The scripts that run on the gateway at first boot, carried on the boot partition.

setup.sh is the same on every image: settings.env (written per gateway) says
what to do. `setup.sh system` sets hostname, admin user, SSH keys, time and
network on images without cloud-init; `setup.sh agent` installs and enables
the agent on every image. EDGE_ROOT prefixes every system path so tests can
run the script in a scratch directory with recording stand-ins for
useradd/systemctl/chown.
"""

from __future__ import annotations

SETUP_SH = r"""#!/bin/bash
# First-boot set-up of an edge-agent gateway (written by edge-flash).
#   setup.sh system  hostname, admin user and SSH keys, time zone, NTP, network
#                    (images without cloud-init; cloud-init does this otherwise)
#   setup.sh agent   agent user, offline install from the wheels on this card,
#                    config and credentials, systemd service, SSH keys-only
set -Eeuo pipefail
PAYLOAD="$(cd "$(dirname "$0")" && pwd)"
ROOT="${EDGE_ROOT:-}"
# shellcheck source=/dev/null
. "$PAYLOAD/settings.env"
VENV=/opt/edge-agent/venv
SYSTEMCTL=(systemctl)
if [ -n "$ROOT" ]; then SYSTEMCTL+=("--root=$ROOT"); fi

log() { echo "edge-agent setup: $*"; logger -t edge-agent-setup -- "$*" 2>/dev/null || true; }
fail() {
    log "FAILED: $*"
    { date -u +%FT%TZ; echo "$*"; } > "$PAYLOAD/FIRSTBOOT-FAILED" 2>/dev/null || true
    exit 1
}
trap 'fail "step failed at line $LINENO (see journalctl -t edge-agent-setup)"' ERR

user_exists() { grep -q "^$1:" "$ROOT/etc/passwd"; }

verify_payload() {
    (cd "$PAYLOAD" && sha256sum --quiet --strict -c SHA256SUMS) \
        || fail "files on the boot partition are damaged (SHA256SUMS mismatch); re-flash this card"
}

harden_ssh() {
    install -d -m 0755 "$ROOT/etc/ssh/sshd_config.d"
    printf '%s\n' "# edge-agent gateways: keys only, no root login" \
        "PasswordAuthentication no" "KbdInteractiveAuthentication no" \
        "PermitRootLogin no" "PubkeyAuthentication yes" \
        > "$ROOT/etc/ssh/sshd_config.d/50-edge-agent.conf"
    chmod 0644 "$ROOT/etc/ssh/sshd_config.d/50-edge-agent.conf"
    "${SYSTEMCTL[@]}" enable ssh.service
}

system_phase() {
    log "hostname $HOST_NAME"
    echo "$HOST_NAME" > "$ROOT/etc/hostname"
    if grep -q '^127\.0\.1\.1' "$ROOT/etc/hosts"; then
        sed -i "s/^127\.0\.1\.1.*/127.0.1.1\t$HOST_NAME/" "$ROOT/etc/hosts"
    else
        printf '127.0.1.1\t%s\n' "$HOST_NAME" >> "$ROOT/etc/hosts"
    fi

    log "admin user $ADMIN_USER (SSH keys only, password locked)"
    first_user="$(awk -F: '$3 == 1000 { print $1 }' "$ROOT/etc/passwd")"
    if ! user_exists "$ADMIN_USER"; then
        if [ -n "$first_user" ]; then
            usermod -l "$ADMIN_USER" -d "/home/$ADMIN_USER" -m "$first_user"
            groupmod -n "$ADMIN_USER" "$first_user" || true
        else
            useradd -m -s /bin/bash -G sudo,adm,dialout "$ADMIN_USER"
        fi
    fi
    usermod -L "$ADMIN_USER"
    install -d -m 0700 "$ROOT/home/$ADMIN_USER/.ssh"
    install -m 0600 "$PAYLOAD/authorized_keys" "$ROOT/home/$ADMIN_USER/.ssh/authorized_keys"
    chown -R "$ADMIN_USER:$ADMIN_USER" "$ROOT/home/$ADMIN_USER/.ssh"
    install -d -m 0755 "$ROOT/etc/sudoers.d"
    echo "$ADMIN_USER ALL=(ALL) NOPASSWD: ALL" > "$ROOT/etc/sudoers.d/010-edge-admin"
    chmod 0440 "$ROOT/etc/sudoers.d/010-edge-admin"
    # The console wizard would wait for someone to create a user.
    "${SYSTEMCTL[@]}" disable userconfig.service 2>/dev/null || true
    "${SYSTEMCTL[@]}" enable getty@tty1.service 2>/dev/null || true

    if [ -n "${TIMEZONE:-}" ]; then
        log "time zone $TIMEZONE"
        ln -sf "/usr/share/zoneinfo/$TIMEZONE" "$ROOT/etc/localtime"
        echo "$TIMEZONE" > "$ROOT/etc/timezone"
    fi
    if [ -n "${NTP_SERVERS:-}" ]; then
        log "time servers $NTP_SERVERS"
        install -d -m 0755 "$ROOT/etc/systemd/timesyncd.conf.d"
        printf '[Time]\nNTP=%s\n' "$NTP_SERVERS" > "$ROOT/etc/systemd/timesyncd.conf.d/50-edge-agent.conf"
        "${SYSTEMCTL[@]}" enable systemd-timesyncd.service
    fi

    if [ -d "$PAYLOAD/network" ] && ls "$PAYLOAD/network/"*.nmconnection >/dev/null 2>&1; then
        install -d -m 0700 "$ROOT/etc/NetworkManager/system-connections"
        for conn in "$PAYLOAD/network/"*.nmconnection; do
            log "network profile $(basename "$conn")"
            install -m 0600 "$conn" "$ROOT/etc/NetworkManager/system-connections/"
        done
    fi
    if [ -n "${WIFI_COUNTRY:-}" ]; then
        if command -v raspi-config >/dev/null 2>&1 && [ -z "$ROOT" ]; then
            raspi-config nonint do_wifi_country "$WIFI_COUNTRY" || true
        fi
        rfkill unblock wifi 2>/dev/null || true
        for state in "$ROOT"/var/lib/systemd/rfkill/*:wlan; do
            if [ -e "$state" ]; then echo 0 > "$state"; fi
        done
    fi
    harden_ssh
}

agent_phase() {
    if ! user_exists edge-agent; then
        log "agent user edge-agent"
        useradd --system --user-group --home-dir /var/lib/edge-agent --shell /usr/sbin/nologin \
            --comment "edge-agent gateway service" edge-agent
    fi

    log "installing $AGENT_WHEEL offline into $VENV"
    if [ ! -x "$ROOT$VENV/bin/python" ]; then
        if ! python3 -m venv "$ROOT$VENV"; then
            # Debian without python3-venv: a pip wheel on the card bootstraps pip.
            pip_wheel="$(ls "$PAYLOAD"/wheels/pip-*.whl 2>/dev/null | head -n 1 || true)"
            [ -n "$pip_wheel" ] || fail "python3 -m venv failed and no pip wheel is on the card; add pip to the wheelhouse"
            python3 -m venv --without-pip "$ROOT$VENV"
            "$ROOT$VENV/bin/python" "$pip_wheel/pip" install --no-index "$pip_wheel"
        fi
    fi
    "$ROOT$VENV/bin/python" -m pip install --no-index --no-cache-dir --disable-pip-version-check \
        --find-links "$PAYLOAD/wheels" "$PAYLOAD/wheels/$AGENT_WHEEL" \
        || fail "offline install of $AGENT_WHEEL failed: a dependency wheel is missing or built for another Python"

    log "config /etc/edge-agent/gateway.toml"
    install -d -m 0750 "$ROOT/etc/edge-agent"
    install -m 0640 "$PAYLOAD/gateway.toml" "$ROOT/etc/edge-agent/gateway.toml"
    chown root:edge-agent "$ROOT/etc/edge-agent" "$ROOT/etc/edge-agent/gateway.toml"

    log "credentials /etc/edge-agent/tls (owner-only)"
    install -d -m 0700 "$ROOT/etc/edge-agent/tls"
    for cred in "$PAYLOAD"/tls/*; do
        [ -f "$cred" ] || continue
        install -m 0600 "$cred" "$ROOT/etc/edge-agent/tls/"
    done
    chown -R edge-agent:edge-agent "$ROOT/etc/edge-agent/tls"

    if [ -n "${SEQ_FILE:-}" ] && [ ! -e "$ROOT$SEQ_FILE" ]; then
        # Sequence numbers continue above anything an earlier card of this
        # gateway handed out, so the hub never drops new readings as duplicates.
        log "sequence seed $SEQ_FILE"
        install -d -m 0750 "$(dirname "$ROOT$SEQ_FILE")"
        echo "$SEQ_SEED" > "$ROOT$SEQ_FILE"
        chown edge-agent:edge-agent "$(dirname "$ROOT$SEQ_FILE")" "$ROOT$SEQ_FILE"
    fi

    log "service edge-agent.service"
    install -d -m 0755 "$ROOT/etc/systemd/system"
    install -m 0644 "$PAYLOAD/edge-agent.service" "$ROOT/etc/systemd/system/edge-agent.service"
    "${SYSTEMCTL[@]}" enable edge-agent.service
    harden_ssh
    if [ "${START_NOW:-0}" = 1 ]; then
        # cloud-init runs after boot, so nothing would start these until the next reboot
        systemctl daemon-reload
        systemctl restart ssh.service || true
        systemctl start --no-block edge-agent.service
    fi

    # The card can be pulled from a street cabinet: no private key or Wi-Fi
    # secret stays on the FAT partition once it is installed.
    for secret in "$PAYLOAD"/tls/* "$PAYLOAD"/network/*; do
        [ -f "$secret" ] || continue
        shred -u "$secret" 2>/dev/null || rm -f "$secret"
    done
    date -u +%FT%TZ > "$PAYLOAD/FIRSTBOOT-DONE"
    log "done"
}

case "${1:-}" in
    system) verify_payload; system_phase ;;
    agent) verify_payload; agent_phase ;;
    *) echo "usage: $0 system|agent" >&2; exit 2 ;;
esac
"""

FIRSTRUN_SH = r"""#!/bin/bash
# edge-agent first boot for Raspberry Pi OS images without cloud-init (written by edge-flash).
# The kernel runs this once via systemd.run in cmdline.txt, then reboots.
set +e
BOOT=/boot/firmware
[ -f "$BOOT/edge-agent/setup.sh" ] || BOOT=/boot
bash "$BOOT/edge-agent/setup.sh" system && bash "$BOOT/edge-agent/setup.sh" agent
rm -f "$BOOT/firstrun.sh"
sed -i 's| systemd.run.*||g' "$BOOT/cmdline.txt"
exit 0
"""

FIRSTRUN_CMDLINE = " systemd.run=/boot/firmware/firstrun.sh systemd.run_success_action=reboot systemd.unit=kernel-command-line.target"
