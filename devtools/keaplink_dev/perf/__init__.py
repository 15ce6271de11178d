"""Measuring keaplink: the benchmark and its scenarios, the naive way it is compared with, cold start, the
layer graph."""
