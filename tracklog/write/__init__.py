"""Writing a run: Run and start_run, value validation, resume, and how runs end (lifecycle)."""
