"""Streamable HTTP at `/mcp` as a component of `lugh run`: uvicorn in the same event loop,
bearer tokens, Host/Origin checks, a body limit, a per-token rate limit, `/health` and
`/metrics`."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
import socket
from collections.abc import Iterator, Sequence
from typing import Any

import uvicorn
from mcp.server.auth.settings import AuthSettings
from mcp.server.transport_security import TransportSecuritySettings
from starlette.types import ASGIApp, Receive, Scope, Send

from lugh.app import StartupError
from lugh.mcp.audit import READ_SCOPE
from lugh.mcp.limits import RateLimiter
from lugh.mcp.server import build_server
from lugh.mcp.tokens import StaticTokenVerifier
from lugh.metrics import CONTENT_TYPE as METRICS_TYPE
from lugh.metrics import Metrics
from lugh.services import Services

PATH = "/mcp"
MAX_BODY_BYTES = 1024 * 1024
RATE_PER_S = 10.0
RATE_BURST = 100
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "[::1]")


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def transport_security(allowed_hosts: Sequence[str]) -> TransportSecuritySettings:
    """Loopback names on any port, plus the hosts the owner allowed (`name` or `name:port`)."""
    hosts = [f"{h}:*" for h in LOOPBACK_HOSTS] + list(allowed_hosts)
    origins = [f"http://{h}:*" for h in LOOPBACK_HOSTS]
    for host in allowed_hosts:
        origins += [f"http://{host}", f"https://{host}"]
    return TransportSecuritySettings(
        enable_dns_rebinding_protection=True, allowed_hosts=hosts, allowed_origins=origins
    )


class McpHttp:
    """The `mcp` component. Refuses (StartupError) a non-loopback host without `allowed_hosts`."""

    name = "mcp"

    def __init__(
        self,
        services: Services,
        *,
        host: str | None = None,
        port: int | None = None,
        allowed_hosts: Sequence[str] = (),
        verifier: StaticTokenVerifier | None = None,
        max_body_bytes: int = MAX_BODY_BYTES,
        rate_per_s: float = RATE_PER_S,
        rate_burst: int = RATE_BURST,
    ) -> None:
        settings = services.settings
        self.host = host if host is not None else settings.mcp_host
        self.port = port if port is not None else settings.resolved_mcp_port
        if not is_loopback(self.host) and not allowed_hosts:
            raise StartupError(
                f"LUGH_MCP_HOST {self.host} is not a loopback address; set "
                "LUGH_MCP_ALLOWED_HOSTS to the names clients reach Lugh by, or bind 127.0.0.1."
            )
        self.verifier = verifier or StaticTokenVerifier.for_settings(settings)
        self.limiter = RateLimiter(rate_per_s, rate_burst)
        server = build_server(
            services,
            token_verifier=self.verifier,
            auth=AuthSettings(
                issuer_url=f"http://{_url_host(self.host)}:{self.port}",  # type: ignore[arg-type]
                resource_server_url=None,
                required_scopes=[READ_SCOPE],
            ),
        )
        mcp_app = server.streamable_http_app(
            streamable_http_path=PATH,
            json_response=True,
            max_request_body_size=max_body_bytes,
            transport_security=transport_security(allowed_hosts),
            host=self.host,
        )
        metrics = Metrics(services.pool, services.dsn, settings.instance)
        self.app = _Guard(mcp_app, self.verifier, self.limiter, metrics)
        self.ready = asyncio.Event()
        self._server: uvicorn.Server | None = None

    @property
    def url(self) -> str:
        return f"http://{_url_host(self.host)}:{self.port}{PATH}"

    async def run(self) -> None:
        with _bound(self.host, self.port) as sock:
            self.port = sock.getsockname()[1]
            config = uvicorn.Config(
                self.app, log_level="warning", lifespan="on", timeout_graceful_shutdown=5,
                access_log=False,
            )  # fmt: skip
            self._server = _Uvicorn(config, self.ready)
            serving = asyncio.ensure_future(self._server.serve(sockets=[sock]))
            try:
                await asyncio.shield(serving)
            except asyncio.CancelledError:
                self._server.should_exit = True
                await serving
                raise
            finally:
                self.ready.clear()

    async def stop(self) -> None:
        """Stop accepting requests and finish the ones under way."""
        if self._server is not None:
            self._server.should_exit = True


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: `lugh run` owns SIGINT and SIGTERM."""

    def __init__(self, config: uvicorn.Config, ready: asyncio.Event) -> None:
        super().__init__(config)
        self._ready = ready

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets)
        if self.started:
            self._ready.set()


class _Guard:
    """`/health` and `/metrics` (counts only) without a token; a per-token rate limit (429)
    before the SDK's app."""

    def __init__(
        self, app: ASGIApp, verifier: StaticTokenVerifier, limiter: RateLimiter, metrics: Metrics
    ) -> None:
        self.app, self.verifier, self.limiter, self.metrics = app, verifier, limiter, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            if scope["path"] == "/health":
                return await _respond(send, 200, {"status": "ok"})
            if scope["path"] == "/metrics":
                return await _respond_text(send, 200, await self.metrics.render(), METRICS_TYPE)
            token = self.verifier.verify(_bearer(scope))
            if token is not None and not self.limiter.allow(token.client_id):
                wait = self.limiter.retry_after(token.client_id)
                return await _respond(
                    send, 429, {"error": f"Too many requests; try again in {wait} s."},
                    [(b"retry-after", str(wait).encode())],
                )  # fmt: skip
        await self.app(scope, receive, send)


def _bearer(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"authorization":
            scheme, _, token = value.decode("latin-1").partition(" ")
            return token.strip() if scheme.lower() == "bearer" else ""
    return ""


async def _respond(
    send: Send, status: int, body: dict[str, Any], headers: Sequence[tuple[bytes, bytes]] = ()
) -> None:
    data = json.dumps(body).encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", b"application/json"),
                    (b"content-length", str(len(data)).encode()), *headers],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": data})


async def _respond_text(send: Send, status: int, text: str, content_type: str) -> None:
    data = text.encode()
    await send({
        "type": "http.response.start", "status": status,
        "headers": [(b"content-type", content_type.encode()),
                    (b"content-length", str(len(data)).encode())],
    })  # fmt: skip
    await send({"type": "http.response.body", "body": data})


@contextlib.contextmanager
def _bound(host: str, port: int) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        # Inherited by accepted connections; without it a response written in two parts waits
        # on the client's delayed ACK (~40 ms a call).
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host.strip("[]"), port))
        sock.set_inheritable(True)
        yield sock
    finally:
        sock.close()


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host and not host.startswith("[") else host
