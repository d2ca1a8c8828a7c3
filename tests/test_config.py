"""Configuration precedence (command line > environment > .env > defaults) and market validation."""
import pytest

from dashboard.config import load_settings, parse_market, parse_markets
from exchanges import EXCHANGES


@pytest.fixture
def env_file(tmp_path, monkeypatch):
    for key in ("MARKETS", "PORT", "STALE_AFTER_S", "SECRET_KEY", "SECRET", "COINBASE_WS_URL", "EXCHANGES",
                "ASYNC_MODE", "SPEED"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / ".env"
    path.write_text("PORT=6000\nSTALE_AFTER_S=7\nMARKETS=coinbase:ETH-USD\nSECRET=from-seed\n"
                    "COINBASE_WS_URL=ws://127.0.0.1:9/\n")
    return path


def test_defaults(tmp_path, monkeypatch):
    for key in ("MARKETS", "PORT", "SECRET_KEY", "SECRET", "EXCHANGES", "ASYNC_MODE"):
        monkeypatch.delenv(key, raising=False)
    settings = load_settings([], env_file=tmp_path / "missing.env")
    assert (settings.host, settings.port, settings.async_mode) == ("127.0.0.1", 5000, "eventlet")
    assert settings.markets == ["coinbase:BTC-USD", "binance:BTC-USDT", "binanceus:BTC-USD"]
    assert settings.ws_urls["binance"] == "wss://data-stream.binance.vision/stream"
    assert len(settings.secret_key) == 64 and settings.secret_generated  # generated (server.py logs it)


def test_dotenv_then_environment_then_command_line(env_file, monkeypatch):
    settings = load_settings([], env_file=env_file)
    assert (settings.port, settings.stale_after_s, settings.markets) == (6000, 7.0, ["coinbase:ETH-USD"])
    assert settings.secret_key == "from-seed" and settings.ws_urls["coinbase"] == "ws://127.0.0.1:9/"
    monkeypatch.setenv("PORT", "6001")
    monkeypatch.setenv("SECRET_KEY", "from-env")
    settings = load_settings([], env_file=env_file)
    assert (settings.port, settings.secret_key) == (6001, "from-env")
    settings = load_settings(["--port", "6002", "--markets", "binance:eth-btc", "--coinbase-ws-url", "ws://x/"],
                             env_file=env_file)
    assert (settings.port, settings.markets, settings.ws_urls["coinbase"]) == (6002, ["binance:ETH-BTC"], "ws://x/")


def test_an_exchange_can_be_turned_off(env_file):
    settings = load_settings(["--no-binanceus", "--markets", "coinbase:BTC-USD,binanceus:BTC-USD"],
                             env_file=env_file)
    assert settings.exchanges == sorted(set(EXCHANGES) - {"binanceus"}) and settings.markets == ["coinbase:BTC-USD"]


def test_bad_configuration_stops_with_a_reason(env_file):
    with pytest.raises(SystemExit, match="unknown exchange"):
        load_settings(["--markets", "nosuchexchange:BTC-USD"], env_file=env_file)
    with pytest.raises(SystemExit):
        load_settings(["--speed", "-1"], env_file=env_file)


@pytest.mark.parametrize("text, expected", [
    ("coinbase:BTC-USD", ("coinbase", "BTC-USD")),
    (" binance:btc-usdt", ("binance", "BTC-USDT")),
    ("binanceus:1INCH-USD", ("binanceus", "1INCH-USD")),
])
def test_markets_are_normalized(text, expected):
    assert parse_market(text) == expected


@pytest.mark.parametrize("text", ["coinbase", "coinbase:BTCUSD", "coinbase:BTC-", "x:BTC-USD", "coinbase:BTC-USD-X",
                                  "coinbase:" + "A" * 16 + "-USD", None, 7])
def test_bad_markets_are_refused(text):
    with pytest.raises(ValueError):
        parse_market(text)


def test_market_lists_drop_duplicates_and_blanks():
    assert parse_markets("coinbase:BTC-USD,,coinbase:btc-usd, binance:ETH-BTC") == ["coinbase:BTC-USD",
                                                                                  "binance:ETH-BTC"]


@pytest.fixture
def no_storage_keys(monkeypatch, tmp_path):
    for key in ("HISTORY_URL", "LISTINGS_DIR", "FAULTS"):
        monkeypatch.delenv(key, raising=False)
    return tmp_path / "missing.env"


def test_each_mode_keeps_its_own_history_and_listings(no_storage_keys):
    live = load_settings([], env_file=no_storage_keys)
    assert (live.mode, live.history_url, live.listings_dir) == ("live", "sqlite:///data/live/history.sqlite3",
                                                                "data/live/listings")
    replay = load_settings(["--replay"], env_file=no_storage_keys)
    assert (replay.mode, replay.history_url, replay.listings_dir) == ("replay", "sqlite:///data/replay/history.sqlite3",
                                                                      "data/replay/listings")
    from exchanges.simulator import DEFAULT_RECORDINGS
    assert load_settings(["--replay", str(DEFAULT_RECORDINGS[0])], env_file=no_storage_keys).mode == "replay"
    assert load_settings(["--replay", "--no-history"], env_file=no_storage_keys).history_url is None


@pytest.mark.parametrize("mode", [[], ["--replay"]])
def test_an_explicit_history_url_and_listings_dir_are_honoured_in_either_mode(no_storage_keys, monkeypatch, mode):
    settings = load_settings([*mode, "--history-url", "sqlite:////srv/h.sqlite3", "--listings-dir", "/srv/l"],
                             env_file=no_storage_keys)
    assert (settings.history_url, settings.listings_dir) == ("sqlite:////srv/h.sqlite3", "/srv/l")
    no_storage_keys.write_text("HISTORY_URL=sqlite:///from/dotenv.sqlite3\nLISTINGS_DIR=from/dotenv\n")
    settings = load_settings(mode, env_file=no_storage_keys)
    assert (settings.history_url, settings.listings_dir) == ("sqlite:///from/dotenv.sqlite3", "from/dotenv")
    monkeypatch.setenv("HISTORY_URL", "sqlite:////var/{mode}/h.sqlite3")  # {mode}: one setting, each mode its own
    monkeypatch.setenv("LISTINGS_DIR", "/var/{mode}/listings")
    settings = load_settings(mode, env_file=no_storage_keys)
    assert (settings.history_url, settings.listings_dir) == (f"sqlite:////var/{settings.mode}/h.sqlite3",
                                                             f"/var/{settings.mode}/listings")


@pytest.mark.parametrize("ws, rest", [("wss://wseea.okx.com:8443/ws/v5/public", "https://eea.okx.com"),
                                      ("wss://wsus.okx.com:8443/ws/v5/public", "https://us.okx.com")])
def test_an_okx_regional_entity_is_two_keys_in_dotenv(tmp_path, monkeypatch, ws, rest):
    """The README's keys for an EEA or US OKX account reach the OKX listener and its REST client, and a recording
    made on those hosts is still known as OKX's."""
    from exchanges.recording import exchange_for_url
    for key in ("OKX_WS_URL", "OKX_REST_URL"):
        monkeypatch.delenv(key, raising=False)
    path = tmp_path / ".env"
    path.write_text(f"OKX_WS_URL={ws}\nOKX_REST_URL={rest}\n")
    settings = load_settings([], env_file=path)
    assert (settings.ws_urls["okx"], settings.rest_urls["okx"]) == (ws, rest)
    assert settings.ws_urls["coinbase"] == EXCHANGES["coinbase"].url  # the other venues keep theirs
    assert exchange_for_url(ws) == exchange_for_url(rest) == "okx"


@pytest.mark.parametrize("args, env, says", [
    (["--port", "nope"], {}, "argument --port: invalid int value: 'nope'"),
    ([], {"MARKETS": "bad"}, "MARKETS: market must be EXCHANGE:BASE-QUOTE"),
    (["--fault", "coinbase:drop"], {}, "--fault needs --replay"),
    (["--speed", "-1"], {}, "argument --speed: speed must be a positive number, or 'max', not '-1'"),
    (["--speed", "nan"], {}, "argument --speed: speed must be a positive number, or 'max', not 'nan'"),
    (["--port", "99999"], {}, "PORT must be 1 to 65535, not 99999"),  # it wrapped to another port, unsaid
    ([], {"PORT": "abc"}, "PORT must be a whole number, not 'abc'"),  # a traceback before
    ([], {"STALE_AFTER_S": "soon"}, "STALE_AFTER_S must be a number, not 'soon'"),
    (["--replay", "/nonexistent/recording.jsonl"], {}, "--replay: no such file or folder: /nonexistent/recording.jsonl"),
    (["--bogus"], {}, "unrecognized arguments: --bogus")])
def test_server_misuse_is_one_line_and_exit_status_2(args, env, says):
    import os
    import subprocess
    import sys
    from conftest import ROOT
    result = subprocess.run([sys.executable, str(ROOT / "server.py"), *args], cwd=ROOT, capture_output=True,
                            text=True, env={**os.environ, **env}, timeout=60)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    [line] = result.stderr.splitlines()  # one line: not argparse's usage block of every option
    assert says in line


def test_a_port_in_use_is_refused_in_one_line_before_anything_starts():
    """eventlet's listen() shares a port (SO_REUSEPORT): a second server on a port in use started without a word, and
    the kernel split the browsers between the two (live and replay, say). It is refused now, before the local
    exchange or any feed starts."""
    import os
    import socket
    import subprocess
    import sys
    from conftest import ROOT
    taken = socket.socket()
    taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)  # as the first server did: sharing allowed
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        result = subprocess.run([sys.executable, str(ROOT / "server.py"), "--replay", "--port", str(port)], cwd=ROOT,
                                capture_output=True, text=True, env=dict(os.environ), timeout=60)
    finally:
        taken.close()
    assert result.returncode == 2
    [line] = result.stderr.splitlines()  # the only line: nothing was started before it
    assert line.startswith(f"server.py: error: cannot listen on 127.0.0.1:{port}: Address already in use")


def test_the_env_example_names_every_key_read_and_copied_as_it_is_changes_nothing(tmp_path):
    """The README says: copy .env.example to .env, it lists every key. So it names each key the server reads (the
    venues' endpoints were missing for four of seven), and its values are the defaults (its EXCHANGES named three
    venues of seven: copied, it turned four off)."""
    import re
    from conftest import ROOT
    from dashboard.config import env_key, rest_key
    example = (ROOT / ".env.example").read_text()
    named = set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, re.M))
    code = (ROOT / "dashboard" / "config.py").read_text() + (ROOT / "server.py").read_text()
    read = set(re.findall(r'pick\([^,]+, "([A-Z][A-Z0-9_]*)"', code)) | set(re.findall(
        r'(?:env|environ)\.get\("([A-Z][A-Z0-9_]*)"', code)) | {
        key(name) for name in EXCHANGES for key in (env_key, rest_key)}
    read -= {"SECRET", "DASHBOARD_TEST_SHUTDOWN_HANG"}  # SECRET_KEY's old name; the shutdown test's hook
    assert len(read) > 40 and read - named == set()
    empty = tmp_path / "empty.env"
    empty.write_text("")
    copied, bare = vars(load_settings([], env_file=ROOT / ".env.example")), vars(load_settings([], env_file=empty))
    assert {key: value for key, value in copied.items() if bare[key] != value} == {"secret_key": copied["secret_key"]}
