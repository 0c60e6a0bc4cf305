"""Reporting: the report's sections, tables and pages, assembled by ``reporting.report``."""
