"""Data: bundled datasets, reading tables, and reducing them to group statistics."""

from poolwise.data.tables import GroupCounts, group_counts, read_table

__all__ = ["GroupCounts", "group_counts", "read_table"]
