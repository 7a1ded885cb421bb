"""The server's defaults, in a module light enough for the CLI to import for its --help."""

DEFAULT_HOST = "127.0.0.1"          # loopback: anything else needs a token (security.py)
DEFAULT_PORT = 8000
DEFAULT_OUT_DIR = "runs/serve"      # the replay's Parquet outputs and summary.json
HISTORY_ITEMS = 200_000             # items a WebSocket channel keeps for resumes (hub.py)
QUEUE_FRAMES = 1_024                # frames a WebSocket client may have waiting before it starts missing some
