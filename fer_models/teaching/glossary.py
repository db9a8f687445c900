"""One plain sentence for each piece of jargon the dashboard shows, so that every page explains a term the same
way, in the tooltip of the first widget, metric or column that names it (tests/test_glossary.py checks each)."""

GLOSSARY = {
    "macro F1": "F1 (the harmonic mean of precision and recall) of each class, averaged with equal weight: a rare "
                "class such as disgust counts as much as happy.",
    "ECE": "Expected calibration error: how far the model's confidence is from its accuracy, averaged over 15 "
           "confidence bins. 0 = a 70%-sure answer is right 70% of the time.",
    "top-2 accuracy": "Share of faces whose label is among the model's two most probable classes (a tie goes to the "
                      "lower class, as the predicted class does).",
    "mult-adds": "Multiply-accumulate operations (one multiplication and one addition) to score one 48×48 face: "
                 "the compute cost of a prediction.",
    "Grad-CAM": "Gradient-weighted class activation map: which cells of a deep layer's coarse grid carry the "
                "evidence for a class, from that layer's outputs weighted by their gradients, scaled up to the "
                "face.",
    "logit": "A class's raw score, the network's last output before softmax turns the seven scores into "
             "probabilities that sum to 1.",
    "EMA": "Exponential moving average of the weights: a smoothed copy, updated after every step, that is "
           "validated and kept instead of the raw weights.",
}
