"""`python -m ledger` as an operator runs it."""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from ledger.config import Settings
from ledger.db import Database
from ledger.local.serve import SMOKE_EVENT
from tests.conftest import ROOT, env_for, event, free_port_pair, run_cli, store
from tests.test_sweep import insert


def snapshot(db: Database) -> list[dict[str, Any]]:
    return db.run(
        lambda s: s.rows(
            "SELECT vtid, status, service, environment, last_event_id, last_event_at, description, "
            "task_family, task_type, assigned_to, tenant, metadata FROM vtid_ledger ORDER BY vtid"
        )
    )


@pytest.fixture
def logged(db: Database) -> Database:
    """A log of 350 events over 40 VTIDs, not yet swept."""
    raws = [
        event(
            id=f"c{i}",
            vtid=f"VTID-{i % 40:04d}",
            topic=["task_created", "task_started", "task_completed"][i % 3],
            created_at=f"2025-11-29T10:{i % 60:02d}:00Z",
            metadata={"n": i % 5},
        )
        for i in range(350)
    ]
    insert(db, *raws)
    return db


def test_sync_shows_progress_and_reports(settings: Settings, logged: Database) -> None:
    done = run_cli(settings, "sync", "--progress")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["result"]["processed"] == 350
    assert "sync: 100%" in done.stderr and "350/350" in done.stderr
    # Off a terminal: plain lines, each figure once (tqdm redrew its last frame on close).
    assert "\r" not in done.stderr
    assert [line for line in done.stderr.splitlines() if "100%" in line] == [
        "sync: 100% 350/350 events"
    ]
    pieces = re.split(r"[\r\n]", done.stderr)
    logged = [p for p in pieces if '{"severity"' in p]
    assert logged and all(p.startswith('{"severity"') for p in logged)  # never inside the bar
    status = run_cli(settings, "status")
    assert json.loads(status.stdout)["status"]["events_processed"] == 350


def test_verify_finds_drift_and_rebuild_reproduces_the_ledger(
    settings: Settings, logged: Database
) -> None:
    run_cli(settings, "sync", "--quiet")
    assert run_cli(settings, "verify").returncode == 0
    before = snapshot(logged)
    logged.run(
        lambda s: s.run("UPDATE vtid_ledger SET status = 'blocked' WHERE vtid = 'VTID-0007'")
    )
    drift = run_cli(settings, "verify")
    assert drift.returncode == 1
    [line] = drift.stdout.splitlines()
    assert json.loads(line)["vtid"] == "VTID-0007"
    assert json.loads(line)["columns"]["status"]["ledger"] == "blocked"
    rebuilt = run_cli(settings, "rebuild", "--yes")
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "\r" not in rebuilt.stderr  # not a terminal: no progress frames in logs
    assert snapshot(logged) == before
    assert run_cli(settings, "verify").returncode == 0


def test_rebuild_keeps_rows_other_systems_made(settings: Settings, db: Database) -> None:
    db.run(
        lambda s: s.run(
            "INSERT INTO vtid_ledger (vtid, status, description) "
            "VALUES ('VTID-0001', 'pending', 'Planned'), ('VTID-0777', 'active', 'Only here')"
        )
    )
    insert(db, event(vtid="VTID-0001", topic="task_completed"))
    run_cli(settings, "sync", "--quiet")
    before = snapshot(db)
    assert run_cli(settings, "rebuild", "--yes").returncode == 0
    assert snapshot(db) == before
    assert before[0]["description"] == "Planned" and before[1]["vtid"] == "VTID-0777"


def test_ingest_command(settings: Settings, db: Database) -> None:
    done = run_cli(settings, "ingest", "-", stdin=json.dumps({**SMOKE_EVENT, "vtid": "VTID-0042"}))
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["ok"] is True
    bad = run_cli(settings, "ingest", '{"id": 1}')
    assert bad.returncode == 1 and "id must be a string" in bad.stderr
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 1


def test_rejections_lists_the_newest(settings: Settings, db: Database) -> None:
    assert run_cli(settings, "ingest", '{"id": "r1", "metadata": [1]}').returncode == 1
    done = run_cli(settings, "rejections", "--limit", "5")
    [line] = done.stdout.splitlines()
    row = json.loads(line)
    assert (row["source"], row["event_id"]) == ("ingest", "r1")
    assert "JSON object" in row["reason"] and row["raw_start"].startswith('{"id": "r1"')
    assert row["received_at"].endswith("Z")  # times in one form, as everywhere else


def test_ingest_reads_json_lines_answering_each_and_recording_the_bad(
    settings: Settings, db: Database
) -> None:
    good = [json.dumps(event(id=f"l{i}", message="m", vtid=f"VTID-{i:04d}")) for i in range(3000)]
    lines = [*good[:10], "[1]", "", *good[10:]]
    done = run_cli(settings, "ingest", "-", stdin="\n".join(lines) + "\n")
    assert done.returncode == 1  # one was refused
    answers = [json.loads(x) for x in done.stdout.splitlines()]
    assert len(answers) == 3001
    assert answers[10]["ok"] is False and "JSON object" in answers[10]["error"]
    assert answers[11] == {"ok": True, "event_id": "l10", "published": False}
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 3000
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM ledger_rejections")) == 1
    again = run_cli(settings, "ingest", "-", stdin="\n".join(good[:5]))
    assert again.returncode == 0
    assert all(json.loads(x)["duplicate"] for x in again.stdout.splitlines())


@pytest.mark.parametrize(
    ("args", "error"),
    [
        (["rejections", "--limit", "-5"], "-5 is not at least 1"),
        (["rejections", "--limit", "many"], "'many' is not a whole number"),
        (["serve", "--port", "70000"], "leaves no room"),
        (["sync", "--fast"], "unrecognized arguments: --fast"),
        (["frobnicate"], "invalid choice: 'frobnicate'"),
        ([], "the following arguments are required: COMMAND"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(
    settings: Settings, args: list[str], error: str
) -> None:
    done = run_cli(settings, *args)
    assert done.returncode == 2 and error in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""
    if args[:1] == ["sync"]:  # the command's usage, not the top level's
        assert done.stderr.startswith("usage: python -m ledger sync")


def test_help_says_what_each_command_does_and_which_settings_pick_the_database(
    settings: Settings,
) -> None:
    top = run_cli(settings, "--help").stdout
    for name in (
        "migrate",
        "serve",
        "sync",
        "status",
        "verify",
        "explain",
        "rebuild",
        "ingest",
        "rejections",
        "DATABASE_URL",
        "INSTANCE_CONNECTION_NAME",
        "LEDGER_DATA_DIR",
    ):
        assert name in top, name  # fmt: skip
    sync = run_cli(settings, "sync", "--help").stdout
    assert "--progress" in sync and "100,000 events" in sync
    serve = run_cli(settings, "serve", "--help", LEDGER_PROG="./dev").stdout
    assert serve.startswith("usage: ./dev serve") and "default 8080" in serve


def test_rebuild_without_a_terminal_needs_yes(settings: Settings, logged: Database) -> None:
    run_cli(settings, "sync")
    done = run_cli(settings, "rebuild")
    assert done.returncode == 2 and "--yes" in done.stderr
    assert logged.run(lambda s: s.scalar("SELECT count(*) FROM vtid_ledger")) == 40


def answer_rebuild(settings: Settings, answer: str) -> tuple[int, str]:
    """`rebuild` on a terminal (a pseudo-terminal here), answering its question."""
    import os
    import pty

    pid, fd = pty.fork()
    if pid == 0:  # the child: the CLI with the terminal as stdin, stdout and stderr
        os.execve(sys.executable, [sys.executable, "-m", "ledger", "rebuild"], env_for(settings))  # noqa: S606
    seen = b""
    while b"[y/N]" not in seen:
        seen += os.read(fd, 1024)
    os.write(fd, answer.encode() + b"\n")
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


def test_rebuild_on_a_terminal_asks_first(settings: Settings, logged: Database) -> None:
    run_cli(settings, "sync")
    code, shown = answer_rebuild(settings, "n")
    assert code == 1 and "nothing done" in shown
    assert logged.run(lambda s: s.scalar("SELECT count(*) FROM vtid_ledger")) == 40
    code, shown = answer_rebuild(settings, "yes")
    assert code == 0, shown
    assert '"events_read":351' in shown  # 350 and the sync event the sweep wrote


@dataclass
class Served:
    url: str
    output: Path
    env: dict[str, str]

    def banner(self) -> str:
        return self.output.read_text()

    def ledger(self, *args: str) -> subprocess.CompletedProcess[str]:
        """`python -m ledger ARGS` against the same embedded Postgres, as the banner says."""
        return subprocess.run(
            [sys.executable, "-m", "ledger", *args], env=self.env, cwd=ROOT,
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip


def start_serve(settings: Settings, tmp_path: Path, *args: str, **env: str) -> Iterator[Served]:
    """`serve` exactly as the README runs it: no DATABASE_URL, so an embedded Postgres in a
    fresh data directory. Ready when it prints the banner."""
    port = free_port_pair()
    output = tmp_path / "serve.out"
    environment = env_for(
        settings, DATABASE_URL="", LEDGER_DB_SCHEMA="", LEDGER_DATA_DIR=str(tmp_path / "pg"), **env
    )
    with output.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ledger", "serve", "--port", str(port), *args],
            env=environment, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
    deadline = time.monotonic() + 120
    while "Press Ctrl-C" not in output.read_text():
        assert proc.poll() is None, output.read_text()
        assert time.monotonic() < deadline, output.read_text()
        time.sleep(0.2)
    yield Served(f"http://127.0.0.1:{port}", output, environment)
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)
    assert proc.returncode == 0, output.read_text()
    assert "Traceback" not in output.read_text()
    assert "FutureWarning" not in output.read_text()


@pytest.fixture
def served(settings: Settings, tmp_path: Path) -> Iterator[Served]:
    # No automatic sweep: these tests count what each of their own sweeps does.
    yield from start_serve(settings, tmp_path, "--sweep-every", "0")


@pytest.fixture
def served_with_pubsub(
    settings: Settings, tmp_path: Path, pubsub_emulator: str
) -> Iterator[Served]:
    yield from start_serve(
        settings, tmp_path, "--pubsub", "--sweep-every", "0", PUBSUB_EMULATOR_HOST=pubsub_emulator
    )


def test_serve_sweeps_on_its_own_as_the_scheduler_would(settings: Settings, tmp_path: Path) -> None:
    """A newcomer without --pubsub sees an ingested event reach its task with no sync call."""
    for served in start_serve(settings, tmp_path, "--sweep-every", "0.5"):
        stored = requests.post(f"{served.url}/api/v1/events/ingest", json=SMOKE_EVENT, timeout=30)
        assert stored.json()["ok"] is True
        deadline = time.monotonic() + 30
        tasks: dict[str, Any] = {"data": []}
        while not tasks["data"] and time.monotonic() < deadline:
            time.sleep(0.3)
            tasks = requests.get(
                f"{served.url}/api/v1/tasks?vtid=VTID-TEST-0521", timeout=30
            ).json()
        assert tasks["data"] and tasks["data"][0]["status"] == "pending"


def test_migrate_shows_its_status_and_what_a_dry_run_would_apply(
    settings: Settings, bare_db: Database
) -> None:
    pending = json.loads(run_cli(settings, "migrate", "--dry-run").stdout)["would_apply"]
    assert pending and pending == sorted(pending)
    assert bare_db.run(lambda s: s.scalar("SELECT to_regclass('vtid_ledger')")) is None
    assert run_cli(settings, "migrate").returncode == 0
    listed = json.loads(run_cli(settings, "migrate", "--status").stdout)["migrations"]
    assert [m["name"] for m in listed] == pending and all(m["applied"] for m in listed)
    assert json.loads(run_cli(settings, "migrate", "--dry-run").stdout)["would_apply"] == []
    assert run_cli(settings, "--version").stdout.startswith("python -m ledger 20")


def banner_commands(banner: str) -> list[str]:
    """The curl commands the banner shows, continuation lines joined."""
    text = banner.replace("\\\n", " ")
    return [line.strip() for line in text.splitlines() if line.strip().startswith("curl ")]


def test_serve_refuses_a_port_in_use(settings: Settings, db: Database) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_cli(settings, "serve", "--port", str(port))
    assert done.returncode == 1 and f"port {port} is in use" in done.stderr


def test_seed_smoke_test_verbatim_against_serve(served: Served) -> None:
    url = served.url
    assert requests.post(f"{url}/api/v1/events/ingest", json=SMOKE_EVENT, timeout=30).json()["ok"]
    assert requests.post(f"{url}/internal/oasis/ledger/sync", timeout=30).json()["ok"]
    tasks = requests.get(f"{url}/api/v1/tasks?vtid=VTID-TEST-0521", timeout=30).json()
    assert tasks["data"][0]["status"] == "pending"


def test_the_banners_commands_work_and_leave_verify_clean(served: Served) -> None:
    if shutil.which("curl") is None:
        pytest.skip("the banner's commands use curl, which this machine lacks")
    commands = banner_commands(served.banner())
    assert len(commands) == 5, served.banner()
    for command in commands:
        done = subprocess.run(
            ["bash", "-c", command], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 0, (command, done)
        acknowledged = done.stdout == "OK"  # the event function's answer to a push
        assert acknowledged or json.loads(done.stdout).get("ok", True) is True, (command, done)
    [task] = requests.get(f"{served.url}/api/v1/tasks", timeout=30).json()["data"]
    assert (task["vtid"], task["status"]) == ("VTID-TEST-0521", "pending")
    verified = served.ledger("verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr


def test_serve_with_pubsub_publishes_what_it_ingests_and_applies_it_at_once(
    served_with_pubsub: Served,
) -> None:
    url = served_with_pubsub.url
    assert "oasis-events" in served_with_pubsub.banner()
    stored = requests.post(
        f"{url}/api/v1/events/ingest", json={**SMOKE_EVENT, "vtid": "VTID-0777"}, timeout=30
    ).json()
    assert stored["ok"] and stored["published"] is True
    deadline = time.monotonic() + 30
    while True:  # no sync: the emulator pushes it to the event function
        tasks = requests.get(f"{url}/api/v1/tasks?vtid=VTID-0777", timeout=30).json()["data"]
        if tasks or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert tasks and tasks[0]["status"] == "pending"
    metrics = requests.get(f"{url}/metrics", timeout=30).json()["projectors"]
    assert metrics["vtid_ledger_sync"]["created"] == 1


def test_verify_reports_every_event_it_cannot_read_and_goes_on(
    settings: Settings, db: Database
) -> None:
    """A log holding every case of the edge at once, and events from 1850 and with a VTID too
    long: sync, then verify ends with a report (each unreadable event named), not a traceback."""
    from tests.test_sweep import EDGE_CASES

    raws = [
        event(id=f"edge-{n}", vtid=f"VTID-{n:04d}", metadata=metadata)
        for n, (metadata, _) in enumerate(EDGE_CASES.values())
    ]
    raws += [
        event(id="old", vtid="VTID-1850", created_at="1850-01-01T00:00:00Z"),
        event(id="long", vtid="VTID-" + "0" * 60),
    ]
    insert(db, *raws)
    assert run_cli(settings, "sync", "--quiet").returncode == 0
    verified = run_cli(settings, "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert "Traceback" not in verified.stderr
    unreadable = {
        json.loads(line)["event_id"]
        for line in verified.stdout.splitlines()
        if json.loads(line)["kind"] == "unreadable"
    }
    assert unreadable == {
        f"edge-{n}" for n, (_, within) in enumerate(EDGE_CASES.values()) if not within
    }
    assert "event(s) in the log cannot be read" in verified.stderr


@pytest.mark.parametrize(
    ("url", "code", "says"),
    [
        ("postgresql://postgres@127.0.0.1:5432/no_such_database", 2, "there is no database"),
        ("postgresql://no_such_user@127.0.0.1:5432/test", 2, "refused user no_such_user"),
        ("postgresql://postgres@127.0.0.1:1/test", 3, "cannot reach the database at 127.0.0.1:1"),
    ],
)
def test_connection_errors_say_what_is_wrong_in_one_line(
    settings: Settings, url: str, code: int, says: str
) -> None:
    """Not pg8000's raw dict, nor its `(timeout is 10.0 and source_address is None)`."""
    from tests.conftest import LOCAL_URL, _reachable

    if code == 2 and not _reachable(LOCAL_URL):
        pytest.skip("needs the server at 127.0.0.1:5432")
    done = run_cli(settings, "status", DATABASE_URL=url)
    assert done.returncode == code, done.stderr
    [line] = done.stderr.strip().splitlines()
    assert says in line and "{" not in line and "source_address" not in line


def test_the_embedded_database_belongs_to_the_checkout_whatever_the_directory(
    tmp_path: Path,
) -> None:
    from ledger.config import Settings as S

    env = {"PATH": "/usr/bin:/bin"}
    found = subprocess.run(
        [sys.executable, "-c", "from ledger.config import Settings; "
         "print(Settings.from_env({}).data_dir)"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    assert Path(found.stdout.strip()) == ROOT / ".ledger-data" == S.from_env({}).data_dir


def test_ingest_reads_a_file_and_names_the_lines_it_refuses(
    settings: Settings, db: Database, tmp_path: Path
) -> None:
    """`ingest FILE` stored the file's *name* as a rejected event."""
    events = tmp_path / "events.ndjson"
    good = json.dumps({**SMOKE_EVENT, "id": "f1"})
    events.write_text(f"{good}\n\nnot json\n{json.dumps({**SMOKE_EVENT, 'id': 'f2'})}\n")
    done = run_cli(settings, "ingest", str(events))
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert done.returncode == 1
    assert [a["ok"] for a in answers] == [True, False, True]
    assert answers[1]["line"] == 3
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events")) == 2
    missing = run_cli(settings, "ingest", str(tmp_path / "nope.ndjson"))
    assert missing.returncode == 2 and "neither a file nor a JSON object" in missing.stderr


def test_serve_restarts_on_the_port_it_just_left(tmp_path: Path) -> None:
    """A TIME-WAIT entry from the last run is no conflict (the check binds as the servers do)."""
    from ledger.local.serve import port_in_use

    with socket.socket() as server:
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", 0))
        server.listen()
        port = server.getsockname()[1]
        client = socket.create_connection(("127.0.0.1", port))
        accepted, _ = server.accept()
        accepted.close()  # the server side closes first: its end waits in TIME-WAIT
        client.close()
    assert not port_in_use(port)


def test_verify_tells_a_row_behind_the_sweep_from_a_row_that_drifted(
    settings: Settings, db: Database
) -> None:
    """Right after an ingest, before any sweep, the row is missing: that is not drift."""
    insert(db, event(id="a", vtid="VTID-0001"))
    run_cli(settings, "sync", "--quiet")
    insert(db, event(id="b", vtid="VTID-0002"))  # not swept yet
    waiting = run_cli(settings, "verify")
    assert waiting.returncode == 0, waiting.stdout
    assert '"kind":"unswept"' in waiting.stdout and "wait for the sweep" in waiting.stderr


def test_the_cli_runs_from_any_directory(tmp_path: Path) -> None:
    """./dev puts the checkout on its virtualenv's path (a .pth file)."""
    import sysconfig

    if not (Path(sysconfig.get_paths()["purelib"]) / "vtid-ledger.pth").exists():
        pytest.skip("this interpreter's environment was not made by ./dev")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, "-m", "ledger", "--version"],
        cwd=tmp_path, env=env, capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert done.returncode == 0 and "ledger" in done.stdout, done.stderr


def on_a_terminal(settings: Settings, *args: str, **env: str) -> str:
    """The CLI with a pseudo-terminal as stdin, stdout and stderr; all it wrote."""
    import pty

    pid, fd = pty.fork()
    if pid == 0:
        os.execve(sys.executable, [sys.executable, "-m", "ledger", *args],  # noqa: S606
                  env_for(settings, **env))  # fmt: skip
    seen = b""
    while True:
        try:
            chunk = os.read(fd, 1024)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    os.waitpid(pid, 0)
    return seen.decode(errors="replace")


def test_on_a_terminal_the_cli_does_not_repeat_itself_in_json_logs(
    settings: Settings, db: Database
) -> None:
    insert(db, event(id="t1"))
    shown = on_a_terminal(settings, "sync")
    assert '"ok":true' in shown and '"severity"' not in shown  # no JSON echo of the result
    insert(db, event(id="t2"))
    asked = on_a_terminal(settings, "sync", LEDGER_LOG_FORMAT="json")
    assert '"severity": "INFO"' in asked and '"sweep finished"' in asked


def test_rejections_filter_and_replay_once_the_cause_is_fixed(
    settings: Settings, db: Database
) -> None:
    from datetime import UTC, datetime, timedelta

    ahead = (datetime.now(UTC) + timedelta(minutes=30)).isoformat()
    early = {**SMOKE_EVENT, "id": "early", "created_at": ahead}
    assert run_cli(settings, "ingest", json.dumps(early)).returncode == 1  # 30 min ahead
    assert run_cli(settings, "ingest", json.dumps({**SMOKE_EVENT, "message": ""})).returncode == 1
    listed = run_cli(settings, "rejections", "--source", "ingest", "--reason", "future")
    [line] = listed.stdout.splitlines()
    rejection = json.loads(line)
    assert rejection["event_id"] == "early"
    assert run_cli(settings, "rejections", "--since", "2999-01-01").stdout == ""
    assert run_cli(settings, "rejections", "--since", "yesterday").returncode == 2
    # The clock of that producer was right after all: the tolerance goes up, and it is replayed.
    assert run_cli(settings, "migrate", LEDGER_MAX_FUTURE_S="3600").returncode == 0
    replayed = run_cli(settings, "rejections", "--replay", str(rejection["id"]), "999999")
    answers = [json.loads(x) for x in replayed.stdout.splitlines()]
    assert answers[0]["ok"] is True and answers[0]["event_id"] == "early"
    assert answers[1] == {"rejection": 999999, "ok": False, "error": "no such rejection"}
    assert replayed.returncode == 1
    assert db.run(lambda s: s.scalar("SELECT count(*) FROM oasis_events WHERE id = 'early'")) == 1


def test_sync_follow_prints_each_batch_until_sigterm_and_exits_0(
    settings: Settings, logged: Database
) -> None:
    follower = subprocess.Popen(
        [sys.executable, "-m", "ledger", "sync", "--follow", "--every", "0.2"],
        env=env_for(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert follower.stdout is not None
        batches = [json.loads(follower.stdout.readline()) for _ in range(4)]  # 350 by 100
        assert [b["batch"]["processed"] for b in batches] == [100, 100, 100, 50]
        assert batches[-1]["last_event_id"] and batches[-1]["timestamp"].endswith("Z")
        insert(logged, event(id="later", vtid="VTID-0001", created_at="2025-11-30T00:00:00Z"))
        later = json.loads(follower.stdout.readline())  # the next sweep finds it by itself
        assert later["batch"]["processed"] == 1 and later["last_event_id"] == "later"
        follower.send_signal(signal.SIGTERM)
        _, stderr = follower.communicate(timeout=30)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, stderr
    assert "stopped" in stderr and "Traceback" not in stderr


def test_status_watch_reprints_until_ctrl_c(settings: Settings, logged: Database) -> None:
    watcher = subprocess.Popen(
        [sys.executable, "-m", "ledger", "status", "--watch", "0.2"],
        env=env_for(settings), cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert watcher.stdout is not None
        first = json.loads(watcher.stdout.readline())  # not a terminal: one JSON line each time
        assert first["status"]["backlog"] == 350
        assert run_cli(settings, "sync").returncode == 0
        while (shown := json.loads(watcher.stdout.readline()))["status"]["backlog"]:
            pass
        assert shown["status"]["events_processed"] == 350
        watcher.send_signal(signal.SIGINT)
        _, stderr = watcher.communicate(timeout=30)
    finally:
        if watcher.poll() is None:
            watcher.kill()
    assert watcher.returncode == 0 and "Traceback" not in stderr


def test_reads_are_tables_on_a_terminal_and_json_otherwise(
    settings: Settings, logged: Database
) -> None:
    assert run_cli(settings, "sync").returncode == 0
    assert run_cli(settings, "ingest", '{"id": "r1", "metadata": [1]}').returncode == 1
    reads = [
        (("status",), "backlog", lambda j: j["status"]["backlog"] == 0),
        (("explain", "VTID-0007"), "set by", lambda j: j["vtid"] == "VTID-0007"),
        (("rejections",), "must be a JSON object", lambda j: j["event_id"] == "r1"),
        (("tasks", "--limit", "2"), "--cursor", lambda j: j["meta"]["count"] == 2),
        (("task", "VTID-0007"), "last_event_id", lambda j: j["data"]["vtid"] == "VTID-0007"),
    ]
    for args, in_table, check in reads:
        table = on_a_terminal(settings, *args)
        assert in_table in table and not table.lstrip().startswith("{"), (args, table)
        asked = on_a_terminal(settings, *args, "--format", "json")  # --format wins
        assert check(json.loads(asked.splitlines()[0])), (args, asked)
        piped = run_cli(settings, *args)
        assert piped.returncode == 0 and check(json.loads(piped.stdout.splitlines()[0])), args
        forced = run_cli(settings, *args, "--format", "table")
        assert in_table in forced.stdout, (args, forced.stdout)
    assert run_cli(settings, "task", "VTID-9999").returncode == 1
    assert run_cli(settings, "tasks", "--limit", "0").returncode == 2


def test_rejections_list_payloads_that_are_not_ascii_or_not_utf8(
    settings: Settings, db: Database
) -> None:
    """A refused payload of accented text cut mid-character, or of bytes that are not UTF-8,
    is listed with its bytes escaped (it crashed the listing with a traceback)."""
    accented = {"vtid": "VTID-0001", "source": "ci", "status": "info", "message": "é" * 300}
    assert run_cli(settings, "ingest", json.dumps(accented, ensure_ascii=False)).returncode == 1
    db.run(
        lambda s: s.run(
            "SELECT ledger_reject('pubsub', 'not UTF-8', CAST(:raw AS bytea), NULL)",
            raw="\\xffc3",
        )
    )
    listed = run_cli(settings, "rejections", "--format", "json")
    assert listed.returncode == 0 and "Traceback" not in listed.stderr, listed.stderr
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert any("\\303\\251" in r["raw_start"] for r in rows)  # é, its two bytes escaped
    assert any(r["raw_start"] == "\\377\\303" for r in rows)


def test_a_refused_event_prints_the_apis_answer_too(settings: Settings, db: Database) -> None:
    done = run_cli(settings, "ingest", json.dumps({"vtid": "VTID-ABC", "message": "m"}))
    assert done.returncode == 1 and "rejected:" in done.stderr
    answer = json.loads(done.stdout)
    assert answer["ok"] is False and "type is required" in answer["error"]


def test_an_unmigrated_database_is_a_step_to_take_not_an_outage(
    settings: Settings, bare_db: Database
) -> None:
    done = run_cli(settings, "status")
    assert done.returncode == 2 and "python -m ledger migrate" in done.stderr
    assert "unavailable" not in done.stderr


def test_a_reader_that_leaves_early_ends_the_command_quietly(
    settings: Settings, db: Database
) -> None:
    store(db, *(event(vtid=f"VTID-{n:04d}") for n in range(300)))
    assert run_cli(settings, "sync").returncode == 0
    tasks = subprocess.Popen(  # `python -m ledger tasks … | head -1`
        [sys.executable, "-m", "ledger", "tasks", "--limit", "300", "--format", "table"],
        env=env_for(settings),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert tasks.stdout is not None and tasks.stderr is not None
    first = tasks.stdout.readline()
    tasks.stdout.close()  # the reader leaves, as head does
    status = tasks.wait(timeout=120)
    stderr = tasks.stderr.read().decode()
    assert first and "Traceback" not in stderr and "BrokenPipe" not in stderr, stderr
    assert status in (0, 141)
