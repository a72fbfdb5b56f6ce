"""The lesson as a plug-in: what only the lesson's own studies need (the synthesis across them)."""
