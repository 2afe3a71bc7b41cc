"""Seed the shop with the same data every time: 200 customers and 20,000 orders over a year."""
import random
from datetime import datetime, timedelta, timezone

from django.db import migrations

# The same date as orders.tasks.FIXED_NOW (a migration keeps its own copy, as migrations should).
FIXED_NOW = datetime(2026, 12, 1, tzinfo=timezone.utc)
CUSTOMERS = 200
ORDERS = 20_000
BATCH = 1000
STATUSES = ["paid"] * 6 + ["shipped"] * 3 + ["pending"] * 2 + ["refunded"]

FIRST = ["Ada", "Alan", "Grace", "Edsger", "Barbara", "Donald", "Margaret", "Ken", "Frances", "Dennis"]
LAST = ["Lovelace", "Turing", "Hopper", "Dijkstra", "Liskov", "Knuth", "Hamilton", "Thompson", "Allen", "Ritchie"]


def seed(apps, schema_editor):
    Customer = apps.get_model("orders", "Customer")
    Order = apps.get_model("orders", "Order")
    rng = random.Random(2026)
    customers = []
    for i in range(CUSTOMERS):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        customers.append(Customer(name=f"{first} {last}", email=f"{first}.{last}.{i}@example.com".lower()))
    Customer.objects.bulk_create(customers, batch_size=BATCH)
    customer_ids = list(Customer.objects.order_by("id").values_list("id", flat=True))
    year = 365 * 24 * 3600
    for start in range(0, ORDERS, BATCH):
        Order.objects.bulk_create([
            Order(
                customer_id=rng.choice(customer_ids),
                created=FIXED_NOW - timedelta(seconds=rng.randrange(year)),
                amount_cents=rng.randint(500, 50_000),
                status=rng.choice(STATUSES),
            )
            for _ in range(start, min(start + BATCH, ORDERS))
        ])


class Migration(migrations.Migration):
    dependencies = [("orders", "0001_initial")]

    operations = [migrations.RunPython(seed, migrations.RunPython.noop)]
