"""``diag mqtt``: connect with the daemon's settings and time a publish/acknowledge round trip.

The message goes to ``<prefix>/<device>/diag`` at QoS 1; PUBACK proves the broker
took it, and receiving it back on a subscription proves the path both ways.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
import uuid

from alprd.config import Config
from alprd.diag import Area, Check, DiagOptions
from alprd.records import utc_now
from alprd.uplink.link import Link


class _Waits:
    """paho callbacks (network thread) set events that the check waits on."""

    def __init__(self, nonce: str) -> None:
        self.nonce = nonce.encode()
        self.answered, self.subscribed, self.acked, self.echoed = (threading.Event() for _ in range(4))
        self.publish_rc = None
        self.ack_at = self.echo_at = 0.0

    def on_subscribe(self, client, userdata, mid, rcs, props) -> None:
        self.subscribed.set()

    def on_publish(self, client, userdata, mid, rc, props) -> None:
        self.publish_rc, self.ack_at = rc, time.perf_counter()
        self.acked.set()

    def on_message(self, client, userdata, msg) -> None:
        if self.nonce in msg.payload and not self.echoed.is_set():
            self.echo_at = time.perf_counter()
            self.echoed.set()


def check(config: Config, options: DiagOptions) -> list[Check]:
    area = Area("mqtt")
    cfg = config.uplink
    where = f"{cfg.host}:{cfg.port}" + (" (TLS)" if cfg.ca_file else "")
    if not cfg.enabled:
        area.warn("uplink", "disabled", "uplink.enabled = false: reads stay in the local buffer",
                  "set uplink.enabled = true and the broker's host/port when this unit should upload")
        return area.checks
    topic = f"{cfg.topic_prefix}/{config.device.id}/diag"
    w = _Waits(uuid.uuid4().hex)
    try:
        link = Link(cfg, f"{config.device.id}-diag", subscriptions=[topic], on_change=w.answered.set)
    except (ssl.SSLError, OSError) as err:
        area.fail("tls", str(err), "the CA, certificate or key file cannot be loaded",
                  "check uplink.ca_file/cert_file/key_file paths and that alprd may read them")
        return area.checks
    link.client.connect_timeout = options.timeout_s
    link.client.on_subscribe = w.on_subscribe
    link.client.on_publish, link.client.on_message = w.on_publish, w.on_message
    t0 = time.perf_counter()
    try:
        link.connect()
    except (OSError, ssl.SSLError) as err:
        area.fail("connect", where, *_connect_problem(err, cfg.host, cfg.port))
        return area.checks
    try:
        _round_trip(area, link, w, where, topic, t0, options.timeout_s)
    finally:
        link.stop()
    return area.checks


def _round_trip(area: Area, link: Link, w: _Waits, where: str, topic: str, t0: float, timeout: float) -> None:
    if not w.answered.wait(timeout):
        area.fail("connect", f"{where}: no answer in {timeout:g} s", "the broker accepted TCP but never "
                  "answered MQTT (wrong port, TLS port without uplink.ca_file, proxy)",
                  "check uplink.port (1883 plain, 8883 TLS) and uplink.ca_file")
        return
    if not link.connected:
        area.fail("connect", f"{where}: {link.error}", "the broker rejected this unit's login",
                  "check uplink.username/password (env:NAME values come from the unit's EnvironmentFile) "
                  "and the broker's ACL for this device")
        return
    area.ok("connect", f"{where} in {(time.perf_counter() - t0) * 1000:.0f} ms")
    w.subscribed.wait(timeout)  # the link subscribes on connect
    sent = time.perf_counter()
    link.client.publish(topic, json.dumps({"diag": w.nonce.decode(), "ts": utc_now()}), qos=1)
    if not w.acked.wait(timeout):
        area.fail("publish", f"no PUBACK in {timeout:g} s", "the broker did not acknowledge (link stalled)",
                  "check the mobile/VPN link and the broker's load; retry")
        return
    if w.publish_rc is not None and w.publish_rc.is_failure:
        area.fail("publish", f"refused ({w.publish_rc}) on {topic}", "the broker's ACL refuses this topic",
                  f"allow this unit to publish under {topic.rsplit('/', 1)[0]}/#")
        return
    area.ok("publish", f"QoS 1 acknowledged in {(w.ack_at - sent) * 1000:.1f} ms")
    if w.echoed.wait(timeout):
        area.ok("round trip", f"message back in {(w.echo_at - sent) * 1000:.1f} ms")
    else:
        area.warn("round trip", "message not received back", "the ACL lets this unit publish but not "
                  "subscribe to its own diag topic (uploads still work)",
                  f"optional: allow subscribe on {topic} for end-to-end checks")


def _connect_problem(err: BaseException, host: str, port: int) -> tuple[str, str]:
    if isinstance(err, socket.gaierror):
        return (f"host name {host!r} does not resolve", "check uplink.host and DNS on the mobile link")
    if isinstance(err, ssl.SSLError):
        return (f"TLS handshake failed ({err})",
                "check uplink.ca_file matches the broker's certificate, and the unit's clock (`timedatectl`)")
    if isinstance(err, ConnectionRefusedError):
        return (f"nothing listens on {host}:{port} (connection refused)",
                "check the broker is running and uplink.port (1883 plain, 8883 TLS)")
    if isinstance(err, TimeoutError | socket.timeout):
        return ("no answer from the broker (timeout)", "check the mobile/VPN link and the firewall")
    return (f"network error: {err}", "check the network link (`ip addr`, `ping` the broker)")
