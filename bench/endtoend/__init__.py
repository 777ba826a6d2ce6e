"""Helpers of bench/pipeline.py: the contender processes and the measuring subscriber."""
