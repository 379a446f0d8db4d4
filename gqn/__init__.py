"""gqn-toolkit: multi-view scene datasets and a Generative Query Network that trains on them."""

__version__ = "0.1.0"
