"""The speech models: engines, the streaming policy, and the pass scheduler."""

from models_app.native import limit_native_caches

limit_native_caches()  # before any engine loads (see models_app/native.py)
