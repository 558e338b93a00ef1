"""The pipeline declared once as data (`dag`), one stage run from JSON (`execute`), stage code
versions, and a run's input."""
