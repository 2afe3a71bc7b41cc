"""The measuring side: broker, worker, samplers and probes, and one run end to end (lab.run).

Nothing here imports matplotlib or computes a summary: a run stores raw records, and
harness.analysis reads them back.
"""
