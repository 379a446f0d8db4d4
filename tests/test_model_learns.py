"""The GQN learns view synthesis: after a short training on two scenes, its prior-mean prediction of a view
is closer to that view than the scene's average view is, and it changes with the query camera. With the
viewpoints zeroed the same check fails, which shows that the check can fail and that the camera is what the
model uses."""
import numpy as np
import pytest

from gqn.data import Batch, ShardBatches
from gqn.model.config import ModelConfig, TrainConfig
from gqn.model.gqn import build_model
from gqn.model.images import model_inputs, to_model
from gqn.model.objective import Objective
from gqn.runs.device import get_device
from gqn.runs.run import make_optimizer
from gqn.runs.train import train_step
from gqn.shards import Dataset
from tests.model_data import write_dataset

VIEWS, CONTEXT, ITERATIONS = 8, 3, 300
MODEL = {"steps": 2, "hidden": 16, "latent": 3, "canvas": 16, "r_channels": 16, "representation": "pool"}


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return Dataset(write_dataset(tmp_path_factory.mktemp("learns"), scenes=2, views=VIEWS, per_shard=2))


def zeroed(batch: Batch) -> Batch:
    return batch._replace(context_viewpoints=np.zeros_like(batch.context_viewpoints),
                          query_viewpoint=np.zeros_like(batch.query_viewpoint))


def trained(dataset, blind: bool):
    """A small GQN trained on the two scenes, with the viewpoint inputs zeroed when ``blind``."""
    config = TrainConfig(batch_size=8, lr_start=3e-3, lr_end=3e-3, context_min=CONTEXT, context_max=CONTEXT,
                         objective="geco")
    model = build_model(ModelConfig(16, 16, **MODEL), seed=0)
    optimizer, objective, device = make_optimizer(model, config), Objective(config), get_device(None)
    source = ShardBatches(dataset, config.batch_size, (CONTEXT, CONTEXT), seed=0)
    for i in range(ITERATIONS):
        batch = source.batch(i)
        train_step(model, optimizer, zeroed(batch) if blind else batch, config, i, device, objective=objective)
    return model


def predictions(model, dataset, blind: bool):
    """Every view of both scenes predicted from the first CONTEXT other views: (2, V, 3, H, W) predictions and
    the true views."""
    scenes = dataset.read(0, 2)
    images, viewpoints = scenes["images"], scenes["viewpoints"]
    predicted = np.empty((2, VIEWS) + to_model(images[0, 0]).shape, np.float32)
    for v in range(VIEWS):
        context = [u for u in range(VIEWS) if u != v][:CONTEXT]
        batch = Batch(images[:, context], viewpoints[:, context], images[:, v], viewpoints[:, v])
        context_images, context_viewpoints, _, query_viewpoint = model_inputs(zeroed(batch) if blind else batch,
                                                                              get_device(None))
        r = model.represent(context_images, context_viewpoints, query_viewpoint)
        predicted[:, v] = model.predict(r, query_viewpoint).array
    return predicted, to_model(images)


def follows_the_camera(dataset, blind: bool) -> tuple[bool, bool]:
    """(predictions beat the scene's average view, predictions differ between query cameras)."""
    predicted, truth = predictions(trained(dataset, blind), dataset, blind)
    average_view = truth.mean(axis=1, keepdims=True)
    prediction_mse = ((predicted - truth) ** 2).mean()
    average_mse = ((average_view - truth) ** 2).mean()
    spread = ((predicted - predicted.mean(axis=1, keepdims=True)) ** 2).mean()
    return bool(prediction_mse < 0.5 * average_mse), bool(spread > 0.25 * truth.var(axis=1).mean())


def test_predictions_follow_the_query_camera(dataset):
    assert follows_the_camera(dataset, blind=False) == (True, True)


def test_without_viewpoints_the_same_check_fails(dataset):
    assert follows_the_camera(dataset, blind=True) == (False, False)
