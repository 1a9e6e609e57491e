"""Argument samplers of TradingBot.

Symbols come from earlier results (a ticker looked up, a watchlist, a sector list) or the
stock table; an order's price is the one the stock table shows (what `get_stock_info` returned
when it was looked up), and its size fits the balance; withdrawals stay within the balance.
"""

from __future__ import annotations

from typing import Any

from graphs.synthesis.procedural.samplers_apps import login
from graphs.synthesis.procedural.scope import NoArgs, Scope, company_symbols, sectors

_TB = "TradingBot"


# ---------------------------------------------------------------- TradingBot


def _symbol(s: Scope, ok: Any = None) -> str:
    stocks = s.inst(_TB).stocks
    ok = ok or (lambda v: v in stocks)
    flowed = s.flowed("symbol", ok)
    return flowed if flowed is not None else s.pick([k for k in stocks if ok(k)], "stock")


def trading_login(s: Scope) -> dict[str, Any]:
    user, password = login(s)
    return {"username": user, "password": password}


def trading_logout(s: Scope) -> dict[str, Any]:
    return {}


def trading_get_login_status(s: Scope) -> dict[str, Any]:
    return {}


def get_current_time(s: Scope) -> dict[str, Any]:
    return {}


def get_account_info(s: Scope) -> dict[str, Any]:
    return {}


def get_watchlist(s: Scope) -> dict[str, Any]:
    return {}


def get_order_history(s: Scope) -> dict[str, Any]:
    return {}


def get_transaction_history(s: Scope) -> dict[str, Any]:
    if s.chance(0.5):
        return {}
    return {
        "start_date": "2024-09-01",
        "end_date": s.pick(("2024-09-02", "2024-09-30", "2024-12-31")),
    }


def get_symbol_by_name(s: Scope) -> dict[str, Any]:
    return {"name": s.pick(list(company_symbols()))}


def get_available_stocks(s: Scope) -> dict[str, Any]:
    return {"sector": s.pick(list(sectors()))}


def get_stock_info(s: Scope) -> dict[str, Any]:
    return {"symbol": _symbol(s)}


def add_to_watchlist(s: Scope) -> dict[str, Any]:
    watch = set(s.inst(_TB).watch_list)
    stocks = s.inst(_TB).stocks
    return {"stock": _symbol(s, lambda v: v in stocks and v not in watch)}


def remove_stock_from_watchlist(s: Scope) -> dict[str, Any]:
    watch = list(s.inst(_TB).watch_list)
    flowed = s.flowed("symbol", lambda v: v in watch)
    return {"symbol": flowed if flowed is not None else s.pick(watch, "watched stock")}


def _symbols(s: Scope) -> list[str]:
    stocks = s.inst(_TB).stocks
    flowed = [v for v in s.flow.values("symbol") if v in stocks][:5]
    if len(flowed) >= 2:
        return flowed
    return s.rng.sample(list(stocks), min(len(stocks), s.rng.randint(2, 4)))


def filter_stocks_by_price(s: Scope) -> dict[str, Any]:
    symbols = _symbols(s)
    prices = sorted(s.inst(_TB).stocks[x]["price"] for x in symbols)
    lo = float(int(prices[0] // 10 * 10))
    return {
        "stocks": symbols,
        "min_price": lo,
        "max_price": float(int(prices[-1] // 10 * 10 + s.pick((10, 50, 100)))),
    }


def notify_price_change(s: Scope) -> dict[str, Any]:
    return {"stocks": _symbols(s), "threshold": float(s.pick((0.5, 1, 1.5, 2, 2.5, 3, 4, 5, 7.5, 10)))}


def place_order(s: Scope) -> dict[str, Any]:
    api = s.inst(_TB)
    looked_up = [
        c.arguments["symbol"]
        for c in reversed(s.flow.calls)
        if c.name == "get_stock_info" and c.arguments.get("symbol") in api.stocks
    ]
    symbol = looked_up[0] if looked_up else _symbol(s)
    price = float(api.stocks[symbol]["price"])  # what get_stock_info shows for it
    order_type = "Sell" if s.chance(0.25) else "Buy"
    balance = float(api.account_info.get("balance", 0))
    most = int(balance // price) if order_type == "Buy" else 100
    if most < 1:
        raise NoArgs("balance too low to buy one share")
    amount = s.rng.randint(1, min(most, 100))
    return {"order_type": order_type, "symbol": symbol, "price": price, "amount": amount}


def _order_id(s: Scope, ok: Any) -> int:
    orders = s.inst(_TB).orders
    ids = [k for k, o in orders.items() if isinstance(k, int) and isinstance(o, dict) and ok(o)]
    flowed = s.flowed("order_id", lambda v: v in ids)
    return flowed if flowed is not None else s.pick(ids, "order")


def get_order_details(s: Scope) -> dict[str, Any]:
    return {"order_id": _order_id(s, lambda o: True)}


def cancel_order(s: Scope) -> dict[str, Any]:
    return {"order_id": _order_id(s, lambda o: o.get("status") != "Completed")}


def fund_account(s: Scope) -> dict[str, Any]:
    flowed = s.flowed_into("fund_account", "amount", ok=lambda v: 0 < v < 1e6)
    return {
        "amount": flowed if flowed is not None else float(s.rng.randrange(4, 200) * 25)
    }


def withdraw_funds(s: Scope) -> dict[str, Any]:
    balance = float(s.inst(_TB).account_info.get("balance", 0))
    options = [a for a in (100, 250, 500, 1000, 2000) if a <= balance]
    return {"amount": float(s.pick(options, "amount within the balance"))}


TRADING_SAMPLERS = {
    f.__name__: f
    for f in (
        trading_login,
        trading_logout,
        trading_get_login_status,
        get_current_time,
        get_account_info,
        get_watchlist,
        get_order_history,
        get_transaction_history,
        get_symbol_by_name,
        get_available_stocks,
        get_stock_info,
        add_to_watchlist,
        remove_stock_from_watchlist,
        filter_stocks_by_price,
        notify_price_change,
        place_order,
        get_order_details,
        cancel_order,
        fund_account,
        withdraw_funds,
    )
}
