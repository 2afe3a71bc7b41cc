"""What the lab knows before it starts anything: pools, workloads, run settings, experiments.

Pure and light (standard library only), so the worker side and `make help` can import it too.
"""
