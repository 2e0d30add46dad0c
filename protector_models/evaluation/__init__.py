"""Measuring a detector: metrics and the threshold rule, evaluation runs on labelled pairs, and their reports."""
