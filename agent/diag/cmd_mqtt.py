"""`diag mqtt check`: runs on the technician's side with the gateway's config, agent running or not."""

from __future__ import annotations

from agent.diag.context import EXIT_BROKEN, EXIT_OK, CliError, Ctx
from agent.diag.mqtt_check import Checker
from agent.diag.render import table


def run_check(ctx: Ctx) -> int:
    cfg = ctx.need_config()
    up = cfg.uplink
    agent_uplink = {}
    client = ctx.agent()
    if client is not None:
        agent_uplink = ctx.call("status").get("uplink") or {}
    if up.broker == "embedded":
        if not agent_uplink.get("broker"):
            raise CliError(
                "the uplink uses the embedded (demo) broker, which only exists while the agent runs",
                'start the agent, or set [uplink] broker = "external" with the hub\'s host',
            )
        host, _, port_s = agent_uplink["broker"].rpartition(":")
        port = int(port_s)
    else:
        host, port = up.host, up.port or (8883 if up.tls else 1883)
    steps = Checker(cfg, host, port, timeout=ctx.args.timeout).run()
    failed = next((s for s in steps if not s["ok"]), None)
    if ctx.json:
        ctx.emit_json(
            {"broker": f"{host}:{port}", "ok": failed is None, "failed_step": failed["step"] if failed else None, "steps": steps, "agent_uplink": agent_uplink}
        )
        return EXIT_BROKEN if failed else EXIT_OK
    print(f"checking the uplink to {host}:{port} ({'TLS' if up.tls else 'plain MQTT'})")
    rows = [[s["step"], ("ok", "ok") if s["ok"] else ("FAILED", "broken"), f"{s['ms']:.0f} ms", s["detail"]] for s in steps]
    print(table(["step", "result", "time", "detail"], rows, ctx.style, max_col=110))
    for s in steps:
        cert = (s.get("facts") or {}).get("broker_certificate")
        if cert:
            print(
                f"  broker certificate: {cert.get('subject')}, issued by {cert.get('issuer')}, names {', '.join(cert.get('names', [])) or '-'}, expires in {cert.get('days_left', 0):.0f} days"
            )
    if failed:
        print(ctx.style(f"first failing step: {failed['step']}", "broken"))
        print(ctx.style("  -> " + failed["hint"], "dim"))
    else:
        print(ctx.style("the uplink works end to end", "ok"))
    if agent_uplink:
        state = "connected" if agent_uplink.get("connected") else f"NOT connected ({agent_uplink.get('last_error')})"
        print(f"the running agent's own session: {state}")
    return EXIT_BROKEN if failed else EXIT_OK
