"""Index constants of the arrays a strategy reads and writes: one decision = plain float64 vectors.

Why vectors of named indices and not objects: the same decision step runs inside the backtest's
compiled loop and from the live/paper runner's Python code, and numba passes flat arrays between
them with no conversion; a strategy written against these names runs unchanged in both. New
entries are only ever appended (old indices keep their meaning).

- ``view`` (``V_*``): what the strategy sees at one decision; the caller fills the market part,
  the pipeline fills regimes, trading state and limits.
- ``orders[:n, O_*]``: the caller's working orders as the strategy knows them (from acks and fill
  reports, never from the exchange's private state).
- ``out`` (``Q_*``): the strategy's wish: price and size per side (size 0 = no quote) and a reason.
- ``R_*``: reason codes (why a side quotes or not); strategies may use their own codes >= 100.
- Regime and trading-state codes shared by :mod:`~mm_core.strategy.regimes` and
  :mod:`~mm_core.strategy.risk`.
"""

from __future__ import annotations

# ---------------------------------------------------------------- view: decision inputs
V_FAIR = 0  # fair mid (any research model), price units
V_BID = 1  # best bid price (the strategy's delayed view)
V_ASK = 2  # best ask price
V_BID_QTY = 3
V_ASK_QTY = 4
V_POSITION = 5  # base units, as known from fill reports
V_SIGMA = 6  # recent realised vol, price units per sqrt(second)
V_DATA_AGE_MS = 7  # age of the book: time since the exchange state we hold was current
V_DATA_VALID = 8  # 1.0 valid, 0.0 invalid (disconnected, checksum mismatch, resync in progress)
V_LAT_REGIME = 9  # LAT_NORMAL / LAT_DEGRADED / LAT_UNSAFE
V_VOL_REGIME = 10  # VOL_LOW / VOL_NORMAL / VOL_HIGH
V_MARKET = 11  # MKT_* exchange market status
V_TRADING = 12  # TRADING_ACTIVE / TRADING_REDUCING / TRADING_HALTED
V_WIDTH_MULT = 13  # quote width multiplier of the current regimes
V_SIZE_MULT = 14  # quote size multiplier of the current regimes
V_MAX_POSITION = 15  # risk limit (base units, absolute)
V_TICK = 16  # price tick
V_LOT = 17  # quantity lot
V_EQUITY = 18  # mark-to-market equity since the start (quote currency, after fees)
V_MIN_QTY = 19  # venue minimum order size
V_MIN_COST = 20  # venue minimum order value (quote currency)
V_RATE_COUNTER = 21  # the strategy's own estimate of the venue's order rate counter
V_RATE_LIMIT = 22  # the venue's rate-counter threshold
V_OTHER_BID_QTY = 23  # size resting on the bid besides the working order (being cancelled, leftovers)
V_OTHER_ASK_QTY = 24  # the same on the ask: risk limits count it, it may still fill
N_V = 25

# ---------------------------------------------------------------- orders table columns
O_SIDE = 0  # +1 buy / -1 sell
O_PRICE = 1  # price the strategy believes the order rests at
O_LEAVES = 2  # remaining size as known from fill reports
O_AGE_MS = 3  # since it was sent
O_QUEUE_AHEAD = 4  # queue-model estimate of displayed size ahead of it (base units; -1 unknown)
O_ID = 5  # caller's id
O_STATE = 6  # OS_* below
O_TICK = 7  # O_PRICE in ticks (exact)
O_FILLED = 8  # filled so far as known from fill reports
N_O = 9

# order states as the strategy knows them
OS_PENDING_NEW = 0  # sent, no ack yet
OS_LIVE = 1  # acked, resting
OS_CANCEL_PENDING = 2  # cancel sent
OS_AMEND_PENDING = 3  # amend sent

# ---------------------------------------------------------------- out: the strategy's wish
Q_BID_PX = 0
Q_BID_QTY = 1
Q_ASK_PX = 2
Q_ASK_QTY = 3
Q_REASON = 4
N_Q = 5

# ---------------------------------------------------------------- reason codes
R_QUOTE = 0  # normal two-sided quoting
R_NO_BOOK = 1  # one side of the book empty
R_INVENTORY = 2  # a side dropped or sized down by inventory
R_STALE = 3  # data stale or invalid: no quotes
R_HALTED = 4  # trading state HALTED
R_REDUCING = 5  # only the inventory-reducing side
R_MARKET = 6  # market status does not allow quoting
R_SCRIPTED = 7  # a scripted schedule
R_WARMUP = 8  # not enough data yet

# ---------------------------------------------------------------- regime and state codes
LAT_NORMAL = 0
LAT_DEGRADED = 1
LAT_UNSAFE = 2
VOL_LOW = 0
VOL_NORMAL = 1
VOL_HIGH = 2
MKT_ONLINE = 0
MKT_POST_ONLY = 1
MKT_CANCEL_ONLY = 2
MKT_LIMIT_ONLY = 3
MKT_MAINTENANCE = 4  # maintenance or offline
TRADING_ACTIVE = 0
TRADING_REDUCING = 1
TRADING_HALTED = 2

MARKET_NAMES = {MKT_ONLINE: "online", MKT_POST_ONLY: "post_only", MKT_CANCEL_ONLY: "cancel_only",
                MKT_LIMIT_ONLY: "limit_only", MKT_MAINTENANCE: "maintenance"}
MARKET_CODES = {v: k for k, v in MARKET_NAMES.items()}
MARKET_CODES["offline"] = MKT_MAINTENANCE

# ---------------------------------------------------------------- transition log (int64 rows)
L_T = 0  # t_ns
L_KIND = 1  # which machine (K_*)
L_FROM = 2
L_TO = 3
L_CAUSE = 4  # code (the machine's own)
L_VALUE_E6 = 5  # the causing value x 1e6, rounded
N_L = 6

# machines (L_KIND); regimes.py and risk.py may append codes
K_LATENCY = 0
K_VOLATILITY = 1
K_MARKET = 2
K_TRADING = 3
K_RISK = 4  # a risk trigger that is not a trading-state change (e.g. a stale pull)
KIND_NAMES = {K_LATENCY: "latency", K_VOLATILITY: "volatility", K_MARKET: "market", K_TRADING: "trading",
              K_RISK: "risk"}
STATE_NAMES = {
    K_LATENCY: ("normal", "degraded", "unsafe"),
    K_VOLATILITY: ("low", "normal", "high"),
    K_MARKET: ("online", "post_only", "cancel_only", "limit_only", "maintenance"),
    K_TRADING: ("active", "reducing", "halted"),
}
