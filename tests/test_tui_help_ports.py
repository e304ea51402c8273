"""The panels' help names the lab's actual ports, at a port offset (not the default plan's)."""

from __future__ import annotations

from maillab.tui.forms import HelpScreen

from test_tui_support import running_app, until


async def test_panel_help_uses_the_offset_ports(tmp_path):
    async with running_app(tmp_path) as (app, pilot):
        ports = app.lab.ports
        assert ports.offset != 0
        await pilot.press("question_mark")
        await until(pilot, lambda: isinstance(app.screen, HelpScreen))
        sections = {part.split("\n", 1)[0]: part for part in app.screen.markdown.split("\n## ")}
        dialogues, dns, hosts = (next(text for head, text in sections.items() if head.endswith(f"· {title}"))
                                 for title in ("Dialogues", "DNS", "Hosts"))
        assert f"port 25's stand-in {ports.smtp}, submission {ports.submission}" in dialogues
        assert f"`telnet 127.0.0.1 {ports.smtp}`" in dialogues
        assert f"(127.0.0.1 port {ports.dns})" in dns and f"`dig @127.0.0.1 -p {ports.dns} syr.edu MX`" in dns
        said = " ".join(hosts.split())
        assert (f"(smtp {ports.smtp}; on a domain's mailbox host also submission {ports.submission}, "
                f"smtps {ports.smtps}, IMAP {ports.imap}/{ports.imaps} and POP3 {ports.pop3}/{ports.pop3s})") in said
        for default in ("2525", "2587", "1053"):
            assert default not in app.screen.markdown
