"""Per-user rule memberships and trigger state, and the triggers' event-time logic.

Pure functions of ``(signals, event or watermark) -> outputs``; no clock is read.
Deadlines are event times; they fire when the stream's watermark passes them
(:meth:`Signals.fire`), so replaying history and streaming live agree.

The cart (``cart_abandon``): each ``add_to_cart`` adds an item and moves the
cart's deadline to that event's time plus the timeout. A purchase at or before
the deadline clears the items added up to it; one after the deadline finds the
cart already abandoned. An ``add_to_cart`` after the deadline starts a new cart.

>>> from app.core.events.decode import ClickEvent
>>> from app.core.rules.rulebook import TriggerConfig
>>> cfg, signals = TriggerConfig(cart_abandon_s=1800), Signals()
>>> signals.on_event(ClickEvent("u1", "add_to_cart", 1000.0, page="/p/1", value=20.0), cfg, (), None)
>>> signals.next_due(cfg)
2800.0
>>> signals.fire("u1", watermark=2800.0, cfg=cfg, emitted_at="-")  # not past the deadline yet
[]
>>> [(t["trigger"], t["ts"], t["details"]["value"]) for t in signals.fire("u1", 2800.5, cfg, "-")]
[('cart_abandon', '1970-01-01T00:46:40.000Z', 20.0)]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.core.events.decode import ClickEvent, format_ts

TRIGGER_SCHEMA = 1
CART = "cart_abandon"
# Pending deadlines per user (a state bound). A user runs up more only while their own
# events are far ahead of the watermark (a lagging partition); the earliest then fires
# early, with the content and id it would have had (see fire_overflow).
MAX_PENDING = 8
_PAGE_CHARS, _CATEGORY_CHARS = 64, 32  # of a cart item, kept in the user's state
WIN_BACK = "win_back"
_DAY = 86_400.0


class Signals:
    """What segstream remembers per user for rules and triggers.

    ``rules``: rule segments the user is in. ``armed``: trigger conditions that
    were true at the user's last decision (a condition fires when it becomes
    true). ``cart``: ``[ts, page, category, value]`` of the open cart's items.
    ``due``: pending deadlines ``[due_ts, trigger, details]``, at most
    ``MAX_PENDING`` after each batch. ``fired``: count per trigger, for deterministic ids.
    """

    __slots__ = ("rules", "armed", "cart", "due", "fired")

    def __init__(self) -> None:
        self.rules: list[str] = []
        self.armed: list[str] = []
        self.cart: list[list] = []
        self.due: list[list] = []
        self.fired: dict[str, int] = {}

    def to_record(self) -> list[Any]:
        return [self.rules, self.armed, self.cart, self.due, self.fired]

    @classmethod
    def from_record(cls, record: list[Any] | None) -> Signals:
        signals = cls()
        if record:
            signals.rules, signals.armed, signals.cart, signals.due, signals.fired = record
        return signals

    # -- per event ------------------------------------------------------------

    def on_event(self, event: ClickEvent, cfg: Any, cancellers: Sequence[tuple[str, str]], last_purchase: float | None) -> None:
        """Fold one applied event into the cart, win-back and not-followed-by deadlines.

        ``cancellers``: ``(trigger, event type)`` pairs of triggers that an event
        of that type cancels while pending.
        """
        kind = event.type
        if cfg.cart_abandon_s > 0:
            if kind == "add_to_cart":
                if self.cart and event.ts > self._cart_deadline(cfg):
                    self._abandon_cart(cfg)
                page = event.page[:_PAGE_CHARS] if event.page else event.page
                category = event.category[:_CATEGORY_CHARS] if event.category else event.category
                self.cart.append([event.ts, page, category, event.value or 0.0])
                if len(self.cart) > cfg.cart_max_items:
                    del self.cart[0]
            elif kind == "purchase" and self.cart:
                if event.ts > self._cart_deadline(cfg):
                    self._abandon_cart(cfg)
                else:
                    self.cart = [item for item in self.cart if item[0] > event.ts]
            elif kind == "remove_from_cart" and self.cart and event.page is not None:
                for i in range(len(self.cart) - 1, -1, -1):
                    if self.cart[i][1] == event.page:
                        del self.cart[i]
                        break
        if kind == "purchase" and cfg.win_back_days > 0 and last_purchase is not None:
            self.due = [entry for entry in self.due if entry[1] != WIN_BACK]
            details = {"last_purchase_ts": last_purchase, "days": cfg.win_back_days}
            self._schedule(last_purchase + cfg.win_back_days * _DAY, WIN_BACK, details)
        for trigger, cancel_type in cancellers:
            if kind == cancel_type:
                self.due = [e for e in self.due if not (e[1] == trigger and event.ts <= e[0])]

    def _cart_deadline(self, cfg: Any) -> float:
        return max(item[0] for item in self.cart) + cfg.cart_abandon_s

    def _abandon_cart(self, cfg: Any) -> None:
        items = [{"page": page, "category": category, "value": value} for _, page, category, value in self.cart]
        details = {"items": items, "value": round(sum(item["value"] for item in items), 2),
                   "cart_started_ts": min(item[0] for item in self.cart)}  # fmt: skip
        self._schedule(self._cart_deadline(cfg), CART, details)
        self.cart = []

    def _schedule(self, due_ts: float, trigger: str, details: dict[str, Any]) -> None:
        self.due.append([due_ts, trigger, details])
        self.due.sort(key=lambda entry: (entry[0], entry[1]))

    def fire_overflow(self, user_id: str, emitted_at: str) -> list[dict]:
        """Fire the earliest pending deadlines beyond ``MAX_PENDING``, before the watermark.

        Their content is already settled (an abandoned cart is final once a later event
        of its user moved past the deadline), and ids follow the deadline order, so firing
        early changes only ``emitted_at``.
        """
        return self._fire_earliest(len(self.due) - MAX_PENDING, user_id, emitted_at)

    # -- per decision -----------------------------------------------------------

    def on_condition(self, trigger: str, true: bool, event: ClickEvent, within_s: float, details: dict) -> bool:
        """A trigger condition's value at a decision; True when it fires right now."""
        if not true:
            if trigger in self.armed:
                self.armed.remove(trigger)
            return False
        if trigger in self.armed:
            return False
        self.armed.append(trigger)
        if within_s > 0:
            self._schedule(event.ts + within_s, trigger, details)
            return False
        return True

    # -- deadlines ----------------------------------------------------------------

    def next_due(self, cfg: Any) -> float | None:
        """The earliest pending deadline, open cart included."""
        candidates = [self.due[0][0]] if self.due else []
        if self.cart and cfg.cart_abandon_s > 0:
            candidates.append(self._cart_deadline(cfg))
        return min(candidates) if candidates else None

    def fire(self, user_id: str, watermark: float, cfg: Any, emitted_at: str, *, inclusive: bool = False) -> list[dict]:
        """Every trigger whose deadline the watermark has passed (or reached, at end of input)."""

        def passed(due_ts: float) -> bool:
            return due_ts <= watermark if inclusive else due_ts < watermark

        if self.cart and cfg.cart_abandon_s > 0 and passed(self._cart_deadline(cfg)):
            self._abandon_cart(cfg)
        # ``due`` is in deadline order, so the passed ones are its head.
        return self._fire_earliest(sum(1 for entry in self.due if passed(entry[0])), user_id, emitted_at)

    def _fire_earliest(self, count: int, user_id: str, emitted_at: str) -> list[dict]:
        """Trigger the ``count`` earliest pending deadlines (``due`` is kept in deadline order)."""
        earliest, self.due = self.due[: max(count, 0)], self.due[max(count, 0) :]
        return [self.trigger(user_id, trigger, due_ts, emitted_at, details) for due_ts, trigger, details in earliest]

    def trigger(self, user_id: str, trigger: str, ts: float, emitted_at: str, details: dict) -> dict[str, Any]:
        """A trigger event with the next deterministic id for ``trigger``."""
        seq = self.fired.get(trigger, 0) + 1
        self.fired[trigger] = seq
        # Times wait in the state as numbers ("…_ts") and are formatted only when published.
        details = {
            (key[:-3] if key.endswith("_ts") else key): (format_ts(value) if key.endswith("_ts") else value)
            for key, value in details.items()
        }
        return {
            "schema": TRIGGER_SCHEMA,
            "event_id": f"{user_id}:{trigger}:{seq}",
            "user_id": user_id,
            "trigger": trigger,
            "ts": format_ts(ts),
            "emitted_at": emitted_at,
            "details": details,
        }

    def diff_rules(self, now_in: list[str]) -> tuple[list[str], list[str]]:
        """Set the rule segments to ``now_in``; returns (entered, exited)."""
        before = self.rules
        entered = [name for name in now_in if name not in before]
        exited = [name for name in before if name not in now_in]
        self.rules = now_in
        return entered, exited
