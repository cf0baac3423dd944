"""The rag code location (completed by its own issue)."""

import dagster as dg

defs = dg.Definitions()
