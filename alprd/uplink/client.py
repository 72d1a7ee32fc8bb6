"""A paho-mqtt 2.x client configured from ``[uplink]``: auth and TLS in one place.

Every MQTT user in alprd (uploader, hotlist sync and publish, ``diag mqtt``,
``alprd ingest``) gets its client here, so TLS and credentials behave the same.
"""

from __future__ import annotations

import ssl

import paho.mqtt.client as mqtt

from alprd.config import UplinkConfig


def make_client(cfg: UplinkConfig, client_id: str, clean_start: bool = True) -> mqtt.Client:
    """An unconnected MQTT v5 client with the configured credentials and TLS."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5,
    )
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password or None)
    if cfg.ca_file is not None:
        client.tls_set(
            ca_certs=str(cfg.ca_file),
            certfile=str(cfg.cert_file) if cfg.cert_file else None,
            keyfile=str(cfg.key_file) if cfg.key_file else None,
            tls_version=ssl.PROTOCOL_TLS_CLIENT,
        )
    client.reconnect_delay_set(min_delay=1, max_delay=60)
    return client
