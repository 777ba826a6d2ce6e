"""Helpers of bench/tracker.py (and tests/unit/test_tracking_quality.py): scoring and ablation variants."""
