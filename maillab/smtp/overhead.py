"""aiosmtpd's overhead per connection and per command, paid once or only when it is used.

Per connection: introspection, done once per class.

`aiosmtpd.smtp.SMTP.__init__` runs for every connection and looks for its
AUTH mechanisms with `inspect.getmembers()` on the protocol and on the handler
(which evaluates every attribute of both), lists both with `dir()` to find
the `smtp_*` commands and `handle_*` hooks, and reads `handle_EHLO`'s
`inspect.signature()`.  That was a fifth of the CPU of a one-message session.
What it finds depends only on the classes, so `install()` gives aiosmtpd's
module an `inspect` and a `dir` that remember their answer per class:

- `getmembers(obj)` lists the `auth_*` methods of `type(obj)` once and returns
  them bound to `obj`: the only members aiosmtpd keeps (a mechanism is a method;
  instance attributes never name one);
- `signature(method)` is computed once per function;
- `dir(obj)` lists the class's `smtp_*` and `handle_*` attributes once: the
  only names aiosmtpd looks for (instance attributes are state, never a
  command or a hook).

Anything else aiosmtpd.smtp asks of `inspect` goes to the real module.

Per command: aiosmtpd logs each command line twice (DEBUG and INFO) through
`sanitized_log`, which masks AUTH secrets with a regular expression before
it hands the line to the logger, whether or not that level is on.  The lab
keeps aiosmtpd's logger off (it reports through events), so `install()` also
gives aiosmtpd a `sanitized_log` that asks the logger first.
"""

from __future__ import annotations

import inspect
import logging
import types
from typing import Any, Callable

import aiosmtpd.smtp


class _ClassMemo(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("inspect")
        self._methods: dict[type, tuple[str, ...]] = {}
        self._signatures: dict[tuple[Any, bool], inspect.Signature] = {}
        self._dirs: dict[type, list[str]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(inspect, name)

    def getmembers(self, obj: object) -> list[tuple[str, Any]]:
        cls = type(obj)
        names = self._methods.get(cls)
        if names is None:
            names = tuple(n for n, v in inspect.getmembers(cls)
                          if n.startswith("auth_") and inspect.isroutine(v))
            self._methods[cls] = names
        return [(n, getattr(obj, n)) for n in names]

    def dir(self, obj: object) -> list[str]:
        cls = type(obj)
        names = self._dirs.get(cls)
        if names is None:
            names = self._dirs[cls] = [n for n in dir(cls) if n.startswith(("smtp_", "handle_"))]
        return names

    def signature(self, func: Callable[..., Any]) -> inspect.Signature:
        key = (getattr(func, "__func__", func), hasattr(func, "__self__"))
        sig = self._signatures.get(key)
        if sig is None:
            sig = self._signatures[key] = inspect.signature(func)
        return sig


_sanitized_log = aiosmtpd.smtp.sanitized_log


def _sanitized_log_if_on(func: Callable[..., None], msg: str, *args: Any, **kwargs: Any) -> None:
    """aiosmtpd's `sanitized_log(log.debug or log.info, ...)`, only if that level is logged."""
    logger: logging.Logger = func.__self__                      # type: ignore[attr-defined]
    if logger.isEnabledFor(logging.DEBUG if func.__name__ == "debug" else logging.INFO):
        _sanitized_log(func, msg, *args, **kwargs)


def install() -> None:
    """Give aiosmtpd.smtp the memoizing `inspect` and `dir` and the lazy `sanitized_log` (idempotent)."""
    if not isinstance(aiosmtpd.smtp.inspect, _ClassMemo):
        memo = _ClassMemo()
        aiosmtpd.smtp.inspect = memo  # type: ignore[attr-defined]
        aiosmtpd.smtp.dir = memo.dir  # type: ignore[attr-defined]   # shadows the builtin there only
        aiosmtpd.smtp.sanitized_log = _sanitized_log_if_on  # type: ignore[attr-defined]
