"""Loading worlds: the default world's facts, and one clear line for each kind of mistake."""

from __future__ import annotations

import shutil

import pytest

from maillab.lab.world import WorldError, default_world_path, load_world


def test_default_world_matches_the_spec():
    w = load_world()
    assert w.domains["syr.edu"].mx == ((10, "smtp1.syr.edu"), (20, "smtp2.syr.edu"))
    assert w.domains["luxsci.net"].mx == ((10, "mx1.luxsci.net"), (20, "mx2.luxsci.net"), (30, "mx3.luxsci.net"))
    assert w.hosts["mail.cheap-pills.biz"].address == "127.0.0.66"
    assert [u.address for u in w.domains["gmail.com"].users] == ["tim.jorgensen@gmail.com",
                                                                 "michael.fudge@gmail.com"]
    assert dict(w.domains["syr.edu"].aliases) == {"postmaster": "mafudge", "abuse": "mafudge"}
    assert {"dnsbl.lab.", "in-addr.arpa."} <= set(w.zones)
    assert [d.name for d in w.mailbox_domains("smtp1.syr.edu")] == ["syr.edu"]
    assert w.mailbox_domains("smtp2.syr.edu") == []


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


def test_mx_pointing_at_an_unknown_host(world):
    zone = world / "gmail.com.zone"
    edit(zone, "MX  10 mx.gmail.com.", "MX  10 mx9.gmail.com.")
    with pytest.raises(WorldError) as e:
        load_world(world)
    assert str(e.value) == (f"{zone}:{line_of(zone, 'mx9.gmail.com.')}: "
                            "MX mx9.gmail.com is not a [[host]] of lab.toml")


def test_bad_zone_syntax_names_file_and_line(world):
    zone = world / "northpole.org.zone"
    edit(zone, "mail     IN A   127.0.0.3", "mail     IN A   127.0.0.300")
    with pytest.raises(WorldError) as e:
        load_world(world)
    assert str(e.value).startswith(f"{zone}:{line_of(zone, '127.0.0.300')}: ")
    assert "127.0.0.300" in str(e.value)


def test_duplicate_user(world):
    toml = world / "lab.toml"
    edit(toml, '{ name = "relstad", display = "Ron Elstad" },',
         '{ name = "relstad", display = "Ron Elstad" },\n  { name = "relstad" },')
    with pytest.raises(WorldError) as e:
        load_world(world)
    assert str(e.value) == f"{toml}:{line_of(toml, 'relstad')}: duplicate user relstad@syr.edu"


def test_address_reused_by_two_hosts(world):
    toml = world / "lab.toml"
    edit(toml, 'address = "127.0.0.4"', 'address = "127.0.0.3"')
    with pytest.raises(WorldError) as e:
        load_world(world)
    assert "address 127.0.0.3 is reused by mail.northpole.org and mx.gmail.com" in str(e.value)
    assert str(e.value).startswith(f"{toml}:")


def test_alias_reusing_a_user_address(world):
    toml = world / "lab.toml"
    edit(toml, 'aliases = { postmaster = "mafudge", abuse = "mafudge" }',
         'aliases = { relstad = "mafudge" }')
    with pytest.raises(WorldError, match="alias relstad@syr.edu reuses the address of a user"):
        load_world(world)


def test_a_record_disagreeing_with_lab_toml(world):
    zone = world / "gmail.com.zone"
    edit(zone, "mx       IN A   127.0.0.4", "mx       IN A   127.0.0.40")
    with pytest.raises(WorldError, match=r"A record of mx.gmail.com is 127.0.0.40, but lab.toml gives 127.0.0.4"):
        load_world(world)


def test_toml_syntax_error_and_missing_folder(world, tmp_path):
    (world / "lab.toml").write_text("[lab\nname = 1\n")
    with pytest.raises(WorldError, match=r"lab.toml: .*line 1"):
        load_world(world)
    with pytest.raises(WorldError, match="no such file"):
        load_world(tmp_path / "nowhere")


def test_auth_over_plaintext_is_off_by_default_and_a_world_may_allow_it(world):
    assert load_world().auth_over_plaintext is False          # the contract: logins only after TLS
    edit(world / "lab.toml", "auth_over_plaintext = false", "auth_over_plaintext = true")
    assert load_world(world).auth_over_plaintext is True
    edit(world / "lab.toml", "auth_over_plaintext = true", 'auth_over_plaintext = "yes"')
    with pytest.raises(WorldError) as e:
        load_world(world)
    assert "[lab] auth_over_plaintext = 'yes': expected true or false" in str(e.value)
