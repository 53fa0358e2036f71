"""The node's gRPC server: thin servicers over the store, plus health and reflection."""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable
from concurrent import futures
from dataclasses import dataclass
from pathlib import Path

import grpc
from cityfed.v1 import admin_pb2, admin_pb2_grpc, node_pb2, node_pb2_grpc
from grpc_health.v1 import health

import node
from federation.errors import Cancelled, ConfigError, InvalidArgument, PolicyDenied, ShuttingDown
from federation.linkage.points import Blinder
from federation.query.datasets import DATASETS, Sensitivity
from federation.query.plan import check_plan, parse_plan
from federation.serving import call_facts
from federation.serving.drain import Drain
from federation.serving.grpc_errors import ErrorTranslator
from federation.serving.health import add_health_and_reflection
from federation.serving.limits import (
    CallLimits,
    grpc_concurrency_limit,
    grpc_receive_limit,
    member_of,
)
from federation.serving.metrics import MetricsEndpoint, serve_metrics
from federation.trust.canonical import canonical_json
from federation.trust.identity import SERVER_KEEPALIVE_OPTIONS
from federation.trust.manifest import ManifestWatcher, format_time
from federation.trust.private_files import owner_only, owner_only_from_now_on, tighten
from federation.trust.receipts import sha256_hex
from node.audit import AuditLog
from node.auditing import AuditRecorder
from node.backup import Backup, take_backup
from node.budget import PrivacyBudget, budget_limits, budget_message
from node.compile import compile_plan, compile_private_plan
from node.config import NodeConfig, limits_problem
from node.database_lock import DatabaseLock
from node.guard import current_caller, node_guard
from node.ingest import IngestMode, Load, Phase, Progress
from node.linkage import LinkageLimits, LinkageNode
from node.metrics import NodeMetrics
from node.policy import Level, catalog_levels, decide
from node.release import charge_of, exact_groups, release
from node.stores import Store, open_store
from node.trust import NodeTrust, load_node_trust

log = logging.getLogger(__name__)

NODE_SERVICE = node_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name
_SENSITIVITY = {s: node_pb2.Sensitivity.Value(f"SENSITIVITY_{s.name}") for s in Sensitivity}
_ACCESS = {level: node_pb2.AccessLevel.Value(f"ACCESS_LEVEL_{level.name}") for level in Level}
_INGEST_MODES = {admin_pb2.INGEST_MODE_REPLACE: IngestMode.REPLACE,
                 admin_pb2.INGEST_MODE_APPEND: IngestMode.APPEND}
INGEST_PHASES = {phase: admin_pb2.IngestPhase.Value(f"INGEST_PHASE_{phase.name}")
                 for phase in Phase}
# How often IngestWithProgress reports.
PROGRESS_SECONDS = 0.5
# When the grace is over: how long a load that is committing may still take, and then how long
# the stopped calls may take to answer their callers, before gRPC stops.
COMMITTING_SECONDS = 60.0
ANSWERING_SECONDS = 2.0


class NodeServicer(node_pb2_grpc.NodeServiceServicer):
    def __init__(self, config: NodeConfig, store: Store, trust: NodeTrust,
                 budget: PrivacyBudget, linkage: LinkageNode, audit: AuditLog) -> None:
        self.config = config
        self.audit = audit
        self.store = store
        self.trust = trust
        self.budget = budget
        self.linkage = linkage

    def GetNodeInfo(self, request, context):
        return node_pb2.GetNodeInfoResponse(
            city=self.config.city,
            display_name=self.config.display_name or self.config.city,
            software_version=node.__version__,
        )

    def GetAuditCheckpoint(self, request, context):
        checkpoint, proof = self.audit.checkpoint_with_proof(request.known_size)
        return node_pb2.GetAuditCheckpointResponse(
            checkpoint=canonical_json(checkpoint.to_json()).decode(), consistency_proof=proof)

    def ListDatasets(self, request, context):
        caller = current_caller().caller
        purpose = request.purpose or None
        if purpose is not None and self.trust.state.manifest.purpose(purpose) is None:
            raise InvalidArgument(f"purpose {purpose[:64]!r} is not registered in the manifest")
        counts = self.store.row_counts()
        policy = self.trust.policy
        response = node_pb2.ListDatasetsResponse()
        for dataset in DATASETS.values():
            levels = catalog_levels(policy, caller, purpose, dataset.name)
            private = policy.privacy.of(dataset.name)
            some_aggregate = any(level == Level.AGGREGATE for level in levels.values())
            entry = response.datasets.add(
                name=dataset.name, description=dataset.description,
                # An exact count of residents is a statistic like any other: only a caller who
                # may read every column's rows gets it.
                row_count=counts[dataset.name] if all(
                    level is Level.ROW for level in levels.values()) else 0,
                max_rows_per_person=private.max_rows_per_person if some_aggregate else 0)
            for c in dataset.columns:
                lower, upper = private.bounds.get(c.name, ("", ""))
                entry.columns.add(
                    name=c.name, type=c.type, description=c.description, unit=c.unit,
                    sensitivity=_SENSITIVITY[c.sensitivity], nullable=c.nullable,
                    access=_ACCESS[levels[c.name]], lower_bound=str(lower),
                    upper_bound=str(upper))
        if purpose is not None:
            state = self.budget.state(caller.id, purpose, budget_limits(policy.privacy))
            response.budget.CopyFrom(budget_message(state, policy.privacy))
        return response

    def Aggregate(self, request, context):
        authenticated = current_caller()
        facts = call_facts.current()
        facts["plan_bytes"] = request.plan
        plan = parse_plan(request.plan)
        check_plan(plan)
        policy = self.trust.policy
        decision = decide(policy, authenticated.caller, authenticated.purpose, plan)
        if not decision.allowed:
            raise PolicyDenied(decision.refusal(self.config.city))
        remaining = context.time_remaining()
        timeout = min(self.config.max_query_seconds, remaining or self.config.max_query_seconds)
        if not decision.private:
            compiled = compile_plan(plan, self.store.dialect)
            rows = self.store.aggregate(compiled, timeout=timeout,
                                        on_cancel=context.add_callback)
            facts["groups_returned"] = len(rows)
            return node_pb2.AggregateResponse(city=self.config.city,
                                              groups=exact_groups(rows, compiled))

        settings = policy.privacy
        private = compile_private_plan(plan, settings.of(plan.dataset), self.store.dialect)
        epsilon, delta = charge_of(private, settings.epsilon_per_question,
                                   settings.delta_per_question)
        state = self.budget.charge(authenticated.caller.id, authenticated.purpose, epsilon,
                                   delta, budget_limits(settings))
        facts["epsilon"], facts["delta"] = epsilon, delta
        rows = self.store.aggregate(private, timeout=timeout, on_cancel=context.add_callback)
        released = release(rows, private, epsilon=epsilon, delta=delta)
        self.store.check_result_size(len(released.groups))
        released.report.budget.CopyFrom(budget_message(state, settings))
        facts["groups_returned"] = len(released.groups)
        return node_pb2.AggregateResponse(city=self.config.city, groups=released.groups,
                                          privacy=released.report)


    def OpenLinkage(self, request, context):
        authenticated = current_caller()
        remaining = context.time_remaining()
        timeout = min(self.config.linkage_session_seconds,
                      remaining or self.config.linkage_session_seconds)
        for message in self.linkage.open(request.plan, authenticated.caller,
                                         authenticated.purpose, timeout=timeout,
                                         on_cancel=context.add_callback):
            yield node_pb2.OpenLinkageResponse(message=message)

    def ReblindLinkage(self, request_iterator, context):
        messages = (request.message for request in request_iterator)
        for message in self.linkage.reblind(messages, current_caller().caller):
            yield node_pb2.ReblindLinkageResponse(message=message)

    def FinishLinkage(self, request_iterator, context):
        messages = (request.message for request in request_iterator)
        result, budget = self.linkage.finish(messages, current_caller().caller)
        response = node_pb2.FinishLinkageResponse(result=result)
        if budget is not None:
            response.budget.CopyFrom(budget_message(budget, self.trust.policy.privacy))
        return response


class AdminServicer(admin_pb2_grpc.AdminServiceServicer):
    """The operator's loads, over the node's own socket. Each call is an audit record holding
    the dataset, the mode, the rows loaded and the SHA-256 of the path, never the path itself
    (a file name can be a person's) nor anything read from the file."""

    def __init__(self, store: Store, trust: NodeTrust,
                 backup: Callable[..., Backup] | None = None) -> None:
        self.store = store
        self.trust = trust
        self.backup = backup

    def Ingest(self, request, context):
        mode = _checked_load(request)
        result = self.store.ingest(request.dataset, Path(request.path), mode,
                                   _load_of(context))
        call_facts.current()["rows_loaded"] = result.rows_loaded
        return admin_pb2.IngestResponse(rows_loaded=result.rows_loaded,
                                        row_count=result.row_count)

    def IngestWithProgress(self, request, context):
        """Ingest on a thread of its own, while this one reports its progress: the first
        report says the load has begun."""
        mode = _checked_load(request.load)
        load = _load_of(context)
        yield admin_pb2.IngestWithProgressResponse(progress=progress_message(load.progress))
        outcome = []

        def run() -> None:
            try:
                outcome.append(self.store.ingest(request.load.dataset, Path(request.load.path),
                                                 mode, load))
            except BaseException as error:  # raised below, in the call's own thread
                outcome.append(error)

        worker = threading.Thread(target=run, name="ingest", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(PROGRESS_SECONDS)
                if worker.is_alive():
                    yield admin_pb2.IngestWithProgressResponse(
                        progress=progress_message(load.progress))
        finally:  # also when the caller has gone: the load rolls back, then the call ends
            if worker.is_alive():
                load.stop(_caller_gone())
                worker.join()
        (result,) = outcome
        if isinstance(result, BaseException):
            raise result
        call_facts.current()["rows_loaded"] = result.rows_loaded
        yield admin_pb2.IngestWithProgressResponse(result=admin_pb2.IngestResponse(
            rows_loaded=result.rows_loaded, row_count=result.row_count))

    def Backup(self, request, context):
        if not os.path.isabs(request.directory):
            raise InvalidArgument("directory must be absolute: the node writes the backup on "
                                  "its own host")
        backup = self.backup(Path(request.directory),
                             timeout=min(context.time_remaining() or 3600.0, 3600.0))
        return admin_pb2.BackupResponse(
            audit_records=backup.records, audit_root=backup.checkpoint.root,
            row_counts=backup.row_counts, files=len(backup.files),
            bytes=sum(entry["bytes"] for entry in backup.files.values()))

    def ReloadManifest(self, request, context):
        reload = self.trust.reload_manifest()
        return admin_pb2.ReloadManifestResponse(
            previous_version=reload.previous.version, version=reload.held.version,
            expires_at=format_time(reload.held.expires_at))


def _checked_load(request: admin_pb2.IngestRequest) -> IngestMode:
    """The mode of a load request that names an absolute path; its facts for the record."""
    mode = _INGEST_MODES.get(request.mode)
    facts = call_facts.current()
    facts["dataset"] = request.dataset if request.dataset in DATASETS else None
    facts["ingest_mode"] = mode.value if mode is not None else None
    facts["path_sha256"] = sha256_hex(request.path.encode("utf-8")) if request.path else None
    facts["rows_loaded"] = 0  # a load is all or nothing: a refused one added no rows
    if mode is None:
        raise InvalidArgument("mode must be INGEST_MODE_REPLACE or INGEST_MODE_APPEND")
    if not os.path.isabs(request.path):
        raise InvalidArgument("path must be absolute: the node resolves it on its own host")
    return mode


def _caller_gone() -> Cancelled:
    return Cancelled("the load was rolled back, nothing was loaded: the caller cancelled")


def _load_of(context: grpc.ServicerContext) -> Load:
    """A load that rolls back when its caller goes away before it commits."""
    load = Load()
    if not context.add_callback(lambda: load.stop(_caller_gone())):
        load.stop(_caller_gone())
    return load


def progress_message(progress: Progress) -> admin_pb2.IngestProgress:
    return admin_pb2.IngestProgress(
        phase=INGEST_PHASES[progress.phase], rows_done=progress.rows_done,
        rows_total=progress.rows_total or 0, bytes_done=progress.bytes_done,
        bytes_total=progress.bytes_total)


@dataclass
class RunningNode:
    config: NodeConfig
    server: grpc.Server
    admin_server: grpc.Server
    store: Store
    trust: NodeTrust
    audit: AuditLog
    port: int
    health: health.HealthServicer
    budget: PrivacyBudget | None = None
    linkage: LinkageNode | None = None
    manifest_watcher: ManifestWatcher | None = None
    metrics: MetricsEndpoint | None = None
    drain: Drain | None = None
    database_lock: DatabaseLock | None = None

    @property
    def address(self) -> str:
        host = self.config.listen.rsplit(":", 1)[0]
        return f"{host}:{self.port}"

    def stop(self, grace: float | None = 2.0, hurry: threading.Event | None = None) -> None:
        """Drain, then stop. Health says NOT_SERVING and new calls are refused (UNAVAILABLE,
        SHUTTING_DOWN, each recorded) at once; the calls under way have `grace` seconds, or
        until `hurry` is set, to finish. Then queries are stopped and loads rolled back, each
        caller told so (a load already committing commits), and only then does gRPC stop and
        the store, the logs and the database lock close."""
        self.health.enter_graceful_shutdown()
        if self.drain is not None:
            self.drain.begin()
        if self.manifest_watcher is not None:
            self.manifest_watcher.stop()
        if self.metrics is not None:
            self.metrics.stop()
        if self.drain is not None and not self.drain.wait_idle(grace or 0, hurry):
            log.info("%d calls still under way: stopping them", self.drain.calls)
            self.store.stop_all(ShuttingDown, "the node is shutting down")
            self.store.wait_idle(COMMITTING_SECONDS)
            self.drain.wait_idle(ANSWERING_SECONDS)
        # gRPC waits for the statuses of the calls just ended to leave (and cancels streams
        # still open, a health Watch, after as long).
        flush = None if grace is None else ANSWERING_SECONDS
        done = [self.server.stop(flush), self.admin_server.stop(flush)]
        for event in done:
            event.wait()
        # Streams gRPC has just cancelled end at their next message.
        if self.drain is None or self.drain.wait_idle(ANSWERING_SECONDS):
            self.store.close()
        else:
            log.warning("%d calls did not end: the database is left open, DuckDB recovers it "
                        "at the next start", self.drain.calls)
        self.audit.close()
        self.trust.close()
        if self.budget is not None:
            self.budget.close()
        if self.linkage is not None:
            self.linkage.close()
            self.linkage.blinder.close()
        if self.database_lock is not None:
            self.database_lock.release()


def server_options(config: NodeConfig) -> list[tuple[str, int]]:
    return [
        # gRPC's own bound, above max_request_bytes: CallLimits refuses and records first.
        ("grpc.max_receive_message_length", grpc_receive_limit(config.max_request_bytes)),
        ("grpc.max_send_message_length", config.max_response_bytes),
        ("grpc.so_reuseport", 0),
        *SERVER_KEEPALIVE_OPTIONS,
    ]


def start_node(config: NodeConfig) -> RunningNode:
    """Load the trust material, open the store, and start the public server (mutual TLS only)
    and the local admin server. From here on the process creates files its user alone may read
    (umask 077): DuckDB and SQLite keep creating them while the node runs."""
    problem = limits_problem(config)
    if problem:
        raise ConfigError(f"{config.city}: {problem}")
    keep_private(config)
    database_lock = DatabaseLock.hold(config.lock_path, f"the node of {config.city}")
    try:
        return _start_node(config, database_lock)
    except BaseException:
        database_lock.release()
        raise


def _start_node(config: NodeConfig, database_lock: DatabaseLock) -> RunningNode:
    trust = load_node_trust(config)
    audit = AuditLog(config.state_path / "audit", city=config.city, signing_key=trust.signing_key,
                     kid=trust.kid, checkpoint_every=config.audit_checkpoint_every,
                     checkpoint_seconds=config.audit_checkpoint_seconds, sync=config.audit_fsync,
                     public_keys=trust.state.manifest, segment_bytes=config.audit_segment_bytes)
    recorder = AuditRecorder(audit, city=config.city, signing_key=trust.signing_key,
                             kid=trust.kid)
    store = open_store(config)
    budget = PrivacyBudget(config.state_path / "budget.sqlite", sync=config.audit_fsync)
    metrics = NodeMetrics(audit, budget, lambda: budget_limits(trust.policy.privacy))
    drain = Drain(server=config.city, identify=member_of(trust.state))
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=config.max_workers,
                                   thread_name_prefix=f"{config.city}-rpc"),
        # The translator records every outcome; a stopping node refuses new calls; the limits
        # refuse before the guard checks a token; the guard before the servicer runs.
        interceptors=[ErrorTranslator(observer=recorder, meter=metrics), drain,
                      CallLimits(max_request_bytes=config.max_request_bytes,
                                 max_calls=config.max_concurrent_rpcs,
                                 max_calls_per_caller=config.per_caller_limit,
                                 identify=member_of(trust.state), server=config.city),
                      node_guard(trust.state, config.city, trust.replay.remember)],
        options=server_options(config),
        maximum_concurrent_rpcs=grpc_concurrency_limit(config.max_concurrent_rpcs),
    )
    blinder = Blinder(workers=config.linkage_workers or None)
    linkage = LinkageNode(city=config.city, store=store, trust=trust, budget=budget,
                          blinder=blinder, limits=LinkageLimits(
                              session_seconds=config.linkage_session_seconds,
                              max_points=config.linkage_max_points,
                              max_sessions=config.linkage_max_sessions,
                              max_response_bytes=config.max_response_bytes))
    node_pb2_grpc.add_NodeServiceServicer_to_server(
        NodeServicer(config, store, trust, budget, linkage, audit), server)
    health_servicer = add_health_and_reflection(server, [NODE_SERVICE])
    port = server.add_secure_port(config.listen, trust.server_credentials)
    if port == 0:
        store.close()
        audit.close()
        trust.close()
        raise OSError(f"cannot listen on {config.listen}")

    admin_server = grpc.server(futures.ThreadPoolExecutor(max_workers=2),
                               interceptors=[ErrorTranslator(observer=recorder, meter=metrics),
                                             drain])
    backup = functools.partial(take_backup, config=config, store=store, audit=audit,
                               signing_key=trust.signing_key)
    admin_pb2_grpc.add_AdminServiceServicer_to_server(AdminServicer(store, trust, backup),
                                                     admin_server)
    socket_path = config.admin_socket_path
    socket_path.unlink(missing_ok=True)
    with owner_only():  # the socket file is created when the port is bound
        admin_server.add_insecure_port(f"unix:{socket_path}")
    os.chmod(socket_path, 0o600)
    metrics_endpoint = serve_metrics(metrics.registry, config.metrics_listen)
    admin_server.start()
    server.start()
    watcher = ManifestWatcher(config.manifest, trust.reload_manifest,
                              interval=config.manifest_watch_seconds,
                              name=f"{config.city}-manifest").start()
    log.info("%s serving on port %d, admin socket %s", config.city, port, socket_path)
    return RunningNode(config, server, admin_server, store, trust, audit, port, health_servicer,
                       budget, linkage, metrics=metrics_endpoint,
                       manifest_watcher=watcher,
                       drain=drain, database_lock=database_lock)


def keep_private(config: NodeConfig) -> None:
    """The node's files are its user's alone: new ones by the process umask, those a looser
    umask or a copy left readable by others are tightened now."""
    owner_only_from_now_on()
    for path in config.private_paths:
        for change in tighten(path):
            log.warning("%s: only the node's user may read it now (mode %04o, was %04o)",
                        change.path, change.now, change.was)
