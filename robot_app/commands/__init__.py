"""Subcommands of `robot-app` that need no torch. Heavy imports stay inside run()."""
