"""The online feature store: each night's features in Redis for the real-time service."""

from churnops.online.store import (
    MaterializeResult,
    OnlineNight,
    OnlineStore,
    OnlineStoreError,
    redis_location,
)

__all__ = [
    "MaterializeResult",
    "OnlineNight",
    "OnlineStore",
    "OnlineStoreError",
    "redis_location",
]
