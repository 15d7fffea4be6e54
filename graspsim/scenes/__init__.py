"""Scenes as plain data (numpy only, no simulator): kinds, furniture layouts, plans, sampling, suites."""
