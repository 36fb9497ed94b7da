"""Shared catalogs: GPU devices, LLM presets, Medusa head accuracies and candidate trees."""
