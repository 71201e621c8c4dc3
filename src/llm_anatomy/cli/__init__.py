"""Command-line adapters: parse arguments, call the library, render, set the exit code."""
