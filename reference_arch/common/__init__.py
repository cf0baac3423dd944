"""Shared resources and helpers: one module per idea."""
