"""The shop's three kinds of task: CPU work, waiting on a remote call, and a database query.

Registered as orders.tasks.render_invoice, orders.tasks.notify_customer and orders.tasks.revenue.
"""
from __future__ import annotations

import os
import socket
import time
from datetime import datetime, timedelta, timezone

from celery import shared_task
from django.db.models import Count, Sum

from .models import Customer, Order

# "Now" for the shop: the seed data (migration 0002) spreads orders over the 365 days before this date,
# so that revenue() gives the same answer whenever it runs.
FIXED_NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)

ITEMS_PER_COPY = 40


@shared_task(bind=True)
def render_invoice(self, order_id: int, copies: int = 550) -> dict[str, int | str]:
    """Render an order's invoice as text and checksum it: CPU work in pure Python.

    One ORM query loads the order and its customer; the rest is formatting and a byte-by-byte checksum,
    with the same work for the same arguments. The default `copies` takes about 0.1 s alone.
    """
    order = Order.objects.select_related("customer").get(pk=order_id)
    customer = order.customer
    lines = [
        f"INVOICE #{order.pk:08d}  ({self.name})",
        f"Customer: {customer.name} <{customer.email}>",
        f"Date: {order.created:%Y-%m-%d %H:%M}  Status: {order.status}",
    ]
    total = 0
    for copy in range(copies):
        lines.append(f"--- copy {copy + 1} of {copies} ---")
        for item in range(ITEMS_PER_COPY):
            quantity = 1 + (order.pk + item) % 5
            unit_cents = (order.amount_cents * (item + 1)) // (ITEMS_PER_COPY * 3) + 1
            line_cents = quantity * unit_cents
            total += line_cents
            lines.append(f"{item + 1:3d}  Item {order.pk % 97:02d}-{item:03d}  {quantity:2d} x "
                         f"{unit_cents / 100:10.2f} = {line_cents / 100:12.2f}")
        lines.append(f"{'Subtotal':>40}: {total / 100:14.2f}")
    lines.append(f"{'TOTAL':>40}: {total / 100:14.2f}")
    text = "\n".join(lines)
    # Adler-32 written out as a pure-Python loop (zlib.adler32 would do it in C, without the GIL's share).
    a, b = 1, 0
    for byte in text.encode():
        a = (a + byte) % 65521
        b = (b + a) % 65521
    return {"order_id": order.pk, "lines": len(lines), "chars": len(text), "total_cents": total,
            "checksum": f"{(b << 16) | a:08x}"}


@shared_task(autoretry_for=(ConnectionError,), retry_backoff=True, max_retries=3)
def notify_customer(customer_id: int, calls: int = 20) -> dict[str, int | str]:
    """Tell a remote API about a customer in `calls` request/reply round trips: waiting on calls (I/O).

    A lost connection (ConnectionError) is retried up to 3 times, with exponential back-off.
    """
    email = Customer.objects.values_list("email", flat=True).get(pk=customer_id)
    address = os.environ.get("LAB_ECHO_ADDR")
    if not address:
        # Run outside the lab (no echo service): wait as long as the calls would, 5 ms each.
        time.sleep(0.005 * calls)
        return {"customer_id": customer_id, "email": email, "calls": calls}
    password = os.environ.get("LAB_ECHO_PASSWORD")
    if not password:
        raise RuntimeError("LAB_ECHO_ADDR is set but LAB_ECHO_PASSWORD is not")
    host, port = address.rsplit(":", 1)
    answered = 0
    with socket.create_connection((host, int(port)), timeout=30) as conn:
        conn.sendall(password.encode() + b"\n")  # the service's first line: its password
        reader = conn.makefile("rb")
        for _ in range(calls):
            conn.sendall(b"POST /notify\n")
            if not reader.readline():
                raise ConnectionError("the echo service closed the connection (a wrong LAB_ECHO_PASSWORD?)")
            answered += 1
    return {"customer_id": customer_id, "email": email, "calls": answered}


@shared_task
def revenue(days: int = 30) -> dict[str, object]:
    """Revenue and order count over the last `days` days, in total and per status: work in the database."""
    recent = Order.objects.filter(created__gte=FIXED_NOW - timedelta(days=days))
    totals = recent.aggregate(revenue_cents=Sum("amount_cents"), orders=Count("id"))
    by_status = {
        row["status"]: {"orders": row["orders"], "revenue_cents": row["revenue_cents"] or 0}
        for row in recent.values("status").annotate(orders=Count("id"), revenue_cents=Sum("amount_cents"))
        .order_by("status")
    }
    return {"days": days, "orders": totals["orders"], "revenue_cents": totals["revenue_cents"] or 0,
            "by_status": by_status}
