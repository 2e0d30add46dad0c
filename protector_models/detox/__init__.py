"""Detoxifying flagged answers: the rewriters, the detox triples they are trained on, and measuring rewrites."""
