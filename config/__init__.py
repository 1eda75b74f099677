"""Configuration every front reads (bot, admin, CLI, demo): settings, the clock, log set-up.

The ground floors (`storage/`, `content/`) never import this: the fronts pass down what they need.
"""
