"""MQTT uplink: reads and alerts leave the vehicle; nothing is lost or kept waiting.

- :mod:`client`: the paho-mqtt client (TLS, credentials) every MQTT user shares;
- :mod:`link`: a connection kept up with jittered exponential backoff and readable errors;
- :mod:`wire`: topic names and the compressed JSON batch format;
- :mod:`pacing`: pure rules (batch due, backoff, transfer-window severity);
- :mod:`outbox`: what waits in SQLite, and marking it once acknowledged;
- :mod:`uploader`: the daemon service (alerts first, batches at QoS 1, heartbeat);
- :mod:`ingest`: the department's reference receiver (``alprd ingest``).
"""
