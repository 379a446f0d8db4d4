"""Training runs of the GQN (``gqn.model`` is the network alone): everything around the network.

* ``run``: a run directory (open a new run or resume one, ``config.json``, ``log.jsonl``, the file names)
* ``snapshot``: ``snapshot.npz``, the model, optimizer state and metadata of a run
* ``train``: the training step and loop (`gqn train`)
* ``measure``: metrics on held-out batches (used while training and by ``evaluate``)
* ``evaluate``: `gqn evaluate` (metrics, prediction grid, orbit GIFs)
* ``sources``: where training batches come from, behind one interface (shards or on-the-fly rendering)
* ``loader``: background loading of shard batches; ``online``: batches of freshly rendered scenes
* ``mpi``: the ChainerMN communicator; ``device``: CPU or GPU
* ``figures``: training curves; ``orbit``: camera orbits; ``baselines``: what a prediction has to beat

Rendering (online training, evaluation's orbits) and the camera pose helpers come through one renderer module,
its door ``gqn.renderer.stream`` (tests/test_layering.py). Importing this package imports nothing heavy; ``loader`` runs without Chainer in data worker processes.
"""
