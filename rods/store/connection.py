"""Connecting to Redis: one clear line when it is unreachable, retries once it has answered.

`connect(settings)` checks the URL (`check_url`), then PINGs the server ONCE, bounded by the
connect timeout: a server that was never there is reported at once ("cannot reach Redis at …",
within `connect_timeout_s`, 5 s by default), and so are a database index the server lacks, bad
credentials, and a TLS URL (`rediss://`) against a plain server. Only then does it return a
`redis.Redis` (decoded responses) whose single commands retry on connection and timeout errors
with exponential backoff: retries are for a server that was up and dropped (a restart), not for
one that never answered. A server still loading its data (BusyLoadingError) is waited for.
`retrying(fn, settings)` re-runs a whole operation on connection errors — used around
multi-round-trip operations whose pieces must be re-planned after a reconnect.

Every failure is a `RedisUnavailable` whose message says what to fix; a malformed URL is its
subclass `RedisUrlError` (a usage error).

`binary_twin(r)` is `r`'s twin that does not decode replies (the buffer's binary record parts),
made once per client.
"""

from __future__ import annotations

import random
import threading
import time
import weakref
from collections.abc import Callable
from typing import TypeVar
from urllib.parse import urlsplit

import redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import AuthenticationError, BusyLoadingError, InvalidResponse, ResponseError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from rods.config import Settings

T = TypeVar("T")
TRANSIENT = (RedisConnectionError, RedisTimeoutError, BusyLoadingError, ConnectionResetError)


SCHEMES = ("redis", "rediss", "unix")
URL_EXAMPLE = "redis://127.0.0.1:6379/0 (or redis://:PASSWORD@HOST:6379/0, rediss:// for TLS)"


class RedisUnavailable(RuntimeError):
    """Redis cannot be used: not reachable, wrong database, wrong credentials or a bad URL."""


class RedisUrlError(RedisUnavailable):
    """A Redis URL that cannot be right, whatever the server (a usage error)."""


def redact(url: str) -> str:
    """The URL with its password replaced by `***` (messages and logs never show it)."""
    try:
        parts = urlsplit(url)
        if parts.password is None:
            return url
    except ValueError:
        return url
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{user}:***@{host}").geturl()


def check_url(url: str) -> None:
    """Raise `RedisUrlError` saying what is wrong with `url` (scheme, host, port, database)."""
    shown = redact(url)
    if not url.strip():
        raise RedisUrlError(f"the Redis URL is empty; set REDIS_URL or --redis-url, e.g. {URL_EXAMPLE}")
    if "://" not in url:
        raise RedisUrlError(
            f"Redis URL {shown!r} has no scheme; write it as redis://{url.lstrip('/')} "
            f"(form: {URL_EXAMPLE})"
        )
    parts = urlsplit(url)
    if parts.scheme not in SCHEMES:
        raise RedisUrlError(
            f"Redis URL {shown!r} has scheme {parts.scheme + '://'!r}; Redis URLs start with "
            f"redis://, rediss:// (TLS) or unix://, e.g. {URL_EXAMPLE}"
        )
    if parts.scheme == "unix":
        if not parts.path:
            raise RedisUrlError(f"Redis URL {shown!r} names no socket path, e.g. unix:///run/redis.sock")
        return
    try:
        port = parts.port
    except ValueError:
        raise RedisUrlError(
            f"Redis URL {shown!r} has a port that is not a number from 1 to 65535, e.g. {URL_EXAMPLE}"
        ) from None
    if port == 0:
        raise RedisUrlError(f"Redis URL {shown!r} has port 0; use the server's port (6379 by default)")
    if not parts.hostname:
        raise RedisUrlError(f"Redis URL {shown!r} names no host, e.g. {URL_EXAMPLE}")
    db = parts.path.strip("/")
    if db and not db.isdigit():
        raise RedisUrlError(
            f"Redis URL {shown!r} has database {db!r}; the path is a database number (/0 … /15 "
            "on a default server)"
        )


def unreachable_message(url: str, error: BaseException | None = None) -> str:
    why = f" ({type(error).__name__}: {error})" if error else ""
    tls = ""
    if url.startswith("rediss://") and isinstance(error, RedisTimeoutError | RedisConnectionError):
        tls = "; a rediss:// (TLS) URL against a server without TLS never completes: try redis://"
    return (
        f"cannot reach Redis at {url}{why}{tls}; start one with `redis-server --port 6379` "
        f"or set REDIS_URL"
    )


def backoff_delays(settings: Settings) -> list[float]:
    """The sleep before each retry: base·2^i capped, with ±25 % jitter (pure but for jitter)."""
    out = []
    for i in range(max(0, settings.connect_retries - 1)):
        d = min(settings.backoff_cap_s, settings.backoff_base_s * 2**i)
        out.append(d * random.uniform(0.75, 1.25))
    return out


def client(settings: Settings) -> redis.Redis:
    """A client that retries single commands on transient errors; does not touch the network."""
    retry = Retry(
        ExponentialBackoff(cap=settings.backoff_cap_s, base=settings.backoff_base_s),
        retries=max(0, settings.connect_retries - 1),
        supported_errors=TRANSIENT,
    )
    return redis.Redis.from_url(
        settings.redis_url,
        decode_responses=True,
        socket_connect_timeout=settings.connect_timeout_s,
        socket_timeout=settings.socket_timeout_s,
        retry=retry,
        retry_on_error=list(TRANSIENT),
        health_check_interval=30,
        protocol=2,  # RESP2: the pure-Python parser is ~30 % faster on large replies than RESP3
    )


def connect(settings: Settings | None = None, **overrides: object) -> redis.Redis:
    """A checked client: one PING bounded by the connect timeout (no retries: a server that
    never answered is reported at once), then a client that retries; raises `RedisUnavailable`
    with a message that says what to fix."""
    settings = settings or Settings()
    if overrides:
        settings = settings.model_copy(update=overrides)
    check_url(settings.redis_url)
    probe(settings)
    return client(settings)


def probe(settings: Settings) -> None:
    """PING through a client without retries whose replies wait at most the connect timeout (a
    TLS handshake against a plain server never completes; it must not hang). A refused
    connection is looked at twice more within 0.4 s, a timeout not again."""
    url, shown = settings.redis_url, redact(settings.redis_url)
    timeout = settings.connect_timeout_s
    r = redis.Redis.from_url(
        url, socket_connect_timeout=timeout, socket_timeout=timeout, retry=Retry(ExponentialBackoff(), 0)
    )
    deadline = time.monotonic() + max(timeout, 30.0)  # a large data set may take a while to load
    refusals = [0.1, 0.3]
    try:
        while True:
            try:
                r.ping()
                return
            except BusyLoadingError:  # up, loading its data: it will answer
                if time.monotonic() > deadline:
                    raise RedisUnavailable(f"Redis at {shown} is still loading its data; try again") from None
                time.sleep(0.2)
            except AuthenticationError as e:
                raise RedisUnavailable(
                    f"Redis at {shown} refused the credentials ({e}); put the right password in the "
                    "URL: redis://:PASSWORD@HOST:PORT/0 (or USER:PASSWORD@)"
                ) from None
            except ResponseError as e:
                raise RedisUnavailable(_response_message(shown, e)) from None
            except InvalidResponse as e:  # something else listens there (an HTTP server, say)
                raise RedisUnavailable(
                    f"what answers at {shown} is not Redis ({e}); check the host and port of REDIS_URL"
                ) from None
            except TRANSIENT as e:
                # a refusal may be a blip of a loaded machine: look twice more, 0.4 s in all; a
                # timeout has already waited the whole connect timeout
                if isinstance(e, RedisTimeoutError) or not refusals:
                    raise RedisUnavailable(unreachable_message(shown, e)) from None
                time.sleep(refusals.pop(0))
    finally:
        r.close()


def _response_message(url: str, error: ResponseError) -> str:
    text = str(error)
    if "DB index" in text:
        db = urlsplit(url).path.strip("/") or "0"
        return (
            f"Redis at {url} has no database {db} ({text}); use a database index the server has "
            "(0 … 15 on a default server, set by its `databases` setting)"
        )
    if "NOAUTH" in text or "AUTH" in text:
        return (
            f"Redis at {url} needs a password ({text}); put it in the URL: redis://:PASSWORD@HOST:PORT/0"
        )
    return f"Redis at {url} refused the connection check ({text})"


def retrying(fn: Callable[[], T], settings: Settings) -> T:
    """Run `fn`, re-running it after transient Redis errors with backoff; re-raise the last one."""
    delays = backoff_delays(settings)
    for delay in delays:
        try:
            return fn()
        except TRANSIENT:
            time.sleep(delay)
    return fn()


_TWINS: weakref.WeakKeyDictionary[redis.Redis, redis.Redis] = weakref.WeakKeyDictionary()
_TWINS_LOCK = threading.Lock()


def binary_twin(r: redis.Redis) -> redis.Redis:
    """A client with `r`'s settings whose replies are not decoded: one per client (a cache keyed
    weakly on `r`), shared by every buffer made from it — the synthesis service makes a buffer
    per request, and a client of its own each time would open a connection pool each time."""
    with _TWINS_LOCK:
        twin = _TWINS.get(r)
        if twin is None:
            pool = r.connection_pool
            kwargs = {**pool.connection_kwargs, "decode_responses": False}
            twin = redis.Redis(
                connection_pool=redis.ConnectionPool(
                    connection_class=pool.connection_class, **kwargs
                )
            )
            _TWINS[r] = twin
        return twin
