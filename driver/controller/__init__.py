"""Allocation controller (I/O): watches, queue, node fit, API writes, leader election around the pure allocator."""
