"""Plots: the report's figures, drawn from the models' tables."""
