"""What the app and the report teach with: the math derived and checked step by step (derivations),
the Plotly figures of run data (figures) and the self-contained HTML report (report).

May import every subpackage below it; only fer_models.cli imports it.
"""
