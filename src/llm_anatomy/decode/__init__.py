"""Stored bytes to values: element decoding, bulk reading, the optional histogram extension."""
