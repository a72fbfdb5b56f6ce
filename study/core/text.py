"""Small text helpers for progress lines and logs."""

from __future__ import annotations

import os
import re
import socket


def format_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m"


_USERINFO = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:@/]*):(?P<password>[^@/]*)@")


def redact(url: str) -> str:
    """The URL without its password, for everything we print or log (queue and tracking URIs alike)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(url))


def worker_id() -> str:
    """host:pid, how workers, runs and logs name the process that did the work."""
    return f"{socket.gethostname()}:{os.getpid()}"
