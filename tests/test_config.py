"""Config errors: each message names the file, the line and the key; secrets never printed."""

import time
from pathlib import Path

import pytest

from monitor.config import ConfigError, load_config

DATA = Path(__file__).parent / "data" / "config"


def problems(name: str) -> list[str]:
    with pytest.raises(ConfigError) as e:
        load_config(DATA / name)
    return [p.replace(str(DATA) + "/", "") for p in e.value.problems]


@pytest.mark.parametrize(("name", "expected"), [
    ("negative-timeout.yaml", "negative-timeout.yaml:4: icmp.timeout_s: Input should be greater than 0, got -1"),
    ("unknown-key.yaml", "unknown-key.yaml:5: icmp.ttl: unknown key"),
    ("wrong-type.yaml", "wrong-type.yaml:4: states.down_after: Input should be a valid integer, "
                        "unable to parse string as an integer, got 'two'"),
    ("missing-province.yaml", "missing-province.yaml:1: province: required key is missing"),
    ("bad-timezone.yaml", "bad-timezone.yaml:3: timezone: unknown timezone 'Asia/Hanoi_City' "
                          "(expected an IANA name such as Asia/Ho_Chi_Minh)"),
    ("sweep-does-not-fit.yaml", "sweep-does-not-fit.yaml:3: icmp: a sweep takes at least "
                                "(count-1)*echo_interval_s + timeout_s = 5 s, which does not fit in interval_s = 2 s"),
    ("bad-listen.yaml", "bad-listen.yaml:4: web.listen: expected HOST:PORT (e.g. 127.0.0.1:9750), got 'localhost'"),
    ("unset-env.yaml", "unset-env.yaml:6: snmp_profiles.v2.community: environment variable TSLCD_TEST_UNSET_VAR "
                       "is not set"),
    ("not-yaml.yaml", "not-yaml.yaml:4: not valid YAML: expected ',' or ']', but got '<stream end>'"),
    ("maintenance-backwards.yaml", "maintenance-backwards.yaml:4: maintenance[0]: end must be after start"),
])
def test_each_error_names_file_line_and_key(name: str, expected: str) -> None:
    assert problems(name) == [expected]


def test_every_problem_is_listed_not_just_the_first() -> None:
    got = problems("many-problems.yaml")
    assert len(got) == 4, got
    assert any(p.startswith("many-problems.yaml:4: icmp.timeout_s:") for p in got)
    assert any(p.startswith("many-problems.yaml:5: icmp.pps:") for p in got)
    assert any(p.startswith("many-problems.yaml:7: states.up_after:") for p in got)
    assert "many-problems.yaml:8: bogus: unknown key" in got


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="nope.yaml: no such file"):
        load_config(tmp_path / "nope.yaml")


def test_secrets_from_env_and_file_are_masked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TSLCD_TEST_COMMUNITY", "s3cr3t-community")
    (tmp_path / "auth.key").write_text("s3cr3t-authkey\n")
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text(
        "province: P\ninventory: inv.yaml\nsnmp_profiles:\n"
        "  a: {version: '2c', community: '${TSLCD_TEST_COMMUNITY}'}\n"
        "  b: {version: '3', user: u, auth_protocol: sha, auth_key_file: auth.key}\n")
    cfg = load_config(cfg_file)
    a, b = cfg.snmp_profiles["a"], cfg.snmp_profiles["b"]
    assert a.community is not None and a.community.get_secret_value() == "s3cr3t-community"
    assert b.auth_key is not None and b.auth_key.get_secret_value() == "s3cr3t-authkey"
    assert "s3cr3t" not in repr(cfg) and "s3cr3t" not in str(cfg.model_dump())
    assert cfg.inventory_path == tmp_path / "inv.yaml"


def test_a_bad_secret_value_is_not_echoed(tmp_path: Path) -> None:
    f = tmp_path / "c.yaml"
    f.write_text("province: P\ninventory: i.yaml\nsnmp_profiles:\n  a: {version: '2c', community: [hunter2]}\n")
    with pytest.raises(ConfigError) as e:
        load_config(f)
    assert "hunter2" not in str(e.value)
    assert "snmp_profiles.a.community" in str(e.value)


def test_shipped_config_is_valid() -> None:
    cfg = load_config(Path(__file__).parent.parent / "config.yaml")
    assert cfg.province == "Đắk Lắk" and cfg.timezone == "Asia/Ho_Chi_Minh"
    assert cfg.inventory_path.exists()


def _problems(tmp_path: Path, text: str) -> list[str]:
    (tmp_path / "config.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "config.yaml")
    return e.value.problems


def test_a_duplicate_key_is_an_error_not_the_last_one_winning(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "province: Đắk Lắk\ninventory: a.yaml\nicmp:\n  count: 3\n  count: 5\n")
    assert problems == [f"{tmp_path / 'config.yaml'}:5: count: duplicate key (also at line 4); give each key once"]


def test_a_yaml_alias_bomb_is_refused_quickly(tmp_path: Path) -> None:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 10)]
    started = time.monotonic()
    problems = _problems(tmp_path, "\n".join(lines) + "\nprovince: x\ninventory: a.yaml\n")
    assert problems == [f"{tmp_path / 'config.yaml'}:1: more than 100,000 values once aliases are expanded "
                        "(a YAML alias bomb?): refused"]
    assert time.monotonic() - started < 30  # a bound against a hang, not a benchmark: it takes milliseconds


def test_deep_nesting_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    problems = _problems(tmp_path, "province: x\ninventory: a.yaml\nweb: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert len(problems) == 1 and "nested" in problems[0] and problems[0].startswith(str(tmp_path / "config.yaml"))


@pytest.mark.parametrize(("content", "expected"), [
    (b"province: x\ninventory: a.yaml\nicmp:\n  count: " + b"9" * 5000 + b"\n",
     "config.yaml:4: a value cannot be read: Exceeds the limit (4300 digits) for integer string conversion"),
    (b"province: \xe0\xe1 x\ninventory: a.yaml\n", "config.yaml:1: not valid UTF-8 (save the file as UTF-8)"),
    (b'province: x\ninventory: "a\\0b.yaml"\n', "config.yaml:2: inventory: contains a NUL character"),
    (b'province: x\ninventory: a.yaml\nweb:\n  listen: "' + b"a" * 1_000_000 + b':9750"\n',
     "config.yaml:4: web.listen: 'aaaa"),
])
def test_hostile_config_files_give_file_line_errors_not_tracebacks(tmp_path: Path, content: bytes,
                                                                   expected: str) -> None:
    (tmp_path / "config.yaml").write_bytes(content)
    with pytest.raises(ConfigError) as e:
        load_config(tmp_path / "config.yaml")
    assert str(e.value).startswith(str(tmp_path / expected)), str(e.value)[:300]
    assert len(str(e.value)) < 1000  # a megabyte of host is not echoed back
