"""A Pub/Sub emulator for local runs and the tests: PUBSUB_EMULATOR_HOST when one is running
already, else Google's `pstest` fake server (tools/pstest/main.go), built from Debian's
golang-go and golang-google-cloud-dev sources (`./dev serve --pubsub` installs them)."""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent
SOURCE = ROOT / "tools" / "pstest" / "main.go"
BINARY = ROOT / ".build" / "pstest"
GO_SOURCES = Path("/usr/share/gocode/src/cloud.google.com/go/pubsub/pstest")
DEFAULT_TOPIC = "projects/local/topics/oasis-events"


class NoEmulator(RuntimeError):
    """Neither PUBSUB_EMULATOR_HOST nor the tools to build pstest are there."""


def build() -> Path | None:
    """The pstest binary, built if it is missing or older than its source; None without Go."""
    if BINARY.exists() and BINARY.stat().st_mtime >= SOURCE.stat().st_mtime:
        return BINARY
    go = shutil.which("go")
    if go is None or not GO_SOURCES.exists():
        return None
    gopath = ROOT / ".build" / "gopath"
    gopath.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "GO111MODULE": "off",
        "GOPATH": f"{gopath}:/usr/share/gocode",
        "GOCACHE": str(ROOT / ".build" / "gocache"),
    }
    subprocess.run([go, "build", "-o", str(BINARY), str(SOURCE)], env=env, check=True)
    return BINARY


@dataclass
class Emulator:
    host: str
    process: subprocess.Popen[str] | None = None

    def stop(self) -> None:
        if self.process is not None and self.process.stdin is not None:
            self.process.stdin.close()  # pstest serves until its stdin closes
            self.process.wait(timeout=10)


def start() -> Emulator:
    """The emulator to use: the one PUBSUB_EMULATOR_HOST names, else pstest started here."""
    if os.environ.get("PUBSUB_EMULATOR_HOST"):
        return Emulator(os.environ["PUBSUB_EMULATOR_HOST"])
    binary = build()
    if binary is None:
        raise NoEmulator(
            "no Pub/Sub emulator: set PUBSUB_EMULATOR_HOST, or install golang-go and "
            "golang-google-cloud-dev (./dev serve --pubsub does, as root with apt)"
        )
    process = subprocess.Popen(
        [str(binary)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    return Emulator(process.stdout.readline().strip(), process)
