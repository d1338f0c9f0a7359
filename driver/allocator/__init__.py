"""Allocator (pure): candidates, constraints, counters, capacity, search and packing scorers."""
