"""The SQLite ledger (issue 7): location, durability settings, per-pair positions, intents before submission."""

from __future__ import annotations

import io
import json
import sqlite3
import sys
from pathlib import Path

import pytest

from pairtrade.config import ConfigError
from pairtrade.live.ledger import Ledger, StateStore, state_db_path, state_root
from pairtrade.live.state import OpenTrade, PendingOrder, TraderState


def _fill(cid: str, sym: str, qty: float, price: float, cum: float) -> dict:
    return {"client_order_id": cid, "symbol": sym, "qty": qty, "price": price, "fee": 0.0, "cum_qty": cum,
            "bar_time": "2025-12-15 14:30:00+00:00"}


def test_state_location_follows_the_xdg_base_directory_default(tmp_path):
    # XDG Base Directory Specification: $XDG_STATE_HOME defaults to $HOME/.local/state
    home = Path.home()
    assert state_root({}) == home / ".local" / "state" / "pairtrade"
    assert state_root({"XDG_STATE_HOME": str(tmp_path)}) == tmp_path / "pairtrade"
    assert state_root({"PAIRTRADE_STATE_DIR": str(tmp_path / "s"), "XDG_STATE_HOME": "/x"}) == tmp_path / "s"
    assert state_db_path("PA123", "live", env={}) == home / ".local/state/pairtrade/PA123/live.sqlite"
    assert state_db_path("local", "paper", state_dir=tmp_path) == tmp_path / "paper.sqlite"
    with pytest.raises(ValueError, match="mode"):
        state_db_path("PA1", "real", env={})
    with pytest.raises(ValueError, match="account"):
        state_db_path("../etc", "paper", env={})


def test_ledger_uses_wal_and_full_sync_and_survives_reopening(tmp_path):
    led = Ledger(tmp_path / "paper.sqlite", "GS-MS")
    st = led.load()
    assert (st.qty_y, st.qty_x, st.pending) == (0.0, 0.0, [])
    st.kernel_state = [1.0, 11.0, -56.0, 891.2, 179.3, 0.0, 500.0, 1.0]
    st.open_trade = OpenTrade(entry_time="2025-12-15 14:30:00+00:00", side=1, qty_y=11, qty_x=-56, cost_y=9803.2)
    st.group = {"id": 3, "purpose": "entry_long", "target_y": 11.0, "target_x": -56.0, "entering": True}
    st.order_seq = 7
    p = PendingOrder("r1-GS-MS-y7", "GS", 11.0, status="new", group=3, purpose="entry_long", attempts=2)
    led.save(st, orders=[p], fills=[_fill("r1-GS-MS-y7", "GS", 11.0, 891.2, 11.0)])
    led.close()
    # an independent connection sees what was committed, in WAL mode
    con = sqlite3.connect(tmp_path / "paper.sqlite")
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert con.execute("SELECT status, qty FROM orders").fetchall() == [("new", 11.0)]
    con.close()
    again = Ledger(tmp_path / "paper.sqlite", "GS-MS")
    assert again._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    st2 = again.load()
    assert st2.kernel_state == st.kernel_state and st2.order_seq == 7 and st2.group == st.group
    assert st2.open_trade.cost_y == 9803.2 and st2.open_trade.entry_z != st2.open_trade.entry_z  # NaN kept
    assert (st2.qty_y, st2.qty_x) == (11.0, 0.0)  # from the fills
    assert [(o.client_order_id, o.status, o.attempts, o.group) for o in st2.pending] == [("r1-GS-MS-y7", "new", 2, 3)]


def test_a_fill_seen_twice_is_recorded_once(tmp_path):
    led = Ledger(tmp_path / "l.sqlite", "GS-MS")
    st = TraderState("GS-MS")
    fills = [_fill("a", "GS", 4.0, 10.0, 4.0), _fill("a", "GS", 6.0, 11.0, 10.0), _fill("b", "MS", -3.0, 5.0, -3.0)]
    led.save(st, fills=fills)
    led.save(st, fills=fills[1:])  # the same increments again (stream and poll, or after a restart)
    assert len(led.fills()) == 3
    assert led.positions() == {"GS": 10.0, "MS": -3.0}


def test_pairs_sharing_a_symbol_keep_separate_positions(tmp_path):
    a = Ledger(tmp_path / "l.sqlite", "GS-MS")
    b = Ledger(tmp_path / "l.sqlite", "JPM-GS")  # a second process on the same file
    a.save(TraderState("GS-MS"), fills=[_fill("r-GS-MS-y1", "GS", 10.0, 1, 10.0),
                                        _fill("r-GS-MS-x2", "MS", -50, 1, -50)])
    b.save(TraderState("JPM-GS"), fills=[_fill("r-JPM-GS-y1", "JPM", 7.0, 1, 7.0),
                                         _fill("r-JPM-GS-x2", "GS", -4, 1, -4)])
    assert a.positions() == {"GS": 10.0, "MS": -50.0}
    assert b.positions() == {"JPM": 7.0, "GS": -4.0}
    assert a.positions(None) == {"GS": 6.0, "MS": -50.0, "JPM": 7.0}
    assert a.pair_positions() == {"GS-MS": {"GS": 10.0, "MS": -50.0}, "JPM-GS": {"JPM": 7.0, "GS": -4.0}}
    assert b.load().qty_x == -4.0 and a.load().qty_y == 10.0
    assert a.has_order("r-JPM-GS-x2") is False  # fills alone do not make an order row
    b.save(TraderState("JPM-GS"), orders=[PendingOrder("r-JPM-GS-y3", "JPM", 1.0)])
    assert a.has_order("r-JPM-GS-y3") and [o.client_order_id for o in a.orders(None)] == ["r-JPM-GS-y3"]


def test_ledger_belongs_to_one_account(tmp_path):
    led = Ledger(tmp_path / "l.sqlite", "GS-MS")
    led.bind_account("PA111")
    led.bind_account("PA111")
    with pytest.raises(ConfigError, match="PA111.*PA222") as e:
        led.bind_account("PA222")
    assert str(tmp_path / "l.sqlite") in str(e.value)


def test_a_file_that_is_not_a_ledger_is_named(tmp_path):
    bad = tmp_path / "paper.sqlite"
    bad.write_bytes(b"this is not a database" * 100)
    with pytest.raises(ValueError, match="paper.sqlite.*not a pairtrade ledger"):
        StateStore(tmp_path, "GS-MS")


def test_order_intent_is_in_the_ledger_before_the_venue_sees_it(tmp_path):
    """Persist, then act: at the moment of each submit the order's row already exists (read independently)."""
    from pairtrade.broker.alpaca import AlpacaBroker
    from pairtrade.config import PairSpec, StrategyParams
    from pairtrade.data.bars import load_bars
    from pairtrade.exchange import LocalExchange
    from pairtrade.live.trader import LegSafety, Trader
    from tests.conftest import EQUITIES_5MIN, shared_file

    seen: list[tuple] = []

    class Peeking(AlpacaBroker):
        def submit_market(self, symbol, qty, client_order_id):
            with sqlite3.connect(tmp_path / "paper.sqlite") as con:
                seen.append(con.execute("SELECT status, symbol, qty FROM orders WHERE client_order_id=?",
                                        (client_order_id,)).fetchone())
            return super().submit_market(symbol, qty, client_order_id)

    bs = load_bars(shared_file(EQUITIES_5MIN), symbols=["GS", "MS"])
    params = StrategyParams(entry_z=1.0, exit_z=0.2, stop_z=4.0, zscore_window_bars=30, adf_window_bars=60,
                            hurst_window_bars=30, warmup_bars=60)
    with LocalExchange(bs, start="2025-12-15T14:30:00", key="k", secret="s", rate_limit_per_min=None) as ex:
        broker = Peeking("k", "s", trading_url=ex.base_url, data_url=ex.base_url)
        t = Trader(PairSpec(y="GS", x="MS"), params, "5Min", broker, StateStore(tmp_path, "GS-MS"), lambda m: None,
                   safety=LegSafety(submit_retry_secs=()))
        t.start()
        for _ in range(6):
            pub = ex.advance()
            t.on_bars(pub.timestamp, {s: {"c": b["close"]} for s, b in pub.bars.items()})
        n_orders = len(ex.account_snapshot()["orders"])
    assert n_orders >= 2 and len(seen) == n_orders
    assert all(row is not None and row[0] == "intent" for row in seen)


def test_trader_main_keeps_its_ledger_at_the_stable_location(tmp_path, monkeypatch, capsys):
    """Without --state-dir the ledger is $PAIRTRADE_STATE_DIR/local/paper.sqlite; the export is written at stop."""
    from pairtrade.config import SCHEMA_VERSION, CostModel, ParamsFile, StrategyParams, atomic_write_json
    from pairtrade.data.bars import load_bars
    from pairtrade.exchange import LocalExchange
    from pairtrade.live import trader
    from pairtrade.live.secrets import LOCAL_KEY, LOCAL_SECRET
    from tests.conftest import EQUITIES_5MIN, shared_file

    params = StrategyParams(entry_z=1.0, exit_z=0.2, stop_z=4.0, zscore_window_bars=30, adf_window_bars=60,
                            hurst_window_bars=30, warmup_bars=60)
    pf = ParamsFile(schema_version=SCHEMA_VERSION, generated_at="2026-01-01T00:00:00+00:00", bar_size="5Min",
                    data={"source": "t", "start": "2025-12-01T14:30:00+00:00", "end": "2025-12-12T20:55:00+00:00"},
                    costs=CostModel(), pairs={"GS-MS": {"y": "GS", "x": "MS", "tradable": True, "params": params}})
    atomic_write_json(tmp_path / "p.json", pf)
    for k in ("APCA_API_KEY_ID", "APCA_API_SECRET_KEY", "ALPACA_API_KEY", "ALPACA_SECRET_KEY", "TELEGRAM_BOT_TOKEN"):
        monkeypatch.delenv(k, raising=False)
    monkeypatch.setenv("PAIRTRADE_STATE_DIR", str(tmp_path / "home"))
    bs = load_bars(shared_file(EQUITIES_5MIN), symbols=["GS", "MS"])
    with LocalExchange(bs, start="2025-12-15T14:30:00", key=LOCAL_KEY, secret=LOCAL_SECRET,
                       rate_limit_per_min=None) as ex:
        monkeypatch.setattr(sys, "stdin", io.StringIO('{"type": "stop"}\n'))
        rc = trader.main(["GS", "MS", "--params", str(tmp_path / "p.json"), "--trading-url", ex.base_url])
    assert rc == 0
    db = tmp_path / "home" / "local" / "paper.sqlite"
    assert db.exists() and (tmp_path / "home" / "local" / "GS-MS.json").exists()
    out = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert out[0]["type"] == "ready" and out[0]["ledger"] == str(db)
    assert Ledger(db, "GS-MS").account().startswith("PALOCAL")
    # bad safety options are a clear error, exit 2
    assert trader.main(["GS", "MS", "--params", str(tmp_path / "p.json"), "--trading-url", "http://127.0.0.1:9",
                        "--stale-order-bars", "0"]) == 2
    assert "--stale-order-bars must be a whole number >= 1" in capsys.readouterr().err
