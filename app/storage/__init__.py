"""Persistence: repository protocols (``base``) and their MongoDB implementation (``mongo``)."""
