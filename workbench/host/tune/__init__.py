"""Host tuning for live mode (issue #20): read, recommend, plan, apply and revert.

Readers (``nic``, ``sysctl``, ``cpus``) take a ``root`` folder ("/" on the live host) so the
same code runs on a recorded ``/proc`` + ``/sys`` tree in the tests. Ethtool settings come
from the kernel through pyroute2's ethtool binding and exist only on the live host (a
recorded tree has no ioctl to answer them). ``check`` turns readings into a table of
settings with recommendations; ``plan`` turns it into changes; ``apply`` makes them, all or
none, and writes the file ``revert`` restores from.
"""
