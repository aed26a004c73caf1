"""Evaluation: metrics of a learned reward against the ground truth, reports and plots."""
