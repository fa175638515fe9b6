"""The fast tier: one module's behaviour at a time, no server; mirrors the source tree."""
