"""Start and stop the engine: SIP listeners, the HTTP server, signals.

``Engine`` is built from a :class:`~acd.config.Config` and started on a
running loop (tests start it in-process); ``run(config)`` is what
``acd serve`` calls: it picks uvloop when importable and shuts down cleanly
on SIGINT or SIGTERM.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import resource
import signal
import ssl
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from aiohttp import web
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest

import ivr
from media import _native as media_native
from metrics.acd import AcdMetrics
from metrics.loop import LoopLagProbe
from metrics.media import MediaCollector, RtpTally
from metrics.overload import OverloadCollector
from metrics.sip import SipCollector, SipCounters
from metrics.storage import StorageCollector
from sip.endpoint import EndpointPolicy, SipEndpoint
from sip.events import Address
from sip.facing import is_wildcard
from sip.ratelimit import FailureLimiter, RequestLimiter
from sip.transport import WebSocketPolicy

from .admin import AdminService, ConfigInvalid, ConfigStore
from .admin._api import ConfigApi
from .api import add_storage_routes
from .api._access import install_access_control
from .api._callbacks import CallbacksApi
from .api._events import EventStream
from .api._principal import principal_of
from .api._users import UsersApi
from .api.agents import add_agent_routes
from .authn import Authenticator
from .calls import SHUTDOWN_RETRY_AFTER, CallControl, CallRecords, CallScript, MediaEngine
from .config import Config
from .datalock import DataLock
from .events import EventBus
from .flows import load_flows_for
from .identity import (
    AccessPolicy,
    AccessService,
    IdentityStore,
    PasswordHasher,
    PasswordTooWeak,
    Permission,
    agent_accounts,
)
from .overload import OverloadGuard, OverloadPolicy
from .queues import AcdService
from .recordings import recording_store_for
from .registrar import LocationService, RegistrarPolicy

if TYPE_CHECKING:
    from media.dtls import DtlsCertificate
from .sipapp import ALLOW, SipApplication
from .storage import CallRecord, RecordWriter, Storage, describe_storage, storage_for
from .web import PhoneAccount, WebPages, WebSocketPorts
from .webhooks import Subscription, WebhookOutbox

__all__ = ["Engine", "run"]

log = logging.getLogger(__name__)


class Engine:
    """One running contact-centre node."""

    def __init__(self, config: Config) -> None:
        self.config = config
        sip = config.sip
        security = config.security
        self.counters = SipCounters()
        limit = security.request_limit
        self.request_limiter = (
            RequestLimiter(
                threshold=limit.requests,
                window=limit.window,
                block_time=limit.block_time,
                max_sources=limit.max_sources,
                # self.app exists before the first datagram; asked only once a source floods.
                exempt=lambda host: self.app.trusts_source(host),
            )
            if limit.enabled
            else None
        )
        self.endpoint = SipEndpoint(
            EndpointPolicy(
                max_message_size=sip.max_message_size,
                blocked_user_agents=tuple(security.blocked_user_agents),
                server_name=sip.user_agent,
                t1=sip.timers.t1,
                t2=sip.timers.t2,
                t4=sip.timers.t4,
                advertised_host=str(sip.advertised_address) if sip.advertised_address else None,
            ),
            self._on_event,
            self.counters,
            self.request_limiter,
        )
        if config.logging.sip_trace:
            logging.getLogger("sip.trace").setLevel(logging.DEBUG)
            self.endpoint.trace = True
        reg = config.registrar
        self.location = LocationService(
            RegistrarPolicy(
                min_expires=reg.min_expires,
                max_expires=reg.max_expires,
                default_expires=reg.default_expires,
                max_contacts=reg.max_contacts,
                keepalive_interval=reg.keepalive_interval,
                keepalive_failures=reg.keepalive_failures,
            )
        )
        self.authenticator = Authenticator(
            sip.domain,
            _sip_accounts(config),
            algorithms=tuple(security.digest_algorithms),
            nonce_lifetime=security.nonce_lifetime,
            limiter=FailureLimiter(
                max_failures=security.auth_failures_per_minute,
                window=60.0,
                cooldown=security.auth_cooldown,
            ),
            source_limiter=FailureLimiter(
                max_failures=security.auth_failures_per_source,
                window=60.0,
                cooldown=security.auth_cooldown,
            ),
        )
        self.app = SipApplication(
            self.endpoint,
            self.authenticator,
            self.location,
            sip.domain,
            trunks=config.trunk_for_address,
        )
        self.flows: dict[str, ivr.Flow] = load_flows_for(config).flows
        self.recordings = recording_store_for(config)
        self._retention: asyncio.Task[None] | None = None
        self._callbacks: asyncio.Task[None] | None = None
        self.storage: Storage = storage_for(config)
        auth = config.http.auth
        self.access = AccessService(
            IdentityStore(self.storage, PasswordHasher(log_n=security.password_hash_cost)),
            agent_accounts(config),
            AccessPolicy(
                session_lifetime=auth.session_lifetime,
                session_idle=auth.session_idle,
                sign_in_failures=auth.sign_in_failures,
                sign_in_failures_per_source=auth.sign_in_failures_per_source,
                sign_in_window=auth.sign_in_window,
                sign_in_cooldown=auth.sign_in_cooldown,
                session_recheck=auth.session_recheck,
            ),
        )
        self.admin = AdminService(
            ConfigStore(self.storage),
            config,
            self.flows,
            self._apply_config,
            check_live=self._check_live,
        )
        # Read by the report endpoints; kept in step with the live configuration.
        self._service_level = {name: q.service_level for name, q in config.queues.items()}
        self._team_of = {a.username: a.team for a in config.agents if a.team}
        self._upkeep: asyncio.Task[None] | None = None
        self._admin_pending: tuple[str, str] | None = None
        self.event_stream: EventStream | None = None
        self.webhooks = WebhookOutbox(
            config.data_dir / "webhooks",
            [
                Subscription(
                    w.name,
                    w.url,
                    frozenset(w.events),
                    w.secret.get_secret_value(),
                    w.retry_max,
                    w.timeout,
                )
                for w in config.webhooks
            ],
        )
        self.writer: RecordWriter | None = None
        self.media: MediaEngine | None = None
        self.calls: CallControl | None = None
        self.script: CallScript | None = None
        self.acd: AcdService | None = None
        self.events = EventBus()
        # Fed by the loop-lag probe twice a second, asked by call control per new INVITE.
        self.overload = OverloadGuard(OverloadPolicy.from_config(config.calls))
        self.registry = CollectorRegistry()
        limiter = self.request_limiter
        for collector in (ProcessCollector, PlatformCollector, GCCollector):
            collector(registry=self.registry)
        self.registry.register(
            SipCollector(
                self.counters,
                transactions_active=lambda: len(self.endpoint.transactions),
                retransmissions=lambda: self.endpoint.transactions.retransmissions,
                registrations_active=lambda: len(self.location),
                auth_failures=lambda: self.authenticator.failures,
                malformed=lambda: self.endpoint.malformed,
                scanners_dropped=lambda: self.endpoint.dropped_scanners,
                requests_throttled=lambda: limiter.dropped if limiter else 0,
                source_blocks=lambda: limiter.blocks if limiter else 0,
                sources_blocked=lambda: limiter.blocked(self.endpoint.now()) if limiter else 0,
            )
        )
        self._register_metrics()
        self.sip_addresses: list[Address] = []
        self.http_runner: web.AppRunner | None = None
        self.data_lock: DataLock | None = None
        self.draining = False
        """Set on SIGTERM while calls in progress may still end: /healthz says 503."""

    def _on_event(self, event: Any) -> None:
        self.app.handle(event)

    def _register_metrics(self) -> None:
        """The ACD, media, storage and event-loop collectors (see docs/metrics.md).

        They count engine events or read live state through these callables
        when scraped, so ``metrics/`` never imports the ACD or media packages.
        """
        self.acd_metrics = AcdMetrics(
            self.config.queues,
            queue_stats=self._queue_stats,
            agents=self._agent_views,
            active_calls=lambda: len(self.calls.calls) if self.calls is not None else 0,
        )
        self.events.subscribe(self.acd_metrics.handle)
        self.rtp_tally = RtpTally()
        self.loop_lag = LoopLagProbe(on_sample=self.overload.sample)
        self.storage_metrics = StorageCollector()
        recordings_active = lambda: self.script.recordings_active if self.script else 0  # noqa: E731
        for metrics in (
            self.acd_metrics,
            MediaCollector(self.rtp_tally, recordings_active=recordings_active),
            self.storage_metrics,
            self.loop_lag,
            OverloadCollector(self.overload),
        ):
            self.registry.register(metrics)

    def _queue_stats(self, queue: str) -> Any:
        acd = self.calls.acd if self.calls is not None else None
        return acd.core.queue_stats(queue) if acd is not None else None

    def _agent_views(self) -> Any:
        acd = self.calls.acd if self.calls is not None else None
        return acd.agents() if acd is not None else ()

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Bind every listener; raises OSError when a port is taken."""
        sip = self.config.sip
        self.config.data_dir.mkdir(parents=True, exist_ok=True)
        self.data_lock = DataLock(self.config.data_dir)  # before anything touches the data
        websocket = WebSocketPolicy(
            path=sip.websocket.path,
            origins=sip.websocket.origins,
            ping_interval=sip.websocket.ping_interval,
        )
        for address in sip.listen:
            host = str(address)
            port = sip.port
            for transport in sip.transports:
                name = transport.upper()
                ctx: ssl.SSLContext | None = None
                listen_port = {
                    "TLS": sip.tls.port if sip.tls else 0,
                    "WS": sip.websocket.port,
                    "WSS": sip.websocket.secure_port,
                }.get(name, port)
                if name in ("TLS", "WSS"):
                    assert sip.tls is not None
                    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
                    ctx.load_cert_chain(str(sip.tls.certificate), str(sip.tls.private_key))
                bound = await self.endpoint.listen(
                    name, host, listen_port, ctx, websocket=websocket
                )
                if port == 0 and name in ("UDP", "TCP"):
                    port = bound.port  # UDP and TCP share the port the OS picked
                self.sip_addresses.append(bound)
                log.info("SIP listening on %s", bound)
        await self._start_storage()
        await self.admin.start()  # the runtime sections, before anything reads them
        await self.webhooks.start()  # before the first event
        self.events.subscribe(self.webhooks.on_event)
        await self._start_calls()
        self.app.start()
        self.loop_lag.start()
        await self._start_http()

    async def _start_storage(self) -> None:
        """Open the database and the record writer, replaying what a previous run left.

        The writer opens the storage: a database that is down now is retried
        until it answers, records are journaled meanwhile, and calls go on.
        """
        log.info("storage: %s", describe_storage(self.config))
        self.writer = RecordWriter(self.storage, self.config.data_dir / "journal")
        await self.writer.start()
        self.storage_metrics.writer = self.writer
        recovered = await self.writer.recover_open_calls()
        if recovered:
            log.warning("%d calls in flight at the last stop were closed as failed", len(recovered))
        self._retention = asyncio.get_running_loop().create_task(
            self._recordings_upkeep(recovered), name="retention"
        )

    async def _recordings_upkeep(self, recovered: list[CallRecord]) -> None:
        """Repair the recordings of calls a crash cut short, then apply retention hourly.

        In the background: hashing what the repaired files hold takes a
        while, and calls need not wait for it. Their rows and the failed
        CDRs' ``recording_id`` go through the writer; a CDR that did end is
        kept by the upsert (``keep_ended``).
        """
        writer = self.writer
        if recovered and writer is not None:
            try:
                repaired = await self.recordings.recover(recovered)
            except Exception:
                log.exception("the recordings of calls cut short could not be repaired")
            else:
                latest: dict[str, str] = {}
                for recording in repaired:
                    writer.submit_recording(recording)
                    latest[recording.call_id] = recording.id
                for call in recovered:
                    if call.call_id in latest:
                        writer.submit_call(replace(call, recording_id=latest[call.call_id]))
        await self.recordings.run_retention(self.storage, every=3600.0)

    async def _start_calls(self) -> None:
        config = self.config
        host = config.media.address or str(config.sip.listen[0])
        if media_native.fastrtp is not None:
            log.info("media: RTP relay and statistics on the C fast path (media._fastrtp)")
        else:
            log.warning(
                "media: the C fast path is not built (or %s is set): RTP runs in pure "
                "Python, at several times the CPU per packet (docs/performance.md); "
                "install a C compiler and the Python headers, then reinstall",
                media_native.PURE_PYTHON_VARIABLE,
            )
        advertised = config.media.advertised_address or config.sip.advertised_address
        self.media = MediaEngine(
            host,
            config.media.rtp_ports,
            prompts_dir=config.prompts.dir,
            cache_dir=config.data_dir / "cache",
            timeout=config.media.media_timeout,
            voice=config.prompts.voice,
            advertised=str(advertised) if advertised else None,
            facing=self.endpoint.facing,
            certificate=_dtls_certificate(config),
            handshake_timeout=config.media.webrtc.handshake_timeout,
            consent_timeout=config.media.webrtc.consent_timeout,
        )
        _log_addresses(config)
        self.media.on_leg_opened = self.rtp_tally.track
        self.calls = CallControl(
            self.endpoint,
            config,
            self.media,
            allow=ALLOW,
            events=self.events,
            overload=self.overload,
        )
        assert self.writer is not None
        self.calls.records = CallRecords(self.writer)
        self.script = CallScript(
            self.calls, config, self.location, self.flows, recordings=self.recordings
        )
        await self.script.start()
        self.calls.handler = self.script
        self.calls.script = self.script
        self.app.calls = self.calls
        self.acd = AcdService(self.calls, config, self.location, self.events, self.calls.records)
        self.acd.may_monitor = self._may_monitor
        self.acd.start()
        self.app.listeners.append(self.acd.registration_changed)
        self._callbacks = asyncio.get_running_loop().create_task(
            self._restore_callbacks(self.acd), name="callbacks"
        )

    async def _may_monitor(self, username: str, agent: str) -> bool:
        """Whether the account ``username`` (a phone's) may listen to ``agent``'s calls:
        its user's role has calls:monitor and reaches the agent (docs/security.md)."""
        user = await self.access.user(username)
        if user is None or user.disabled:
            return False
        principal = self.access.principal_for(user, "phone")
        return Permission.CALLS_MONITOR in principal.permissions and principal.reaches(agent)

    async def _restore_callbacks(self, acd: AcdService) -> None:
        """Put the callbacks an earlier run left waiting back in their queues.

        Once the database answers and the journal is replayed, so that what
        is read is the last state each request reached (a request the last
        run updated during an outage is in the journal, not yet the table).
        """
        writer = self.writer
        assert writer is not None
        delay = 0.5
        while not (writer.available and writer.journaled == 0):
            await asyncio.sleep(delay)  # the writer retries the database meanwhile
            delay = min(delay * 2, 10.0)
        await acd.callbacks.restore(self.storage)

    async def _start_http(self) -> None:
        http = self.config.http
        app = web.Application()
        token = http.auth.metrics_token
        install_access_control(
            app, self.access, metrics_token=token.get_secret_value() if token else None
        )
        app.router.add_routes(UsersApi(self.access).routes())
        app.router.add_routes(self._web_pages().routes())
        app.router.add_routes(ConfigApi(self.admin).routes())
        app.router.add_routes(self.webhooks.routes())
        self.event_stream = EventStream(self.events, lambda: self.access.team_of)
        app.router.add_routes(self.event_stream.routes())
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/api/v1/registrations", self._registrations)
        app.router.add_get("/api/v1/live/calls", self._live_calls)
        app.router.add_get("/api/v1/live/resources", self._live_resources)
        if self.acd is not None:
            add_agent_routes(app, self.acd)
            app.router.add_routes(CallbacksApi(self.acd, self.storage).routes())
        add_storage_routes(
            app,
            self.storage,
            self.recordings,
            service_level=self._service_level,
            team_of=self._team_of,
        )
        self.http_runner = web.AppRunner(app, access_log=None)
        await self.http_runner.setup()
        site = web.TCPSite(self.http_runner, str(http.listen), http.port)
        await self._bootstrap_admin()  # before the first sign-in can arrive
        await site.start()
        log.info("HTTP listening on %s:%s", http.listen, http.port)
        self._upkeep = asyncio.get_running_loop().create_task(
            self._access_upkeep(), name="access-upkeep"
        )

    def _web_pages(self) -> WebPages:
        """The agent desktop and its settings: the bound WebSocket ports, phone credentials."""
        ports: dict[str, int] = {}
        for bound in self.sip_addresses:
            ports.setdefault(bound.transport, bound.port)
        path = self.config.sip.websocket.path or "/"
        lifetime = self.access.policy.session_lifetime
        loop = asyncio.get_running_loop()

        def account(username: str) -> PhoneAccount | None:
            for agent in self.config.agents:
                if agent.username == username and agent.enabled:
                    return PhoneAccount(agent.name, agent=True)
            return None

        def pause_reasons() -> tuple[str, ...]:
            acd = self.calls.acd if self.calls is not None else None
            return acd.pause_reasons if acd is not None else ()

        return WebPages(
            domain=self.config.sip.domain,
            websocket=WebSocketPorts(ports.get("WS"), ports.get("WSS"), path),
            account=account,
            issue=lambda user: self.authenticator.issue_phone_credential(
                user, loop.time(), lifetime
            ),
            pause_reasons=pause_reasons,
            register_expires=self.config.registrar.default_expires,
            crm_url=lambda: self.config.http.crm_url,
        )

    async def _bootstrap_admin(self) -> None:
        """``ACD_ADMIN_USER`` and ``ACD_ADMIN_PASSWORD`` make the first admin of an empty
        user table; there is no default account and no default password."""
        username = os.environ.get("ACD_ADMIN_USER", "").strip()
        password = os.environ.get("ACD_ADMIN_PASSWORD", "")
        if not username or not password:
            with contextlib.suppress(Exception):  # a database that is down says so elsewhere
                if not await self.access.store.count_users():
                    log.info(
                        "no web users yet: agents sign in with their SIP accounts; make an "
                        "admin with `acd users add NAME --role admin` (docs/security.md)"
                    )
            return
        try:
            await self.access.bootstrap_admin(username, password)
        except PasswordTooWeak as exc:
            log.error("ACD_ADMIN_PASSWORD refused: %s; no admin was created", exc)
        except Exception as exc:
            log.error("could not create the first admin (%s): trying again every 10 s", exc)
            self._admin_pending = (username, password)

    async def _access_upkeep(self) -> None:
        """Make the first admin once the database answers, if it did not at start; then
        forget expired sessions and old sign-in failures every ten minutes."""
        policy = self.access.policy
        while self._admin_pending is not None:
            await asyncio.sleep(10)
            with contextlib.suppress(Exception):  # still down: the next round
                await self.access.bootstrap_admin(*self._admin_pending)
                self._admin_pending = None
        while True:
            await asyncio.sleep(600)
            now = self.access.clock()
            self.access.prune(now)
            try:
                await self.access.store.prune_sessions(now, policy.session_idle)
            except Exception as exc:
                log.warning("could not prune expired sessions: %s", exc)

    # -- runtime configuration ---------------------------------------------------------

    def _apply_config(self, config: Config) -> None:
        """Make the running engine follow ``config``'s agents, queues, routes and pause reasons.

        Called by ``AdminService`` after each change and once at start with the
        database's sections. Nothing live is dropped: see ``Acd.reconfigure``.
        """
        old = self.config
        self.config = config
        self.authenticator.set_accounts(_sip_accounts(config))
        self.access.set_agents(agent_accounts(config))
        kept = {a.username for a in config.agents if a.enabled}
        for agent in old.agents:
            if agent.username not in kept:
                self.app.drop_user(agent.username, "account removed")
        self._service_level.clear()
        self._service_level.update({n: q.service_level for n, q in config.queues.items()})
        self._team_of.clear()
        self._team_of.update({a.username: a.team for a in config.agents if a.team})
        for holder in (self.calls, self.script):
            if holder is not None:
                holder.config = config
        if self.acd is not None:
            self.acd.reconfigure(config)

    def _check_live(self, config: Config) -> None:
        """Refuse a change the live calls cannot take: a queue removed with callers in it."""
        if self.acd is None:
            return
        for name in self.config.queues:
            waiting = self.acd.waiting_in(name)
            if name not in config.queues and waiting:
                raise ConfigInvalid(
                    f"queues.{name}",
                    f"{waiting} callers are waiting in it; remove it once they have left "
                    "(send new callers elsewhere first by changing the routes)",
                )

    async def drain(self, timeout: float, abort: asyncio.Event | None = None) -> None:
        """Refuse new calls and OPTIONS (503) and answer /healthz 503, while the calls in
        progress end by themselves, for at most ``timeout`` seconds or until ``abort``."""
        self.draining = True
        if self.calls is not None:
            await self.calls.drain(timeout, abort)

    async def stop(self) -> None:
        """Refuse new calls (503), hang up calls, close listeners and HTTP, settle every record."""
        self.loop_lag.stop()
        self.app.stop()
        await self.admin.stop()
        if self._callbacks is not None:
            self._callbacks.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._callbacks
        if self.calls is not None:
            await self.calls.stop()
        if self.acd is not None:
            await self.acd.stop()
        if self.script is not None:
            await self.script.stop()
        # From the first calls.stop() on, a new INVITE gets 503 and no call
        # is made, so every call has ended and handed over its CDR by now.
        await self.endpoint.close()
        if self.event_stream is not None:
            await self.event_stream.close()
        if self.http_runner is not None:
            await self.http_runner.cleanup()
        if self._upkeep is not None:
            self._upkeep.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._upkeep
        if self.media is not None:
            self.media.close()
        if self._retention is not None:
            self._retention.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._retention
        await self.webhooks.stop()  # every event so far is in the outbox now
        if self.writer is not None:
            await self.writer.stop()
        await self.storage.close()
        if self.data_lock is not None:
            self.data_lock.release()

    # -- HTTP ------------------------------------------------------------------------

    async def _healthz(self, request: web.Request) -> web.Response:
        if self.draining:
            # A load balancer or orchestrator takes the node out; it is not dead.
            return web.json_response(
                {"status": "draining", "sip": [str(a) for a in self.sip_addresses]},
                status=503,
                headers={"Retry-After": str(SHUTDOWN_RETRY_AFTER)},
            )
        return web.json_response(
            {"status": "ok", "sip": [str(a) for a in self.sip_addresses]},
        )

    async def _metrics(self, request: web.Request) -> web.Response:
        body = generate_latest(self.registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _registrations(self, request: web.Request) -> web.Response:
        now = self.endpoint.now()
        users = request.query.get("user")
        principal = principal_of(request)
        rows = [
            {
                "user": b.user,
                "contact": str(b.uri),
                "destination": str(b.destination),
                "source": str(b.source),
                "expires_in": b.expires_in(now),
                "user_agent": b.user_agent,
            }
            for b in self.location
            if (users is None or b.user == users) and principal.reaches(b.user)
        ]
        return web.json_response({"registrations": rows})

    async def _live_resources(self, request: web.Request) -> web.Response:
        """What calls hold (tasks, timers, dialogs, RTP ports, live objects): a leak check.

        A full garbage collection runs first, so ``legs_alive`` and
        ``calls_alive`` count only what something still references.
        """
        gc.collect()
        resources: dict[str, int] = {
            "tasks": len(asyncio.all_tasks()),
            "sip_transactions": len(self.endpoint.transactions),
        }
        if self.calls is not None:
            resources.update(self.calls.resources())
        return web.json_response(resources)

    async def _live_calls(self, request: web.Request) -> web.Response:
        principal = principal_of(request)
        calls = self.calls.calls.values() if self.calls is not None else ()
        rows = [
            {
                "id": call.id,
                "caller": call.caller,
                "did": call.did,
                "route": call.route,
                "answered": call.caller_leg.is_answered,
                "ivr_path": call.ivr_path,
                "digits": "".join(call.digits),
                "queue": call.queue,
                "agent": call.agent,
                "variables": call.variables,
            }
            for call in calls
            if principal.reaches(call.agent)
        ]
        return web.json_response({"calls": rows})


def _sip_accounts(config: Config) -> dict[str, str]:
    """User name to SIP password of every agent who may register (enabled ones)."""
    return {a.username: a.password.get_secret_value() for a in config.agents if a.enabled}


def _dtls_certificate(config: Config) -> DtlsCertificate | None:
    """The configured DTLS identity for WebRTC legs; None: the media engine makes one."""
    webrtc = config.media.webrtc
    if webrtc.certificate is None or webrtc.private_key is None:
        return None
    from media.dtls import DtlsCertificate  # OpenSSL: loaded only when WebRTC is configured

    return DtlsCertificate.load(webrtc.certificate, webrtc.private_key)


def _log_addresses(config: Config) -> None:
    """Say what goes on the wire where the bind address alone would not tell."""
    sip_wild = any(is_wildcard(str(host)) for host in config.sip.listen)
    media_host = str(config.media.address or config.sip.listen[0])
    sip_shown = config.sip.advertised_address
    media_shown = config.media.advertised_address or sip_shown
    if sip_wild and sip_shown is None:
        log.info(
            "sip.listen has a wildcard address: Via and Contact carry the local address "
            "on the route to each peer; behind NAT set sip.advertised_address"
        )
    if is_wildcard(media_host) and media_shown is None:
        log.info(
            "RTP binds %s: SDP carries the local address on the route to each peer; "
            "behind NAT set media.advertised_address (or sip.advertised_address)",
            media_host,
        )
    if sip_shown is not None or media_shown is not None:
        log.info(
            "advertised addresses: SIP %s, SDP %s",
            sip_shown or "(bound address)",
            media_shown or media_host,
        )


def _tune_gc() -> None:
    """Keep garbage collection off the per-message path.

    Every SIP message allocates a few dozen short-lived objects, and with the
    default gen-0 threshold (700) the collector ran every few messages and
    walked every live transaction and nonce; profiles under SIPp load put a
    quarter of the time there. Objects alive after start-up are frozen out
    of collection, and gen 0 is collected less often.

    A finished call leaves no reference cycle (its legs drop their owners'
    callbacks), so what a young collection finds is almost all alive: the
    transactions and dialogs every call leaves for 64*T1. Its pause grows
    with the threshold: 50,000 gave 33-44 ms pauses at 300 calls/s, the
    set-up tail; 10,000 gives 10-15 ms, five times as often, for about the
    same collector time. Gen 1 keeps its cadence (every 1,000,000 net
    allocations).
    """
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 100, 20)


async def _serve(config: Config) -> int:
    """Run until a signal. SIGTERM drains first (``calls.drain_timeout``): new calls
    get 503 while those in progress end; SIGINT, or a second SIGTERM, stops at once."""
    engine = Engine(config)
    stop = asyncio.Event()
    at_once = asyncio.Event()

    def terminate() -> None:
        if stop.is_set():
            at_once.set()
        stop.set()

    def interrupt() -> None:
        at_once.set()
        stop.set()

    loop = asyncio.get_running_loop()
    for sig, handler in ((signal.SIGINT, interrupt), (signal.SIGTERM, terminate)):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, handler)
    try:
        await engine.start()
    except OSError as exc:
        log.error("cannot start: %s", exc)
        await engine.stop()
        return 1
    _tune_gc()
    log.info("engine started")
    await stop.wait()
    drain = config.calls.drain_timeout
    if drain > 0 and not at_once.is_set():
        log.info(
            "SIGTERM: draining for up to %g s (calls.drain_timeout); SIGINT or another "
            "SIGTERM stops at once",
            drain,
        )
        await engine.drain(drain, at_once)
    log.info("shutting down")
    await engine.stop()
    return 0


def _raise_file_limit(config: Config) -> None:
    """Let the process open a descriptor for every RTP port it may bind, and then some.

    Each call leg holds two sockets (RTP and RTCP), so the RTP range in
    ports is the descriptors media alone may need. Debian's default soft
    limit is 1,024: about 250 calls. The soft limit is raised to the hard
    one; a hard limit below the need is said once at start, not discovered
    as failed calls at the busy hour.
    """
    low, high = config.media.rtp_ports
    needed = high - low + 1 + 1024  # SIP, HTTP, storage, recordings being written
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, needed)
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        log.warning(
            "open files limited to %d, below the %d the RTP range %d-%d may need: "
            "raise the hard limit (ulimit -Hn, LimitNOFILE=) or narrow media.rtp_ports",
            soft,
            needed,
            low,
            high,
        )


def run(config: Config) -> int:
    """Run the engine until SIGINT or SIGTERM; returns the exit status."""
    _raise_file_limit(config)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(_serve(config))
    return uvloop.run(_serve(config))
