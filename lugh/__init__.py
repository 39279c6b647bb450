"""Lugh: a personal AI engineering team you run from your phone."""
