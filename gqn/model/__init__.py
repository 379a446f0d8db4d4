"""The Generative Query Network in Chainer: networks (representation, cores, gqn), the ELBO (loss), data
(loader, images), training (train, snapshot) and evaluation (evaluate, figures, orbit).

Importing this package imports nothing heavy; ``loader`` runs without Chainer in data worker processes.
"""
