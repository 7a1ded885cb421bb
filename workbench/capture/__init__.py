"""Sources: capture files (pcap, pcapng) and, in live mode, sockets and rings.

Every source yields ``FrameBatch``es (frames.py). ``open_capture`` picks the reader
from the file's magic number.
"""

from .frames import FrameBatch
from .open import open_capture, capture_format

__all__ = ["FrameBatch", "open_capture", "capture_format"]
