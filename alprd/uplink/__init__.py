"""MQTT uplink: reads and alerts leave the vehicle; nothing is lost or kept waiting.

- :mod:`client`: the paho-mqtt client (TLS, credentials) every MQTT user shares;
- :mod:`link`: a connection kept up with jittered exponential backoff and readable errors;
- :mod:`wire`: topic names, the compressed JSON batch format and receipts;
- :mod:`schema`: what a receiver accepts, checked (pure);
- :mod:`pacing`: pure rules (batch due, backoff, transfer-window severity);
- :mod:`outbox`: what waits in SQLite, and marking it on the receiver's receipt;
- :mod:`uploader`: the daemon service (alerts first, batches at QoS 1 until receipted, heartbeat);
- :mod:`ingest`: the department's reference receiver (``alprd ingest``).
"""
