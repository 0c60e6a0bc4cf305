"""Models: the pure arithmetic over loaded frames: ANOVA, effects, aliases, derived responses,
predictions and verdicts.
"""
