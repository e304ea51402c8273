"""`maillab serve` as a user runs it: endpoints, maillog, clean stop, crash safety, errors."""

from __future__ import annotations

import os
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import uuid

import pytest

from conftest import maildir_messages, wait_for


def run_cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "maillab", *args], capture_output=True, text=True,
                          timeout=60, input=stdin)


def test_serve_prints_endpoints_then_the_maillog_and_stops_cleanly(served, tmp_path):
    lab = served()
    out = lab.output()
    listening = [line for line in out.splitlines() if line.startswith("listening")]
    assert any("dns" in line and f"127.0.0.1:{lab.ports.dns}" in line for line in listening)
    assert any("smtp1.syr.edu" in line and f"127.0.0.1:{lab.ports.smtp}" in line for line in listening)
    assert any("submission" in line and f"127.0.0.3:{lab.ports.submission}" in line for line in listening)
    assert len([line for line in listening if " smtp " in f" {line} "]) == 8   # one MTA per host
    with smtplib.SMTP("127.0.0.1", lab.ports.smtp, timeout=10) as s:
        s.sendmail("santa@northpole.org", ["mafudge@syr.edu"], b"Subject: logged\r\n\r\nx\r\n")
    assert wait_for(lambda: "status=sent (delivered to maildir)" in lab.output())
    line = next(x for x in lab.output().splitlines() if "status=sent (delivered to maildir)" in x)
    # timestamp host program[pid]: QUEUEID: ...
    assert f" smtp1.syr.edu maillab/local[{lab.proc.pid}]: " in line and "to=<mafudge@syr.edu>" in line
    assert "status=sent" in (lab.state / "log" / "maillog").read_text()
    assert lab.stop() == 0
    assert "daemon stopped, queue kept" in lab.output()


def test_sigint_stops_it_too(served):
    lab = served()
    assert lab.kill(signal.SIGINT) == 0


def test_kill_9_right_after_250_loses_nothing(served, tmp_path):
    """Burst of messages over 10 sessions, SIGKILL right after the last 250, restart: all arrive."""
    state = tmp_path / "crash-state"
    lab = served(state)
    tag = uuid.uuid4().hex[:8]
    accepted: list[str] = []
    lock = threading.Lock()

    def sender(worker: int) -> None:
        for i in range(20):
            subject = f"{tag}-{worker}-{i}"
            # through the northpole relay, so that many are in flight on two hosts at the kill
            host = "127.0.0.3" if i % 2 else "127.0.0.1"
            with smtplib.SMTP(host, lab.ports.smtp, timeout=20) as s:
                s.sendmail("santa@northpole.org", ["mafudge@syr.edu"],
                           f"Subject: {subject}\r\n\r\n{('x' * 70 + chr(13) + chr(10)) * 30}".encode()) if host == "127.0.0.1" else \
                    s.sendmail("mafudge@syr.edu", ["santa@northpole.org"],
                               f"Subject: {subject}\r\n\r\n{('y' * 70 + chr(13) + chr(10)) * 30}".encode())
            with lock:
                accepted.append(subject)

    threads = [threading.Thread(target=sender, args=(w,)) for w in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    lab.kill(signal.SIGKILL)
    left = sum(1 for _ in (state / "spool").rglob("*.msg"))
    assert len(accepted) == 200

    def subjects() -> list[str]:
        return [m["Subject"] for a in ("mafudge@syr.edu", "santa@northpole.org")
                for m in maildir_messages(state, a)]

    again = served(state)
    wait_for(lambda: len(set(subjects())) >= 200, timeout=60,
             what=lambda: f"200 arrivals: {len(set(subjects()))} arrived; {left} were spooled at the kill")
    assert set(subjects()) == set(accepted)
    assert wait_for(lambda: not any((state / "spool").rglob("*.msg")), timeout=20)
    # exactly once: a copy delivered before the kill is found by its ,I= tag on replay
    assert len(subjects()) == 200, f"{len(subjects()) - 200} duplicates; {left} were spooled at the kill"
    again.stop()


def test_two_labs_on_one_state_folder_are_refused(served, tmp_path):
    lab = served()
    result = run_cli("serve", "--state", str(lab.state), "--port-offset", str(lab.ports.offset + 7))
    assert result.returncode == 1
    assert result.stderr.strip() == f"maillab: {lab.state}: another maillab is running on this state folder"


def test_busy_port_is_one_clear_line(tmp_path):
    from conftest import free_offset
    offset = free_offset()
    with socket.socket() as s:
        s.bind(("127.0.0.4", 2525 + offset))
        s.listen()
        result = run_cli("serve", "--state", str(tmp_path / "s"), "--port-offset", str(offset))
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    line = result.stderr.strip()
    assert line.startswith(f"maillab: cannot listen for mx.gmail.com on 127.0.0.4:{2525 + offset}: "
                           "address already in use; process ")
    assert f"(pid {os.getpid()}) holds it" in line
    assert line.endswith("run beside it with --port-offset N (like --port-offset 10000)")


@pytest.mark.parametrize("args", [[], ["serve"], ["tui"], ["reset"]])
def test_every_command_has_help(args):
    result = run_cli(*args, "--help")
    assert result.returncode == 0
    assert "usage: maillab" in result.stdout


def test_bad_world_is_one_line_naming_file_and_line(tmp_path):
    world = tmp_path / "w"
    world.mkdir()
    (world / "lab.toml").write_text('[[host]]\nname = "mx.test"\naddress = "127.0.0.9"\n\n'
                                    '[[domain]]\nname = "test"\nzone = "test.zone"\n')
    (world / "test.zone").write_text("$ORIGIN test.\n$TTL 300\n@ IN SOA ns.test. h.test. 1 2 3 4 5\n"
                                     "@ IN MX 10 mx.test.\nmx IN AAAA not-an-address\n")
    result = run_cli("serve", "--world", str(world), "--state", str(tmp_path / "s"))
    assert result.returncode == 1
    err = result.stderr.strip()
    assert len(err.splitlines()) == 1
    assert err.startswith(f"maillab: {world / 'test.zone'}:5:")


def test_reset_deletes_the_state_folder(served, tmp_path):
    lab = served()
    lab.stop()
    assert run_cli("reset", "--state", str(lab.state)).returncode == 1   # no --yes, no terminal
    result = run_cli("reset", "--state", str(lab.state), "--yes")
    assert result.returncode == 0 and not lab.state.exists()


def test_reset_refuses_while_the_lab_runs(served):
    lab = served()
    result = run_cli("reset", "--state", str(lab.state), "--yes")
    assert result.returncode == 1 and "stop it first" in result.stderr
