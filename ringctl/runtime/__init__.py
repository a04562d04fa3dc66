"""The ring-kernel runtime: lifecycle, contexts, queues, telemetry (no YAML, no CLI)."""
