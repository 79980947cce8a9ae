"""Use cases: the only layer that awaits both storage and the broker. No Tornado here."""
