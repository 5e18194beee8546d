"""Subcommands of `robot-app` that need torch (train, eval, export, finetune)."""
