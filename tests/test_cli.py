"""The command lines: pyvrrpd -t verdicts and diagnostics, dumps and conversions."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from pyvrrpd.cli import configtest, ctl, daemon
from pyvrrpd.config.env import Environment
from pyvrrpd.config.load import load_config

ROOT = Path(__file__).resolve().parents[1]
CORPUS = ROOT.parent / "shared" / "corpus"
SAMPLES = CORPUS / "keepalived-samples"
ETC = sorted((ROOT / "etc").glob("*.conf"))
LO_ETH0 = Environment(interfaces=frozenset({"lo", "eth0"}))


def verdicts() -> list[tuple[str, int]]:
    tsv = CORPUS / "keepalived-samples.verdicts.tsv"
    if not tsv.exists():
        return []
    rows = [line.split("\t") for line in tsv.read_text().splitlines() if line.strip()]
    return [(name, int(code)) for name, code in rows]


@pytest.mark.skipif(not SAMPLES.exists(), reason="../shared/corpus is absent (a user's clone)")
@pytest.mark.parametrize(("name", "expected"), verdicts() or [("none", 0)])
def test_corpus_verdicts_match_keepalived(name: str, expected: int) -> None:
    with open(os.devnull, "w") as devnull:
        code, result = configtest.check(str(SAMPLES / name), "none", env=LO_ETH0, out=devnull)
    assert code == expected
    if expected == 5:
        assert result is not None and result.errors
        for d in result.errors:
            assert d.loc is not None and d.loc.line > 0


def test_cli_config_test_reports_file_line_and_exit_code(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(
        "vrrp_instance VI_1 {\n  interface lo\n  virtual_router_id 300\n"
        "  priorty 100\n  virtual_ipaddress {\n    10.1.1.1\n  }\n}\n"
    )
    res = subprocess.run(
        [sys.executable, "-m", "pyvrrpd.cli.daemon", "-t", "-f", str(conf)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert res.returncode == 5
    assert f"{conf}:3: error:" in res.stderr
    assert f"{conf}:4: error: unknown keyword 'priorty'" in res.stderr
    assert "did you mean 'priority'?" in res.stderr


def test_cli_unreadable_config_exits_4(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon.main(["-t", "-f", str(tmp_path / "missing.conf")]) == 4
    assert "cannot read configuration" in capsys.readouterr().err


@pytest.mark.parametrize("path", ETC, ids=[p.name for p in ETC])
def test_shipped_examples_are_valid(path: Path) -> None:
    result = load_config(path, config_id="x", env=LO_ETH0)
    assert result.errors == ()


@pytest.mark.parametrize("path", ETC, ids=[p.name for p in ETC])
def test_convert_round_trip_same_json(
    path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert ctl.main(["config", "dump", "--format", "json", "-f", str(path)]) == 0
    original = json.loads(capsys.readouterr().out)
    yml = tmp_path / "c.yaml"
    assert ctl.main(["convert", str(path), "--to", "yaml", "-o", str(yml)]) == 0
    capsys.readouterr()
    assert ctl.main(["config", "dump", "--format", "json", "-f", str(yml)]) == 0
    assert json.loads(capsys.readouterr().out) == original
    back = tmp_path / "c.conf"
    assert ctl.main(["convert", str(yml), "--to", "keepalived", "-o", str(back)]) == 0
    capsys.readouterr()
    assert ctl.main(["config", "dump", "--format", "json", "-f", str(back)]) == 0
    assert json.loads(capsys.readouterr().out) == original


def test_yaml_examples_match_keepalived_examples() -> None:
    for conf in ETC:
        yml = conf.with_suffix(".yaml")
        assert yml.exists(), f"{yml.name} missing"
        a = load_config(conf, config_id="x", env=LO_ETH0)
        b = load_config(yml, config_id="x", env=LO_ETH0)
        assert a.config == b.config


def test_signum_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon.main(["--signum", "RELOAD"]) == 0
    assert capsys.readouterr().out.strip() == "1"
    assert daemon.main(["-v"]) == 0
    assert "pyvrrpd" in capsys.readouterr().out


def test_keepalived_flags_are_accepted() -> None:
    args = daemon.build_parser().parse_args(
        [
            "-n",
            "-l",
            "-D",
            "-G",
            "-S",
            "3",
            "-P",
            "-i",
            "x",
            "-p",
            "/tmp/a",
            "-r",
            "/tmp/b",
            "-c",
            "/tmp/c",
            "-X",
            "-V",
            "-I",
            "-R",
            "-x",
            "-f",
            "k.conf",
        ]
    )
    assert args.config == "k.conf" and args.vrrp and args.config_id == "x"


def test_dump_conf_prints_model(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert daemon.main(["-t", "-d", "-f", str(ETC[0])]) in (0, 5)
    out = capsys.readouterr().out
    assert "vrrp_instance" in out


SCRIPTED = """vrrp_script chk {{
  script "{script}"
}}
vrrp_instance VI_1 {{
  interface lo
  virtual_router_id 5
  priority 100
  track_script {{
    chk weight -10
  }}
  virtual_ipaddress {{
    10.1.1.1
  }}
}}
"""


@pytest.mark.parametrize(
    ("globals_", "script", "expected"),
    [
        ("", "/bin/true", 6),  # a script that exists, no script security: violation
        ("", "/nonexistent/script", 0),  # keepalived only objects to scripts it finds
        ("global_defs {\n  enable_script_security\n  script_user root\n}\n", "/bin/true", 0),
    ],
)
def test_script_security_exit_codes(
    tmp_path: Path, globals_: str, script: str, expected: int
) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(globals_ + SCRIPTED.format(script=script))
    with open(os.devnull, "w") as devnull:
        code, _ = configtest.check(str(conf), "x", env=Environment(), out=devnull)
    assert code == expected
    if expected and __import__("shutil").which("keepalived"):
        res = subprocess.run(
            ["keepalived", "-t", "-f", str(conf)], capture_output=True, check=False
        )
        assert res.returncode == expected


def test_url_block_on_one_line_is_accepted_like_keepalived(tmp_path: Path) -> None:
    conf = tmp_path / "k.conf"
    conf.write_text(
        "virtual_server 10.0.0.1 80 {\n  lb_algo rr\n  lb_kind NAT\n  protocol TCP\n"
        "  real_server 10.0.0.2 80 {\n    HTTP_GET {\n      url { path / status_code 200 }\n"
        "    }\n  }\n}\n"
    )
    with open(os.devnull, "w") as devnull:
        code, result = configtest.check(str(conf), "x", env=Environment(), out=devnull)
    assert code == 0 and result is not None
    assert any(
        d.code == "extra-words" and d.loc is not None and d.loc.line == 7 for d in result.warnings
    )
    if __import__("shutil").which("keepalived"):
        res = subprocess.run(
            ["keepalived", "-t", "-f", str(conf)], capture_output=True, check=False
        )
        assert res.returncode == 0


def test_open_files_limit_is_raised_to_the_hard_limit() -> None:
    import resource
    import subprocess
    import sys

    code = (
        "import resource\n"
        "from pyvrrpd.runtime import raise_open_files_limit\n"
        "resource.setrlimit(resource.RLIMIT_NOFILE, (256, 4096))\n"
        "print(raise_open_files_limit(), resource.getrlimit(resource.RLIMIT_NOFILE)[0])\n"
    )
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < 4096:
        import pytest

        pytest.skip(f"hard limit {hard} below the test's 4096")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["4096", "4096"]
