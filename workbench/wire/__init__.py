"""Wire decoders: bytes -> arrays. Pure numba and numpy; nothing here knows the engine."""
