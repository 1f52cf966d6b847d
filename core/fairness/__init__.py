"""Fairness audits: per-group metrics with person-level bootstrap intervals and flagged gaps (`metrics`),
and running a labelled set through the pipeline to audit it (`audit`)."""
