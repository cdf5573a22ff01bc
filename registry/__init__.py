"""Router versions as MLflow models: fit on memory, log, register, alias, promote, roll back, load.

A router version is a classifier on request embeddings that predicts "the weak model is good
enough", calibrated to a strong-call rate, plus the configuration and the guides it routes with
and the memory snapshot it was fitted on.
"""
