"""The sections of study reports, one module per subject."""
