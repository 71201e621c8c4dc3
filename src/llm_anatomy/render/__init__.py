"""Renderers: take an analysis result and options, return text. Nothing here prints."""
