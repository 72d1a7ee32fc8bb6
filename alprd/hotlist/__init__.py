"""Hotlist: match every stored read against the list of wanted plates; a hit is an alert.

- :mod:`match`: the in-memory index (exact, OCR-confusable, one missing/extra character,
  wildcard partial plates), pure;
- :mod:`entries`: what a hotlist row must be (policy checks), CSV/JSON parsing, pure;
- :mod:`ncic`: NCIC/state hot-file extracts (file codes to categories, personal columns dropped), pure;
- :mod:`repository`: the list in SQLite, changed atomically;
- :mod:`hotlist`: the daemon's current index, reloaded and swapped when the list changes;
- :mod:`alerts`: hits become stored alerts with a ready-to-send payload; dispositions;
- :mod:`sync`: signed snapshots and deltas from the department over MQTT;
- :mod:`department`: the department's side, the one source: import, shared BOLOs, publish.
"""
