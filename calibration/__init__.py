"""Data (copied from shared/ with provenance), parameter register, targets, first-pass fitting."""
