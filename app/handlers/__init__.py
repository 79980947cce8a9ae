"""Thin Tornado handlers: translate HTTP/WebSocket to service calls and back."""
