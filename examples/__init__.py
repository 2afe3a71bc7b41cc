"""Tasks like a backend's, for `make advise TASK=examples.tasks:<name>` (see the README)."""
