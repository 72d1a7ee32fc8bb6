"""A paho-mqtt 2.x client configured from ``[uplink]``: auth and TLS in one place.

:class:`alprd.uplink.link.Link`, the one connection class every MQTT user in
alprd goes through, gets its client here, so TLS and credentials behave the same.
"""

from __future__ import annotations

import ssl
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from alprd.config import ConfigError, UplinkConfig


def make_client(cfg: UplinkConfig, client_id: str) -> mqtt.Client:
    """An unconnected MQTT v5 client with the configured credentials and TLS.

    Raises ConfigError naming the key when a TLS file cannot be loaded.
    """
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password or None)
    if cfg.ca_file is not None:
        try:
            client.tls_set(
                ca_certs=str(cfg.ca_file),
                certfile=str(cfg.cert_file) if cfg.cert_file else None,
                keyfile=str(cfg.key_file) if cfg.key_file else None,
                tls_version=ssl.PROTOCOL_TLS_CLIENT,
            )
        except (OSError, ssl.SSLError) as err:
            raise ConfigError(
                f"uplink TLS files (ca_file={cfg.ca_file}, cert_file={cfg.cert_file}, "
                f"key_file={cfg.key_file}) cannot be loaded: {err}; fix the paths or PEM files"
            ) from None
    client.reconnect_delay_set(min_delay=cfg.reconnect_min_s, max_delay=cfg.reconnect_max_s)
    return client


def connect_options(cfg: UplinkConfig, clean_start: bool = True, session_expiry_s: int = 0) -> dict[str, Any]:
    """Keyword arguments for ``connect``/``connect_async``.

    A receiver that must not miss messages while it is away uses
    ``clean_start=False`` with a session expiry: the broker keeps its
    subscriptions and queues QoS 1 messages for it meanwhile.
    """
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = session_expiry_s
    return {"host": cfg.host, "port": cfg.port, "keepalive": cfg.keepalive_s,
            "clean_start": clean_start, "properties": props}
