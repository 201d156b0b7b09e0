"""Bundled default checkpoints (``default:NAME``), each with a PROVENANCE.md beside it."""
