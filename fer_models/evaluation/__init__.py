"""Scoring a run: probabilities and metrics (scoring), the evaluator that writes eval/<split>/
(evaluate), reading a confusion matrix (confusion) and a run's mistakes beside the FER+ votes (mistakes).

May import: runs, nets, datasets, faces, core. Independent of explain.
"""
