from django.db import models


class Customer(models.Model):
    name = models.CharField(max_length=100)
    email = models.EmailField()

    def __str__(self) -> str:
        return self.name


class Order(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="orders")
    created = models.DateTimeField(db_index=True)
    amount_cents = models.IntegerField()
    status = models.CharField(max_length=16)

    def __str__(self) -> str:
        return f"Order {self.pk}"
