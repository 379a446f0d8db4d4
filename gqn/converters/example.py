"""``tf.train.Example`` messages without TensorFlow: the schema is built at import time with ``protobuf``.

The message types mirror ``tensorflow/core/example/{example,feature}.proto`` field for field (same names
and numbers, so the wire format is identical); they live in a private descriptor pool, so they never clash
with TensorFlow's own classes if both are loaded.
"""
from __future__ import annotations

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

_F = descriptor_pb2.FieldDescriptorProto


def _file_descriptor() -> descriptor_pb2.FileDescriptorProto:
    fd = descriptor_pb2.FileDescriptorProto(name="gqn/tf_example.proto", package="tensorflow", syntax="proto3")

    def message(name, *fields, parent=None):
        m = (parent.nested_type if parent else fd.message_type).add(name=name)
        for field_name, number, kind, label, type_name in fields:
            f = m.field.add(name=field_name, number=number, type=kind, label=label)
            if type_name:
                f.type_name = type_name
        return m

    for name, kind in (("BytesList", _F.TYPE_BYTES), ("FloatList", _F.TYPE_FLOAT), ("Int64List", _F.TYPE_INT64)):
        message(name, ("value", 1, kind, _F.LABEL_REPEATED, None))
    feature = message("Feature", ("bytes_list", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.BytesList"),
                      ("float_list", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.FloatList"),
                      ("int64_list", 3, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.Int64List"))
    feature.oneof_decl.add(name="kind")
    for f in feature.field:
        f.oneof_index = 0
    features = message("Features", ("feature", 1, _F.TYPE_MESSAGE, _F.LABEL_REPEATED,
                                    ".tensorflow.Features.FeatureEntry"))
    entry = message("FeatureEntry", ("key", 1, _F.TYPE_STRING, _F.LABEL_OPTIONAL, None),
                    ("value", 2, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.Feature"), parent=features)
    entry.options.map_entry = True
    message("Example", ("features", 1, _F.TYPE_MESSAGE, _F.LABEL_OPTIONAL, ".tensorflow.Features"))
    return fd


_POOL = descriptor_pool.DescriptorPool()
_POOL.Add(_file_descriptor())
Example = message_factory.GetMessageClass(_POOL.FindMessageTypeByName("tensorflow.Example"))


class ExampleError(ValueError):
    """A record that is not a GQN scene ``tf.train.Example`` (the caller adds file and record)."""


def parse_scene(data: bytes) -> tuple[list[bytes], np.ndarray]:
    """The ``frames`` (JPEG bytes per view) and flat float32 ``cameras`` of a serialized Example."""
    example = Example()
    try:
        example.ParseFromString(data)
    except Exception as e:  # protobuf raises its DecodeError or, in some back ends, RuntimeError
        raise ExampleError(f"not a tf.train.Example ({e.__class__.__name__})") from None
    feature = example.features.feature
    if "frames" not in feature or "cameras" not in feature:
        raise ExampleError(f"Example lacks the frames/cameras features (has {sorted(feature) or 'none'})")
    frames, cameras = feature["frames"], feature["cameras"]
    if frames.WhichOneof("kind") != "bytes_list" or cameras.WhichOneof("kind") != "float_list":
        raise ExampleError("Example's frames must be a bytes list and cameras a float list")
    return list(frames.bytes_list.value), np.array(cameras.float_list.value, dtype=np.float32)


def encode_scene(frames: list[bytes], cameras: np.ndarray) -> bytes:
    """A serialized Example with features ``frames`` (bytes list) and ``cameras`` (flattened float list).

    Serialized deterministically (map entries in key order): protobuf otherwise orders the features by a
    per-process hash, so the same scene could give other bytes in another run."""
    example = Example()
    feature = example.features.feature
    feature["frames"].bytes_list.value.extend(frames)
    feature["cameras"].float_list.value.extend(np.asarray(cameras, dtype=np.float32).ravel().tolist())
    return example.SerializeToString(deterministic=True)
