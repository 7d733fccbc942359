"""From per-level JSON results to the tidy summary.csv, figures and LaTeX tables."""
