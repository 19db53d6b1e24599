"""`python -m ledger COMMAND`: the operator's commands."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ledger.config import ConfigError, Settings
from ledger.db import Database, NotMigrated, Transient

DESCRIPTION = """\
Keeps vtid_ledger in sync with the OASIS event log (oasis_events).

The database: DATABASE_URL (postgresql://user:pass@host:port/db, or ?host=/socket/dir); else
INSTANCE_CONNECTION_NAME, DB_NAME and DB_USER (Cloud SQL through the connector, IAM auth unless
DB_PASS is set); else an embedded Postgres kept in LEDGER_DATA_DIR (default: .ledger-data in
the checkout, whatever the working directory).
LEDGER_DB_SCHEMA picks a schema. Exit status: 0 done, 1 the command found a problem (drift,
refused events, a sweep already running), 2 bad usage or configuration, 3 database unavailable.
"""


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not at least 1")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if not 0.1 <= value <= 86400:
        raise argparse.ArgumentTypeError(f"{value:g} is not from 0.1 to 86400 seconds")
    return value


def _port(text: str) -> int:
    value = _positive(text)
    if value > 65534:
        raise argparse.ArgumentTypeError(f"{value} leaves no room for the event port (+1)")
    return value


def _print(body: Any) -> None:
    """JSON exactly as the HTTP API writes it (compact, keys sorted), one answer per line."""
    from ledger.json_text import dumps
    from ledger.timefmt import plain

    print(dumps(plain(body)), flush=True)


def _as_table(args: argparse.Namespace) -> bool:
    """--format, else a table for a person at a terminal and JSON for a program."""
    chosen = getattr(args, "format", None)
    return chosen == "table" if chosen else sys.stdout.isatty()


def _show(args: argparse.Namespace, body: Any, table: Any) -> None:
    if _as_table(args):
        from ledger.timefmt import plain

        print(table(plain(body)), flush=True)
    else:
        _print(body)


class _Stop:
    """Ctrl-C or SIGTERM ends a loop between two steps (a sweep in flight finishes first, as a
    daemon's batch does); a second one interrupts at once."""

    def __init__(self) -> None:
        import signal
        import threading

        self.event = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, self._stop)

    def _stop(self, signum: int, frame: Any) -> None:
        if self.event.is_set():
            raise KeyboardInterrupt
        self.event.set()

    def wait(self, seconds: float) -> bool:
        """Sleep, unless stopped; True once stopped."""
        return self.event.wait(seconds)


def cmd_migrate(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.migrate import migrate, migration_status

    if args.status or args.dry_run:
        listed = Database(settings).run(migration_status)
        if args.dry_run:
            _print({"ok": True, "would_apply": [m["name"] for m in listed if m["pending"]]})
        else:
            _print({"ok": True, "migrations": listed})
        return 0

    db = Database(settings)
    applied = db.run(migrate)
    from ledger import ledger_settings

    if settings.max_future_s is not None:
        db.run(lambda s: ledger_settings.set_max_future(s, settings.max_future_s or 0.0))
    if settings.rejections_retention_days is not None:
        days = settings.rejections_retention_days
        db.run(lambda s: ledger_settings.set_rejections_retention(s, days))
    _print({"ok": True, "applied": applied})
    return 0


def cmd_serve(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.local.serve import serve

    return serve(settings, args.port, args.pubsub, sweep_every=args.sweep_every)


def _sweep(db: Database, label: str, progress: bool | None) -> int:
    from ledger import oasis_events, projection_offsets
    from ledger.local.progress import bar, progress_logging
    from ledger.sweep import SweepRunning, sweep_until_caught_up

    def backlog(session: Any) -> int:
        return int(oasis_events.backlog(session, projection_offsets.position(session))["backlog"])

    shown = None
    if progress is not False:
        total = db.run(backlog)
        shown = bar(total, label, forced=progress is True)
    done = 0

    def advance(result: Any) -> None:
        nonlocal done
        if shown is not None:
            shown.update(result.counters.processed - done)
        done = result.counters.processed

    try:
        with progress_logging(shown):
            result = sweep_until_caught_up(db, on_batch=advance)
    except SweepRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1
    finally:
        if shown is not None:
            shown.close()
    _print({"ok": True, "result": result.as_dict()})
    return 0


def cmd_sync(settings: Settings, args: argparse.Namespace) -> int:
    if args.follow:
        return _follow(Database(settings), args.every)
    return _sweep(Database(settings), "sync", args.progress)


def _follow(db: Database, every: float) -> int:
    """Sweep, print each batch as one JSON line, wait, sweep again: until Ctrl-C or SIGTERM,
    then exit 0. A sweep another process runs is waited out, not an error."""
    from ledger.sweep import sweep
    from ledger.timefmt import now

    stop = _Stop()
    print(f"following the log: a sweep every {every:g} s; Ctrl-C to stop", file=sys.stderr)
    seen: dict[str, int] = {}  # the sweep in flight's totals so far: a batch is the change

    def batch(result: Any) -> None:
        counts = result.counters.as_dict()
        done = {k: v - seen.get(k, 0) for k, v in counts.items()}
        seen.update(counts)
        _print({"batch": done, "last_event_id": result.last_event_id,
                "last_event_time": result.last_event_time, "timestamp": now()})  # fmt: skip

    while not stop.event.is_set():
        seen.clear()
        try:
            result = sweep(db, on_batch=batch)
        except Transient as exc:  # a follower outlives an outage, as the scheduler does
            print(f"database unavailable: {exc}; trying again in {every:g} s", file=sys.stderr)
            stop.wait(every)
            continue
        if result.busy:
            print("another sweep is running; waiting for it", file=sys.stderr)
        if result.more and not result.busy:
            continue  # out of time with events left: go on at once
        stop.wait(every)
    print("stopped", file=sys.stderr)
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    from ledger import tables
    from ledger.writer_status import status

    db = Database(settings)
    if args.watch is None:
        _show(args, db.run(status), tables.status)
        return 0
    stop = _Stop()
    table = _as_table(args)
    while True:
        answer = db.run(status)
        if table and sys.stdout.isatty():
            print("\x1b[H\x1b[2J", end="")  # a terminal shows the latest, as watch(1) does
        _show(args, answer, tables.status)
        if table:
            print(f"\nevery {args.watch:g} s; Ctrl-C to stop", flush=True)
        if stop.wait(args.watch):
            return 0


def cmd_verify(settings: Settings, args: argparse.Namespace) -> int:
    from dataclasses import asdict

    from ledger.verify import verify

    vtid = _vtid_arg(args.vtid) if args.vtid else None

    checked: dict[str, int] = {}

    def work(session: Any) -> tuple[int, int, int]:
        drifted = unreadable = unswept = 0
        for finding in verify(session, vtid, checked):
            _print(asdict(finding))
            if finding.kind == "unreadable":
                unreadable += 1
            elif finding.kind == "unswept":
                unswept += 1
            else:
                drifted += 1
        return drifted, unreadable, unswept

    drifted, unreadable, unswept = Database(settings).run(work)
    print(
        f"checked {checked.get('events', 0)} event(s) against {checked.get('rows', 0)} row(s): "
        f"{drifted} row(s) drifted from the log",
        file=sys.stderr,
    )
    if unswept:
        print(f"{unswept} row(s) wait for the sweep (python -m ledger sync, then verify)",
              file=sys.stderr)  # fmt: skip
    if unreadable:
        print(
            f"{unreadable} event(s) in the log cannot be read; the sweep recorded them "
            "(python -m ledger rejections)",
            file=sys.stderr,
        )
    return 1 if drifted else 0


def _vtid_arg(raw: str) -> str:
    from ledger.tasks import BadQuery, parse_vtid

    try:
        return parse_vtid(raw)
    except BadQuery as exc:
        raise UsageError(str(exc)) from None


def _subcommand(
    parser: argparse.ArgumentParser, args: argparse.Namespace
) -> argparse.ArgumentParser | None:
    """The parser of the command given (and of its action, for `dead-letters replay`)."""
    found: argparse.ArgumentParser | None = None
    current = parser
    for attribute in ("command", "action"):
        choices = next(
            (a.choices for a in current._actions if isinstance(a, argparse._SubParsersAction)),
            None,
        )
        name = getattr(args, attribute, None)
        if not choices or name not in choices:
            break
        found = current = choices[name]
    return found


class UsageError(ValueError):
    """Bad usage found after parsing (exit 2)."""


def cmd_rebuild(settings: Settings, args: argparse.Namespace) -> int:
    from ledger import rebuild

    db = Database(settings)
    try:
        if args.vtid:
            done = rebuild.rebuild_one(db, _vtid_arg(args.vtid))
        elif args.outdated:
            done = rebuild.rebuild_outdated(db)
        else:
            if not args.yes:
                if not sys.stdin.isatty():
                    print("rebuild refolds the whole log: confirm with --yes", file=sys.stderr)
                    return 2
                answer = input(
                    "Refold the whole log beside the ledger and apply the difference? [y/N] "
                )
                if answer.strip().lower() not in ("y", "yes"):
                    print("nothing done", file=sys.stderr)
                    return 1
            done = _rebuild_all(db, args.progress)
    except rebuild.RebuildRunning as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("rebuild interrupted: the ledger is as it was", file=sys.stderr)
        return 130
    _print({"ok": True, "result": done.as_dict()})
    return 0


def _rebuild_all(db: Database, progress: bool | None) -> Any:
    from ledger import oasis_events, rebuild
    from ledger.local.progress import bar, progress_logging
    from ledger.oasis_events import Position

    shown = None
    if progress is not False:
        total = db.run(lambda s: int(oasis_events.backlog(s, Position())["backlog"]))
        shown = bar(total, "rebuild", forced=progress is True)
    seen = 0

    def advance(done: Any) -> None:
        nonlocal seen
        if shown is not None:
            shown.update(done.events - seen)
        seen = done.events

    try:
        with progress_logging(shown):
            return rebuild.rebuild(db, on_batch=advance)
    finally:
        if shown is not None:
            shown.close()


def cmd_ingest(settings: Settings, args: argparse.Namespace) -> int:
    from ledger import ingest

    db = Database(settings)
    path = Path(args.event)
    if args.event != "-" and not args.event.lstrip().startswith(("{", "[")):
        if not path.is_file():
            raise UsageError(f"{args.event!r} is neither a file nor a JSON object")
        with path.open("rb") as lines:
            return _ingest_lines(db, ingest.ingest_lines(db, lines, settings.topic_path))
    if args.event != "-":
        raw = args.event.encode("utf-8", "surrogateescape")
        done = ingest.ingest_one(db, raw, settings.topic_path)
        _print(done.as_dict())  # the API's answer, refused or not, as the other forms print
        if done.refused:
            print(f"rejected: {done.reason}", file=sys.stderr)
            return 1
        return 0
    return _ingest_lines(db, ingest.ingest_lines(db, sys.stdin.buffer, settings.topic_path))


def _ingest_lines(db: Database, results: Iterable[Any]) -> int:
    refused = 0
    for done in results:
        _print(done.as_dict())
        refused += done.refused
    return 1 if refused else 0


def cmd_dead_letters(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.dead_letters import replay

    topic = args.topic or settings.topic_path
    if not topic:
        raise UsageError("the topic to replay to: --topic, or PUBSUB_TOPIC")
    done = replay(args.subscription, topic, args.limit)
    _print({"ok": done.failed == 0, "result": done.as_dict()})
    return 1 if done.failed else 0


def cmd_rejections(settings: Settings, args: argparse.Namespace) -> int:
    from ledger import ledger_rejections
    from ledger.events import parse_time
    from ledger.timefmt import plain

    db = Database(settings)
    if args.replay:
        return _replay(db, settings, args.replay)
    try:
        since = parse_time(args.since, "--since") if args.since else None
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    rows = db.run(
        lambda s: ledger_rejections.recent(
            s, args.limit, source=args.source, since=since, reason=args.reason
        )
    )
    from ledger import tables

    if _as_table(args):
        print(tables.rejections(plain(rows)), flush=True)
    else:
        for row in rows:
            _print(row)
    return 0


def _replay(db: Database, settings: Settings, ids: list[int]) -> int:
    """Ingest rejected events again, once their producer is fixed: each answer says what became
    of it (stored, duplicate, refused again); a payload kept only in part cannot be."""
    from ledger import ingest, ledger_rejections

    found = {r["id"]: r for r in db.run(lambda s: ledger_rejections.to_replay(s, ids))}
    failed = 0
    for rejection_id in ids:
        row = found.get(rejection_id)
        if row is None or not row["whole"]:
            why = "no such rejection" if row is None else "only a prefix of it was kept"
            _print({"rejection": rejection_id, "ok": False, "error": why})
            failed += 1
            continue
        done = ingest.ingest_one(db, bytes(row["raw"]), settings.topic_path)
        _print({"rejection": rejection_id, **done.as_dict()})
        failed += done.refused
    return 1 if failed else 0


def cmd_explain(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.explain import explain

    vtid = _vtid_arg(args.vtid)
    found = Database(settings).run(lambda s: explain(s, vtid))
    if found is None:
        print(f"{vtid} is not in the ledger", file=sys.stderr)
        return 1
    from ledger import tables

    _show(args, found, tables.explain)
    return 0


def cmd_tasks(settings: Settings, args: argparse.Namespace) -> int:
    """GET /api/v1/tasks from the command line: the same filters, answer and cursor."""
    from ledger import tables
    from ledger import tasks as reads

    given = {
        name: str(value)
        for name in (*reads.FILTERS, "limit", "cursor")
        if (value := getattr(args, name, None)) is not None
    }
    try:
        query = reads.parse_query(given)
    except reads.BadQuery as exc:
        raise UsageError(str(exc)) from None
    _show(args, Database(settings).run(lambda s: reads.list_tasks(s, query)), tables.tasks)
    return 0


def cmd_task(settings: Settings, args: argparse.Namespace) -> int:
    """GET /api/v1/vtid/<vtid> from the command line."""
    from ledger import tables
    from ledger import tasks as reads

    vtid = _vtid_arg(args.vtid)
    row = Database(settings).run(lambda s: reads.get_task(s, vtid))
    if row is None:
        print(f"{vtid} is not in the ledger", file=sys.stderr)
        return 1
    _show(args, {"ok": True, "data": row}, tables.task)
    return 0


def cmd_grant(settings: Settings, args: argparse.Namespace) -> int:
    from ledger.roles import GrantError, grant

    if not (args.writer or args.service or args.operator):
        print("name at least one --writer, --service or --operator user", file=sys.stderr)
        return 2
    try:
        done = Database(settings).run(
            lambda s: grant(s, writers=args.writer, services=args.service, operators=args.operator)
        )
    except GrantError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    _print(done.as_dict())
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        # ./dev sets LEDGER_PROG so that `./dev serve --help` shows the command that was typed.
        prog=os.environ.get("LEDGER_PROG") or "python -m ledger",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    from ledger import __version__

    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, func: Any, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text)
        p.set_defaults(func=func)
        return p

    migrating = command(
        "migrate",
        cmd_migrate,
        "apply pending migrations/*.sql (the schema, each once), then each sql/*.sql whose text "
        "changed (the functions), in one transaction",
    )
    shown = migrating.add_mutually_exclusive_group()
    shown.add_argument(
        "--status", action="store_true", help="list applied and pending migrations; apply none"
    )
    shown.add_argument("--dry-run", action="store_true", help="list what would run; apply none")
    granting = command(
        "grant",
        cmd_grant,
        "make database users members of the ledger's roles (run as the tables' owner, with "
        "CREATEROLE: postgres on Cloud SQL); also grants pg_monitor to the operator role if "
        "allowed",
    )
    granting.add_argument(
        "--writer",
        action="append",
        default=[],
        metavar="USER",
        help="the event function's user: reads the log, writes the ledger (repeatable)",
    )
    granting.add_argument(
        "--operator",
        action="append",
        default=[],
        metavar="USER",
        help="an operator's user: the service's rights, and the whole rebuild (repeatable)",
    )
    granting.add_argument(
        "--service",
        action="append",
        default=[],
        metavar="USER",
        help="the HTTP function's user: also sweeps, ingests, rebuilds one task; deletes no "
        "ledger row (repeatable)",
    )
    serve = command(
        "serve",
        cmd_serve,
        "run both functions locally: ledger_http on --port, oasis_event on --port + 1, with the "
        "embedded Postgres unless DATABASE_URL is set",
    )
    serve.add_argument("--port", type=_port, default=8080, help="HTTP function port (default 8080)")
    serve.add_argument(
        "--sweep-every",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="call the sweep this often, as Cloud Scheduler does in production (default 5; 0: "
        "never)",
    )
    serve.add_argument(
        "--pubsub",
        action="store_true",
        help="also run a Pub/Sub emulator (PUBSUB_EMULATOR_HOST's, else Google's pstest) with "
        "topic PUBSUB_TOPIC (default projects/local/topics/oasis-events), pushed to oasis_event",
    )
    formatting = argparse.ArgumentParser(add_help=False)
    formatting.add_argument(
        "--format",
        choices=("table", "json"),
        help="table or json (default: a table on a terminal, JSON otherwise: the HTTP API's, "
        "byte for byte)",
    )
    progress = argparse.ArgumentParser(add_help=False)
    progress.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="a progress bar on stderr (default: on a terminal, for 100,000 events or more)",
    )
    progress.add_argument(
        "--quiet", dest="progress", action="store_false", help="the same as --no-progress"
    )
    for name, func, text in [
        ("sync", cmd_sync, "sweep the log until caught up; prints the totals"),
        (
            "rebuild",
            cmd_rebuild,
            "refold the log beside the ledger and apply the difference at once (readers never "
            "see it empty)",
        ),
    ]:
        p = sub.add_parser(name, help=text, description=text, parents=[progress])
        p.set_defaults(func=func)
        if name == "sync":
            p.add_argument(
                "--follow",
                action="store_true",
                help="keep sweeping, one JSON line per batch, until Ctrl-C or SIGTERM (exit 0)",
            )
            p.add_argument(
                "--every",
                type=_seconds,
                default=5.0,
                metavar="SECONDS",
                help="with --follow: wait this long once caught up (default 5)",
            )
        if name == "rebuild":
            p.add_argument("--yes", action="store_true", help="do not ask for confirmation")
            which = p.add_mutually_exclusive_group()
            which.add_argument("--vtid", help="refold this one task from its events")
            which.add_argument(
                "--outdated", action="store_true", help="refold the rows older rules folded"
            )

    def read_command(name: str, func: Any, text: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=text, description=text, parents=[formatting])
        p.set_defaults(func=func)
        return p

    status_cmd = read_command(
        "status", cmd_status, "the writer's status: offset, lag, backlog, recent syncs"
    )
    status_cmd.add_argument(
        "--watch",
        type=_seconds,
        nargs="?",
        const=2.0,
        metavar="SECONDS",
        help="show it again every SECONDS (default 2) until Ctrl-C",
    )
    verify_cmd = command(
        "verify", cmd_verify, "fold the whole log independently; print drifted rows (exit 1)"
    )
    verify_cmd.add_argument("--vtid", help="verify this one task only")
    explain = read_command(
        "explain", cmd_explain, "each column of a task's row and the event that set it"
    )
    explain.add_argument("vtid", help="the task, e.g. VTID-0521")
    ingest = command(
        "ingest",
        cmd_ingest,
        "store events (and publish them when PUBSUB_TOPIC is set); exit 1 if any is refused",
    )
    ingest.add_argument("event", help="one event as JSON, or - for JSON lines on stdin (one each)")
    dead = sub.add_parser(
        "dead-letters",
        help="work with the dead-letter subscription",
        description="work with the dead-letter subscription",
    )
    dead_sub = dead.add_subparsers(dest="action", required=True, metavar="ACTION")
    replaying = dead_sub.add_parser(
        "replay",
        help="republish dead-lettered events to the topic, with their attributes; acknowledge "
        "only what was republished",
        description="republish dead-lettered events to the topic, with their attributes; "
        "acknowledge only what was republished",
    )
    replaying.set_defaults(func=cmd_dead_letters)
    replaying.add_argument(
        "--subscription",
        required=True,
        help="the dead-letter subscription (terraform output dead_letter_subscription)",
    )
    replaying.add_argument("--topic", help="where to republish (default: PUBSUB_TOPIC)")
    replaying.add_argument("--limit", type=_positive, help="at most this many (default: all)")
    listing = read_command(
        "tasks", cmd_tasks, "the ledger's tasks, as GET /api/v1/tasks answers (by VTID, paged)"
    )
    for name in ("vtid", "status", "service", "environment"):
        listing.add_argument(f"--{name}", help=f"only tasks with this {name}")
    listing.add_argument("--limit", help="how many (1-1000, default 100)")
    listing.add_argument("--cursor", help="the next page: meta.next_cursor of the previous one")
    one = read_command("task", cmd_task, "one task's row, as GET /api/v1/vtid/VTID answers")
    one.add_argument("vtid", help="the task, e.g. VTID-0521")
    rejected = read_command(
        "rejections", cmd_rejections, "the newest rejected events (JSON: one per line)"
    )
    rejected.add_argument("--limit", type=_positive, default=20, help="how many (default 20)")
    rejected.add_argument("--source", choices=("pubsub", "ingest", "sweep"), help="one path's")
    rejected.add_argument("--since", metavar="TIME", help="received at or after this time")
    rejected.add_argument("--reason", metavar="TEXT", help="whose reason contains this text")
    rejected.add_argument(
        "--replay",
        type=_positive,
        nargs="+",
        metavar="ID",
        help="ingest these rejected events again (their producer fixed, or the rules changed); "
        "prints what became of each",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:  # the command's own usage, not the top level's (`sync --bogus`)
        command = _subcommand(parser, args)
        (command or parser).error(f"unrecognized arguments: {' '.join(unknown)}")
    if args.func is not cmd_serve:  # serve's functions log for their own terminal lines
        from ledger import logs

        logs.for_a_person()
    try:
        settings = Settings.from_env()
        return int(args.func(settings, args))
    except (ConfigError, UsageError) as exc:
        print(f"configuration error: {exc}" if isinstance(exc, ConfigError) else str(exc),
              file=sys.stderr)  # fmt: skip
        return 2
    except NotMigrated as exc:  # the server answered: what is missing is a step, not a retry
        print(str(exc), file=sys.stderr)
        return 2
    except Transient as exc:
        print(f"database unavailable: {exc}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # `… | head`: the reader left. Point stdout at nothing so that the interpreter's last
        # flush does not fail again, and end as a command killed by SIGPIPE does.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141
