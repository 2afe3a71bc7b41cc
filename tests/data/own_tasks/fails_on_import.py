raise RuntimeError("no database configured")
