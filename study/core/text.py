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


# scheme://user:password@ anywhere in a text (a URL alone, a command line, an error message)
_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.\-]*://)(?P<user>[^:@/\s]*):(?P<password>[^@/\s]*)@")


def redact(text: str) -> str:
    """`text` with the password of every URL in it replaced by ***: for everything we print, log or tag
    (queue and tracking URIs, command lines, error messages of the database drivers)."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{m['user']}:***@", str(text))


def redact_url(url: str) -> str:
    """A store URL without its password (SQLAlchemy's own rendering); as it is when it has none (SQLAlchemy
    would quote a SQLite path), `redact` for what SQLAlchemy cannot parse."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError, TypeError):
        return redact(url)
    return url if parsed.password is None else parsed.render_as_string(hide_password=True)


def first_line(exc: BaseException) -> str:
    """An exception's first non-empty line (drivers add SQL and links below it)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), type(exc).__name__)


def worker_id() -> str:
    """host:pid, how workers, runs and logs name the process that did the work."""
    return f"{socket.gethostname()}:{os.getpid()}"
