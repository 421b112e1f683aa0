"""Paper-experiment scripts (run them as files: python paper_experiments/<paper>/<script>.py)."""
