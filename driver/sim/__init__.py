"""Simulation: trace loading, replay through the real allocator, reports and plots."""
