"""Reports: a report is a list of Sections rendered to README.md + figures/ + tables/."""
