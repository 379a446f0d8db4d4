"""The Generative Query Network in Chainer, the network alone: representation networks (representation),
the recurrent cores (cores), the model (gqn), its convolution (conv), the ELBO and its terms (loss), the
training objectives built on it (objective), configurations (config) and the image convention (images).

Training, evaluation and everything else about runs is ``gqn.runs``; nothing here imports it.
"""
