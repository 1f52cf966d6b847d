"""Labelled face sets: the one reader and writer of the labelled-set format (`labelled`), the Annotate
page's review session (`annotation`), and evaluating a model on a set (`evaluate`)."""
