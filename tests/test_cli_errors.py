"""The errors and help a user sees from the real `maillab` command: one clear line each."""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
from importlib import metadata

import pytest

from maillab.cli import build_parser, main
from maillab.lab.world import default_world_path
from maillab.net.ports import Ports

from conftest import free_offset

TIMEOUT = 60    # a command that hangs fails the test, loudly


def run_maillab(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "maillab", *args], capture_output=True, text=True,
                          timeout=TIMEOUT, stdin=subprocess.DEVNULL)


@pytest.fixture
def world(tmp_path):
    folder = tmp_path / "world"
    shutil.copytree(default_world_path(), folder)
    return folder


def edit(path, old, new):
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new, 1))


def line_of(path, needle):
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if needle in line)


def test_port_clash_names_the_holder_and_the_way_out(tmp_path):
    offset = free_offset()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as squatter:
        squatter.bind(("127.0.0.1", Ports(offset).dns))
        done = run_maillab("serve", "--port-offset", str(offset), "--state", str(tmp_path / "state"))
    assert done.returncode == 1
    message = done.stderr.strip()
    assert "\n" not in message and "Traceback" not in message
    assert f"cannot listen for DNS on 127.0.0.1:{Ports(offset).dns}: address already in use" in message
    me = open(f"/proc/{os.getpid()}/comm").read().strip()
    assert f"process {me} (pid {os.getpid()}) holds it" in message
    assert "--port-offset N" in message


def test_a_setting_of_the_wrong_kind_is_one_line_naming_file_key_and_line(world, tmp_path, capsys):
    toml = world / "lab.toml"
    edit(toml, "message_size_limit = 10485760", 'message_size_limit = "ten megs"')
    assert main(["serve", "--world", str(world), "--state", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip()
    line = line_of(toml, "message_size_limit")
    assert err.startswith(f"maillab: {toml}:{line}: [lab] message_size_limit = 'ten megs': expected a whole number")
    assert "\n" not in err


def test_a_flag_that_is_not_true_or_false_is_refused(world, tmp_path, capsys):
    toml = world / "lab.toml"
    edit(toml, "reject_unknown_recipients = false", 'reject_unknown_recipients = "no"')
    assert main(["serve", "--world", str(world), "--state", str(tmp_path / "s")]) == 1
    line = line_of(toml, "reject_unknown_recipients =")
    assert capsys.readouterr().err.strip() == (
        f"maillab: {toml}:{line}: [lab] reject_unknown_recipients = 'no': expected true or false")


def test_zone_and_lab_toml_disagreeing_names_the_a_record_line(world, tmp_path, capsys):
    zone = world / "syr.edu.zone"
    edit(zone, "smtp2    IN A   127.0.0.2", "smtp2    IN A   127.0.0.9")
    assert main(["serve", "--world", str(world), "--state", str(tmp_path / "s")]) == 1
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"maillab: {zone}:{line_of(zone, '127.0.0.9')}: A record of smtp2.syr.edu is 127.0.0.9")
    assert "lab.toml gives 127.0.0.2" in err


def test_queue_of_a_missing_state_folder_says_so(tmp_path):
    missing = tmp_path / "nowhere"
    done = run_maillab("queue", "--state", str(missing))
    assert done.returncode == 1
    assert "empty" not in done.stdout + done.stderr
    assert done.stderr.strip() == (f"maillab: state folder {missing} does not exist: no lab runs or has run "
                                   f"there (start one with: maillab serve --state {missing})")


def test_version_comes_from_the_package_metadata():
    done = run_maillab("--version")
    assert done.returncode == 0
    assert done.stdout.strip() == f"maillab {metadata.version('maillab')}"


def test_help_shows_the_ports_with_the_offset(capsys):
    with pytest.raises(SystemExit) as stop:
        main(["serve", "--port-offset", "100", "--help"])
    assert stop.value.code == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "DNS 1153, SMTP 2625, IMAP 1243, POP3 1210" in text
    with pytest.raises(SystemExit):
        main(["--help", "--port-offset=7"])
    assert "telnet localhost 2532" in " ".join(capsys.readouterr().out.split())


def _commands() -> list[list[str]]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [[]] + [[name] for name in sub.choices]


def test_every_command_has_help():
    commands = _commands()
    assert {"tui", "serve", "reset", "queue", "hosts", "clock", "dns"} <= {c[0] for c in commands if c}
    for command in commands:
        done = run_maillab(*command, "--help")
        assert done.returncode == 0, (command, done.stderr)
        assert done.stdout.startswith(f"usage: maillab {' '.join(command)}".rstrip()), command
        assert done.stderr == ""
