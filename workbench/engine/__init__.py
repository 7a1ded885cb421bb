"""The engine: one jitted ``process_batch`` per FrameBatch (pipeline.py) over EngineState arrays."""
