"""Reading: a results directory into typed records and pandas frames (the only place that opens
trial files).
"""
