"""One MQTT connection kept up in paho's network thread, with readable failures.

paho reconnects by itself (``loop_start``); before each of its waits the delay
is set to a jittered exponential step (``pacing.backoff_delay``) through the
public ``reconnect_delay_set``, so a fleet that lost the same broker spreads
its returns. Every connection problem becomes one sentence in ``error`` that
names the setting to check, logged when it changes, never a crash: reads keep
waiting in SQLite whatever the broker does.

Every MQTT user in alprd (uploader, ``alprd ingest``, hotlist sync and
publish, ``diag mqtt``) connects through this class. A broker drops the older
of two connections with one client id ("Unspecified error" on both sides), so
ids are unique per process: a connection that keeps no session gets a random
suffix; one that keeps a session needs a stable id and takes a numbered one
that no other process on the host holds (:func:`claim_client_id`).
"""

from __future__ import annotations

import fcntl
import logging
import random
import socket
import ssl
import sys
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode

from alprd.config import UplinkConfig
from alprd.log import get_logger
from alprd.uplink.client import connect_options, make_client
from alprd.uplink.pacing import backoff_delay

_LOGIN_REFUSED = {0x86, 0x87, 0x8C}  # bad user name or password, not authorised, bad auth method


def describe_refusal(cfg: UplinkConfig, reason: ReasonCode) -> str:
    where = f"broker {cfg.host}:{cfg.port}"
    if reason.value in _LOGIN_REFUSED:
        return f"{where} refused the login ({reason}): check uplink.username and uplink.password"
    return f"{where} refused the connection ({reason})"


def describe_failure(cfg: UplinkConfig, err: BaseException | None) -> str:
    where = f"{cfg.host}:{cfg.port}"
    if isinstance(err, ssl.SSLCertVerificationError):
        return (f"TLS: the certificate of {where} is not trusted ({err.verify_message}): "
                "check uplink.ca_file and that uplink.host is a name in the certificate")
    if isinstance(err, ssl.SSLError):
        return (f"TLS handshake with {where} failed ({err.reason or err}): check uplink.ca_file, "
                "cert_file, key_file and that this port speaks TLS")
    if isinstance(err, ConnectionRefusedError):
        return f"{where} refused the connection: is the broker running, is uplink.port right?"
    if isinstance(err, socket.gaierror):
        return f"cannot resolve uplink.host {cfg.host!r} ({err.strerror})"
    if isinstance(err, TimeoutError):
        return f"{where} did not answer (no network, or a firewall)"
    return f"cannot connect to {where}: {err or 'unknown error'}"


def claim_client_id(base: str, lock_dir: Path) -> tuple[str, IO[str]]:
    """``base``, else ``base-2``, ``base-3``...: the first id no other living process on this host holds.

    The id is held by an exclusive lock on a file in ``lock_dir`` for as long as
    the returned file stays open, so a restarted process gets its id (and its
    broker session) back. Returns (id, lock file to keep open).
    """
    lock_dir.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        client_id = base if n == 1 else f"{base}-{n}"
        fh = (lock_dir / f".{client_id}.lock").open("w")
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            fh.close()
            continue
        return client_id, fh
    raise RuntimeError(f"no free MQTT client id {base}-N in {lock_dir}")


class Link:
    """A paho client kept connected; state is read from any thread.

    ``on_change`` is called (in the network thread) whenever ``connected`` or
    ``error`` changes; ``birth`` builds the retained online message sent on
    each connect, ``will`` is the retained offline message the broker sends if
    the connection dies. ``subscriptions`` are (re)made at QoS 1 on connect.
    With ``clean_start`` (no session kept) ``client_id`` gets a random suffix;
    otherwise it is used as given and must be unique (:func:`claim_client_id`).
    """

    def __init__(
        self,
        cfg: UplinkConfig,
        client_id: str,
        *,
        clean_start: bool = True,
        session_expiry_s: int = 0,
        status_topic: str | None = None,
        birth: Callable[[], bytes] | None = None,
        will: bytes | None = None,
        subscriptions: Iterable[str] = (),
        on_change: Callable[[], None] | None = None,
        rand: Callable[[], float] = random.random,
    ):
        self.cfg = cfg
        self.client_id = f"{client_id}-{uuid.uuid4().hex[:8]}" if clean_start else client_id
        self.client = make_client(cfg, self.client_id)
        self.client.suppress_exceptions = True  # a bug in a callback must not end the network thread...
        self.client.enable_logger(logging.getLogger("paho.mqtt"))  # ...but it is reported
        self._connect = connect_options(cfg, clean_start, session_expiry_s)
        self._status_topic = status_topic
        self._birth = birth
        self._subscriptions = list(subscriptions)
        self._on_change = on_change or (lambda: None)
        self._rand = rand
        if status_topic and will is not None:
            self.client.will_set(status_topic, will, qos=1, retain=True)
        self.client.on_connect = self._connected
        self.client.on_disconnect = self._disconnected
        self.client.on_connect_fail = self._connect_failed
        self.connected = False
        self.error: str | None = None
        self.attempt = 0
        self.connects = 0
        self.log = get_logger("alprd.uplink").bind(broker=f"{cfg.host}:{cfg.port}",
                                                 client_id=self.client_id)

    # -- control (caller's thread) -------------------------------------------
    def start(self) -> None:
        """Connect in the network thread; failures become ``error`` and are retried."""
        self.client.connect_async(**self._connect)
        self.client.loop_start()

    def connect(self) -> None:
        """Connect now, raising the OSError (or ``ssl.SSLError``) of a first attempt that fails,
        for a command that reports the cause at once; then as ``start``."""
        self.client.connect(**self._connect)
        self.client.loop_start()

    def stop(self) -> None:
        """Disconnect cleanly (no will is sent) and end the network thread."""
        self.client.disconnect()
        self.client.loop_stop()
        self.connected = False

    def publish(self, topic: str, payload: bytes, qos: int, retain: bool = False,
                properties: mqtt.Properties | None = None) -> int | None:
        """The message id to wait for, or None when not connected (nothing queued)."""
        if not self.connected:
            return None
        info = self.client.publish(topic, payload, qos=qos, retain=retain, properties=properties)
        # NO_CONN after a drop we have not heard of yet: paho keeps a QoS 1 message and resends it.
        if info.rc == mqtt.MQTT_ERR_SUCCESS or (qos > 0 and info.rc == mqtt.MQTT_ERR_NO_CONN):
            return info.mid
        return None

    # -- paho callbacks (network thread) -------------------------------------
    def _schedule_retry(self) -> float:
        delay = backoff_delay(self.attempt, self.cfg.reconnect_min_s, self.cfg.reconnect_max_s, self._rand)
        self.attempt += 1
        self.client.reconnect_delay_set(delay, delay)
        return delay

    def _set_state(self, connected: bool, error: str | None) -> None:
        changed = (connected, error) != (self.connected, self.error)
        if error is not None and error != self.error:
            self.log.warning("uplink_down", error=error, attempt=self.attempt)
        self.connected, self.error = connected, error
        if changed:
            self._on_change()

    def _connected(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        if reason.is_failure:
            self._set_state(False, describe_refusal(self.cfg, reason))
            return
        self.attempt = 0
        self.connects += 1
        self.log.info("uplink_connected", tls=self.cfg.ca_file is not None,
                      session_present=flags.session_present)
        for sub in self._subscriptions:
            client.subscribe(sub, qos=1)
        if self._status_topic and self._birth is not None:
            client.publish(self._status_topic, self._birth(), qos=1, retain=True)
        self._set_state(True, None)

    def _disconnected(self, client, userdata, flags, reason: ReasonCode, properties) -> None:
        delay = self._schedule_retry()
        error = self.error
        if self.connected and reason.is_failure:
            error = f"connection to {self.cfg.host}:{self.cfg.port} lost ({reason}); retrying in {delay:.1f} s"
        self._set_state(False, error)

    def _connect_failed(self, client, userdata) -> None:
        # paho calls this inside its ``except OSError``: the exception is still current.
        error = describe_failure(self.cfg, sys.exc_info()[1])
        self._schedule_retry()
        self._set_state(False, error)
