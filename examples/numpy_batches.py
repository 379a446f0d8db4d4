"""Training batches of a gqn shard directory as numpy arrays: python examples/numpy_batches.py DIR"""
import sys

from gqn.data import batches, to_float

# As `gqn train` draws them: 4 random scenes, K context views each (K from 1 to views - 1, one K per batch)
# and a query view that is never a context view. For JAX, hand the arrays to jax.numpy.asarray.
for step, batch in enumerate(batches(sys.argv[1], batch_size=4, seed=0, stop=3)):
    batch = to_float(batch)  # images float32 in [0, 1], channels last; viewpoints float32 (..., 7)
    print(f"batch {step}: context {batch.context_images.shape} {batch.context_viewpoints.shape}, "
          f"query {batch.query_image.shape} {batch.query_viewpoint.shape}")
