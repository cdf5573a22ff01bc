"""Prefect deployments of the retraining and memory-maintenance flows."""
