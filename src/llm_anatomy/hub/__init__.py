"""The Hugging Face Hub: settings, HTTP, files read through ranges, commits, the header cache; the only network code."""
