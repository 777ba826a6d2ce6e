"""Helpers of bench/tracker.py (and tests/test_tracking_quality.py): scoring and ablation variants."""
